"""The demo operators' default tariff plan, written as the dbt seeds under dbt_project/seeds/tariff.

    cdr rating write-default-plan      # rewrite the seed CSV files

Destinations come from the numbering plan (one definition of which prefix is whose); the
prices below are the plan. The seeds are committed; a test checks they equal this output.

Model (CGRateS): tenant = the served subscriber's operator (IAM, ORANGE, INWI); category =
the service (`call`, `sms`, `data`; `call_in`, `sms_in` for received ones, priced free), or
the service with a technology (`call_2G` ... `call_5G`) where a price depends on the
technology - this is how the seed's original prices by technology are expressed; subject =
`*any`, or a segment (`business`) with its own plan. Rating tries the technology category
first, then the plain service.
Currency MAD. Voice: peak (Mon-Fri from 08:00), off-peak (Mon-Fri from 20:00 and before
08:00), weekend; on-net billed 1/1 (per second), everything else 60/1 (first minute whole,
then per second), connect fees off-net and international. SMS per message. Data per MB,
in 1 KB increments (decimal units, so one increment costs an exact amount).
"""

from __future__ import annotations

import csv
from pathlib import Path

from cdr_platform.lib.rating.plan import SEED_FILES
from cdr_platform.lib.reference.numbering_plan import FOREIGN_COUNTRIES, NATIONAL_OPERATORS, NUMBERING_PLAN
from cdr_platform.lib.settings import load_settings

CURRENCY = "MAD"

ZONES = sorted({c.zone for c in FOREIGN_COUNTRIES})
TIMINGS = [
    ["PEAK", "*any", "*any", "*any", "1;2;3;4;5", "08:00:00"],
    ["OFFPEAK_EVENING", "*any", "*any", "*any", "1;2;3;4;5", "20:00:00"],
    ["OFFPEAK_NIGHT", "*any", "*any", "*any", "1;2;3;4;5", "00:00:00"],
    ["WEEKEND", "*any", "*any", "*any", "6;7", "00:00:00"],
]
# price per minute by (destination kind, band); connect fee per destination kind
VOICE_PER_MINUTE = {
    "ONNET": {"PEAK": "0.50", "OFFPEAK": "0.25", "WEEKEND": "0.20"},
    "OFFNET": {"PEAK": "1.20", "OFFPEAK": "0.80", "WEEKEND": "0.70"},
    "FIXED": {"PEAK": "0.90", "OFFPEAK": "0.60", "WEEKEND": "0.50"},
    "AFRICA": {"PEAK": "7.00", "OFFPEAK": "6.00", "WEEKEND": "6.00"},
    "AMERICAS": {"PEAK": "8.00", "OFFPEAK": "7.00", "WEEKEND": "7.00"},
    "EUROPE": {"PEAK": "6.00", "OFFPEAK": "5.00", "WEEKEND": "5.00"},
    "MIDDLE_EAST": {"PEAK": "9.00", "OFFPEAK": "8.00", "WEEKEND": "8.00"},
}
CONNECT_FEE = {
    "ONNET": "0",
    "OFFNET": "0.10",
    "FIXED": "0.10",
    "AFRICA": "0.50",
    "AMERICAS": "0.50",
    "EUROPE": "0.50",
    "MIDDLE_EAST": "0.50",
}
SMS_PER_MESSAGE = {
    "ONNET": "0.20",
    "OFFNET": "0.30",
    "FIXED": "0.30",
    "AFRICA": "1.50",
    "AMERICAS": "1.50",
    "EUROPE": "1.50",
    "MIDDLE_EAST": "1.50",
}
DATA_PER_MB = "0.05"
# The seed's original prices by technology, per minute, as categories call_2G ... call_5G
# (applied to on-net calls of the business segment, to show the mechanism).
VOICE_BY_TECHNOLOGY = {"2G": "0.60", "3G": "0.50", "4G": "0.40", "5G": "0.30"}
ACTIVATION = "2026-01-01T00:00:00Z"


def _destinations() -> list[list[str]]:
    rows = []
    for entry in NUMBERING_PLAN:
        if entry.country == "MA":
            kind = "FIXED" if entry.number_type == "fixed" else f"MOBILE_{entry.operator_id}"
            rows.append([f"MA_{kind}", entry.prefix])
        else:
            rows.append([f"INTL_{entry.zone}", entry.prefix])
    return sorted(rows)


def build_seed_rows() -> dict[str, list[list[str]]]:
    rates, drs, plans, profiles = [], [], [], []
    bands = {"PEAK": ["PEAK"], "OFFPEAK": ["OFFPEAK_EVENING", "OFFPEAK_NIGHT"], "WEEKEND": ["WEEKEND"]}
    for kind, prices in VOICE_PER_MINUTE.items():
        for band, price in prices.items():
            tag = f"RT_VOICE_{kind}_{band}"
            if kind == "ONNET":  # 1/1: per second from the first second
                rates.append([tag, CONNECT_FEE[kind], price, "60s", "1s", "0s"])
            else:  # 60/1: the first minute whole, then per second
                rates.append([tag, CONNECT_FEE[kind], price, "60s", "60s", "0s"])
                rates.append([tag, "0", price, "60s", "1s", "60s"])
    for kind, price in SMS_PER_MESSAGE.items():
        rates.append([f"RT_SMS_{kind}", "0", price, "1", "1", "0"])  # one message = one unit
    # bytes; per MB (10^6) in 1 KB (10^3) steps: one step costs exactly 0.00005, no rounding drift
    rates.append(["RT_DATA", "0", DATA_PER_MB, "1000000", "1000", "0"])
    rates.append(["RT_FREE", "0", "0", "60s", "60s", "0s"])
    for tech, price in VOICE_BY_TECHNOLOGY.items():
        rates.append([f"RT_VOICE_TECH_{tech}", "0", price, "60s", "1s", "0s"])

    for op in NATIONAL_OPERATORS:
        onnet = f"MA_MOBILE_{op.operator_id}"
        offnet = [f"MA_MOBILE_{o.operator_id}" for o in NATIONAL_OPERATORS if o is not op]
        targets = (
            [(onnet, "ONNET")]
            + [(d, "OFFNET") for d in offnet]
            + [("MA_FIXED", "FIXED")]
            + [(f"INTL_{z}", z) for z in ZONES]
        )
        for band, timing_tags in bands.items():
            dr_id = f"DR_{op.operator_id}_VOICE_{band}"
            for destination, kind in targets:
                drs.append([dr_id, destination, f"RT_VOICE_{kind}_{band}", "*middle", "2", "0", ""])
            for timing in timing_tags:
                plans.append([f"RP_{op.operator_id}_VOICE", dr_id, timing, "10"])
        sms_dr = f"DR_{op.operator_id}_SMS"
        for destination, kind in targets:
            drs.append([sms_dr, destination, f"RT_SMS_{kind}", "*middle", "2", "0", ""])
        plans.append([f"RP_{op.operator_id}_SMS", sms_dr, "*any", "10"])
        profiles.append([op.operator_id, "call", "*any", ACTIVATION, f"RP_{op.operator_id}_VOICE", ""])
        profiles.append([op.operator_id, "sms", "*any", ACTIVATION, f"RP_{op.operator_id}_SMS", ""])
        profiles.append([op.operator_id, "data", "*any", ACTIVATION, "RP_DATA", ""])
        for tech in VOICE_BY_TECHNOLOGY:
            dr_id = f"DR_{op.operator_id}_VOICE_TECH_{tech}"
            drs.append([dr_id, onnet, f"RT_VOICE_TECH_{tech}", "*middle", "2", "0", ""])
            plan_id = f"RP_{op.operator_id}_VOICE_TECH_{tech}"
            plans.append([plan_id, dr_id, "*any", "10"])
            # business on-net calls by technology; anything else falls back to the segment-less plan
            profiles.append([op.operator_id, f"call_{tech}", "business", ACTIVATION, plan_id, ""])
    drs.append(["DR_DATA", "*any", "RT_DATA", "*up", "2", "0", ""])
    plans.append(["RP_DATA", "DR_DATA", "*any", "10"])
    # Received calls and messages are free at home: a priced plan, not a special case in code.
    drs.append(["DR_INCOMING", "*any", "RT_FREE", "*middle", "2", "0", ""])
    plans.append(["RP_INCOMING", "DR_INCOMING", "*any", "10"])
    for op in NATIONAL_OPERATORS:
        for category in ("call_in", "sms_in"):
            profiles.append([op.operator_id, category, "*any", ACTIVATION, "RP_INCOMING", ""])
    return {
        "tp_destinations.csv": _destinations(),
        "tp_timings.csv": TIMINGS,
        "tp_rates.csv": rates,
        "tp_destination_rates.csv": drs,
        "tp_rating_plans.csv": plans,
        "tp_rating_profiles.csv": profiles,
    }


def seeds_dir() -> Path:
    """The tariff seeds of the dbt project (CDR_PROJECT_DIR: the checkout, or the installed package's copy)."""
    return load_settings().project_dir / "dbt_project" / "seeds" / "tariff"


def __getattr__(name: str) -> Path:
    """SEEDS_DIR (the tests' name) resolved when imported, not when this module is."""
    if name == "SEEDS_DIR":
        return seeds_dir()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def write_seeds(folder: Path | None = None) -> list[Path]:
    """The plan as seed CSV files in `folder` (default: the dbt project's tariff seeds)."""
    folder = folder or seeds_dir()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, rows in build_seed_rows().items():
        path = folder / name
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(SEED_FILES[name][1])
            writer.writerows(rows)
        written.append(path)
    return written
