"""Encryption at rest on real Spark + Delta (docs/adr/0014): Parquet modular encryption of
chosen columns keeps the canaries out of every byte of the table's folder (data files,
_delta_log statistics and checkpoints, change-data files), an authorized session reads them
back, and a session without the keys fails with LH-ENC-003."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql.types import LongType, MapType, StringType

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.governance import encryption
from lakehouse.settings import Settings
from lakehouse.tables.spec import Phi, TableSpec, column
from lakehouse.tables.writer import ensure_table, upsert

ID_CARD = "110101199003071234"
ID_CARD_2 = "440106198501011111"
PHONE = "13800138000"
PHONE_2 = "13912345678"
NAME = "张三丰"
CONTROL = "CONTROL-PLAINTEXT-7305"  # an unencrypted column: proves the byte scan sees text
CANARIES = [ID_CARD, ID_CARD_2, PHONE, PHONE_2, NAME]


def _spec(name: str) -> TableSpec:
    return TableSpec(
        name=name,
        comment="Encryption test table.",
        keys=("patient_key",),
        columns=(
            column("patient_key", LongType(), "Key.", nullable=False),
            column("id_card_no", StringType(), "身份证号.", phi=Phi.IDENTIFIER),
            column("name", StringType(), "Name.", phi=Phi.NAME),
            column("phone", StringType(), "Phone.", phi=Phi.CONTACT),
            column(
                "identifiers",
                MapType(StringType(), StringType()),
                "Identifiers.",
                phi=Phi.IDENTIFIER,
            ),
            column("remark", StringType(), "Not encrypted (control)."),
        ),
    )


@pytest.fixture
def encrypted(
    spark: SparkSession, settings: Settings, tmp_path: Path, unique: str
) -> Iterator[tuple[TableSpec, Settings]]:
    spec = _spec(f"silver.enc_patient_{unique}")
    cfg = settings.model_copy(deep=True)
    cfg.security.encryption_enabled = True
    cfg.security.secrets_dir = tmp_path / "secrets"
    cfg.security.encryption_phi_tags = ["contact"]  # phone by tag ...
    cfg.security.encryption_columns = {spec.name: ["id_card_no", "name", "identifiers"]}  # ...
    # ... the rest by name. Only this test's table gets column keys: other tables are untouched.
    encryption.enable_for_session(spark, cfg)
    try:
        yield spec, cfg
    finally:
        encryption.disable_for_session(spark)
        spark.sql(f"DROP TABLE IF EXISTS {spec.name}")


def _files(spark: SparkSession, table: str) -> list[Path]:
    location = spark.sql(f"DESCRIBE DETAIL {table}").first()["location"]  # type: ignore[index]
    root = Path(location.removeprefix("file:"))
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_canaries_never_reach_disk_and_only_keyed_sessions_read(
    spark: SparkSession, encrypted: tuple[TableSpec, Settings]
) -> None:
    spec, cfg = encrypted
    key_file = encryption.key_file_path(cfg)
    ensure_table(spark, spec)  # created with the column keys, footer key and stats columns
    props = spark.sql(f"DESCRIBE DETAIL {spec.name}").first()["properties"]  # type: ignore[index]
    assert encryption.table_properties(spark, spec).items() <= props.items()
    assert encryption.protect_table(spark, spec) == []  # already protected: idempotent
    assert key_file.stat().st_mode & 0o777 == 0o600

    schema = spark.table(spec.name).schema
    first = [(1, ID_CARD, NAME, PHONE, {"cn-id": ID_CARD}, CONTROL)]
    spark.createDataFrame(first, schema).write.insertInto(spec.name)  # a plain Delta append
    changed = [
        (1, ID_CARD, NAME, PHONE_2, {"cn-id": ID_CARD}, CONTROL),
        (2, ID_CARD_2, NAME, PHONE, {"cn-id": ID_CARD_2}, CONTROL),
    ]
    upsert(spark, spec, spark.createDataFrame(changed, schema))  # CDF pre/post images

    # Authorized read (a session with the settings): transparent.
    rows = {r["patient_key"]: r for r in spark.table(spec.name).collect()}
    assert rows[1]["id_card_no"] == ID_CARD
    assert rows[1]["phone"] == PHONE_2
    assert rows[2]["identifiers"] == {"cn-id": ID_CARD_2}
    assert rows[2]["name"] == NAME
    feed = (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", 0)
        .table(spec.name)
    )
    assert {r["phone"] for r in feed.where("_change_type = 'update_preimage'").collect()} == {PHONE}

    # No canary in any byte of the table's folder.
    files = _files(spark, spec.name)
    kinds = {("_change_data" in str(p), "_delta_log" in str(p)) for p in files}
    assert (True, False) in kinds
    assert (False, True) in kinds
    data = [p for p in files if p.suffix == ".parquet" and "_delta_log" not in str(p)]
    assert any(CONTROL.encode() in p.read_bytes() for p in data)  # the scan does see text
    for path in files:
        blob = path.read_bytes()
        leaked = [c for c in CANARIES if c.encode() in blob]
        assert not leaked, f"{path.name} holds {len(leaked)} canary value(s)"
    # Key material is in the key file only: never in the session's configuration.
    keys = [ln.split(":", 1)[1] for ln in key_file.read_text().splitlines() if ":" in ln]
    conf = spark.sparkContext.getConf().toDebugString() + str(spark.conf.getAll)
    assert len(keys) == 2
    assert not [k for k in keys if k in conf]

    # A session without the keys: the read fails, with a catalogued error.
    encryption.disable_for_session(spark)
    with pytest.raises(LakehouseError) as refused, encryption.key_errors(spec.name):
        spark.table(spec.name).select("patient_key", "id_card_no").collect()
    assert refused.value.code is ErrorCode.ENC_KEY_UNAVAILABLE
    assert ID_CARD not in str(refused.value)


def test_session_conf_comes_from_settings_and_names_no_key(tmp_path: Path) -> None:
    cfg = Settings(home=tmp_path, data_dir=tmp_path / "var")  # type: ignore[call-arg]
    assert encryption.spark_conf(cfg) == {}
    assert encryption.extra_jars(cfg) == []
    cfg.security.encryption_enabled = True
    conf = encryption.spark_conf(cfg)
    assert conf["spark.hadoop.parquet.crypto.factory.class"].endswith(
        "PropertiesDrivenCryptoFactory"
    )
    assert conf["spark.hadoop.parquet.encryption.kms.client.class"] == encryption.KMS_CLASS
    assert conf["spark.hadoop.lakehouse.encryption.key.file"] == str(
        tmp_path / "var" / "secrets" / "parquet-master.keys"
    )
    selection = json.loads(conf[encryption.SELECTION])
    assert selection["columns"]["silver.patient"] == sorted(
        ["id_card_no", "passport_no", "name", "phone", "address"]
    )
    assert not (tmp_path / "var" / "secrets").exists()  # pure: nothing generated yet
    ids = encryption.master_keys(cfg)
    assert ids == ["lakehouse-footer", "lakehouse-phi"]
    values = [ln.split(":", 1)[1] for ln in encryption.key_file_path(cfg).read_text().splitlines()
              if ":" in ln]  # fmt: skip
    assert not [v for v in values if v in json.dumps(conf)]
    encryption.key_file_path(cfg).chmod(0o644)
    with pytest.raises(LakehouseError) as loose:
        encryption.master_keys(cfg)
    assert loose.value.code is ErrorCode.ENC_KEY_FILE


def test_parquet_leaf_paths_cover_maps_lists_and_structs() -> None:
    from pyspark.sql.types import ArrayType, StructField, StructType

    nested = StructType([StructField("a", StringType()), StructField("b", ArrayType(LongType()))])
    assert encryption.leaf_paths("x", StringType()) == ["x"]
    assert encryption.leaf_paths("ids", MapType(StringType(), StringType())) == [
        "ids.key_value.key",
        "ids.key_value.value",
    ]
    assert encryption.leaf_paths("s", nested) == ["s.a", "s.b.list.element"]
