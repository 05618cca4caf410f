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


def usage_of(record_type: str, duration_s: int | None, data_volume_bytes: int | None) -> tuple[int, int, str]:
    """(usage in engine units, usage amount, unit): seconds of voice, one SMS, bytes of data."""
    if record_type == "voice":
        return int(duration_s) * NS_PER_S, int(duration_s), "s"
    if record_type == "sms":
        return 1, 1, "msg"
    return int(data_volume_bytes), int(data_volume_bytes), "byte"


def rate_cdr(engine: RatingEngine, *, record_type: str, direction: str | None, served_operator_id: str,
             segment: str | None, other_msisdn: str | None, technology: str, start_time: datetime,
             duration_s: int | None, data_volume_bytes: int | None) -> CdrRating:
    """Rate one clean CDR; raises NotRated (-> suspense) when the tariff does not cover it."""
    service = SERVICE[record_type]
    if direction == "incoming" and record_type != "data":
        service += "_in"
    destination = other_msisdn.lstrip("+") if other_msisdn and record_type != "data" else "*any"
    usage_ns, amount, unit = usage_of(record_type, duration_s, data_volume_bytes)
    subject = segment or "*any"
    categories = [f"{service}_{technology}", service]
    last: NotRated | None = None
    for category in categories:
        if engine.profile_plan(served_operator_id, category, subject, start_time) is None and category != service:
            continue  # no technology-specific price for this subscriber: the service's price
        try:
            r = engine.rate(tor=TOR[record_type], tenant=served_operator_id, category=category, subject=subject,
                            destination=destination, setup_time=start_time, usage_ns=usage_ns)
        except NotRated as exc:
            last = exc
            if category != service:
                continue
            raise
        return CdrRating(served_operator_id, category, subject, r.rating_plan_id, r.destination_id, r.cost,
                         r.connect_fee, amount, unit)
    raise last or NotRated("NO_RATING_PROFILE", f"{served_operator_id}/{service}/{subject}")
