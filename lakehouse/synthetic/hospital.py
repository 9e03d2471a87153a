"""Building a whole synthetic hospital: population -> source systems + truth + manifest.

Patients are generated and emitted chunk by chunk (``chunk_size`` at a time): each chunk's
files are written, its truth rows appended to the Parquet files and its HIS rows inserted,
then it is dropped. Memory therefore follows the chunk size, not the population. Output::

    OUT/his/his.sqlite                                 the main hospital's HIS database
    OUT/landing/<source>/<institution_code>/<files>    lis, emr, notes, pacs, fhir, csv
    OUT/truth/<entity>.parquet                         the ground truth
    OUT/manifest.json                                  seed, parameters, counts, files
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow.parquet as pq
from sqlalchemy import func, select

from lakehouse.errors import ErrorCode, error
from lakehouse.synthetic import catalog
from lakehouse.synthetic.cda import Emr
from lakehouse.synthetic.csv_export import CsvSite, local_code_rows
from lakehouse.synthetic.dicom import Pacs
from lakehouse.synthetic.dirt import Dirt, DirtRates, Landing
from lakehouse.synthetic.fhir import FhirSite
from lakehouse.synthetic.his import HisWriter
from lakehouse.synthetic.his_schema import METADATA
from lakehouse.synthetic.hl7 import Lis
from lakehouse.synthetic.model import REFERENCE_DATE, Patient, Site
from lakehouse.synthetic.notes import Notes
from lakehouse.synthetic.population import build_sites, build_staff, generate_patient
from lakehouse.synthetic.questions import add_questions
from lakehouse.synthetic.truth import TruthWriter
from lakehouse.synthetic.wording import WORDINGS, NoteWording

logger = logging.getLogger(__name__)
MAX_SITES = 9
SOURCES = ("lis", "emr", "notes", "pacs", "fhir", "csv")


@dataclass(frozen=True)
class HospitalConfig:
    """What to generate. The same config and seed always give the same bytes."""

    patients: int = 200
    sites: int = 3
    seed: int = 42
    chunk_size: int = 100
    dirt: DirtRates = field(default_factory=DirtRates)
    his_url: str | None = None  # default: sqlite:///OUT/his/his.sqlite
    #: "final": the HIS holds corrected rows (updated_at > created_at); "later": it holds
    #: the first, wrong values, and his.apply_late_corrections delivers the corrections.
    his_corrections: Literal["final", "later"] = "final"
    #: Note wording: "standard" (the default templates, the NLP rules' own phrasings) or
    #: "varied-train" / "varied-validation" / "varied-held-out": many more frames and entity
    #: names outside the NLP lexicon, one disjoint part each (lakehouse/synthetic/wording.py).
    note_wording: NoteWording = "standard"

    def validate(self) -> None:
        checks = [
            ("patients", self.patients >= 1, "must be at least 1"),
            ("sites", 1 <= self.sites <= MAX_SITES, f"must be between 1 and {MAX_SITES}"),
            ("chunk_size", self.chunk_size >= 1, "must be at least 1"),
            ("his_corrections", self.his_corrections in ("final", "later"), "final or later"),
            ("note_wording", self.note_wording in WORDINGS, f"one of {', '.join(WORDINGS)}"),
        ]
        for name, ok, reason in checks:
            if not ok:
                raise error(ErrorCode.SYNTH_PARAMETER_INVALID, setting=name, reason=reason)
        for name, rate in self.dirt.as_dict().items():
            if not 0.0 <= rate <= 1.0:
                raise error(
                    ErrorCode.SYNTH_PARAMETER_INVALID,
                    setting=f"dirt.{name}",
                    reason="must be between 0 and 1",
                )


@dataclass
class HospitalReport:
    """What was generated: counts per source, per HIS table and per truth entity."""

    out: Path
    manifest: dict[str, Any]

    @property
    def counts(self) -> dict[str, int]:
        flat = {f"{k}_files": v["files"] for k, v in self.manifest["counts"]["sources"].items()}
        flat.update({f"his_{k}": v for k, v in self.manifest["counts"]["his"].items()})
        flat.update({f"truth_{k}": v for k, v in self.manifest["counts"]["truth"].items()})
        return flat


def _prepare(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not (overwrite and (out / "manifest.json").is_file()):
            raise error(ErrorCode.SYNTH_OUTPUT_NOT_EMPTY, path=str(out))
        shutil.rmtree(out)
    (out / "his").mkdir(parents=True, exist_ok=True)


def _record_patient(truth: TruthWriter, p: Patient, sites: dict[str, Site]) -> None:
    person = p.person
    truth.add(
        "persons",
        person_id=person.person_id,
        name=person.name,
        sex=person.sex,
        birth_date=person.birth_date,
        id_card=person.id_card,
        passport=person.passport,
        phone=person.phone,
        address=person.address.text,
        ethnicity=person.ethnicity,
    )
    for reg in p.registrations.values():
        truth.add(
            "source_ids",
            person_id=person.person_id,
            institution_code=reg.site_code,
            source_system=reg.source_system,
            source_id=reg.local_id,
            recorded_name=reg.name,
            name_variant=reg.name_variant,
            recorded_id_card=reg.id_card,
            id_variant=reg.id_variant,
            recorded_phone=reg.phone,
        )
    if p.risk is not None:
        r = p.risk
        truth.add(
            "lung_risk",
            person_id=person.person_id,
            age_part=r.age_part,
            smoking=r.smoking,
            smoker=r.smoker,
            emphysema=r.emphysema,
            noise=r.noise,
            score=r.score,
            copd=r.copd,
            copd_encounter_id=r.copd_encounter_id,
            screening_studies=r.screening_studies,
        )
    for c in p.conditions:
        spec = catalog.conditions()[c.key]
        truth.add(
            "conditions",
            person_id=person.person_id,
            condition=c.key,
            icd10=spec["icd10"],
            name=spec["zh"],
            onset=c.onset,
            chronic=c.chronic,
        )
    for e in p.encounters:
        system = p.registrations[e.site_code].source_system
        truth.add(
            "encounters",
            encounter_id=e.encounter_id,
            person_id=person.person_id,
            institution_code=e.site_code,
            source_system=system,
            visit_no=e.visit_no,
            kind=e.kind,
            start=e.start,
            end=e.end,
            dept=e.dept,
            doctor_id=e.doctor,
        )
        for d in e.diagnoses:
            truth.add(
                "diagnoses",
                dx_id=d.dx_id,
                encounter_id=e.encounter_id,
                person_id=person.person_id,
                institution_code=e.site_code,
                condition=d.key,
                icd10=d.icd10,
                name=d.name,
                primary=d.primary,
            )
        for m in e.meds:
            drug = catalog.drugs()[m.drug]
            truth.add(
                "medications",
                med_id=m.med_id,
                encounter_id=e.encounter_id,
                person_id=person.person_id,
                institution_code=e.site_code,
                drug=m.drug,
                atc=drug["atc"],
                name=drug["zh"],
                dose=float(m.dose),
                unit=m.unit,
                route=m.route,
                freq=m.freq,
                days=m.days,
                start=m.start,
            )
    del sites


def generate(out: Path, config: HospitalConfig, *, overwrite: bool = False) -> HospitalReport:
    """Generate the hospital under ``out`` (which must be empty unless ``overwrite``)."""
    config.validate()
    _prepare(out, overwrite)
    sites = build_sites(config.sites)
    main = sites[0]
    staff = build_staff(config.seed, sites)
    by_id = {s.staff_id: s for group in staff.values() for s in group}
    names = {k: s.name for k, s in by_id.items()}
    truth = TruthWriter(out / "truth")
    landing = Landing(out, truth)
    his_url = config.his_url or f"sqlite:///{(out / 'his' / 'his.sqlite').resolve()}"
    his = HisWriter(his_url, main, staff, corrections=config.his_corrections)
    lis, emr = Lis(main, landing, truth), Emr(main, landing, truth)
    notes = Notes(main, landing, truth, config.seed, config.note_wording)
    pacs = Pacs(main, landing, truth, config.seed)
    fhir = [FhirSite(s, landing, truth) for s in sites if s.kind == "fhir"]
    csvs = [CsvSite(s, landing, truth) for s in sites if s.kind == "csv"]
    for s in sites:
        if s.kind == "csv":
            for row in local_code_rows(s):
                truth.add("local_codes", **row)
    site_map = {s.code: s for s in sites}
    for chunk, first in enumerate(range(0, config.patients, config.chunk_size)):
        dirt = {
            src: Dirt(config.dirt, random.Random(f"{config.seed}:dirt:{src}:{chunk}"), truth)
            for src in ("his", *SOURCES)
        }
        for index in range(first, min(first + config.chunk_size, config.patients)):
            p = generate_patient(config.seed, index, sites, staff)
            _record_patient(truth, p, site_map)
            his.add_patient(p, dirt["his"], "his/his.sqlite")
            lis.add_patient(p, names, chunk, dirt["lis"])
            emr.add_patient(p, by_id, dirt["emr"])
            notes.add_patient(p, by_id, dirt["notes"])
            pacs.add_patient(p, by_id, dirt["pacs"])
            for f in fhir:
                f.add_patient(p, chunk, dirt["fhir"])
            for c in csvs:
                c.add_patient(p, chunk, dirt["csv"])
            add_questions(truth, p, config.seed)
        lis.flush(chunk, dirt["lis"])
        for f in fhir:
            f.flush(chunk, dirt["fhir"])
        for c in csvs:
            c.flush(chunk, dirt["csv"])
        his.flush()
        truth.flush()
        logger.info(
            "synthetic hospital: %d of %d patients",
            min(first + config.chunk_size, config.patients),
            config.patients,
        )
    his_counts = _his_counts(his)
    his.close()
    truth.close()
    manifest = _manifest(out, config, sites, landing, truth, his_counts)
    return HospitalReport(out, manifest)


def _his_counts(his: HisWriter) -> dict[str, int]:
    with his.engine.connect() as conn:
        return {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in METADATA.sorted_tables
        }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _manifest(
    out: Path,
    config: HospitalConfig,
    sites: list[Site],
    landing: Landing,
    truth: TruthWriter,
    his_counts: dict[str, int],
) -> dict[str, Any]:
    """Write ``manifest.json``; the per-file list streams from ``truth/files.parquet``.

    The returned dict holds everything but ``files`` (which grows with the population).
    """
    manifest: dict[str, Any] = {
        "generator": "lakehouse.synthetic",
        "catalog_version": catalog.clinical()["version"],
        "seed": config.seed,
        "parameters": {
            "patients": config.patients,
            "sites": config.sites,
            "chunk_size": config.chunk_size,
            "reference_date": REFERENCE_DATE.isoformat(),
            "dirt": config.dirt.as_dict(),
            "his": "sqlite" if config.his_url is None else config.his_url.split(":", 1)[0],
            # Only when not the default, so default output keeps its bytes.
            **({"his_corrections": "later"} if config.his_corrections == "later" else {}),
            **({"note_wording": config.note_wording} if config.note_wording != "standard" else {}),
        },
        "sites": [
            {"institution_code": s.code, "name": s.name, "kind": s.kind, "oid": s.oid}
            for s in sites
        ],
        "counts": {
            "sources": dict(sorted(landing.per_source.items())),
            "his": his_counts,
            "truth": dict(sorted(truth.counts.items())),
        },
    }
    head = json.dumps(manifest, ensure_ascii=False, indent=2)
    with (out / "manifest.json").open("w", encoding="utf-8") as f:
        f.write(head[:-2] + ',\n  "files": {')
        sep = "\n"
        db = out / "his" / "his.sqlite"
        if db.is_file():
            entry = {
                "records": sum(his_counts.values()),
                "bytes": db.stat().st_size,
                "sha256": _sha256(db),
            }
            f.write(f'{sep}    "his/his.sqlite": {json.dumps(entry)}')
            sep = ",\n"
        columns = ["path", "records", "bytes", "sha256"]
        for batch in pq.ParquetFile(out / "truth" / "files.parquet").iter_batches(columns=columns):
            for row in batch.to_pylist():
                entry = {"records": row["records"], "bytes": row["bytes"], "sha256": row["sha256"]}
                f.write(
                    f"{sep}    {json.dumps(row['path'], ensure_ascii=False)}: {json.dumps(entry)}"
                )
                sep = ",\n"
        f.write("\n  }\n}\n")
    return manifest
