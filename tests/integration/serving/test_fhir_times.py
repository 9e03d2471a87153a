"""FHIR dateTimes carry the hospital's wall clock whatever the host's time zone.

Spark hands Python a timestamp as a zone-less datetime in the *Python process's* local time,
not in the session zone (``settings.timezone``). The builders convert it; before, a service on
a UTC host wrote a 16:46 visit as ``08:46+08:00`` (found by the bulk-export round trip,
``test_fhir_export_lakehouse.py``).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from pyspark.sql import SparkSession

from lakehouse.settings import Settings
from serving.fhir.resources import KINDS

pytestmark = pytest.mark.spark


def test_a_timestamp_read_from_spark_keeps_the_hospital_wall_clock(
    spark: SparkSession, settings: Settings
) -> None:
    zone = ZoneInfo(settings.timezone)
    row = spark.sql(
        "SELECT 'H1' AS institution_code, 'lis' AS source_system, 'P1' AS patient_id, "
        "'R1' AS result_id, 'GLU' AS test_source_code, 'LOINC' AS test_source_vocabulary, "
        "TIMESTAMP '2026-05-12 16:46:00' AS collected_at"  # session zone: the hospital's
    ).collect()[0]
    obs = KINDS["Observation"].build(row.asDict(), zone)
    assert obs["effectiveDateTime"] == datetime(2026, 5, 12, 16, 46, tzinfo=zone).isoformat()
