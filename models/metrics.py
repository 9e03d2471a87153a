"""Binary-classifier metrics every model of issue 9 reports: AUROC, AUPRC, Brier score, ECE.

Free of Spark and MLflow (numpy and scikit-learn only), so the torch training loop of
``models.multimodal.nets`` reports the same metrics as the tabular baseline wherever it runs.
"""

from __future__ import annotations

import numpy as np

#: Metrics :func:`evaluate` returns (and ``reproduce`` compares).
METRICS = ("auroc", "auprc", "brier", "ece")
CALIBRATION_BINS = 10


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
