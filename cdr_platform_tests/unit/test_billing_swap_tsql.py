"""The billing models' month swap as SQL Server runs it (macros/billing_month_swap.sql).

No SQL Server runs on the build machines: the swap each billing model's incremental build runs
is rendered by dbt for the sqlserver target, with the model's own config and columns, then
parsed as T-SQL. It must be one explicit transaction, XACT_ABORT on, holding both the delete of
the window's months and the insert of the new rows: dbt-sqlserver commits each statement on its
own, so anything else could leave a month without bills.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from cdr_platform.defs.dbt.project import DBT_PROJECT_DIR, dbt_command
from cdr_platform.lib.warehouse.sql_lint import postgres_only_constructs

BILLING_MODELS = ("allowance_usage", "billing_cdrs", "invoice_lines")
WINDOW = {"billing_month_start": "2026-11-01", "billing_month_end": "2026-12-01"}
SEPARATOR = "-- next model --"

# Each billing model's swap exactly as its incremental build asks for it: the configured
# strategy's macro, the model's unique_key, the temp relation the materialization builds, the
# model's columns. The model names are printed first, so the test knows which swap is which.
RENDER = (
    # while dbt parses it: the refs it will take (adapter methods answer None then)
    "{%- if not execute -%}" + "".join(f"{{{{ ref('{m}') }}}}" for m in BILLING_MODELS) + "{%- else -%}"
    "{%- for name in " + json.dumps(list(BILLING_MODELS)) + " -%}\n"
    "{%- set node = graph.nodes['model.cdr_platform.' ~ name] -%}\n"
    "{%- set target_relation = ref(name) -%}\n"
    "{%- set strategy = adapter.get_incremental_strategy_macro(context, node.config.incremental_strategy) -%}\n"
    "-- model: {{ name }} {{ target_relation }} {{ make_temp_relation(target_relation) }}"
    " {{ node.config.materialized }} {{ node.config.incremental_strategy }}\n"
    "{{ strategy({'target_relation': target_relation, 'temp_relation': make_temp_relation(target_relation),"
    " 'unique_key': node.config.unique_key, 'dest_columns': node.columns.values() | list,"
    " 'incremental_predicates': none}) }}\n"
    f"{SEPARATOR}\n"
    "{%- endfor %}{%- endif -%}"
)


def render_for_sql_server(tmp: Path, window: dict[str, str] | None) -> dict[str, tuple[str, str, str]]:
    """{model: (its table, its work table, the T-SQL of its swap)}, as dbt renders them for the
    sqlserver target without a server."""
    args = ["--quiet", "--output", "json", "--target", "sqlserver", "--no-populate-cache", "--no-introspect"]
    args += ["--log-path", str(tmp / "logs"), "--inline", RENDER]
    if window:
        args += ["--vars", json.dumps(window)]
    result = subprocess.run(
        dbt_command("compile", *args, target_path=tmp / "target"),
        capture_output=True,
        text=True,
        cwd=DBT_PROJECT_DIR,
        # no CDR_* of the caller's environment: the schemas are the defaults
        env={"PATH": str(Path(sys.executable).parent), "HOME": "/tmp"},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    compiled = json.loads(result.stdout)["compiled"]
    swaps = {}
    for part in compiled.split(SEPARATOR):
        if not part.strip():
            continue
        header, _, sql = part.strip().partition("\n")
        _, _, name, target, temp, materialized, strategy = header.split(" ")
        assert (materialized, strategy) == ("incremental", "billing_month_swap"), (name, materialized, strategy)
        swaps[name] = (target, temp, sql)
    assert set(swaps) == set(BILLING_MODELS)
    return swaps


def _table(sql_name: str) -> exp.Table:
    return sqlglot.parse_one(f"select 1 from {sql_name}", read="tsql").find(exp.Table)


def _same_table(a: exp.Table, b: exp.Table) -> bool:
    return [p.name.lower() for p in a.parts] == [p.name.lower() for p in b.parts]


def swap_problems(sql: str, target: str, temp: str) -> list[str]:
    """What keeps `sql` from being an atomic month swap on SQL Server (empty: none): every
    statement parses as T-SQL and none is PostgreSQL-only; SET XACT_ABORT ON, then one BEGIN
    TRANSACTION, the delete from the target and the insert into it of the work table's rows, one
    COMMIT; nothing else writes the target, nothing after the COMMIT but SET."""
    problems = [f"PostgreSQL only: {name}" for name in postgres_only_constructs(sql)]
    try:
        statements = [s for s in sqlglot.parse(sql, read="tsql", error_level=sqlglot.ErrorLevel.RAISE) if s]
    except sqlglot.errors.ParseError as exc:
        return [*problems, f"does not parse as T-SQL: {str(exc).splitlines()[0]}"]
    for statement in statements:
        if isinstance(statement, exp.Command):  # sqlglot's fallback for what it cannot parse
            problems.append(f"not parsed as T-SQL: {statement.sql(dialect='tsql')[:80]}")
        problems += [f"PostgreSQL only: {n}" for n in postgres_only_constructs(statement.sql(dialect="tsql"))]
    target_table, temp_table = _table(target), _table(temp)
    begins = [i for i, s in enumerate(statements) if isinstance(s, exp.Transaction)]
    commits = [i for i, s in enumerate(statements) if isinstance(s, exp.Commit)]
    if len(begins) != 1 or len(commits) != 1 or begins[0] > commits[0]:
        return [*problems, f"not one BEGIN TRANSACTION ... COMMIT (begin at {begins}, commit at {commits})"]
    begin, commit = begins[0], commits[0]
    xact_abort = [
        i
        for i, s in enumerate(statements)
        if isinstance(s, exp.Set) and " ".join(s.sql(dialect="tsql").upper().split()) == "SET XACT_ABORT ON"
    ]
    if not xact_abort or xact_abort[0] > begin:
        problems.append("no SET XACT_ABORT ON before the BEGIN TRANSACTION")
    deletes = [i for i, s in enumerate(statements) if isinstance(s, exp.Delete) and _same_table(s.this, target_table)]
    inserts = [
        i
        for i, s in enumerate(statements)
        if isinstance(s, exp.Insert) and _same_table(s.this.find(exp.Table), target_table)
    ]
    if len(deletes) != 1 or not begin < deletes[0] < commit:
        problems.append(f"not one delete from the target inside the transaction (at {deletes})")
    if len(inserts) != 1 or not begin < inserts[0] < commit:
        problems.append(f"not one insert into the target inside the transaction (at {inserts})")
    elif deletes and inserts[0] < deletes[0]:
        problems.append("the insert comes before the delete")
    if inserts:
        source = statements[inserts[0]].expression
        if not any(_same_table(t, temp_table) for t in source.find_all(exp.Table)):
            problems.append("the insert does not read the work table")
    for i, statement in enumerate(statements):
        if i in (begin, commit, *deletes, *inserts):
            continue
        if not isinstance(statement, exp.Set):
            problems.append(f"a statement other than SET outside the swap: {statement.sql(dialect='tsql')[:80]}")
    return problems


@pytest.fixture(scope="module")
def swaps(tmp_path_factory) -> dict[str, tuple[str, str, str]]:
    return render_for_sql_server(tmp_path_factory.mktemp("swap_tsql"), WINDOW)


@pytest.mark.parametrize("model", BILLING_MODELS)
def test_each_billing_model_swaps_its_months_in_one_tsql_transaction(swaps, model):
    target, temp, sql = swaps[model]
    assert swap_problems(sql, target, temp) == [], sql
    for statement in sqlglot.parse(sql, read="tsql"):
        assert postgres_only_constructs(statement.sql(dialect="tsql")) == []
    # the months replaced: the window's, and any month the new rows carry
    (delete,) = [s for s in sqlglot.parse(sql, read="tsql") if isinstance(s, exp.Delete)]
    where = delete.args["where"].this.sql(dialect="tsql")
    assert "billing_month >= CAST('2026-11-01' AS DATE) AND billing_month < CAST('2026-12-01' AS DATE)" in where
    assert f"billing_month IN (SELECT billing_month FROM {_table(temp).sql(dialect='tsql')})" in where


def test_the_check_refuses_a_swap_not_wrapped_in_one_transaction(swaps):
    """The check above would fail on a swap whose delete and insert commit on their own."""
    target, temp, sql = swaps["billing_cdrs"]
    lines = sql.splitlines()

    def without(*words: str) -> str:
        return "\n".join(line for line in lines if not any(w in line.lower() for w in words))

    assert swap_problems(without("begin transaction", "commit transaction"), target, temp)
    assert swap_problems(without("commit transaction"), target, temp)
    assert swap_problems(without("xact_abort"), target, temp)
    # the delete committed before the transaction begins (the old pre-hook's way)
    statements = sql.split(";")
    delete = next(s for s in statements if "delete from" in s)
    moved = ";".join([delete, *(s for s in statements if s is not delete)])
    assert any("delete" in p for p in swap_problems(moved, target, temp))


def test_without_a_window_the_swap_replaces_every_month(tmp_path):
    """No billing_month_start/_end (a run of every month): the delete takes every row."""
    for model, (target, temp, sql) in render_for_sql_server(tmp_path, None).items():
        assert swap_problems(sql, target, temp) == [], (model, sql)
        (delete,) = [s for s in sqlglot.parse(sql, read="tsql") if isinstance(s, exp.Delete)]
        assert delete.args["where"].this.sql(dialect="tsql").startswith("(1 = 1) OR "), (model, sql)
