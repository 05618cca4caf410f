"""Checks of the semantic model that need no Power BI: references, best practices, the marts it reads.

Each check returns the problems it finds as sentences (empty: the check passes), so a test
can assert on them and a person can read them. The best-practice rules are the ones of
Tabular Editor's Best Practice Analyzer that can be decided from the files alone.
"""

from __future__ import annotations

import re
from collections import defaultdict

from cdr_platform.lib.bi.dax import Dax
from cdr_platform.lib.bi.powerbi_model import SemanticModel, m_column_types

DBT_PROJECT = "cdr_platform"
AUTO_DATE_TABLE_PREFIXES = ("LocalDateTable_", "DateTableTemplate_")

# dbt `data_type` (PostgreSQL and SQL Server spellings) -> the Power BI data type that holds it exactly
_COMPATIBLE: dict[str, frozenset[str]] = {
    "int64": frozenset({"int", "integer", "bigint", "smallint", "tinyint", "int2", "int4", "int8"}),
    "string": frozenset(
        {"varchar", "nvarchar", "char", "nchar", "text", "character varying", "character", "string", "bpchar"}
    ),
    "dateTime": frozenset(
        {"date", "datetime", "datetime2", "smalldatetime", "timestamp", "timestamp without time zone"}
    ),
    "decimal": frozenset({"decimal", "numeric", "money", "smallmoney"}),
    "double": frozenset({"float", "real", "double precision", "double", "float4", "float8"}),
    "boolean": frozenset({"boolean", "bool", "bit"}),
}
FIXED_DECIMAL_SCALE = 4  # Power BI's fixed decimal (currency) type keeps 4 digits after the point
FACT_PREFIX = "fct_"  # the marts' fact tables: what a row-level security role's description says it filters
PLATFORM_WIDE = "platform-wide"  # a role's description names the facts it does not filter in a sentence with this
FIXED_DECIMAL_M_TYPE = "Currency.Type"  # M's fixed decimal number: a TMDL `decimal` column


def _expressions(model: SemanticModel) -> list[tuple[str, Dax]]:
    """Every DAX expression of the model, with what it belongs to."""
    found: list[tuple[str, Dax]] = [(f"measure [{m.name}]", m.expression) for m in model.measures]
    found += [(f"column {c.table}[{c.name}]", c.expression) for c in model.columns if c.expression]
    found += [
        (f"table {t.name} partition {p.name}", p.calculated) for t in model.tables for p in t.partitions if p.calculated
    ]
    found += [(f"role {r.name} filter on {table}", dax) for r in model.roles for table, dax in r.filters.items()]
    return found


def _has_column(model: SemanticModel, table: str, column: str) -> bool:
    found = model.table(table)
    return found is not None and found.column(column) is not None


def unresolved_references(model: SemanticModel) -> list[str]:
    """Tables, columns and measures that a measure, relationship, role or column names but the model lacks."""
    problems = []
    measure_names = {m.name for m in model.measures}
    column_names = {c.name for c in model.columns}
    for what, dax in _expressions(model):
        for table, column in dax.columns:
            if not _has_column(model, table, column) and column not in measure_names:
                problems.append(f"{what} uses '{table}'[{column}], which the model lacks")
        for name in dax.bracketed:
            if name not in measure_names and name not in column_names:
                problems.append(f"{what} uses [{name}], which is neither a measure nor a column")
        for table in dax.tables:
            if model.table(table) is None:
                problems.append(f"{what} uses table '{table}', which the model lacks")
    for r in model.relationships:
        for table, column in ((r.from_table, r.from_column), (r.to_table, r.to_column)):
            if not _has_column(model, table, column):
                problems.append(f"relationship {r.name} uses {table}.{column}, which the model lacks")
    for role in model.roles:
        for table in role.filters:
            if model.table(table) is None:
                problems.append(f"role {role.name} filters table {table}, which the model lacks")
    for c in model.columns:
        if c.sort_by_column and not _has_column(model, c.table, c.sort_by_column):
            problems.append(f"column {c.table}[{c.name}] sorts by {c.sort_by_column}, which {c.table} lacks")
    defined = {("table", t.name) for t in model.tables} | {("role", r.name) for r in model.roles}
    referenced = {ref for ref in model.references if ref[0] in ("table", "role")}
    for kind, name in sorted(referenced - defined):
        problems.append(f"model.tmdl has ref {kind} {name}, which no file defines")
    for kind, name in sorted(defined - referenced):
        problems.append(f"{kind} {name} has no ref {kind} line in model.tmdl")
    return problems


def _filter_paths(model: SemanticModel) -> dict[tuple[str, str], int]:
    """How many distinct filter paths lead from each table to each other table, over active relationships."""
    edges: dict[str, list[str]] = defaultdict(list)  # filters flow from the one side to the many side
    for r in model.relationships:
        if r.is_active:
            edges[r.to_table].append(r.from_table)
            if r.cross_filtering == "bothDirections":
                edges[r.from_table].append(r.to_table)
    counts: dict[tuple[str, str], int] = defaultdict(int)

    def walk(start: str, node: str, seen: tuple[str, ...]) -> None:
        for nxt in edges[node]:
            if nxt not in seen:
                counts[(start, nxt)] += 1
                walk(start, nxt, (*seen, nxt))

    for table in list(edges):
        walk(table, table, (table,))
    return counts


def best_practice_violations(model: SemanticModel) -> list[str]:
    """The offline Best Practice Analyzer rules this project holds its model to."""
    problems = []
    measure_names = {m.name for m in model.measures}
    column_names = {c.name for c in model.columns}
    for m in model.measures:
        if not (m.format_string or "").strip():
            problems.append(f"measure [{m.name}] has no formatString")
        if not (m.description or "").strip():
            problems.append(f"measure [{m.name}] has no description (/// line above it)")
    for what, dax in _expressions(model):
        if dax.divisions:
            problems.append(f"{what} divides with '/': use DIVIDE(), which returns blank on a zero denominator")
        for name in dax.bracketed:
            if name in column_names and name not in measure_names:
                problems.append(f"{what} uses [{name}] unqualified: write 'table'[{name}] for a column")
        for table, column in dax.columns:
            if column in measure_names and not _has_column(model, table, column):
                problems.append(f"{what} qualifies measure [{column}] with '{table}': write [{column}]")
    for c in model.columns:
        if c.data_type == "double":
            problems.append(f"column {c.table}[{c.name}] is a floating point double: money and counts are exact")
    keys = {(r.from_table, r.from_column) for r in model.relationships}
    keys |= {(r.to_table, r.to_column) for r in model.relationships}
    for r in model.relationships:
        where = f"relationship {r.name} ({r.from_table}.{r.from_column} -> {r.to_table}.{r.to_column})"
        if r.cross_filtering != "oneDirection":
            problems.append(f"{where} filters both ways: keep relationships single-direction")
        if (r.from_cardinality, r.to_cardinality) != ("many", "one"):
            problems.append(f"{where} is {r.from_cardinality}-to-{r.to_cardinality}: keep them many-to-one")
        if not r.is_active:
            problems.append(f"{where} is inactive")
        for table, column in ((r.from_table, r.from_column), (r.to_table, r.to_column)):
            found = model.table(table)
            col = found.column(column) if found else None
            if col is not None and col.data_type != "int64":
                problems.append(f"{where} joins on {table}.{column} of type {col.data_type}: join on integer keys")
        from_table = model.table(r.from_table)
        fk = from_table.column(r.from_column) if from_table else None
        if fk is not None and not fk.is_hidden:
            problems.append(f"foreign key {r.from_table}[{r.from_column}] is visible: hide it")
    for table, column in sorted(keys):
        found = model.table(table)
        col = found.column(column) if found else None
        if col is not None and col.summarize_by not in (None, "none"):
            problems.append(f"key {table}[{column}] summarizes by {col.summarize_by}: set summarizeBy: none")
    for (start, end), count in sorted(_filter_paths(model).items()):
        if count > 1:
            problems.append(f"{count} filter paths lead from {start} to {end}: the model is ambiguous")
    date_tables = [t for t in model.tables if t.data_category == "Time"]
    if len(date_tables) != 1:
        problems.append(f"expected one table marked as date table (dataCategory: Time), found {len(date_tables)}")
    for t in date_tables:
        if not any(c.is_key and c.data_type == "dateTime" for c in t.columns):
            problems.append(f"date table {t.name} has no dateTime column marked isKey")
    if model.annotations.get("__PBI_TimeIntelligenceEnabled") != "0":
        problems.append("auto date/time is on: set annotation __PBI_TimeIntelligenceEnabled = 0 in model.tmdl")
    for t in model.tables:
        if t.name.startswith(AUTO_DATE_TABLE_PREFIXES):
            problems.append(f"table {t.name} is an auto date/time table")
    for t in model.tables:
        imports = [p for p in t.partitions if p.kind == "m"]
        if imports and (t.source is None or any(p.mode != "import" for p in imports)):
            problems.append(f"table {t.name} must import one marts table (mode: import, Sql.Database navigation)")
        if not imports and any(not c.is_hidden for c in t.columns):
            problems.append(f"calculated table {t.name} shows columns: only a hidden measure table may be calculated")
    for p in model.parameters:
        if not p.is_parameter_query:
            problems.append(f"expression {p.name} is not an M parameter (meta [IsParameterQuery=true])")
    # in here so that whatever runs the best-practice rules (the semantic model asset) runs these too
    return problems + row_level_security_problems(model) + fixed_decimal_type_problems(model)


def _security_reach(model: SemanticModel, tables: set[str]) -> set[str]:
    """The tables a row-level security filter on `tables` reaches: one side to many side over active
    relationships, and back only where securityFilteringBehavior is bothDirections."""
    edges: dict[str, set[str]] = defaultdict(set)
    for r in model.relationships:
        if r.is_active:
            edges[r.to_table].add(r.from_table)
            if r.security_filtering == "bothDirections":
                edges[r.from_table].add(r.to_table)
    reached, todo = set(tables), list(tables)
    while todo:
        for nxt in edges[todo.pop()] - reached:
            reached.add(nxt)
            todo.append(nxt)
    return reached


def _named_platform_wide(model: SemanticModel, description: str) -> set[str]:
    """The tables a role's description names in its sentences that say `platform-wide`."""
    names = {t.name for t in model.tables}
    found: set[str] = set()
    for sentence in re.split(r"(?<=[.;])\s+|\n", description):
        if PLATFORM_WIDE in sentence.lower():
            found |= names & set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", sentence))
    return found


def row_level_security_problems(model: SemanticModel) -> list[str]:
    """Facts a role's description says it filters but its filter never reaches.

    A role's description (`///` above it) tells the report's readers what the role sees: it is
    taken to cover every fact table (and any other table it names), except those it names in a
    sentence saying they are platform-wide. Each covered table must be reachable from a table the
    role filters through relationships, or users of the role see every operator's rows of it; and
    a table it calls platform-wide must not be filtered after all.
    """
    problems = []
    facts = {t.name for t in model.tables if t.name.startswith(FACT_PREFIX)}
    for role in model.roles:
        description = role.description or ""
        if not description.strip():
            problems.append(f"role {role.name} has no description (/// line above it) saying what it filters")
        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", description))
        platform_wide = _named_platform_wide(model, description)
        covered = (facts | (words & {t.name for t in model.tables})) - set(role.filters) - platform_wide
        reached = _security_reach(model, set(role.filters))
        for table in sorted(covered - reached):
            problems.append(
                f"role {role.name} filters {', '.join(sorted(role.filters))}, which no relationship path leads "
                f"from to {table}: its users see every operator's rows of it; relate it or name it "
                f"{PLATFORM_WIDE} in the role's description"
            )
        for table in sorted(platform_wide & reached):
            problems.append(f"role {role.name}'s description calls {table} {PLATFORM_WIDE}, but the role filters it")
    return problems


def platform_wide_tables(model: SemanticModel) -> set[str]:
    """The fact tables that some row-level security role does not filter: their figures are the whole platform's."""
    facts = {t.name for t in model.tables if t.name.startswith(FACT_PREFIX)}
    return {f for role in model.roles for f in facts - _security_reach(model, set(role.filters))}


def fixed_decimal_type_problems(model: SemanticModel) -> list[str]:
    """Fixed decimal (`decimal`) columns whose partition's M does not type them Currency.Type, and the reverse.

    Power BI Desktop rebuilds a table's columns from its M query's result types when it refreshes
    the schema: a column the query leaves untyped comes back as a floating-point number, and a
    decimal(18,4) money column turns inexact. Table.TransformColumnTypes(..., Currency.Type) in
    the query keeps it fixed decimal.
    """
    problems = []
    for table in model.tables:
        for partition in (p for p in table.partitions if p.kind == "m"):
            types = m_column_types(partition.source)
            if types is None:
                continue  # reading the model already reports an M query that does not parse
            by_source = {(c.source_column or c.name): c for c in table.columns if c.expression is None}
            for source, column in sorted(by_source.items()):
                typed = types.get(source)
                if column.data_type == "decimal" and typed != FIXED_DECIMAL_M_TYPE:
                    problems.append(
                        f"column {table.name}[{column.name}] is decimal but partition {partition.name} types "
                        f'{source!r} as {typed or "nothing"}: add {{"{source}", {FIXED_DECIMAL_M_TYPE}}} to its '
                        "Table.TransformColumnTypes"
                    )
                elif column.data_type != "decimal" and typed == FIXED_DECIMAL_M_TYPE:
                    problems.append(
                        f"partition {partition.name} types {source!r} {FIXED_DECIMAL_M_TYPE}, but column "
                        f"{table.name}[{column.name}] is {column.data_type}"
                    )
    return problems


def _base_type(data_type: str) -> tuple[str, int | None]:
    """`decimal(18, 4)` -> ('decimal', 4); `varchar(16)` -> ('varchar', None)."""
    text = data_type.strip().lower()
    match = re.fullmatch(r"([a-z ]+?)\s*(?:\(\s*(\d+|max)\s*(?:,\s*(\d+)\s*)?\))?", text)
    if not match:
        return text, None
    scale = int(match[3]) if match[3] is not None else None
    return match[1].strip(), scale


def mart_column_problems(model: SemanticModel, manifest: dict, project: str = DBT_PROJECT) -> list[str]:
    """Model columns whose mart (the dbt model the partition imports) lacks them or holds another type.

    `manifest` is dbt's target/manifest.json as a dict: the mart of table `t` is the node
    `model.<project>.<t>`, its columns and their `data_type` come from the model contract.
    """
    problems = []
    nodes = manifest.get("nodes", {})
    for table in model.tables:
        if table.source is None:
            continue  # the measure table reads no mart
        schema, item = table.source
        node = nodes.get(f"model.{project}.{item}")
        if node is None:
            problems.append(f"table {table.name} imports {schema}.{item}, which is not a dbt model of {project}")
            continue
        if node.get("schema") != schema:
            problems.append(
                f"table {table.name} imports schema {schema}, but dbt builds {item} in {node.get('schema')}"
            )
        columns = {name.lower(): spec for name, spec in (node.get("columns") or {}).items()}
        for column in table.columns:
            if column.expression is not None:
                continue
            source = (column.source_column or column.name).lower()
            spec = columns.get(source)
            if spec is None:
                problems.append(f"column {table.name}[{column.name}] reads {item}.{source}, which the mart lacks")
                continue
            data_type = spec.get("data_type")
            if not data_type:
                problems.append(f"{item}.{source} has no data_type in dbt (is the model contract enforced?)")
                continue
            base, scale = _base_type(data_type)
            if base not in _COMPATIBLE.get(column.data_type, frozenset()):
                problems.append(
                    f"column {table.name}[{column.name}] is {column.data_type} but {item}.{source} is {data_type}"
                )
            elif column.data_type == "decimal" and scale is not None and scale > FIXED_DECIMAL_SCALE:
                problems.append(
                    f"{item}.{source} is {data_type}: fixed decimal keeps {FIXED_DECIMAL_SCALE} decimals, not {scale}"
                )
    return problems
