"""Realistic dirt at configurable rates, every defect recorded in the truth.

:class:`DirtRates` holds one probability per defect kind (0 turns it off). A :class:`Dirt`
decides, with its own seeded random stream, where a defect goes, and records each injected
defect in ``truth/defects.parquet`` with the file, the record and the defect code.
:class:`Landing` writes files into ``OUT/landing/<source>/<institution>/`` and applies the
file-level dirt: truncation and duplicate delivery under another name.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from pathlib import Path

from lakehouse.synthetic.truth import TruthWriter


class DefectCode(StrEnum):
    """What is wrong with a delivered file or record."""

    DUPLICATE_FILE = "DUPLICATE_FILE"  # the same bytes delivered again under another name
    TRUNCATED_FILE = "TRUNCATED_FILE"  # the file ends early (detail: kept bytes of total)
    WRONG_ENCODING = "WRONG_ENCODING"  # GB18030 bytes in a file that declares UTF-8
    MALFORMED_MESSAGE = "MALFORMED_MESSAGE"  # an HL7 message that breaks the grammar
    MISSING_FIELD = "MISSING_FIELD"  # a required field left empty (detail: which)
    UNIT_VARIANT = "UNIT_VARIANT"  # a lab value in another unit (e.g. mg/dL, not mmol/L)
    OUT_OF_RANGE = "OUT_OF_RANGE"  # a physiologically impossible value
    LATE_CORRECTION = "LATE_CORRECTION"  # a value first sent wrong, corrected later


@dataclass(frozen=True)
class DirtRates:
    """Probability of each defect per file, message or record. 0 turns a kind off."""

    duplicate_file: float = 0.03
    truncated_file: float = 0.01
    wrong_encoding: float = 0.03
    malformed_message: float = 0.01
    missing_field: float = 0.02
    unit_variant: float = 0.05
    out_of_range: float = 0.005
    late_correction: float = 0.02

    @classmethod
    def clean(cls) -> DirtRates:
        """No dirt at all."""
        return cls(**{f.name: 0.0 for f in fields(cls)})

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


class Dirt:
    """Decides where defects go (own random stream) and records them in the truth."""

    def __init__(self, rates: DirtRates, rng: random.Random, truth: TruthWriter) -> None:
        self.rates, self.rng, self.truth = rates, rng, truth

    def roll(self, kind: str) -> bool:
        rate: float = getattr(self.rates, kind)
        return rate > 0 and self.rng.random() < rate

    def record(
        self,
        code: DefectCode,
        source: str,
        site: str,
        file: str,
        record_id: str | None = None,
        detail: str = "",
    ) -> None:
        self.truth.add(
            "defects",
            defect_id=self.truth.next_id("defects", "X"),
            source=source,
            institution_code=site,
            file=file,
            record_id=record_id,
            defect_code=code.value,
            detail=detail,
        )


class Landing:
    """Writes delivered files under ``OUT``; each file becomes a ``truth/files`` row."""

    def __init__(self, out: Path, truth: TruthWriter) -> None:
        self.out, self.truth = out, truth
        self.per_source: dict[str, dict[str, int]] = {}

    def path(self, source: str, site: str, name: str) -> str:
        return f"landing/{source}/{site}/{name}"

    def deliver(
        self, dirt: Dirt, source: str, site: str, name: str, data: bytes, records: int
    ) -> str:
        """Write one file (maybe truncated, maybe also delivered twice); its relative path."""
        rel = self.path(source, site, name)
        if len(data) > 64 and dirt.roll("truncated_file"):
            keep = dirt.rng.randrange(len(data) // 3, len(data) - 8)
            dirt.record(
                DefectCode.TRUNCATED_FILE,
                source,
                site,
                rel,
                None,
                f"kept {keep} of {len(data)} bytes",
            )
            data = data[:keep]
        self._write(rel, source, site, data, records, None)
        if dirt.roll("duplicate_file"):
            stem, dot, ext = name.rpartition(".")
            dup = self.path(source, site, f"{stem}_resend1.{ext}" if dot else f"{name}_resend1")
            dirt.record(DefectCode.DUPLICATE_FILE, source, site, dup, None, f"duplicate of {rel}")
            self._write(dup, source, site, data, records, rel)
        return rel

    def _write(
        self, rel: str, source: str, site: str, data: bytes, records: int, dup_of: str | None
    ) -> None:
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        counts = self.per_source.setdefault(source, {"files": 0, "records": 0, "bytes": 0})
        counts["files"] += 1
        counts["records"] += records
        counts["bytes"] += len(data)
        self.truth.add(
            "files",
            path=rel,
            source=source,
            institution_code=site,
            records=records,
            bytes=len(data),
            sha256=digest,
            duplicate_of=dup_of,
        )
