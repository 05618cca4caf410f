"""The operator's reference files: each documented rule refuses a file broken that way, at the right
line; good files parse; the generated data exported in the format reads back as the same rows."""

from __future__ import annotations

import csv
import io
import re
from datetime import date

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from cdr_platform.cli import _REFERENCE_DATASETS, cdr
from cdr_platform.lib.reference.loads import ReferenceStore
from cdr_platform.lib.reference.network import cells_of
from cdr_platform.lib.reference.operator_files import (
    DATASETS,
    FORMATS,
    MAX_LISTED_ERRORS,
    CellRow,
    ReferenceFileError,
    RowError,
    SubscriberPeriod,
    generated_csv,
    parse,
    subscribers_in_force,
)
from cdr_platform.lib.reference.subscribers import generate_subscribers
from cdr_platform.lib.reference.tables import GENERATED_VALID_FROM, cell_catalogue_rows, numbering_plan_rows
from cdr_platform.lib.warehouse.dialects import SQLSERVER
from cdr_platform_tests.sqlserver_recorder import tsql_problems

IAM_CELL = cells_of("IAM")[0].cell_id  # 604-01-01000-00010, Casablanca
ORANGE_CELL = cells_of("ORANGE")[0].cell_id

GOOD = {
    "numbering-plan": [
        "prefix,country,number_type,operator_id,operator_name,zone,number_length",
        "212610,MA,mobile,IAM,Maroc Telecom,NATIONAL,12",
        "212612,MA,mobile,ORANGE,Orange Maroc,NATIONAL,12",
        "33,FR,any,,,EUROPE,11",
    ],
    "cells": [
        "cell_id,operator_id,network,region,lac,ci,max_technology,valid_from,valid_to",
        "604-01-01000-00010,IAM,604-01,Casablanca,1000,10,4G,2024-01-01,",
        "604-00-01100-00011,ORANGE,604-00,Rabat,1100,11,5G,2024-01-01,2026-12-31",
    ],
    "subscribers": [
        "msisdn,operator_id,segment,plan,home_cell_id,valid_from,valid_to",
        f"+212610000001,IAM,consumer_prepaid,Jawal Prepaid,{IAM_CELL},2025-01-01,2025-06-30",
        f"+212610000001,IAM,consumer_postpaid,Forfait 100,{IAM_CELL},2025-07-01,",
        f"+212612000001,ORANGE,business,Business Pro,{ORANGE_CELL},2025-03-01,2026-02-28",
    ],
}


def file_of(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode("utf-8")


def with_line(dataset: str, line: int, text: str) -> bytes:
    """The good file of `dataset` with its line `line` (1 = the header) replaced by `text`."""
    lines = list(GOOD[dataset])
    lines[line - 1] = text
    return file_of(lines)


def refused(dataset: str, data: bytes, name: str = "f.csv", **context) -> list[RowError]:
    with pytest.raises(ReferenceFileError) as caught:
        parse(dataset, data, name, **context)
    assert all(isinstance(e, RowError) and e.file == name for e in caught.value.errors)
    return caught.value.errors


def assert_refused_at(dataset: str, data: bytes, line: int, reason: str) -> None:
    errors = refused(dataset, data)
    assert {e.line for e in errors} == {line}, errors
    assert any(reason in e.reason for e in errors), [e.reason for e in errors]


# -- good files --------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", DATASETS)
def test_a_good_file_of_each_dataset_parses_with_its_sha256_and_file_name(dataset):
    data = file_of(GOOD[dataset])
    parsed = parse(dataset, data, f"/some/folder/{dataset}.csv")
    assert len(parsed.rows) == len(GOOD[dataset]) - 1
    assert parsed.file_name == f"{dataset}.csv"
    assert re.fullmatch(r"[0-9a-f]{64}", parsed.sha256)
    assert parse(dataset, data + b"\n", "x").sha256 != parsed.sha256  # the bytes are the identity


def test_a_file_may_reorder_columns_quote_values_pad_them_have_a_bom_and_blank_lines():
    data = (
        "\ufeffregion , cell_id,operator_id,network,lac,ci,max_technology,valid_from,valid_to\n"
        '"Casablanca, Ain Sebaa", 604-01-01000-00010 ,IAM,604-01,1000,10,4G,2024-01-01,\n'
        "\n"
        "Rabat,604-01-01100-00011,IAM,604-01,1100,11,2G,2024-01-01,2024-01-01\n"
    ).encode()
    (first, second) = parse("cells", data, "cells.csv").rows
    assert first == CellRow(
        "604-01-01000-00010", "IAM", "604-01", "Casablanca, Ain Sebaa", 1000, 10, "4G", date(2024, 1, 1), None
    )
    assert second.valid_to == second.valid_from == date(2024, 1, 1)  # one day is a valid period


def test_subscriber_periods_parse_as_dated_rows():
    rows = parse("subscribers", file_of(GOOD["subscribers"]), "s.csv").rows
    assert rows[0] == SubscriberPeriod(
        "+212610000001", "IAM", "consumer_prepaid", "Jawal Prepaid", IAM_CELL, date(2025, 1, 1), date(2025, 6, 30)
    )
    assert rows[1].valid_to is None  # a plan change: a new open-ended period


@pytest.mark.parametrize("dataset", DATASETS)
def test_the_generated_data_exported_in_the_format_reads_back_as_the_same_rows(dataset):
    rows = parse(dataset, generated_csv(dataset), "generated").rows
    if dataset == "numbering-plan":
        assert [r.table_row() for r in rows] == numbering_plan_rows()
    elif dataset == "cells":
        assert [r.table_row() for r in rows] == cell_catalogue_rows()
        assert all(r.network == r.cell_id[:6] and r.valid_from == GENERATED_VALID_FROM for r in rows)
    else:
        subs = generate_subscribers()
        assert [(r.msisdn, r.operator_id, r.segment, r.plan, r.home_cell_id) for r in rows] == [
            (s.msisdn, s.operator_id, s.segment, s.plan, s.home_cell_id) for s in subs
        ]
        assert {(r.valid_from, r.valid_to) for r in rows} == {(GENERATED_VALID_FROM, None)}


def test_the_generated_cell_catalogue_fills_network_and_an_open_validity():
    row = cell_catalogue_rows()[0]
    assert row[0] == "604-01-01000-00010" and row[6:] == ("604-01", date(2000, 1, 1), None)


# -- the file as a whole -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "line", "reason"),
    [
        (b"", 1, "empty file"),
        (b"  \n\n", 1, "empty file"),
        (file_of(GOOD["cells"][:1]), 2, "no data rows"),
        (with_line("cells", 1, "cell_id,operator_id,network,region,lac,ci,max_technology,valid_from"), 1, "missing"),
        (with_line("cells", 1, GOOD["cells"][0] + ",note"), 1, "unexpected column in the header: note"),
        (with_line("cells", 1, GOOD["cells"][0].replace("valid_to", "region")), 1, "column named twice"),
        (with_line("cells", 3, "604-00-01100-00011,ORANGE,604-00,Rabat,1100,11,5G,2024-01-01"), 3, "8 fields"),
        (with_line("cells", 3, '"604-00-01100-00011,ORANGE'), 3, "malformed CSV"),
        (file_of(GOOD["cells"][:2]) + "604-00-01100-00011,ORANGE,604-00,R\xe9gion\n".encode("latin-1"), 3, "not UTF-8"),
    ],
    ids=["empty", "blank", "header-only", "missing-column", "extra-column", "twice", "fields", "csv", "latin-1"],
)
def test_a_file_that_cannot_be_read_as_the_format_is_refused_at_its_line(data, line, reason):
    assert_refused_at("cells", data, line, reason)


def test_one_bad_row_refuses_the_whole_file():
    lines = [*GOOD["cells"], "604-01-01200-00012,IAM,604-01,Fes,1200,12,6G,2024-01-01,"]
    errors = refused("cells", file_of(lines))
    assert [(e.line, e.reason) for e in errors] == [(4, "max_technology '6G' is not one of 2G, 3G, 4G, 5G")]


def test_a_refused_file_lists_its_first_50_errors_and_carries_them_all():
    bad = [f"604-01-01000-{i:05d},IAM,604-01,Casablanca,1000,{i},6G,2024-01-01," for i in range(60)]
    with pytest.raises(ReferenceFileError) as caught:
        parse("cells", file_of([GOOD["cells"][0], *bad]), "cells.csv")
    message = str(caught.value)
    assert len(caught.value.errors) == 60
    assert message.splitlines()[0] == "cells.csv: refused (60 errors), nothing loaded"
    assert len([m for m in message.splitlines()[1:] if m.startswith("cells.csv:")]) == MAX_LISTED_ERRORS
    assert "cells.csv:2: max_technology" in message and message.endswith("... and 10 more")


# -- numbering plan ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("21261x,MA,mobile,ORANGE,Orange Maroc,NATIONAL,12", "prefix '21261x' is not 1 to 15 digits"),
        ("012612,MA,mobile,ORANGE,Orange Maroc,NATIONAL,12", "the first not 0"),
        ("212612,Ma,mobile,ORANGE,Orange Maroc,NATIONAL,12", "country 'Ma' is not an ISO 3166 country code"),
        ("212612,MA,satellite,ORANGE,Orange Maroc,NATIONAL,12", "number_type 'satellite' is not one of mobile"),
        ("212612,MA,mobile,ORANGE,,NATIONAL,12", "operator_id and operator_name go together"),
        ("212612,MA,mobile,ORANGE,Orange Maroc,NATIONAL,16", "number_length '16' is not a whole number from 8 to 15"),
        ("212612,MA,mobile,ORANGE,Orange Maroc,NATIONAL,twelve", "number_length 'twelve' is not a whole number"),
        ("2126121234,MA,mobile,ORANGE,Orange Maroc,NATIONAL,10", "number_length 10 leaves no digit after the prefix"),
        ("212612,FR,mobile,ORANGE,Orange Maroc,NATIONAL,12", "start with its country code 212"),
        ("212612,MA,mobile,ORANGE,Orange Maroc,EUROPE,12", "a national prefix (country MA) is in zone NATIONAL"),
        ("34,ES,any,,,NATIONAL,11", "zone NATIONAL is for national prefixes"),
        ("212612,MA,any,ORANGE,Orange Maroc,NATIONAL,12", "a national prefix is mobile or fixed"),
        ("212612,MA,mobile,,,NATIONAL,12", "a national prefix needs operator_id and operator_name"),
        ("212612,MA,mobile,ORANGE,Orange Maroc,national,12", "zone 'national' is not capital letters"),
        ("212612,MA,mobile,ORANGE," + "O" * 65 + ",NATIONAL,12", "operator_name 'OOOO"),
        ("212612,MA,mobile,IAM,Itissalat Al-Maghrib,NATIONAL,12", "operator IAM is named 'Itissalat Al-Maghrib' here"),
        ("212610,MA,mobile,IAM,Maroc Telecom,NATIONAL,12", "duplicate key: prefix 212610 is on line 2 already"),
        ("212612,MA,mobile,ORANGE,Orange Maroc,,12", "zone is empty (required)"),
    ],
)
def test_each_numbering_plan_rule_refuses_a_row_broken_that_way(text, reason):
    assert_refused_at("numbering-plan", with_line("numbering-plan", 3, text), 3, reason)


# -- cells -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("604001100011,ORANGE,604-00,Rabat,1100,11,5G,2024-01-01,", "is not a CGI MCC-MNC-LAC-CI"),
        ("604-00-01100-00011,ORANGE,604-02,Rabat,1100,11,5G,2024-01-01,", "network 604-02 is not the CGI's 604-00"),
        ("604-00-01100-00011,ORANGE,60400,Rabat,1100,11,5G,2024-01-01,", "network '60400' is not MCC-MNC"),
        ("604-00-01100-00011,ORANGE,604-00,Rabat,1200,11,5G,2024-01-01,", "lac 1200 is not the CGI's 1100"),
        ("604-00-01100-00011,ORANGE,604-00,Rabat,1100,12,5G,2024-01-01,", "ci 12 is not the CGI's 11"),
        ("604-00-1100-11,ORANGE,604-00,Rabat,1100,11,5G,2024-01-01,", "cell_id must be written 604-00-01100-00011"),
        ("604-00-01100-00011,ORANGE,604-00,Rabat,70000,11,5G,2024-01-01,", "lac '70000' is not a whole number"),
        ("604-00-01100-00011,ORANGE,604-00,Rabat,1100,-1,5G,2024-01-01,", "ci '-1' is not a whole number"),
        ("604-00-01100-00011,ORANGE,604-00,Rabat,1100,11,LTE,2024-01-01,", "max_technology 'LTE' is not one of 2G"),
        ("604-00-01100-00011,ACME,604-00,Rabat,1100,11,5G,2024-01-01,", "operator_id 'ACME' is not one of IAM"),
        ("604-00-01100-00011,IAM,604-00,Rabat,1100,11,5G,2024-01-01,", "network 604-00 is not operator IAM's (604-01)"),
        ("604-00-01100-00011,ORANGE,604-00,,1100,11,5G,2024-01-01,", "region is empty (required)"),
        ("604-00-01100-00011,ORANGE,604-00,Rabat,1100,11,5G,2024/01/01,", "valid_from '2024/01/01' is not an ISO"),
        ("604-00-01100-00011,ORANGE,604-00,Rabat,1100,11,5G,2024-02-30,", "valid_from '2024-02-30' is not an ISO"),
        ("604-00-01100-00011,ORANGE,604-00,Rabat,1100,11,5G,,", "valid_from is empty (required)"),
        ("604-00-01100-00011,ORANGE,604-00,Rabat,1100,11,5G,2024-01-01,2023-12-31", "valid_to 2023-12-31 is before"),
        ("604-01-01000-00010,IAM,604-01,Rabat,1000,10,5G,2024-01-01,", "duplicate key: cell_id 604-01-01000-00010"),
    ],
)
def test_each_cell_rule_refuses_a_row_broken_that_way(text, reason):
    assert_refused_at("cells", with_line("cells", 3, text), 3, reason)


# -- subscribers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"0612000001,ORANGE,business,Business Pro,{ORANGE_CELL},2025-03-01,", "msisdn '0612000001' is not E.164"),
        (f"+999123456789,ORANGE,business,Business Pro,{ORANGE_CELL},2025-03-01,", "not a number of the numbering plan"),
        (f"+2126120000012,ORANGE,business,Business Pro,{ORANGE_CELL},2025-03-01,", "(unknown prefix or wrong length)"),
        (f"+33612345678,ORANGE,business,Business Pro,{ORANGE_CELL},2025-03-01,", "is a foreign number (FR)"),
        (f"+212520000001,ORANGE,business,Business Pro,{ORANGE_CELL},2025-03-01,", "is a fixed number, not a mobile"),
        (f"+212612000001,IAM,business,Business Pro,{ORANGE_CELL},2025-03-01,", "the numbering plan gives ORANGE"),
        (f"+212612000001,ORANGE,gold,Business Pro,{ORANGE_CELL},2025-03-01,", "segment 'gold' is not one of consumer"),
        (f"+212612000001,ORANGE,business,,{ORANGE_CELL},2025-03-01,", "plan is empty (required)"),
        ("+212612000001,ORANGE,business,Business Pro,604-00-09999-00001,2025-03-01,", "is not in the cell catalogue"),
        (f"+212612000001,ORANGE,business,Business Pro,{IAM_CELL},2025-03-01,", f"{IAM_CELL} is IAM's, not ORANGE's"),
        (f"+212612000001,ORANGE,business,Business Pro,{ORANGE_CELL},2025-03-01,2025-02-28", "is before valid_from"),
        (f"+212612000001,ORANGE,business,Business Pro,{ORANGE_CELL},1 March 2025,", "is not an ISO date"),
        # the same subscriber: the period of line 2 runs to 2025-06-30
        (f"+212610000001,IAM,business,Business Pro,{IAM_CELL},2025-06-01,", "lines 2 and 3 overlap"),
        (f"+212610000001,IAM,business,Business Pro,{IAM_CELL},2025-06-30,2025-06-30", "lines 2 and 3 overlap"),
        (f"+212610000001,IAM,business,Business Pro,{IAM_CELL},2025-01-01,", "duplicate key: msisdn +212610000001"),
    ],
)
def test_each_subscriber_rule_refuses_a_row_broken_that_way(text, reason):
    assert_refused_at("subscribers", with_line("subscribers", 3, text), 3, reason)


def test_an_open_ended_period_followed_by_a_later_one_overlaps_it():
    lines = [
        GOOD["subscribers"][0],
        f"+212610000001,IAM,consumer_postpaid,Forfait 100,{IAM_CELL},2025-07-01,",
        f"+212610000001,IAM,business,Business Pro,{IAM_CELL},2026-01-01,",
    ]
    errors = refused("subscribers", file_of(lines))
    assert [(e.line, "overlap" in e.reason) for e in errors] == [(3, True)]


def test_subscribers_are_checked_against_the_cell_catalogue_given():
    data = file_of(GOOD["subscribers"])
    errors = refused("subscribers", data, cells={})  # an empty catalogue: no home cell exists
    assert {e.line for e in errors} == {2, 3, 4}


def test_the_period_in_force_on_a_day_else_the_latest():
    rows = parse("subscribers", file_of(GOOD["subscribers"]), "s.csv").rows
    on = {p.msisdn: p.plan for p in subscribers_in_force(rows, date(2025, 3, 15))}
    assert on == {"+212610000001": "Jawal Prepaid", "+212612000001": "Business Pro"}
    later = {p.msisdn: p.plan for p in subscribers_in_force(rows, date(2026, 6, 1))}
    assert later == {"+212610000001": "Forfait 100", "+212612000001": "Business Pro"}  # terminated: its last
    before = {p.msisdn: p.plan for p in subscribers_in_force(rows, date(2024, 1, 1))}
    assert before["+212610000001"] == "Forfait 100"  # none in force yet: the latest


# -- a property: any one required value blanked refuses the file at that row's line ---------------


def _rewrite(dataset: str, row: int, column: str, value: str) -> bytes:
    records = list(csv.reader(io.StringIO(generated_csv(dataset).decode())))
    records[row][records[0].index(column)] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(records)
    return out.getvalue().encode()


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_blanking_any_required_value_of_the_generated_files_refuses_them_at_that_line(data):
    dataset = data.draw(st.sampled_from(DATASETS))
    fmt = FORMATS[dataset]
    rows = generated_csv(dataset).count(b"\n") - 1
    row = data.draw(st.integers(1, rows))
    column = data.draw(st.sampled_from([c for c in fmt.columns if c not in fmt.optional]))
    errors = refused(dataset, _rewrite(dataset, row, column, ""))
    assert {e.line for e in errors} == {row + 1}
    assert f"{column} is empty (required)" in [e.reason for e in errors]


# -- the SQL of the loads, and the command -----------------------------------------------------


@pytest.mark.parametrize("sql", ReferenceStore(SQLSERVER).statements())
def test_every_reference_load_statement_is_portable_to_sql_server(sql):
    assert tsql_problems(sql) == [], sql


def test_the_cli_offers_exactly_the_datasets_of_the_formats():
    assert _REFERENCE_DATASETS == DATASETS


def test_cdr_reference_export_writes_a_file_that_loads_as_the_generated_data(tmp_path):
    out = tmp_path / "cells.csv"
    result = CliRunner().invoke(cdr, ["reference", "export", "cells", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"cells: 120 rows written to {out}"
    assert [r.table_row() for r in parse("cells", out.read_bytes(), str(out)).rows] == cell_catalogue_rows()
