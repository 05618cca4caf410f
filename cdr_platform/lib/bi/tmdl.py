"""A strict reader of the TMDL files of a Power BI semantic model.

pbipinspect reads TMDL with regular expressions and drops a block it does not recognise
(a column indented with spaces, a typo in a keyword) without a word. This reader is the
second, strict reading: it knows the grammar (tab indentation, `///` descriptions, object
declarations, `name: value` properties, `= expression` defaults on one line or indented
below, ``` blocks) and the objects and properties this project uses, and anything else is
a `TmdlError` naming the file and line. It returns a generic tree; powerbi_model.py maps it
to tables, columns and measures and compares the result with pbipinspect's reading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

FLAG = "flag"  # bare (`isHidden`) or `isHidden: true|false`
TEXT = "text"
EXPRESSION = "expression"  # `source = ...`


@dataclass(frozen=True)
class Spec:
    """What an object type may hold: its properties (name -> kind or allowed values), its child objects."""

    properties: dict[str, str | frozenset[str]] = field(default_factory=dict)
    children: frozenset[str] = frozenset()
    required: frozenset[str] = frozenset()
    named: bool = True
    has_value: bool | None = False  # None: a default expression is optional (a calculated column)


def _values(*names: str) -> frozenset[str]:
    return frozenset(names)


_DESKTOP = {"lineageTag": TEXT, "sourceLineageTag": TEXT}  # what Power BI Desktop adds on save
_NOTES = frozenset({"annotation", "changedProperty", "extendedProperty"})

SPECS: dict[str, Spec] = {
    "database": Spec(
        {"compatibilityLevel": TEXT, "compatibilityMode": _values("powerBI", "analysisServices"), **_DESKTOP}
    ),
    "model": Spec(
        {
            "culture": TEXT,
            "defaultPowerBIDataSourceVersion": TEXT,
            "discourageImplicitMeasures": FLAG,
            "sourceQueryCulture": TEXT,
            "defaultMode": _values("import", "directQuery", "dual"),
            **_DESKTOP,
        },
        frozenset({"annotation", "ref", "queryGroup", "dataAccessOptions"}),
    ),
    "dataAccessOptions": Spec(
        {"legacyRedirects": FLAG, "returnErrorValuesAsNull": FLAG, "fastCombine": FLAG}, named=False, has_value=False
    ),
    "queryGroup": Spec(children=frozenset({"annotation"})),
    "ref": Spec({"kind": TEXT}),
    "table": Spec(
        {
            "dataCategory": TEXT,
            "isHidden": FLAG,
            "isPrivate": FLAG,
            "excludeFromModelRefresh": FLAG,
            "showAsVariationsOnly": FLAG,
            **_DESKTOP,
        },
        frozenset({"column", "measure", "partition", "hierarchy"}) | _NOTES,
    ),
    "column": Spec(
        {
            "dataType": _values("int64", "string", "dateTime", "decimal", "double", "boolean", "binary", "variant"),
            "isHidden": FLAG,
            "isKey": FLAG,
            "isNullable": FLAG,
            "isUnique": FLAG,
            "isNameInferred": FLAG,
            "isDataTypeInferred": FLAG,
            "isAvailableInMdx": FLAG,
            "isDefaultLabel": FLAG,
            "isDefaultImage": FLAG,
            "sourceColumn": TEXT,
            "summarizeBy": _values("none", "sum", "count", "min", "max", "average", "distinctCount", "default"),
            "formatString": TEXT,
            "dataCategory": TEXT,
            "sortByColumn": TEXT,
            "displayFolder": TEXT,
            "encodingHint": _values("default", "hash", "value"),
            **_DESKTOP,
        },
        _NOTES,
        required=frozenset({"dataType"}),
        has_value=None,
    ),
    "measure": Spec(
        {"formatString": TEXT, "displayFolder": TEXT, "isHidden": FLAG, "dataCategory": TEXT, **_DESKTOP},
        _NOTES,
        has_value=True,
    ),
    "partition": Spec(
        {"mode": _values("import", "directQuery", "dual", "default"), "source": EXPRESSION, "queryGroup": TEXT},
        _NOTES,
        required=frozenset({"source"}),
        has_value=True,
    ),
    "hierarchy": Spec({"isHidden": FLAG, "displayFolder": TEXT, **_DESKTOP}, frozenset({"level"}) | _NOTES),
    "level": Spec({"column": TEXT, **_DESKTOP}, _NOTES, required=frozenset({"column"})),
    "relationship": Spec(
        {
            "fromColumn": TEXT,
            "toColumn": TEXT,
            "crossFilteringBehavior": _values("oneDirection", "bothDirections", "automatic"),
            "fromCardinality": _values("one", "many"),
            "toCardinality": _values("one", "many"),
            "isActive": FLAG,
            "securityFilteringBehavior": _values("oneDirection", "bothDirections", "none"),
            "relyOnReferentialIntegrity": FLAG,
            "joinOnDateBehavior": _values("dateAndTime", "datePartOnly"),
        },
        _NOTES,
        required=frozenset({"fromColumn", "toColumn"}),
    ),
    "role": Spec(
        {"modelPermission": _values("none", "read", "readRefresh", "refresh", "administrator")},
        frozenset({"tablePermission"}) | _NOTES,
        required=frozenset({"modelPermission"}),
    ),
    "tablePermission": Spec({"metadataPermission": _values("default", "none", "read")}, _NOTES, has_value=True),
    "expression": Spec({"queryGroup": TEXT, **_DESKTOP}, _NOTES, has_value=True),
    "annotation": Spec(has_value=True),
    "extendedProperty": Spec(has_value=True),
    "changedProperty": Spec(named=False, has_value=True),
}

# `changedProperty = IsHidden` reads like an expression property but may repeat: an unnamed object;
# `dataAccessOptions` is a bare word with properties below it
_UNNAMED_OBJECTS = frozenset(k for k, s in SPECS.items() if not s.named and s.has_value)
_BARE_OBJECTS = frozenset(k for k, s in SPECS.items() if not s.named and not s.has_value)
_NAME = r"'(?:[^']|'')+'|[^\s'=:.]+"
_DECLARATION = re.compile(rf"^(?P<kind>[A-Za-z]+)\s+(?P<name>{_NAME})\s*(?:=\s*(?P<value>.*))?$")
_UNNAMED = re.compile(r"^(?P<kind>[A-Za-z]+)\s*=\s*(?P<value>.*)$")
_PROPERTY = re.compile(r"^(?P<key>[A-Za-z]+):\s*(?P<value>.*)$")
_FLAG = re.compile(r"^(?P<key>[A-Za-z]+)$")
_REF = re.compile(rf"^ref\s+(?P<kind>[A-Za-z]+)\s+(?P<name>{_NAME})$")


class TmdlError(ValueError):
    """A TMDL file this reader cannot read exactly; the message names the file and line."""


@dataclass
class Node:
    """One TMDL object: `kind name [= value]`, its properties, its child objects."""

    kind: str
    name: str | None
    value: str | None
    path: Path
    line: int
    depth: int
    description: str | None = None
    properties: dict[str, str | bool] = field(default_factory=dict)
    children: list[Node] = field(default_factory=list)

    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def of_kind(self, kind: str) -> list[Node]:
        return [c for c in self.children if c.kind == kind]


def unquote_name(raw: str) -> str:
    """`'Total Revenue'` -> `Total Revenue` (a doubled quote is a quote); unquoted names as they are."""
    if raw.startswith("'") and raw.endswith("'") and len(raw) >= 2:
        return raw[1:-1].replace("''", "'")
    return raw


def split_column_reference(raw: str) -> tuple[str, str]:
    """`fct_revenue_daily.date_key` or `'Some Table'.'Some Column'` -> (table, column)."""
    match = re.fullmatch(rf"(?P<table>{_NAME})\.(?P<column>{_NAME})", raw.strip())
    if not match:
        raise TmdlError(f"not a table.column reference: {raw!r}")
    return unquote_name(match["table"]), unquote_name(match["column"])


def _property_value(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw.startswith('"') and raw.endswith('"'):
        return raw[1:-1].replace('""', '"')
    return raw


def _depth(line: str, where: str) -> tuple[int, str]:
    stripped = line.lstrip("\t")
    depth = len(line) - len(stripped)
    if stripped[:1].isspace():
        raise TmdlError(f"{where}: indentation must be tabs only (Power BI writes tabs)")
    return depth, stripped


class _Reader:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.replace("\r\n", "\n").split("\n")
        self.index = 0

    def where(self, index: int) -> str:
        return f"{self.path}:{index + 1}"

    def expression(self, first: str, depth: int, start: int) -> str:
        """The `= ...` part: on the same line, below at depth + 2, or in a ``` block below."""
        first = first.strip()
        if first and first != "```":
            return first
        body: list[str] = []
        indent = "\t" * (depth + 2)
        if first == "```":
            while True:
                if self.index >= len(self.lines):
                    raise TmdlError(f"{self.where(start)}: ``` block is not closed")
                line = self.lines[self.index]
                self.index += 1
                if line.strip() == "```":
                    break
                body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip("\t"))
        else:
            while self.index < len(self.lines):
                line = self.lines[self.index]
                if line.strip() and not line.startswith(indent):
                    break
                body.append(line[len(indent) :] if line.strip() else "")
                self.index += 1
        while body and not body[-1].strip():
            body.pop()
        while body and not body[0].strip():
            body.pop(0)
        if not body:
            raise TmdlError(f"{self.where(start)}: empty expression after '='")
        return "\n".join(body)

    def read(self) -> list[Node]:
        roots: list[Node] = []
        stack: list[Node] = []
        description: list[str] = []
        description_depth = -1
        while self.index < len(self.lines):
            start = self.index
            raw = self.lines[self.index]
            self.index += 1
            if not raw.strip():
                continue
            depth, content = _depth(raw, self.where(start))
            content = content.rstrip()
            if content.startswith("///"):
                if description and depth != description_depth:
                    raise TmdlError(f"{self.where(start)}: description lines at different depths")
                description.append(content[3:].strip())
                description_depth = depth
                continue
            while stack and stack[-1].depth >= depth:
                stack.pop()
            parent = stack[-1] if stack else None
            if depth != (parent.depth + 1 if parent else 0):
                raise TmdlError(f"{self.where(start)}: unexpected indentation (depth {depth})")
            node = self._object(content, depth, start)
            if node is None:  # a property of the parent
                if description:
                    raise TmdlError(f"{self.where(start)}: a /// description must precede an object")
                if parent is None:
                    raise TmdlError(f"{self.where(start)}: a property outside any object: {content!r}")
                self._property(parent, content, depth, start)
                continue
            if description:
                if description_depth != depth:
                    raise TmdlError(f"{self.where(start)}: description and object at different depths")
                node.description = "\n".join(description).strip()
                description = []
            if parent is None:
                roots.append(node)
            else:
                allowed = SPECS[parent.kind].children
                if node.kind not in allowed:
                    raise TmdlError(f"{node.where()}: {parent.kind} {parent.name!r} cannot hold a {node.kind}")
                parent.children.append(node)
            stack.append(node)
        if description:
            raise TmdlError(f"{self.path}: a /// description at the end of the file describes nothing")
        for root in roots:
            _check(root)
        return roots

    def _object(self, content: str, depth: int, start: int) -> Node | None:
        if ref := _REF.match(content):
            node = Node("ref", unquote_name(ref["name"]), None, self.path, start + 1, depth)
            node.properties["kind"] = ref["kind"]
            return node
        if content in _BARE_OBJECTS:
            return Node(content, None, None, self.path, start + 1, depth)
        if (unnamed := _UNNAMED.match(content)) and unnamed["kind"] in _UNNAMED_OBJECTS:
            value = self.expression(unnamed["value"], depth, start)
            return Node(unnamed["kind"], None, value, self.path, start + 1, depth)
        declaration = _DECLARATION.match(content)
        if not declaration or declaration["kind"] not in SPECS or not SPECS[declaration["kind"]].named:
            return None
        value = declaration["value"]
        if value is not None:
            value = self.expression(value, depth, start)
        name = unquote_name(declaration["name"])
        return Node(declaration["kind"], name, value, self.path, start + 1, depth)

    def _property(self, parent: Node, content: str, depth: int, start: int) -> None:
        spec = SPECS[parent.kind].properties
        where = self.where(start)
        if (expr := _UNNAMED.match(content)) and spec.get(expr["kind"]) == EXPRESSION:
            key, value = expr["kind"], self.expression(expr["value"], depth, start)
        elif prop := _PROPERTY.match(content):
            key, value = prop["key"], _property_value(prop["value"])
        elif flag := _FLAG.match(content):
            key, value = flag["key"], True
        else:
            raise TmdlError(f"{where}: cannot read {content!r} in {parent.kind} {parent.name!r}")
        if key not in spec:
            raise TmdlError(f"{where}: {parent.kind} {parent.name!r} has no property or object {key!r}")
        if key in parent.properties:
            raise TmdlError(f"{where}: {key} set twice in {parent.kind} {parent.name!r}")
        kind = spec[key]
        if kind == FLAG:
            if value not in (True, "true", "false"):
                raise TmdlError(f"{where}: {key} is true or false, not {value!r}")
            value = value in (True, "true")
        elif kind == EXPRESSION:
            if value is True or not isinstance(value, str) or not expr:
                raise TmdlError(f"{where}: {key} takes '= expression'")
        elif value is True or value == "":
            raise TmdlError(f"{where}: {key} needs a value")
        elif isinstance(kind, frozenset) and value not in kind:
            raise TmdlError(f"{where}: {key}: {value!r} is not one of {sorted(kind)}")
        parent.properties[key] = value


def _check(node: Node) -> None:
    spec = SPECS[node.kind]
    if spec.has_value is True and node.value is None:
        raise TmdlError(f"{node.where()}: {node.kind} {node.name!r} needs '= ...'")
    if spec.has_value is False and node.value is not None:
        raise TmdlError(f"{node.where()}: {node.kind} {node.name!r} takes no '= ...'")
    if missing := spec.required - node.properties.keys():
        raise TmdlError(f"{node.where()}: {node.kind} {node.name!r} lacks {', '.join(sorted(missing))}")
    for child in node.children:
        _check(child)


def read_tmdl(path: Path) -> list[Node]:
    """The top-level objects of one TMDL file, or a TmdlError."""
    return _Reader(path, path.read_text(encoding="utf-8")).read()
