"""The de-identified view of a note table carries the NLP job's de-identified text from its
companion ``<table>_deid`` (joined on the note key and version), never the raw text."""

from __future__ import annotations

import json
from datetime import datetime

from pyspark.sql import SparkSession
from pyspark.sql.types import StringType, TimestampType

from jobs import deid as deid_job
from lakehouse.governance.deid.catalog import find_plan
from lakehouse.governance.deid.policy import load_deid_policy
from lakehouse.governance.deid.views import create_view
from lakehouse.settings import Settings
from lakehouse.tables.spec import Phi, TableSpec, column
from lakehouse.tables.writer import ensure_table

RAW = ["张三", "110101199003071234", "13800138000", "Chest pain since"]
KEYS = ("institution_code", "source_system", "note_id")


def _specs(u: str) -> tuple[TableSpec, TableSpec]:
    keys = (
        column("institution_code", StringType(), "Institution.", nullable=False),
        column("source_system", StringType(), "Source system.", nullable=False),
        column("note_id", StringType(), "Note id.", nullable=False),
        column("patient_key", StringType(), "Patient.", phi=Phi.IDENTIFIER),
    )
    version = column("source_updated_at", TimestampType(), "Version.", phi=Phi.DATE)
    note = TableSpec(
        name=f"silver.dnote_{u}",
        comment="Test notes.",
        columns=(
            *keys,
            column("note_title", StringType(), "Title.", phi=Phi.FREE_TEXT),
            column("note_text", StringType(), "Text.", phi=Phi.FREE_TEXT),
            version,
        ),
        keys=KEYS,
        sequence_by="source_updated_at",
        person_key="patient_key",
    )
    companion = TableSpec(
        name=f"silver.dnote_{u}_deid",
        comment="Test de-identified notes.",
        columns=(*keys, column("text_deid", StringType(), "De-identified text."), version),
        keys=KEYS,
        person_key="patient_key",
    )
    return note, companion


def test_note_view_shows_the_deidentified_text_of_the_current_version(
    spark: SparkSession, settings: Settings, unique: str
) -> None:
    note, companion = _specs(unique)
    view = load_deid_policy().view_name(note.name)
    specs = [note, companion]
    v1, v2 = datetime(2024, 5, 1, 8, 0), datetime(2024, 5, 2, 9, 0)
    ensure_table(spark, note)
    notes = [
        (
            "H1",
            "emr",
            "N1",
            "H1|P1",
            "张三 入院记录",
            "张三 110101199003071234 Chest pain since",
            v1,
        ),
        ("H1", "emr", "N2", "H1|P1", "复诊", "13800138000 Chest pain since monday", v2),
    ]
    spark.createDataFrame(notes, note.schema).write.insertInto(note.name)

    ensure_table(spark, companion)
    done = [
        ("H1", "emr", "N1", "H1|P1", "[NAME] [ID] Chest pain since", v1),
        ("H1", "emr", "N2", "H1|P1", "[PHONE] of an older version", v1),  # N2 changed since
    ]
    spark.createDataFrame(done, companion.schema).write.insertInto(companion.name)
    deid_job.refresh(spark, settings, specs=specs)
    rows = [r.asDict() for r in spark.table(view).collect()]
    texts = sorted((r["note_text"] or "") for r in rows)
    assert texts == ["", "[NAME] [ID] Chest pain since"]  # N2: null until the NLP job reruns
    assert "note_title" not in rows[0]  # a title has no counterpart: dropped
    shown = json.dumps(rows, default=str, ensure_ascii=False)
    assert not [c for c in RAW[:3] if c in shown]
    view_text = "\n".join(str(r[0]) for r in spark.sql(f"SHOW CREATE TABLE {view}").collect())
    assert f"dnote_{unique}_deid" in view_text

    # Before the NLP job's table exists: the view is still created, its text null.
    spark.sql(f"DROP TABLE {companion.name}")
    plan = find_plan(note.name, specs, load_deid_policy())
    assert create_view(spark, plan)
    assert [r["note_text"] for r in spark.table(view).collect()] == [None, None]
    spark.sql(f"DROP VIEW IF EXISTS {view}")
    spark.sql(f"DROP VIEW IF EXISTS {load_deid_policy().view_name(companion.name)}")


def test_the_project_note_view_joins_silver_note_deid() -> None:
    from lakehouse.governance.deid.catalog import find_plan
    from lakehouse.governance.deid.views import select_sql
    from lakehouse.tables.registry import all_specs

    plan = find_plan("silver.note", all_specs(), load_deid_policy())
    assert plan.column("note_text").sql == "d.`text_deid`"
    assert dict(plan.dropped)["note_title"] == "no de-identified counterpart column"
    assert plan.companion == "silver.note_deid"
    sql = select_sql(plan)
    assert (
        "LEFT JOIN `silver`.`note_deid` AS d ON d.`institution_code` = t.`institution_code`" in sql
    )
    assert "d.`source_updated_at` <=> t.`source_updated_at`" in sql
    # Over a stand-in source without a stand-in companion: null text, no join.
    assert "note_deid" not in select_sql(plan, source="x")
