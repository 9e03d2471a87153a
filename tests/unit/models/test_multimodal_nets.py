"""The multimodal nets on a small fake set with planted signal in each modality (CPU, no
Spark, no server): the joint model beats each single modality on the held-out split, a refit
gives the same metrics, and the saved model and its pyfunc predict what the fit did."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from models.metrics import paired_auroc_gain
from models.multimodal.nets import (
    MODELS,
    FitResult,
    FittedModel,
    NetConfig,
    decode_images,
    fit,
    tabular_stats,
    text_ids,
)
from models.multimodal.pyfunc import (
    ARTIFACT,
    IMAGE_COLUMN,
    TEXT_COLUMN,
    MultimodalPyfunc,
    input_example,
    signature,
)
from models.multimodal.train import ComparisonRow, Gain, format_comparison, joint_gains
from tests.unit.models.fake_multimodal import FakeSet, fake_set

CONFIG = NetConfig(epochs=8, threads=1)


@pytest.fixture(scope="module")
def data() -> FakeSet:
    return fake_set(1000)


@pytest.fixture(scope="module")
def fitted(data: FakeSet) -> dict[str, FitResult]:
    return {name: fit(data, CONFIG, modalities=mods, device="cpu") for name, mods in MODELS.items()}


def test_text_ids_are_stable_for_any_script() -> None:
    cfg = NetConfig()
    zh, en = text_ids("胸痛加重，呼吸困难。", cfg), text_ids("Chest  PAIN worse", cfg)
    assert len(zh) == 10 + 9 + 8
    assert len(en) == 16 + 15 + 14
    assert (zh >= 0).all()
    assert (zh < cfg.text_buckets).all()
    assert np.array_equal(en, text_ids("chest pain worse", cfg))  # case, whitespace
    assert len(text_ids("", cfg)) == len(text_ids("   ", cfg)) == 0
    assert np.array_equal(text_ids("x" * 5000, cfg), text_ids("x" * cfg.text_max_chars, cfg))


def test_tabular_stats_and_images_decode() -> None:
    x = np.array([[1.0, np.nan, 5.0], [3.0, np.nan, 5.0], [np.nan, np.nan, 5.0]])
    median, mean, std = tabular_stats(x)
    assert median.tolist() == [2.0, 0.0, 5.0]
    assert mean.tolist() == [2.0, 0.0, 5.0]
    assert std[1] == std[2] == 1.0
    blank = np.full((64, 64), 0.5, dtype="<f4").tobytes()
    images, mask = decode_images([blank, None, b"short"])
    assert mask.tolist() == [True, False, False]
    assert images[0].mean() == pytest.approx(0.5)
    assert images[1:].sum() == 0


def test_joint_beats_each_single_modality_on_held_out(fitted: dict[str, FitResult]) -> None:
    auroc = {name: r.metrics["held_out_auroc"] for name, r in fitted.items()}
    for name in ("text", "image", "tabular"):
        assert 0.6 < auroc[name] < auroc["joint"], auroc
    for r in fitted.values():
        for key in ("held_out_auprc", "held_out_ece", "held_out_brier", "tuning_auroc"):
            assert 0.0 <= r.metrics[key] <= 1.0
        assert r.metrics["held_out_rows"] == 100


def test_joint_gains_carry_paired_intervals_and_the_verdict_reads_them(
    data: FakeSet, fitted: dict[str, FitResult]
) -> None:
    held = np.asarray(data.split).astype(str) == "held_out"
    y = np.asarray(data.label)[held]
    scores = {name: r.held_out for name, r in fitted.items()}
    assert all(s is not None and len(s) == len(y) for s in scores.values())
    gains = joint_gains(y, scores, seed=0)  # type: ignore[arg-type]
    assert [g.versus for g in gains] == ["text", "image", "tabular"]
    auroc = {name: r.metrics["held_out_auroc"] for name, r in fitted.items()}
    for g in gains:
        assert g.gain == pytest.approx(auroc["joint"] - auroc[g.versus])
        assert g.lo < g.gain < g.hi
    rows = [ComparisonRow("joint", "r", 0.9, auroc["joint"], 0.8, 0.05, 0.1, 100, 30)]
    text = format_comparison(rows, gains)
    assert "vs text" in text
    assert "vs image" in text
    assert "vs tabular" in text
    wide = [Gain(g.versus, g.gain, -0.01, g.hi) for g in gains]
    assert "too few to rank them" in format_comparison(rows, wide)
    worse = [Gain("text", -0.02, -0.1, 0.05)]
    assert "does not beat every single modality" in format_comparison(rows, worse)
    assert joint_gains(y, {"text": scores["text"]}, seed=0) == []  # type: ignore[dict-item]


def test_paired_bootstrap_agrees_with_sklearn_and_is_centred() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    a, b = y + rng.normal(0, 1, 300), np.round(y + rng.normal(0, 2, 300))  # b has ties
    gain, lo, hi = paired_auroc_gain(y, a, b, draws=500)
    assert gain == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b))
    assert lo < gain < hi
    same = paired_auroc_gain(y, a, a, draws=200)
    assert same == (0.0, 0.0, 0.0)
    assert all(np.isnan(v) for v in paired_auroc_gain(np.ones(5), a[:5], b[:5]))


def test_a_refit_reproduces_the_metrics(data: FakeSet, fitted: dict[str, FitResult]) -> None:
    again = fit(data, CONFIG, modalities=MODELS["joint"], device="cpu")
    assert again.metrics == fitted["joint"].metrics
    other = fit(data, NetConfig(epochs=8, threads=1, seed=1), modalities=MODELS["joint"])
    assert other.metrics != fitted["joint"].metrics  # the seed matters, so it is logged


def test_config_round_trips_through_params() -> None:
    cfg = NetConfig(seed=3, epochs=5, learning_rate=0.01, text_buckets=1024)
    assert NetConfig.from_params(cfg.params()) == cfg


def _frame(data: FakeSet, rows: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(data.tabular[rows].astype("float64"), columns=list(data.tabular_columns))
    frame[TEXT_COLUMN] = [data.text[i] for i in rows]
    frame[IMAGE_COLUMN] = [
        data.image[i].astype("<f4").tobytes() if data.has_image[i] else None for i in rows
    ]
    return frame


def test_saved_model_and_pyfunc_predict_what_the_fit_did(
    tmp_path: Path, data: FakeSet, fitted: dict[str, FitResult]
) -> None:
    model = fitted["joint"].model
    rows = np.flatnonzero(data.split == "held_out")[:20]
    expected = model.predict(
        data.tabular[rows], [data.text[i] for i in rows], data.image[rows], data.has_image[rows]
    )
    folder = model.save(tmp_path / "net")
    assert np.array_equal(FittedModel.load(folder).predict(
        data.tabular[rows], [data.text[i] for i in rows], data.image[rows], data.has_image[rows]
    ), expected)  # fmt: skip
    example = input_example(model, data.tabular[data.split == "train"])
    assert list(example.columns) == [*data.tabular_columns, TEXT_COLUMN, IMAGE_COLUMN]
    mlflow.pyfunc.save_model(
        str(tmp_path / "pyfunc"),
        python_model=MultimodalPyfunc(),
        artifacts={ARTIFACT: str(folder)},
        signature=signature(model),
        input_example=example,
    )
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "pyfunc"))
    got = np.asarray(loaded.predict(_frame(data, rows)))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert np.asarray(loaded.predict(example)).shape == (1,)
