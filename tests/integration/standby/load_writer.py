"""A continuous Delta writer for the standby load test: its own Spark process.

``python -m tests.integration.standby.load_writer TABLE_DIR SECONDS INTERVAL_S`` appends a
few rows to the Delta table in TABLE_DIR every INTERVAL_S seconds for SECONDS seconds (or
until killed), printing ``committed <version> <rows so far>`` after each commit. Settings
come from the environment (tests/support/processes.lakehouse_env): a small local Spark with
an in-memory catalog; the table is addressed by its path.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from lakehouse.settings import load_settings
from lakehouse.spark import build_spark


def main(argv: list[str]) -> int:
    table, seconds, interval = Path(argv[0]), float(argv[1]), float(argv[2])
    spark = build_spark(load_settings())
    batch = 0
    deadline = None
    while deadline is None or time.monotonic() < deadline:
        rows = [(batch * 10 + i, f"batch {batch}", float(i)) for i in range(3)]
        df = spark.createDataFrame(rows, "id long, note string, value double").coalesce(1)
        df.write.format("delta").mode("append").save(str(table))
        # Only this process writes the table: its newest commit file is the version.
        version = max(int(p.name[:20]) for p in (table / "_delta_log").glob("*.json"))
        print(f"committed {version} {(batch + 1) * 3}", flush=True)
        if deadline is None:
            deadline = time.monotonic() + seconds  # the load starts with the first commit
        batch += 1
        time.sleep(interval)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
