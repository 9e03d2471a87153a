"""Encryption at rest: Parquet modular encryption of the most sensitive columns (docs/adr/0014).

The Spark session (lakehouse/spark.py) turns it on from settings alone: Parquet's
``PropertiesDrivenCryptoFactory`` with a KMS client class (default
``lakehouse.kms.LakehouseFileKms``, compiled once from
``lakehouse/resources/LakehouseFileKms.java`` into the jar cache) that reads master keys from
a key file generated 0600 under the secrets folder. Which columns of a table are encrypted
is a table property (``parquet.encryption.column.keys``) that Delta hands to the Parquet
writer of every data and change-data file; :func:`table_properties` derives it from the
settings (by PHI tag and by name) and also keeps the encrypted columns out of the min/max
statistics Delta writes in plaintext into ``_delta_log``.

Readers need nothing but a session with the same settings: decryption is transparent (EMPI,
de-identified views and gold keep working). A session without the keys fails the read;
:func:`key_errors` turns that failure into ``LH-ENC-003``. Key material is never put into
Spark's configuration, logs or messages: only the key file's path and key ids are.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql.types import ArrayType, DataType, MapType, StructType

from lakehouse.errors import ErrorCode, LakehouseError, error
from lakehouse.settings import Settings, environment_path
from lakehouse.tables.spec import STATS_COLUMNS_PROPERTY, TableSpec, quote_name, stats_column_list

logger = logging.getLogger(__name__)

KEY_FILE_NAME = "parquet-master.keys"
KMS_CLASS = "lakehouse.kms.LakehouseFileKms"
_KMS_SOURCE = "LakehouseFileKms.java"

#: Hadoop settings (as runtime SQL conf or with the ``spark.hadoop.`` prefix at start-up).
FACTORY = "parquet.crypto.factory.class"
FACTORY_CLASS = "org.apache.parquet.crypto.keytools.PropertiesDrivenCryptoFactory"
KMS_CLIENT = "parquet.encryption.kms.client.class"
KMS_URL = "parquet.encryption.kms.instance.url"
KEY_FILE = "lakehouse.encryption.key.file"
#: Session conf the table-property derivation reads (set from settings by spark.py).
SELECTION = "spark.lakehouse.encryption.selection"
#: Table properties Delta passes to the Parquet writer.
COLUMN_KEYS = "parquet.encryption.column.keys"
FOOTER_KEY = "parquet.encryption.footer.key"
STATS_COLUMNS = STATS_COLUMNS_PROPERTY

_CRYPTO_MARKERS = ("ParquetCryptoRuntimeException", "KeyAccessDeniedException", "LH-ENC:")


def hadoop_settings(cfg: Settings) -> dict[str, str]:
    """The Hadoop settings of decryption and encryption (no key material: a path and ids)."""
    sec = cfg.security
    conf = {
        FACTORY: FACTORY_CLASS,
        KMS_CLIENT: sec.encryption_kms_client_class,
        KEY_FILE: str(key_file_path(cfg)),
        "parquet.encryption.data.key.length.bits": "256",
        "parquet.encryption.kek.length.bits": "256",
    }
    if sec.encryption_kms_instance_url:
        conf[KMS_URL] = sec.encryption_kms_instance_url
    return conf


def selection(cfg: Settings) -> str:
    """The column selection and key ids as one JSON value (the session conf ``SELECTION``)."""
    sec = cfg.security
    return json.dumps(
        {
            "footer_key": sec.encryption_footer_key_id,
            "column_key": sec.encryption_column_key_id,
            "phi_tags": sorted(sec.encryption_phi_tags),
            "columns": {t: sorted(c) for t, c in sorted(sec.encryption_columns.items())},
        },
        ensure_ascii=False,
    )


def spark_conf(cfg: Settings) -> dict[str, str]:
    """Start-up Spark conf of encryption (empty when ``security.encryption_enabled`` is off)."""
    if not cfg.security.encryption_enabled:
        return {}
    conf = {f"spark.hadoop.{k}": v for k, v in hadoop_settings(cfg).items()}
    conf[SELECTION] = selection(cfg)
    return conf


def extra_jars(cfg: Settings) -> list[str]:
    """The key client's jar for ``spark.jars`` when the default file KMS is used."""
    sec = cfg.security
    if not sec.encryption_enabled or sec.encryption_kms_client_class != KMS_CLASS:
        return []
    return [str(kms_jar_path(cfg))]


def prepare(cfg: Settings) -> None:
    """Create what the session needs before it starts: the key file and the key client's jar."""
    if not cfg.security.encryption_enabled:
        return
    if cfg.security.encryption_kms_client_class == KMS_CLASS:
        master_keys(cfg)
        build_kms_jar(cfg)


def enable_for_session(spark: SparkSession, cfg: Settings) -> None:
    """Turn encryption on in a running session (notebooks, tests); spark.py does it at start."""
    prepare(cfg)
    if cfg.security.encryption_kms_client_class == KMS_CLASS:
        spark.sql(f"ADD JAR '{kms_jar_path(cfg)}'")
    for key, value in hadoop_settings(cfg).items():
        spark.conf.set(key, value)
    spark.conf.set(SELECTION, selection(cfg))


def disable_for_session(spark: SparkSession) -> None:
    """Undo :func:`enable_for_session` (encrypted tables then fail with ``LH-ENC-003``)."""
    for key in (FACTORY, KMS_CLIENT, KEY_FILE, KMS_URL, SELECTION):
        spark.conf.unset(key)


# --- keys -------------------------------------------------------------------------------------


def key_file_path(cfg: Settings) -> Path:
    sec = cfg.security
    if sec.encryption_key_file is not None:
        return sec.encryption_key_file
    assert sec.secrets_dir is not None
    return sec.secrets_dir / KEY_FILE_NAME


def master_keys(cfg: Settings) -> list[str]:
    """The key ids in the key file, generating the file (0600) when it is absent.

    The generated file holds a 256-bit key for the footer key id and the column key id.
    Key values are read only to check them, never returned or logged.
    """
    path = key_file_path(cfg)
    sec = cfg.security
    wanted = [sec.encryption_footer_key_id, sec.encryption_column_key_id]
    generated = cfg.security.encryption_key_file is None
    try:
        if not path.exists():
            if not generated:
                raise error(ErrorCode.ENC_KEY_FILE, path=str(path), reason="the file is missing")
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            lines = "".join(
                f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}\n"
                for key_id in wanted
            )
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process created it first
                pass
            else:
                with os.fdopen(fd, "w") as out:
                    out.write("# Parquet master keys of the lakehouse (docs/adr/0014)\n" + lines)
                logger.info("generated the Parquet master key file %s", path)
        if path.stat().st_mode & 0o077:
            raise error(
                ErrorCode.ENC_KEY_FILE,
                path=str(path),
                reason="readable by group or others (must be 0600)",
            )
        ids = []
        for line in path.read_text(encoding="utf-8").splitlines():
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            key_id, sep, value = text.partition(":")
            try:
                raw = base64.b64decode(value.strip(), validate=True) if sep else b""
            except ValueError:
                raw = b""
            if len(raw) not in (16, 24, 32):
                raise error(
                    ErrorCode.ENC_KEY_FILE,
                    path=str(path),
                    reason="a line is not '<key id>:<base64 of a 16, 24 or 32 byte key>'",
                )
            ids.append(key_id.strip())
    except OSError as exc:
        raise error(ErrorCode.ENC_KEY_FILE, path=str(path), reason=type(exc).__name__) from exc
    missing = [k for k in wanted if k not in ids]
    if missing:
        raise error(
            ErrorCode.ENC_KEY_FILE, path=str(path), reason=f"no key with id {', '.join(missing)}"
        )
    return ids


def kms_jar_path(cfg: Settings) -> Path:
    """``<jars_dir>/lakehouse-kms/lakehouse-kms-<source hash>.jar``: a new source, a new jar.

    In a subfolder: the jar cache's own listing (``find_jars``) never picks up stale builds.
    """
    source = resources.files("lakehouse") / "resources" / _KMS_SOURCE
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    return cfg.spark.jars_dir / "lakehouse-kms" / f"lakehouse-kms-{digest}.jar"


def build_kms_jar(cfg: Settings) -> Path:
    """Compile the file KMS client once into the jar cache (needs a JDK's javac and jar)."""
    target = kms_jar_path(cfg)
    if target.exists():
        return target
    tools = _jdk_tools(cfg)
    import pyspark

    spark_jars = Path(pyspark.__file__).parent / "jars"
    source = resources.files("lakehouse") / "resources" / _KMS_SOURCE
    with tempfile.TemporaryDirectory(prefix="lakehouse-kms-") as tmp:
        src = Path(tmp) / _KMS_SOURCE
        src.write_bytes(source.read_bytes())
        classes = Path(tmp) / "classes"
        steps = [
            [
                tools["javac"],
                "--release",
                "17",
                "-nowarn",
                "-cp",
                f"{spark_jars}/*",
                "-d",
                str(classes),
                str(src),
            ],
            [tools["jar"], "cf", str(Path(tmp) / target.name), "-C", str(classes), "."],
        ]
        for step in steps:
            run = subprocess.run(step, capture_output=True, text=True, timeout=120, check=False)
            if run.returncode != 0:
                raise error(
                    ErrorCode.ENC_KMS_CLIENT_UNAVAILABLE,
                    name=KMS_CLASS,
                    reason=f"{Path(step[0]).name} failed: {run.stderr.strip()[:300]}",
                )
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(Path(tmp) / target.name), target)
    logger.info("built the Parquet key client %s", target.name)
    return target


def _jdk_tools(cfg: Settings) -> dict[str, str]:
    found: dict[str, str] = {}
    for tool in ("javac", "jar"):
        if cfg.java_home is not None and (cfg.java_home / "bin" / tool).exists():
            found[tool] = str(cfg.java_home / "bin" / tool)
            continue
        path = shutil.which(tool, path=environment_path())
        if path is None:
            raise error(
                ErrorCode.ENC_KMS_CLIENT_UNAVAILABLE,
                name=KMS_CLASS,
                reason=f"`{tool}` not found (JAVA_HOME or PATH): a JDK is needed once",
            )
        found[tool] = path
    return found


# --- tables -----------------------------------------------------------------------------------


def leaf_paths(name: str, data_type: DataType) -> list[str]:
    """Parquet column paths of a Spark column as Spark writes them (3-level lists and maps)."""
    if isinstance(data_type, StructType):
        return [p for f in data_type.fields for p in leaf_paths(f"{name}.{f.name}", f.dataType)]
    if isinstance(data_type, ArrayType):
        return leaf_paths(f"{name}.list.element", data_type.elementType)
    if isinstance(data_type, MapType):
        return leaf_paths(f"{name}.key_value.key", data_type.keyType) + leaf_paths(
            f"{name}.key_value.value", data_type.valueType
        )
    return [name]


def encrypted_columns(spec: TableSpec, phi_tags: list[str], columns: list[str]) -> list[str]:
    """Top-level columns of ``spec`` to encrypt: tagged with one of ``phi_tags`` or named."""
    tags = set(phi_tags)
    named = set(columns)
    unknown = named - set(spec.column_names)
    if unknown:
        raise error(
            ErrorCode.CONFIG_INVALID,
            setting="security.encryption_columns",
            reason=f"columns {', '.join(sorted(unknown))} are not in {spec.name}",
        )
    return [
        c.name
        for c in spec.columns
        if c.name in named or (c.metadata.get("phi") is not None and c.metadata["phi"] in tags)
    ]


def table_properties(spark: SparkSession, spec: TableSpec) -> dict[str, str]:
    """Table properties that encrypt ``spec``'s chosen columns; empty when none are chosen.

    Read from the session's ``SELECTION`` conf (so settings alone decide). The statistics
    columns are the spec's (:meth:`TableSpec.stats_columns`) less the encrypted ones: Delta
    never writes an encrypted column's min/max into its log.
    """
    raw = spark.conf.get(SELECTION, None)
    if not raw:
        return {}
    chosen = json.loads(raw)
    cols = encrypted_columns(spec, chosen["phi_tags"], chosen["columns"].get(spec.name, []))
    if not cols:
        return {}
    paths = [p for c in cols for p in leaf_paths(c, spec.column(c).dataType)]
    return {
        COLUMN_KEYS: f"{chosen['column_key']}:{','.join(paths)}",
        FOOTER_KEY: chosen["footer_key"],
        # The spec's statistics columns (no raw payloads, none Delta refuses) less these.
        STATS_COLUMNS: stats_column_list(spec.stats_columns(without=cols)),
    }


def protect_table(spark: SparkSession, spec: TableSpec) -> list[str]:
    """Set :func:`table_properties` on ``spec``'s table (idempotent); the properties changed.

    Files written from then on are encrypted; files written before stay as they are until
    rewritten (docs/adr/0014: turning encryption on for a table that holds data).
    """
    wanted = table_properties(spark, spec)
    if not wanted:
        return []
    detail = spark.sql(f"DESCRIBE DETAIL {quote_name(spec.name)}").select("properties").first()
    stored: dict[str, str] = dict(detail["properties"] or {}) if detail else {}
    changed = {k: v for k, v in wanted.items() if stored.get(k) != v}
    if changed:
        assignments = ", ".join(f"{_lit(k)} = {_lit(v)}" for k, v in changed.items())
        spark.sql(f"ALTER TABLE {quote_name(spec.name)} SET TBLPROPERTIES ({assignments})")
        logger.info("table %s: encrypted columns set (%s)", spec.name, ", ".join(sorted(changed)))
    return sorted(changed)


def _lit(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def is_key_error(exc: BaseException) -> bool:
    """Whether ``exc`` (a Py4J/Spark error, its text and Java trace) is a decryption failure."""
    text = f"{exc}\n{getattr(exc, '_stackTrace', '')}"
    return any(marker in text for marker in _CRYPTO_MARKERS)


@contextmanager
def key_errors(table: str) -> Iterator[None]:
    """Raise ``LH-ENC-003`` for a read of ``table`` that fails for want of its keys."""
    try:
        yield
    except LakehouseError:
        raise
    except Exception as exc:
        if not is_key_error(exc):
            raise
        text = str(exc)
        if "No keys available" in text or "encrypted footer" in text:
            reason = "no decryption keys configured"
        elif "LH-ENC:" in text or "KeyAccessDenied" in text:
            reason = "the key client refused or lacks the master key"
        else:
            reason = "the file could not be decrypted"
        raise error(ErrorCode.ENC_KEY_UNAVAILABLE, table=table, reason=reason) from exc
