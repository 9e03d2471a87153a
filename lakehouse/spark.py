"""The only place a SparkSession is built.

Embedded default: ``local[*]``, Delta Lake's SQL extension and catalog, Hive support on an
embedded Derby metastore under ``<data_dir>/metastore_db`` and a warehouse under
``<data_dir>/warehouse``, so a table written by one process is visible by name to the next.
A cluster master, an external metastore (Derby network server, PostgreSQL over JDBC, or a
thrift metastore service) and remote storage come from :class:`~lakehouse.settings.Settings`
alone; no job changes.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import resources

from pyspark.sql import SparkSession

from lakehouse.environment import check_storage, find_jars, find_java, use_hospital_zone
from lakehouse.errors import ErrorCode, LakehouseError, error
from lakehouse.governance import encryption
from lakehouse.logging import silence_data_loggers
from lakehouse.settings import Settings

logger = logging.getLogger(__name__)


def spark_conf(cfg: Settings) -> dict[str, str]:
    """Every Spark setting the session gets, derived from ``cfg`` (pure; testable)."""
    s = cfg.spark
    cached = find_jars(cfg)
    jars = [str(p) for p in cached] + list(s.extra_jars) + encryption.extra_jars(cfg)
    # JDBC drivers must be on the driver's own class path: the Hive metastore client
    # (DataNucleus) loads them through the system class loader, which spark.jars misses;
    # source extraction (lakehouse.sources.jdbc) finds them there too.
    jdbc_drivers = [
        str(p) for p in cached if p.name.startswith(("derbyclient", "postgresql", "sqlite-jdbc"))
    ]
    log4j = resources.files("lakehouse") / "resources" / "log4j2.properties"
    java_opts = [
        f"-Dlog4j.configurationFile=file:{log4j}",
        f"-Dderby.system.home={cfg.logs_dir}",
        f"-Duser.timezone={cfg.timezone}",
    ]
    conf: dict[str, str] = {
        "spark.app.name": s.app_name,
        "spark.jars": ",".join(jars),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.warehouse.dir": cfg.warehouse,
        "spark.sql.session.timeZone": cfg.timezone,
        # Python workers on executors turn timestamps into naive datetimes in their local
        # zone, like the driver (use_hospital_zone): the same zone everywhere.
        "spark.executorEnv.TZ": cfg.timezone,
        "spark.sql.shuffle.partitions": str(s.shuffle_partitions),
        "spark.sql.adaptive.enabled": "true",
        "spark.ui.enabled": str(s.ui_enabled).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.memory": s.driver_memory,
        "spark.driver.extraJavaOptions": " ".join(java_opts),
        "spark.driver.extraClassPath": ":".join(jdbc_drivers),
        # Python workers run the driver's interpreter (the project's .venv) unless the
        # cluster's executors have it elsewhere.
        "spark.pyspark.python": s.python or sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        # pyspark 4.2.0: Arrow-optimised Python UDFs over a Parquet/Delta scan can hang
        # (SPARK-58241, fixed in 4.2.1; reproduced here). docs/adr/0001.
        "spark.sql.execution.pythonUDF.arrow.enabled": "false",
        # Delta: schema evolution in MERGE is explicit (TableSpec), never implicit.
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        "spark.databricks.delta.retentionDurationCheck.enabled": "true",
        # Delta 4.4 keeps a copy of a small table's file list in each commit's checksum (.crc)
        # and, when any of the session/JVM time zones is not UTC (ours is the hospital's),
        # checks that copy after every commit by rebuilding the table's whole state: 2 more
        # Spark jobs per commit (SnapshotManagement.createSnapshotAfterCommit ->
        # validateFileListAgainstCRC; allFilesInCrc.verificationMode.forceOnNonUTC). The copy
        # is used for nothing but such checks (Snapshot.allFiles always rebuilds state), so
        # leaving it out removes the check with nothing left to check; the checksum's counts,
        # sizes, protocol and metadata stay. A 1-row append: 3 -> 1 jobs, ~1.7 s -> ~0.3 s on
        # 2 busy cores; append + read 5 -> 4 jobs. benchmarks/landing.py's delta_floor.
        "spark.databricks.delta.allFilesInCrc.enabled": "false",
    }
    if s.is_local:
        host = s.driver_host or "127.0.0.1"
        conf["spark.driver.host"] = host
        conf["spark.driver.bindAddress"] = host
        # The Delta log of a local table is small: 50 snapshot partitions only cost time.
        conf["spark.databricks.delta.snapshotPartitions"] = str(min(s.shuffle_partitions, 8))
    elif s.driver_host:
        conf["spark.driver.host"] = s.driver_host
    conf.update(_metastore_conf(cfg))
    # Parquet modular encryption of the chosen columns (docs/adr/0014): paths and ids only.
    conf.update(encryption.spark_conf(cfg))
    conf.update(s.conf)
    return conf


def _metastore_conf(cfg: Settings) -> dict[str, str]:
    m = cfg.metastore
    if m.kind == "in-memory":
        return {"spark.sql.catalogImplementation": "in-memory"}
    conf = {"spark.sql.catalogImplementation": "hive"}
    jdo = "spark.hadoop.javax.jdo.option."
    if m.kind == "derby-embedded":
        conf[jdo + "ConnectionURL"] = f"jdbc:derby:;databaseName={cfg.metastore_dir};create=true"
        conf[jdo + "ConnectionDriverName"] = "org.apache.derby.jdbc.EmbeddedDriver"
        # A Derby database another process has booted stays booted: Hive's default of 10
        # attempts 2 s apart only delays LH-ENV-005 by ~20 s (doctor, every job's start).
        conf["spark.hadoop.hive.hmshandler.retry.attempts"] = "1"
    elif m.kind == "derby-server":
        conf[jdo + "ConnectionURL"] = (
            f"jdbc:derby://{m.derby_host}:{m.derby_port}/{cfg.metastore_dir};create=true"
        )
        conf[jdo + "ConnectionDriverName"] = "org.apache.derby.jdbc.ClientDriver"
    elif m.kind == "jdbc":
        assert m.jdbc_url is not None  # checked by Settings
        conf[jdo + "ConnectionURL"] = m.jdbc_url
        conf[jdo + "ConnectionDriverName"] = m.jdbc_driver
        # The schema is created on first use; a production metastore pins it with schematool.
        conf["spark.hadoop.datanucleus.schema.autoCreateAll"] = "true"
        conf["spark.hadoop.hive.metastore.schema.verification"] = "false"
    elif m.kind == "thrift":
        assert m.thrift_uris is not None
        conf["spark.hadoop.hive.metastore.uris"] = m.thrift_uris
    if m.user:
        conf[jdo + "ConnectionUserName"] = m.user
    if m.password:
        conf[jdo + "ConnectionPassword"] = m.password.get_secret_value()
    return conf


def build_spark(cfg: Settings) -> SparkSession:
    """Start (or return the running) Spark session for ``cfg``.

    Checks Java, the jar cache and storage first, so a missing piece is reported with its
    catalogued code rather than as a JVM stack trace.
    """
    find_java(cfg)
    check_storage(cfg)
    # Before the JVM starts: it and the Python workers inherit TZ.
    use_hospital_zone(cfg.timezone)
    cfg.logs_dir.mkdir(parents=True, exist_ok=True)
    encryption.prepare(cfg)  # key file and key client jar, before the JVM starts
    conf = spark_conf(cfg)
    builder = SparkSession.builder.master(cfg.spark.master)
    for key, value in conf.items():
        builder = builder.config(key, value)
    if cfg.metastore.kind != "in-memory":
        builder = builder.enableHiveSupport()
    try:
        spark = builder.getOrCreate()
    except LakehouseError:
        raise
    except Exception as exc:  # Py4J/JVM start-up failures surface as many types
        raise error(ErrorCode.SPARK_START_FAILED, reason=type(exc).__name__) from exc
    spark.sparkContext.setLogLevel(cfg.spark.log_level)
    silence_data_loggers()  # failed queries' messages can quote data values
    # pyspark 4.2 takes the Python workers' interpreter from PYSPARK_PYTHON when a Python
    # driver builds the context and ignores spark.pyspark.python: without this, workers
    # start a bare `python3` lacking the project's packages (pyarrow for mapInArrow).
    spark.sparkContext.pythonExec = conf["spark.pyspark.python"]
    if cfg.metastore.kind != "in-memory":
        # Touch the metastore now: a locked embedded Derby or an unreachable server is
        # reported here with its code, not later inside some job's first query.
        check_catalog(spark)
    logger.info(
        "spark %s started: master=%s metastore=%s warehouse=%s",
        spark.version,
        cfg.spark.master,
        cfg.metastore.kind,
        cfg.warehouse,
    )
    return spark


def check_catalog(spark: SparkSession) -> list[str]:
    """List the catalog's schemas: proves the metastore answers (used by doctor)."""
    try:
        return sorted(db.name for db in spark.catalog.listDatabases())
    except Exception as exc:
        kind = spark.conf.get("spark.sql.catalogImplementation") or "?"
        spark.stop()  # a session without its catalog is of no use to any caller
        reason = type(exc).__name__
        # The JVM trace (with its "Caused by" chain) names Derby's lock; the message alone not.
        trace = f"{exc}\n{getattr(exc, '_stackTrace', '')}"
        if "Another instance of Derby may have already booted" in trace:
            reason = "the embedded Derby metastore is in use by another process"
        raise error(ErrorCode.CATALOG_UNAVAILABLE, name=kind, reason=reason) from exc


@contextmanager
def session_conf(spark: SparkSession, conf: Mapping[str, str]) -> Iterator[None]:
    """``conf`` set on the running session for the duration of the block, each key's
    earlier value (or its absence) restored after, whatever the block raises."""
    before = {key: spark.conf.get(key, None) for key in conf}
    for key, value in conf.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, old in before.items():
            if old is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, old)
