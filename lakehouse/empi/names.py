"""Chinese names for linkage: traditional -> simplified folding and pinyin.

A site may record 李強霞 (traditional), LI QIANGXIA (pinyin, any case and spacing) or a
typist's homophone (李强侠) for 李强霞. Folding to simplified characters is a character
table taken from OpenCC's ``TSCharacters`` dictionary (opencc-python-reimplemented), applied
with Spark's built-in ``translate``. Pinyin needs pypinyin's dictionary and its
polyphone rules, so it runs in a pandas UDF (vectorized over Arrow batches).
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

import pandas as pd
from pypinyin import Style, lazy_pinyin
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

_CJK = re.compile(r"[\u3400-\u9fff]")
_NOT_LETTER = re.compile(r"[^A-Z]")
#: What a normalized name drops (Java and Python regex alike): spaces, dots, hyphens, ·.
_NAME_NOISE = r"[\s.\-·]+"


@lru_cache(maxsize=1)
def traditional_table() -> tuple[str, str]:
    """(traditional characters, their simplified forms), one character each, same order."""
    text = (resources.files("opencc") / "dictionary" / "TSCharacters.txt").read_text("utf-8")
    src, dst = [], []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 2:
            continue
        trad, simp = parts[0], parts[1].split(" ")[0]
        # One BMP character each way: translate() maps characters one to one.
        if len(trad) == 1 == len(simp) and trad != simp and ord(trad) < 0x10000 > ord(simp):
            src.append(trad)
            dst.append(simp)
    return "".join(src), "".join(dst)


def simplified(name: str) -> str:
    """Python reference of :func:`simplified_col`."""
    src, dst = traditional_table()
    return name.translate(str.maketrans(src, dst))


def name_key(name: str | None) -> str | None:
    """Python reference of :func:`simplified_col` (the features' ``name_s``): ``張 三`` ->
    ``张三``, ``John Smith`` -> ``JOHNSMITH``; ``None`` when nothing is left."""
    if name is None:
        return None
    return re.sub(_NAME_NOISE, "", simplified(name.strip()).upper()) or None


def pinyin_key(name: str | None) -> str | None:
    """``李强霞`` / ``李強霞`` / ``Li Qiangxia`` / ``LI QIANGXIA`` -> ``LIQIANGXIA``.

    Chinese characters become toneless pinyin (ü written v, as on ID cards' machine-readable
    lines); Latin letters are kept; everything else (spaces, dots, hyphens) is dropped.
    """
    if name is None:
        return None
    text = simplified(name.strip())
    if _CJK.search(text):
        text = "".join(lazy_pinyin(text, style=Style.NORMAL, v_to_u=False))
    key = _NOT_LETTER.sub("", text.upper().replace("Ü", "V").replace("YU:", "V"))
    return key or None


def surname_key(name: str | None) -> str | None:
    """Pinyin of the family name: first syllable of a Chinese name (``李强霞`` -> ``LI``),
    first word of a Latin one (``LI QIANGXIA`` -> ``LI``): a blocking key both agree on."""
    if name is None:
        return None
    text = simplified(name.strip())
    if _CJK.match(text):
        first = lazy_pinyin(text[:1], style=Style.NORMAL, v_to_u=False)[0]
    else:
        words = [w for w in re.split(r"[\s.\-·]+", text) if w]
        first = words[0] if words else ""
    key = _NOT_LETTER.sub("", first.upper().replace("Ü", "V"))
    return key or None


def simplified_col(name: Column) -> Column:
    """Spark: trimmed name, traditional characters folded to simplified, Latin upper-cased
    with spaces removed (so ``John Smith`` and ``JOHN SMITH`` agree)."""
    src, dst = traditional_table()
    text = F.translate(F.trim(name), src, dst)
    return F.nullif(F.regexp_replace(F.upper(text), _NAME_NOISE, ""), F.lit(""))


def _pinyin_batch(names: pd.Series) -> pd.Series:
    # pypinyin (dictionary + polyphone phrases) has no Spark equivalent: one Python call per
    # distinct name in the Arrow batch.
    return names.map(pinyin_key, na_action="ignore")


def _surname_batch(names: pd.Series) -> pd.Series:
    return names.map(surname_key, na_action="ignore")


_pinyin_udf = F.pandas_udf(_pinyin_batch, StringType())  # type: ignore[attr-defined]
_surname_udf = F.pandas_udf(_surname_batch, StringType())  # type: ignore[attr-defined]


def pinyin_col(name: Column) -> Column:
    """Spark: :func:`pinyin_key`."""
    return _pinyin_udf(name)  # type: ignore[no-any-return]


def surname_col(name: Column) -> Column:
    """Spark: :func:`surname_key`."""
    return _surname_udf(name)  # type: ignore[no-any-return]
