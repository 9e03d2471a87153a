"""Varied note wording (``note_wording="varied-<part>"``): deterministic, annotations exact,
the three parts disjoint, the default notes unchanged."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.synthetic import DirtRates, HospitalConfig, generate
from lakehouse.synthetic.wording import PARTS, split, vocabulary, wording

ROOT = Path(__file__).resolve().parents[3]
#: sha256 of the default notes and their annotations of a 12-patient hospital of seed 31,
#: taken before varied wording existed: the default output must keep its bytes (demo, truth
#: manifests and other tests depend on it). Change it only with a deliberate change of the
#: default wording.
DEFAULT_NOTES_DIGEST = "ff4bd0f40109f9e7eff2bca44115bed0607db510d2fd77dd3cf524999b4d5e3a"


def _notes(out: Path) -> list[tuple[dict[str, Any], str, list[dict[str, Any]]]]:
    docs = pq.read_table(out / "truth" / "documents.parquet").to_pylist()
    ann = pq.read_table(out / "truth" / "note_annotations.parquet").to_pylist()
    result = []
    for d in sorted(docs, key=lambda d: str(d["doc_id"])):
        if d["source"] != "notes":
            continue
        text = (out / d["file"]).read_text("utf-8")
        result.append((d, text, [a for a in ann if a["note_id"] == d["doc_id"]]))
    return result


def _digest(out: Path) -> str:
    h = hashlib.sha256()
    for d, text, spans in _notes(out):
        h.update(f"{d['file']}\0{text}\0".encode())
        for a in spans:
            h.update(json.dumps(a, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _config(wording_value: str = "standard", seed: int = 31) -> HospitalConfig:
    clean = DirtRates.clean()
    return HospitalConfig(patients=12, sites=3, seed=seed, dirt=clean, note_wording=wording_value)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def hospitals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("wording")
    out = {}
    for name in ("standard", "varied-train", "varied-held-out"):
        out[name] = root / name
        generate(out[name], _config(name))
    return out


def test_default_notes_keep_their_bytes(hospitals: dict[str, Path]) -> None:
    assert _digest(hospitals["standard"]) == DEFAULT_NOTES_DIGEST
    manifest = json.loads((hospitals["standard"] / "manifest.json").read_text("utf-8"))
    assert "note_wording" not in manifest["parameters"]
    varied = json.loads((hospitals["varied-train"] / "manifest.json").read_text("utf-8"))
    assert varied["parameters"]["note_wording"] == "varied-train"


def test_varied_notes_are_deterministic(tmp_path: Path, hospitals: dict[str, Path]) -> None:
    again = generate(tmp_path / "again", _config("varied-train")).out
    assert _digest(again) == _digest(hospitals["varied-train"])
    assert _digest(hospitals["varied-train"]) != _digest(hospitals["standard"])


@pytest.mark.parametrize("name", ["varied-train", "varied-held-out"])
def test_varied_annotations_match_the_text(hospitals: dict[str, Path], name: str) -> None:
    notes = _notes(hospitals[name])
    assert notes
    labels, statuses = set(), set()
    for _, text, spans in notes:
        for a in spans:
            assert text[a["start"] : a["end"]] == a["text"]
            if a["kind"] == "entity":
                labels.add(a["label"])
                statuses.add(a["assertion"])
        entities = sorted((a["start"], a["end"]) for a in spans)
        assert all(e1 <= s2 for (_, e1), (s2, _) in itertools.pairwise(entities))
    assert {"CONDITION", "SYMPTOM"} <= labels
    assert {"present", "negated", "possible", "family"} <= statuses


def test_a_part_uses_only_its_own_vocabulary(hospitals: dict[str, Path]) -> None:
    for name, part in (("varied-train", "train"), ("varied-held-out", "held_out")):
        others = {
            t
            for other in PARTS
            if other != part
            for lang in ("zh", "en")
            for label in ("CONDITION", "SYMPTOM")
            for t, _ in vocabulary(label, lang, other)
        }
        own = {
            t.lower()
            for lang in ("zh", "en")
            for label in ("CONDITION", "SYMPTOM")
            for t, _ in vocabulary(label, lang, part)
        }
        surfaces = {a["text"].lower() for _, _, spans in _notes(hospitals[name]) for a in spans}
        assert surfaces & own, "the part's vocabulary is used"
        assert not surfaces & {t.lower() for t in others} - own


def test_every_list_splits_into_three_disjoint_parts() -> None:
    data = wording()
    lists: list[list[Any]] = [
        frames
        for by_status in data["frames"].values()
        for by_lang in by_status.values()
        for frames in by_lang.values()
    ]
    lists += [items for by_label in data["vocabulary"].values() for items in by_label.values()]
    for items in lists:
        parts = [split(items, p, key=lambda x: json.dumps(x)) for p in PARTS]
        assert all(parts), "every part gets at least one item"
        flat = [json.dumps(x) for part in parts for x in part]
        assert sorted(flat) == sorted(json.dumps(x) for x in items)  # disjoint, complete
        assert split(items, "held_out", key=lambda x: json.dumps(x)) == parts[2]  # stable


def test_vocabulary_is_outside_the_lexicon_and_the_challenge_set() -> None:
    lexicon = json.loads((ROOT / "models/nlp/resources/lexicon.json").read_text("utf-8"))
    known = {
        s.lower() for c in lexicon["concepts"] for lang in ("zh", "en") for s in c.get(lang) or []
    }
    challenge = json.loads((ROOT / "tests/unit/nlp/data/challenge.json").read_text("utf-8"))
    known |= {e[0].lower() for case in challenge["cases"] for e in case["entities"]}
    vocab = [
        t.lower()
        for by_label in wording()["vocabulary"].values()
        for items in by_label.values()
        for t, _ in items
    ]
    assert len(vocab) == len(set(vocab))
    assert not set(vocab) & known


def test_an_unknown_wording_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LakehouseError) as info:
        generate(tmp_path, _config("varied-everything"))
    assert info.value.code is ErrorCode.SYNTH_PARAMETER_INVALID


def test_the_synth_command_takes_a_wording(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lakehouse_cli.main import app

    out = tmp_path / "h"
    args = ["synth", "--patients", "3", "--seed", "3", "--clean", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--note-wording", "varied-held-out"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    assert manifest["parameters"]["note_wording"] == "varied-held-out"
    bad = CliRunner().invoke(app, [*args[:-1], str(tmp_path / "x"), "--note-wording", "odd"])
    assert bad.exit_code == ErrorCode.SYNTH_PARAMETER_INVALID.exit_status
