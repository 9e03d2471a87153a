"""Bilingual (Chinese/English) text analysis with character offsets into the original text.

:meth:`Analyzer.tokens` turns text into index terms, each with the ``[start, end)`` span it
came from in the text as given (not the normalized text), so a match can be highlighted or
cited as ``doc:start-end``:

1. **Normalization**, character by character, with an offset map: NFKC (full-width Ｈｂ Ａ１ｃ
   and ideographic digits become ASCII; half-width katakana become full-width) and
   ``casefold``. A character that normalizes to several characters keeps its one span.
2. **Chinese** (runs of Han characters): jieba's search-mode segmentation, which yields the
   words and their dictionary sub-words (糖化血红蛋白 → 糖化, 血红, 蛋白, 血红蛋白, ...), so a
   query for a short word finds it inside a longer one. Words added with :func:`add_words`
   (e.g. the terminology's names) are kept whole as well. With ``bigrams`` (default) every
   pair of adjacent Han characters is a term too, so a word the segmenter cut differently
   in the document (七步洗手法 → 七步/洗/手法) is still found (洗手).
3. **Latin letters and digits**: words and numbers (``6.8`` stays one term), lowercased,
   with a light plural/possessive normalization (:func:`stem`: glucoses → glucose,
   studies → study; status, diagnosis and words with digits are left alone).
4. **Stop words**: a small explicit list per language (:data:`STOP_WORDS`).

jieba is loaded once per process, lazily, under a lock, with its start-up messages
silenced. The segmenter is shared: words added through :func:`add_words` affect every
analyzer, and :func:`signature` changes with them so persisted indexes can tell.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import unicodedata
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

#: Bumped whenever analysis changes, so persisted postings are rebuilt.
ANALYZER_VERSION = "1"

STOP_WORDS_EN = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "has", "have",
        "in", "is", "it", "its", "of", "on", "or", "s", "t", "that", "the", "this", "to",
        "was", "were", "will", "with",
    }
)  # fmt: skip
STOP_WORDS_ZH = frozenset(
    {
        "的", "了", "和", "与", "及", "或", "在", "是", "等", "对",
        "为", "其", "之", "也", "并", "而", "则", "被", "把",
    }
)  # fmt: skip
#: Terms never indexed nor searched.
STOP_WORDS = STOP_WORDS_EN | STOP_WORDS_ZH

_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
# Han runs, numbers with decimals, or runs of other letters/digits (underscore excluded).
_PIECE = re.compile(rf"[{_HAN}]+|\d+(?:\.\d+)+|[^\W_{_HAN}]+")
_HAN_RUN = re.compile(rf"[{_HAN}]+")
_KEEP_S = ("ss", "us", "is", "ous")

_lock = threading.Lock()
_segmenter: Any = None
_user_words: set[str] = set()


@dataclass(frozen=True, slots=True)
class Token:
    """One index term and the ``[start, end)`` span of the original text it came from."""

    term: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Normalized:
    """Normalized text and, per normalized character, its span in the original text
    (``starts``/``ends`` None: one normalized character per original one)."""

    text: str
    starts: tuple[int, ...] | None = None
    ends: tuple[int, ...] | None = None

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of the normalized span ``[start, end)`` (end > start)."""
        if self.starts is None or self.ends is None:
            return start, end
        return self.starts[start], self.ends[end - 1]


@lru_cache(maxsize=65536)
def _norm_char(ch: str) -> str:
    return unicodedata.normalize("NFKC", ch).casefold()


def normalize(text: str) -> Normalized:
    """NFKC + casefold, one original character at a time, keeping the offset map."""
    if text.isascii():
        return Normalized(text.lower())
    chars = [ch.lower() if ch.isascii() else _norm_char(ch) for ch in text]
    joined = "".join(chars)
    if len(joined) == len(text):
        return Normalized(joined)
    starts: list[int] = []
    ends: list[int] = []
    for i, norm in enumerate(chars):
        starts.extend([i] * len(norm))
        ends.extend([i + 1] * len(norm))
    return Normalized(joined, tuple(starts), tuple(ends))


def stem(word: str) -> str:
    """Light English plural/possessive normalization (an S-stemmer); numbers and words
    with digits or of three letters or fewer are kept as they are."""
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) <= 3 or not word.isalpha() or not word.isascii():
        return word
    if word.endswith("ies") and len(word) > 4 and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("es") and word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(_KEEP_S):
        return word[:-1]
    return word


def _jieba() -> Any:
    """The process's jieba segmenter, initialized once, quietly, under the lock."""
    global _segmenter
    if _segmenter is None:
        with _lock:
            if _segmenter is None:
                with warnings.catch_warnings():  # jieba 0.42's invalid escapes in regexes
                    warnings.simplefilter("ignore", DeprecationWarning)
                    warnings.simplefilter("ignore", SyntaxWarning)
                    import jieba

                jieba.setLogLevel(logging.WARNING)  # no "Building prefix dict..." on stderr
                tokenizer = jieba.Tokenizer()
                tokenizer.initialize()
                for word in sorted(_user_words):
                    tokenizer.add_word(word)
                _segmenter = tokenizer
    return _segmenter


def add_words(words: Iterable[str]) -> int:
    """Add domain words (e.g. terminology names) to the Chinese segmenter; returns how
    many were new. Only words with a Han character matter to segmentation."""
    new = {
        w.strip()
        for w in words
        if w and w.strip() and _HAN_RUN.search(w) and w.strip() not in _user_words
    }
    if not new:
        return 0
    with _lock:
        new -= _user_words
        if _segmenter is not None:
            for word in sorted(new):
                _segmenter.add_word(word)
        _user_words.update(new)
    return len(new)


def signature() -> str:
    """Identifies the analysis (version and added words): persisted postings made under
    another signature must be rebuilt."""
    with _lock:
        words = "\n".join(sorted(_user_words))
    digest = hashlib.sha256(words.encode()).hexdigest()[:16]
    return f"v{ANALYZER_VERSION}-{digest}"


class Analyzer:
    """Text → :class:`Token` list; stateless apart from the shared segmenter."""

    def __init__(self, *, stop_words: frozenset[str] = STOP_WORDS, bigrams: bool = True) -> None:
        self.stop_words = stop_words
        self.bigrams = bigrams

    def tokens(self, text: str) -> list[Token]:
        """Index terms of ``text`` with their original spans (Chinese search mode may give
        overlapping spans)."""
        return list(self._tokens(normalize(text)))

    def normalized_tokens(self, norm: Normalized) -> list[Token]:
        """As :meth:`tokens` for text already normalized with :func:`normalize`."""
        return list(self._tokens(norm))

    def terms(self, text: str) -> list[str]:
        """The terms of :meth:`tokens`, in order."""
        return [t.term for t in self._tokens(normalize(text))]

    def _tokens(self, norm: Normalized) -> Iterator[Token]:
        for piece in _PIECE.finditer(norm.text):
            word, start = piece.group(), piece.start()
            if _HAN_RUN.fullmatch(word):
                seen: set[tuple[int, int]] = set()
                for term, s, e in _jieba().tokenize(word, mode="search"):
                    seen.add((s, e))
                    if term not in self.stop_words:
                        yield Token(term, *norm.span(start + s, start + e))
                if self.bigrams:
                    for s in range(len(word) - 1):
                        pair = word[s : s + 2]
                        if (s, s + 2) not in seen and not set(pair) & self.stop_words:
                            yield Token(pair, *norm.span(start + s, start + s + 2))
                continue
            term = stem(word)
            if term and term not in self.stop_words:
                yield Token(term, *norm.span(start, piece.end()))
