"""Settings: defaults, environment (prefix + nesting), path resolution, coded errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.settings import Settings, load_settings


def test_defaults_run_on_one_machine(tmp_path: Path) -> None:
    cfg = Settings(home=tmp_path)
    assert cfg.spark.master == "local[*]"
    assert cfg.spark.is_local
    assert cfg.metastore.kind == "derby-embedded"
    assert cfg.data_dir == tmp_path / "var"
    assert cfg.spark.jars_dir == tmp_path / ".cache" / "jars"
    assert cfg.warehouse == str(tmp_path / "var" / "warehouse")


def test_every_field_is_documented() -> None:
    def walk(model: type) -> list[str]:
        missing = []
        for name, info in model.model_fields.items():  # type: ignore[attr-defined]
            annotation = info.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                missing += walk(annotation)
            elif not info.description:
                missing.append(name)
        return missing

    assert walk(Settings) == []


def test_environment_with_prefix_and_nesting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path))
    monkeypatch.setenv("LAKEHOUSE_SPARK__MASTER", "spark://head:7077")
    monkeypatch.setenv("LAKEHOUSE_SPARK__CONF", '{"spark.executor.memory": "8g"}')
    monkeypatch.setenv("LAKEHOUSE_METASTORE__KIND", "jdbc")
    monkeypatch.setenv("LAKEHOUSE_METASTORE__JDBC_URL", "jdbc:postgresql://db:5432/hive")
    monkeypatch.setenv("LAKEHOUSE_METASTORE__PASSWORD", "s3cret")
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE_URI", "s3a://bucket/warehouse")
    cfg = load_settings()
    assert cfg.home == tmp_path
    assert not cfg.spark.is_local
    assert cfg.spark.conf == {"spark.executor.memory": "8g"}
    assert cfg.warehouse == "s3a://bucket/warehouse"
    assert cfg.metastore.password is not None
    assert "s3cret" not in cfg.model_dump_json()


def test_java_home_is_read_from_the_standard_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    assert Settings(home=tmp_path).java_home == tmp_path


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"LAKEHOUSE_METASTORE__KIND": "jdbc"}, "settings"),
        ({"LAKEHOUSE_METASTORE__KIND": "oracle"}, "metastore.kind"),
        ({"LAKEHOUSE_SPARK__SHUFFLE_PARTITIONS": "0"}, "spark.shuffle_partitions"),
    ],
)
def test_invalid_settings_raise_a_coded_error(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], setting: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(LakehouseError) as info:
        load_settings()
    assert info.value.code is ErrorCode.CONFIG_INVALID
    assert info.value.params["setting"] == setting
