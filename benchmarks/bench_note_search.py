"""Hybrid note search (BM25 + LSA, ADR 0034) against BM25 alone on a synthetic index.

``python -m benchmarks bench_note_search`` or ``python -m benchmarks.bench_note_search
[--notes N]``. Builds a persistent :class:`~lakehouse.search.SearchIndex` of ``N`` (10,000)
short Chinese notes, each on one of eight topics (three of the topic's words among common
filler words; fixed seed), in a temporary folder. Prints the BM25 build time, the LSA fit
and the vectors of every note (the cost of a corpus change), query latency p50/p95 of both
modes with and without an ``allow`` filter (half the notes), the first hybrid search after a
restart (nothing re-embedded), and for one-word queries of a rare word (in ~1% of its
topic's notes) the notes hybrid finds that BM25 does not (they lack the word) and the share
of them on the query's topic.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lakehouse.search import Analyzer, SearchIndex
from lakehouse.search.embedding import embedder_for

TOPICS = [
    ["口渴", "多饮", "多尿", "糖尿病", "血糖", "二甲双胍", "胰岛素"],
    ["胸痛", "心电图", "心肌梗死", "肌钙蛋白", "介入", "阿司匹林"],
    ["咳嗽", "发热", "肺炎", "胸片", "抗生素", "咳痰"],
    ["头痛", "头晕", "高血压", "血压", "氨氯地平"],
    ["腹痛", "腹泻", "胃肠炎", "补液"],
    ["关节痛", "类风湿", "晨僵", "甲氨蝶呤"],
    ["皮疹", "瘙痒", "过敏", "抗组胺"],
    ["水肿", "肾功能", "肌酐", "蛋白尿", "透析"],
]
FILLER = ["患者", "今日", "复查", "病情", "稳定", "建议", "随访", "门诊", "继续", "治疗", "观察"]
QUERIES = ["口渴", "心肌梗死 介入", "发热 咳嗽", "血压", "透析", "皮疹 瘙痒", "腹泻", "晨僵"]
#: A rare word per topic, in about 1% of its notes: the one-word queries.
RARE = ["烦渴", "压榨感", "铁锈色痰", "视物模糊", "里急后重", "关节畸形", "风团", "少尿"]


def notes(n: int, seed: int = 0) -> list[tuple[int, str]]:
    """(topic, text) of ``n`` synthetic notes."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        topic = i % len(TOPICS)
        words = rng.sample(TOPICS[topic], 3) + rng.choices(FILLER, k=25)
        if rng.random() < 0.01:
            words.append(RARE[topic])
        rng.shuffle(words)
        out.append((topic, "，".join(words) + "。"))
    return out


def _latency(
    ix: SearchIndex, mode: str, allow: Callable[[str, dict[str, Any]], bool] | None
) -> str:
    lat = []
    for _ in range(3):
        for q in QUERIES:
            t = time.perf_counter()
            ix.search(q, mode=mode, allow=allow)  # type: ignore[arg-type]
            lat.append(time.perf_counter() - t)
    lat.sort()
    p50, p95 = statistics.median(lat), lat[int(len(lat) * 0.95)]
    return f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench_note_search")
    parser.add_argument("--notes", type=int, default=10_000)
    # The synthetic vocabulary is ~100 terms: 256 LSA dimensions would keep all of it.
    parser.add_argument("--dims", type=int, default=16)
    args = parser.parse_args(argv)
    corpus = notes(args.notes)
    an = Analyzer()
    an.terms("预热")  # jieba's start-up is not the index's cost
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "notes.db"
        t0 = time.perf_counter()
        ix = SearchIndex(
            path, an, embedder=embedder_for(None, path, an, dims=args.dims), mode="hybrid"
        )
        with ix.batch():
            for i, (_, text) in enumerate(corpus):
                ix.upsert(f"n{i}", text, info={"ward": "A" if i % 2 else "B"})
        t1 = time.perf_counter()
        ix.refresh_vectors()
        t2 = time.perf_counter()
        print(f"{len(corpus)} notes: BM25 index {t1 - t0:.1f} s; LSA fit + vectors {t2 - t1:.1f} s")
        ward: Callable[[str, dict[str, Any]], bool] = lambda _k, info: info["ward"] == "A"  # noqa: E731
        for mode in ("bm25", "hybrid"):
            for name, allow in (("all", None), ("half (allow)", ward)):
                print(f"{mode:6} {name:12} {_latency(ix, mode, allow)}")
        extra = on_topic = 0
        for topic, word in enumerate(RARE):
            lexical = {h.key for h in ix.search(word, mode="bm25", limit=args.notes).hits}
            for hit in ix.search(word, limit=args.notes).hits:
                if hit.key not in lexical:
                    extra += 1
                    t, text = corpus[int(hit.key[1:])]
                    on_topic += int(t == topic and word not in text)
        print(
            f"rare one-word queries: {extra / len(RARE):.0f} notes per query found by hybrid "
            f"only (none holds the word), {on_topic / max(extra, 1):.2f} of them on its topic"
        )
        again = SearchIndex(
            path, an, embedder=embedder_for(None, path, an, dims=args.dims), mode="hybrid"
        )
        start = time.perf_counter()
        again.search("口渴")
        print(
            f"restart: first hybrid search {time.perf_counter() - start:.2f} s, "
            f"{again.embedded} notes re-embedded"
        )
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
