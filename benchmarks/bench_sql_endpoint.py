"""Rows per second out of the SQL endpoint (beeline, PyHive) against Spark itself.

``python -m benchmarks bench_sql_endpoint`` or ``python -m benchmarks.bench_sql_endpoint
[--rows N] [--page P] [--connects C]``.

One Spark session (local[2]) on a temporary lakehouse: a Delta table of ``--rows`` lab-like
rows and a view over it in ``deid``, an analyst account, and the gateway (``SqlGateway``,
``max_rows`` = ``--rows``, ``page_rows`` = ``--page``) in a thread. The same query is timed
four ways: the guarded SQL collected by Spark directly (what the gateway's read costs), the
gateway's read path without a client (``SqlGateway.execute``: guard, audit, collect),
PyHive fetching everything, and beeline (the Hive JDBC driver) writing CSV to /dev/null,
with the driver's default fetch size and with ``;fetchSize=PAGE`` in the URL; beeline's
figures have its JVM start subtracted (a ``SELECT 1`` run timed beside them).

The gateway serves TLS (its default; the generated self-signed certificate, beeline with a
JKS truststore). A second gateway on the same session serves plain TCP on loopback, to
price TLS: ``--connects`` PyHive connections to each (TLS handshake, SASL sign-in,
OpenSession, ``SELECT 1`` fetched, close; the median), the verified handshake alone, and
the same PyHive fetch three times over each (the median; the two alternate), and beeline
with ``;fetchSize=PAGE`` over plain TCP.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyspark
from pyhive import hive

from benchmarks.analyst_view import PASSWORD, analyst_view
from lakehouse.governance.sessions import Principal
from lakehouse.governance.tls import ca_file, server_context
from lakehouse.settings import SqlEndpointSettings
from serving.sql_endpoint import SqlGateway
from tests.support.hive_tls import connect_tls, jdbc_url, truststore

BEELINE = Path(pyspark.__file__).parent / "bin" / "beeline"  # the Hive JDBC driver's CLI


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _beeline(base: str, sql: str, fetch: int | None = None) -> float:
    url = base + (f";fetchSize={fetch}" if fetch else "")
    t0 = time.perf_counter()
    subprocess.run(
        [str(BEELINE), "-u", url, "-n", "ana",
         "-p", PASSWORD, "--outputformat=csv2", "--silent=true", "--incremental=true",
         "-e", sql],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=900,
    )  # fmt: skip
    return time.perf_counter() - t0


def _first_query(connect: Callable[[], Any]) -> float:
    """Seconds of connect, sign in, ``SELECT 1`` fetched, close."""
    t0 = time.perf_counter()
    with connect() as conn:
        cur = conn.cursor()
        cur.execute("SELECT 1 AS one")
        assert cur.fetchall() == [(1,)]
    return time.perf_counter() - t0


def _handshake(port: int, ca: Path, times: int) -> float:
    """Median seconds of a TCP connect and a verified TLS handshake with the gateway."""
    ctx = ssl.create_default_context(cafile=str(ca))
    spent = []
    for _ in range(times):
        t0 = time.perf_counter()
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            ctx.wrap_socket(raw, server_hostname="127.0.0.1"),
        ):
            spent.append(time.perf_counter() - t0)
    return statistics.median(spent)


def _fetch(connect: Callable[[], Any], sql: str, page: int) -> tuple[float, int]:
    """Seconds and rows of one PyHive ``fetchall()`` of ``sql``."""
    t0 = time.perf_counter()
    with connect() as conn:
        cur = conn.cursor()
        cur.arraysize = page
        cur.execute(sql)
        got = len(cur.fetchall())
    return time.perf_counter() - t0, got


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_sql_endpoint", description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--page", type=int, default=10_000)
    parser.add_argument("--connects", type=int, default=20)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_sql_endpoint_") as tmp:
        root = Path(tmp)
        lake = analyst_view(root, args.rows)
        spark, cfg, view = lake.spark, lake.cfg, lake.view
        access, identity = lake.access, lake.identity
        sql = f"SELECT lab_id, loinc, value FROM {view.name}"
        ana = Principal("ana", "analyst", institutions=("H1",))
        guarded = access.guard.rewrite(ana, sql).sql
        spark.sql(guarded).collect()  # warm up
        t0 = time.perf_counter()
        n = len(spark.sql(guarded).collect())
        direct = time.perf_counter() - t0
        gw_cfg = SqlEndpointSettings(port=_free_port(), max_rows=args.rows, page_rows=args.page)
        plain_cfg = gw_cfg.model_copy(update={"port": _free_port(), "tls": False})
        ca = ca_file(cfg)
        with (
            SqlGateway(
                spark, gw_cfg, tls=server_context(cfg), access=access, identity=identity
            ) as gateway,
            SqlGateway(spark, plain_cfg, tls=None, access=access, identity=identity) as plain,
        ):
            t0 = time.perf_counter()
            gateway.execute(ana, sql)
            path = time.perf_counter() - t0

            def tls_conn() -> Any:
                return connect_tls("127.0.0.1", gateway.port, "ana", PASSWORD, cafile=ca)

            def plain_conn() -> Any:
                return hive.connect(
                    host="127.0.0.1", port=plain.port, username="ana", password=PASSWORD,
                    auth="CUSTOM",
                )  # fmt: skip

            # Alternated, medians: the machine's other load falls on both alike.
            firsts: dict[str, list[float]] = {"tls": [], "plain": []}
            for _ in range(args.connects):
                firsts["plain"].append(_first_query(plain_conn))
                firsts["tls"].append(_first_query(tls_conn))
            connect_plain = statistics.median(firsts["plain"])
            connect_tls_s = statistics.median(firsts["tls"])
            handshake = _handshake(gateway.port, ca, args.connects)
            fetches: dict[str, list[float]] = {"tls": [], "plain": []}
            for _ in range(3):
                fetches["plain"].append(_fetch(plain_conn, sql, args.page)[0])
                spent, got = _fetch(tls_conn, sql, args.page)
                fetches["tls"].append(spent)
            pyhive_plain = statistics.median(fetches["plain"])
            pyhive = statistics.median(fetches["tls"])
            base = jdbc_url("127.0.0.1", gateway.port, truststore(ca, root))
            start = _beeline(base, "SELECT 1;")
            whole = _beeline(base, sql + ";")
            paged = _beeline(base, sql + ";", args.page)
            plain_url = f"jdbc:hive2://127.0.0.1:{plain.port}/default"
            paged_plain = _beeline(plain_url, sql + ";", args.page)
        spark.stop()
    assert got == n == args.rows
    beeline, beeline_paged = max(whole - start, 1e-9), max(paged - start, 1e-9)
    print(f"rows: {n}, page: {args.page}")
    print(f"spark collect (guarded SQL): {direct:.2f} s, {n / direct:,.0f} rows/s")
    print(f"gateway read path (guard, audit, collect): {path:.2f} s, {n / path:,.0f} rows/s")
    print(f"pyhive fetchall over TLS (median of 3): {pyhive:.2f} s, {n / pyhive:,.0f} rows/s")
    print(
        f"pyhive fetchall over plain TCP (median of 3): {pyhive_plain:.2f} s, "
        f"{n / pyhive_plain:,.0f} rows/s"
    )
    print(
        f"connect, sign in, SELECT 1, close (median of {args.connects}): TLS "
        f"{1000 * connect_tls_s:.1f} ms, plain {1000 * connect_plain:.1f} ms; the TLS "
        f"handshake alone {1000 * handshake:.1f} ms"
    )
    print(
        f"beeline csv2, driver's default fetch size: {whole:.2f} s with its JVM start "
        f"({start:.2f} s for SELECT 1): {n / beeline:,.0f} rows/s"
    )
    print(
        f"beeline csv2, ;fetchSize={args.page} in the URL: {paged:.2f} s: "
        f"{n / beeline_paged:,.0f} rows/s"
    )
    print(
        f"beeline csv2, ;fetchSize={args.page}, plain TCP: {paged_plain:.2f} s: "
        f"{n / max(paged_plain - start, 1e-9):,.0f} rows/s"
    )
    print(
        f"ratio to spark collect: beeline {direct / beeline:.2f}x, "
        f"beeline with fetchSize {direct / beeline_paged:.2f}x, pyhive {direct / pyhive:.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
