"""Synthetic hospital throughput and memory: patients/s and peak RSS.

``python -m benchmarks bench_synth`` or ``python benchmarks/bench_synth.py --patients 10000``.
Generation streams chunk by chunk, so peak RSS should stay flat as ``--patients`` grows.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from lakehouse.synthetic import HospitalConfig, generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_synth", description=__doc__)
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--sites", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--chunk-size", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None, help="keep the output here")
    args = parser.parse_args(argv)
    tmp = None
    out = args.out
    if out is None:
        tmp = tempfile.mkdtemp(prefix="bench_synth_")
        out = Path(tmp) / "hospital"
    config = HospitalConfig(
        patients=args.patients, sites=args.sites, seed=args.seed, chunk_size=args.chunk_size
    )
    t0 = time.perf_counter()
    report = generate(out, config)
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    files = sum(v["files"] for v in report.manifest["counts"]["sources"].values())
    size_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
    print(f"patients        {args.patients}")
    print(f"sites           {args.sites} (chunk size {args.chunk_size})")
    print(f"seconds         {seconds:.1f}")
    print(f"patients/s      {args.patients / seconds:.0f}")
    print(f"peak RSS        {peak_mb:.0f} MiB")
    print(f"landing files   {files}")
    print(f"output size     {size_mb:.0f} MiB")
    if tmp is not None:
        shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
