"""The landing's MERGEs read only the stored rows that can match (ADR 0035): every file taken
has an intent in ``ops.landing_intents`` before any of its records, and a MERGE reads bronze
from the day before the earliest intent for the same content. Replays days later still land
once; files landed before intents existed get them from their first records."""

from __future__ import annotations

import os

import pytest
from pyspark.sql import functions as F

from jobs import ingest
from lakehouse.tables.ops.ingest import LANDING_FILES, LANDING_INTENTS
from tests.integration.bronze.conftest import Landing, die_before_manifest
from tests.integration.bronze.test_exactly_once import hl7_file

pytestmark = pytest.mark.spark

BRONZE = "bronze.lis_hl7v2_messages"


def _age(landing: Landing, days: int, *tables: str) -> None:
    """Date this test's stored rows of ``tables`` ``days`` earlier, as if landed then (the
    append-only intents opened for it: history rewritten, which no run does)."""
    prefix = "file:" + str(landing.root)
    for table in tables:
        intents = table == LANDING_INTENTS.name
        column = "started_at" if intents else "ingested_at"
        dated = "" if intents else f", ingest_date = date_sub(ingest_date, {days})"
        if intents:
            landing.spark.sql(
                f"ALTER TABLE {table} SET TBLPROPERTIES ('delta.appendOnly' = 'false')"
            )
        landing.spark.sql(
            f"UPDATE {table} SET {column} = {column} - INTERVAL {days} DAYS{dated} "
            f"WHERE startswith(file_path, '{prefix}')"
        )
        if intents:
            landing.spark.sql(
                f"ALTER TABLE {table} SET TBLPROPERTIES ('delta.appendOnly' = 'true')"
            )


def _copies(landing: Landing) -> tuple[int, int, list[str]]:
    """Rows, distinct record keys and landing run ids of this test's bronze messages."""
    row = (
        landing.rows(BRONZE)
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.count_distinct("file_sha256", "record_index").alias("records"),
            F.collect_set("ingest_run_id").alias("runs"),
        )
        .first()
    )
    assert row is not None
    return row["rows"], row["records"], sorted(row["runs"])


def test_a_run_killed_before_its_manifest_and_replayed_days_later_lands_once(
    landing: Landing, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in range(2):
        landing.write("lis", "H001", f"f{k}.hl7", hl7_file(f"{unique}-{k}", 3, 1))
    die_before_manifest(monkeypatch)
    with pytest.raises(RuntimeError):
        ingest.run(landing.spark, landing.cfg, source="lis")
    monkeypatch.undo()
    intents = landing.rows(LANDING_INTENTS.name)
    assert intents.count() == 2  # recorded before the records...
    assert _copies(landing)[:2] == (6, 6)  # ...which were committed; the manifest was not
    # The rerun comes ten days later: the dead run's records are ten days old.
    _age(landing, 10, BRONZE, "bronze.quarantine", LANDING_INTENTS.name)

    rerun = ingest.run(landing.spark, landing.cfg, source="lis")
    lis = rerun.source("lis")
    assert (lis.files_landed, lis.records_landed, lis.records_quarantined) == (2, 6, 2)
    rows, records, runs = _copies(landing)
    assert (rows, records) == (6, 6)  # found, although ten days before the rerun
    assert rerun.run_id not in runs  # insert-only: the first landing's lineage stays
    assert landing.rows("bronze.quarantine").count() == 2
    assert intents.count() == 4  # the rerun recorded its own intents too


def test_the_merge_reads_no_stored_row_before_its_horizon(landing: Landing, unique: str) -> None:
    """The bound is applied: records of the same content older than the day before its
    earliest intent are not read. Here the file's manifest row is removed and its records
    (not its intent) dated ten days back, which no run does: the rerun's horizon is the
    first run's intent, today, so the MERGE does not see them and inserts the records
    again."""
    path = landing.write("lis", "H001", "f.hl7", hl7_file(unique, 3, 0))
    first = ingest.run(landing.spark, landing.cfg, source="lis")
    assert first.source("lis").records_landed == 3
    prefix = "file:" + str(landing.root)
    landing.spark.sql(f"DELETE FROM {LANDING_FILES.name} WHERE startswith(file_path, '{prefix}')")
    _age(landing, 10, BRONZE)  # older than the day before the next run's own intent
    os.utime(path, (1_600_000_000, 1_600_000_000))  # taken again: a new modification time

    again = ingest.run(landing.spark, landing.cfg, source="lis")
    assert again.source("lis").records_landed == 3
    rows, records, _ = _copies(landing)
    assert (rows, records) == (6, 3)


def test_files_landed_before_intents_existed_get_them_from_their_first_records(
    landing: Landing, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lakehouse of a version without intents: a landed file re-delivered (touched) and a
    run that died before its manifest, both replayed days later, land once."""
    landed = landing.write("lis", "H001", "landed.hl7", hl7_file(f"{unique}-a", 2, 0))
    first = ingest.run(landing.spark, landing.cfg, source="lis")
    landing.write("lis", "H001", "orphan.hl7", hl7_file(f"{unique}-b", 2, 0))
    die_before_manifest(monkeypatch)
    with pytest.raises(RuntimeError):
        ingest.run(landing.spark, landing.cfg, source="lis")
    monkeypatch.undo()
    # The older version had no intents table; its records are ten days old.
    landing.spark.sql(f"DROP TABLE {LANDING_INTENTS.name}")
    _age(landing, 10, BRONZE)
    os.utime(landed, (1_600_000_000, 1_600_000_000))

    rerun = ingest.run(landing.spark, landing.cfg, source="lis")
    lis = rerun.source("lis")
    assert (lis.files_landed, lis.records_landed) == (2, 4)
    rows, records, runs = _copies(landing)
    assert (rows, records) == (4, 4)
    assert rerun.run_id not in runs
    seeded = {
        r["run_id"]
        for r in landing.rows(LANDING_INTENTS.name).select("run_id").collect()
        if r["run_id"] != rerun.run_id
    }
    assert first.run_id in seeded  # the landed file's intent, from its records
    assert len(seeded) == 2  # and the dead run's
