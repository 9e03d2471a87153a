"""Timestamps mean the hospital's wall clock in Spark SQL *and* in Python.

PySpark converts a ``TIMESTAMP`` to a naive ``datetime`` in the driver process's local zone;
Spark SQL renders it in the session zone. ``build_spark`` makes them the same
(:func:`lakehouse.environment.use_hospital_zone`), or an assistant on a UTC host would
tell a clinician that an 11:11 admission happened at 03:11.
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse.settings import Settings


def test_collected_timestamps_are_the_session_zone_wall_clock(
    spark: SparkSession, settings: Settings
) -> None:
    assert spark.conf.get("spark.sql.session.timeZone") == settings.timezone
    row = spark.sql(
        "SELECT TIMESTAMP'2026-01-01 11:11:00' AS at, "
        "to_timestamp('20260701081500', 'yyyyMMddHHmmss') AS parsed"
    ).first()
    assert row is not None
    assert row.at == datetime(2026, 1, 1, 11, 11)
    assert row.parsed == datetime(2026, 7, 1, 8, 15)


def test_python_datetimes_land_as_the_same_wall_clock(spark: SparkSession) -> None:
    df = spark.createDataFrame([(datetime(2026, 3, 5, 23, 30),)], "at timestamp")
    row = df.select(
        F.date_format("at", "yyyy-MM-dd HH:mm").alias("text"),
        F.hour("at").alias("hour"),
        F.to_date("at").alias("day"),
    ).first()
    assert row is not None
    assert (row.text, row.hour, row.day.isoformat()) == ("2026-03-05 23:30", 23, "2026-03-05")


def test_python_workers_see_the_hospital_zone(spark: SparkSession) -> None:
    # A Python function on the executors gets the same naive wall clock as the driver.
    rdd = spark.sql("SELECT TIMESTAMP'2026-01-01 11:11:00' AS at").rdd
    assert rdd.map(lambda r: r.at.hour).collect() == [11]
