"""Does each modality carry signal, and do they add up? A quick check with simple models.

``python -m models.multimodal.signal --lakehouse`` reads the cohort of the configured
lakehouse (:func:`models.multimodal.dataset.load`); ``--synthetic DIR`` builds the same
kind of set straight from a synthetic hospital's truth and files (no Spark: notes with the
truth's PHI spans removed, images decoded from the DICOM files), to check the generator.

Per modality a scikit-learn logistic regression: tabular (median imputation, scaling), text
(TF-IDF of character 1-3-grams), image (pixels block-averaged to 16x16 plus ``has_image``),
and ``joint``, one logistic regression over all three feature sets side by side. Reported:
AUROC on the held-out split (train on train) and 5-fold cross-validated AUROC over every
row (folds by person), the steadier figure on a few hundred persons.
"""

from __future__ import annotations

import argparse
import json
import zlib
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from models.multimodal.dataset import (
    IMAGE_SIZE,
    MULTIMODAL_TASK,
    TABULAR_COLUMNS,
    TEXT_MAX_CHARS,
    MultimodalSet,
)

MODALITIES = ("tabular", "text", "image", "joint")
POOL = 4  # 64x64 -> 16x16


def _blocks(x: MultimodalSet) -> dict[str, Any]:
    """Feature builders fitted on one set of rows and applied to another."""
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def tab() -> Any:
        return make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()
        )

    def text() -> Any:
        return TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), min_df=2, sublinear_tf=True)

    def img() -> Any:
        return StandardScaler()

    def image_features(s: MultimodalSet) -> np.ndarray:
        n = len(s)
        k = IMAGE_SIZE // POOL
        pooled = s.image.reshape(n, k, POOL, k, POOL).mean(axis=(2, 4)).reshape(n, k * k)
        return np.hstack([pooled, s.has_image[:, None].astype(np.float32)])

    return {
        "tabular": (tab, lambda s: s.tabular),
        "text": (text, lambda s: s.text),
        "image": (img, image_features),
        "sparse": sparse,
    }


def fit_predict(train: MultimodalSet, test: MultimodalSet, modality: str, seed: int) -> np.ndarray:
    """Probability of the label on ``test`` from a model of ``modality`` fitted on ``train``."""
    from sklearn.linear_model import LogisticRegression

    blocks = _blocks(train)
    sparse = blocks["sparse"]
    names = ("tabular", "text", "image") if modality == "joint" else (modality,)
    xtr, xte = [], []
    for name in names:
        make, get = blocks[name]
        tf = make()
        xtr.append(sparse.csr_matrix(tf.fit_transform(get(train))))
        xte.append(sparse.csr_matrix(tf.transform(get(test))))
    model = LogisticRegression(C=0.5, max_iter=3000, random_state=seed)
    model.fit(sparse.hstack(xtr).tocsr(), train.label)
    return np.asarray(model.predict_proba(sparse.hstack(xte).tocsr())[:, 1])


def evaluate(data: MultimodalSet, *, seed: int = 0, folds: int = 5) -> dict[str, dict[str, float]]:
    """Held-out and cross-validated AUROC of each modality (module docstring)."""
    from sklearn.metrics import roc_auc_score

    out: dict[str, dict[str, float]] = {}
    train = data.subset(data.split == "train")
    held = data.subset(data.split == "held_out")
    persons = np.unique(data.person_id)
    rng = np.random.default_rng(seed)
    fold_of = dict(
        zip(rng.permutation(persons).tolist(), np.arange(len(persons)) % folds, strict=True)
    )
    fold = np.array([fold_of[int(p)] for p in data.person_id])
    for m in MODALITIES:
        row: dict[str, float] = {}
        if len(np.unique(held.label)) == 2 and len(np.unique(train.label)) == 2:
            row["held_out_auroc"] = float(
                roc_auc_score(held.label, fit_predict(train, held, m, seed))
            )
        pred = np.zeros(len(data))
        for k in range(folds):
            test = fold == k
            pred[test] = fit_predict(data.subset(~test), data.subset(test), m, seed)
        row["cv_auroc"] = float(roc_auc_score(data.label, pred))
        out[m] = row
    return out


def from_synthetic(out: Path, split_seed: int = 0) -> MultimodalSet:
    """A :class:`MultimodalSet` from a synthetic hospital's truth and files (no lakehouse):
    index = each person's last encounter start; tabular = age and sex only."""
    import pyarrow.parquet as pq

    from lakehouse.features.images import decode

    def truth(name: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = pq.read_table(out / "truth" / f"{name}.parquet").to_pylist()
        return rows

    enc = {e["encounter_id"]: e for e in truth("encounters")}
    index: dict[str, Any] = {}
    for e in enc.values():
        index[e["person_id"]] = max(index.get(e["person_id"], e["start"]), e["start"])
    risk = {r["person_id"]: r for r in truth("lung_risk")}
    phi: dict[str, list[tuple[int, int]]] = {}
    for a in truth("note_annotations"):
        if a["kind"] == "phi":
            phi.setdefault(a["note_id"], []).append((a["start"], a["end"]))
    notes: dict[str, list[tuple[Any, str]]] = {}
    for d in truth("documents"):
        at = enc[d["encounter_id"]]["start"] + timedelta(hours=3)
        if d["source"] != "notes" or at >= index[d["person_id"]]:
            continue
        text = (out / d["file"]).read_bytes().decode("utf-8", errors="replace")
        for start, end in sorted(phi.get(d["doc_id"], []), reverse=True):
            text = text[:start] + text[end:]
        notes.setdefault(d["person_id"], []).append((at, text))
    images: dict[str, tuple[Any, str]] = {}
    for lab in truth("image_labels"):
        at = enc[lab["encounter_id"]]["start"] + timedelta(hours=2)
        pid = lab["person_id"]
        if at <= index[pid] and (pid not in images or at > images[pid][0]):
            images[pid] = (at, lab["file"])
    persons = truth("persons")
    n = len(persons)
    tab = np.full((n, len(TABULAR_COLUMNS)), np.nan, dtype=np.float32)
    img = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    has = np.zeros(n, dtype=bool)
    texts = []
    for i, p in enumerate(persons):
        pid = p["person_id"]
        tab[i, TABULAR_COLUMNS.index("age_years")] = (
            index[pid].date() - p["birth_date"]
        ).days / 365.25
        tab[i, TABULAR_COLUMNS.index("sex_male")] = 1.0 if p["sex"] == "M" else 0.0
        texts.append("\n\n".join(t for _, t in sorted(notes.get(pid, [])))[-TEXT_MAX_CHARS:])
        if pid in images:
            try:
                img[i], _ = decode((out / images[pid][1]).read_bytes())
                has[i] = True
            except (OSError, ValueError):
                pass
    split = np.array(
        [("held_out" if h == 9 else "tuning" if h == 8 else "train") for h in
         (zlib.crc32(f"{split_seed}:{p['person_id']}".encode()) % 10 for p in persons)],
        dtype=object,
    )  # fmt: skip
    return MultimodalSet(
        task=MULTIMODAL_TASK,
        index_id=[p["person_id"] for p in persons],
        person_id=np.arange(n, dtype=np.int64),
        split=split,
        label=np.array([int(risk[p["person_id"]]["copd"]) for p in persons], dtype=np.int64),
        tabular=tab,
        tabular_columns=TABULAR_COLUMNS,
        text=texts,
        image=img,
        has_image=has,
        versions={},
    )


def describe(data: MultimodalSet, result: dict[str, dict[str, float]]) -> str:
    lines = [
        f"{data.task}: {len(data)} rows, prevalence {data.label.mean():.3f}, "
        f"with image {data.has_image.mean():.3f}, "
        f"with text {np.mean([bool(t) for t in data.text]):.3f}, "
        f"held-out rows {int((data.split == 'held_out').sum())}",
        f"{'modality':<10}{'held-out AUROC':>16}{'5-fold AUROC':>14}",
    ]
    for m, row in result.items():
        held = row.get("held_out_auroc", float("nan"))
        lines.append(f"{m:<10}{held:>16.3f}{row['cv_auroc']:>14.3f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="models.multimodal.signal", description=__doc__)
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--synthetic", type=Path, help="a synthetic hospital folder (OUT)")
    src.add_argument("--lakehouse", action="store_true", help="the configured lakehouse")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.lakehouse:
        from lakehouse.settings import load_settings
        from lakehouse.spark import build_spark
        from models.multimodal.dataset import load

        cfg = load_settings()
        data = load(build_spark(cfg), cfg)
    else:
        data = from_synthetic(args.synthetic)
    result = evaluate(data)
    print(json.dumps(result, indent=2) if args.json else describe(data, result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
