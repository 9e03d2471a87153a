"""身份证号, names and their variants."""

from __future__ import annotations

import random
from datetime import date

import pytest

from lakehouse.synthetic.identity import (
    id_check_char,
    is_valid_id_card,
    make_id_card,
    mistype_id_card,
    name_variant,
    pinyin_name,
    traditional,
)


@pytest.mark.parametrize(
    ("first17", "check"),
    [
        ("11010519491231002", "X"),  # the GB 11643 standard's own example
        ("44030519730711639", "3"),
        ("36010219700717757", "3"),
    ],
)
def test_check_character_follows_gb11643(first17: str, check: str) -> None:
    assert id_check_char(first17) == check


def test_generated_id_cards_are_valid_and_carry_birth_date_and_sex() -> None:
    rng = random.Random(1)
    for i in range(200):
        birth = date(1940 + i % 60, 1 + i % 12, 1 + i % 28)
        male = i % 2 == 0
        card = make_id_card(rng, "440305", birth, male)
        assert is_valid_id_card(card)
        assert card[:6] == "440305"
        assert card[6:14] == birth.strftime("%Y%m%d")
        assert int(card[16]) % 2 == (1 if male else 0)


def test_mistyped_id_card_fails_its_check_character() -> None:
    rng = random.Random(2)
    card = make_id_card(rng, "110105", date(1980, 5, 17), True)
    bad = mistype_id_card(rng, card)
    assert bad != card
    assert len(bad) == 18
    assert not is_valid_id_card(bad)


@pytest.mark.parametrize(
    ("name", "kind", "expected"),
    [
        ("张伟", "exact", "张伟"),
        ("张伟", "pinyin", "ZHANG WEI"),
        ("李娜", "pinyin", "LI NA"),
        ("陈国华", "traditional", "陳國華"),
        ("John Smith", "pinyin", "John Smith"),
    ],
)
def test_name_variants(name: str, kind: str, expected: str) -> None:
    assert name_variant(random.Random(0), name, kind) == expected


def test_typo_changes_one_given_name_character() -> None:
    typo = name_variant(random.Random(0), "王伟", "typo")
    assert typo != "王伟"
    assert typo[0] == "王"


def test_helpers() -> None:
    assert pinyin_name("李娜") == "LI NA"
    assert traditional("刘丽") == "劉麗"
