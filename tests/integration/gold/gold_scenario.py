"""Gold on top of the silver scenario, in its own process (run by test_gold_job).

``python -m tests.integration.gold.gold_scenario OUT_JSON``, with ``LAKEHOUSE_DATA_DIR`` the
data folder the silver scenario left (synthetic hospital, bronze, silver, vocab): link
persons, build gold, reconcile its counts with the truth, run the OMOP DataQualityDashboard
checks over it (at the published thresholds when ``LAKEHOUSE_REFDATA`` holds them), rerun
(nothing to do), then
change silver the way sources and the EMPI do (a corrected diagnosis code, a deleted lab
result, a patient moved to another person) and build again. Writes what it saw as JSON.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F


def _ids(spark: SparkSession) -> dict[str, int]:
    rows = spark.table("ops.omop_ids").select("omop_table", "natural_key", "omop_id").collect()
    return {f"{r['omop_table']}|{r['natural_key']}": int(r["omop_id"]) for r in rows}


def _counts(spark: SparkSession) -> dict[str, int]:
    from lakehouse.tables.gold import omop

    return {t: spark.table(s.name).count() for t, s in omop.SPECS.items()}


def _dqd(spark: SparkSession, cfg: Any) -> dict[str, Any]:
    """Every DQD check over the first build: status counts, where the thresholds came from,
    and the checks that failed or errored (percent failing, threshold, sample keys)."""
    from lakehouse.quality.dqd import run_dqd

    # The scenario's environment carries no LAKEHOUSE_* value of the test run (hermetic), so
    # the published thresholds are taken from where the project keeps them, ../shared/refdata.
    published = Path(__file__).resolve().parents[3].parent / "shared/refdata/omop-dqd-checks"
    if cfg.quality.dqd_thresholds_dir is None and published.is_dir():
        quality = cfg.quality.model_copy(update={"dqd_thresholds_dir": published})
        cfg = cfg.model_copy(update={"quality": quality})
    report = run_dqd(spark, cfg)
    return {
        "counts": report.counts(),
        "threshold_sources": sorted({r.rule.threshold_source for r in report.results}),
        "failed": {
            r.rule.id: {"status": r.status, "pct": r.percent_failing, "threshold": r.rule.threshold,
                        "rows_failing": r.rows_failing, "message": r.message,
                        "samples": list(r.samples or [])[:3]}
            for r in report.results
            if r.status in ("fail", "error")
        },
    }  # fmt: skip


def main(out_json: str) -> int:
    from jobs import empi, gold
    from lakehouse.gold.evaluate import reconcile
    from lakehouse.settings import load_settings
    from lakehouse.spark import build_spark

    cfg = load_settings()
    truth = cfg.data_dir / "synthetic" / "truth"
    spark = build_spark(cfg)
    result: dict[str, Any] = {}
    empi.run(spark, cfg)
    first = gold.run(spark, cfg)
    result["first"] = {"mode": first.mode, "counts": first.counts()}
    result["reconcile"] = [asdict(c) for c in reconcile(spark, truth)]
    result["tables"] = _counts(spark)
    result["dqd"] = _dqd(spark, cfg)
    ids_before = _ids(spark)

    again = gold.run(spark, cfg)
    result["again"] = {"mode": again.mode, "counts": again.counts()}

    # A source corrects one diagnosis code and deletes one lab result.
    dx = spark.sql(
        "SELECT d.institution_code, d.source_system, d.diagnosis_id, d.patient_key "
        "FROM silver.diagnosis d WHERE d.concept_id IS NOT NULL AND d.encounter_id IS NOT NULL "
        "AND NOT d.is_deleted ORDER BY d.diagnosis_id LIMIT 1"
    ).first()
    other = spark.sql(
        "SELECT concept_id, concept_code FROM vocab.concept WHERE vocabulary_id = 'ICD10' "
        "AND standard_concept = 'S' AND concept_id NOT IN (SELECT concept_id FROM "
        "silver.diagnosis WHERE concept_id IS NOT NULL) ORDER BY concept_code LIMIT 1"
    ).first()
    assert dx is not None
    assert other is not None
    spark.sql(
        f"UPDATE silver.diagnosis SET concept_id = {int(other['concept_id'])}, "
        f"source_updated_at = current_timestamp() WHERE diagnosis_id = '{dx['diagnosis_id']}' "
        f"AND institution_code = '{dx['institution_code']}' "
        f"AND source_system = '{dx['source_system']}'"
    )
    lab = spark.sql(
        "SELECT institution_code, source_system, result_id FROM silver.lab_result "
        "WHERE NOT is_deleted AND patient_key IS NOT NULL ORDER BY result_id LIMIT 1"
    ).first()
    assert lab is not None
    spark.sql(
        "UPDATE silver.lab_result SET is_deleted = true, source_updated_at = current_timestamp() "
        f"WHERE result_id = '{lab['result_id']}' AND institution_code = "
        f"'{lab['institution_code']}' AND source_system = '{lab['source_system']}'"
    )
    # The EMPI moves every record of one person into another person (a merge).
    persons = (
        spark.table("silver.person_index")
        .groupBy("person_id")
        .agg(F.count("*").alias("n"))
        .orderBy("person_id")
        .limit(2)
        .collect()
    )
    absorbed, survivor = persons[0]["person_id"], persons[1]["person_id"]
    spark.sql(
        f"UPDATE silver.person_index SET person_id = '{survivor}', link_rule = 'merge' "
        f"WHERE person_id = '{absorbed}'"
    )
    before_survivor_events = spark.sql(
        "SELECT count(*) AS n FROM gold.condition_occurrence c JOIN ops.omop_ids i "
        "ON i.omop_table = 'person' AND i.omop_id = c.person_id "
        f"WHERE i.natural_key IN ('{absorbed}', '{survivor}')"
    ).first()
    third = gold.run(spark, cfg)
    result["third"] = {
        "mode": third.mode,
        "counts": third.counts(),
        "persons_in_scope": third.persons_in_scope,
    }
    ids_after = _ids(spark)
    result["ids_kept"] = sum(1 for k, v in ids_before.items() if ids_after.get(k) == v)
    result["ids_before"] = len(ids_before)
    result["tables_after"] = _counts(spark)
    key = "|".join((dx["institution_code"], dx["source_system"], dx["diagnosis_id"]))
    cond = spark.sql(
        f"SELECT condition_concept_id FROM gold.condition_occurrence WHERE etl_source_key = '{key}'"
    ).collect()
    result["corrected_concepts"] = [int(r["condition_concept_id"]) for r in cond]
    result["expected_concept"] = int(other["concept_id"])
    lab_key = "|".join((lab["institution_code"], lab["source_system"], lab["result_id"]))
    result["deleted_lab_rows"] = spark.sql(
        f"SELECT count(*) AS n FROM gold.measurement WHERE etl_source_key = '{lab_key}'"
    ).first()["n"]
    survivor_id = ids_after[f"person|{survivor}"]
    result["absorbed_person_rows"] = spark.sql(
        "SELECT count(*) AS n FROM gold.person p JOIN ops.omop_ids i ON i.omop_table = "
        f"'person' AND i.omop_id = p.person_id WHERE i.natural_key = '{absorbed}'"
    ).first()["n"]
    result["survivor_events"] = spark.sql(
        f"SELECT count(*) AS n FROM gold.condition_occurrence WHERE person_id = {survivor_id}"
    ).first()["n"]
    result["events_before_merge"] = int(before_survivor_events["n"])
    result["absorbed_periods"] = spark.sql(
        "SELECT count(*) AS n FROM gold.observation_period o JOIN ops.omop_ids i ON "
        "i.omop_table = 'person' AND i.omop_id = o.person_id "
        f"WHERE i.natural_key = '{absorbed}'"
    ).first()["n"]
    Path(out_json).write_text(json.dumps(result, default=str, indent=1), encoding="utf-8")
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
