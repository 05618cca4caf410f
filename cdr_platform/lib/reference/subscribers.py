"""The subscriber base: unique, valid E.164 MSISDNs, deterministic from a seed.

Each subscriber's operator is derived from the numbering plan (the block its number was drawn
from is looked up again, as mediation will), never stored beside the number by hand.
"""

from __future__ import annotations

import csv
import random
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from cdr_platform.lib.reference import numbering_plan
from cdr_platform.lib.reference.network import cells_of

DEFAULT_SUBSCRIBER_COUNT = 300
DEFAULT_SUBSCRIBER_SEED = 2026

# Market share of the national operators among the generated subscribers.
_OPERATOR_SHARE = {"IAM": 0.42, "ORANGE": 0.31, "INWI": 0.27}
# segment -> (plan, share)
_SEGMENTS = {
    "consumer_prepaid": ("Jawal Prepaid", 0.55),
    "consumer_postpaid": ("Forfait 100", 0.30),
    "business": ("Business Pro", 0.15),
}
SEGMENTS = tuple(_SEGMENTS)  # the segments a subscriber can be in (the tariff's subjects)


@dataclass(frozen=True)
class Subscriber:
    msisdn: str
    operator_id: str
    operator_name: str
    segment: str
    plan: str
    home_cell_id: str
    home_region: str


SUBSCRIBER_COLUMNS = tuple(f.name for f in fields(Subscriber))


def generate_subscribers(
    count: int = DEFAULT_SUBSCRIBER_COUNT, seed: int = DEFAULT_SUBSCRIBER_SEED
) -> list[Subscriber]:
    if count < 1:
        raise ValueError(f"subscriber count must be at least 1, got {count}")
    rng = random.Random(seed)
    operator_ids = list(_OPERATOR_SHARE)
    segments = list(_SEGMENTS)
    seen: set[str] = set()
    subscribers: list[Subscriber] = []
    while len(subscribers) < count:
        operator_id = rng.choices(operator_ids, weights=list(_OPERATOR_SHARE.values()))[0]
        block = rng.choice(numbering_plan.mobile_blocks(operator_id))
        subscriber_digits = numbering_plan.HOME_NSN_LENGTH - len(block)
        msisdn = (
            f"+{numbering_plan.HOME_COUNTRY_CODE}{block}{rng.randrange(10**subscriber_digits):0{subscriber_digits}d}"
        )
        if msisdn in seen:
            continue
        seen.add(msisdn)
        plan_row = numbering_plan.lookup(msisdn)
        assert plan_row is not None and plan_row.operator_id is not None  # drawn from the plan
        segment = rng.choices(segments, weights=[s[1] for s in _SEGMENTS.values()])[0]
        home_cell = rng.choice(cells_of(plan_row.operator_id))
        subscribers.append(
            Subscriber(
                msisdn=msisdn,
                operator_id=plan_row.operator_id,
                operator_name=numbering_plan.OPERATORS_BY_ID[plan_row.operator_id].name,
                segment=segment,
                plan=_SEGMENTS[segment][0],
                home_cell_id=home_cell.cell_id,
                home_region=home_cell.region,
            )
        )
    return subscribers


def write_subscribers_csv(subscribers: list[Subscriber], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=SUBSCRIBER_COLUMNS)
        writer.writeheader()
        writer.writerows(asdict(s) for s in subscribers)
    tmp.replace(path)  # readers never see half a file
    return path


def read_subscribers_csv(path: Path) -> list[Subscriber]:
    with path.open(newline="", encoding="utf-8") as f:
        return [Subscriber(**row) for row in csv.DictReader(f)]
