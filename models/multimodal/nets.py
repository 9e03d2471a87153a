"""The torch models of the multimodal task and their training loop (docs/models.md, ADR 0025).

Three encoders and one head, composed by the modalities a model uses:

- text: hashed character 1-3-grams of the de-identified note text (any script: Chinese,
  English, mixed; no tokenizer, no vocabulary, nothing downloaded) averaged in an
  ``EmbeddingBag`` (fastText-style), then a linear layer. An empty text is a zero vector
  and a ``has_text`` flag of 0.
- image: a small CNN over the 64x64 image (averaged to 32x32, three stride-2 convolutions,
  global mean), its output multiplied by ``has_image`` and the flag appended.
- tabular: median imputation + missing indicators + standardisation with the train split's
  statistics (buffers of the module, so they travel with its state), then an MLP layer.

A single-modality model is the same network with one encoder; the joint model concatenates
all three (late fusion) and trains them end to end through one head, with optional
modality dropout. :func:`fit` is the whole training loop, free of Spark and MLflow: it runs
wherever numpy, scikit-learn and torch do, on CPU or CUDA, deterministically (seeds,
``torch.use_deterministic_algorithms``, a fixed thread count, no non-deterministic kernels:
no adaptive pooling, no ``max`` bags).

torch is imported inside functions (ADR 0023); importing this module costs numpy only.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from models.metrics import evaluate

if TYPE_CHECKING:
    import torch

#: Every modality, in the order the joint model concatenates them.
MODALITIES = ("text", "image", "tabular")
#: The four models the task compares: name -> modalities.
MODELS: dict[str, tuple[str, ...]] = {
    "text": ("text",),
    "image": ("image",),
    "tabular": ("tabular",),
    "joint": MODALITIES,
}
SPLITS = ("train", "tuning", "held_out")
IMAGE_SIZE = 64
#: Bytes of one encoded image: 64*64 little-endian float32 (the cohort frame's ``image``).
IMAGE_BYTES = IMAGE_SIZE * IMAGE_SIZE * 4
STATE_FILE = "state.pt"
CONFIG_FILE = "config.json"


class ModalData(Protocol):
    """What training reads: ``models.multimodal.dataset.MultimodalSet`` (or a test's fake)."""

    @property
    def split(self) -> np.ndarray: ...
    @property
    def label(self) -> np.ndarray: ...
    @property
    def tabular(self) -> np.ndarray: ...
    @property
    def tabular_columns(self) -> tuple[str, ...]: ...
    @property
    def text(self) -> list[str]: ...
    @property
    def image(self) -> np.ndarray: ...
    @property
    def has_image(self) -> np.ndarray: ...


@dataclass(frozen=True)
class NetConfig:
    """Every hyper-parameter a refit needs (logged as MLflow params by ``train``)."""

    seed: int = 0
    threads: int = 1
    epochs: int = 12
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    dropout: float = 0.1
    modality_dropout: float = 0.1
    hidden: int = 32
    text_buckets: int = 1 << 14
    text_dim: int = 32
    text_ngrams: int = 3
    text_max_chars: int = 2000
    image_channels: int = 8
    tabular_hidden: int = 32

    def params(self) -> dict[str, str]:
        """The configuration as string params (``net.<field>``)."""
        return {f"net.{k}": str(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> NetConfig:
        """The configuration :meth:`params` logged (unknown or absent keys: the default)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = params.get(f"net.{f.name}")
            if value is not None:
                out[f.name] = float(value) if f.type == "float" else int(value)
        return cls(**out)


# --- inputs --------------------------------------------------------------------------------


def text_ids(text: str, cfg: NetConfig) -> np.ndarray:
    """Bucket ids of the character 1..n-grams of ``text`` (lower-cased, whitespace collapsed,
    at most ``text_max_chars``): a stable FNV-style hash over code points, so any script works
    and a run hashes the same in every process (Python's ``hash`` is salted)."""
    clean = " ".join(text.lower().split())[: cfg.text_max_chars]
    if not clean:
        return np.zeros(0, dtype=np.int64)
    codes = np.frombuffer(clean.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    prime, out = np.uint64(1099511628211), []
    for n in range(1, cfg.text_ngrams + 1):
        if len(codes) < n:
            break
        h = np.full(len(codes) - n + 1, np.uint64(14695981039346656037) ^ np.uint64(n))
        for k in range(n):
            h = (h ^ codes[k : len(codes) - n + 1 + k]) * prime
        h ^= h >> np.uint64(29)
        out.append((h % np.uint64(cfg.text_buckets)).astype(np.int64))
    return np.concatenate(out)


def decode_images(values: Sequence[bytes | None]) -> tuple[np.ndarray, np.ndarray]:
    """``image`` cells of the cohort frame (64*64 float32 LE bytes, or null) as a float32
    ``[n, 64, 64]`` array (zeros where null or malformed) and the ``has_image`` mask."""
    images = np.zeros((len(values), IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    mask = np.zeros(len(values), dtype=bool)
    for i, value in enumerate(values):
        if isinstance(value, (bytes, bytearray, memoryview)) and len(value) == IMAGE_BYTES:
            images[i] = np.frombuffer(value, dtype="<f4").reshape(IMAGE_SIZE, IMAGE_SIZE)
            mask[i] = True
    return images, mask


@dataclass
class Inputs:
    """Model inputs of n rows, ready for batching (text already hashed)."""

    tabular: np.ndarray
    text: list[np.ndarray]
    image: np.ndarray
    has_image: np.ndarray

    @classmethod
    def build(
        cls,
        tabular: np.ndarray,
        text: Sequence[str],
        image: np.ndarray,
        has_image: np.ndarray,
        cfg: NetConfig,
    ) -> Inputs:
        return cls(
            np.asarray(tabular, dtype=np.float32),
            [text_ids(t or "", cfg) for t in text],
            np.asarray(image, dtype=np.float32),
            np.asarray(has_image, dtype=bool),
        )

    def take(self, rows: np.ndarray, device: str) -> dict[str, torch.Tensor]:
        """Tensors of ``rows`` on ``device`` (text as flat ids + bag offsets)."""
        import torch

        ids = [self.text[i] for i in rows]
        lengths = np.array([len(x) for x in ids], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        flat = np.concatenate(ids) if lengths.sum() else np.zeros(0, dtype=np.int64)
        return {
            "tabular": torch.from_numpy(self.tabular[rows]).to(device),
            "text_ids": torch.from_numpy(flat).to(device),
            "text_offsets": torch.from_numpy(offsets).to(device),
            "has_text": torch.from_numpy((lengths > 0).astype(np.float32)).to(device),
            "image": torch.from_numpy(self.image[rows]).unsqueeze(1).to(device),
            "has_image": torch.from_numpy(self.has_image[rows].astype(np.float32)).to(device),
        }


# --- the network ---------------------------------------------------------------------------


def build_net(
    cfg: NetConfig, modalities: Sequence[str], n_tabular: int, stats: np.ndarray | None = None
) -> torch.nn.Module:
    """The network for ``modalities`` (a subset of :data:`MODALITIES`).

    ``stats``: the tabular statistics ``[3, F]`` (median, mean, std of the train split); a
    loaded model gets them from its state.
    """
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.modalities = tuple(m for m in MODALITIES if m in modalities)
            width = 0
            if "text" in self.modalities:
                self.text_bag = nn.EmbeddingBag(cfg.text_buckets, cfg.text_dim, mode="mean")
                self.text_proj = nn.Sequential(nn.Linear(cfg.text_dim, cfg.hidden), nn.ReLU())
                width += cfg.hidden + 1
            if "image" in self.modalities:
                c = cfg.image_channels
                self.cnn = nn.Sequential(
                    nn.Conv2d(1, c, 3, stride=2, padding=1), nn.ReLU(),
                    nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.ReLU(),
                    nn.Conv2d(2 * c, 4 * c, 3, stride=2, padding=1), nn.ReLU(),
                )  # fmt: skip
                self.image_proj = nn.Sequential(nn.Linear(4 * c, cfg.hidden), nn.ReLU())
                width += cfg.hidden + 1
            if "tabular" in self.modalities:
                given = stats if stats is not None else np.zeros((3, n_tabular), np.float32)
                self.register_buffer("tab_stats", torch.as_tensor(given, dtype=torch.float32))
                self.tab_mlp = nn.Sequential(
                    nn.Linear(2 * n_tabular, cfg.tabular_hidden), nn.ReLU(),
                    nn.Linear(cfg.tabular_hidden, cfg.hidden), nn.ReLU(),
                )  # fmt: skip
                width += cfg.hidden
            self.head = nn.Sequential(
                nn.Dropout(cfg.dropout), nn.Linear(width, cfg.hidden), nn.ReLU(),
                nn.Linear(cfg.hidden, 1),
            )  # fmt: skip

        def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            parts: list[torch.Tensor] = []
            n = batch["tabular"].shape[0]
            drop = self.training and cfg.modality_dropout > 0 and len(self.modalities) > 1
            for name in self.modalities:
                if name == "text":
                    flag = batch["has_text"]
                    bag = self.text_bag(batch["text_ids"], batch["text_offsets"])
                    emb = self.text_proj(bag)
                elif name == "image":
                    flag = batch["has_image"]
                    # Halved to 32x32 first: a fixed pool of the input (no gradient flows
                    # through it, so no non-deterministic backward) at a quarter of the cost.
                    small = F.avg_pool2d(batch["image"], 2)
                    emb = self.image_proj(self.cnn(small).mean(dim=(2, 3)))
                else:
                    x = batch["tabular"]
                    missing = torch.isnan(x)
                    stats_t = self.get_buffer("tab_stats")
                    median, mean, std = stats_t[0], stats_t[1], stats_t[2]
                    x = (torch.where(missing, median, x) - mean) / std
                    emb = self.tab_mlp(torch.cat([x, missing.float()], dim=1))
                    flag = torch.ones(n, device=x.device)
                if drop:  # the whole modality of a row, as if it were absent
                    keep = (torch.rand(n, device=emb.device) >= cfg.modality_dropout).float()
                    flag = flag * keep
                emb = emb * flag.unsqueeze(1)
                parts.append(emb if name == "tabular" else torch.cat([emb, flag[:, None]], 1))
            out: torch.Tensor = self.head(torch.cat(parts, dim=1)).squeeze(1)
            return out

    return Net()


def tabular_stats(x: np.ndarray) -> np.ndarray:
    """``[3, F]``: nan-median, mean and std (after median imputation) of each column of the
    train split; an all-missing column gets 0, 0, 1; a constant one std 1."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] == 0 or x.shape[1] == 0:
        return np.stack([np.zeros(x.shape[1]), np.zeros(x.shape[1]), np.ones(x.shape[1])])
    empty = np.isnan(x).all(axis=0)
    median = np.zeros(x.shape[1])
    median[~empty] = np.nanmedian(x[:, ~empty], axis=0)
    filled = np.where(np.isnan(x), median, x)
    std = filled.std(axis=0)
    return np.stack([median, filled.mean(axis=0), np.where(std > 1e-12, std, 1.0)])


# --- fitted model --------------------------------------------------------------------------


@dataclass
class FittedModel:
    """A trained network with what predicting needs: config, modalities, tabular columns."""

    net: Any
    config: NetConfig
    modalities: tuple[str, ...]
    tabular_columns: tuple[str, ...]
    best_epoch: int = 0

    def predict_inputs(self, inputs: Inputs, *, device: str = "cpu") -> np.ndarray:
        """Probability of the positive label for every row of ``inputs`` (eval mode)."""
        import torch

        self.net.to(device).eval()
        out = np.zeros(len(inputs.text), dtype=np.float64)
        with torch.no_grad():
            for start in range(0, len(out), 512):
                rows = np.arange(start, min(start + 512, len(out)))
                logits = self.net(inputs.take(rows, device))
                out[rows] = torch.sigmoid(logits).double().cpu().numpy()
        return out

    def predict(
        self,
        tabular: np.ndarray,
        text: Sequence[str],
        image: np.ndarray,
        has_image: np.ndarray,
        *,
        device: str = "cpu",
    ) -> np.ndarray:
        """Probabilities for raw inputs (tabular with NaN, text, images ``[n, 64, 64]``)."""
        inputs = Inputs.build(tabular, text, image, has_image, self.config)
        return self.predict_inputs(inputs, device=device)

    def save(self, folder: Path) -> Path:
        """Write the state dict and a JSON description (no pickle of code) to ``folder``."""
        import torch

        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.net.to("cpu").state_dict(), folder / STATE_FILE)
        meta = {
            "config": dataclasses.asdict(self.config),
            "modalities": list(self.modalities),
            "tabular_columns": list(self.tabular_columns),
            "best_epoch": self.best_epoch,
        }
        (folder / CONFIG_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))
        return folder

    @classmethod
    def load(cls, folder: Path) -> FittedModel:
        """The model :meth:`save` wrote (weights only: ``torch.load(weights_only=True)``)."""
        import torch

        meta = json.loads((folder / CONFIG_FILE).read_text())
        cfg = NetConfig(**meta["config"])
        columns = tuple(meta["tabular_columns"])
        net = build_net(cfg, meta["modalities"], len(columns))
        net.load_state_dict(torch.load(folder / STATE_FILE, weights_only=True))
        net.eval()
        return cls(net, cfg, tuple(meta["modalities"]), columns, int(meta["best_epoch"]))


@dataclass
class FitResult:
    """A fitted model and its metrics per split (``<split>_<metric>``, rows, prevalence)."""

    model: FittedModel
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    #: Scores of the held-out rows, in row order (paired comparisons between models).
    held_out: np.ndarray | None = None


def default_device() -> str:
    """``cuda`` when torch sees a GPU, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def make_deterministic(cfg: NetConfig, device: str) -> None:
    """Seed torch, fix its CPU threads and refuse non-deterministic kernels."""
    import torch

    if device.startswith("cuda"):  # cuBLAS needs a fixed workspace to be deterministic
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True)


def split_metrics(y: np.ndarray, p: np.ndarray, split: str) -> dict[str, float]:
    """``evaluate`` of one split with its prefix, row count and prevalence (NaN metrics
    when the split holds one label only)."""
    out = {
        f"{split}_rows": float(len(y)),
        f"{split}_prevalence": float(y.mean()) if len(y) else 0.0,
    }
    if len(np.unique(y)) == 2:
        out.update({f"{split}_{k}": v for k, v in evaluate(y, p).items()})
    return out


def fit(
    data: ModalData,
    config: NetConfig | None = None,
    *,
    modalities: Sequence[str] = MODALITIES,
    device: str | None = None,
) -> FitResult:
    """Train a network on ``modalities`` of ``data``'s train split; keep the epoch with the
    best tuning AUROC (ties: the earlier); metrics on every split.

    Deterministic for a given config, data, device and library versions. ``device`` defaults
    to CUDA when available. No Spark, no MLflow.
    """
    import time

    import torch

    t0 = time.perf_counter()
    cfg = config or NetConfig()
    device = device or default_device()
    make_deterministic(cfg, device)
    unknown = set(modalities) - set(MODALITIES)
    if unknown or not modalities:
        raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}")
    split = np.asarray(data.split).astype(str)
    y = np.asarray(data.label, dtype=np.int64)
    rows = {s: np.flatnonzero(split == s) for s in SPLITS}
    inputs = Inputs.build(data.tabular, data.text, data.image, data.has_image, cfg)
    stats = tabular_stats(inputs.tabular[rows["train"]])
    net = build_net(cfg, modalities, inputs.tabular.shape[1], stats).to(device)
    model = FittedModel(net, cfg, tuple(modalities), tuple(data.tabular_columns))
    optimiser = torch.optim.AdamW(
        net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    order = torch.Generator().manual_seed(cfg.seed)
    train_rows = rows["train"]
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    for epoch in range(1, cfg.epochs + 1):
        net.train()
        perm = train_rows[torch.randperm(len(train_rows), generator=order).numpy()]
        for start in range(0, len(perm), cfg.batch_size):
            batch_rows = perm[start : start + cfg.batch_size]
            batch = inputs.take(batch_rows, device)
            target = torch.from_numpy(y[batch_rows].astype(np.float32)).to(device)
            optimiser.zero_grad(set_to_none=True)
            loss_fn(net(batch), target).backward()
            optimiser.step()
        tuning = split_metrics(
            y[rows["tuning"]], model.predict_inputs(_subset(inputs, rows["tuning"]), device=device),
            "tuning",
        )  # fmt: skip
        score = tuning.get("tuning_auroc", -math.inf)
        if best is None or score > best[0]:
            state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            best = (score, epoch, state)
    assert best is not None
    net.load_state_dict(best[2])
    model.best_epoch = best[1]
    metrics: dict[str, float] = {"best_epoch": float(best[1])}
    scores: dict[str, np.ndarray] = {}
    for s in SPLITS:
        scores[s] = model.predict_inputs(_subset(inputs, rows[s]), device=device)
        metrics.update(split_metrics(y[rows[s]], scores[s], s))
    net.to("cpu")
    return FitResult(model, metrics, time.perf_counter() - t0, scores["held_out"])


def _subset(inputs: Inputs, rows: np.ndarray) -> Inputs:
    return Inputs(
        inputs.tabular[rows], [inputs.text[i] for i in rows], inputs.image[rows],
        inputs.has_image[rows],
    )  # fmt: skip
