"""Clinical NLP throughput: zh chars/s, en words/s, de-identification chars/s (one process).

``python -m benchmarks bench_nlp`` or ``python benchmarks/bench_nlp.py --patients 300``.
Notes come from a synthetic hospital (seed 9003). Each pipeline runs once over all notes
to warm up, then is timed over ``--repeat`` passes. The issue's peer comparison against
medspaCy's ConText is ``benchmarks/bench_context.py`` (``python -m benchmarks bench_context``):
on the Synthea notes, with medspaCy 1.3.1 in its own pinned environment ``.venv-medspacy``
(``make bench-peers``; it pins spaCy < 3.8, so never in ``.venv``). See docs/nlp.md for the
figures.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pyarrow.parquet as pq

from lakehouse.synthetic import HospitalConfig, generate
from models.nlp.deid import Deidentifier
from models.nlp.pipeline import load_pipeline

T = TypeVar("T")


def _notes(out: Path) -> dict[str, list[str]]:
    notes: dict[str, list[str]] = {"zh": [], "en": []}
    for d in pq.read_table(out / "truth" / "documents.parquet").to_pylist():
        path = out / d["file"]
        if d["source"] == "notes" and path.exists():
            notes[d["language"]].append(path.read_text("utf-8", errors="replace"))
    return notes


def _timed(fn: Callable[[T], object], items: list[T], repeat: int) -> float:
    """Seconds per pass over ``items`` after one warm-up pass."""
    for item in items:
        fn(item)
    t0 = time.perf_counter()
    for _ in range(repeat):
        for item in items:
            fn(item)
    return (time.perf_counter() - t0) / repeat


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_nlp", description=__doc__)
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--seed", type=int, default=9003)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="bench_nlp_")
    try:
        out = Path(tmp) / "hospital"
        generate(out, HospitalConfig(patients=args.patients, sites=3, seed=args.seed))
        notes = _notes(out)
    finally:
        shutil.rmtree(tmp)
    zh_chars = sum(len(t) for t in notes["zh"])
    en_words = sum(len(re.findall(r"\S+", t)) for t in notes["en"])
    all_chars = zh_chars + sum(len(t) for t in notes["en"])
    zh_s = _timed(load_pipeline("zh"), notes["zh"], args.repeat)
    en_s = _timed(load_pipeline("en"), notes["en"], args.repeat)
    deid = Deidentifier(b"bench")
    pairs = [(t, lang) for lang in ("zh", "en") for t in notes[lang]]
    deid_s = _timed(lambda p: deid.deidentify(p[0], p[1], "P"), pairs, args.repeat)
    print(f"notes           zh {len(notes['zh'])}, en {len(notes['en'])}")
    print(
        f"zh pipeline     {zh_chars / zh_s:,.0f} chars/s ({len(notes['zh']) / zh_s:,.0f} notes/s)"
    )
    print(
        f"en pipeline     {en_words / en_s:,.0f} words/s ({len(notes['en']) / en_s:,.0f} notes/s)"
    )
    print(f"de-id (zh+en)   {all_chars / deid_s:,.0f} chars/s ({len(pairs) / deid_s:,.0f} notes/s)")
    print("vs medspaCy     see bench_context (Synthea notes, medspaCy in .venv-medspacy)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
