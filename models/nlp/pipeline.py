"""``load_pipeline(lang)``: the zh or en clinical pipeline, built once per process.

Chinese uses spaCy's blank ``zh`` with the jieba segmenter, given its own jieba dictionary
instance that keeps every lexicon term and cue whole (so entities align with tokens);
English uses a blank ``en`` tokenizer. No model weights are needed.
"""

from __future__ import annotations

import logging
from functools import cache

import spacy
from spacy.language import Language

from models.nlp import context as _context  # noqa: F401  (registers clinical_context)
from models.nlp import rules
from models.nlp.components import register_extensions
from models.nlp.resources import versions

logger = logging.getLogger(__name__)


def _jieba_tokenizer(lang: str) -> object:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tok = jieba.Tokenizer()
    for word in rules.user_words(lang):
        tok.add_word(word, freq=10**6)
    return tok


def build_pipeline(lang: str) -> Language:
    """A new pipeline for ``lang`` (``zh`` or ``en``); prefer the cached ``load_pipeline``."""
    rules.check_lang(lang)
    register_extensions()
    if lang == "zh":
        nlp = spacy.blank("zh", config={"nlp": {"tokenizer": {"segmenter": "jieba"}}})
        nlp.tokenizer.jieba_seg = _jieba_tokenizer(lang)  # type: ignore[union-attr]
    else:
        nlp = spacy.blank("en")
    for name in ("clinical_sentences", "clinical_entities", "clinical_context"):
        nlp.add_pipe(name, config={"lang": lang})
    nlp.meta["name"] = f"lakehouse_clinical_{lang}"
    nlp.meta["resources"] = versions()
    logger.info("built NLP pipeline lang=%s resources=%s", lang, nlp.meta["resources"])
    return nlp


@cache
def load_pipeline(lang: str) -> Language:
    """The pipeline for ``lang``, built once per process (one per Spark executor process)."""
    return build_pipeline(lang)
