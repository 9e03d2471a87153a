"""Assertion agreement and throughput against medspaCy's ConText on the Synthea notes.

``python -m benchmarks bench_context`` or ``python -m benchmarks.bench_context [--limit N]``;
``make bench-peers`` (``--setup-peer``) only builds the peer's environment.

The English Synthea notes (``$LAKEHOUSE_REFDATA/fhir-bulk-synthea``, DocumentReference,
base64 attachments; default ``../shared/refdata``) go through our English pipeline end to
end. The problem, symptom and finding entities it finds are the targets: medspaCy 1.3.1's
ConText with its default English rules gets the same texts and the same target spans
(``benchmarks/peers/medspacy_context.py``, run as a subprocess in ``.venv-medspacy``,
because medspaCy pins spaCy < 3.8; never installed into ``.venv``). Per target, five
modifiers are compared: negated, possible (medspaCy ``is_uncertain``), historical, family,
hypothetical; ours is the set of categories whose cue reached the target plus the
assertion itself (so a section default counts).

Segmentation: medspaCy gets our sentence starts, so the two differ only in their rules.
Synthea's history sentences are enumerations of coded concepts ("..., victim of intimate
partner abuse (finding), not in labor force (finding), ..."); our ``doc._.list_items`` are
their items, the concept names, and a cue word inside one (*not*, *partner*) belongs to that
name. The headline agreement gives medspaCy these concept names as extra targets (not
scored) and turns on ConText's own ``prune_on_target_overlap`` (a cue that overlaps a target
is dropped): ConText as shipped, default rules, one documented option. Also printed: the list
items as scope units instead (an ``on_modifies`` callback on every default rule: a cue inside
an item modifies only that item), with and without the option; ConText as shipped with no
option on our sentences and on its own PyRuSH sentences; PyRuSH sentences with the callback.
Throughput, words (``\\S+``) per second, one process each, after a warm-up on the first
``--warmup`` notes, on the same texts one after the other: (a) the full pipelines, our
``load_pipeline('en')`` against ``medspacy.load()`` (PyRuSH, a target matcher holding our
English lexicon, ConText) from raw text; (b) assertion only, our ``clinical_context``
against medspaCy's ConText, on documents that already hold our sentences and targets.

If the peer environment cannot be built (no network, no uv), the comparison is skipped with
a printed reason and our figures are still printed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEER_ENV = ROOT / ".venv-medspacy"
PEER_REQUIREMENTS = ROOT / "benchmarks" / "peers" / "medspacy-requirements.txt"
PEER_SCRIPT = ROOT / "benchmarks" / "peers" / "medspacy_context.py"
# Order of medspaCy's flags in the peer's output (is_negated, is_uncertain, ...).
MODIFIERS = ("negated", "possible", "historical", "family", "hypothetical")
TARGET_LABELS = ("CONDITION", "SYMPTOM", "FINDING")

Flags = tuple[bool, ...]


# ---------------------------------------------------------------- comparison logic


def our_flags(assertion: str, modifiers: Sequence[str]) -> Flags:
    """Our five modifier flags: every category whose cue reached the target, plus the
    assertion itself (a section default has no cue)."""
    found = set(modifiers) | {assertion}
    return tuple(m in found for m in MODIFIERS)


def resolve(flags: Flags, priority: Sequence[str]) -> str:
    """One assertion from five flags, the first category of ``priority`` that is set."""
    on = {m for m, f in zip(MODIFIERS, flags, strict=True) if f}
    return next((c for c in priority if c in on), "present")


@dataclass
class Agreement:
    """Agreement of two systems' modifier flags over the same targets."""

    n: int = 0
    all_agree: int = 0  # all five flags equal
    assertion_agree: int = 0  # the resolved single assertion equal
    unaligned: int = 0  # targets the peer could not place on its tokens (not scored)
    # modifier -> (agree, ours only, theirs only, both)
    per_modifier: dict[str, list[int]] = field(
        default_factory=lambda: {m: [0, 0, 0, 0] for m in MODIFIERS}
    )
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)  # disagreements

    @property
    def overall(self) -> float:
        return self.all_agree / self.n if self.n else 1.0

    def rate(self, modifier: str) -> float:
        return self.per_modifier[modifier][0] / self.n if self.n else 1.0


def compare(
    ours: Sequence[Flags], theirs: Sequence[Flags | None], priority: Sequence[str]
) -> Agreement:
    """Per-target agreement; ``None`` on their side is a target they could not align."""
    out = Agreement()
    for a, b in zip(ours, theirs, strict=True):
        if b is None:
            out.unaligned += 1
            continue
        out.n += 1
        out.all_agree += a == b
        ra, rb = resolve(a, priority), resolve(b, priority)
        out.assertion_agree += ra == rb
        if ra != rb:
            out.confusion[(ra, rb)] += 1
        for m, fa, fb in zip(MODIFIERS, a, b, strict=True):
            row = out.per_modifier[m]
            row[0] += fa == fb
            row[1] += fa and not fb
            row[2] += fb and not fa
            row[3] += fa and fb
    return out


_PEER_CATEGORY = {
    "NEGATED_EXISTENCE": "negated",
    "POSSIBLE_EXISTENCE": "possible",
    "HISTORICAL": "historical",
    "FAMILY": "family",
    "HYPOTHETICAL": "hypothetical",
}


def peer_only_cues(
    ours: Sequence[Flags], theirs: Sequence[Flags | None], cues: Sequence[Sequence[str]]
) -> Counter[str]:
    """The peer's cues (``CATEGORY:text``) behind the modifiers it set and we did not."""
    out: Counter[str] = Counter()
    for a, b, found in zip(ours, theirs, cues, strict=True):
        if b is None:
            continue
        missing = {m for m, fa, fb in zip(MODIFIERS, a, b, strict=True) if fb and not fa}
        for cue in set(found):
            category, _, text = cue.partition(":")
            if _PEER_CATEGORY.get(category) in missing:
                out[f"{_PEER_CATEGORY[category]}: {text}"] += 1
    return out


def drop_peer_cues(
    theirs: Sequence[Flags | None], cues: Sequence[Sequence[str]], ignored: Sequence[str]
) -> list[Flags | None]:
    """The peer's flags with the modifiers that only ``ignored`` cues (``negated: not``)
    set cleared: what the peer would say without those cues."""
    drop = {c.strip().lower() for c in ignored}
    out: list[Flags | None] = []
    for flags, found in zip(theirs, cues, strict=True):
        if flags is None:
            out.append(None)
            continue
        kept: set[str] = set()
        for cue in found:
            category, _, text = cue.partition(":")
            name = _PEER_CATEGORY.get(category)
            if name is not None and f"{name}: {text}" not in drop:
                kept.add(name)
        out.append(tuple(f and m in kept for m, f in zip(MODIFIERS, flags, strict=True)))
    return out


def format_agreement(title: str, ag: Agreement) -> list[str]:
    lines = [
        f"{title}: {ag.n} targets ({ag.unaligned} not aligned to the peer's tokens)",
        f"  all five modifiers agree   {ag.overall:.3f} ({ag.all_agree}/{ag.n})",
        f"  single assertion agrees    {ag.assertion_agree / max(ag.n, 1):.3f} "
        f"({ag.assertion_agree}/{ag.n})",
        "  modifier       agreement  ours only  medspaCy only  both",
    ]
    for m in MODIFIERS:
        _, only_a, only_b, both = ag.per_modifier[m]
        lines.append(f"  {m:<13}  {ag.rate(m):9.3f}  {only_a:9d}  {only_b:13d}  {both:4d}")
    if ag.confusion:
        lines.append("  assertion disagreements (ours -> medspaCy): count")
        for (a, b), k in ag.confusion.most_common():
            lines.append(f"    {a:>12} -> {b:<12} {k}")
    return lines


def snippet(text: str, start: int, end: int, width: int = 60) -> str:
    """About ``width`` characters around a target, the target in brackets, one line."""
    side = max(0, (width - (end - start)) // 2)
    s = f"{text[max(0, start - side) : start]}[{text[start:end]}]{text[end : end + side]}"
    return re.sub(r"\s+", " ", s)


# ---------------------------------------------------------------- notes and our side


def refdata_root(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("LAKEHOUSE_REFDATA")
    return Path(env) if env else ROOT.parent / "shared" / "refdata"


def synthea_notes(refdata: Path, limit: int | None = None) -> Iterator[str]:
    """The decoded text attachments of the Synthea DocumentReference resources."""
    n = 0
    for path in sorted((refdata / "fhir-bulk-synthea").glob("DocumentReference*.ndjson")):
        with path.open(encoding="utf-8") as f:
            for line in f:
                for content in json.loads(line).get("content", []):
                    data = content.get("attachment", {}).get("data")
                    if not data:
                        continue
                    yield base64.b64decode(data).decode("utf-8", errors="replace")
                    n += 1
                    if limit is not None and n >= limit:
                        return


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _add(total: list[float], t0: tuple[float, float]) -> None:
    t1 = _clock()
    total[0] += t1[0] - t0[0]
    total[1] += t1[1] - t0[1]


def _timed(fn: Any, items: Sequence[Any], warmup: int, repeat: int) -> list[float]:
    """``[wall, cpu]`` seconds per pass over ``items`` after a warm-up on the first ones."""
    for item in items[:warmup]:
        fn(item)
    total = [0.0, 0.0]
    t0 = _clock()
    for _ in range(repeat):
        for item in items:
            fn(item)
    _add(total, t0)
    return [x / repeat for x in total]


def run_ours(texts: list[str], warmup: int, repeat: int) -> dict[str, Any]:
    """Targets, flags, sentence starts and timings of our English pipeline."""
    from models.nlp.pipeline import load_pipeline

    nlp = load_pipeline("en")
    targets: list[list[list[Any]]] = []
    flags: list[Flags] = []
    starts: list[list[int]] = []
    items: list[list[list[int]]] = []
    for doc in map(nlp, texts):
        spans = [e for e in doc.ents if e.label_ in TARGET_LABELS]
        targets.append([[e.start_char, e.end_char, e.label_] for e in spans])
        flags.extend(our_flags(e._.assertion, e._.modifiers) for e in spans)
        starts.append(list(doc._.sent_starts or [0]))
        items.append([list(i) for i in doc._.list_items or []])
    full_s = _timed(nlp, texts, warmup, repeat)

    before = [(n, p) for n, p in nlp.pipeline if n != "clinical_context"]
    context = nlp.get_pipe("clinical_context")

    def prepared(items: list[str]) -> list[Any]:
        docs = []
        for text in items:
            doc = nlp.make_doc(text)
            for _, proc in before:
                doc = proc(doc)
            docs.append(doc)
        return docs

    for doc in prepared(texts[:warmup]):
        context(doc)
    context_s = [0.0, 0.0]
    for _ in range(repeat):
        docs = prepared(texts)
        t0 = _clock()
        for doc in docs:
            context(doc)
        _add(context_s, t0)
    return {
        "targets": targets,
        "flags": flags,
        "sent_starts": starts,
        "list_items": items,
        "full_s": full_s,
        "context_only_s": [x / repeat for x in context_s],
    }


def lexicon_terms() -> list[list[str]]:
    """Our English lexicon as ``[term, label]`` (the peer's target rules)."""
    from models.nlp import rules

    lex = rules.lexicon("en")
    terms = {**lex.concepts, **lex.exact, **lex.findings}
    return sorted([t, c.label] for t, c in terms.items())


# ---------------------------------------------------------------- the peer environment


def _requirements_hash() -> str:
    return hashlib.sha256(PEER_REQUIREMENTS.read_bytes()).hexdigest()


def ensure_peer_env() -> tuple[Path | None, str]:
    """``.venv-medspacy``'s Python, built with uv from the pinned requirements when missing or
    stale; ``(None, reason)`` when it cannot be built."""
    python = PEER_ENV / "bin" / "python"
    stamp = PEER_ENV / ".requirements.sha256"
    want = _requirements_hash()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == want:
        return python, "ready"
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        return None, "uv not found (make venv installs it into .venv/bin)"
    print(f"building {PEER_ENV.name} from {PEER_REQUIREMENTS.relative_to(ROOT)} with uv ...")
    try:
        if not python.exists():
            subprocess.run(
                [uv, "venv", "--quiet", "--python", sys.executable, str(PEER_ENV)], check=True
            )
        subprocess.run(
            [uv, "pip", "sync", "--quiet", "--python", str(python), str(PEER_REQUIREMENTS)],
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        return None, f"building {PEER_ENV.name} failed ({exc}); no network to PyPI?"
    stamp.write_text(want + "\n")
    return python, "built"


def run_peer(
    python: Path, texts: list[str], ours: dict[str, Any], warmup: int, repeat: int
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench_context_") as tmp:
        src, dst = Path(tmp) / "in.json", Path(tmp) / "out.json"
        payload = {
            "texts": texts,
            "targets": ours["targets"],
            "sent_starts": ours["sent_starts"],
            "list_items": ours["list_items"],
            "lexicon": lexicon_terms(),
            "warmup": warmup,
            "repeat": repeat,
        }
        src.write_text(json.dumps(payload), encoding="utf-8")
        subprocess.run([str(python), str(PEER_SCRIPT), str(src), str(dst)], check=True)
        result: dict[str, Any] = json.loads(dst.read_text(encoding="utf-8"))
    return result


def _flatten(per_text: list[list[list[bool] | None]]) -> list[Flags | None]:
    return [None if f is None else tuple(f) for doc in per_text for f in doc]


def _rate(words: int, seconds: Sequence[float]) -> str:
    wall, cpu = seconds
    return f"{words / wall:>9,.0f} ({words / max(cpu, 1e-9):>9,.0f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_context", description=__doc__)
    parser.add_argument("--refdata", help="default $LAKEHOUSE_REFDATA or ../shared/refdata")
    parser.add_argument("--limit", type=int, default=None, help="first N notes (default all)")
    parser.add_argument("--warmup", type=int, default=50, help="notes in the warm-up pass")
    parser.add_argument("--repeat", type=int, default=1, help="timed passes")
    parser.add_argument("--examples", type=int, default=2, help="examples per disagreement")
    parser.add_argument("--setup-peer", action="store_true", help="only build .venv-medspacy")
    parser.add_argument(
        "--ignore-peer-cue",
        action="append",
        default=[],
        metavar="'CATEGORY: cue'",
        help="also report agreement without this medspaCy cue, e.g. 'negated: not'",
    )
    args = parser.parse_args(argv)

    if args.setup_peer:
        python, why = ensure_peer_env()
        print(f"{PEER_ENV.name}: {why}")
        return 0 if python else 1

    refdata = refdata_root(args.refdata)
    if not (refdata / "fhir-bulk-synthea").is_dir():
        print(f"skipped: no {refdata / 'fhir-bulk-synthea'} (set LAKEHOUSE_REFDATA)")
        return 0
    texts = list(synthea_notes(refdata, args.limit))
    words = sum(len(re.findall(r"\S+", t)) for t in texts)
    ours = run_ours(texts, args.warmup, args.repeat)
    n_targets = len(ours["flags"])
    print(f"notes           {len(texts)} Synthea notes, {words:,} words, {n_targets} targets")
    print("                words/s wall (words/s of CPU time)")
    print(f"ours full       {_rate(words, ours['full_s'])}  load_pipeline('en')")
    print(f"ours context    {_rate(words, ours['context_only_s'])}  clinical_context alone")

    python, why = ensure_peer_env()
    if python is None:
        print(f"vs medspaCy     skipped: {why}; run `make bench-peers` where PyPI is reachable")
        return 0
    try:
        peer = run_peer(python, texts, ours, args.warmup, args.repeat)
    except subprocess.CalledProcessError as exc:
        print(f"vs medspaCy     failed: {PEER_SCRIPT.name} exited {exc.returncode}")
        return 1
    print(f"medspaCy        {peer['medspacy']} on spaCy {peer['spacy']} ({PEER_ENV.name})")
    print(f"medspaCy full   {_rate(words, peer['full_s'])}  {', '.join(peer['pipe_names'])}")
    print(f"medspaCy fast   {_rate(words, peer['full_sentencizer_s'])}  sentencizer, not PyRuSH")
    print(f"medspaCy ctx    {_rate(words, peer['context_only_s'])}  ConText alone")
    for name, a, b in (
        ("ratio full   ", ours["full_s"], peer["full_s"]),
        ("ratio fast   ", ours["full_s"], peer["full_sentencizer_s"]),
        ("ratio context", ours["context_only_s"], peer["context_only_s"]),
    ):
        print(f"{name}   {b[0] / a[0]:.2f}x wall ({b[1] / a[1]:.2f}x CPU) medspaCy's words/s")

    from models.nlp.rules import context_rules

    priority = context_rules("en").priority
    runs = (
        (
            "HEADLINE (target >= 0.95): our sentences, list items as concept-name targets, "
            "ConText as shipped with prune_on_target_overlap=True",
            "concepts_pruned",
        ),
        ("our sentences, list items as scope (on_modifies callback)", "same_units"),
        (
            "our sentences, list items as scope (on_modifies callback), "
            "prune_on_target_overlap=True",
            "same_units_pruned",
        ),
        ("our sentences, ConText as shipped, no list items", "same_sentences"),
        ("medspaCy's PyRuSH sentences, ConText as shipped, no list items", "pyrush_sentences"),
        ("medspaCy's PyRuSH sentences, list items as scope (callback)", "pyrush_units"),
    )
    summary = []
    for title, key in runs:
        theirs = _flatten(peer[key])
        ag = compare(ours["flags"], theirs, priority)
        summary.append((key, ag))
        for line in format_agreement(f"agreement, {title}", ag):
            print(line)
        if f"{key}_cues" not in peer:
            continue
        theirs_cues = [c for doc in peer[f"{key}_cues"] for c in doc]
        print(f"  medspaCy cues behind the modifiers only medspaCy set ({key}, targets):")
        for cue, k in peer_only_cues(ours["flags"], theirs, theirs_cues).most_common(12):
            print(f"    {cue:<30} {k}")
        if args.ignore_peer_cue:
            kept = drop_peer_cues(theirs, theirs_cues, args.ignore_peer_cue)
            title = f"agreement, {key}, medspaCy without {args.ignore_peer_cue}"
            for line in format_agreement(title, compare(ours["flags"], kept, priority)):
                print(line)
        print(f"  examples ({key}: which modifiers differ, who set them):")
        _print_examples(texts, ours, theirs, priority, args.examples)
    print("summary: all five modifiers agree")
    for key, ag in summary:
        print(f"  {key:<18} {ag.overall:.3f} ({ag.all_agree}/{ag.n})")
    ratio = peer["full_s"][0] / ours["full_s"][0]
    print(f"  headline: agreement {summary[0][1].overall:.3f}, throughput {ratio:.2f}x wall")
    return 0


def _print_examples(
    texts: list[str],
    ours: dict[str, Any],
    theirs: list[Flags | None],
    priority: Sequence[str],
    per_kind: int,
) -> None:
    """A few disagreements per kind (which flags differ), as 60-character snippets."""
    shown: Counter[tuple[str, ...]] = Counter()
    i = 0
    for text, targets in zip(texts, ours["targets"], strict=True):
        for start, end, _ in targets:
            a, b = ours["flags"][i], theirs[i]
            i += 1
            if b is None or a == b:
                continue
            kind = tuple(
                f"{m}:{'ours' if fa else 'medspaCy'}"
                for m, fa, fb in zip(MODIFIERS, a, b, strict=True)
                if fa != fb
            )
            if shown[kind] >= per_kind:
                continue
            shown[kind] += 1
            print(f"  {' '.join(kind):<40} {snippet(text, start, end)}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
