"""The Power BI project (powerbi/): the model reads, follows the marts contract and the offline best practices,
the report binds to it, every measure has a portable SQL twin, and each check fails on a copy broken on purpose."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import sqlite3
import subprocess
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlglot
from pbipinspect.parse.tmdl import get_tmdl_table
from sqlglot.optimizer.qualify import qualify

from cdr_platform.lib.bi.measure_twins import MEASURE_TWINS, TOP_CUSTOMERS
from cdr_platform.lib.bi.model_checks import (
    best_practice_violations,
    fixed_decimal_type_problems,
    mart_column_problems,
    platform_wide_tables,
    row_level_security_problems,
    unresolved_references,
)
from cdr_platform.lib.bi.pbir import project_problems
from cdr_platform.lib.bi.powerbi_model import (
    POWERBI_DIR,
    PROJECT_NAME,
    ModelReadError,
    Relationship,
    SemanticModel,
    load_semantic_model,
    m_column_types,
)
from cdr_platform.lib.settings import REPO_ROOT
from cdr_platform.lib.warehouse.sql_lint import postgres_only_constructs

# The marts contract (schema marts, built by dbt with enforced model contracts), as the dbt
# manifest will list it: table -> column -> data_type, in the contract's column order.
CONTRACT: dict[str, dict[str, str]] = {
    "dim_date": {
        "date_key": "int",
        "calendar_date": "date",
        "year": "int",
        "quarter": "int",
        "month": "int",
        "month_name": "varchar(9)",
        "year_month": "varchar(7)",
        "month_start_date": "date",
        "day_of_month": "int",
        "iso_day_of_week": "int",
        "day_name": "varchar(9)",
        "is_weekend": "int",
    },
    "dim_operator": {"operator_key": "int", "operator_id": "varchar(16)", "operator_name": "varchar(64)"},
    "dim_subscriber": {
        "subscriber_key": "int",
        "msisdn": "varchar(16)",
        "operator_key": "int",
        "segment": "varchar(32)",
        "plan_id": "varchar(32)",
        "plan_name": "varchar(64)",
        "billing_type": "varchar(16)",
        "region": "varchar(32)",
    },
    "fct_revenue_daily": {
        "date_key": "int",
        "operator_key": "int",
        "usage_type": "varchar(8)",
        "destination_class": "varchar(16)",
        "technology": "varchar(4)",
        "records": "bigint",
        "voice_seconds": "bigint",
        "sms_count": "bigint",
        "data_volume_bytes": "bigint",
        "revenue": "decimal(18,4)",
    },
    "fct_subscriber_usage_monthly": {
        "month_date_key": "int",
        "subscriber_key": "int",
        "voice_calls": "bigint",
        "voice_seconds": "bigint",
        "sms_count": "bigint",
        "data_sessions": "bigint",
        "data_volume_bytes": "bigint",
        "usage_amount": "decimal(18,4)",
        "amount_before_tax": "decimal(18,4)",
        "total_amount": "decimal(18,4)",
    },
    "fct_call_distribution_daily": {
        "date_key": "int",
        "operator_key": "int",
        "destination_class": "varchar(16)",
        "direction": "varchar(8)",
        "calls": "bigint",
        "call_seconds": "bigint",
        "minutes": "decimal(18,4)",
        "revenue": "decimal(18,4)",
    },
    "fct_revenue_assurance_daily": {
        "date_key": "int",
        "messages_received": "bigint",
        "clean": "bigint",
        "rejected": "bigint",
        "duplicates": "bigint",
        "rated": "bigint",
        "in_suspense": "bigint",
        "unrated": "bigint",
        "billed": "bigint",
        "rated_amount": "decimal(18,4)",
        "billed_amount": "decimal(18,4)",
    },
    "fct_rejections_daily": {"date_key": "int", "reason": "varchar(32)", "records": "bigint"},
}
POWER_BI_TYPE = {"int": "int64", "bigint": "int64", "date": "dateTime", "varchar": "string", "decimal": "decimal"}
MEASURES = {
    "Total Revenue",
    "Average Call Duration",
    "Top Customers by Usage",
    "Call Distribution per Operator",
    "ARPU",
    "Minutes of Use",
    "SMS Count",
    "Data Volume",
    "Rejection Rate",
    "Revenue vs Previous Month",
    "Revenue Leakage",
}
OPERATORS = ("IAM", "ORANGE", "INWI")


def manifest_fragment(contract: dict[str, dict[str, str]] = CONTRACT, schema: str = "marts") -> dict:
    """The nodes of a dbt manifest for the contract's marts, as dbt writes them for a contracted model."""
    return {
        "nodes": {
            f"model.cdr_platform.{table}": {
                "resource_type": "model",
                "name": table,
                "schema": schema,
                "config": {"contract": {"enforced": True}},
                "columns": {name: {"name": name, "data_type": data_type} for name, data_type in columns.items()},
            }
            for table, columns in contract.items()
        }
    }


@pytest.fixture(scope="module")
def model() -> SemanticModel:
    return load_semantic_model()


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of powerbi/ to break on purpose."""
    copy = tmp_path / "powerbi"
    shutil.copytree(POWERBI_DIR, copy)
    return copy


def _semantic_model_dir(project: Path) -> Path:
    return project / f"{PROJECT_NAME}.SemanticModel"


def _tmdl(project: Path, relative: str) -> Path:
    return _semantic_model_dir(project) / "definition" / relative


def _edit(path: Path, old: str, new: str) -> None:
    """Replace the first `old` in `path`; the break must really apply, so `old` must be there."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {path}: update the test with the project"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _read_problems(project: Path) -> list[str]:
    with pytest.raises(ModelReadError) as failure:
        load_semantic_model(_semantic_model_dir(project))
    return failure.value.problems


def _has(problems: list[str], *fragments: str) -> bool:
    return any(all(f in p for f in fragments) for p in problems)


# -- the model as it is -----------------------------------------------------------------------------------------


def test_both_tmdl_readings_agree_on_one_table_per_mart_plus_the_measure_table(model):
    assert {t.name for t in model.tables} == set(CONTRACT) | {"_Measures"}
    assert {m.name for m in model.measures} == MEASURES
    assert all(m.table == "_Measures" for m in model.measures)


def test_every_dax_expression_parses_and_every_measure_is_read_with_its_dax(model):
    # load_semantic_model parses each one with pbi-parsers and fails on a syntax error
    assert all(m.expression.text.strip() for m in model.measures)
    assert {r.name for r in model.roles} == set(OPERATORS)
    assert [c.expression for c in model.columns if c.expression] == []  # no calculated columns


def test_each_mart_table_imports_its_marts_table_through_the_server_and_database_parameters(model):
    for name in CONTRACT:
        table = model.table(name)
        assert table.source == ("marts", name)
        assert [(p.kind, p.mode) for p in table.partitions] == [("m", "import")]
        assert "Sql.Database(Server, Database)" in table.partitions[0].source
    assert {p.name for p in model.parameters if p.is_parameter_query} == {"Server", "Database"}


def test_the_model_has_no_auto_date_time_and_one_marked_date_table(model):
    assert model.annotations["__PBI_TimeIntelligenceEnabled"] == "0"
    assert not [t for t in model.tables if t.name.startswith(("LocalDateTable_", "DateTableTemplate_"))]
    dim_date = model.table("dim_date")
    assert dim_date.data_category == "Time"
    assert [c.name for c in dim_date.columns if c.is_key] == ["calendar_date"]
    assert dim_date.column("calendar_date").data_type == "dateTime"


def test_every_table_column_and_measure_that_dax_relationships_and_roles_name_exists(model):
    assert unresolved_references(model) == []


def test_the_model_passes_the_offline_best_practice_rules(model):
    assert best_practice_violations(model) == []


def test_relationships_are_the_star_joins_and_usage_reaches_operators_only_through_subscribers(model):
    joins = {(r.from_table, r.from_column, r.to_table, r.to_column) for r in model.relationships}
    assert joins == {
        ("fct_revenue_daily", "date_key", "dim_date", "date_key"),
        ("fct_revenue_daily", "operator_key", "dim_operator", "operator_key"),
        ("fct_call_distribution_daily", "date_key", "dim_date", "date_key"),
        ("fct_call_distribution_daily", "operator_key", "dim_operator", "operator_key"),
        ("fct_subscriber_usage_monthly", "month_date_key", "dim_date", "date_key"),
        ("fct_subscriber_usage_monthly", "subscriber_key", "dim_subscriber", "subscriber_key"),
        ("dim_subscriber", "operator_key", "dim_operator", "operator_key"),
        ("fct_revenue_assurance_daily", "date_key", "dim_date", "date_key"),
        ("fct_rejections_daily", "date_key", "dim_date", "date_key"),
    }
    assert {(r.cross_filtering, r.from_cardinality, r.to_cardinality) for r in model.relationships} == {
        ("oneDirection", "many", "one")
    }


def test_each_operator_has_a_read_role_that_filters_dim_operator_on_its_operator_id(model):
    for operator in OPERATORS:
        role = next(r for r in model.roles if r.name == operator)
        assert role.model_permission == "read"
        assert list(role.filters) == ["dim_operator"]
        row_filter = role.filters["dim_operator"]
        assert row_filter.columns == (("dim_operator", "operator_id"),)
        assert re.fullmatch(rf"'dim_operator'\[operator_id\]\s*=\s*\"{operator}\"", row_filter.text.strip())


def test_every_model_column_is_in_its_mart_with_a_compatible_type_per_the_contract(model):
    assert mart_column_problems(model, manifest_fragment()) == []


def test_the_model_imports_every_contract_column_with_the_power_bi_type_of_its_sql_type(model):
    for name, columns in CONTRACT.items():
        table = model.table(name)
        imported = {c.source_column: c.data_type for c in table.columns}
        expected = {col: POWER_BI_TYPE[re.match(r"[a-z]+", sql)[0]] for col, sql in columns.items()}
        assert imported == expected, name
        # money is fixed decimal (never double), keys are not summed
        assert all(c.summarize_by == "none" for c in table.columns if c.name.endswith("_key"))


def test_the_mart_check_reports_a_missing_mart_a_missing_column_a_float_and_a_too_fine_decimal(model):
    contract = {table: dict(columns) for table, columns in CONTRACT.items() if table != "fct_rejections_daily"}
    del contract["dim_operator"]["operator_name"]
    contract["fct_revenue_daily"]["revenue"] = "float"
    contract["fct_subscriber_usage_monthly"]["usage_amount"] = "numeric(38,6)"
    problems = mart_column_problems(model, manifest_fragment(contract))
    assert _has(problems, "fct_rejections_daily", "not a dbt model")
    assert _has(problems, "dim_operator[operator_name]", "lacks")
    assert _has(problems, "fct_revenue_daily[revenue] is decimal", "float")
    assert _has(problems, "usage_amount is numeric(38,6)", "4 decimals")
    assert _has(mart_column_problems(model, manifest_fragment(schema="public")), "dbt builds dim_date in public")


def test_every_model_column_exists_in_its_dbt_mart(model, tmp_path):
    # the project as it is now, parsed on its own (the shared target/ may hold another run's schemas)
    import os
    import subprocess

    from cdr_platform.defs.dbt.project import dbt_command

    env = {k: v for k, v in os.environ.items() if not k.startswith("CDR_")}
    subprocess.run(
        dbt_command("parse", "--quiet", target_path=tmp_path),
        check=True,
        env=env,
        timeout=300,
    )
    manifest = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert mart_column_problems(model, manifest) == []


def test_the_report_follows_the_pbir_file_schemas_and_binds_only_to_model_fields(model):
    assert project_problems(POWERBI_DIR, model) == []


def test_the_report_has_its_five_pages_in_order_and_kpi_cards_on_the_overview():
    pages = POWERBI_DIR / f"{PROJECT_NAME}.Report" / "definition" / "pages"
    order = json.loads((pages / "pages.json").read_text())["pageOrder"]
    names = [json.loads((pages / p / "page.json").read_text())["displayName"] for p in order]
    assert names == ["Overview", "Revenue Trend", "Top Customers", "Operators", "Data Quality"]
    overview = [json.loads(v.read_text())["visual"] for v in (pages / "overview").glob("visuals/*/visual.json")]
    assert {v["visualType"] for v in overview} == {"card"}
    shown = {
        p["field"]["Measure"]["Property"] for v in overview for p in v["query"]["queryState"]["Values"]["projections"]
    }
    assert {"Total Revenue", "ARPU", "Minutes of Use", "Rejection Rate", "Revenue Leakage"} <= shown


def test_power_bi_local_settings_and_cache_are_git_ignored_and_the_project_files_are_not():
    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO_ROOT).returncode == 0

    for item in (f"{PROJECT_NAME}.Report", f"{PROJECT_NAME}.SemanticModel"):
        assert ignored(f"powerbi/{item}/.pbi/localSettings.json")
        assert ignored(f"powerbi/{item}/.pbi/cache.abf")
    for path in POWERBI_DIR.rglob("*"):
        if path.is_file():
            assert not ignored(str(path.relative_to(REPO_ROOT))), path


# -- the measure twins ------------------------------------------------------------------------------------------


def test_the_measure_twins_cover_exactly_the_tmdl_measures(model):
    assert set(MEASURE_TWINS) == {m.name for m in model.measures}


def test_the_top_customers_twin_ranks_the_same_n_as_the_measure_topn(model):
    topn = re.search(r"TOPN\(\s*(\d+)", model.measure("Top Customers by Usage").expression.text)
    assert topn and int(topn[1]) == TOP_CUSTOMERS
    assert f"usage_rank <= {TOP_CUSTOMERS}" in MEASURE_TWINS["Top Customers by Usage"]


@pytest.mark.parametrize("name", sorted(MEASURE_TWINS))
def test_each_measure_twin_is_exact_portable_sql_that_reads_only_contract_columns(name):
    sql = MEASURE_TWINS[name]
    assert postgres_only_constructs(sql) == []
    assert not re.search(r"\b(float|real|double|money)\b", sql, re.I), "exact decimals only"
    assert not re.search(r"\b(limit|top)\b", sql, re.I), "no limit/top: fetch next or rank()"
    schema = {"marts": {table: dict(columns) for table, columns in CONTRACT.items()}}
    for dialect in ("postgres", "tsql"):
        statement = sqlglot.parse_one(sql, read=dialect)
        assert statement.find(sqlglot.exp.Select) is not None
        # raises when a column or table is not the contract's
        qualify(statement, schema=schema, dialect=dialect, validate_qualify_columns=True)
        assert [s.alias_or_name for s in statement.selects] == ["measure_value"]


# -- each check fails on a copy broken on purpose ---------------------------------------------------------------


def test_renaming_a_column_that_a_measure_uses_breaks_the_reference_check(project):
    _edit(_tmdl(project, "tables/fct_revenue_daily.tmdl"), "\tcolumn revenue\n", "\tcolumn revenue_mad\n")
    problems = unresolved_references(load_semantic_model(_semantic_model_dir(project)))
    assert _has(problems, "measure [Total Revenue]", "'fct_revenue_daily'[revenue]")


def test_a_table_without_its_ref_line_in_model_tmdl_breaks_the_reference_check(project):
    _edit(_tmdl(project, "model.tmdl"), "ref table fct_rejections_daily\n", "")
    problems = unresolved_references(load_semantic_model(_semantic_model_dir(project)))
    assert _has(problems, "table fct_rejections_daily has no ref table line")


def test_what_power_bi_desktop_adds_on_save_still_reads_and_passes_the_checks(project):
    """Desktop rewrites the files on save (lineage tags, change markers, annotations, data access options)."""
    _edit(
        _tmdl(project, "model.tmdl"),
        "\tsourceQueryCulture: en-US\n",
        "\tsourceQueryCulture: en-US\n\tdataAccessOptions\n\t\tlegacyRedirects\n\t\treturnErrorValuesAsNull\n",
    )
    _edit(
        _tmdl(project, "tables/_Measures.tmdl"),
        "\t\tformatString: 0.00%\n",
        "\t\tformatString: 0.00%\n\t\tlineageTag: 1b2c3d4e-0000-4000-8000-000000000001\n\n"
        '\t\tchangedProperty = FormatString\n\n\t\tannotation PBI_FormatHint = {"isCustom":true}\n',
    )
    _edit(
        _tmdl(project, "tables/dim_operator.tmdl"),
        "\t\tsourceColumn: operator_name\n",
        "\t\tlineageTag: 1b2c3d4e-0000-4000-8000-000000000002\n\t\tsourceColumn: operator_name\n\n"
        "\t\tannotation SummarizationSetBy = Automatic\n",
    )
    _edit(
        _tmdl(project, "relationships.tmdl"),
        "\ttoColumn: dim_date.date_key\n",
        "\ttoColumn: dim_date.date_key\n\trelyOnReferentialIntegrity\n",
    )
    saved = load_semantic_model(_semantic_model_dir(project))
    assert unresolved_references(saved) == [] and best_practice_violations(saved) == []
    assert saved.measure("Rejection Rate").format_string == "0.00%"


def test_a_dax_syntax_error_fails_the_model_read(project):
    _edit(
        _tmdl(project, "tables/_Measures.tmdl"),
        "SUM('fct_revenue_daily'[revenue])\n",
        "SUM('fct_revenue_daily'[revenue]\n",
    )
    assert _has(_read_problems(project), "measure [Total Revenue]", "DAX does not parse")


def test_dividing_with_a_slash_breaks_the_divide_rule(project):
    _edit(
        _tmdl(project, "tables/_Measures.tmdl"),
        "DIVIDE(SUM('fct_revenue_daily'[data_volume_bytes]), 1000000000)",
        "SUM('fct_revenue_daily'[data_volume_bytes]) / 1000000000",
    )
    problems = best_practice_violations(load_semantic_model(_semantic_model_dir(project)))
    assert _has(problems, "measure [Data Volume]", "divides with '/'")


MSISDN_BLOCK = "\tcolumn msisdn\n\t\tdataType: string\n\t\tsummarizeBy: none\n\t\tsourceColumn: msisdn\n"


@pytest.mark.parametrize(
    "malformed, expected",
    [
        (MSISDN_BLOCK.replace("\t", "    "), "indentation must be tabs"),
        (MSISDN_BLOCK.replace("\tcolumn msisdn", "\tcolumn\tmsisdn"), "'msisdn' is read by the strict reader only"),
    ],
    ids=["indented-with-spaces", "tab-after-the-keyword"],
)
def test_a_column_block_that_pbipinspect_drops_fails_the_read_instead_of_vanishing(project, malformed, expected):
    path = _tmdl(project, "tables/dim_subscriber.tmdl")
    _edit(path, MSISDN_BLOCK, malformed)
    their_columns = [c["name"] for c in get_tmdl_table(path.read_text())["columns"]]
    assert "msisdn" not in their_columns and "plan_name" in their_columns  # pbipinspect alone loses it silently
    assert _has(_read_problems(project), expected)


def test_a_float_money_column_breaks_the_decimal_rule_and_the_mart_type_check(project):
    _edit(
        _tmdl(project, "tables/fct_revenue_daily.tmdl"),
        "\tcolumn revenue\n\t\tdataType: decimal\n",
        "\tcolumn revenue\n\t\tdataType: double\n",
    )
    broken = load_semantic_model(_semantic_model_dir(project))
    assert _has(best_practice_violations(broken), "fct_revenue_daily[revenue] is a floating point double")
    assert _has(mart_column_problems(broken, manifest_fragment()), "revenue] is double but", "decimal(18,4)")


def test_a_relationship_to_a_missing_column_breaks_the_reference_check(project):
    _edit(_tmdl(project, "relationships.tmdl"), "toColumn: dim_operator.operator_key", "toColumn: dim_operator.op_key")
    problems = unresolved_references(load_semantic_model(_semantic_model_dir(project)))
    assert _has(problems, "relationship fct_revenue_daily_operator_key uses dim_operator.op_key")


@pytest.mark.parametrize(
    "file, old, new, expected",
    [
        (
            "tables/_Measures.tmdl",
            "\t/// Rated SMS (fct_revenue_daily).\n",
            "",
            "measure [SMS Count] has no description",
        ),
        ("tables/_Measures.tmdl", "\t\tformatString: 0.00%\n", "", "measure [Rejection Rate] has no formatString"),
        (
            "tables/_Measures.tmdl",
            "        [Total Revenue],\n",
            "        '_Measures'[Total Revenue],\n",
            "qualifies measure [Total Revenue]",
        ),
        (
            "roles/IAM.tmdl",
            "'dim_operator'[operator_id] = \"IAM\"",
            '[operator_id] = "IAM"',
            "uses [operator_id] unqualified",
        ),
        (
            "tables/fct_revenue_daily.tmdl",
            "\tcolumn operator_key\n\t\tdataType: int64\n\t\tisHidden\n",
            "\tcolumn operator_key\n\t\tdataType: int64\n",
            "foreign key fct_revenue_daily[operator_key] is visible",
        ),
        (
            "relationships.tmdl",
            "\ttoColumn: dim_operator.operator_key\n",
            "\ttoColumn: dim_operator.operator_key\n\tcrossFilteringBehavior: bothDirections\n",
            "filters both ways",
        ),
        ("model.tmdl", "__PBI_TimeIntelligenceEnabled = 0", "__PBI_TimeIntelligenceEnabled = 1", "auto date/time"),
        ("tables/dim_date.tmdl", "\tdataCategory: Time\n", "", "one table marked as date table"),
    ],
    ids=[
        "measure-without-description",
        "measure-without-format-string",
        "qualified-measure-reference",
        "unqualified-column-reference",
        "visible-foreign-key",
        "bidirectional-relationship",
        "auto-date-time-on",
        "no-date-table",
    ],
)
def test_each_best_practice_rule_fails_on_the_copy_that_breaks_it(project, file, old, new, expected):
    _edit(_tmdl(project, file), old, new)
    assert _has(best_practice_violations(load_semantic_model(_semantic_model_dir(project))), expected)


def test_a_second_filter_path_from_operators_to_usage_breaks_the_ambiguity_rule(model):
    shortcut = Relationship(
        "usage_operator", "fct_subscriber_usage_monthly", "subscriber_key", "dim_operator", "operator_key"
    )
    ambiguous = dataclasses.replace(model, relationships=(*model.relationships, shortcut))
    assert _has(
        best_practice_violations(ambiguous), "2 filter paths lead from dim_operator to fct_subscriber_usage_monthly"
    )


@pytest.mark.parametrize(
    "file, old, new, expected",
    [
        (
            "tables/dim_date.tmdl",
            "Sql.Database(Server, Database)",
            'Sql.Database("prod-sql", "cdr")',
            "Sql.Database(Server, Database)",
        ),
        ("tables/dim_date.tmdl", 'Item="dim_date"]}[Data]', "]}[Data]", "expected one navigation"),
        (
            "tables/dim_date.tmdl",
            "\t\tdataType: dateTime\n\t\tisKey\n",
            "\t\tdatatype: dateTime\n\t\tisKey\n",
            "no property",
        ),
        ("expressions.tmdl", "IsParameterQuery=true", "IsParameterQuery=false", "both M parameters defined"),
    ],
    ids=["literal-server", "no-navigation", "misspelled-property", "server-not-a-parameter"],
)
def test_a_broken_partition_or_property_fails_the_model_read(project, file, old, new, expected):
    _edit(_tmdl(project, file), old, new)
    assert _has(_read_problems(project), expected)


VISUAL = "CdrPlatform.Report/definition/pages/overview/visuals/card_total_revenue/visual.json"


@pytest.mark.parametrize(
    "file, old, new, expected",
    [
        (VISUAL, '"visualType": "card",', '"visualType": "card"', "not valid JSON"),
        (
            "CdrPlatform.Report/definition/pages/operators/page.json",
            '"displayOption": "FitToPage",',
            "",
            "'displayOption' is a required property",
        ),
        (VISUAL, '"Property": "Total Revenue"', '"Property": "Total Revenu"', "binds to measure [Total Revenu]"),
        (
            "CdrPlatform.Report/definition/report.json",
            "definition/report/3.3.0",
            "definition/page/2.1.0",
            "report.json: $schema",
        ),
        (
            "CdrPlatform.Report/definition/pages/pages.json",
            '"data_quality"',
            '"data-quality"',
            "is not the page folders",
        ),
        (
            "CdrPlatform.Report/definition.pbir",
            "../CdrPlatform.SemanticModel",
            "../Other.SemanticModel",
            "is not a semantic model folder",
        ),
        (VISUAL, '"width": 232,', '"width": 2320,', "reaches outside"),
        (
            "CdrPlatform.SemanticModel/definition.pbism",
            '"version": "4.0"',
            '"version": "1.0"',
            "definition.pbism: version: '1.0' does not match",
        ),
    ],
    ids=[
        "malformed-json",
        "missing-required-property",
        "binding-to-a-missing-measure",
        "wrong-schema-for-the-file-type",
        "page-order-naming-no-folder",
        "report-pointing-nowhere",
        "visual-outside-its-page",
        "pbism-before-tmdl",
    ],
)
def test_invalid_pbir_json_breaks_the_report_check(project, model, file, old, new, expected):
    _edit(project / file, old, new)
    assert _has(project_problems(project, model), expected)


# -- Rejection Rate counts messages, Revenue vs Previous Month compares like periods (the twins run on sqlite) ----

# The definitions the review found wrong, kept to show the tests catch them.
OLD_REJECTION_RATE = """
with rejected as (select sum(records) as records from marts.fct_rejections_daily),
received as (select sum(messages_received) as messages_received from marts.fct_revenue_assurance_daily)
select cast(cast(rejected.records as decimal(38, 10)) / nullif(received.messages_received, 0) as decimal(18, 6))
    as measure_value
from rejected cross join received
"""
OLD_REVENUE_VS_PREVIOUS_MONTH = """
with monthly as (
    select d.year * 12 + d.month as month_index, sum(f.revenue) as revenue
    from marts.fct_revenue_daily as f inner join marts.dim_date as d on d.date_key = f.date_key
    group by d.year * 12 + d.month
),
last_month as (select max(month_index) as month_index from monthly),
compared as (
    select
        sum(case when m.month_index = l.month_index then m.revenue end) as last_revenue,
        sum(case when m.month_index = l.month_index - 1 then m.revenue end) as previous_revenue
    from monthly as m cross join last_month as l
)
select case when last_revenue is null and previous_revenue is null then null
    else coalesce(last_revenue, 0) - coalesce(previous_revenue, 0) end as measure_value
from compared
"""


def _dim_date(first: date, last: date) -> list[dict]:
    days = [first + timedelta(n) for n in range((last - first).days + 1)]
    return [
        {
            "date_key": d.year * 10000 + d.month * 100 + d.day,
            "calendar_date": d.isoformat(),
            "year": d.year,
            "quarter": (d.month + 2) // 3,
            "month": d.month,
            "month_start_date": d.replace(day=1).isoformat(),
            "day_of_month": d.day,
            "iso_day_of_week": d.isoweekday(),
            "is_weekend": int(d.isoweekday() >= 6),
        }
        for d in days
    ]


def _evaluate(sql: str, rows: dict[str, list[dict]]):
    """A twin's value over tiny marts in an in-memory sqlite (schema `marts` attached); sqlglot writes its sqlite."""
    conn = sqlite3.connect(":memory:")
    conn.execute("attach database ':memory:' as marts")
    for table, columns in CONTRACT.items():
        conn.execute(f"create table marts.{table} ({', '.join(f'{c} {t}' for c, t in columns.items())})")
        for row in rows.get(table, []):
            conn.execute(
                f"insert into marts.{table} ({', '.join(row)}) values ({', '.join('?' * len(row))})", list(row.values())
            )
    (value,) = conn.execute(sqlglot.transpile(sql, read="postgres", write="sqlite")[0]).fetchone()
    conn.close()
    return value


def _columns_read(sql: str) -> set[tuple[str, str]]:
    schema = {"marts": {table: dict(columns) for table, columns in CONTRACT.items()}}
    statement = qualify(sqlglot.parse_one(sql, read="postgres"), schema=schema, validate_qualify_columns=True)
    aliases = {t.alias_or_name: t.name for t in statement.find_all(sqlglot.exp.Table)}
    return {(aliases[c.table], c.name) for c in statement.find_all(sqlglot.exp.Column) if c.table in aliases}


def test_rejection_rate_divides_rejected_messages_by_messages_received_in_the_measure_and_its_twin(model):
    read = {("fct_revenue_assurance_daily", "rejected"), ("fct_revenue_assurance_daily", "messages_received")}
    assert set(model.measure("Rejection Rate").expression.columns) == read
    assert _columns_read(MEASURE_TWINS["Rejection Rate"]) == read
    assert ("fct_rejections_daily", "records") in _columns_read(OLD_REJECTION_RATE)  # the reason rows


def test_a_message_rejected_for_two_reasons_counts_once_in_the_rejection_rate():
    # 4 messages in, 1 rejected for two reasons: fct_rejections_daily has a row per reason
    marts = {
        "fct_revenue_assurance_daily": [
            {"date_key": 20250301, "messages_received": 4, "clean": 3, "rejected": 1, "duplicates": 0}
        ],
        "fct_rejections_daily": [
            {"date_key": 20250301, "reason": "INVALID_MSISDN", "records": 1},
            {"date_key": 20250301, "reason": "NEGATIVE_DURATION", "records": 1},
        ],
    }
    assert _evaluate(MEASURE_TWINS["Rejection Rate"], marts) == pytest.approx(0.25)
    assert _evaluate(OLD_REJECTION_RATE, marts) == pytest.approx(0.5)  # the old definition: twice the rate


def test_the_reasons_chart_shows_rejected_messages_per_reason_not_the_rejection_rate():
    # Rejection Rate no longer reads fct_rejections_daily: split by its reason, every bar would be the same rate
    pages = POWERBI_DIR / f"{PROJECT_NAME}.Report" / "definition" / "pages"
    path = pages / "data_quality" / "visuals" / "column_rejections_by_reason" / "visual.json"
    visual = json.loads(path.read_text(encoding="utf-8"))
    (y,) = visual["visual"]["query"]["queryState"]["Y"]["projections"]
    assert y["queryRef"] == "Sum(fct_rejections_daily.records)"


def _revenue(days: list[date], amount: int) -> list[dict]:
    return [
        {"date_key": d.year * 10000 + d.month * 100 + d.day, "operator_key": 1, "revenue": amount, "records": 1}
        for d in days
    ]


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(n) for n in range((last - first).days + 1)]


CALENDAR = _dim_date(date(2025, 1, 1), date(2025, 4, 30))


@pytest.mark.parametrize(
    "revenue, expected, old",
    [
        # one month of data, no previous month: blank (the old form returned the whole month's 150)
        (_revenue(_days(date(2025, 1, 1), date(2025, 1, 15)), 10), None, 150),
        # March 1-10 in progress (20 a day) against February 1-10 (10 a day), not the whole of February
        (
            _revenue(_days(date(2025, 2, 1), date(2025, 2, 28)), 10)
            + _revenue(_days(date(2025, 3, 1), date(2025, 3, 10)), 20),
            100,
            -80,
        ),
        # a whole month (its last day has data) against the whole previous month, 31 days against 28
        (_revenue(_days(date(2025, 1, 1), date(2025, 2, 28)), 10), -30, -30),
        # April 1-30 against March 1-31: April 30 is a month-end
        (_revenue(_days(date(2025, 3, 1), date(2025, 4, 30)), 10), -10, -10),
        # the previous month has revenue, but none on the days compared: blank, not the month-to-date itself
        (
            _revenue(_days(date(2025, 2, 20), date(2025, 2, 28)), 10)
            + _revenue(_days(date(2025, 3, 1), date(2025, 3, 10)), 20),
            None,
            110,
        ),
    ],
    ids=["no-previous-month", "month-in-progress", "whole-months", "month-end-30", "previous-days-without-revenue"],
)
def test_revenue_vs_previous_month_compares_the_same_days_and_is_blank_without_a_previous_month(revenue, expected, old):
    marts = {"dim_date": CALENDAR, "fct_revenue_daily": revenue}
    assert _evaluate(MEASURE_TWINS["Revenue vs Previous Month"], marts) == expected
    assert _evaluate(OLD_REVENUE_VS_PREVIOUS_MONTH, marts) == old


def test_revenue_vs_previous_month_filters_the_marked_date_table_on_the_same_days_and_blanks_without_a_previous(model):
    dax = model.measure("Revenue vs Previous Month").expression
    assert ("dim_date", "day_of_month") in dax.columns and ("dim_date", "month_start_date") in dax.columns
    assert model.table("dim_date").data_category == "Time"
    # the same day range in both months, and BLANK (not the month's revenue) when the previous one has none
    assert len(re.findall(r"'dim_date'\[day_of_month\]\s*<=\s*LastDay", dax.text)) == 2
    assert re.search(r"IF\(\s*PreviousMonthRevenue\s*=\s*0\s*,\s*BLANK\(\)", dax.text)


# -- row-level security: what a role does not filter is named platform-wide, and the report says so -------------


def test_every_fact_a_role_claims_to_filter_is_reachable_from_its_filter_or_named_platform_wide(model):
    assert row_level_security_problems(model) == []
    assert platform_wide_tables(model) == {"fct_revenue_assurance_daily", "fct_rejections_daily"}
    for role in model.roles:
        assert "platform-wide, not filtered by operator" in role.description.lower()


@pytest.mark.parametrize(
    "file, old, new, expected",
    [
        (
            "roles/IAM.tmdl",
            "/// Platform-wide, not filtered by operator:",
            "/// Also:",
            "role IAM filters dim_operator, which no relationship path leads from to fct_rejections_daily",
        ),
        (
            "relationships.tmdl",
            "relationship fct_revenue_daily_operator_key\n\tfromColumn: fct_revenue_daily.operator_key\n"
            "\ttoColumn: dim_operator.operator_key\n",
            "",
            "role ORANGE filters dim_operator, which no relationship path leads from to fct_revenue_daily",
        ),
        (
            "roles/INWI.tmdl",
            "fct_revenue_assurance_daily and fct_rejections_daily,",
            "fct_revenue_assurance_daily, fct_rejections_daily and fct_revenue_daily,",
            "role INWI's description calls fct_revenue_daily platform-wide, but the role filters it",
        ),
    ],
    ids=["platform-wide-facts-not-named", "fact-cut-off-from-dim-operator", "filtered-fact-called-platform-wide"],
)
def test_the_row_level_security_check_fails_on_a_role_that_does_not_filter_what_it_says(
    project, file, old, new, expected
):
    _edit(_tmdl(project, file), old, new)
    broken = load_semantic_model(_semantic_model_dir(project))
    assert _has(row_level_security_problems(broken), expected)
    assert _has(best_practice_violations(broken), expected)  # the semantic model asset runs it


def test_a_visual_of_a_platform_wide_fact_whose_title_does_not_say_so_breaks_the_report_check(project, model):
    assert project_problems(POWERBI_DIR, model) == []
    _edit(
        project / "CdrPlatform.Report/definition/pages/data_quality/visuals/card_rejection_rate/visual.json",
        "Rejection Rate, platform-wide (not filtered by operator)",
        "Rejection Rate",
    )
    assert _has(
        project_problems(project, model), "card_rejection_rate/visual.json: shows fct_revenue_assurance_daily", "title"
    )


# -- fixed decimal columns are Currency.Type in their M queries ------------------------------------------------


def test_every_fixed_decimal_column_is_typed_currency_in_its_partitions_m_query(model):
    assert fixed_decimal_type_problems(model) == []
    for table in model.tables:
        for partition in (p for p in table.partitions if p.kind == "m"):
            decimals = {c.source_column: "Currency.Type" for c in table.columns if c.data_type == "decimal"}
            assert m_column_types(partition.source) == decimals, table.name
            decimal_sql = {c for c, sql in CONTRACT[table.name].items() if sql.startswith("decimal")}
            assert set(decimals) == decimal_sql, table.name  # decimal in the mart contract = decimal in the TMDL


@pytest.mark.parametrize(
    "old, new, expected",
    [
        (
            '{{"revenue", Currency.Type}}',
            '{{"revenue", type number}}',
            "fct_revenue_daily[revenue] is decimal but partition fct_revenue_daily types 'revenue' as number",
        ),
        ('{{"revenue", Currency.Type}}', '{{"records", Int64.Type}}', "types 'revenue' as nothing"),
        ("in\n\t\t\t\t    fixed_decimals\n", "in\n\t\t\t\t    marts_fct_revenue_daily\n", "types 'revenue' as nothing"),
        (
            '{{"revenue", Currency.Type}}',
            '{{"revenue", Currency.Type}, {"records", Currency.Type}}',
            "types 'records' Currency.Type, but column fct_revenue_daily[records] is int64",
        ),
    ],
    ids=["typed-as-float", "left-untyped", "typing-step-not-returned", "integer-typed-as-currency"],
)
def test_a_money_column_the_m_query_does_not_type_currency_breaks_the_fixed_decimal_check(project, old, new, expected):
    _edit(_tmdl(project, "tables/fct_revenue_daily.tmdl"), old, new)
    broken = load_semantic_model(_semantic_model_dir(project))
    assert _has(fixed_decimal_type_problems(broken), expected)
    assert _has(best_practice_violations(broken), expected)
