"""Dense text embeddings for hybrid search: one interface, two implementations.

An :class:`Embedder` turns texts into L2-normalised ``float32`` rows, so a dot product is a
cosine. Its :attr:`~Embedder.name` identifies the model: vectors stored under another name
are recomputed.

- :class:`TransformerEmbedder`: a sentence-embedding model in a local folder (Hugging Face
  ``transformers`` ``AutoModel`` + ``AutoTokenizer``, mean pooling over the attention mask;
  nothing is downloaded). Real deployments put a multilingual model there.
- :class:`LsaEmbedder` (the default): latent semantic analysis trained on the indexed corpus
  itself, TF-IDF (scikit-learn ``TfidfVectorizer`` over the project's :class:`Analyzer`
  terms, the same jieba segmentation as BM25, sublinear term frequency) reduced by
  ``TruncatedSVD``. Terms that co-occur in the corpus land close together, so a query can
  find a note that shares no word with it. The model is saved next to the index
  (``<index>.lsa.npz``: vocabulary, idf, components; no pickle) and refitted when the
  corpus or the analysis changes (:meth:`LsaEmbedder.fit` with the corpus signature).

``torch``, ``transformers`` and ``scikit-learn`` are imported on first use only.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from lakehouse.search.analyzer import Analyzer

logger = logging.getLogger(__name__)

Vectors = NDArray[np.float32]
#: Dimensions of the LSA model (fewer when the corpus has fewer documents or terms).
LSA_DIMS = 256


@runtime_checkable
class Embedder(Protocol):
    """Texts → L2-normalised vectors (one row per text)."""

    @property
    def name(self) -> str:
        """Identifies the model (and, for a corpus-trained one, the corpus it was fit on)."""
        ...

    @property
    def ready(self) -> bool:
        """True when :meth:`embed` can run (a corpus-trained model has been fit)."""
        ...

    @property
    def trained_on_corpus(self) -> bool:
        """True when the model is fit on the indexed documents (:meth:`fit`)."""
        ...

    @property
    def corpus(self) -> str | None:
        """The signature of the corpus the model was fit on (None: not fit, or pretrained)."""
        ...

    def fit(self, texts: Sequence[str], *, corpus: str) -> None:
        """Train on ``texts`` (signature ``corpus``) unless already fit on that corpus; a
        no-op for a pretrained model."""
        ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """An ``(len(texts), dims)`` float32 array of unit rows (zero rows: no signal)."""
        ...


def digest_texts(texts: Iterable[str]) -> str:
    """A signature of a list of texts (a corpus fit only on them)."""
    h = hashlib.sha256()
    for text in texts:
        h.update(text.encode())
        h.update(b"\0")
    return h.hexdigest()


def normalise_rows(matrix: NDArray[Any]) -> Vectors:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    out = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    result: Vectors = np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
    return result


class LsaEmbedder:
    """TF-IDF over the analyzer's terms + truncated SVD, fit on the corpus, saved at
    ``path`` (loaded from it when present)."""

    def __init__(
        self, path: Path | None, analyzer: Analyzer | None = None, *, dims: int = LSA_DIMS
    ) -> None:
        self.path = path
        self.analyzer = analyzer or Analyzer()
        self.dims = dims
        self._corpus: str | None = None
        self._vocab: dict[str, int] = {}
        self._idf: NDArray[np.float32] = np.zeros(0, dtype=np.float32)
        self._components: NDArray[np.float32] = np.zeros((0, 0), dtype=np.float32)
        self._lock = threading.Lock()
        if path is not None and path.is_file():
            self._load(path)

    @property
    def name(self) -> str:
        return f"lsa-{self.dims}-{(self._corpus or 'unfit')[:24]}"

    @property
    def ready(self) -> bool:
        return self._corpus is not None

    @property
    def corpus(self) -> str | None:
        return self._corpus

    @property
    def trained_on_corpus(self) -> bool:
        return True

    def fit(self, texts: Sequence[str], *, corpus: str) -> None:
        with self._lock:
            if self._corpus != corpus:
                self._fit([self.analyzer.terms(t) for t in texts], corpus)

    def fit_transform(self, terms: Sequence[Sequence[str]], *, corpus: str) -> Vectors:
        """Fit on documents already analysed (their :meth:`Analyzer.terms`) and return
        their vectors, analysing nothing twice (a search fitting on the notes it ranks)."""
        with self._lock:
            matrix = self._fit(terms, corpus)
            if matrix is None or not self._components.shape[0]:
                return np.zeros((len(terms), 1), dtype=np.float32)
            return normalise_rows(np.asarray(matrix @ self._components.T))

    def _fit(self, terms: Sequence[Sequence[str]], corpus: str) -> Any:
        """Fit on analysed documents; the TF-IDF matrix (None: no term at all)."""
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        tfidf = TfidfVectorizer(analyzer=list, sublinear_tf=True, dtype=np.float32)
        vocab: dict[str, int] = {}
        idf = np.zeros(0, dtype=np.float32)
        components = np.zeros((0, 0), dtype=np.float32)
        matrix = None
        if terms:
            try:
                matrix = tfidf.fit_transform([list(t) for t in terms])
            except ValueError:  # no terms at all (empty texts, stop words only)
                matrix = None
        if matrix is not None:
            vocab = {str(t): int(i) for t, i in tfidf.vocabulary_.items()}
            idf = tfidf.idf_.astype(np.float32)
            k = min(self.dims, matrix.shape[0] - 1, matrix.shape[1] - 1)
            if k >= 1:
                svd = TruncatedSVD(n_components=k, random_state=0)
                svd.fit(matrix)
                components = svd.components_.astype(np.float32)
            else:  # one document or one term: the normalised TF-IDF space itself
                components = np.eye(matrix.shape[1], dtype=np.float32)
        self._vocab, self._idf, self._components = vocab, idf, components
        self._corpus = corpus
        if self.path is not None:
            self._save(self.path)
        logger.info(
            "LSA model fit: %d documents, %d terms, %d dimensions",
            len(terms), len(vocab), components.shape[0],
        )  # fmt: skip
        return matrix

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not self.ready:
            raise RuntimeError("the LSA model is not fit yet")
        from scipy.sparse import csr_matrix

        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        for row, text in enumerate(texts):
            counts = Counter(t for t in self.analyzer.terms(text) if t in self._vocab)
            for term, tf in counts.items():
                col = self._vocab[term]
                rows.append(row)
                cols.append(col)
                vals.append((1.0 + float(np.log(tf))) * float(self._idf[col]))
        dims = self._components.shape[0]
        if not dims:
            return np.zeros((len(texts), 1), dtype=np.float32)
        sparse = csr_matrix(
            (np.asarray(vals, dtype=np.float32), (rows, cols)),
            shape=(len(texts), len(self._vocab)),
        )
        tfidf = sparse.multiply(1 / np.maximum(_row_norms(sparse), 1e-12)[:, None]).tocsr()
        return normalise_rows(np.asarray(tfidf @ self._components.T))

    def _save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        terms = sorted(self._vocab, key=self._vocab.__getitem__)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(
            tmp,
            corpus=np.array(self._corpus or ""),
            dims=np.array(self.dims),
            terms=np.array(terms, dtype=np.str_),
            idf=self._idf,
            components=self._components,
        )
        tmp.replace(path)

    def _load(self, path: Path) -> None:
        try:
            with np.load(path, allow_pickle=False) as data:
                if int(data["dims"]) != self.dims:
                    return  # another configuration: refit
                terms = [str(t) for t in data["terms"]]
                self._vocab = {t: i for i, t in enumerate(terms)}
                self._idf = data["idf"].astype(np.float32)
                self._components = data["components"].astype(np.float32)
                self._corpus = str(data["corpus"]) or None
        except (OSError, KeyError, ValueError) as exc:  # unreadable: refit on next use
            logger.warning("LSA model %s unreadable (%s): refitting", path.name, type(exc).__name__)
            self._corpus = None


def _row_norms(matrix: Any) -> NDArray[np.float32]:
    return np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1), dtype=np.float32).ravel())


class TransformerEmbedder:
    """A sentence-embedding model in ``path`` (``transformers`` format), mean-pooled over
    the attention mask; texts longer than ``max_length`` tokens are cut there. Loaded on
    first use, on the CPU unless ``device`` says otherwise; never downloads."""

    def __init__(
        self, path: Path, *, max_length: int = 256, batch_size: int = 16, device: str = "cpu"
    ) -> None:
        self.path = path
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        h = hashlib.sha256()
        for file in sorted(p for p in path.glob("*") if p.is_file()):
            h.update(file.name.encode())
            h.update(str(file.stat().st_size).encode())
            if file.suffix in (".json", ".txt"):
                h.update(file.read_bytes())
        self._name = f"hf-{path.name}-{h.hexdigest()[:16]}-{max_length}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def ready(self) -> bool:
        return True

    @property
    def trained_on_corpus(self) -> bool:
        return False

    @property
    def corpus(self) -> str | None:
        return None

    def fit(self, texts: Sequence[str], *, corpus: str) -> None:
        return None

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._model is None:
                from transformers import AutoModel, AutoTokenizer

                self._tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
                model = AutoModel.from_pretrained(self.path, local_files_only=True)
                self._model = model.to(self.device).eval()
        return self._model, self._tokenizer

    def embed(self, texts: Sequence[str]) -> Vectors:
        import torch

        model, tokenizer = self._load()
        out: list[NDArray[np.float32]] = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                batch = tokenizer(
                    list(texts[i : i + self.batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                out.append(pooled.float().cpu().numpy())
        if not out:
            return np.zeros((0, 1), dtype=np.float32)
        return normalise_rows(np.concatenate(out))


def embedder_for(
    model_dir: Path | None,
    index_path: Path,
    analyzer: Analyzer | None = None,
    *,
    dims: int = LSA_DIMS,
) -> Embedder:
    """The model in ``model_dir`` when set, else an LSA model saved beside ``index_path``."""
    if model_dir is not None:
        return TransformerEmbedder(model_dir)
    return LsaEmbedder(index_path.with_name(index_path.name + ".lsa.npz"), analyzer, dims=dims)


__all__ = [
    "LSA_DIMS",
    "Embedder",
    "LsaEmbedder",
    "TransformerEmbedder",
    "Vectors",
    "digest_texts",
    "embedder_for",
    "normalise_rows",
]
