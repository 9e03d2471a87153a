"""``load_pipeline(lang)``: the zh or en clinical pipeline, built once per process.

Chinese uses spaCy's blank ``zh`` with the jieba segmenter, given its own jieba dictionary
instance that keeps every lexicon term and cue whole (so entities align with tokens);
English uses a blank ``en`` tokenizer. No model weights are needed.

``load_pipeline(lang, trained=DIR)`` adds a trained NER (``python -m models.nlp.train``;
``DIR/<lang>`` a spaCy pipeline holding ``ner``) in front of the rules: its spans reach
``clinical_entities`` as proposals, combined with the rules' by ``merge`` (default: the policy
the training run chose on its validation split, stored in the package's meta; docs/adr/0021).
Without ``trained`` the pipeline is the rules alone.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import spacy
from spacy.language import Language

from lakehouse.errors import ErrorCode, error
from models.nlp import context as _context  # noqa: F401  (registers clinical_context)
from models.nlp import rules
from models.nlp.components import MERGE_POLICIES, register_extensions
from models.nlp.resources import versions

if TYPE_CHECKING:
    from lakehouse.settings import Settings

logger = logging.getLogger(__name__)


def _jieba_tokenizer(lang: str) -> object:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tok = jieba.Tokenizer()
    for word in rules.user_words(lang):
        tok.add_word(word, freq=10**6)
    return tok


def build_pipeline(lang: str, *, merge: str = "add") -> Language:
    """A new rules pipeline for ``lang`` (``zh`` or ``en``); prefer the cached ``load_pipeline``.

    ``merge`` only matters once a trained component is attached (:func:`attach_trained`).
    """
    rules.check_lang(lang)
    register_extensions()
    if lang == "zh":
        nlp = spacy.blank("zh", config={"nlp": {"tokenizer": {"segmenter": "jieba"}}})
        nlp.tokenizer.jieba_seg = _jieba_tokenizer(lang)  # type: ignore[union-attr]
    else:
        nlp = spacy.blank("en")
    for name in ("clinical_sentences", "clinical_entities", "clinical_context"):
        config = {"lang": lang, "merge": merge} if name == "clinical_entities" else {"lang": lang}
        nlp.add_pipe(name, config=config)
    nlp.meta["name"] = f"lakehouse_clinical_{lang}"
    nlp.meta["resources"] = versions()
    logger.info("built NLP pipeline lang=%s resources=%s", lang, nlp.meta["resources"])
    return nlp


def attach_trained(nlp: Language, trained: Language) -> Language:
    """Put ``trained``'s ``ner`` first in the rules pipeline ``nlp`` (as ``trained_ner``)."""
    if "ner" not in trained.pipe_names or trained.lang != nlp.lang:
        raise error(
            ErrorCode.NLP_TRAINED_MODEL_INVALID,
            name=trained.meta.get("name", "?"),
            reason=f"needs a {nlp.lang} pipeline with a ner component",
        )
    nlp.add_pipe("ner", name="trained_ner", source=trained, first=True)
    nlp.meta["trained_ner"] = {
        k: trained.meta.get(k) for k in ("name", "version", "lakehouse") if k in trained.meta
    }
    return nlp


def read_trained(path: Path, lang: str) -> Language:
    """The trained pipeline of ``lang`` under ``path`` (``path/<lang>`` or ``path`` itself)."""
    folder = path / lang if (path / lang / "meta.json").exists() else path
    if not (folder / "meta.json").exists():
        raise error(ErrorCode.NLP_TRAINED_MODEL_INVALID, name=str(folder), reason="no meta.json")
    try:
        return spacy.load(folder)
    except (OSError, ValueError) as exc:
        raise error(
            ErrorCode.NLP_TRAINED_MODEL_INVALID, name=str(folder), reason=type(exc).__name__
        ) from None


@cache
def load_pipeline(lang: str, trained: Path | None = None, merge: str | None = None) -> Language:
    """The pipeline for ``lang``, built once per process (one per Spark executor process).

    ``trained``: a folder written by ``python -m models.nlp.train`` (``<trained>/<lang>``):
    its NER proposes spans that ``merge`` (one of ``MERGE_POLICIES``; default the one the
    training run chose) combines with the rules'. Without it: the rules alone.
    """
    if trained is None:
        return build_pipeline(lang)
    model = read_trained(Path(trained), rules.check_lang(lang))
    chosen = merge or str(model.meta.get("lakehouse", {}).get("merge", "add"))
    if chosen not in MERGE_POLICIES:
        reason = f"one of {MERGE_POLICIES}"
        raise error(ErrorCode.CONFIG_INVALID, setting="nlp.merge", reason=reason)
    return attach_trained(build_pipeline(lang, merge=chosen), model)


#: ``(trained NER folder, merge policy)``: what :func:`load_pipeline` adds to the rules.
NerModel = tuple[Path | None, str | None]


def ner_model(cfg: Settings) -> NerModel:
    """The trained NER settings ``nlp.trained_dir`` / ``nlp.merge`` name (``(None, ...)``: the
    rules alone); plain values, so a Spark job can hand them to its workers."""
    return cfg.nlp.trained_path(cfg.home), cfg.nlp.merge


def pipeline_for(cfg: Settings, lang: str) -> Language:
    """``load_pipeline`` as settings ``nlp.trained_dir`` / ``nlp.merge`` configure it (unset:
    the rules alone)."""
    return load_pipeline(lang, *ner_model(cfg))
