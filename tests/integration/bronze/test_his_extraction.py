"""HIS database extraction over JDBC (jobs.ingest_his): SQLite and a real PostgreSQL.

Ground truth is the synthetic hospital built with ``his_corrections="later"``: the HIS
holds the first, wrong diagnoses and :func:`apply_late_corrections` delivers the fixes.
Each test extracts into the shared bronze tables under its own institution code.
"""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from pyspark.sql import functions as F

from jobs import ingest, ingest_his
from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.settings import Settings
from lakehouse.synthetic import DirtRates, HospitalConfig, generate
from lakehouse.synthetic.his import apply_late_corrections, late_corrections
from lakehouse.tables.bronze.his import HIS_TABLES
from lakehouse.tables.ops.extract import EXTRACT_WATERMARKS
from tests.integration.bronze.conftest import Landing
from tests.support.postgres import Postgres

pytestmark = pytest.mark.spark

WALL = "%Y-%m-%d %H:%M:%S.%f"
CONFIG = HospitalConfig(
    patients=24,
    sites=1,
    seed=5,
    chunk_size=24,
    dirt=dataclasses.replace(DirtRates.clean(), late_correction=1.0),
    his_corrections="later",
)


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthetic hospital (HIS as first delivered); tests copy its database."""
    out = tmp_path_factory.mktemp("his") / "synth"
    generate(out, CONFIG)
    return out


@pytest.fixture
def his_db(hospital: Path, tmp_path: Path) -> Path:
    """This test's own copy of the HIS database."""
    db = tmp_path / "his.sqlite"
    shutil.copyfile(hospital / "his" / "his.sqlite", db)
    return db


def his_cfg(base: Settings, url: str, code: str, tables: list[str], **his: Any) -> Settings:
    h = base.his.model_copy(
        update={"jdbc_url": SecretStr(url), "institution_code": code, "tables": tables, **his}
    )
    return base.model_copy(update={"his": h})


def sqlite_counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as con:
        return {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in HIS_TABLES}


def bronze(spark: Any, table: str, code: str) -> Any:
    return spark.table(HIS_TABLES[table].spec.name).where(f"institution_code = '{code}'")


def watermarks(spark: Any, code: str) -> dict[str, str | None]:
    rows = (
        spark.table(EXTRACT_WATERMARKS.name)
        .where(f"institution_code = '{code}'")
        .selectExpr("source_table", "date_format(high_watermark, 'yyyy-MM-dd HH:mm:ss.SSSSSS') hw")
        .collect()
    )
    return {r["source_table"]: r["hw"] for r in rows}


def extract(spark: Any, cfg: Settings, **options: Any) -> ingest_his.HisExtract:
    report = ingest.run(spark, cfg, source="his", **options)
    assert report.his is not None
    assert report.his.failure is None
    return report.his


def pg_database(postgres: Postgres, name: str) -> tuple[str, str]:
    """A fresh database on the test server: (SQLAlchemy URL, JDBC URL)."""
    admin = sa.create_engine(postgres.sqlalchemy_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    base = postgres.sqlalchemy_url.rsplit("/", 1)[0]
    return f"{base}/{name}", f"jdbc:postgresql://{postgres.host}:{postgres.port}/{name}"


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_first_run_lands_every_row_of_every_table_then_a_rerun_writes_nothing(
    spark: Any,
    settings: Settings,
    hospital: Path,
    his_db: Path,
    tmp_path: Path,
    unique: str,
    database: str,
    request: pytest.FixtureRequest,
) -> None:
    code = f"A{unique}"
    counts = sqlite_counts(his_db)  # the same hospital either way
    if database == "sqlite":
        cfg = his_cfg(settings, f"jdbc:sqlite:{his_db}", code, list(HIS_TABLES))
    else:
        postgres: Postgres = request.getfixturevalue("postgres")
        pg_url, jdbc_url = pg_database(postgres, f"his_{unique}")
        generate(tmp_path / "pg", dataclasses.replace(CONFIG, his_url=pg_url))
        cfg = his_cfg(settings, jdbc_url, code, list(HIS_TABLES), user=postgres.user)

    first = ingest.run(spark, cfg, source="his")
    assert first.his is not None
    for table, n in counts.items():
        assert bronze(spark, table, code).count() == n, table
        assert first.his.table(table).rows_new == first.his.table(table).rows_read == n, table
    his = first.source("his")
    assert his.records_seen == his.records_landed == sum(counts.values())
    patients = bronze(spark, "patients", code)
    assert patients.where("op = 'U' and source_system = 'his'").count() == counts["patients"]
    assert patients.where("row_sha256 rlike '^[0-9a-f]{64}$'").count() == counts["patients"]
    with sqlite3.connect(his_db) as con:
        top = con.execute("select max(updated_at) from visits").fetchone()[0]
    assert watermarks(spark, code)["visits"] == top  # SQLAlchemy's text form: microseconds

    again = ingest.run(spark, cfg, source="his")
    assert again.his is not None
    assert all(t.rows_new == 0 for t in again.his.tables)
    assert again.his.rows_read > 0  # the lookback re-reads the last 7 days...
    rerun = again.source("his")  # ...and bronze holds those versions already
    assert rerun.records_landed == 0
    assert rerun.records_unchanged == rerun.records_seen
    for table, n in counts.items():
        assert bronze(spark, table, code).count() == n, table


def test_late_corrections_inside_the_lookback_land_and_deletes_are_tombstoned_once(
    spark: Any, settings: Settings, hospital: Path, his_db: Path, unique: str
) -> None:
    """Late corrections: inside the lookback they land as new versions, older ones need a
    wider lookback. Reconcile: rows deleted at the source get one tombstone each, once."""
    code = f"L{unique}"
    cfg = his_cfg(settings, f"jdbc:sqlite:{his_db}", code, ["diagnoses"])
    extract(spark, cfg)
    high = datetime.strptime(watermarks(spark, code)["diagnoses"] or "", WALL)
    fixes = late_corrections(hospital)
    inside, outside, after = sorted(fixes)[:3]
    url = f"sqlite:///{his_db}"
    # Backdated 2 days before the high watermark: within the 7-day lookback.
    assert apply_late_corrections(hospital, at=high - timedelta(days=2), his_url=url, ids=[inside])
    # Backdated 10 days: older than the lookback, not seen by an incremental run.
    apply_late_corrections(hospital, at=high - timedelta(days=10), his_url=url, ids=[outside])
    apply_late_corrections(hospital, at=high + timedelta(hours=1), his_url=url, ids=[after])
    # Two uncorrected rows deleted at the source.
    with sqlite3.connect(his_db) as con:
        ids = [r[0] for r in con.execute("select diag_id from diagnoses order by 1")]
        gone_dx = [i for i in ids if i not in fixes][:2]
        con.execute(f"delete from diagnoses where diag_id in ('{gone_dx[0]}', '{gone_dx[1]}')")

    second = extract(spark, cfg, reconcile=True)
    assert second.table("diagnoses").rows_new == 2  # tombstones are not new versions
    assert second.table("diagnoses").tombstones == 2
    rows = bronze(spark, "diagnoses", code)
    landed = {
        r["diag_id"]: r["icd10"]
        for r in rows.where(f"ingest_run_id != '{_first_run(rows)}' and op != 'D'").collect()
    }
    assert landed == {inside: fixes[inside], after: fixes[after]}
    assert rows.where(f"diag_id = '{inside}'").count() == 2  # first (wrong) and corrected
    latest = ingest_his.latest_versions(spark, HIS_TABLES["diagnoses"], code)
    assert latest.where(f"diag_id = '{inside}'").first()["icd10"] == fixes[inside]
    assert latest.where(f"diag_id = '{outside}'").first()["icd10"] != fixes[outside]
    dead = latest.where("op = 'D'")
    assert sorted(r["diag_id"] for r in dead.collect()) == sorted(gone_dx)
    tomb = dead.first()
    assert tomb["icd10"] is None
    assert tomb["source_updated_at"] is None

    wider = his_cfg(settings, f"jdbc:sqlite:{his_db}", code, ["diagnoses"])
    wider = wider.model_copy(
        update={"ingest": wider.ingest.model_copy(update={"lookback_days": 30})}
    )
    third = extract(spark, wider, reconcile=True)
    assert third.table("diagnoses").rows_new == 1  # a wider lookback finds it
    assert third.table("diagnoses").tombstones == 0  # each deleted row is tombstoned once
    assert latest.where(f"diag_id = '{outside}'").first()["icd10"] == fixes[outside]


def _first_run(rows: Any) -> str:
    return str(rows.orderBy("ingested_at").first()["ingest_run_id"])


def test_a_killed_first_run_reextracts_without_duplicates_then_a_rerun_writes_nothing(
    spark: Any, settings: Settings, his_db: Path, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first run killed after its bronze commit, before the watermark's: the rerun re-reads
    every row and lands none twice; the run after it re-reads the lookback only and writes
    nothing. (One flow: each extraction of a table costs a bronze MERGE.)"""
    code = f"K{unique}"
    cfg = his_cfg(settings, f"jdbc:sqlite:{his_db}", code, ["visits"])
    counts = sqlite_counts(his_db)
    real_upsert = ingest_his.upsert
    inserted: dict[str, int] = {}

    def dying_upsert(spark: Any, spec: Any, df: Any, **options: Any) -> Any:
        if spec is EXTRACT_WATERMARKS:
            raise RuntimeError("simulated kill after the bronze commits")
        written = real_upsert(spark, spec, df, **options)
        inserted[spec.name] = written.inserted
        return written

    monkeypatch.setattr(ingest_his, "upsert", dying_upsert)
    with pytest.raises(RuntimeError):
        ingest.run(spark, cfg, source="his")
    rows = bronze(spark, "visits", code)
    # The first run landed every row of the table (bronze committed)...
    assert rows.count() == counts["visits"] == inserted[HIS_TABLES["visits"].spec.name]
    assert watermarks(spark, code) == {}  # ...the watermark did not move

    monkeypatch.setattr(ingest_his, "upsert", real_upsert)
    rerun = ingest.run(spark, cfg, source="his")
    assert rerun.his is not None
    assert rerun.his.table("visits").rows_read == counts["visits"]  # everything re-read
    assert all(t.rows_new == 0 for t in rerun.his.tables)
    landed = rows.agg(
        F.count(F.lit(1)).alias("n"), F.collect_set("ingest_run_id").alias("run_ids")
    ).first()
    assert landed is not None
    assert landed["n"] == counts["visits"]
    assert len(landed["run_ids"]) == 1
    assert rerun.run_id not in landed["run_ids"]
    with sqlite3.connect(his_db) as con:
        top = con.execute("select max(updated_at) from visits").fetchone()[0]
    # The watermark is SQLAlchemy's text form of the newest updated_at (microseconds).
    assert watermarks(spark, code) == {"visits": top}

    again = extract(spark, cfg)
    assert [t.rows_new for t in again.tables] == [0]
    assert again.rows_read > 0  # the lookback re-reads the last 7 days; bronze has them
    assert rows.count() == counts["visits"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_database_fails_the_run_after_the_other_sources_land(
    landing: Landing, unique: str
) -> None:
    n = 3
    msgs = "".join(
        f"MSH|^~\\&|LIS|H|EMR|H|20240101||ORU^R01|{unique}-{i}|P|2.5\rOBX|1|NM|GLU||{i}\r"
        for i in range(n)
    )
    landing.write("lis", "H001", "f.hl7", msgs.encode())
    port = _free_port()
    cfg = his_cfg(
        landing.cfg,
        f"jdbc:postgresql://127.0.0.1:{port}/his?password=secret",
        f"U{unique}",
        ["patients"],
    )
    cfg = cfg.model_copy(
        update={"ingest": cfg.ingest.model_copy(update={"sources": ["lis", "his"]})}
    )
    with pytest.raises(LakehouseError) as caught:
        ingest.run(landing.spark, cfg)
    assert caught.value.code is ErrorCode.JDBC_UNREACHABLE
    assert str(port) not in str(caught.value)
    assert "secret" not in str(caught.value)
    assert landing.rows("bronze.lis_hl7v2_messages").count() == n  # lis landed
    run = (
        landing.spark.table("ops.job_runs")
        .where("job = 'ingest' and error_code = 'LH-JDB-001'")
        .orderBy("started_at", ascending=False)
        .first()
    )
    assert run is not None
    assert run["status"] == "failed"
    assert run["counts"]["lis.records_landed"] == n


def test_missing_table_and_watermark_column_are_catalogued_and_other_tables_land(
    spark: Any, settings: Settings, his_db: Path, unique: str
) -> None:
    code = f"E{unique}"
    with sqlite3.connect(his_db) as con:
        con.execute("drop table staff")
        con.execute("alter table transfers drop column updated_at")
    cfg = his_cfg(settings, f"jdbc:sqlite:{his_db}", code, ["staff", "transfers", "departments"])
    with pytest.raises(LakehouseError) as caught:
        ingest.run(spark, cfg, source="his")
    assert caught.value.code is ErrorCode.JDBC_TABLE_MISSING
    assert bronze(spark, "departments", code).count() == sqlite_counts_one(his_db, "departments")
    assert set(watermarks(spark, code)) == {"departments"}  # failed tables keep no watermark

    only = his_cfg(settings, f"jdbc:sqlite:{his_db}", code, ["transfers"])
    with pytest.raises(LakehouseError) as caught:
        ingest.run(spark, only, source="his")
    assert caught.value.code is ErrorCode.JDBC_COLUMNS_MISSING

    bad = his_cfg(settings, "postgres://user:pw@db/his", code, ["departments"])
    with pytest.raises(LakehouseError) as caught:
        ingest.run(spark, bad, source="his")
    assert caught.value.code is ErrorCode.JDBC_URL_INVALID
    assert "pw" not in str(caught.value)


def sqlite_counts_one(db: Path, table: str) -> int:
    with sqlite3.connect(db) as con:
        return int(con.execute(f"select count(*) from {table}").fetchone()[0])


def test_postgresql_extraction_matches_sqlite_and_catches_corrections(
    spark: Any, settings: Settings, hospital: Path, tmp_path: Path, postgres: Postgres, unique: str
) -> None:
    pg_url, jdbc_url = pg_database(postgres, f"his_{unique}")
    out = tmp_path / "pg"
    generate(out, dataclasses.replace(CONFIG, his_url=pg_url))
    code, lite_code = f"P{unique}", f"Q{unique}"
    tables = ["diagnoses", "prescriptions"]
    cfg = his_cfg(settings, jdbc_url, code, tables, user=postgres.user)
    first = extract(spark, cfg)
    lite = sqlite_counts(hospital / "his" / "his.sqlite")
    for table in tables:
        assert first.table(table).rows_new == lite[table] == bronze(spark, table, code).count()
    # Same rows, same canonical hashes, whichever database delivered them (timestamps,
    # doubles, integers and null markers included).
    lite_url = f"jdbc:sqlite:{hospital / 'his' / 'his.sqlite'}"
    lite_first = extract(spark, his_cfg(settings, lite_url, lite_code, tables))
    for table in tables:
        assert lite_first.table(table).rows_new == lite[table]
        pg = {r[0] for r in bronze(spark, table, code).select("row_sha256").collect()}
        sq = {r[0] for r in bronze(spark, table, lite_code).select("row_sha256").collect()}
        assert pg == sq, table

    high = datetime.strptime(watermarks(spark, code)["diagnoses"] or "", WALL)
    fixed = apply_late_corrections(out, at=high - timedelta(days=1), his_url=pg_url)
    assert fixed == len(late_corrections(out)) > 0
    second = extract(spark, cfg)
    assert second.table("diagnoses").rows_new == fixed  # inside the lookback: all caught
    assert second.table("prescriptions").rows_new == 0
    latest = ingest_his.latest_versions(spark, HIS_TABLES["diagnoses"], code)
    fixes = late_corrections(out)
    got = {
        r["diag_id"]: r["icd10"] for r in latest.where(F.col("diag_id").isin(list(fixes))).collect()
    }
    assert got == fixes


def test_unreadable_values_are_flagged_and_nulls_hash_apart_from_empty_text(spark: Any) -> None:
    from pyspark.sql.types import StructField

    from lakehouse.sources import jdbc

    cols = [c for c in HIS_TABLES["visits"].source_columns if c.name in ("visit_no", "bed_no")]
    cols.append(next(c for c in HIS_TABLES["visits"].source_columns if c.name == "visit_time"))
    raw = spark.createDataFrame(
        [("V1", None, "2026-06-01 08:00:00.000000"), ("V2", "", "not a time"), ("V3", "", None)],
        "visit_no string, bed_no string, visit_time string",
    )
    typed = jdbc.typed_rows(raw, cols).withColumn(
        "wall", F.date_format("visit_time", "yyyy-MM-dd HH:mm:ss")
    )
    rows = {r["visit_no"]: r for r in typed.collect()}
    assert rows["V1"]["wall"] == "2026-06-01 08:00:00"  # wall time kept (session zone)
    assert rows["V2"][jdbc.UNREADABLE] == ["visit_time"]
    assert rows["V1"][jdbc.UNREADABLE] == []
    assert rows["V3"][jdbc.UNREADABLE] == []
    same = [StructField("bed_no", cols[1].dataType)]
    hashes = spark.createDataFrame([(None,), ("",)], "bed_no string").select(
        jdbc.row_sha256(same).alias("h")
    )
    assert hashes.distinct().count() == 2  # null and '' are different content
