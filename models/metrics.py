"""Binary-classifier metrics every model of issue 9 reports: AUROC, AUPRC, Brier score, ECE.

Free of Spark and MLflow (numpy and scikit-learn only), so the torch training loop of
``models.multimodal.nets`` reports the same metrics as the tabular baseline wherever it runs.
"""

from __future__ import annotations

import math

import numpy as np

#: Metrics :func:`evaluate` returns (and ``reproduce`` compares).
METRICS = ("auroc", "auprc", "brier", "ece")
CALIBRATION_BINS = 10
#: Resampled scores held at once by :func:`paired_auroc_gain` (draws x rows).
BOOTSTRAP_CELLS = 2_000_000


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Mean |observed rate - mean prediction| over equal-width probability bins, by weight."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += float(mask.sum()) * abs(float(y[mask].mean()) - float(p[mask].mean()))
    return total / max(len(y), 1)


def evaluate(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """AUROC, AUPRC, Brier score and expected calibration error of scores ``p``."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    return {
        "auroc": float(roc_auc_score(y, p)),
        "auprc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
    }


def _auroc_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """AUROC of each row of scores ``p`` against labels ``y`` (both draws x n; every row
    holds both labels): the Mann-Whitney statistic from average ranks (ties count half)."""
    from scipy.stats import rankdata

    ranks = rankdata(p, axis=1)
    pos = y.sum(axis=1)
    neg = y.shape[1] - pos
    auroc = ((ranks * y).sum(axis=1) - pos * (pos + 1) / 2) / (pos * neg)
    return np.asarray(auroc, dtype=np.float64)


def paired_auroc_gain(
    y: np.ndarray,
    p_a: np.ndarray,
    p_b: np.ndarray,
    *,
    draws: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """AUROC(``p_a``) - AUROC(``p_b``) on the same rows, with a paired percentile-bootstrap
    interval at ``level``: rows are resampled with both models' scores together, so the
    interval reflects only how the two differ on these persons. Resamples holding one label
    are left out. NaNs when ``y`` holds one label."""
    y = np.asarray(y, dtype=np.int64)
    p_a, p_b = np.asarray(p_a, dtype=np.float64), np.asarray(p_b, dtype=np.float64)
    if len(np.unique(y)) < 2:
        return math.nan, math.nan, math.nan
    whole = _auroc_rows(y[None, :], p_a[None, :]) - _auroc_rows(y[None, :], p_b[None, :])
    rng = np.random.default_rng(seed)
    chunk = max(1, BOOTSTRAP_CELLS // len(y))  # draws at a time: bounded memory
    parts = []
    for start in range(0, draws, chunk):
        idx = rng.integers(0, len(y), (min(chunk, draws - start), len(y)))
        ys = y[idx]
        both = (ys.min(axis=1) == 0) & (ys.max(axis=1) == 1)
        idx, ys = idx[both], ys[both]
        parts.append(_auroc_rows(ys, p_a[idx]) - _auroc_rows(ys, p_b[idx]))
    diffs = np.concatenate(parts)
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(diffs, [tail, 100 - tail])
    return float(whole[0]), float(lo), float(hi)
