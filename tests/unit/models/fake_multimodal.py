"""A small MultimodalSet-shaped set with planted signal in each modality (no Spark).

Each row has three independent latent risks (tabular, text, image); the label draws from
their sum, so each modality alone predicts part of it and the joint model more.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

POSITIVE = ["胸痛加重", "呼吸困难", "chest pain worse", "高血糖", "short of breath"]
NEGATIVE = ["病情稳定", "无不适", "stable today", "睡眠良好", "no complaints"]
COLUMNS = ("age_years", "risk_lab", "noise_a", "noise_b")


@dataclass(frozen=True)
class FakeSet:
    task: str
    index_id: list[str]
    person_id: np.ndarray
    split: np.ndarray
    label: np.ndarray
    tabular: np.ndarray
    tabular_columns: tuple[str, ...]
    text: list[str]
    image: np.ndarray
    has_image: np.ndarray
    versions: dict[str, int] = field(default_factory=dict)


def fake_set(n: int = 1000, seed: int = 0) -> FakeSet:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    logit = -0.5 + 1.6 * z.sum(axis=1)
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    tab = np.column_stack(
        [50 + 10 * rng.normal(size=n), z[:, 0] + 0.3 * rng.normal(size=n),
         rng.normal(size=n), rng.normal(size=n)]
    ).astype(np.float32)  # fmt: skip
    tab[rng.random((n, 4)) < 0.1] = np.nan
    texts = []
    for i in range(n):
        if rng.random() < 0.1:
            texts.append("")
            continue
        k = int(np.clip(np.round(z[i, 1] + 2), 0, 4))
        words = list(rng.choice(POSITIVE, k)) + list(rng.choice(NEGATIVE, 4 - k))
        rng.shuffle(words)
        texts.append("，".join(words) + "。")
    yy, xx = np.mgrid[:64, :64]
    disc = ((yy - 32) ** 2 + (xx - 32) ** 2 < 12**2).astype(np.float32)
    strength = 1 / (1 + np.exp(-z[:, 2]))
    image = 0.1 * rng.random((n, 64, 64)).astype(np.float32) + 0.8 * strength[:, None, None] * disc
    has_image = rng.random(n) < 0.85
    image[~has_image] = 0.0
    split = np.array(["train"] * 8 + ["tuning", "held_out"])[np.arange(n) % 10]
    return FakeSet(
        task="fake", index_id=[str(i) for i in range(n)], person_id=np.arange(n, dtype=np.int64),
        split=split, label=label, tabular=tab, tabular_columns=COLUMNS, text=texts,
        image=image.astype(np.float32), has_image=has_image, versions={"fake.table": 1},
    )  # fmt: skip
