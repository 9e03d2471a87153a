"""Standby shipping lag under a synthetic commit load (no Spark).

``python -m benchmarks bench_standby`` or ``python -m benchmarks.bench_standby [--tables N]
[--rate R] [--seconds S] [--file-kb K]``.

Writer threads commit Delta-shaped versions as Delta does on a local file system (a data
file of ``--file-kb`` KiB written, then ``N.json`` naming it, written under a temporary name
and renamed) to ``--tables`` tables at ``--rate`` commits per second in all, for
``--seconds``; the shipper (``lakehouse.standby.Shipper``, default settings: one pass a
second) runs beside them in a thread. Printed: versions shipped, lag p50/p99/max (primary
commit file written to standby commit written), and whether every version arrived.
The Spark-written figure is the standby load test's (tests/integration/standby).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

from lakehouse.settings import Settings, StandbySettings
from lakehouse.standby import Shipper


def _writer(table: Path, period: float, stop: threading.Event, size: int) -> None:
    log = table / "_delta_log"
    log.mkdir(parents=True)
    version = 0
    payload = os.urandom(size)
    while not stop.is_set():
        t0 = time.monotonic()
        name = f"part-{uuid.uuid4()}.parquet"
        (table / name).write_bytes(payload)
        actions = [
            {"commitInfo": {"timestamp": int(time.time() * 1000), "operation": "WRITE"}},
            {"add": {"path": name, "size": size, "dataChange": True}},
        ]
        tmp = log / f".{version:020d}.json.{uuid.uuid4()}.tmp"
        tmp.write_text("\n".join(json.dumps(a) for a in actions))
        os.rename(tmp, log / f"{version:020d}.json")
        version += 1
        stop.wait(max(0.0, period - (time.monotonic() - t0)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_standby", description=__doc__)
    parser.add_argument("--tables", type=int, default=10)
    parser.add_argument("--rate", type=float, default=20.0, help="commits per second, all")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--file-kb", type=int, default=256)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_standby_") as tmp:
        root = Path(tmp)
        cfg = Settings(  # type: ignore[call-arg]
            data_dir=root / "primary",
            standby=StandbySettings(target=root / "standby"),  # type: ignore[call-arg]
        )
        warehouse = Path(cfg.warehouse)
        stop, done = threading.Event(), threading.Event()
        period = args.tables / args.rate
        writers = [
            threading.Thread(
                target=_writer,
                args=(warehouse / "bench.db" / f"t{i}", period, stop, args.file_kb * 1024),
            )
            for i in range(args.tables)
        ]
        with Shipper(cfg) as shipper:
            runner = threading.Thread(target=shipper.run, kwargs={"stop": done})
            runner.start()
            for w in writers:
                w.start()
            time.sleep(args.seconds)
            stop.set()
            for w in writers:
                w.join()
            committed = {
                f"bench.t{i}": max(
                    int(p.name[:20])
                    for p in (warehouse / "bench.db" / f"t{i}" / "_delta_log").glob("*.json")
                )
                for i in range(args.tables)
            }
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and any(
                (shipper.tables.get(n) is None or shipper.tables[n].standby_version != v)
                for n, v in committed.items()
            ):
                time.sleep(0.1)
            done.set()
            runner.join()
            lag = shipper.status()["lag"]
        complete = all(shipper.tables[n].standby_version == v for n, v in committed.items())
        total = sum(v + 1 for v in committed.values())
        print(
            f"standby: {args.tables} tables, {total} versions of {args.file_kb} KiB in "
            f"{args.seconds:.0f} s ({total / args.seconds:.1f}/s), shipped {lag['samples']}; "
            f"lag p50 {lag['p50_s']} s, p99 {lag['p99_s']} s, max {lag['max_s']} s; "
            f"all shipped: {complete}"
        )
        return 0 if complete else 1


if __name__ == "__main__":
    raise SystemExit(main())
