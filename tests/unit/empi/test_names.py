"""Name keys: traditional folding, pinyin and family name agree across a site's variants."""

from __future__ import annotations

import pytest

from lakehouse.empi import names


@pytest.mark.parametrize(
    ("recorded", "pinyin", "surname"),
    [
        ("李强霞", "LIQIANGXIA", "LI"),
        ("李強霞", "LIQIANGXIA", "LI"),  # traditional
        ("LI QIANGXIA", "LIQIANGXIA", "LI"),  # pinyin, as the synthetic member sites write it
        ("Li Qiangxia", "LIQIANGXIA", "LI"),
        (" li  qiang-xia ", "LIQIANGXIA", "LI"),
        ("吕方", "LVFANG", "LV"),  # ü written v
        ("Lü Fang", "LVFANG", "LV"),
        ("张伟", "ZHANGWEI", "ZHANG"),
        ("张玮", "ZHANGWEI", "ZHANG"),  # a typist's homophone: same pinyin
        ("John Smith", "JOHNSMITH", "JOHN"),
    ],
)
def test_variants_share_keys(recorded: str, pinyin: str, surname: str) -> None:
    assert names.pinyin_key(recorded) == pinyin
    assert names.surname_key(recorded) == surname


@pytest.mark.parametrize(
    ("traditional", "simplified"),
    [
        ("李強霞", "李强霞"),
        ("陳偉", "陈伟"),
        ("張麗華", "张丽华"),
        ("劉靜", "刘静"),
        ("黃鵬", "黄鹏"),
    ],
)
def test_traditional_characters_fold_to_simplified(traditional: str, simplified: str) -> None:
    assert names.simplified(traditional) == simplified


def test_the_folding_table_maps_one_character_to_one() -> None:
    src, dst = names.traditional_table()
    assert len(src) == len(dst) > 2000
    assert len(set(src)) == len(src)


def test_blank_names_have_no_keys() -> None:
    assert names.pinyin_key(None) is None
    assert names.pinyin_key("  ") is None
    assert names.surname_key("") is None
