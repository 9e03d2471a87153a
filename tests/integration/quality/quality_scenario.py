"""The shipped rules end to end over a generated hospital, in its own process and catalog.

``python -m tests.integration.quality.quality_scenario OUT_JSON PATIENTS clean|dirty``:
generate a small synthetic hospital (``clean``: every dirt rate 0; ``dirty``: every defect
class at a raised rate), load the vocabularies, land everything, run silver, then run the
quality rules over bronze and silver. Writes the defect classes of the truth and each
rule's status and counts as JSON.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path


def main(out_json: str, patients: str, mode: str) -> int:
    from jobs import ingest, silver, terminology
    from lakehouse.quality import run_rules
    from lakehouse.settings import load_settings
    from lakehouse.spark import build_spark
    from lakehouse.synthetic import DirtRates, HospitalConfig, generate

    cfg = load_settings()
    out = cfg.data_dir / "synthetic"
    dirt = DirtRates.clean()
    if mode == "dirty":
        dirt = replace(
            DirtRates(), duplicate_file=0.1, truncated_file=0.05, wrong_encoding=0.1,
            malformed_message=0.05, missing_field=0.1, unit_variant=0.1, out_of_range=0.05,
            late_correction=0.1,
        )  # fmt: skip
    generate(out, HospitalConfig(patients=int(patients), sites=3, seed=5, dirt=dirt))
    spark = build_spark(cfg)
    terminology.run(spark, cfg)
    ingest.run(spark, cfg)
    silver.run(spark, cfg)
    report = run_rules(spark, cfg)
    defects = spark.read.parquet(str(out / "truth" / "defects.parquet"))
    result = {
        "defects": sorted({r["defect_code"] for r in defects.select("defect_code").collect()}),
        "results": {
            r.rule.id: {
                "status": r.status,
                "checked": r.rows_checked,
                "failing": r.rows_failing,
                "message": r.message,
            }
            for r in report.results
        },
    }
    Path(out_json).write_text(json.dumps(result, indent=1), encoding="utf-8")
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:4]))
