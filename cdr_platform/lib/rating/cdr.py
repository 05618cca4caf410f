"""How a clean CDR is put to the rating engine: the one mapping, used by Spark and the checks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from cdr_platform.lib.rating.engine import NS_PER_S, NotRated, RatingEngine

CURRENCY = "MAD"
TOR = {"voice": "*voice", "sms": "*sms", "data": "*data"}
SERVICE = {"voice": "call", "sms": "sms", "data": "data"}


@dataclass(frozen=True)
class CdrRating:
    tenant: str
    category: str
    subject: str
    rating_plan_id: str
    destination_id: str
    cost: Decimal
    connect_fee: Decimal
    usage_amount: int
    usage_unit: str


# What is metered per record type: (column, engine units per column unit, unit name); SMS
# counts one message. The engine meters voice in nanoseconds, data in bytes, SMS in messages.
USAGE = {"voice": ("duration_s", NS_PER_S, "s"), "sms": (None, 1, "msg"), "data": ("data_volume_bytes", 1, "byte")}


def usage_of(record_type: str, duration_s: int | None, data_volume_bytes: int | None) -> tuple[int, int, str]:
    """(usage in engine units, usage amount, unit): seconds of voice, one SMS, bytes of data."""
    column, per_unit, unit = USAGE[record_type if record_type in ("voice", "sms") else "data"]
    amount = 1 if column is None else int(duration_s if column == "duration_s" else data_volume_bytes)
    return amount * per_unit, amount, unit


def service_of(record_type: str, direction: str | None) -> str:
    """The service a record is priced under: received calls and SMS have their own (_in)."""
    service = SERVICE[record_type]
    return service + "_in" if direction == "incoming" and record_type != "data" else service


def destination_of(record_type: str, other_msisdn: str | None) -> str:
    """The number matched against destination prefixes: data has none (*any)."""
    return other_msisdn.lstrip("+") if other_msisdn and record_type != "data" else "*any"


def subject_of(segment: str | None) -> str:
    return segment or "*any"


def first_category(engine: RatingEngine, tenant: str, service: str, technology: str, subject: str, at: datetime) -> str:
    """The technology's category (call_4G) when the subscriber has a profile for it, else the service's."""
    category = f"{service}_{technology}"
    return category if engine.profile_plan(tenant, category, subject, at) is not None else service


def rate_cdr(
    engine: RatingEngine,
    *,
    record_type: str,
    direction: str | None,
    served_operator_id: str,
    segment: str | None,
    other_msisdn: str | None,
    technology: str,
    start_time: datetime,
    duration_s: int | None,
    data_volume_bytes: int | None,
) -> CdrRating:
    """Rate one clean CDR; raises NotRated (-> suspense) when the tariff does not cover it.

    The technology's category is tried first; if it does not rate the record, the service's.
    """
    service = service_of(record_type, direction)
    destination = destination_of(record_type, other_msisdn)
    usage_ns, amount, unit = usage_of(record_type, duration_s, data_volume_bytes)
    subject = subject_of(segment)
    first = first_category(engine, served_operator_id, service, technology, subject, start_time)
    for category in dict.fromkeys((first, service)):
        try:
            r = engine.rate(
                tor=TOR[record_type],
                tenant=served_operator_id,
                category=category,
                subject=subject,
                destination=destination,
                setup_time=start_time,
                usage_ns=usage_ns,
            )
        except NotRated:
            if category != service:
                continue
            raise
        return CdrRating(
            served_operator_id,
            category,
            subject,
            r.rating_plan_id,
            r.destination_id,
            r.cost,
            r.connect_fee,
            amount,
            unit,
        )
    raise AssertionError("unreachable: the service's category either rates or raises")
