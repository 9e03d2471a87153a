"""`python -m benchmarks [NAME ...]`: run every `benchmarks/bench_*.py` (or the named ones).

Each benchmark module has `main(argv) -> int` and prints its own figures and ratio lines.
Tests never assert on wall-clock time; these numbers go into docs and notes with the
command that produced them.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path


def discover() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))


def main(argv: list[str]) -> int:
    names = argv or discover()
    if not names:
        print("no benchmarks yet")
        return 0
    failed = 0
    for name in names:
        print(f"== {name}")
        t0 = time.perf_counter()
        status = importlib.import_module(f"benchmarks.{name}").main([])
        print(f"== {name}: exit {status} in {time.perf_counter() - t0:.1f}s\n")
        failed += status != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
