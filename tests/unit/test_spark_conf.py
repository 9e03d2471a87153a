"""The session's configuration follows settings alone (no JVM started here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.environment import required_jars
from lakehouse.settings import Settings
from lakehouse.spark import spark_conf


@pytest.fixture
def jars(tmp_path: Path) -> Path:
    folder = tmp_path / "jars"
    folder.mkdir()
    for name in [*required_jars(), "postgresql-42.7.8.jar"]:
        (folder / name).write_bytes(b"")
    return folder


def test_embedded_defaults(tmp_path: Path, jars: Path) -> None:
    conf = spark_conf(Settings(home=tmp_path, spark={"jars_dir": jars}))  # type: ignore[arg-type]
    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert conf["spark.sql.catalogImplementation"] == "hive"
    assert (
        f"databaseName={tmp_path}/var/metastore_db"
        in conf["spark.hadoop.javax.jdo.option.ConnectionURL"]
    )
    assert conf["spark.driver.bindAddress"] == "127.0.0.1"
    assert conf["spark.sql.warehouse.dir"] == str(tmp_path / "var" / "warehouse")
    assert "postgresql-42.7.8.jar" in conf["spark.jars"]
    assert conf["spark.driver.extraClassPath"].endswith("postgresql-42.7.8.jar")
    assert conf["spark.sql.execution.pythonUDF.arrow.enabled"] == "false"
    # A Derby database held by another process is reported at once, not after 10 retries.
    assert conf["spark.hadoop.hive.hmshandler.retry.attempts"] == "1"


def test_cluster_and_external_metastore_by_settings_alone(tmp_path: Path, jars: Path) -> None:
    cfg = Settings(
        home=tmp_path,
        warehouse_uri="s3a://lake/warehouse",
        spark={  # type: ignore[arg-type]
            "master": "spark://head:7077",
            "jars_dir": jars,
            "conf": {"spark.executor.memory": "8g", "spark.sql.shuffle.partitions": "400"},
        },
        metastore={  # type: ignore[arg-type]
            "kind": "jdbc",
            "jdbc_url": "jdbc:postgresql://db:5432/hive",
            "user": "hive",
            "password": "pw",
        },
    )
    conf = spark_conf(cfg)
    assert "spark.driver.bindAddress" not in conf
    assert conf["spark.sql.warehouse.dir"] == "s3a://lake/warehouse"
    assert conf["spark.hadoop.javax.jdo.option.ConnectionURL"] == "jdbc:postgresql://db:5432/hive"
    assert conf["spark.hadoop.javax.jdo.option.ConnectionPassword"] == "pw"
    assert conf["spark.executor.memory"] == "8g"
    assert conf["spark.sql.shuffle.partitions"] == "400"  # explicit conf wins


@pytest.mark.parametrize(
    ("metastore", "key", "expected"),
    [
        (
            {"kind": "derby-server", "derby_port": 1600},
            "javax.jdo.option.ConnectionURL",
            "jdbc:derby://127.0.0.1:1600/",
        ),
        (
            {"kind": "thrift", "thrift_uris": "thrift://hms:9083"},
            "hive.metastore.uris",
            "thrift://hms:9083",
        ),
    ],
)
def test_metastore_servers(
    tmp_path: Path, jars: Path, metastore: dict[str, object], key: str, expected: str
) -> None:
    cfg = Settings(home=tmp_path, spark={"jars_dir": jars}, metastore=metastore)  # type: ignore[arg-type]
    assert spark_conf(cfg)["spark.hadoop." + key].startswith(expected)


def test_in_memory_catalog(tmp_path: Path, jars: Path) -> None:
    cfg = Settings(home=tmp_path, spark={"jars_dir": jars}, metastore={"kind": "in-memory"})  # type: ignore[arg-type]
    assert spark_conf(cfg)["spark.sql.catalogImplementation"] == "in-memory"


@pytest.mark.spark
def test_session_conf_restores_each_key_as_it_was_even_when_the_block_raises(spark) -> None:  # type: ignore[no-untyped-def]
    from lakehouse.spark import session_conf

    absent, present = "spark.lakehouse.test.absent", "spark.lakehouse.test.present"
    seen: list[tuple[str, str]] = []

    def block() -> None:
        with session_conf(spark, {absent: "a", present: "b"}):
            seen.append((spark.conf.get(absent), spark.conf.get(present)))
            raise RuntimeError("inside")

    spark.conf.set(present, "before")
    try:
        with pytest.raises(RuntimeError):
            block()
        assert seen == [("a", "b")]
        assert spark.conf.get(absent, None) is None
        assert spark.conf.get(present) == "before"
    finally:
        spark.conf.unset(present)
