"""Identities of synthetic people: names, 身份证号, phones, addresses and their variants.

Everything is drawn from a caller's seeded :class:`random.Random`, so the same seed gives the
same people. 身份证号 follow GB 11643-1999: region, birth date, sequence (odd for men, even
for women) and the ISO 7064 MOD 11-2 check character. The variants are what a master
patient index meets when one person registers at several sites: simplified vs traditional
characters, pinyin, typing errors, a mistyped ID number.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from pypinyin import lazy_pinyin

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹"
    + "彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
)
GIVEN = (
    "伟芳娜秀敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂英华"
    + "建国志红玉梅林云飞鹏辉晓东雪琳浩宇欣怡子涵思雨俊博文佳"
)
#: Characters typists confuse (same sound or similar shape).
CONFUSABLE = {
    "伟": "玮",
    "芳": "方",
    "娜": "那",
    "静": "靜",
    "丽": "莉",
    "军": "君",
    "洋": "阳",
    "杰": "洁",
    "涛": "滔",
    "明": "鸣",
    "华": "化",
    "国": "果",
    "红": "宏",
    "林": "琳",
    "云": "芸",
    "辉": "晖",
    "东": "冬",
    "宇": "雨",
    "欣": "新",
    "博": "波",
}
EN_GIVEN = ["John", "Mary", "David", "Anna", "Michael", "Laura", "Peter", "Emma"]
EN_FAMILY = ["Smith", "Brown", "Miller", "Wilson", "Taylor", "Clark", "Walker", "Young"]

#: (GB/T 2260 county code, province, city, district, postcode)
REGIONS = [
    ("440305", "广东省", "深圳市", "南山区", "518052"),
    ("440304", "广东省", "深圳市", "福田区", "518033"),
    ("440303", "广东省", "深圳市", "罗湖区", "518001"),
    ("440306", "广东省", "深圳市", "宝安区", "518101"),
    ("440106", "广东省", "广州市", "天河区", "510630"),
    ("430102", "湖南省", "长沙市", "芙蓉区", "410011"),
    ("360102", "江西省", "南昌市", "东湖区", "330006"),
    ("110105", "北京市", "北京市", "朝阳区", "100020"),
]
STREETS = ["科技园路", "深南大道", "华强北路", "建设路", "人民路", "解放路", "中山路", "滨海大道"]
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
MOBILE_PREFIXES = ("138", "139", "135", "136", "150", "152", "158", "186", "187", "189", "177")


@dataclass(frozen=True)
class Address:
    """A postal address in the Chinese order (province first)."""

    region_code: str
    province: str
    city: str
    district: str
    street: str
    postcode: str

    @property
    def text(self) -> str:
        return f"{self.province}{self.city}{self.district}{self.street}"


def id_check_char(first17: str) -> str:
    """The GB 11643 check character of the first 17 digits of a 身份证号."""
    total = sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True))
    return ID_CHECK[total % 11]


def is_valid_id_card(value: str) -> bool:
    """True when ``value`` is 18 characters with a valid birth date and check character."""
    if len(value) != 18 or not value[:17].isdigit():
        return False
    try:
        date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    return id_check_char(value[:17]) == value[17].upper()


def make_id_card(rng: random.Random, region_code: str, birth: date, male: bool) -> str:
    """A valid 身份证号 for this birth date and sex (sequence odd for men, even for women)."""
    seq = rng.randrange(0, 500) * 2 + (1 if male else 0)
    first17 = f"{region_code}{birth:%Y%m%d}{seq:03d}"
    return first17 + id_check_char(first17)


def mistype_id_card(rng: random.Random, value: str) -> str:
    """The same number with one sequence digit changed (its check character then fails)."""
    pos = rng.randrange(14, 17)
    digit = str((int(value[pos]) + rng.randrange(1, 10)) % 10)
    return value[:pos] + digit + value[pos + 1 :]


def make_chinese_name(rng: random.Random) -> str:
    given = rng.choice(GIVEN) + (rng.choice(GIVEN) if rng.random() < 0.7 else "")
    return rng.choice(SURNAMES) + given


def make_english_name(rng: random.Random) -> str:
    return f"{rng.choice(EN_GIVEN)} {rng.choice(EN_FAMILY)}"


def make_phone(rng: random.Random) -> str:
    return rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(0, 10**8):08d}"


def make_address(rng: random.Random) -> Address:
    code, province, city, district, postcode = rng.choice(REGIONS)
    number, block, room = rng.randrange(1, 300), rng.randrange(1, 30), rng.randrange(101, 2300)
    street = f"{rng.choice(STREETS)}{number}号{block}栋{room}室"
    return Address(code, province, city, district, street, postcode)


@lru_cache(maxsize=1)
def _opencc_s2t() -> object:
    from opencc import OpenCC

    return OpenCC("s2t")


def traditional(text: str) -> str:
    """Simplified to traditional Chinese characters (opencc)."""
    return str(_opencc_s2t().convert(text))  # type: ignore[attr-defined]


def pinyin_name(name: str) -> str:
    """``张伟`` -> ``ZHANG WEI`` (family name, then the given name run together)."""
    syllables = lazy_pinyin(name)
    return f"{syllables[0]} {''.join(syllables[1:])}".upper()


def is_chinese(name: str) -> bool:
    return all("\u4e00" <= ch <= "\u9fff" for ch in name)


def typo_name(rng: random.Random, name: str) -> str:
    """Replace one confusable given-name character (or repeat the last one when none is)."""
    spots = [i for i, ch in enumerate(name) if i > 0 and ch in CONFUSABLE]
    if not spots:
        return name + name[-1]
    i = rng.choice(spots)
    return name[:i] + CONFUSABLE[name[i]] + name[i + 1 :]


def name_variant(rng: random.Random, name: str, kind: str) -> str:
    """The name as a site recorded it: exact, traditional, pinyin or typo."""
    if kind == "traditional" and is_chinese(name):
        return traditional(name)
    if kind == "pinyin" and is_chinese(name):
        return pinyin_name(name)
    if kind == "typo":
        return typo_name(rng, name) if is_chinese(name) else name.upper()
    return name
