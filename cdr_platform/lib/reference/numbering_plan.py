"""The numbering plan: which operator and country an E.164 number belongs to.

Modelled on Morocco's (+212) national plan, where mobile numbers are 9 digits after the
country code and the leading digits (the NDC block) name the operator that was assigned the
block. The blocks below are illustrative of that shape, not an authoritative copy of the
regulator's table. Foreign numbers are resolved to their country by country code.

One table, used by the generator (to draw numbers), by mediation (to validate and to find
each party's operator) and by the warehouse (as `reference.numbering_plan`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HOME_COUNTRY_CODE = "212"
HOME_COUNTRY = "MA"
# Digits after the country code in a national number (the national significant number).
HOME_NSN_LENGTH = 9
E164_PATTERN = re.compile(r"^\+[1-9][0-9]{7,14}$")


@dataclass(frozen=True)
class Operator:
    operator_id: str
    name: str
    mcc: str
    mnc: str

    @property
    def mcc_mnc(self) -> str:
        return f"{self.mcc}-{self.mnc}"


NATIONAL_OPERATORS: tuple[Operator, ...] = (
    Operator("IAM", "Maroc Telecom", "604", "01"),
    Operator("ORANGE", "Orange Maroc", "604", "00"),
    Operator("INWI", "inwi", "604", "02"),
)
OPERATORS_BY_ID = {op.operator_id: op for op in NATIONAL_OPERATORS}

# NDC blocks (the digits that follow +212) by operator.
_MOBILE_BLOCKS: dict[str, tuple[str, ...]] = {
    "IAM": (
        "610",
        "611",
        "613",
        "615",
        "616",
        "618",
        "650",
        "651",
        "652",
        "653",
        "654",
        "655",
        "661",
        "662",
        "666",
        "667",
        "668",
        "670",
        "671",
        "672",
        "673",
        "676",
        "677",
        "678",
    ),
    "ORANGE": (
        "612",
        "614",
        "617",
        "619",
        "644",
        "645",
        "656",
        "657",
        "660",
        "663",
        "664",
        "665",
        "669",
        "674",
        "675",
        "679",
    ),
    "INWI": (
        "600",
        "601",
        "602",
        "603",
        "606",
        "622",
        "626",
        "627",
        "629",
        "630",
        "633",
        "634",
        "637",
        "638",
        "639",
        "640",
        "646",
        "647",
        "680",
        "681",
        "687",
        "690",
        "694",
        "697",
        "698",
        "699",
    ),
}
_FIXED_BLOCKS: dict[str, tuple[str, ...]] = {
    "IAM": ("522", "523", "528", "535", "537", "539"),
    "ORANGE": ("520",),
    "INWI": ("530",),
}


@dataclass(frozen=True)
class ForeignCountry:
    country_code: str
    country: str
    zone: str  # international rating zone
    subscriber_digits: int  # digits after the country code in a mobile number
    mobile_prefixes: tuple[str, ...]


FOREIGN_COUNTRIES: tuple[ForeignCountry, ...] = (
    ForeignCountry("33", "FR", "EUROPE", 9, ("6", "7")),
    ForeignCountry("34", "ES", "EUROPE", 9, ("6", "7")),
    ForeignCountry("39", "IT", "EUROPE", 10, ("3",)),
    ForeignCountry("44", "GB", "EUROPE", 10, ("7",)),
    ForeignCountry("49", "DE", "EUROPE", 11, ("15", "16", "17")),
    ForeignCountry("32", "BE", "EUROPE", 9, ("4",)),
    ForeignCountry("1", "US", "AMERICAS", 10, ("2", "3", "4", "5", "6", "7", "8", "9")),
    ForeignCountry("971", "AE", "MIDDLE_EAST", 9, ("5",)),
    ForeignCountry("966", "SA", "MIDDLE_EAST", 9, ("5",)),
    ForeignCountry("221", "SN", "AFRICA", 9, ("7",)),
    ForeignCountry("225", "CI", "AFRICA", 10, ("0",)),
    ForeignCountry("213", "DZ", "AFRICA", 9, ("5", "6", "7")),
)

# Foreign networks our subscribers roam on (visited MCC-MNC).
ROAMING_PARTNERS: tuple[str, ...] = ("208-01", "214-07", "222-01", "234-15", "262-01", "424-02")


# What a plan row's numbers are: national mobile or fixed blocks; "any" for a whole foreign
# country code (the plan does not tell a foreign mobile number from a fixed one)
NUMBER_TYPES = ("mobile", "fixed", "any")


@dataclass(frozen=True)
class PlanEntry:
    """One row of the plan: numbers starting with `prefix` (E.164 digits, no '+')."""

    prefix: str
    country: str
    number_type: str  # one of NUMBER_TYPES
    operator_id: str | None  # None for foreign numbers: the foreign operator is not known
    zone: str  # NATIONAL or an international zone
    number_length: int  # total E.164 digits (without '+') of a complete number


def _build_plan() -> tuple[PlanEntry, ...]:
    rows: list[PlanEntry] = []
    full_length = len(HOME_COUNTRY_CODE) + HOME_NSN_LENGTH
    for operator_id, blocks in _MOBILE_BLOCKS.items():
        rows += [
            PlanEntry(HOME_COUNTRY_CODE + b, HOME_COUNTRY, "mobile", operator_id, "NATIONAL", full_length)
            for b in blocks
        ]
    for operator_id, blocks in _FIXED_BLOCKS.items():
        rows += [
            PlanEntry(HOME_COUNTRY_CODE + b, HOME_COUNTRY, "fixed", operator_id, "NATIONAL", full_length)
            for b in blocks
        ]
    for c in FOREIGN_COUNTRIES:
        rows.append(
            PlanEntry(c.country_code, c.country, "any", None, c.zone, len(c.country_code) + c.subscriber_digits)
        )
    return tuple(sorted(rows, key=lambda r: r.prefix))


NUMBERING_PLAN: tuple[PlanEntry, ...] = _build_plan()
_PLAN_BY_PREFIX = {row.prefix: row for row in NUMBERING_PLAN}
_MAX_PREFIX = max(len(p) for p in _PLAN_BY_PREFIX)


def mobile_blocks(operator_id: str) -> tuple[str, ...]:
    return _MOBILE_BLOCKS[operator_id]


def lookup(msisdn: str) -> PlanEntry | None:
    """The plan row of an E.164 number ('+' and digits): longest matching prefix, right length."""
    if not E164_PATTERN.match(msisdn):
        return None
    digits = msisdn[1:]
    for length in range(min(_MAX_PREFIX, len(digits)), 0, -1):
        row = _PLAN_BY_PREFIX.get(digits[:length])
        if row is not None:
            return row if len(digits) == row.number_length else None
    return None


def is_valid_msisdn(msisdn: object) -> bool:
    """A complete E.164 number of a country and block the plan knows."""
    return isinstance(msisdn, str) and lookup(msisdn) is not None


NATIONAL_PREFIX = "0"
INTERNATIONAL_PREFIX = "00"


def normalise_msisdn(value: str) -> str:
    """E.164 from the forms switches write: +212..., 00212..., 212... or national 0...
    (mediation's rule; collection compares two sources' numbers by it too)."""
    number = value.strip().replace(" ", "").replace("-", "")
    if number.startswith("+"):
        return number
    if number.startswith(INTERNATIONAL_PREFIX):
        return "+" + number[2:]
    if number.startswith(NATIONAL_PREFIX):
        return "+" + HOME_COUNTRY_CODE + number[1:]
    return "+" + number
