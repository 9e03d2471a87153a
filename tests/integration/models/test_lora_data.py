"""Instruction data for LoRA from the de-identified views, on real Spark and real ``deid.*``
views: synthetic-hospital patients (their truth PHI in the PHI-tagged silver columns and
embedded in record ids, as the LIS does) go through ``lakehouse deid refresh``, and no
name, 身份证号, phone, address, MRN, visit number, record id or true date comes out.

The deid refresh makes that scenario take minutes on a loaded 2-core machine, so it is
``slow`` (``make test-all``); ``test_lines_from_view_shaped_rows`` is the fast check of the
same transforms."""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from jobs import deid as deid_job
from lakehouse.governance.deid.policy import load_deid_policy
from lakehouse.settings import Settings
from lakehouse.synthetic import catalog
from lakehouse.synthetic.model import Patient
from lakehouse.synthetic.population import build_sites, build_staff, generate_patient
from lakehouse.tables.silver.clinical import LAB_RESULT
from lakehouse.tables.silver.note_nlp import NOTE_DEID
from lakehouse.tables.spec import TableSpec
from lakehouse.tables.writer import ensure_table
from models.llm import lora
from models.llm.instructions import SYSTEM, build_instructions, write_lines

SEED, PATIENTS = 42, 4


def _row(spec: TableSpec, **values: Any) -> tuple[Any, ...]:
    return tuple(values.get(f.name) for f in spec.schema.fields)


def _canaries(patients: list[Patient]) -> set[str]:
    out: set[str] = set()
    for p in patients:
        person = p.person
        out |= {person.person_id, person.name, person.phone, person.address.street}
        out |= {person.address.district + person.address.street}
        out |= {x for x in (person.id_card, person.passport) if x}
        for reg in p.registrations.values():
            out |= {reg.local_id, reg.name, reg.phone}
        for e in p.encounters:
            out |= {e.visit_no, e.encounter_id}
            for lab in e.labs:
                out |= {lab.lab_id, lab.collected_at.strftime("%Y-%m-%d %H:%M")}
    return {c for c in out if c}


@pytest.fixture(scope="module")
def written(
    spark: SparkSession, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    u = uuid.uuid4().hex[:8]
    labs_spec = dataclasses.replace(LAB_RESULT, name=f"silver.lora_lab_{u}")
    notes_spec = dataclasses.replace(NOTE_DEID, name=f"silver.lora_note_deid_{u}")
    for spec in (labs_spec, notes_spec):
        ensure_table(spark, spec)
    sites = build_sites(1)
    staff = build_staff(SEED, sites)
    patients = [generate_patient(SEED, i, sites, staff) for i in range(PATIENTS)]
    names = {code: spec["en"] for code, spec in catalog.labs().items()}
    labs, notes = [], []
    for p in patients:
        for site, reg in p.registrations.items():
            for e in p.at(site):
                for lab in e.labs:
                    labs.append(
                        _row(
                            labs_spec,
                            institution_code=site,
                            source_system="lis",
                            # the LIS's filler order number embeds the visit number
                            result_id=f"F{e.visit_no}|{lab.lab_id}",
                            patient_key=f"{site}|{reg.local_id}",
                            patient_id=reg.local_id,
                            encounter_id=e.visit_no,
                            order_id=f"F{e.visit_no}",
                            test_standard_name=names.get(lab.code, lab.code),
                            value_source=f"{lab.value:g}",
                            unit_source=lab.unit,
                            reference_range_source="1-2",
                            abnormal_flag=lab.flag,
                            collected_at=lab.collected_at,
                            collected_at_source=lab.collected_at.isoformat(),
                            comment=f"{reg.name} 电话 {reg.phone}",
                            bronze_table="bronze.lis_oru",
                            is_deleted=False,
                        )
                    )
                notes.append(
                    _row(
                        notes_spec,
                        institution_code=site,
                        source_system="notes",
                        note_id=f"{e.visit_no}-progress",
                        patient_key=f"{site}|{reg.local_id}",
                        encounter_id=e.visit_no,
                        note_type="progress",
                        language="zh",
                        recorded_at=e.start,
                        text_deid="患者[姓名]因发热入院。体温38.5℃。",
                        nlp_status="ok",
                    )
                )
    spark.createDataFrame(labs, labs_spec.schema).write.insertInto(labs_spec.name)
    spark.createDataFrame(notes, notes_spec.schema).write.insertInto(notes_spec.name)
    deid_job.refresh(spark, settings, specs=[labs_spec, notes_spec])
    policy = load_deid_policy()
    lines = build_instructions(
        spark,
        labs=spark.table(policy.view_name(labs_spec.name)),
        notes=spark.table(policy.view_name(notes_spec.name)),
        versions={LAB_RESULT.name: 1, NOTE_DEID.name: 1},
    )
    out = tmp_path_factory.mktemp("lora-data") / "instructions"
    counts = write_lines(lines, out)
    texts = [
        line
        for f in lora.data_files(out)
        for line in f.read_text(encoding="utf-8").splitlines()
        if line
    ]
    visits = {(s, e.visit_no) for p in patients for s in p.registrations for e in p.at(s) if e.labs}
    return {
        "patients": patients, "counts": counts, "texts": texts, "out": out,
        "labs": labs, "visits": visits, "notes": len(notes),
    }  # fmt: skip


@pytest.mark.slow
def test_no_phi_of_the_truth_in_the_data(written: dict[str, Any]) -> None:
    blob = "\n".join(written["texts"])
    leaked = sorted(c for c in _canaries(written["patients"]) if c in blob)
    assert leaked == []


@pytest.mark.slow
def test_one_line_per_visit_and_language_and_per_note(written: dict[str, Any]) -> None:
    n_visits = len(written["visits"])
    assert written["counts"] == {
        "abnormal_labs": 2 * n_visits,
        "note_first_sentence": written["notes"],
    }
    assert len(written["texts"]) == sum(written["counts"].values())


@pytest.mark.slow
def test_answers_cite_the_rows_they_state(written: dict[str, Any]) -> None:
    for text in written["texts"]:
        obj = json.loads(text)
        system, user, reply = (m["content"] for m in obj["messages"])
        assert system == SYSTEM
        if obj["task"] == "note_first_sentence":
            assert reply == "患者[姓名]因发热入院。 [1]"
            assert obj["spans"] == [[0, len("患者[姓名]因发热入院。")]]
            assert obj["sources"] == ["silver.note_deid@1"]
            continue
        assert obj["sources"] == ["silver.lab_result@1"]
        rows = json.loads(user.split("\n", 1)[1].rsplit("\n\n", 1)[0])
        flagged = [r for r in rows if r["abnormal_flag"] not in ("N", "")]
        for r in flagged:  # every abnormal row is stated with its value and reference
            assert f"{r['value_source']} {r['unit_source']}" in reply
            assert r["ref"] in reply
        if not flagged:
            assert reply.endswith(
                "".join(r["ref"] for r in rows) + ("." if obj["language"] == "en" else "。")
            )


@pytest.mark.slow
def test_the_trainer_reads_every_line(written: dict[str, Any]) -> None:
    stats = lora.DataStats()
    got = list(lora.read_messages(written["out"], stats))
    assert len(got) == len(written["texts"])
    assert not stats.rejected


@pytest.mark.slow
def test_a_rerun_writes_the_same_bytes(
    spark: SparkSession, written: dict[str, Any], tmp_path: Path
) -> None:
    first = b"".join(f.read_bytes() for f in lora.data_files(written["out"]))
    lines = spark.read.text(str(written["out"])).selectExpr(
        "get_json_object(value, '$.id') AS id",
        "get_json_object(value, '$.task') AS task",
        "value AS line",
    )
    write_lines(lines, tmp_path / "again")
    assert b"".join(f.read_bytes() for f in lora.data_files(tmp_path / "again")) == first


def test_lines_from_view_shaped_rows(spark: SparkSession) -> None:
    """Fast: three results of one visit (one high) and a note, shaped like the views' rows;
    the lines are what the assistant would answer, with the rows' references. (Two results
    share a collection time: their ids order them, so the ids are fixed, not random.)"""
    labs = spark.createDataFrame(
        [
            ("tokA", "visA", "Glucose", "12.1", "mmol/L", "3.9-6.1", "H", "2025-01-02 08:00:00"),
            ("tokA", "visA", "Potassium", "4.1", "mmol/L", "3.5-5.3", "N", "2025-01-02 08:00:00"),
            ("tokA", "visA", "Sodium", "140", "mmol/L", "137-147", "N", "2025-01-02 09:00:00"),
        ],
        "patient_key string, encounter_id string, test_standard_name string, "
        "value_source string, unit_source string, reference_range_source string, "
        "abnormal_flag string, collected_at string",
    ).selectExpr(
        "'H0001' AS institution_code", "'lis' AS source_system",
        "concat('R-', test_standard_name) AS result_id", "*",
        "CAST(NULL AS string) AS test_local_name", "CAST(NULL AS string) AS test_source_name",
        "CAST(NULL AS string) AS test_source_code", "false AS is_deleted",
        "CAST(collected_at AS timestamp) AS collected_at_ts",
    ).drop("collected_at").withColumnRenamed("collected_at_ts", "collected_at")  # fmt: skip
    notes = spark.createDataFrame(
        [("en", "progress", "Fever for [DATE] days. Admitted.", "ok")],
        "language string, note_type string, text_deid string, nlp_status string",
    )
    lines = build_instructions(
        spark, labs=labs, notes=notes, versions={LAB_RESULT.name: 7, NOTE_DEID.name: 3}
    )
    got = {
        (o["task"], o["language"]): o
        for o in (json.loads(r["line"]) for r in lines.select("line").collect())  # 3 rows
    }
    assert sorted(got) == [
        ("abnormal_labs", "en"), ("abnormal_labs", "zh"), ("note_first_sentence", "en"),
    ]  # fmt: skip
    en = got[("abnormal_labs", "en")]["messages"][2]["content"]
    assert en == "Abnormal in this visit: Glucose 12.1 mmol/L (H, reference 3.9-6.1) [1]."
    zh = got[("abnormal_labs", "zh")]["messages"][2]["content"]
    assert zh == "本次就诊异常的检验结果：Glucose 12.1 mmol/L（H，参考范围 3.9-6.1）[1]。"
    user = got[("abnormal_labs", "en")]["messages"][1]["content"]
    assert [r["ref"] for r in json.loads(user.split("\n", 1)[1].rsplit("\n\n", 1)[0])] == [
        "[1]", "[2]", "[3]",
    ]  # fmt: skip
    assert "tokA" not in user
    assert "visA" not in user
    note = got[("note_first_sentence", "en")]
    assert note["messages"][2]["content"] == "Fever for [DATE] days. [1]"
    assert note["spans"] == [[0, len("Fever for [DATE] days.")]]
    assert note["sources"] == ["silver.note_deid@3"]
    assert got[("abnormal_labs", "en")]["sources"] == ["silver.lab_result@7"]
