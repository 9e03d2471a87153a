"""Train a spaCy NER per language on a synthetic hospital and track it in MLflow.

The rules (``resources/*.json``) stay the pipeline; a trained NER (hash-embedding CNN
tok2vec + transition-based ``ner``, from scratch, CPU) proposes CONDITION, SYMPTOM and
FINDING spans that ``clinical_entities`` combines with the rules' by a merge policy
(``components.MERGE_POLICIES``), chosen on a validation split. See docs/adr/0021.

Data: the notes and ``truth/note_annotations`` of a synthetic hospital generated with a
*training* seed; seeds in :data:`HELD_OUT_SEEDS` (evaluation, tests, benchmarks) are refused
(LH-NLP-010), and the hand-written challenge set is never read for training, only scored.
Notes are split by a keyed hash of their id into train and validation. The train part is
augmented by substituting each annotated CONDITION/SYMPTOM surface with another surface of
the same label from ``lexicon.json`` (the versioned rule data, nothing else): the same
contexts with more varied entity strings, so the model learns the context, not the string.

One MLflow run per language in experiment ``clinical-ner``: parameters (seeds, epochs, sizes,
spaCy and rules versions), metrics per type for every merge policy on validation, on a
held-out hospital and on the challenge set, and the packaged pipeline (pyfunc over the
spaCy folder), registered as ``clinical-ner-<lang>`` with alias ``champion``.

    python -m models.nlp.train [--patients 400 --seed 7001 --epochs 8 --out DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
import spacy
from spacy.about import __version__ as SPACY_VERSION
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from thinc.api import fix_random_seed

from lakehouse.errors import ErrorCode, error
from models.nlp import rules
from models.nlp.components import MERGE_POLICIES, TRAINED_LABELS
from models.nlp.evaluate import Counts, evaluate, score_cases
from models.nlp.pipeline import attach_trained, build_pipeline
from models.nlp.resources import load_resource, versions

if TYPE_CHECKING:
    from lakehouse.settings import Settings
    from lakehouse.synthetic.wording import NoteWording

logger = logging.getLogger(__name__)

#: Seeds of the hospitals that evaluation (models.nlp.evaluate's default and test_evaluate:
#: 9001; docs/nlp.md: 9002; benchmarks/bench_nlp.py: 9003) uses; never trained on.
HELD_OUT_SEEDS: frozenset[int] = frozenset({9001, 9002, 9003})
TRAIN_SEED = 7001
EXPERIMENT = "clinical-ner"
ARTIFACT_PATH = "pipeline"
CHALLENGE = (
    Path(__file__).resolve().parents[2] / "tests" / "unit" / "nlp" / "data" / "challenge.json"
)
SUBSTITUTED_LABELS = ("CONDITION", "SYMPTOM")

Span3 = tuple[int, int, str]
#: Metric prefixes: ``validation`` (what the policy is chosen on: varied notes of the
#: validation part, or the default notes' split when ``varied_patients`` is 0),
#: ``validation_standard`` (the default notes' split), ``held_out`` (a default hospital of
#: ``held_out_seed``), ``held_out_varied`` (its varied held-out part), ``challenge``.
SPLITS = ("validation", "validation_standard", "held_out", "held_out_varied", "challenge")


def model_name(lang: str) -> str:
    """Registered model name of ``lang``'s trained NER."""
    return f"clinical-ner-{rules.check_lang(lang)}"


def check_seed(seed: int, held_out: Iterable[int] = HELD_OUT_SEEDS) -> int:
    """``seed`` when it may be trained on; LH-NLP-010 when it is an evaluation seed."""
    held = sorted(set(held_out))
    if seed in held:
        raise error(
            ErrorCode.NLP_TRAINING_SEED_HELD_OUT, found=seed, expected=", ".join(map(str, held))
        )
    return seed


@dataclass(frozen=True)
class Note:
    """One annotated note: its text and entity spans (start, end, label), character offsets."""

    note_id: str
    lang: str
    text: str
    spans: tuple[Span3, ...]


@dataclass(frozen=True)
class TrainConfig:
    """What a training run does; every field is logged as a parameter."""

    patients: int = 400
    seed: int = TRAIN_SEED
    epochs: int = 8
    validation_share: float = 0.2
    substitutions: int = 2
    dropout: float = 0.2
    batch_size: int = 16
    width: int = 64
    depth: int = 2
    embed_size: int = 2000
    held_out_seed: int = 9001
    held_out_patients: int = 60
    #: Varied wording (lakehouse/synthetic/wording.py): a hospital of ``seed`` in its train
    #: part is added to the training notes; the policy is chosen on a hospital of
    #: ``validation_seed`` in its validation part, and a hospital of ``held_out_seed`` in its
    #: held-out part is scored. 0 patients: the default notes only (split for validation).
    varied_patients: int = 400
    validation_seed: int = 7002
    validation_patients: int = 100
    varied_held_out_patients: int = 60
    #: Substituted copies of each varied note; when > 0, substitution (of every note) also
    #: draws on the varied vocabulary's train part. 0 by default: 1 scored lower on the
    #: validation notes (docs/nlp.md).
    varied_substitutions: int = 0
    #: Keep notes with a span off token boundaries, its tokens marked unknown (else: drop
    #: the note). On by default: it scored higher on the validation notes (docs/nlp.md).
    misaligned_missing: bool = True
    langs: tuple[str, ...] = rules.LANGS


@dataclass
class LangResult:
    """One language's training: sizes, chosen policy, metrics, the trained pipeline."""

    lang: str
    sizes: dict[str, int]
    merge: str
    metrics: dict[str, float]
    nlp: Language
    seconds: float
    run_id: str | None = None
    version: int | None = None


@dataclass
class TrainReport:
    """What one ``train`` call did."""

    config: TrainConfig
    results: list[LangResult] = field(default_factory=list)

    def describe(self) -> str:
        """One block per language: sizes, choice, F1 rules-only vs chosen policy (no text)."""
        lines = []
        for r in self.results:
            m = r.metrics
            lines.append(
                f"{r.lang}: {r.sizes['train_notes']} train notes (+{r.sizes['augmented_notes']} "
                f"substituted), {r.sizes['validation_notes']} validation; {r.seconds:.0f}s; "
                f"merge={r.merge}"
                + (f"; run {r.run_id} -> {model_name(r.lang)} v{r.version}" if r.run_id else "")
            )
            for split in SPLITS:
                shown = ", ".join(
                    f"{p} {m.get(f'{split}_{p}_f1', float('nan')):.4f}" for p in MERGE_POLICIES
                )
                if any(f"{split}_{p}_f1" in m for p in MERGE_POLICIES):
                    lines.append(f"  {split:<19} entity F1: {shown}")
        return "\n".join(lines)


# --- data ---------------------------------------------------------------------------------


def read_notes(hospital: Path, tag: str = "") -> list[Note]:
    """The annotated notes of a synthetic hospital (entities of ``TRAINED_LABELS`` only);
    ``tag`` prefixes the note ids (two hospitals of one seed share them).

    Annotations that dirt cut off (past the end of the file) or whose text no longer matches
    the file are dropped with their note: a note with a missing span would teach "no entity".
    """
    docs = pq.read_table(hospital / "truth" / "documents.parquet").to_pylist()
    ann = pq.read_table(hospital / "truth" / "note_annotations.parquet").to_pylist()
    by_note: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for a in ann:
        if a["kind"] == "entity" and a["label"] in TRAINED_LABELS:
            by_note[a["note_id"]].append(a)
    notes, dropped = [], 0
    for d in sorted(docs, key=lambda d: str(d["doc_id"])):
        path = hospital / d["file"]
        if d["source"] != "notes" or not path.exists():
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        gold = by_note[d["doc_id"]]
        if any(g["end"] > len(text) or text[g["start"] : g["end"]] != g["text"] for g in gold):
            dropped += 1
            continue
        spans = tuple(sorted((g["start"], g["end"], g["label"]) for g in gold))
        notes.append(Note(f"{tag}{d['doc_id']}", str(d["language"]), text, spans))
    logger.info("read %d annotated notes (%d dropped: cut or altered)", len(notes), dropped)
    return notes


def split_notes(notes: Sequence[Note], share: float, seed: int) -> tuple[list[Note], list[Note]]:
    """(train, validation): a note is in validation when the hash of seed and id is below share."""

    def bucket(note: Note) -> float:
        digest = hashlib.sha256(f"{seed}:{note.note_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    train = [n for n in notes if bucket(n) >= share]
    return train, [n for n in notes if bucket(n) < share]


def surfaces(lang: str, varied: bool = False) -> dict[str, list[str]]:
    """Label -> every ``lang`` surface form of that label in ``lexicon.json``; ``varied``:
    also the ``train`` part of the synthetic varied-wording vocabulary (never its validation
    or held-out parts)."""
    out: dict[str, list[str]] = defaultdict(list)
    for concept in load_resource("lexicon")["concepts"]:
        if concept["label"] in SUBSTITUTED_LABELS:
            out[concept["label"]].extend(concept.get(lang) or [])
    if varied:
        from lakehouse.synthetic.wording import vocabulary

        for label in SUBSTITUTED_LABELS:
            out[label].extend(t for t, _ in vocabulary(label, lang, "train"))
    return {k: sorted(set(v)) for k, v in out.items()}


def substitute(note: Note, rng: random.Random, varied: bool = False) -> Note:
    """``note`` with each CONDITION/SYMPTOM surface replaced by a random same-label lexicon
    surface (``varied``: or varied-wording ``train`` vocabulary surface; English: the
    original's capitalisation of the first letter kept)."""
    forms = surfaces(note.lang, varied)
    parts, spans, pos, shift = [], [], 0, 0
    for start, end, label in note.spans:
        old = note.text[start:end]
        new = rng.choice(forms[label]) if label in forms else old
        if old[:1].isupper() and not old.isupper() and new[:1].islower():
            new = new[:1].upper() + new[1:]
        parts.append(note.text[pos:start])
        parts.append(new)
        spans.append((start + shift, start + shift + len(new), label))
        shift += len(new) - (end - start)
        pos = end
    parts.append(note.text[pos:])
    return Note(f"{note.note_id}~{rng.random():.6f}", note.lang, "".join(parts), tuple(spans))


def augment(notes: Sequence[Note], copies: int, seed: int, varied: bool = False) -> list[Note]:
    """``copies`` substituted variants of each note (deterministic for ``seed``)."""
    rng = random.Random(seed)  # noqa: S311 (augmentation, not security)
    return [substitute(n, rng, varied) for n in notes for _ in range(copies)]


def to_docs(nlp: Language, notes: Iterable[Note], missing: bool = False) -> tuple[list[Doc], int]:
    """Reference docs (tokenized by ``nlp``, entities set exactly) and the count of notes with
    a span that does not fall on token boundaries. Such notes are left out, or with
    ``missing`` kept with the tokens the span touches marked unknown (neither entity nor
    outside: no loss either way), unless that overlaps another entity."""
    docs, misaligned = [], 0
    for note in notes:
        doc = nlp.make_doc(note.text)
        ents = [doc.char_span(s, e, label=lb, alignment_mode="strict") for s, e, lb in note.spans]
        bad = [note.spans[i] for i, span in enumerate(ents) if span is None]
        if bad:
            misaligned += 1
            if not missing:
                continue
        unknown = [doc.char_span(s, e, alignment_mode="expand") for s, e, _ in bad]
        try:
            doc.set_ents(
                [s for s in ents if s is not None],
                missing=[s for s in unknown if s is not None],
                default="outside",
            )
        except ValueError:  # the widened span overlaps an entity: leave the note out
            continue
        docs.append(doc)
    return docs, misaligned


def to_docbin(nlp: Language, notes: Iterable[Note]) -> tuple[DocBin, int]:
    """The notes as a spaCy ``DocBin`` (``.spacy`` training file) and the misaligned count."""
    docs, misaligned = to_docs(nlp, notes)
    return DocBin(docs=docs, store_user_data=False), misaligned


# --- model --------------------------------------------------------------------------------


def blank_trainable(lang: str, cfg: TrainConfig) -> Language:
    """A blank pipeline with the rules' tokenizer and an untrained ``ner`` of ``cfg``'s size."""
    tokenizer = build_pipeline(lang).tokenizer
    if lang == "zh":
        nlp = spacy.blank("zh", config={"nlp": {"tokenizer": {"segmenter": "jieba"}}})
        nlp.tokenizer.jieba_seg = tokenizer.jieba_seg  # type: ignore[union-attr]
    else:
        nlp = spacy.blank(lang)
    model = {
        "@architectures": "spacy.TransitionBasedParser.v2",
        "state_type": "ner",
        "extra_state_tokens": False,
        "hidden_width": 64,
        "maxout_pieces": 2,
        "use_upper": True,
        "nO": None,
        "tok2vec": {
            "@architectures": "spacy.HashEmbedCNN.v2",
            "pretrained_vectors": None,
            "width": cfg.width,
            "depth": cfg.depth,
            "embed_size": cfg.embed_size,
            "window_size": 1,
            "maxout_pieces": 3,
            "subword_features": True,
        },
    }
    ner = nlp.add_pipe("ner", config={"model": model})
    for label in TRAINED_LABELS:
        ner.add_label(label)  # type: ignore[attr-defined]
    nlp.meta["name"] = f"lakehouse_clinical_ner_{lang}"
    return nlp


def fit(lang: str, train_docs: Sequence[Doc], cfg: TrainConfig) -> Language:
    """Train ``ner`` from scratch on ``train_docs`` (seeded: the same data gives the same model)."""
    if not train_docs:
        raise error(ErrorCode.NLP_TRAINING_DATA_INVALID, stage="train", name=lang,
                    reason="no aligned annotated notes")  # fmt: skip
    fix_random_seed(cfg.seed)
    nlp = blank_trainable(lang, cfg)
    examples = [Example(nlp.make_doc(d.text), d) for d in train_docs]
    optimizer = nlp.initialize(lambda: examples)
    rng = random.Random(cfg.seed)  # noqa: S311 (shuffling, not security)
    for epoch in range(cfg.epochs):
        rng.shuffle(examples)
        losses: dict[str, float] = {}
        for i in range(0, len(examples), cfg.batch_size):
            batch = examples[i : i + cfg.batch_size]
            nlp.update(batch, drop=cfg.dropout, sgd=optimizer, losses=losses)
        logger.info("%s epoch %d: ner loss %.1f", lang, epoch + 1, losses.get("ner", 0.0))
    return nlp


def combined(lang: str, trained: Language | None, merge: str) -> Language:
    """The rules pipeline of ``lang`` with ``trained``'s NER in front (``merge`` policy)."""
    nlp = build_pipeline(lang, merge=merge)
    return nlp if trained is None or merge == "rules" else attach_trained(nlp, trained)


def score_notes(nlp: Language, notes: Iterable[Note]) -> dict[str, Counts]:
    """Exact span-and-label counts per label (and ``micro``) of ``nlp`` on ``notes``."""
    counts: dict[str, Counts] = defaultdict(Counts)
    for note in notes:
        doc = nlp(note.text)
        pred = {
            (e.start_char, e.end_char, e.label_) for e in doc.ents if e.label_ in TRAINED_LABELS
        }
        gold = set(note.spans)
        for label in TRAINED_LABELS:
            counts[label].add(
                {g for g in gold if g[2] == label}, {p for p in pred if p[2] == label}
            )
        counts["micro"].add(gold, pred)
    return counts


def _f1_metrics(prefix: str, per: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """``<prefix>_f1`` (micro) and ``<prefix>_<label>_f1/precision/recall``."""
    out = {}
    for label, s in per.items():
        key = prefix if label == "micro" else f"{prefix}_{label}"
        for m in ("f1", "precision", "recall"):
            out[f"{key}_{m}"] = float(s[m])
    return out


def choose(metrics: Mapping[str, float]) -> str:
    """The policy with the best validation micro F1. Ties go to ``rules``: the trained
    component has to earn its place by a measured gain (then ``add``, then ``longest``)."""
    order = ("rules", "add", "longest")
    return max(order, key=lambda p: (metrics[f"validation_{p}_f1"], -order.index(p)))


@dataclass(frozen=True)
class TrainData:
    """The notes and hospitals one training run uses (see ``SPLITS``)."""

    train: Sequence[Note]
    validation: Sequence[Note]
    validation_standard: Sequence[Note] = ()
    held_out: Path | None = None
    held_out_varied: Path | None = None
    challenge: list[dict[str, Any]] | None = None


#: Note id prefix of varied-wording notes (not augmented: their surfaces already vary).
VARIED_TAG = "varied/"


def train_language(lang: str, cfg: TrainConfig, data: TrainData) -> LangResult:
    """Train ``lang``'s NER, score every policy on validation, held-out and challenge data."""
    started = time.monotonic()
    train = [n for n in data.train if n.lang == lang]
    validation = [n for n in data.validation if n.lang == lang]
    if not validation:
        raise error(ErrorCode.NLP_TRAINING_DATA_INVALID, stage="validation", name=lang,
                    reason="the split left no notes; generate more patients")  # fmt: skip
    standard = [n for n in train if not n.note_id.startswith(VARIED_TAG)]
    varied = cfg.varied_patients > 0 and cfg.varied_substitutions > 0
    extra = augment(standard, cfg.substitutions, cfg.seed, varied)
    if varied:
        notes = [n for n in train if n.note_id.startswith(VARIED_TAG)]
        extra += augment(notes, cfg.varied_substitutions, cfg.seed + 1, varied)
    tokenizer = build_pipeline(lang)
    docs, misaligned = to_docs(tokenizer, [*train, *extra], missing=cfg.misaligned_missing)
    model = fit(lang, docs, cfg)
    metrics: dict[str, float] = {}
    scored = {"validation": validation}
    if data.validation_standard:
        scored["validation_standard"] = [n for n in data.validation_standard if n.lang == lang]
    hospitals = {"held_out": data.held_out, "held_out_varied": data.held_out_varied}
    challenge = data.challenge
    for policy in MERGE_POLICIES:
        nlp = combined(lang, model, policy)
        for split, notes in scored.items():
            counts = score_notes(nlp, notes)
            metrics.update(
                _f1_metrics(f"{split}_{policy}", {k: c.scores() for k, c in counts.items()})
            )
        for split, hospital in hospitals.items():
            if hospital is None:
                continue
            rep = evaluate(hospital, pipelines={lang: nlp}, phi=False)["entities"].get(lang)
            if rep:
                per = {"micro": rep["micro"], **rep["per_label"]}
                metrics.update(_f1_metrics(f"{split}_{policy}", per))
                metrics[f"{split}_{policy}_assertion_accuracy"] = rep["assertion_accuracy"]
        if challenge is not None:
            cases = [c for c in challenge if c["lang"] == lang]
            rep = score_cases(cases, pipelines={lang: nlp}).get(lang)
            if rep:
                metrics.update(_f1_metrics(f"challenge_{policy}", {"micro": rep["entities"]}))
                metrics[f"challenge_{policy}_assertion_accuracy"] = rep["assertion_accuracy"]
    chosen = choose(metrics)
    model.meta["lakehouse"] = {"merge": chosen, "seed": cfg.seed, "resources": versions()}
    sizes = {
        "train_notes": len(train),
        "varied_train_notes": len(train) - len(standard),
        "augmented_notes": len(extra),
        "train_docs": len(docs),
        "misaligned_notes": misaligned,
        "validation_notes": len(validation),
        "train_entities": sum(len(n.spans) for n in train),
    }
    return LangResult(lang, sizes, chosen, metrics, model, time.monotonic() - started)


def train(
    cfg: TrainConfig,
    *,
    hospital: Path | None = None,
    held_out: Path | None = None,
    challenge: Path | None = CHALLENGE,
) -> TrainReport:
    """Train one NER per language (no MLflow). ``hospital``: an existing training hospital
    generated with ``cfg.seed`` (else one is generated); ``held_out``: an evaluation hospital
    (else one of ``cfg.held_out_seed`` is generated when ``cfg.held_out_patients`` > 0)."""
    check_seed(cfg.seed)
    check_seed(cfg.validation_seed)
    if cfg.held_out_seed == cfg.seed:
        raise error(ErrorCode.NLP_TRAINING_SEED_HELD_OUT, found=cfg.held_out_seed,
                    expected=", ".join(map(str, sorted(HELD_OUT_SEEDS))))  # fmt: skip
    cases = json.loads(challenge.read_text("utf-8"))["cases"] if challenge else None
    with tempfile.TemporaryDirectory() as tmp:
        from lakehouse.synthetic import HospitalConfig, generate

        if hospital is None:
            hospital = Path(tmp) / "train"
            generate(hospital, HospitalConfig(patients=cfg.patients, sites=3, seed=cfg.seed))
        if held_out is None and cfg.held_out_patients > 0:
            held_out = Path(tmp) / "held_out"
            generate(
                held_out,
                HospitalConfig(patients=cfg.held_out_patients, sites=3, seed=cfg.held_out_seed),
            )
        train_notes, validation = split_notes(read_notes(hospital), cfg.validation_share, cfg.seed)
        data = TrainData(train_notes, validation, held_out=held_out, challenge=cases)
        if cfg.varied_patients > 0:
            varied: dict[str, tuple[int, int, NoteWording]] = {
                "train": (cfg.seed, cfg.varied_patients, "varied-train"),
                "validation": (cfg.validation_seed, cfg.validation_patients, "varied-validation"),
                "held_out": (cfg.held_out_seed, cfg.varied_held_out_patients, "varied-held-out"),
            }
            where = {}
            for part, (seed, patients, wording) in varied.items():
                if patients > 0:
                    where[part] = Path(tmp) / f"varied_{part}"
                    config = HospitalConfig(
                        patients=patients, sites=3, seed=seed, note_wording=wording
                    )
                    generate(where[part], config)
            data = replace(
                data,
                train=[*train_notes, *read_notes(where["train"], VARIED_TAG)],
                validation=read_notes(where["validation"], VARIED_TAG),
                validation_standard=validation,
                held_out_varied=where.get("held_out"),
            )
        report = TrainReport(cfg)
        for lang in cfg.langs:
            report.results.append(train_language(lang, cfg, data))
    return report


# --- packaging and tracking ---------------------------------------------------------------


class ClinicalNer:
    """MLflow pyfunc: ``predict`` takes texts (a ``text`` column or a list) and returns one
    row per entity of the rules + trained pipeline (note index, offsets, label, concept,
    assertion)."""

    def __init__(self) -> None:
        self.nlp: Language | None = None

    def load_context(self, context: Any) -> None:
        from models.nlp.pipeline import load_pipeline

        folder = Path(context.artifacts["pipeline"])
        self.nlp = load_pipeline(str(spacy.load(folder).lang), folder)

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        import pandas as pd

        texts = list(model_input["text"] if hasattr(model_input, "columns") else model_input)
        assert self.nlp is not None
        rows = [
            {
                "row": i,
                "start": e.start_char,
                "end": e.end_char,
                "label": e.label_,
                "text": e.text,
                "concept": e._.concept,
                "assertion": e._.assertion,
            }
            for i, doc in enumerate(self.nlp.pipe(str(t) for t in texts))
            for e in doc.ents
        ]
        columns = ["row", "start", "end", "label", "text", "concept", "assertion"]
        return pd.DataFrame(rows, columns=columns)


def _pyfunc_class() -> type:
    import mlflow.pyfunc

    return type("ClinicalNerModel", (ClinicalNer, mlflow.pyfunc.PythonModel), {})


def signature() -> Any:
    """Input: a ``text`` column; output: one row per entity (``ClinicalNer.predict``)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    out: list[ColSpec | TensorSpec] = [ColSpec("long", c) for c in ("row", "start", "end")]
    out += [ColSpec("string", c) for c in ("label", "text")]
    out += [ColSpec("string", "concept", required=False), ColSpec("string", "assertion")]
    return ModelSignature(inputs=Schema([ColSpec("string", "text")]), outputs=Schema(out))


def params(cfg: TrainConfig, result: LangResult) -> dict[str, Any]:
    """The MLflow parameters of one language's run."""
    out: dict[str, Any] = {k: v for k, v in asdict(cfg).items() if k != "langs"}
    out.update({"lang": result.lang, "merge": result.merge, "spacy_version": SPACY_VERSION})
    out.update({f"rules_{k}_version": v for k, v in versions().items()})
    out.update({f"size_{k}": v for k, v in result.sizes.items()})
    return out


def log_and_register(settings: Settings, report: TrainReport) -> TrainReport:
    """One MLflow run per language: params, metrics, the packaged pipeline; register it as
    ``clinical-ner-<lang>`` with alias ``champion``."""
    import mlflow
    import mlflow.pyfunc

    from lakehouse.tracking import register_champion, start_run

    requirements = [f"spacy=={SPACY_VERSION}"]
    try:
        import jieba

        requirements.append(f"jieba=={jieba.__version__}")
    except ImportError:  # pragma: no cover - jieba ships with the nlp extra
        pass
    for result in report.results:
        name = model_name(result.lang)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / result.lang
            result.nlp.to_disk(folder)
            tags = {"lakehouse.task": "clinical-ner", "lakehouse.lang": result.lang}
            with start_run(settings, EXPERIMENT, run_name=name, tags=tags) as run:
                mlflow.log_params(params(report.config, result))
                mlflow.log_metrics(result.metrics)
                mlflow.log_dict(result.sizes, "sizes.json")
                mlflow.pyfunc.log_model(
                    name=ARTIFACT_PATH,
                    python_model=_pyfunc_class()(),
                    artifacts={"pipeline": str(folder)},
                    pip_requirements=requirements,
                    signature=signature(),
                )
                result.run_id = run.info.run_id
        result.version = register_champion(settings, name, result.run_id, ARTIFACT_PATH)
    return report


def save(report: TrainReport, out: Path) -> None:
    """Write ``out/<lang>`` (spaCy folders ``nlp.trained_dir`` points at) and
    ``out/metrics.json`` (per language: chosen policy, sizes, every metric)."""
    out.mkdir(parents=True, exist_ok=True)
    for result in report.results:
        result.nlp.to_disk(out / result.lang)
    summary = {
        r.lang: {"merge": r.merge, "sizes": r.sizes, "metrics": r.metrics} for r in report.results
    }
    (out / "metrics.json").write_text(json.dumps(summary, indent=1, sort_keys=True), "utf-8")


def main(argv: list[str] | None = None) -> int:
    """Train, print the comparison; log to MLflow unless ``--no-mlflow``."""
    d = TrainConfig()
    ap = argparse.ArgumentParser(prog="python -m models.nlp.train")
    ap.add_argument("--patients", type=int, default=d.patients)
    ap.add_argument("--seed", type=int, default=d.seed, help="training hospital seed")
    ap.add_argument("--epochs", type=int, default=d.epochs)
    ap.add_argument("--substitutions", type=int, default=d.substitutions)
    ap.add_argument("--held-out-seed", type=int, default=d.held_out_seed)
    ap.add_argument("--held-out-patients", type=int, default=d.held_out_patients)
    ap.add_argument("--varied-patients", type=int, default=d.varied_patients, help="0: none")
    ap.add_argument("--validation-seed", type=int, default=d.validation_seed)
    ap.add_argument("--validation-patients", type=int, default=d.validation_patients)
    ap.add_argument("--varied-held-out-patients", type=int, default=d.varied_held_out_patients)
    ap.add_argument("--varied-substitutions", type=int, default=d.varied_substitutions)
    ap.add_argument("--drop-misaligned", action="store_true", help="drop misaligned notes")
    ap.add_argument("--lang", action="append", choices=rules.LANGS, help="default: both")
    ap.add_argument("--out", type=Path, help="also write the trained pipelines here")
    ap.add_argument("--no-mlflow", action="store_true", help="train and score only")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = replace(
        d,
        patients=args.patients,
        seed=args.seed,
        epochs=args.epochs,
        substitutions=args.substitutions,
        held_out_seed=args.held_out_seed,
        held_out_patients=args.held_out_patients,
        varied_patients=args.varied_patients,
        validation_seed=args.validation_seed,
        validation_patients=args.validation_patients,
        varied_held_out_patients=args.varied_held_out_patients,
        varied_substitutions=args.varied_substitutions,
        misaligned_missing=not args.drop_misaligned,
        langs=tuple(args.lang or rules.LANGS),
    )
    report = train(cfg)
    print(report.describe(), flush=True)
    if args.out:
        save(report, args.out)
    if not args.no_mlflow:
        from lakehouse.settings import load_settings

        log_and_register(load_settings(), report)
        print(report.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
