"""The operator's own reference data, from files: the numbering plan, the cells, the subscribers.

One CSV format per dataset (README, "The operator's reference files"): UTF-8 (a leading
byte-order mark is allowed), comma separated, quoted as CSV allows; the first line is a header
naming exactly the dataset's columns (in any order); blank lines are ignored; spaces around a
value are dropped. Every row is validated, and a file with any bad row - or a bad header, no
rows, a duplicate key, bytes that are not UTF-8 - is refused whole: `ReferenceFileError` carries
every `RowError` (file, line, reason), and nothing of the file is loaded.

The rules reuse the code's own definitions: the numbering plan's `lookup`, number types, home
country and operators (numbering_plan.py), the CGI as `cell_global_id` writes it (network.py),
the segments (subscribers.py), the technologies (lib.schema) and the warehouse columns' lengths
(tables.py). Plain Python: what the warehouse does with a parsed file is in loads.py.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import astuple, dataclass, fields
from datetime import date
from pathlib import Path
from typing import NamedTuple

from cdr_platform.lib.reference import numbering_plan as plan
from cdr_platform.lib.reference.network import CELL_CATALOGUE, cell_global_id
from cdr_platform.lib.reference.subscribers import (
    DEFAULT_SUBSCRIBER_COUNT,
    DEFAULT_SUBSCRIBER_SEED,
    SEGMENTS,
    generate_subscribers,
)
from cdr_platform.lib.reference.tables import (
    CELL_CATALOGUE_TABLE,
    GENERATED_VALID_FROM,
    NUMBERING_PLAN_TABLE,
    SUBSCRIBER_PERIODS_TABLE,
    numbering_plan_rows,
)
from cdr_platform.lib.schema import TECHNOLOGIES
from cdr_platform.lib.warehouse import TableSpec

MAX_LISTED_ERRORS = 50  # a refused file's message lists this many errors; the exception has them all
GENERATED = "generated"  # the file name a load of the code's own data is recorded under
_BOM = b"\xef\xbb\xbf"


# -- the rows of each dataset ------------------------------------------------------------------


@dataclass(frozen=True)
class NumberingPlanRow:
    """A row of numbering_plan.csv, and of reference.numbering_plan (same columns, same order)."""

    prefix: str  # E.164 digits without '+'
    country: str  # ISO 3166 alpha-2
    number_type: str  # one of numbering_plan.NUMBER_TYPES
    operator_id: str | None  # empty for a foreign country code
    operator_name: str | None
    zone: str  # NATIONAL, or the international rating zone
    number_length: int  # E.164 digits of a complete number

    def table_row(self) -> tuple:
        return astuple(self)


@dataclass(frozen=True)
class CellRow:
    """A row of cells.csv; reference.cell_catalogue holds network and the dates as its last columns."""

    cell_id: str  # CGI MCC-MNC-LAC-CI
    operator_id: str
    network: str  # MCC-MNC
    region: str
    lac: int
    ci: int
    max_technology: str
    valid_from: date
    valid_to: date | None  # inclusive; None: open-ended

    def table_row(self) -> tuple:
        """In CELL_CATALOGUE_TABLE's column order."""
        return (
            self.cell_id,
            self.operator_id,
            self.region,
            self.lac,
            self.ci,
            self.max_technology,
            self.network,
            self.valid_from,
            self.valid_to,
        )


@dataclass(frozen=True)
class SubscriberPeriod:
    """A row of subscribers.csv: one subscriber with one plan from valid_from to valid_to (inclusive).

    Activation is a first period, a plan change a new period, termination a valid_to."""

    msisdn: str
    operator_id: str
    segment: str
    plan: str
    home_cell_id: str
    valid_from: date
    valid_to: date | None  # the last day in force; None: open-ended

    def in_force(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)

    def table_row(self, version: int) -> tuple:
        """In SUBSCRIBER_PERIODS_TABLE's column order."""
        return (*astuple(self), version)


class HomeCell(NamedTuple):
    """What a subscriber's home cell must be: a cell of the catalogue, on the subscriber's operator."""

    operator_id: str
    region: str


def generated_cells() -> dict[str, HomeCell]:
    return {c.cell_id: HomeCell(c.operator_id, c.region) for c in CELL_CATALOGUE}


# -- the formats -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileFormat:
    dataset: str  # what `cdr reference load` names it
    file_name: str  # its file in CDR_REFERENCE_DIR
    row_type: type
    table: TableSpec  # the warehouse table: the columns' lengths
    key: tuple[str, ...]  # unique in a file
    optional: tuple[str, ...] = ()  # may be empty

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self.row_type))


NUMBERING_PLAN_FORMAT = FileFormat(
    "numbering-plan",
    "numbering_plan.csv",
    NumberingPlanRow,
    NUMBERING_PLAN_TABLE,
    ("prefix",),
    optional=("operator_id", "operator_name"),
)
CELLS_FORMAT = FileFormat("cells", "cells.csv", CellRow, CELL_CATALOGUE_TABLE, ("cell_id",), optional=("valid_to",))
SUBSCRIBERS_FORMAT = FileFormat(
    "subscribers",
    "subscribers.csv",
    SubscriberPeriod,
    SUBSCRIBER_PERIODS_TABLE,
    ("msisdn", "valid_from"),
    optional=("valid_to",),
)
FORMATS: dict[str, FileFormat] = {f.dataset: f for f in (NUMBERING_PLAN_FORMAT, CELLS_FORMAT, SUBSCRIBERS_FORMAT)}
DATASETS = tuple(FORMATS)  # in load order: subscribers are checked against the cells


# -- errors ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    file: str
    line: int  # 1 is the header
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


class ReferenceFileError(ValueError):
    """A refused file, with every error found in it (its message lists the first 50)."""

    def __init__(self, file: str, errors: Iterable[RowError]) -> None:
        self.file = file
        self.errors = sorted(errors, key=lambda e: e.line)
        listed = "\n".join(str(e) for e in self.errors[:MAX_LISTED_ERRORS])
        more = len(self.errors) - MAX_LISTED_ERRORS
        super().__init__(
            f"{file}: refused ({len(self.errors)} error{'s' if len(self.errors) != 1 else ''}), nothing loaded\n"
            + listed
            + (f"\n... and {more} more" if more > 0 else "")
        )


@dataclass(frozen=True)
class ParsedFile:
    """An accepted file: its rows, and the SHA-256 of its bytes (its identity as a version)."""

    dataset: str
    file_name: str
    sha256: str
    rows: tuple  # of the format's row_type, in file order


# -- reading -----------------------------------------------------------------------------------


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:37] + "...")


class _Record:
    """One row being validated: its values by column, and what is wrong with it."""

    def __init__(self, fmt: FileFormat, line: int, values: dict[str, str]) -> None:
        self.fmt = fmt
        self.line = line
        self.values = values
        self.problems: list[str] = []

    def problem(self, reason: str) -> None:
        self.problems.append(reason)

    def text(self, name: str) -> str | None:
        """The value; None when empty (a problem unless the column is optional) or too long."""
        value = self.values[name]
        if not value:
            if name not in self.fmt.optional:
                self.problem(f"{name} is empty (required)")
            return None
        length = next(c.length for c in self.fmt.table.columns if c.name == name)
        if length is not None and len(value) > length:
            self.problem(f"{name} {_shown(value)} is longer than {length} characters")
            return None
        return value

    def matching(self, name: str, pattern: str, what: str) -> str | None:
        value = self.text(name)
        if value is not None and not re.fullmatch(pattern, value):
            self.problem(f"{name} {_shown(value)} {what}")
            return None
        return value

    def choice(self, name: str, allowed: Iterable[str]) -> str | None:
        allowed = tuple(allowed)
        value = self.text(name)
        if value is not None and value not in allowed:
            self.problem(f"{name} {_shown(value)} is not one of {', '.join(allowed)}")
            return None
        return value

    def integer(self, name: str, low: int, high: int) -> int | None:
        value = self.text(name)
        if value is None:
            return None
        if not re.fullmatch(r"[0-9]{1,9}", value) or not low <= int(value) <= high:
            self.problem(f"{name} {_shown(value)} is not a whole number from {low} to {high}")
            return None
        return int(value)

    def day(self, name: str) -> date | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
                raise ValueError
            return date.fromisoformat(value)
        except ValueError:
            self.problem(f"{name} {_shown(value)} is not an ISO date (YYYY-MM-DD)")
            return None

    def dates(self) -> tuple[date | None, date | None]:
        valid_from, valid_to = self.day("valid_from"), self.day("valid_to")
        if valid_from and valid_to and valid_to < valid_from:
            self.problem(f"valid_to {valid_to} is before valid_from {valid_from}")
        return valid_from, valid_to


def _records(fmt: FileFormat, data: bytes, file: str) -> tuple[list[_Record], list[RowError]]:
    """The file's rows with their line numbers, or what makes the file unreadable."""
    text_bytes = data[len(_BOM) :] if data.startswith(_BOM) else data
    try:
        text = text_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = text_bytes[: exc.start].count(b"\n") + 1
        return [], [RowError(file, line, f"not UTF-8: byte 0x{text_bytes[exc.start]:02x} (save the file as UTF-8)")]
    header_hint = f"the header is {','.join(fmt.columns)}"
    if not text.strip():
        return [], [RowError(file, 1, f"empty file: {header_hint}")]
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[_Record] = []
    errors: list[RowError] = []
    try:
        names = [n.strip() for n in next(reader)]
        twice = sorted({n for n in names if names.count(n) > 1})
        missing = [c for c in fmt.columns if c not in names]
        extra = list(dict.fromkeys(n for n in names if n not in fmt.columns))
        if twice:
            errors.append(RowError(file, 1, f"column named twice in the header: {', '.join(twice)}"))
        if missing:
            errors.append(RowError(file, 1, f"missing column in the header: {', '.join(missing)} ({header_hint})"))
        if extra:
            shown = ", ".join(n or "(empty)" for n in extra)
            errors.append(RowError(file, 1, f"unexpected column in the header: {shown} ({header_hint})"))
        if errors:
            return [], errors
        last = reader.line_num
        for values in reader:
            line, last = last + 1, reader.line_num  # a quoted field may span lines: its first
            if not values:
                continue  # a blank line
            if len(values) != len(names):
                errors.append(RowError(file, line, f"{len(values)} fields, the header has {len(names)}"))
                continue
            records.append(_Record(fmt, line, {n: v.strip() for n, v in zip(names, values, strict=True)}))
    except csv.Error as exc:
        errors.append(RowError(file, max(reader.line_num, 1), f"malformed CSV: {exc}"))
    if not records and not errors:
        errors.append(RowError(file, 2, "no data rows (the file has its header only)"))
    return records, errors


# -- the rules of each dataset -----------------------------------------------------------------


def _numbering_plan_row(r: _Record) -> NumberingPlanRow | None:
    prefix = r.matching("prefix", r"[1-9][0-9]{0,14}", "is not 1 to 15 digits, the first not 0 (E.164 without '+')")
    country = r.matching("country", r"[A-Z]{2}", "is not an ISO 3166 country code (2 capital letters)")
    number_type = r.choice("number_type", plan.NUMBER_TYPES)
    operator_id = r.matching("operator_id", r"[A-Za-z0-9_-]+", "is not letters, digits, '_' and '-'")
    operator_name = r.text("operator_name")
    zone = r.matching("zone", r"[A-Z][A-Z0-9_]*", "is not capital letters, digits and '_' (NATIONAL, EUROPE...)")
    number_length = r.integer("number_length", 8, 15)  # E.164: 8 to 15 digits (numbering_plan.E164_PATTERN)
    if bool(r.values["operator_id"]) != bool(r.values["operator_name"]):
        r.problem("operator_id and operator_name go together: give both or neither")
    if prefix and number_length is not None and number_length <= len(prefix):
        r.problem(f"number_length {number_length} leaves no digit after the prefix {prefix}")
    if prefix and country:
        national = country == plan.HOME_COUNTRY
        if national != prefix.startswith(plan.HOME_COUNTRY_CODE):
            r.problem(
                f"prefix {prefix} of country {country}: the prefixes of {plan.HOME_COUNTRY}, and only they, "
                f"start with its country code {plan.HOME_COUNTRY_CODE}"
            )
        if national and zone and zone != "NATIONAL":
            r.problem(f"zone {zone}: a national prefix (country {plan.HOME_COUNTRY}) is in zone NATIONAL")
        if not national and zone == "NATIONAL":
            r.problem(f"zone NATIONAL is for national prefixes (country {plan.HOME_COUNTRY}) only")
        if national and number_type == "any":
            r.problem("number_type any is for a foreign country code: a national prefix is mobile or fixed")
        if national and not r.values["operator_id"]:
            r.problem("a national prefix needs operator_id and operator_name")
    if r.problems:
        return None
    return NumberingPlanRow(prefix, country, number_type, operator_id, operator_name, zone, number_length)


_CGI = re.compile(r"([0-9]{3})-([0-9]{2,3})-([0-9]+)-([0-9]+)")


def _cell_row(r: _Record) -> CellRow | None:
    cell_id = r.matching("cell_id", _CGI.pattern, "is not a CGI MCC-MNC-LAC-CI (such as 604-01-01000-00010)")
    operator_id = r.choice("operator_id", plan.OPERATORS_BY_ID)
    network = r.matching("network", r"[0-9]{3}-[0-9]{2,3}", "is not MCC-MNC (such as 604-01)")
    region = r.text("region")
    lac = r.integer("lac", 0, 65535)  # 2 octets each in a CGI (3GPP TS 23.003)
    ci = r.integer("ci", 0, 65535)
    max_technology = r.choice("max_technology", TECHNOLOGIES)
    valid_from, valid_to = r.dates()
    if cell_id:
        mcc, mnc, cgi_lac, cgi_ci = _CGI.fullmatch(cell_id).groups()
        if network and network != f"{mcc}-{mnc}":
            r.problem(f"network {network} is not the CGI's {mcc}-{mnc}")
        if lac is not None and int(cgi_lac) != lac:
            r.problem(f"lac {lac} is not the CGI's {int(cgi_lac)}")
        if ci is not None and int(cgi_ci) != ci:
            r.problem(f"ci {ci} is not the CGI's {int(cgi_ci)}")
        if not r.problems and lac is not None and ci is not None and cell_id != cell_global_id(mcc, mnc, lac, ci):
            r.problem(f"cell_id must be written {cell_global_id(mcc, mnc, lac, ci)} (LAC and CI as 5 digits)")
    if operator_id and network and plan.OPERATORS_BY_ID[operator_id].mcc_mnc != network:
        r.problem(f"network {network} is not operator {operator_id}'s ({plan.OPERATORS_BY_ID[operator_id].mcc_mnc})")
    if r.problems:
        return None
    return CellRow(cell_id, operator_id, network, region, lac, ci, max_technology, valid_from, valid_to)


def _subscriber_period(
    r: _Record, cells: Mapping[str, HomeCell], lookup: Callable[[str], plan.PlanEntry | None]
) -> SubscriberPeriod | None:
    msisdn = r.text("msisdn")
    entry = None
    if msisdn is not None:
        if not plan.E164_PATTERN.match(msisdn):
            r.problem(f"msisdn {_shown(msisdn)} is not E.164 ('+' and 8 to 15 digits, such as +212612345678)")
        elif (entry := lookup(msisdn)) is None:
            r.problem(f"msisdn {msisdn} is not a number of the numbering plan (unknown prefix or wrong length)")
        elif entry.country != plan.HOME_COUNTRY:
            r.problem(f"msisdn {msisdn} is a foreign number ({entry.country}): subscribers are national")
            entry = None
        elif entry.number_type != "mobile":
            r.problem(f"msisdn {msisdn} is a {entry.number_type} number, not a mobile one")
            entry = None
    operator_id = r.text("operator_id")
    if entry is not None and operator_id is not None and operator_id != entry.operator_id:
        r.problem(f"operator_id {operator_id}, but the numbering plan gives {entry.operator_id} for {msisdn}")
    segment = r.choice("segment", SEGMENTS)
    plan_name = r.text("plan")
    home_cell_id = r.text("home_cell_id")
    if home_cell_id is not None:
        cell = cells.get(home_cell_id)
        if cell is None:
            r.problem(f"home_cell_id {home_cell_id} is not in the cell catalogue")
        elif operator_id is not None and cell.operator_id != operator_id:
            r.problem(f"home cell {home_cell_id} is {cell.operator_id}'s, not {operator_id}'s")
    valid_from, valid_to = r.dates()
    if r.problems:
        return None
    return SubscriberPeriod(msisdn, operator_id, segment, plan_name, home_cell_id, valid_from, valid_to)


def _duplicates(fmt: FileFormat, file: str, rows: list[tuple[int, object]]) -> list[RowError]:
    first: dict[tuple, int] = {}
    errors = []
    for line, row in rows:
        key = tuple(getattr(row, k) for k in fmt.key)
        if key in first:
            shown = ", ".join(f"{k} {v}" for k, v in zip(fmt.key, key, strict=True))
            errors.append(RowError(file, line, f"duplicate key: {shown} is on line {first[key]} already"))
        else:
            first[key] = line
    return errors


def _operator_names_agree(file: str, rows: list[tuple[int, NumberingPlanRow]]) -> list[RowError]:
    named: dict[str, tuple[int, str]] = {}
    errors = []
    for line, row in rows:
        if row.operator_id is None:
            continue
        first_line, name = named.setdefault(row.operator_id, (line, row.operator_name))
        if name != row.operator_name:
            errors.append(
                RowError(
                    file,
                    line,
                    f"operator {row.operator_id} is named {row.operator_name!r} here, {name!r} on line {first_line}",
                )
            )
    return errors


def _periods_do_not_overlap(file: str, rows: list[tuple[int, SubscriberPeriod]]) -> list[RowError]:
    by_msisdn: dict[str, list[tuple[int, SubscriberPeriod]]] = {}
    for line, period in rows:
        by_msisdn.setdefault(period.msisdn, []).append((line, period))
    errors = []
    for periods in by_msisdn.values():
        periods.sort(key=lambda p: p[1].valid_from)
        for (line_a, a), (line_b, b) in zip(periods, periods[1:], strict=False):
            if a.valid_from == b.valid_from:
                continue  # a duplicate key, reported as such
            if a.valid_to is None or a.valid_to >= b.valid_from:
                earlier, later = sorted((line_a, line_b))
                errors.append(
                    RowError(
                        file,
                        later,
                        f"the periods of {a.msisdn} on lines {earlier} and {later} overlap "
                        f"({a.valid_from}..{a.valid_to or 'open'} and {b.valid_from}..{b.valid_to or 'open'})",
                    )
                )
    return errors


def parse(
    dataset: str,
    data: bytes,
    file: str,
    *,
    cells: Mapping[str, HomeCell] | None = None,
    lookup: Callable[[str], plan.PlanEntry | None] = plan.lookup,
) -> ParsedFile:
    """A file's bytes as rows of `dataset`, all valid, or ReferenceFileError with every error.

    `file` names it in the errors (its last part is the file name of the load). Subscribers are
    checked against `cells` (default: the generated catalogue) and the numbering plan (`lookup`)."""
    if dataset not in FORMATS:
        raise ValueError(f"unknown dataset {dataset!r}: one of {', '.join(DATASETS)}")
    fmt = FORMATS[dataset]
    records, errors = _records(fmt, data, file)
    if cells is None:
        cells = generated_cells()
    rules: dict[str, Callable[[_Record], object]] = {
        "numbering-plan": _numbering_plan_row,
        "cells": _cell_row,
        "subscribers": lambda r: _subscriber_period(r, cells, lookup),
    }
    rows: list[tuple[int, object]] = []
    for record in records:
        row = rules[dataset](record)
        errors += [RowError(file, record.line, reason) for reason in record.problems]
        if row is not None:
            rows.append((record.line, row))
    errors += _duplicates(fmt, file, rows)
    if dataset == "numbering-plan":
        errors += _operator_names_agree(file, rows)
    if dataset == "subscribers":
        errors += _periods_do_not_overlap(file, rows)
    if errors:
        raise ReferenceFileError(file, errors)
    return ParsedFile(dataset, Path(file).name, hashlib.sha256(data).hexdigest(), tuple(row for _, row in rows))


def parse_file(dataset: str, path: Path, **context) -> ParsedFile:
    return parse(dataset, Path(path).read_bytes(), str(path), **context)


def subscribers_in_force(periods: Iterable[SubscriberPeriod], day: date) -> list[SubscriberPeriod]:
    """One period per subscriber: the one in force on `day`, else the latest (by valid_from)."""
    chosen: dict[str, SubscriberPeriod] = {}
    for p in periods:
        current = chosen.get(p.msisdn)
        if (
            current is None
            or (p.in_force(day) and not current.in_force(day))
            or (p.in_force(day) == current.in_force(day) and p.valid_from > current.valid_from)
        ):
            chosen[p.msisdn] = p
    return sorted(chosen.values(), key=lambda p: p.msisdn)


# -- writing: the format, and the code's own data in it ----------------------------------------


def to_csv(dataset: str, rows: Iterable) -> bytes:
    """Rows of `dataset` in its documented format (what `parse` reads back to the same rows)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FORMATS[dataset].columns)
    for row in rows:
        writer.writerow("" if v is None else v.isoformat() if isinstance(v, date) else v for v in astuple(row))
    return out.getvalue().encode("utf-8")


def generated_rows(
    dataset: str, subscriber_count: int = DEFAULT_SUBSCRIBER_COUNT, seed: int = DEFAULT_SUBSCRIBER_SEED
) -> tuple:
    """The code's own data of `dataset` (what is loaded when the operator gives no file)."""
    if dataset == "numbering-plan":
        return tuple(NumberingPlanRow(*row) for row in numbering_plan_rows())
    if dataset == "cells":
        return tuple(
            CellRow(
                c.cell_id, c.operator_id, c.network, c.region, c.lac, c.ci, c.max_technology, GENERATED_VALID_FROM, None
            )
            for c in CELL_CATALOGUE
        )
    if dataset == "subscribers":
        return tuple(
            SubscriberPeriod(s.msisdn, s.operator_id, s.segment, s.plan, s.home_cell_id, GENERATED_VALID_FROM, None)
            for s in generate_subscribers(subscriber_count, seed)
        )
    raise ValueError(f"unknown dataset {dataset!r}: one of {', '.join(DATASETS)}")


def generated_csv(
    dataset: str, subscriber_count: int = DEFAULT_SUBSCRIBER_COUNT, seed: int = DEFAULT_SUBSCRIBER_SEED
) -> bytes:
    """The code's own data of `dataset` as a file of the documented format (`cdr reference export`)."""
    return to_csv(dataset, generated_rows(dataset, subscriber_count, seed))
