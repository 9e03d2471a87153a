"""Varied note wording: more sentence frames and entity names than the default notes.

The default notes (``notes.py``, ``data/phrases.json``) use a handful of templates and the
catalog's condition names, which are the NLP rules' own phrasings and lexicon surfaces. With
``HospitalConfig(note_wording="varied-<part>")`` the assertion part of a progress or nursing
note is written from ``data/wording.json`` instead: many frames per label, assertion status
and language (lists, clause order, abbreviations, cues the rules may not know), and mentions
drawn also from a vocabulary of real condition and symptom names that the NLP lexicon does
not hold. Every frame list and vocabulary list is split by a keyed hash of its items into
three disjoint parts (``train``, ``validation``, ``held_out``), and a hospital uses one part,
so a model trained on ``varied-train`` notes is validated and tested on frames and surfaces
it never saw. Annotations (offsets, label, assertion, concept) come from the same
``NoteBuilder`` as the default notes.
"""

from __future__ import annotations

import hashlib
import random
from functools import cache
from typing import Any, Literal, get_args

from lakehouse.synthetic import catalog
from lakehouse.synthetic.model import Encounter, Patient

#: ``HospitalConfig.note_wording`` values: the default notes, or varied notes of one part.
NoteWording = Literal["standard", "varied-train", "varied-validation", "varied-held-out"]
WORDINGS: tuple[NoteWording, ...] = get_args(NoteWording)
PARTS = ("train", "validation", "held_out")
SPLIT_KEY = "wording-split-v1"
#: Status weights of the extra (vocabulary) mentions, per label.
EXTRA_STATUS = {
    "CONDITION": {"present": 3, "negated": 3, "possible": 2, "family": 1, "historical": 1},
    "SYMPTOM": {"present": 4, "negated": 4, "hypothetical": 1},
}


@cache
def wording() -> dict[str, Any]:
    """``data/wording.json``: frames, relatives, vocabulary and split shares."""
    return catalog.load("wording.json")


def part_of(wording_value: str) -> str:
    """The part (``train``, ``validation``, ``held_out``) a ``varied-*`` wording uses."""
    return wording_value.removeprefix("varied-").replace("-", "_")


def _rank(item: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{SPLIT_KEY}:{item}".encode()).digest()[:8], "big")


def split(items: list[Any], part: str, key: Any = None) -> list[Any]:
    """The items of ``part``: ordered by a keyed hash of ``key(item)`` (default ``str``),
    the first ``held_out`` share is held out, the next ``validation`` share validation, the
    rest train. Each part gets at least one item when there are three or more."""
    shares = wording()["split"]
    name = key or str
    ranked = sorted(items, key=lambda x: _rank(name(x)))
    n = len(ranked)
    held = max(1, round(n * shares["held_out"])) if n >= 3 else 0
    val = max(1, round(n * shares["validation"])) if n >= 3 else 0
    bounds = {"held_out": (0, held), "validation": (held, held + val), "train": (held + val, n)}
    lo, hi = bounds[part]
    return ranked[lo:hi]


@cache
def frames(label: str, status: str, lang: str, part: str) -> list[str]:
    """The frames of ``part`` for one label, assertion status and language."""
    return split(list(wording()["frames"][label][status][lang]), part)


@cache
def vocabulary(label: str, lang: str, part: str) -> list[tuple[str, str | None]]:
    """(surface, concept) of ``part`` for one label and language; a name with a code in the
    data file has concept ``ICD10CM:<code>``, the others (all today's) ``None``: not coded by
    the generator."""
    items = wording()["vocabulary"][lang][label]
    chosen = split(list(items), part, key=lambda x: str(x[0]))
    return [(t, f"ICD10CM:{c}" if c else None) for t, c in chosen]


def _cap(value: str) -> str:
    return value[:1].upper() + value[1:]


def say(
    b: Any,
    rng: random.Random,
    frame: str,
    mentions: list[tuple[str, str | None]],
    label: str,
    status: str,
    lang: str,
) -> None:
    """Write ``frame`` with ``mentions`` in its ``{c}``/``{C}`` slots, each annotated."""
    relatives = wording()["relatives"][lang]
    fill = {"n": str(rng.randrange(1, 11)), "r": rng.choice(relatives)}
    fill["R"] = _cap(fill["r"])
    pieces = frame.replace("{C}", "\0C").replace("{c}", "\0c").split("\0")
    b.text(pieces[0].format(**fill))
    for i, piece in enumerate(pieces[1:]):
        value, concept = mentions[i]
        b.mark(_cap(value) if piece[0] == "C" else value, "entity", label, status, concept)
        b.text(piece[1:].format(**fill))


def slots(frame: str) -> int:
    """How many mentions ``frame`` takes."""
    return frame.count("{c}") + frame.count("{C}")


def conditions_at(p: Patient, e: Encounter) -> tuple[list[str], list[str], list[str]]:
    """Catalog condition keys at the encounter's day: the patient's active ones (chronic, or
    begun within 30 days), past ones (not chronic, begun 30 days or more before) and the
    catalog's conditions the patient does not have, in catalog order."""
    day = e.start.date()
    active = [
        c.key for c in p.conditions if c.onset <= day and (c.chronic or (day - c.onset).days < 30)
    ]
    past = [c.key for c in p.conditions if not c.chronic and (day - c.onset).days >= 30]
    absent = [k for k in catalog.conditions() if all(c.key != k for c in p.conditions)]
    return active, past, absent


def varied_assertions(
    b: Any, rng: random.Random, p: Patient, e: Encounter, lang: str, part: str
) -> None:
    """The assertion part of a note in varied wording: the patient's conditions (present,
    historical, family), two absent catalog conditions negated, sometimes a possible one,
    one negated catalog symptom, and 2-5 mentions of ``part``'s vocabulary; a frame with
    more slots than mentions is filled up from the vocabulary (same label and status)."""
    ph, cond = catalog.phrases(), catalog.conditions()
    active, past, absent = conditions_at(p, e)
    name = "zh" if lang == "zh" else "en"
    sep = "" if lang == "zh" else " "
    planned: list[tuple[str, str, tuple[str, str | None] | None]] = []
    planned += [("CONDITION", "present", (cond[k][name], k)) for k in active]
    planned += [("CONDITION", "historical", (cond[k][name], k)) for k in past]
    planned += [
        ("CONDITION", "negated", (cond[k][name], k))
        for k in rng.sample(absent, min(2, len(absent)))
    ]
    if absent and rng.random() < 0.3:
        k = rng.choice(absent)
        planned.append(("CONDITION", "possible", (cond[k][name], k)))
    planned += [("CONDITION", "family", (cond[k][name], k)) for k in p.family]
    i = rng.randrange(len(ph["negated_symptoms"][lang]))
    symptom = ph["negated_symptoms"][lang][i]
    planned.append(("SYMPTOM", "negated", (symptom, f"SYMPTOM:{ph['negated_symptoms']['en'][i]}")))
    for _ in range(rng.randint(2, 5)):
        label = "CONDITION" if rng.random() < 0.6 else "SYMPTOM"
        weights = EXTRA_STATUS[label]
        status = rng.choices(list(weights), weights=list(weights.values()))[0]
        planned.append((label, status, None))
    rng.shuffle(planned)
    for label, status, first in planned:
        frame = rng.choice(frames(label, status, lang, part))
        vocab = vocabulary(label, lang, part)
        extra = rng.sample(vocab, slots(frame))
        mentions = ([first] if first else []) + [
            m for m in extra if first is None or m[0] != first[0]
        ]
        say(b, rng, frame, mentions[: slots(frame)], label, status, lang)
        b.text("\n" if rng.random() < 0.35 else sep)
    if rng.random() < 0.5:
        b.text("\n" + "，".join(rng.sample(ph["abbreviations"], 3)))
    b.text("\n")
