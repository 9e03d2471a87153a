"""HL7 v2 and CDA bronze -> silver transforms on a synthetic hospital (no Delta).

``python -m benchmarks bench_silver_hl7_cda`` or
``python benchmarks/bench_silver_hl7_cda.py --patients 800``.

A clean synthetic hospital (one site) is landed through the bronze parsers into cached
DataFrames; then timed: ``transform_emr`` to ``silver.clinical_document`` (the lxml pandas
UDF parses every document), ``silver.diagnosis`` of the same batch (the UDF runs again),
Spark ``xpath_string`` for ten header values plus one ``xpath`` array (the Spark-native
alternative, which yields no sections and no entry structs), and ``transform_lis`` to
``silver.lab_result``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

_XPATHS = (
    "/ClinicalDocument/id/@extension",
    "/ClinicalDocument/code/@code",
    "/ClinicalDocument/title",
    "/ClinicalDocument/effectiveTime/@value",
    "/ClinicalDocument/recordTarget/patientRole/id/@extension",
    "/ClinicalDocument/recordTarget/patientRole/patient/name",
    "/ClinicalDocument/recordTarget/patientRole/patient/birthTime/@value",
    "/ClinicalDocument/recordTarget/patientRole/patient/administrativeGenderCode/@code",
    "/ClinicalDocument/author/assignedAuthor/id/@extension",
    "/ClinicalDocument/componentOf/encompassingEncounter/id/@extension",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_silver_hl7_cda", description=__doc__)
    parser.add_argument("--patients", type=int, default=800)
    args = parser.parse_args(argv)

    from pyspark.sql import functions as F

    from lakehouse.settings import Settings
    from lakehouse.silver.cda import transform_emr
    from lakehouse.silver.hl7 import transform_lis
    from lakehouse.sources import cda, hl7v2
    from lakehouse.sources.encoding import charsets_enabled
    from lakehouse.sources.files import list_landing, read_files
    from lakehouse.sources.records import landed_rows
    from lakehouse.spark import build_spark
    from lakehouse.synthetic import DirtRates, HospitalConfig, generate

    tmp = Path(tempfile.mkdtemp(prefix="bench_silver_"))
    try:
        out = tmp / "hospital"
        generate(
            out, HospitalConfig(patients=args.patients, sites=1, seed=3, dirt=DirtRates.clean())
        )
        cfg = Settings.model_validate(
            {
                "data_dir": tmp / "data",
                "spark": {"master": "local[2]", "shuffle_partitions": 2, "ui_enabled": False},
            }
        )
        spark = build_spark(cfg)
        landing = out / "landing"

        def bronze(source: str, parse, columns):  # type: ignore[no-untyped-def]
            found = list_landing(spark, str(landing / source))
            files = read_files(spark, found, source=source, root_uri="file:" + str(landing))
            return landed_rows(parse(files.where(F.col("size_bytes") > 0)), columns).cache()

        with charsets_enabled(spark):
            emr = bronze("emr", cda.parse_documents, cda.DOCUMENT_COLUMNS)
            lis = bronze("lis", hl7v2.parse_messages, hl7v2.MESSAGE_COLUMNS)
            n, m = emr.count(), lis.count()
            print(f"documents {n}, messages {m}")
            transform_emr(emr.limit(20)).rows["silver.clinical_document"].count()  # warm-up
            t0 = time.perf_counter()
            emr_out = transform_emr(emr)
            docs = emr_out.rows["silver.clinical_document"].count()
            t_doc = time.perf_counter() - t0
            t0 = time.perf_counter()
            dx = emr_out.rows["silver.diagnosis"].count()
            t_dx = time.perf_counter() - t0
            print(
                f"cda lxml UDF -> clinical_document: {docs} in {t_doc:.1f}s ({docs / t_doc:.0f}/s)"
            )
            print(f"cda lxml UDF -> diagnosis: {dx} rows in {t_dx:.1f}s ({n / t_dx:.0f} docs/s)")
            t0 = time.perf_counter()
            cols = [
                F.expr(f"xpath_string(raw_xml, '{p}')").alias(f"c{i}")
                for i, p in enumerate(_XPATHS)
            ]
            cols.append(F.expr("xpath(raw_xml, '//entry/observation/value/@code')").alias("dx"))
            k = emr.select(*cols).where(F.col("c0") != "").count()
            t_xp = time.perf_counter() - t0
            print(f"spark xpath, 10 values + 1 array: {k} in {t_xp:.1f}s ({k / t_xp:.0f}/s)")
            t0 = time.perf_counter()
            labs = transform_lis(lis).rows["silver.lab_result"].count()
            t_l = time.perf_counter() - t0
            print(
                f"hl7 -> lab_result: {m} messages, {labs} results in {t_l:.1f}s "
                f"({m / t_l:.0f} msg/s)"
            )
            print(f"ratio xpath/udf (docs/s): {(k / t_xp) / (docs / t_doc):.1f}")
        spark.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
