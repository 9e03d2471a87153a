"""Value domains (WS 364 / GB/T 2261.1) as Spark expressions.

Sex, GB/T 2261.1-2003 生理性别代码: ``0`` 未知的性别, ``1`` 男性, ``2`` 女性, ``9`` 未说明的
性别 (5 and 6, sex changed, pass through as given).

==================================================  ======
source value (trimmed, case-insensitive)            code
==================================================  ======
``1``, ``M``, ``male``, ``男``, ``男性``              ``1``
``2``, ``F``, ``female``, ``女``, ``女性``            ``2``
``0``, ``U``, ``unknown``, ``未知``, null or empty    ``0``
``9``, ``O``, ``A``, ``N``, ``other``, ``未说明``     ``9``
``5``, ``6``                                        itself
anything else                                       null
==================================================  ======

Anything else is null, not a guess: the caller's quality checks count it.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

SEX_NAMES = {
    "0": "未知的性别",
    "1": "男性",
    "2": "女性",
    "5": "女性改(变)为男性",
    "6": "男性改(变)为女性",
    "9": "未说明的性别",
}

_SEX = {
    "1": "1", "m": "1", "male": "1", "男": "1", "男性": "1",
    "2": "2", "f": "2", "female": "2", "女": "2", "女性": "2",
    "0": "0", "u": "0", "unk": "0", "unknown": "0", "未知": "0", "未知的性别": "0",
    "9": "9", "o": "9", "a": "9", "n": "9", "other": "9", "未说明": "9", "未说明的性别": "9",
    "5": "5", "6": "6",
}  # fmt: skip


def _lookup(table: dict[str, str], key: Column) -> Column:
    pairs: list[Column] = []
    for k, v in sorted(table.items()):
        pairs += [F.lit(k), F.lit(v)]
    return F.create_map(*pairs)[key]


def sex_gb2261(col: Column) -> Column:
    """GB/T 2261.1 sex code of a source value (see the module's table)."""
    key = F.lower(F.trim(col.cast("string")))
    return F.when(key.isNull() | (key == ""), F.lit("0")).otherwise(_lookup(_SEX, key))


def sex_gb2261_name(code: Column) -> Column:
    """The Chinese name of a GB/T 2261.1 sex code."""
    return _lookup(SEX_NAMES, code)
