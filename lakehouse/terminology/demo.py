"""The demo vocabulary: small self-written subsets for the synthetic hospital's codes.

Every file is under ``lakehouse/terminology/data/`` and was written for this project (no
licensed text copied): the ICD-10 national clinical edition, ICD-9-CM-3, LOINC and ATC
codes the synthetic hospital uses with our own names and Chinese synonyms, GB/T 2261.1
sex, the UCUM units, each site's local code map (main hospital H0001: 99LIS lab codes and
HIS drug codes; FHIR members A0001/A0003/A0005: local lab codes; CSV members
A0002/A0004/A0006: ZD-/JY/YP codes) and the unit conversions. Loading is idempotent: the
second run finds every edition loaded and writes nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta

from pyspark.sql import SparkSession

from lakehouse.terminology import loaders
from lakehouse.terminology.store import FIRST_DAY, LoadReport, load_edition
from lakehouse.terminology.vocabularies import ATC, DATA, GB2261, ICD9CM3, ICD10, UCUM

DEMO_EDITION = "lakehouse-demo-2026.2"
#: Each demo edition is valid from the day after the previous one (2026.1: 1970-01-01), so a
#: lakehouse that loaded an earlier one takes the new one as its successor (LH-VOC-008
#: otherwise); clinical dates are all later. 2026.2: local procedure codes of H0001
#: (LOCAL:H0001:PROC -> ICD-9-CM-3), chest X-ray 87.4401, ICD-10 Z codes in Observation.
DEMO_VALID_FROM = FIRST_DAY + timedelta(days=1)

CODE_LISTS = (
    (ICD10, "icd10_demo.csv"),
    (ICD9CM3, "icd9cm3_demo.csv"),
    (ATC, "atc_demo.csv"),
    (GB2261, "gb2261_sex.csv"),
    (UCUM, "ucum_demo.csv"),
)


@dataclass
class DemoLoad:
    """What :func:`load_demo` did."""

    reports: list[LoadReport] = field(default_factory=list)
    unit_conversions: int = 0

    def counts(self) -> dict[str, int]:
        out = {"editions_loaded": sum(not r.skipped for r in self.reports),
               "editions_unchanged": sum(r.skipped for r in self.reports),
               "unit_conversions_written": self.unit_conversions}  # fmt: skip
        for r in self.reports:
            for k, v in r.counts.items():
                out[k] = out.get(k, 0) + v
        return out


def load_demo(spark: SparkSession, *, edition: str = DEMO_EDITION) -> DemoLoad:
    """Load every demo vocabulary, the local code maps and the unit conversions."""
    out = DemoLoad()
    batches = [
        loaders.read_code_list(
            spark, DATA / name, vocabulary_id=vocab, edition=edition, valid_from=DEMO_VALID_FROM
        )
        for vocab, name in CODE_LISTS
    ]
    since = DEMO_VALID_FROM
    batches.append(
        loaders.read_loinc(spark, DATA / "loinc_demo.csv", edition=edition, valid_from=since)
    )
    batches.append(
        loaders.read_local_map(
            spark, DATA / "local_code_map_demo.csv", edition=edition, valid_from=since
        )
    )
    # One edition over all demo files: one write per table.
    files = [name for _, name in CODE_LISTS] + ["loinc_demo.csv", "local_code_map_demo.csv"]
    digest = hashlib.sha256("".join(loaders.file_sha256(DATA / f) for f in files).encode())
    batch = loaders.combine(
        batches, loader="demo", source_file=str(DATA), sha256=digest.hexdigest()
    )
    out.reports.append(load_edition(spark, batch))
    w = loaders.load_unit_conversions(spark, DATA / "unit_conversion.csv", edition=edition)
    out.unit_conversions = w.inserted + w.updated
    return out
