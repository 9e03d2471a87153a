"""The medspaCy side of ``benchmarks/bench_context.py``; runs in ``.venv-medspacy`` only.

``.venv-medspacy/bin/python benchmarks/peers/medspacy_context.py IN.json OUT.json``

IN holds ``texts``, ``targets`` (per text: ``[start, end, label]`` character spans, the
entities our pipeline found), ``sent_starts`` (per text: our sentence start offsets),
``list_items`` (per text: ``[start, end]`` of each item of an enumeration of coded concepts,
our ``doc._.list_items``), ``lexicon`` (``[term, label]`` pairs, our entity lexicon),
``warmup`` (how many texts warm up) and ``repeat`` (timed passes). OUT holds, per target,
medspaCy ConText's five flags

* ``same_sentences``: ConText with its default rules over our targets and our sentences
  (and ``same_sentences_cues``: ``CATEGORY:cue text`` of each modifier per target);
* ``same_units``: the same, and a cue inside one of our list items modifies only targets in
  that item (each default rule gets an ``on_modifies`` callback; the rules are unchanged);
* ``same_units_pruned``: ``same_units`` with ConText's own ``prune_on_target_overlap=True``
  (a cue that overlaps a target is dropped, instead of only not modifying that target);
* ``concepts_pruned``: ConText as shipped (no callback) on our sentences with
  ``prune_on_target_overlap=True``, given each list item, the name of a coded concept
  ("not in labor force (finding)"), as one more target (span group ``targets``, label
  ``CONCEPT_NAME``, not scored), so a cue word inside a concept name is dropped;
* ``pyrush_sentences``: ConText over medspaCy's own PyRuSH sentences; ``pyrush_units``: the
  same with our list items;

and ``[wall, cpu]`` seconds per pass over all texts of ``context_only`` (ConText alone on
documents that already hold their sentences and targets), ``full`` (``medspacy.load()``
with target rules from our lexicon, from raw text) and ``full_sentencizer`` (the same with
spaCy's rule-based ``sentencizer`` in place of PyRuSH). A target that does not align with
spaCy tokens gets ``null``. Imports nothing from this repository (different spaCy).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from loguru import logger

# PyRuSH logs every token through loguru at DEBUG: ~90% of medspaCy's time when left on.
logger.remove()
logger.add(sys.stderr, level="WARNING")

import medspacy  # noqa: E402
import spacy  # noqa: E402
from medspacy.target_matcher import TargetRule  # noqa: E402
from spacy.tokens import Doc  # noqa: E402

FLAGS = ("is_negated", "is_uncertain", "is_historical", "is_family", "is_hypothetical")


def _doc(nlp: Any, text: str, starts: list[int] | None) -> Doc:
    doc = nlp.make_doc(text)
    if starts is not None:
        first = set(starts)
        for i, tok in enumerate(doc):
            tok.is_sent_start = i == 0 or tok.idx in first
    return doc


def _set_targets(doc: Doc, targets: list[list[Any]]) -> list[Any]:
    spans: list[Any] = []
    for start, end, label in targets:
        spans.append(doc.char_span(start, end, label=label, alignment_mode="strict"))
    doc.ents = [s for s in spans if s is not None]
    return spans


def _within_item(target: Any, modifier: Any, _between: Any) -> bool:
    """``on_modifies``: a cue inside a list item (``doc.user_data["list_items"]``) modifies
    only targets inside the same item; any other cue is left as ConText decides."""
    cue = modifier.start_char
    for lo, hi in target.doc.user_data.get("list_items", ()):
        if lo <= cue < hi:
            return bool(lo <= target.start_char and target.end_char <= hi)
    return True


def _units_context(**config: Any) -> Any:
    """A ConText with the default rules, each given the :func:`_within_item` callback."""
    context: Any = spacy.blank("en").add_pipe("medspacy_context", config=config)
    for rule in context.rules:
        rule.on_modifies = _within_item
    return context


def _concept_targets(doc: Doc, targets: list[list[Any]], items: list[list[int]]) -> list[Any]:
    """Our targets and the list items as span group ``targets`` (they overlap; ConText reads
    a group when ``input_span_type`` is ``group``); returns our targets' spans."""
    spans = [doc.char_span(s, e, label=label, alignment_mode="strict") for s, e, label in targets]
    names = [
        doc.char_span(lo, hi, label="CONCEPT_NAME", alignment_mode="contract") for lo, hi in items
    ]
    doc.spans["targets"] = [s for s in spans + names if s is not None and len(s)]
    return spans


def _flags(spans: list[Any]) -> list[list[bool] | None]:
    return [None if s is None else [bool(getattr(s._, f)) for f in FLAGS] for s in spans]


def _cues(spans: list[Any]) -> list[list[str]]:
    """Per target, ``CATEGORY:cue text`` of each modifier that reached it."""
    out = []
    for s in spans:
        mods = s._.modifiers if s is not None else ()
        out.append([f"{m.category}:{s.doc[slice(*m.modifier_span)].text.lower()}" for m in mods])
    return out


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _add(total: list[float], t0: tuple[float, float]) -> None:
    t1 = _clock()
    total[0] += t1[0] - t0[0]
    total[1] += t1[1] - t0[1]


def _timed(nlp: Any, texts: list[str], warm: int, repeat: int) -> list[float]:
    """[wall, cpu] seconds per pass over ``texts`` after a warm-up on the first ``warm``."""
    for text in texts[:warm]:
        nlp(text)
    total = [0.0, 0.0]
    t0 = _clock()
    for _ in range(repeat):
        for text in texts:
            nlp(text)
    _add(total, t0)
    return [x / repeat for x in total]


def main(argv: list[str]) -> int:
    src, dst = argv
    with open(src, encoding="utf-8") as f:
        data = json.load(f)
    texts: list[str] = data["texts"]
    targets: list[list[list[Any]]] = data["targets"]
    sent_starts: list[list[int]] = data["sent_starts"]
    items: list[list[list[int]]] = data.get("list_items") or [[] for _ in texts]
    warm = max(1, int(data.get("warmup", 50)))
    repeat = max(1, int(data.get("repeat", 1)))

    # ConText alone, default rules, on a blank English tokenizer (the one ours uses).
    blank = spacy.blank("en")
    context = blank.add_pipe("medspacy_context")

    def prepared(n: int | None = None) -> list[tuple[Doc, list[Any]]]:
        out = []
        for text, starts, tg in list(zip(texts, sent_starts, targets, strict=True))[:n]:
            doc = _doc(blank, text, starts)
            out.append((doc, _set_targets(doc, tg)))
        return out

    def decide(
        ctx: Any, docs: list[tuple[Doc, list[Any]]], with_items: bool
    ) -> tuple[list[list[list[bool] | None]], list[list[list[str]]]]:
        """``ctx`` over ``docs`` (``with_items``: our list items given to its callback):
        per document, each target's flags and the cues behind them."""
        flags, found = [], []
        for (doc, spans), its in zip(docs, items, strict=True):
            if with_items:
                doc.user_data["list_items"] = [tuple(i) for i in its]
            ctx(doc)
            flags.append(_flags(spans))
            found.append(_cues(spans))
        return flags, found

    same, cues = decide(context, prepared(), with_items=False)
    # The same, with our list items as scope units.
    units_context = _units_context()
    units, units_cues = decide(units_context, prepared(), with_items=True)
    # The same with ConText's own option that drops a cue overlapping a target.
    pruned_context = _units_context(prune_on_target_overlap=True)
    pruned, pruned_cues = decide(pruned_context, prepared(), with_items=True)
    # ConText as shipped with that option, the concept names of the lists as extra targets.
    concept_context: Any = spacy.blank("en").add_pipe(
        "medspacy_context",
        config={
            "prune_on_target_overlap": True,
            "input_span_type": "group",
            "span_group_name": "targets",
        },
    )
    concept_docs = []
    for text, starts, tg, its in zip(texts, sent_starts, targets, items, strict=True):
        doc = _doc(blank, text, starts)
        concept_docs.append((doc, _concept_targets(doc, tg, its)))
    concepts, concepts_cues = decide(concept_context, concept_docs, with_items=False)
    for doc, _ in prepared(warm):
        context(doc)
    context_s = [0.0, 0.0]
    for _ in range(repeat):
        docs = prepared()
        t0 = _clock()
        for doc, _ in docs:
            context(doc)
        _add(context_s, t0)

    # medspaCy's default pipeline (PyRuSH, target matcher, ConText) with our lexicon.
    full = medspacy.load()
    full.get_pipe("medspacy_target_matcher").add(
        [TargetRule(term, label) for term, label in data["lexicon"]]
    )
    # Our targets under PyRuSH's sentences: the splitter, then the targets, then ConText.
    pyrush = full.get_pipe("medspacy_pyrush")
    full_context = full.get_pipe("medspacy_context")
    rush: list[list[list[bool] | None]] = []
    rush_units: list[list[list[bool] | None]] = []
    for text, tg, its in zip(texts, targets, items, strict=True):
        doc = pyrush(full.make_doc(text))
        other = doc.copy()
        spans = _set_targets(doc, tg)
        full_context(doc)
        rush.append(_flags(spans))
        spans = _set_targets(other, tg)
        other.user_data["list_items"] = [tuple(i) for i in its]
        units_context(other)
        rush_units.append(_flags(spans))
    full_s = _timed(full, texts, warm, repeat)

    # The same, spaCy's rule-based sentencizer in place of PyRuSH (kinder to medspaCy).
    quick = medspacy.load(medspacy_enable=["medspacy_target_matcher", "medspacy_context"])
    quick.add_pipe("sentencizer", first=True)
    quick.get_pipe("medspacy_target_matcher").add(
        [TargetRule(term, label) for term, label in data["lexicon"]]
    )
    quick_s = _timed(quick, texts, warm, repeat)

    result = {
        "medspacy": medspacy.__version__,
        "spacy": spacy.__version__,
        "flags": list(FLAGS),
        "same_sentences": same,
        "same_sentences_cues": cues,
        "same_units": units,
        "same_units_cues": units_cues,
        "same_units_pruned": pruned,
        "same_units_pruned_cues": pruned_cues,
        "concepts_pruned": concepts,
        "concepts_pruned_cues": concepts_cues,
        "pyrush_sentences": rush,
        "pyrush_units": rush_units,
        "context_only_s": [x / repeat for x in context_s],
        "full_s": full_s,
        "full_sentencizer_s": quick_s,
        "pipe_names": full.pipe_names,
    }
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
