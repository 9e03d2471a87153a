"""身份证号 rules: check character, embedded birth date and sex, consistency."""

from __future__ import annotations

from datetime import date

import pytest

from lakehouse.empi import identity

VALID_F = "11010519491231002X"  # GB 11643 example: 1949-12-31, sequence 002 (female)


def test_check_character_of_the_standard_example() -> None:
    assert identity.check_character(VALID_F[:17]) == "X"
    assert identity.is_valid(VALID_F)
    assert identity.is_valid(VALID_F.lower())  # lower-case x is the same character


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (VALID_F, True),
        ("110105194912310021", False),  # wrong check character
        ("110105194912310120", False),  # one sequence digit mistyped
        ("110105194913310028", False),  # month 13
        ("11010519491231002", False),  # 17 characters
        ("1101051949123100 X", False),
        ("", False),
        (None, False),
        ("１１０１０５１９４９１２３１００２Ｘ", True),  # full-width digits fold
    ],
)
def test_validity(value: str | None, valid: bool) -> None:
    assert identity.is_valid(value) is valid


def test_birth_date_and_sex_embedded() -> None:
    assert identity.birth_date(VALID_F) == date(1949, 12, 31)
    assert identity.sex_code(VALID_F) == "2"  # 17th digit 2: even, female
    male = "11010519491231001" + identity.check_character("11010519491231001")
    assert identity.sex_code(male) == "1"


@pytest.mark.parametrize(
    ("born", "sex", "consistent"),
    [
        (date(1949, 12, 31), "2", True),
        (None, None, True),  # nothing to contradict
        (date(1949, 12, 31), "0", True),  # unknown sex is no contradiction
        (date(1950, 1, 1), "2", False),  # birth date disagrees
        (date(1949, 12, 31), "1", False),  # sex disagrees (17th digit even)
    ],
)
def test_consistency_with_the_record(born: date | None, sex: str | None, consistent: bool) -> None:
    assert identity.is_consistent(VALID_F, born, sex) is consistent


def test_an_invalid_number_is_never_consistent() -> None:
    assert not identity.is_consistent("110105194912310021", date(1949, 12, 31), "2")
