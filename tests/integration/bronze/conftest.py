"""Helpers of the bronze landing tests: a landing folder per test, and table views of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lakehouse.settings import Settings


@dataclass
class Landing:
    """A test's own landing root, the settings that point at it, and ways to look at results."""

    root: Path
    cfg: Settings
    spark: Any

    def write(self, source: str, institution: str, name: str, data: bytes) -> Path:
        path = self.root / source / institution / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def rows(self, table: str) -> Any:
        """Rows of ``table`` that came from this test's landing root."""
        from pyspark.sql import functions as F

        prefix = "file:" + str(self.root)
        return self.spark.table(table).where(F.col("file_path").startswith(prefix))

    def codes(self, source: str) -> dict[str, int]:
        """Quarantined records of ``source`` by error name."""
        rows = (
            self.rows("bronze.quarantine")
            .where(f"source_system = '{source}'")
            .groupBy("error_name")
            .count()
            .collect()
        )
        return {r["error_name"]: r["count"] for r in rows}


def die_before_manifest(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ingest runs fail at the manifest MERGE: after their bronze and quarantine
    commits, where a killed driver leaves a run (``monkeypatch.undo()`` restores)."""
    from jobs import ingest
    from lakehouse.tables.ops.ingest import LANDING_FILES

    real_upsert = ingest.upsert

    def dying_upsert(spark: Any, spec: Any, df: Any, **options: Any) -> Any:
        if spec is LANDING_FILES:
            raise RuntimeError("simulated kill after the bronze and quarantine commits")
        return real_upsert(spark, spec, df, **options)

    monkeypatch.setattr(ingest, "upsert", dying_upsert)


@pytest.fixture
def landing(spark: Any, settings: Settings, tmp_path: Path) -> Landing:
    root = tmp_path / "landing"
    root.mkdir()
    ingest = settings.ingest.model_copy(update={"landing_root": root})
    return Landing(root, settings.model_copy(update={"ingest": ingest}), spark)
