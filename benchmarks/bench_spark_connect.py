"""What the Spark Connect gateway costs against Spark Connect itself (the peer: the same
server, reached directly with its token, no guard, no audit).

``python -m benchmarks bench_spark_connect`` or ``python -m benchmarks.bench_spark_connect
[--rows N] [--requests R]``.

One Spark session (local[2]) on a temporary lakehouse: a Delta table of ``--rows`` lab-like
rows and a view over it in ``deid``, an analyst with a session token, the Spark Connect
server in the same JVM and the gateway (``ConnectGateway``) in a thread, over TLS (its
default, the generated self-signed certificate) and, beside it, over plain gRPC on loopback.
Timed, alternating the paths (medians of three): ``toPandas()`` of the whole view, and
``--requests`` small requests (``limit(1).collect()``: sign-in, guard, audit, one Spark job)
each way.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.analyst_view import PASSWORD, analyst_view
from lakehouse.governance.tls import ca_file, server_tls
from lakehouse.settings import SparkConnectSettings
from serving.spark_connect import ConnectGateway
from serving.spark_connect.upstream import start_upstream


def _median(fn: Callable[[], Any], times: int) -> float:
    spent = []
    for _ in range(times):
        t0 = time.perf_counter()
        fn()
        spent.append(time.perf_counter() - t0)
    return statistics.median(spent)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_spark_connect", description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args(argv)
    from pyspark.sql.connect.session import SparkSession as RemoteSession

    with tempfile.TemporaryDirectory(prefix="bench_spark_connect_") as tmp:
        lake = analyst_view(Path(tmp), args.rows)
        spark, cfg, view = lake.spark, lake.cfg, lake.view
        audit, access, identity = lake.audit, lake.access, lake.identity
        token = identity.login("ana", PASSWORD)[0]
        os.environ["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"] = str(ca_file(cfg))
        upstream = start_upstream(spark)
        tls_cfg = SparkConnectSettings(port=_free_port())
        plain_cfg = SparkConnectSettings(port=_free_port(), tls=False)
        with (
            ConnectGateway(spark, tls_cfg, tls=server_tls(cfg), access=access,
                           identity=identity) as gw_tls,
            ConnectGateway(spark, plain_cfg, tls=None, access=access, identity=identity) as gw,
        ):  # fmt: skip
            sessions = {
                "direct (Spark Connect, no gateway)": RemoteSession.builder.remote(
                    f"sc://localhost:{upstream.port}/;token={upstream.token}"
                ).create(),
                "gateway, plain gRPC on loopback": RemoteSession.builder.remote(
                    f"sc://localhost:{gw.port}/;token={token}"
                ).create(),
                "gateway, TLS": RemoteSession.builder.remote(
                    f"sc://localhost:{gw_tls.port}/;use_ssl=true;token={token}"
                ).create(),
            }
            for s in sessions.values():  # warm up: sessions, plan cache, JIT
                assert len(s.table(view.name).toPandas()) == args.rows
            full: dict[str, list[float]] = {k: [] for k in sessions}
            small: dict[str, list[float]] = {k: [] for k in sessions}
            for _ in range(3):  # alternated: the machine's other load falls on all alike
                for name, s in sessions.items():
                    full[name].append(_median(lambda s=s: s.table(view.name).toPandas(), 1))
                    small[name].append(
                        _median(lambda s=s: s.table(view.name).limit(1).collect(), args.requests)
                    )
            for s in sessions.values():
                s.stop()
        base_full = statistics.median(full["direct (Spark Connect, no gateway)"])
        base_small = statistics.median(small["direct (Spark Connect, no gateway)"])
        print(f"rows: {args.rows:,}; small requests: {args.requests} per round, 3 rounds")
        print("| path | toPandas() | rows/s | vs direct | limit(1).collect() | vs direct |")
        print("|---|---|---|---|---|---|")
        for name in sessions:
            f, m = statistics.median(full[name]), statistics.median(small[name])
            print(
                f"| {name} | {f:.2f} s | {args.rows / f:,.0f} | {f / base_full:.2f}x "
                f"| {m * 1000:.0f} ms | {m / base_small:.2f}x |"
            )
        reads = sum(1 for r in audit.rows if r["action"] == "read")
        print(f"audit read events through the gateways: {reads}")
    return 0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    raise SystemExit(main())
