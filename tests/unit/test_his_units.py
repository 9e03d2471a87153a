"""HIS extraction without a JVM: settings, URLs and literals, specs against the HIS schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from pyspark.sql.types import DateType, DoubleType, IntegerType, StringType, TimestampType
from sqlalchemy import Date, DateTime, Float, Integer, String

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.settings import Settings
from lakehouse.sources import jdbc
from lakehouse.synthetic.his_schema import METADATA
from lakehouse.tables.bronze.his import HIS_TABLES
from lakehouse.tables.spec import Phi


def test_default_his_url_is_the_synthetic_hospitals_sqlite(tmp_path: Path) -> None:
    cfg = Settings(home=tmp_path, data_dir=Path("var"))
    assert cfg.his_jdbc_url == f"jdbc:sqlite:{tmp_path / 'var/synthetic/his/his.sqlite'}"
    assert cfg.his.institution_code == "H0001"
    assert cfg.his.tables == list(HIS_TABLES)
    assert cfg.ingest.lookback_days == 7
    assert "his" in cfg.ingest.sources


def test_configured_his_url_is_secret(tmp_path: Path) -> None:
    url = "jdbc:postgresql://db:5432/his?user=u&password=p"
    cfg = Settings(home=tmp_path, his={"jdbc_url": url})  # type: ignore[arg-type]
    assert cfg.his_jdbc_url == url
    assert "password=p" not in repr(cfg)
    assert "password=p" not in cfg.model_dump_json()
    assert isinstance(cfg.his.jdbc_url, SecretStr)


@pytest.mark.parametrize(
    ("url", "dialect", "driver"),
    [
        ("jdbc:sqlite:/x/his.sqlite", "sqlite", "org.sqlite.JDBC"),
        ("jdbc:postgresql://h:5432/db", "postgresql", "org.postgresql.Driver"),
    ],
)
def test_dialect_picks_the_driver(url: str, dialect: str, driver: str) -> None:
    src = jdbc.jdbc_source(url, setting="his.jdbc_url", user="u", password="pw")
    assert (src.dialect, src.driver) == (dialect, driver)
    assert src.properties == {"user": "u", "password": "pw"}
    assert url not in repr(src)
    assert "pw" not in repr(src)


@pytest.mark.parametrize(
    "url", ["postgres://u:pw@h/db", "his.sqlite", "jdbc:oracle:thin:@h:1521/x"]
)
def test_bad_or_driverless_urls_are_catalogued_without_the_url(url: str) -> None:
    with pytest.raises(LakehouseError) as caught:
        jdbc.jdbc_source(url, setting="his.jdbc_url")
    assert caught.value.code is ErrorCode.JDBC_URL_INVALID
    assert url not in str(caught.value)
    assert "pw" not in str(caught.value)


def test_other_dialects_work_with_an_explicit_driver() -> None:
    src = jdbc.jdbc_source(
        "jdbc:oracle:thin:@h:1521/x", setting="s", driver="oracle.jdbc.OracleDriver"
    )
    assert src.dialect == "oracle"


@pytest.mark.parametrize(
    ("dialect", "literal"),
    [
        ("sqlite", "'2026-06-01 08:00:00.000000'"),
        ("postgresql", "TIMESTAMP '2026-06-01 08:00:00.000000'"),
        ("sqlserver", "CAST('2026-06-01 08:00:00.000000' AS DATETIME2)"),
    ],
)
def test_watermark_literals_per_dialect(dialect: str, literal: str) -> None:
    src = jdbc.JdbcSource("jdbc:x:", dialect, "d")
    assert jdbc.timestamp_literal(src, "2026-06-01 08:00:00.000000") == literal


def test_watermark_literal_refuses_anything_but_a_wall_time() -> None:
    src = jdbc.JdbcSource("jdbc:x:", "postgresql", "d")
    with pytest.raises(ValueError, match="not a wall time"):
        jdbc.timestamp_literal(src, "2026-06-01' OR 1=1 --")


def test_identifiers_are_checked_before_they_reach_sql() -> None:
    assert jdbc.check_identifier("dbo.patients", table="t") == "dbo.patients"
    with pytest.raises(LakehouseError) as caught:
        jdbc.check_identifier("patients; drop table x", table="patients")
    assert caught.value.code is ErrorCode.JDBC_TABLE_MISSING


def test_driver_failures_are_classified_not_quoted() -> None:
    exc = RuntimeError("Connection to db.internal:5432 refused. Connection refused (password=x)")
    assert jdbc._reason(exc) == "connection refused"
    assert jdbc._reason(ValueError("something else")) == "ValueError"


_TYPES = {String: StringType, DateTime: TimestampType, Date: DateType, Float: DoubleType}


def test_bronze_specs_mirror_the_his_schema() -> None:
    """One bronze table per HIS table, with its columns, in the types the HIS has."""
    assert set(HIS_TABLES) == {t.name for t in METADATA.sorted_tables}
    for table in METADATA.sorted_tables:
        his = HIS_TABLES[table.name]
        assert [pk.name for pk in table.primary_key.columns] == [his.pk]
        spec_types = {c.name: type(c.dataType) for c in his.source_columns}
        assert set(spec_types) == {c.name for c in table.columns}, table.name
        for c in table.columns:
            want = IntegerType if isinstance(c.type, Integer) else _TYPES[type(c.type)]
            assert spec_types[c.name] is want, (table.name, c.name)
        assert his.spec.keys == ("institution_code", his.pk, "row_sha256")
        assert his.spec.cluster_by == ("institution_code", "ingest_date")


def test_phi_tags_and_person_keys() -> None:
    patients, visits = HIS_TABLES["patients"].spec, HIS_TABLES["visits"].spec
    assert patients.person_key == "patient_id"
    assert visits.person_key == "patient_id"
    phi = patients.phi_columns
    for name in ("name", "id_card", "passport", "phone", "address", "birth_date", "patient_id"):
        assert name in phi, name
    assert phi["birth_date"] is Phi.DATE
    assert phi["id_card"] is Phi.IDENTIFIER
    assert HIS_TABLES["staff"].spec.phi_columns == {"staff_name": Phi.NAME}
