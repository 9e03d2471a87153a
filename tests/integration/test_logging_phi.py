"""No patient value reaches a log through Spark's error messages (docs/security.md)."""

from __future__ import annotations

import pytest
from pyspark.errors import PySparkException
from pyspark.sql import SparkSession

CANARY = "ZHANG-San-110101199003077777"


def test_a_failed_query_logs_no_data_value(
    spark: SparkSession, capfd: pytest.CaptureFixture[str]
) -> None:
    # The message quotes the value (a caller may show the error class, never the text);
    # PySpark's query-context loggers would also print it to stderr.
    with pytest.raises(PySparkException) as failed:
        spark.sql(f"SELECT CAST('{CANARY}' AS INT) AS n").collect()
    assert failed.value.getCondition() == "CAST_INVALID_INPUT"
    out, err = capfd.readouterr()
    assert CANARY not in out
    assert CANARY not in err
