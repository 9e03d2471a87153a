"""Evaluation on a synthetic hospital's annotated notes (held out from any tuning).

Entities: exact span and label against ``truth/note_annotations`` (labels CONDITION,
SYMPTOM, FINDING: the ones the hospital annotates), per language and label; assertion and
concept accuracy over the matched entities. PHI: exact span and type of the de-identifier's
detections against the PHI annotations, per type. Notes that dirt truncated are scored on
the annotations that are still inside the file.

    python -m models.nlp.evaluate --patients 60 --seed 9001
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from spacy.language import Language

from models.nlp.deid import detect
from models.nlp.pipeline import load_pipeline

ENTITY_LABELS = ("CONDITION", "SYMPTOM", "FINDING")
TARGETS = {"entity_f1": 0.95, "assertion_accuracy": 0.95, "phi_recall": 0.99, "phi_precision": 0.95}


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, gold: set[Any], pred: set[Any]) -> None:
        self.tp += len(gold & pred)
        self.fp += len(pred - gold)
        self.fn += len(gold - pred)

    def scores(self) -> dict[str, float | int]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return {
            "precision": round(p, 4),
            "recall": round(r, 4),
            "f1": round(f, 4),
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
        }


@dataclass
class Tally:
    entity: dict[tuple[str, str], Counts] = field(default_factory=lambda: defaultdict(Counts))
    phi: dict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))
    assertion: Counter[tuple[str, bool]] = field(default_factory=Counter)
    concept: Counter[tuple[str, bool]] = field(default_factory=Counter)
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)


def _pipeline(lang: str, pipelines: Mapping[str, Language] | None) -> Language:
    return pipelines[lang] if pipelines and lang in pipelines else load_pipeline(lang)


def _score_note(
    t: Tally,
    text: str,
    lang: str,
    gold: list[dict[str, Any]],
    pipelines: Mapping[str, Language] | None = None,
    phi: bool = True,
) -> None:
    gold = [g for g in gold if g["end"] <= len(text)]
    doc = _pipeline(lang, pipelines)(text)
    pred = {(e.start_char, e.end_char, e.label_): e for e in doc.ents if e.label_ in ENTITY_LABELS}
    gents = {(g["start"], g["end"], g["label"]): g for g in gold if g["kind"] == "entity"}
    for label in ENTITY_LABELS:
        t.entity[(lang, label)].add(
            {k for k in gents if k[2] == label}, {k for k in pred if k[2] == label}
        )
    for k in gents.keys() & pred.keys():
        want, got = gents[k]["assertion"], pred[k]._.assertion
        t.assertion[(lang, want == got)] += 1
        t.confusion[(want, got)] += 1
        t.concept[(lang, gents[k]["concept"] == pred[k]._.concept)] += 1
    t.notes[lang] += 1
    if not phi:
        return
    gphi = {(g["start"], g["end"], g["label"]) for g in gold if g["kind"] == "phi"}
    pphi = {(r.start, r.end, r.entity_type) for r in detect(text, lang)}
    for label in {k[2] for k in gphi | pphi}:
        t.phi[label].add({k for k in gphi if k[2] == label}, {k for k in pphi if k[2] == label})


def _rate(c: Counter[tuple[str, bool]], lang: str | None = None) -> float:
    ok = sum(n for (lg, good), n in c.items() if good and lang in (None, lg))
    total = sum(n for (lg, _), n in c.items() if lang in (None, lg))
    return round(ok / total, 4) if total else 1.0


def evaluate(
    hospital: Path, *, pipelines: Mapping[str, Language] | None = None, phi: bool = True
) -> dict[str, Any]:
    """Scores of the zh/en pipelines and the de-identifier on ``hospital``'s notes.

    ``pipelines``: ``{lang: nlp}`` to score instead of ``load_pipeline(lang)``; ``phi=False``
    skips the de-identifier.
    """
    docs = pq.read_table(hospital / "truth" / "documents.parquet").to_pylist()
    ann = pq.read_table(hospital / "truth" / "note_annotations.parquet").to_pylist()
    by_note: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for a in ann:
        by_note[a["note_id"]].append(a)
    t = Tally()
    for d in docs:
        path = hospital / d["file"]
        if d["source"] != "notes" or not path.exists():
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        _score_note(t, text, d["language"], by_note[d["doc_id"]], pipelines, phi)
    langs = sorted(t.notes)
    entities: dict[str, Any] = {}
    for lang in langs:
        total = Counts()
        per = {}
        for label in ENTITY_LABELS:
            c = t.entity[(lang, label)]
            per[label] = c.scores()
            total.tp, total.fp, total.fn = total.tp + c.tp, total.fp + c.fp, total.fn + c.fn
        entities[lang] = {
            "micro": total.scores(),
            "per_label": per,
            "assertion_accuracy": _rate(t.assertion, lang),
            "concept_accuracy": _rate(t.concept, lang),
        }
    phi_total = Counts()
    for c in t.phi.values():
        phi_total.tp, phi_total.fp, phi_total.fn = (
            phi_total.tp + c.tp,
            phi_total.fp + c.fp,
            phi_total.fn + c.fn,
        )
    return {
        "notes": dict(t.notes),
        "entities": entities,
        "assertion_accuracy": _rate(t.assertion),
        "assertion_confusion": {f"{w}->{g}": n for (w, g), n in sorted(t.confusion.items())},
        "phi": {
            "micro": phi_total.scores(),
            "per_type": {k: c.scores() for k, c in sorted(t.phi.items())},
        },
    }


def score_cases(
    cases: list[dict[str, Any]], pipelines: Mapping[str, Language] | None = None
) -> dict[str, Any]:
    """Scores on hand-annotated cases ``{lang, text, entities: [[surface, label, assertion]]}``
    (a surface marks its first occurrence in the text)."""
    t = Tally()
    for case in cases:
        text, lang = case["text"], case["lang"]
        gold = []
        for surface, label, assertion in case["entities"]:
            start = text.index(surface)
            gold.append(
                {
                    "start": start,
                    "end": start + len(surface),
                    "kind": "entity",
                    "label": label,
                    "assertion": assertion,
                    "concept": None,
                }
            )
        doc = _pipeline(lang, pipelines)(text)
        pred = {
            (e.start_char, e.end_char, e.label_): e for e in doc.ents if e.label_ in ENTITY_LABELS
        }
        gents = {(g["start"], g["end"], g["label"]): g for g in gold}
        t.entity[(lang, "ALL")].add(set(gents), set(pred))
        for k in gents.keys() & pred.keys():
            t.assertion[(lang, gents[k]["assertion"] == pred[k]._.assertion)] += 1
        t.notes[lang] += 1
    return {
        lang: {
            "cases": t.notes[lang],
            "entities": t.entity[(lang, "ALL")].scores(),
            "assertion_accuracy": _rate(t.assertion, lang),
        }
        for lang in sorted(t.notes)
    }


def main(argv: list[str] | None = None) -> int:
    """Generate a held-out hospital (or read one) and print the scores as JSON."""
    ap = argparse.ArgumentParser(prog="python -m models.nlp.evaluate")
    ap.add_argument("--hospital", type=Path, help="an existing synthetic hospital folder")
    ap.add_argument("--challenge", type=Path, help="score a hand-annotated JSON case file instead")
    ap.add_argument("--patients", type=int, default=60)
    ap.add_argument("--seed", type=int, default=9001, help="held-out seed (never used for tuning)")
    args = ap.parse_args(argv)
    if args.challenge:
        cases = json.loads(args.challenge.read_text("utf-8"))["cases"]
        print(json.dumps(score_cases(cases), ensure_ascii=False, indent=1))
        return 0
    if args.hospital:
        report = evaluate(args.hospital)
    else:
        from lakehouse.synthetic import HospitalConfig, generate

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "hospital"
            generate(out, HospitalConfig(patients=args.patients, sites=3, seed=args.seed))
            report = evaluate(out)
    report["targets"] = TARGETS
    print(json.dumps(report, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
