"""Training data and the trained component, cheaply: hand-made notes, a tiny model, no MLflow.

The real training (a synthetic hospital, MLflow run, registered model) is
tests/integration/nlp/test_train_mlflow.py (slow).
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.settings import load_settings
from models.nlp.components import _merge
from models.nlp.notes import process_note
from models.nlp.pipeline import build_pipeline, load_pipeline, ner_model, pipeline_for
from models.nlp.rules import Concept
from models.nlp.train import (
    HELD_OUT_SEEDS,
    Note,
    TrainConfig,
    check_seed,
    choose,
    combined,
    fit,
    score_notes,
    substitute,
    surfaces,
    to_docbin,
    to_docs,
    train,
)


def _note(lang: str, text: str, *marked: tuple[str, str]) -> Note:
    spans = []
    for surface, label in marked:
        start = text.index(surface)
        spans.append((start, start + len(surface), label))
    return Note(f"n-{len(text)}", lang, text, tuple(sorted(spans)))


NOTES = [
    _note(
        "zh",
        "否认高血压史。无胸痛。母亲患有2型糖尿病。",
        ("高血压", "CONDITION"),
        ("胸痛", "SYMPTOM"),
        ("2型糖尿病", "CONDITION"),
    ),
    _note("zh", "考虑肺炎可能。未见贫血表现。", ("肺炎", "CONDITION"), ("贫血", "CONDITION")),
    _note(
        "en",
        "Denies anemia. No headache. Assessment: type 2 diabetes.",
        ("anemia", "CONDITION"),
        ("headache", "SYMPTOM"),
        ("type 2 diabetes", "CONDITION"),
    ),
    _note(
        "en",
        "Possible pneumonia. Family history of hypertension (father).",
        ("pneumonia", "CONDITION"),
        ("hypertension", "CONDITION"),
    ),
]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_docbin_keeps_every_span_exact(lang: str) -> None:
    nlp = build_pipeline(lang)
    notes = [n for n in NOTES if n.lang == lang]
    notes += [substitute(n, random.Random(i)) for i, n in enumerate(notes * 3)]
    docbin, misaligned = to_docbin(nlp, notes)
    assert misaligned == 0
    docs = list(docbin.get_docs(nlp.vocab))
    assert [d.text for d in docs] == [n.text for n in notes]
    for doc, note in zip(docs, notes, strict=True):
        assert [(e.start_char, e.end_char, e.label_) for e in doc.ents] == list(note.spans)


def test_misaligned_spans_leave_the_note_out() -> None:
    note = Note("x", "en", "Denies anemias.", ((7, 13, "CONDITION"),))  # inside a token
    docs, misaligned = to_docs(build_pipeline("en"), [note])
    assert (docs, misaligned) == ([], 1)


@pytest.mark.parametrize("note", NOTES, ids=lambda n: n.text[:12])
def test_substitution_uses_same_label_lexicon_surfaces(note: Note) -> None:
    forms = surfaces(note.lang)
    for seed in range(5):
        new = substitute(note, random.Random(seed))
        assert len(new.spans) == len(note.spans)
        for (s, e, label), (_, _, old_label) in zip(new.spans, note.spans, strict=True):
            assert label == old_label
            assert new.text[s:e].lower() in {f.lower() for f in forms[label]}
        # the text between the entities is untouched
        assert new.text[new.spans[-1][1] :] == note.text[note.spans[-1][1] :]


@pytest.mark.parametrize("seed", sorted(HELD_OUT_SEEDS))
def test_the_evaluation_seeds_are_refused(seed: int) -> None:
    with pytest.raises(LakehouseError) as info:
        check_seed(seed)
    assert info.value.code is ErrorCode.NLP_TRAINING_SEED_HELD_OUT
    with pytest.raises(LakehouseError) as info:
        train(dataclasses.replace(TrainConfig(), seed=seed), challenge=None)
    assert info.value.code is ErrorCode.NLP_TRAINING_SEED_HELD_OUT
    assert check_seed(7001) == 7001


def test_merge_policies() -> None:
    c = Concept("HTN", "CONDITION", None, None)
    rules_spans = [(0, 3, "CONDITION", c)]  # 高血压 inside 高血压3级
    proposed = [(0, 5, "CONDITION", None), (8, 10, "SYMPTOM", None)]
    assert _merge(rules_spans, proposed, "rules") == rules_spans
    assert sorted(_merge(rules_spans, proposed, "add")) == [
        (0, 3, "CONDITION", c),
        (8, 10, "SYMPTOM", None),
    ]
    assert sorted(_merge(rules_spans, proposed, "longest")) == [
        (0, 5, "CONDITION", None),
        (8, 10, "SYMPTOM", None),
    ]
    assert _merge(rules_spans, [(0, 3, "SYMPTOM", None)], "longest") == rules_spans  # tie: rules


def test_a_tiny_trained_ner_loads_from_a_folder(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TrainConfig(), epochs=2, width=32, depth=1, embed_size=500)
    nlp = build_pipeline("en")
    docs, _ = to_docs(nlp, [n for n in NOTES if n.lang == "en"] * 4)
    model = fit("en", docs, cfg)
    model.meta["lakehouse"] = {"merge": "add"}
    model.to_disk(tmp_path / "en")
    loaded = load_pipeline("en", tmp_path)
    assert loaded.pipe_names[0] == "trained_ner"
    configured = load_settings(home=tmp_path, nlp={"trained_dir": "."})
    assert pipeline_for(configured, "en").pipe_names[0] == "trained_ner"
    assert "trained_ner" not in pipeline_for(load_settings(home=tmp_path), "en").pipe_names
    text = "Denies anemia. Family history of hypertension (father)."
    # "add" never removes a rules span: every rules entity is still there, coded
    rules_only = {(e.start_char, e.end_char, e.label_) for e in load_pipeline("en")(text).ents}
    doc = loaded(text)
    assert rules_only <= {(e.start_char, e.end_char, e.label_) for e in doc.ents}
    assert {e.text: e._.assertion for e in doc.ents if e._.concept} == {
        "anemia": "negated",
        "hypertension": "family",
    }
    counts = score_notes(combined("en", model, "rules"), [n for n in NOTES if n.lang == "en"])
    assert counts["micro"].fn == 0
    assert counts["micro"].fp == 0
    # the NLP job hands the configured model to its workers: same entities, named in nlp_system
    job = process_note(text, "en", "H0001|P1", 0, b"k" * 32, ner_model(configured))
    assert job["nlp_system"].endswith(f";ner={tmp_path.name})")
    assert {(e["start_char"], e["end_char"], e["label"]) for e in job["entities"]} == {
        (e.start_char, e.end_char, e.label_) for e in doc.ents
    }
    assert ";ner=" not in process_note(text, "en", "H0001|P1", 0, b"k" * 32)["nlp_system"]
    with pytest.raises(LakehouseError) as info:
        load_pipeline("zh", tmp_path / "en")  # an English model for Chinese
    assert info.value.code is ErrorCode.NLP_TRAINED_MODEL_INVALID


def test_the_trained_component_must_earn_its_place() -> None:
    tie = {"validation_rules_f1": 1.0, "validation_add_f1": 1.0, "validation_longest_f1": 1.0}
    assert choose(tie) == "rules"
    assert choose({**tie, "validation_rules_f1": 0.9, "validation_longest_f1": 0.95}) == "add"


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_varied_substitution_draws_only_on_the_train_vocabulary(lang: str) -> None:
    from lakehouse.synthetic.wording import vocabulary

    lexicon, varied = surfaces(lang), surfaces(lang, varied=True)
    for label in ("CONDITION", "SYMPTOM"):
        train_part = {t for t, _ in vocabulary(label, lang, "train")}
        assert set(varied[label]) == set(lexicon[label]) | train_part
        for part in ("validation", "held_out"):
            assert not {t for t, _ in vocabulary(label, lang, part)} & set(varied[label])


def test_the_policy_is_chosen_on_validation_only() -> None:
    # held-out and challenge figures never decide
    metrics = {"validation_rules_f1": 0.7, "validation_add_f1": 0.8, "validation_longest_f1": 0.75}
    metrics |= {"held_out_varied_rules_f1": 1.0, "challenge_rules_f1": 1.0}
    assert choose(metrics) == "add"


def test_misaligned_spans_can_stay_as_unknown_tokens() -> None:
    note = Note(
        "x", "en", "Denies anemias. No headache.", ((7, 13, "CONDITION"), (19, 27, "SYMPTOM"))
    )
    docs, misaligned = to_docs(build_pipeline("en"), [note], missing=True)
    assert misaligned == 1
    assert [(t.text, t.ent_iob_, t.ent_type_) for t in docs[0]] == [
        ("Denies", "O", ""),
        ("anemias", "", ""),  # unknown: no loss for entity or outside
        (".", "O", ""),
        ("No", "O", ""),
        ("headache", "B", "SYMPTOM"),
        (".", "O", ""),
    ]
