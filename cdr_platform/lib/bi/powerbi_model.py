"""The Power BI semantic model of the platform (powerbi/CdrPlatform.SemanticModel), read as data.

Two independent readings of the TMDL must agree: pbipinspect's (the PyPI parser) and the strict
reader in tmdl.py. pbipinspect silently drops a block it does not recognise, so a column or a
measure that only one of them sees is an error, and so is anything the strict reader cannot
read. Every DAX expression (measures, calculated columns and tables, role filters) is parsed by
pbi-parsers, and every M partition too, to learn which (schema, table) it imports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from pbi_parsers import pq
from pbi_parsers.pq import exprs as m_exprs
from pbipinspect.parse.tmdl import get_tmdl_relationship, get_tmdl_table

from cdr_platform.lib.bi.dax import Dax, DaxSyntaxError, parse_dax, require_asserts
from cdr_platform.lib.bi.tmdl import Node, TmdlError, read_tmdl, split_column_reference
from cdr_platform.lib.settings import load_settings

PROJECT_NAME = "CdrPlatform"


def powerbi_dir() -> Path:
    """The Power BI project: `powerbi/` of the project's files (CDR_PROJECT_DIR: the checkout, or
    the installed package's copy)."""
    return load_settings().project_dir / "powerbi"


def semantic_model_dir() -> Path:
    return powerbi_dir() / f"{PROJECT_NAME}.SemanticModel"


def report_dir() -> Path:
    return powerbi_dir() / f"{PROJECT_NAME}.Report"


_FOLDERS = {"POWERBI_DIR": powerbi_dir, "SEMANTIC_MODEL_DIR": semantic_model_dir, "REPORT_DIR": report_dir}


def __getattr__(name: str) -> Path:
    """POWERBI_DIR, SEMANTIC_MODEL_DIR, REPORT_DIR (the tests' names) resolved when imported, not
    when this module is: the settings are read where a value is needed."""
    if name in _FOLDERS:
        return _FOLDERS[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ModelReadError(ValueError):
    """The semantic model cannot be read exactly; the message lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("the semantic model does not read cleanly:\n- " + "\n- ".join(problems))


@dataclass(frozen=True)
class Column:
    table: str
    name: str
    data_type: str
    is_hidden: bool = False
    source_column: str | None = None
    summarize_by: str | None = None
    is_key: bool = False
    sort_by_column: str | None = None
    format_string: str | None = None
    expression: Dax | None = None  # a calculated column


@dataclass(frozen=True)
class Measure:
    table: str
    name: str
    expression: Dax
    format_string: str | None
    description: str | None
    display_folder: str | None = None


@dataclass(frozen=True)
class Partition:
    name: str
    kind: str  # m | calculated
    mode: str | None
    source: str
    imports: tuple[str, str] | None = None  # (schema, table) an M partition navigates to
    calculated: Dax | None = None


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    measures: tuple[Measure, ...]
    partitions: tuple[Partition, ...]
    data_category: str | None = None
    is_hidden: bool = False
    description: str | None = None

    @property
    def source(self) -> tuple[str, str] | None:
        """The (schema, table) of the warehouse this table imports, if it is an import of one."""
        imported = {p.imports for p in self.partitions if p.imports}
        return imported.pop() if len(imported) == 1 else None

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class Relationship:
    name: str
    from_table: str
    from_column: str
    to_table: str
    to_column: str
    cross_filtering: str = "oneDirection"
    from_cardinality: str = "many"
    to_cardinality: str = "one"
    is_active: bool = True
    security_filtering: str = "oneDirection"  # the way row-level security flows (not crossFilteringBehavior)


@dataclass(frozen=True)
class Role:
    name: str
    model_permission: str
    filters: dict[str, Dax] = field(default_factory=dict)  # table -> DAX row filter
    description: str | None = None


@dataclass(frozen=True)
class Parameter:
    name: str
    expression: str
    is_parameter_query: bool


@dataclass(frozen=True)
class SemanticModel:
    tables: tuple[Table, ...]
    relationships: tuple[Relationship, ...]
    roles: tuple[Role, ...]
    parameters: tuple[Parameter, ...]
    culture: str | None
    annotations: dict[str, str]
    compatibility_level: int | None
    references: tuple[tuple[str, str], ...] = ()  # model.tmdl's `ref table X` / `ref role Y`: (kind, name)

    def table(self, name: str) -> Table | None:
        return next((t for t in self.tables if t.name == name), None)

    @property
    def measures(self) -> tuple[Measure, ...]:
        return tuple(m for t in self.tables for m in t.measures)

    @property
    def columns(self) -> tuple[Column, ...]:
        return tuple(c for t in self.tables for c in t.columns)

    def measure(self, name: str) -> Measure | None:
        return next((m for m in self.measures if m.name == name), None)


def _read(path: Path, problems: list[str]) -> list[Node]:
    try:
        return read_tmdl(path)
    except TmdlError as exc:
        problems.append(str(exc))
        return []


def _dax(text: str, what: str, problems: list[str]) -> Dax | None:
    try:
        return parse_dax(text)
    except DaxSyntaxError as exc:
        problems.append(f"{what}: {exc}")
        return None


def _literal(expr) -> str | None:
    if isinstance(expr, m_exprs.LiteralStringExpression):
        return expr.value.text[1:-1].replace('""', '"')
    return None


@lru_cache(maxsize=512)
def _parse_m(text: str):
    """pbi-parsers' M tree of `text` (its backtracking parser takes a quarter second a partition: cached)."""
    require_asserts()
    return pq.to_ast(text)


def _m_imports(source: str, parameters: set[str], what: str, problems: list[str]) -> tuple[str, str] | None:
    """The (schema, table) that `Sql.Database(Server, Database){[Schema=..., Item=...]}[Data]` reads."""
    try:
        tree = _parse_m(source)
    except (ValueError, AssertionError, IndexError, KeyError, TypeError, AttributeError) as exc:
        problems.append(f"{what}: M does not parse: {exc or type(exc).__name__}")
        return None
    if tree is None:
        problems.append(f"{what}: M does not parse")
        return None
    databases = [f for f in tree.find_all(m_exprs.FunctionExpression) if f.name.name() == "Sql.Database"]
    if len(databases) != 1:
        problems.append(f"{what}: expected one Sql.Database(Server, Database) source, found {len(databases)}")
        return None
    arguments = [a.name() if isinstance(a, m_exprs.IdentifierExpression) else None for a in databases[0].args]
    if arguments != ["Server", "Database"] or not {"Server", "Database"} <= parameters:
        problems.append(f"{what}: the source must be Sql.Database(Server, Database) with both M parameters defined")
    navigations = []
    for row in tree.find_all(m_exprs.RowExpression):
        if isinstance(row.indexer, m_exprs.RecordExpression):
            fields = {key.name(): _literal(value) for key, value in row.indexer.args}
            if {"Schema", "Item"} <= fields.keys():
                navigations.append((fields["Schema"], fields["Item"]))
    if len(navigations) != 1 or None in navigations[0]:
        problems.append(f'{what}: expected one navigation Source{{[Schema="...", Item="..."]}}, found {navigations}')
        return None
    return navigations[0]


def m_column_types(source: str) -> dict[str, str] | None:
    """The types an M query's result sets: column -> type name (`Currency.Type`), from the
    Table.TransformColumnTypes steps its `in` result is built from; None if it does not parse.

    Only the chain of steps the result comes from counts (the table argument of each step, back
    to the navigation): a typing step the query does not return types nothing.
    """
    try:
        tree = _parse_m(source)
    except (ValueError, AssertionError, IndexError, KeyError, TypeError, AttributeError):
        return None
    if tree is None:
        return None
    steps = {}
    if isinstance(tree, m_exprs.StatementExpression):
        steps = {v.var_name.text: v.statement for v in tree.statements}
        tree = tree.let_expr
    types: dict[str, str] = {}
    seen: set[str] = set()
    node = tree
    while True:
        if isinstance(node, m_exprs.IdentifierExpression) and node.name() in steps and node.name() not in seen:
            seen.add(node.name())
            node = steps[node.name()]
        elif isinstance(node, m_exprs.FunctionExpression) and node.name.name() == "Table.TransformColumnTypes":
            if len(node.args) >= 2 and isinstance(node.args[1], m_exprs.ArrayExpression):
                for pair in node.args[1].elements:
                    items = pair.elements if isinstance(pair, m_exprs.ArrayExpression) else []
                    name = _literal(items[0]) if len(items) == 2 else None
                    if name is not None and isinstance(items[1], m_exprs.TypingExpression):
                        # a later step (nearer the result) wins: it is read first
                        types.setdefault(name, ".".join(t.text for t in items[1].tok_type_name))
            node = node.args[0] if node.args else None
        else:
            return types


def _parameter(node: Node) -> Parameter:
    is_parameter = False
    try:
        tree = _parse_m(node.value or "")
    except (ValueError, AssertionError, IndexError, KeyError, TypeError, AttributeError):
        tree = None
    if isinstance(tree, m_exprs.MetaExpression) and isinstance(tree.right_term, m_exprs.RecordExpression):
        for key, value in tree.right_term.args:
            if key.name() == "IsParameterQuery":
                is_parameter = isinstance(value, m_exprs.KeywordExpression) and value.name.text == "true"
    return Parameter(node.name or "", node.value or "", is_parameter)


def _column(table: str, node: Node, problems: list[str]) -> Column:
    props = node.properties
    expression = _dax(node.value, f"{node.where()} column {table}[{node.name}]", problems) if node.value else None
    if node.value is None and "sourceColumn" not in props:
        problems.append(f"{node.where()}: column {table}[{node.name}] has neither sourceColumn nor an expression")
    return Column(
        table=table,
        name=node.name or "",
        data_type=str(props["dataType"]),
        is_hidden=bool(props.get("isHidden", False)),
        source_column=props.get("sourceColumn"),  # type: ignore[arg-type]
        summarize_by=props.get("summarizeBy"),  # type: ignore[arg-type]
        is_key=bool(props.get("isKey", False)),
        sort_by_column=props.get("sortByColumn"),  # type: ignore[arg-type]
        format_string=props.get("formatString"),  # type: ignore[arg-type]
        expression=expression,
    )


def _table(node: Node, parameters: set[str], problems: list[str]) -> Table:
    name = node.name or ""
    columns = tuple(_column(name, c, problems) for c in node.of_kind("column"))
    measures = []
    for m in node.of_kind("measure"):
        dax = _dax(m.value or "", f"{m.where()} measure [{m.name}]", problems)
        if dax is not None:
            measures.append(
                Measure(
                    table=name,
                    name=m.name or "",
                    expression=dax,
                    format_string=m.properties.get("formatString"),  # type: ignore[arg-type]
                    description=m.description,
                    display_folder=m.properties.get("displayFolder"),  # type: ignore[arg-type]
                )
            )
    partitions = []
    for p in node.of_kind("partition"):
        source = str(p.properties["source"])
        what = f"{p.where()} partition {p.name!r} of {name}"
        if p.value == "m":
            partitions.append(
                Partition(
                    p.name or "", "m", p.properties.get("mode"), source, _m_imports(source, parameters, what, problems)
                )  # type: ignore[arg-type]
            )
        elif p.value == "calculated":
            partitions.append(
                Partition(
                    p.name or "",
                    "calculated",
                    p.properties.get("mode"),
                    source,
                    calculated=_dax(source, what, problems),
                )  # type: ignore[arg-type]
            )
        else:
            problems.append(f"{what}: partition kind {p.value!r} is neither m nor calculated")
    if not partitions:
        problems.append(f"{node.where()}: table {name} has no partition")
    return Table(
        name=name,
        columns=columns,
        measures=tuple(measures),
        partitions=tuple(partitions),
        data_category=node.properties.get("dataCategory"),  # type: ignore[arg-type]
        is_hidden=bool(node.properties.get("isHidden", False)),
        description=node.description,
    )


def _squeeze(text: str | None) -> str:
    return re.sub(r"\s+", "", text or "")


def _pbipinspect_disagreements(path: Path, table: Table) -> list[str]:
    """Where pbipinspect's reading of one table file differs from the strict one."""
    try:
        theirs = get_tmdl_table(path.read_text(encoding="utf-8"))
    except Exception as exc:  # noqa: BLE001 - a crash of the second reader is a disagreement to report
        return [f"{path}: pbipinspect cannot read it ({type(exc).__name__}: {exc})"]
    problems = []
    mine_columns = {c.name: c for c in table.columns}
    their_columns = {c["name"]: c for c in theirs["columns"]}
    for name in sorted(mine_columns.keys() ^ their_columns.keys()):
        who = "the strict reader" if name in mine_columns else "pbipinspect"
        problems.append(f"{path}: column {name!r} is read by {who} only (a malformed column block?)")
    for name in sorted(mine_columns.keys() & their_columns.keys()):
        mine, their = mine_columns[name], their_columns[name]
        pairs = {
            "dataType": (mine.data_type, their["dataType"]),
            "isHidden": (mine.is_hidden, their["isHidden"]),
            "sourceColumn": (mine.source_column, their["sourceColumn"]),
        }
        for prop, (a, b) in pairs.items():
            if a != b:
                problems.append(f"{path}: column {name!r} {prop} reads {a!r} strictly and {b!r} by pbipinspect")
    mine_measures = {m.name: m for m in table.measures}
    their_measures = {m["name"].strip("'").replace("''", "'"): m for m in theirs["measures"]}
    for name in sorted(mine_measures.keys() ^ their_measures.keys()):
        who = "the strict reader" if name in mine_measures else "pbipinspect"
        problems.append(f"{path}: measure {name!r} is read by {who} only (a malformed measure block?)")
    for name in sorted(mine_measures.keys() & their_measures.keys()):
        mine_m, their_m = mine_measures[name], their_measures[name]
        # without a property after it, pbipinspect's expression runs on into the next measure's /// lines
        their_text = "\n".join(line for line in their_m["expression"].split("\n") if not line.strip().startswith("///"))
        if _squeeze(mine_m.expression.text) != _squeeze(their_text):
            problems.append(f"{path}: measure {name!r} expression differs between the two readings")
        if _squeeze(mine_m.format_string) != _squeeze(their_m["formatString"]):
            problems.append(f"{path}: measure {name!r} formatString differs between the two readings")
    return problems


def _relationship(node: Node, problems: list[str]) -> Relationship | None:
    props = node.properties
    try:
        from_table, from_column = split_column_reference(str(props["fromColumn"]))
        to_table, to_column = split_column_reference(str(props["toColumn"]))
    except TmdlError as exc:
        problems.append(f"{node.where()}: {exc}")
        return None
    return Relationship(
        name=node.name or "",
        from_table=from_table,
        from_column=from_column,
        to_table=to_table,
        to_column=to_column,
        cross_filtering=str(props.get("crossFilteringBehavior", "oneDirection")),
        from_cardinality=str(props.get("fromCardinality", "many")),
        to_cardinality=str(props.get("toCardinality", "one")),
        is_active=bool(props.get("isActive", True)),
        security_filtering=str(props.get("securityFilteringBehavior", "oneDirection")),
    )


def _relationship_disagreements(path: Path, relationships: list[Relationship]) -> list[str]:
    their = {
        (r["fromTable"], r["fromColumn"], r["toTable"], r["toColumn"])
        for r in get_tmdl_relationship(path.read_text(encoding="utf-8"))
    }
    mine = {(r.from_table, r.from_column, r.to_table, r.to_column) for r in relationships}
    problems = []
    for key in sorted(mine ^ their, key=str):
        who = "the strict reader" if key in mine else "pbipinspect"
        problems.append(f"{path}: relationship {key[0]}.{key[1]} -> {key[2]}.{key[3]} is read by {who} only")
    return problems


def _single(path: Path, kind: str, problems: list[str]) -> Node | None:
    roots = _read(path, problems) if path.exists() else []
    found = [r for r in roots if r.kind == kind]
    if len(found) != 1:
        problems.append(f"{path}: expected one {kind}, found {len(found)}")
        return None
    return found[0]


def load_semantic_model(folder: Path | None = None) -> SemanticModel:
    """Read the TMDL definition of a PBIP semantic model (default: the project's), or raise
    ModelReadError listing every problem."""
    definition = (folder or semantic_model_dir()) / "definition"
    problems: list[str] = []
    if not definition.is_dir():
        raise ModelReadError([f"{definition}: no TMDL definition folder"])
    database = _single(definition / "database.tmdl", "database", problems)
    model_path = definition / "model.tmdl"
    model_roots = _read(model_path, problems) if model_path.exists() else []
    model = next((r for r in model_roots if r.kind == "model"), None)
    if model is None:
        problems.append(f"{model_path}: no model object")
    # Power BI writes the model's annotations and refs at the top level of model.tmdl
    model_children = [c for r in model_roots for c in ([*r.children] if r.kind == "model" else [r])]
    annotations = {a.name or "": a.value or "" for a in model_children if a.kind == "annotation"}

    expressions_path = definition / "expressions.tmdl"
    parameter_nodes = _read(expressions_path, problems) if expressions_path.exists() else []
    parameters = tuple(_parameter(n) for n in parameter_nodes if n.kind == "expression")
    parameter_names = {p.name for p in parameters if p.is_parameter_query}

    tables = []
    for path in sorted((definition / "tables").glob("*.tmdl")):
        roots = _read(path, problems)
        if not roots:
            continue
        if len(roots) != 1 or roots[0].kind != "table":
            problems.append(f"{path}: a table file holds exactly one table")
            continue
        table = _table(roots[0], parameter_names, problems)
        tables.append(table)
        problems.extend(_pbipinspect_disagreements(path, table))

    relationships: list[Relationship] = []
    relationships_path = definition / "relationships.tmdl"
    if relationships_path.exists():
        nodes = _read(relationships_path, problems)
        relationships = [r for n in nodes if (r := _relationship(n, problems)) is not None]
        problems.extend(_relationship_disagreements(relationships_path, relationships))

    roles = []
    for path in sorted((definition / "roles").glob("*.tmdl")):
        for node in _read(path, problems):
            if node.kind != "role":
                problems.append(f"{node.where()}: a role file holds roles, not a {node.kind}")
                continue
            filters = {}
            for permission in node.of_kind("tablePermission"):
                dax = _dax(permission.value or "", f"{permission.where()} role {node.name} filter", problems)
                if dax is not None:
                    filters[permission.name or ""] = dax
            roles.append(Role(node.name or "", str(node.properties["modelPermission"]), filters, node.description))

    if problems:
        raise ModelReadError(problems)
    assert model is not None and database is not None
    level = database.properties.get("compatibilityLevel")
    return SemanticModel(
        tables=tuple(tables),
        relationships=tuple(relationships),
        roles=tuple(roles),
        parameters=parameters,
        culture=model.properties.get("culture"),  # type: ignore[arg-type]
        annotations=annotations,
        compatibility_level=int(level) if isinstance(level, str) and level.isdigit() else None,
        references=tuple((str(r.properties["kind"]), r.name or "") for r in model_children if r.kind == "ref"),
    )
