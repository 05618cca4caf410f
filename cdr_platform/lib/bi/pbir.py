"""Checks of the PBIP project's JSON files: the .pbip, .platform, definition.pbism/.pbir and the PBIR report.

No PyPI or npm package ships Microsoft's published PBIR schemas (they live only in the
microsoft/json-schemas repository and at developer.microsoft.com), and the tests must not
fetch them, so each file type is checked here against a subset written from them: the
`$schema` URL of its type, the required properties and their types, the top-level properties
the schema allows. On top of that, what a schema cannot say: paths that resolve, page and
visual names that match their folders, visuals inside their page, and every field a visual
binds to present in the semantic model.
"""

from __future__ import annotations

import json
from pathlib import Path

from jsonschema import Draft7Validator

from cdr_platform.lib.bi.model_checks import PLATFORM_WIDE, platform_wide_tables
from cdr_platform.lib.bi.powerbi_model import SemanticModel

_BASE = r"^https://developer\.microsoft\.com/json-schemas/fabric/"


def _schema_url(path: str, major: int | None = None) -> dict:
    """The `$schema` of a file type: its URL under developer.microsoft.com, any version (or major version)."""
    version = rf"{major}\.\d+\.\d+" if major is not None else r"\d+\.\d+\.\d+"
    return {"type": "string", "pattern": _BASE + path + "/" + version + r"/schema\.json$"}


def _closed(properties: dict, required: list[str], **extra) -> dict:
    """An object schema that allows only `properties` (as Microsoft's schemas do) and requires `required`."""
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False, **extra}


_STRING = {"type": "string"}
_NUMBER = {"type": "number"}
_OBJECT = {"type": "object"}
_ARRAY = {"type": "array"}
_BOOLEAN = {"type": "boolean"}
_NAME = {"type": "string", "maxLength": 50, "minLength": 1}
_FORMAT_4_PLUS = {"type": "string", "pattern": r"^([4-9]|[1-9]\d+)\.\d+$"}  # TMDL and PBIR need format 4.0+

_PROJECTION = {
    "type": "object",
    "required": ["field", "queryRef"],
    "properties": {"field": _OBJECT, "queryRef": _STRING, "nativeQueryRef": _STRING, "active": _BOOLEAN},
}

SCHEMAS: dict[str, dict] = {
    "pbip": _closed(
        {
            "$schema": _schema_url("pbip/pbipProperties", 1),
            "version": _STRING,
            "artifacts": {
                "type": "array",
                "minItems": 1,
                "items": _closed({"report": _closed({"path": _STRING}, ["path"])}, ["report"]),
            },
            "settings": _OBJECT,
        },
        ["$schema", "version", "artifacts"],
    ),
    "platform": {
        "type": "object",
        "required": ["$schema", "metadata", "config"],
        "properties": {
            "$schema": _schema_url("gitIntegration/platformProperties", 2),
            "metadata": {
                "type": "object",
                "required": ["type", "displayName"],
                "properties": {"type": {"enum": ["Report", "SemanticModel"]}, "displayName": _STRING},
            },
            "config": {
                "type": "object",
                "required": ["version", "logicalId"],
                "properties": {
                    "version": _STRING,
                    "logicalId": {"type": "string", "pattern": r"^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$"},
                },
            },
        },
    },
    "pbism": _closed(
        {
            "$schema": _schema_url("item/semanticModel/definitionProperties", 1),
            "version": _FORMAT_4_PLUS,
            "settings": {"type": ["object", "null"]},
        },
        ["$schema", "version"],
    ),
    "pbir": _closed(
        {
            "$schema": _schema_url("item/report/definitionProperties", 2),
            "version": _FORMAT_4_PLUS,
            "datasetReference": {
                "type": "object",
                "properties": {
                    "byPath": {"type": ["object", "null"], "required": ["path"], "properties": {"path": _STRING}},
                    "byConnection": {"type": ["object", "null"]},
                },
                "additionalProperties": False,
                "minProperties": 1,
            },
        },
        ["$schema", "version", "datasetReference"],
    ),
    "version": _closed(
        {
            "$schema": _schema_url("item/report/definition/versionMetadata"),
            "version": {"type": "string", "pattern": r"^[1-9][0-9]*\.(0|[1-9][0-9]*)\.0$"},
        },
        ["$schema", "version"],
    ),
    "report": _closed(
        {
            "$schema": _schema_url("item/report/definition/report"),
            "themeCollection": {
                "type": "object",
                "properties": {"baseTheme": _OBJECT, "customTheme": _OBJECT},
                "additionalProperties": False,
            },
            **dict.fromkeys(("filterConfig", "objects", "settings", "slowDataSourceSettings"), _OBJECT),
            **dict.fromkeys(
                ("publicCustomVisuals", "resourcePackages", "organizationCustomVisuals", "annotations"), _ARRAY
            ),
            "reportSource": _STRING,
            "dataSourceVariables": _STRING,
        },
        ["$schema", "themeCollection"],
    ),
    "pages": _closed(
        {
            "$schema": _schema_url("item/report/definition/pagesMetadata"),
            "pageOrder": {"type": "array", "items": _STRING},
            "activePageName": _STRING,
            "landingPageName": _STRING,
        },
        ["$schema"],
    ),
    "page": _closed(
        {
            "$schema": _schema_url("item/report/definition/page"),
            "name": _NAME,
            "displayName": _STRING,
            "displayOption": {"enum": ["FitToPage", "FitToWidth", "ActualSize", "ActualSizeTopLeft"]},
            "height": _NUMBER,
            "width": _NUMBER,
            **dict.fromkeys(("filterConfig", "pageBinding", "objects", "autoPageGenerationConfig"), _OBJECT),
            **dict.fromkeys(("visualInteractions", "annotations"), _ARRAY),
            **dict.fromkeys(("type", "visibility", "howCreated"), _STRING),
        },
        ["$schema", "name", "displayName", "displayOption", "height", "width"],
    ),
    "visual": _closed(
        {
            "$schema": _schema_url("item/report/definition/visualContainer"),
            "name": _NAME,
            "position": {
                "type": "object",
                "required": ["x", "y", "width", "height"],
                "properties": dict.fromkeys(("x", "y", "z", "width", "height", "tabOrder", "angle"), _NUMBER),
                "additionalProperties": False,
            },
            "visual": {
                "type": "object",
                "required": ["visualType"],
                "properties": {
                    "visualType": _STRING,
                    "query": {
                        "type": "object",
                        "required": ["queryState"],
                        "properties": {
                            "queryState": {
                                "type": "object",
                                "additionalProperties": {
                                    "type": "object",
                                    "required": ["projections"],
                                    "properties": {"projections": {"type": "array", "items": _PROJECTION}},
                                },
                            },
                            "sortDefinition": _OBJECT,
                        },
                    },
                },
            },
            "visualGroup": _OBJECT,
            "parentGroupName": _STRING,
            "filterConfig": _OBJECT,
            "isHidden": _BOOLEAN,
            "annotations": _ARRAY,
            "howCreated": _STRING,
        },
        ["$schema", "name", "position"],
    ),
}


def _load(path: Path, kind: str, problems: list[str]) -> dict | None:
    """The JSON of `path` if it parses and follows the schema of `kind`; problems otherwise."""
    if not path.is_file():
        problems.append(f"{path}: missing")
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: not valid JSON ({exc})")
        return None
    errors = sorted(Draft7Validator(SCHEMAS[kind]).iter_errors(document), key=lambda e: list(e.absolute_path))
    for error in errors:
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        problems.append(f"{path}: {where}: {error.message}")
    return document if isinstance(document, dict) and not errors else None


def _fields(node) -> list[tuple[str, str, str]]:
    """Every (Column|Measure, entity, property) a visual's JSON binds to, wherever it sits."""
    found = []
    if isinstance(node, dict):
        for kind in ("Column", "Measure"):
            ref = node.get(kind)
            if isinstance(ref, dict) and isinstance(ref.get("Property"), str):
                entity = (ref.get("Expression") or {}).get("SourceRef", {}).get("Entity")
                found.append((kind, str(entity), ref["Property"]))
        for value in node.values():
            found += _fields(value)
    elif isinstance(node, list):
        for value in node:
            found += _fields(value)
    return found


def _bound_field_problems(path: Path, visual: dict, model: SemanticModel) -> list[str]:
    problems = []
    for kind, entity, prop in _fields(visual):
        table = model.table(entity)
        if table is None:
            problems.append(f"{path}: binds to table {entity!r}, which the model lacks")
        elif kind == "Column" and table.column(prop) is None:
            problems.append(f"{path}: binds to column {entity}[{prop}], which the model lacks")
        elif kind == "Measure" and all(m.name != prop for m in table.measures):
            problems.append(f"{path}: binds to measure [{prop}] of {entity}, which the model lacks")
    for role in (visual.get("visual", {}).get("query", {}).get("queryState", {}) or {}).values():
        for projection in role.get("projections", []):
            field = projection.get("field", {})
            refs = _fields(field) if "Column" in field or "Measure" in field else []
            if refs and projection.get("queryRef") != f"{refs[0][1]}.{refs[0][2]}":
                problems.append(f"{path}: queryRef {projection.get('queryRef')!r} does not name its field")
    return problems


def _tables_read(
    model: SemanticModel, kind: str, entity: str, prop: str, seen: frozenset[str] = frozenset()
) -> set[str]:
    """The tables a bound field reads: a column's own; a measure's, through the measures it uses."""
    if kind == "Column":
        return {entity}
    measure = model.measure(prop)
    if measure is None or prop in seen:
        return set()
    found = {table for table, _ in measure.expression.columns} | set(measure.expression.tables)
    for name in measure.expression.bracketed:
        found |= _tables_read(model, "Measure", entity, name, seen | {prop})
    return found


def _title(visual: dict) -> str:
    titles = (visual.get("visual", {}).get("visualContainerObjects") or {}).get("title") or []
    texts = [
        ((t.get("properties") or {}).get("text") or {}).get("expr", {}).get("Literal", {}).get("Value", "")
        for t in titles
    ]
    return " ".join(str(text) for text in texts)


def _platform_wide_label_problems(path: Path, visual: dict, model: SemanticModel, platform_wide: set[str]) -> list[str]:
    """A visual showing a fact no row-level security role filters must say so: its title says platform-wide."""
    shown = set()
    for kind, entity, prop in _fields(visual):
        shown |= _tables_read(model, kind, entity, prop) & platform_wide
    if shown and PLATFORM_WIDE not in _title(visual).lower():
        return [
            f"{path}: shows {', '.join(sorted(shown))}, which row-level security does not filter by operator: "
            f"its title must say it is {PLATFORM_WIDE}"
        ]
    return []


def report_problems(report_dir: Path, model: SemanticModel) -> list[str]:
    """Everything wrong with a PBIR report folder (`<name>.Report`): its files, names, layout and bindings."""
    problems: list[str] = []
    platform_wide = platform_wide_tables(model)
    _platform_problems(report_dir, "Report", problems)
    pbir = _load(report_dir / "definition.pbir", "pbir", problems)
    if pbir:
        by_path = (pbir["datasetReference"].get("byPath") or {}).get("path")
        if not by_path or not (report_dir / by_path / "definition.pbism").is_file():
            problems.append(f"{report_dir / 'definition.pbir'}: byPath {by_path!r} is not a semantic model folder")
    definition = report_dir / "definition"
    _load(definition / "version.json", "version", problems)
    _load(definition / "report.json", "report", problems)
    pages_meta = _load(definition / "pages" / "pages.json", "pages", problems)
    folders = sorted(p.name for p in (definition / "pages").iterdir() if p.is_dir()) if definition.is_dir() else []
    if pages_meta is not None:
        order = pages_meta.get("pageOrder", [])
        if sorted(order) != folders:
            problems.append(f"pages.json pageOrder {order} is not the page folders {folders}")
        if pages_meta.get("activePageName") not in order:
            problems.append(f"pages.json activePageName {pages_meta.get('activePageName')!r} is not a page")
    for folder in folders:
        page_dir = definition / "pages" / folder
        page = _load(page_dir / "page.json", "page", problems)
        if page and page["name"] != folder:
            problems.append(f"{page_dir / 'page.json'}: name {page['name']!r} is not its folder {folder!r}")
        for visual_dir in sorted(p for p in (page_dir / "visuals").glob("*") if p.is_dir()):
            path = visual_dir / "visual.json"
            visual = _load(path, "visual", problems)
            if visual is None:
                continue
            if visual["name"] != visual_dir.name:
                problems.append(f"{path}: name {visual['name']!r} is not its folder {visual_dir.name!r}")
            pos = visual["position"]
            if page and (pos["x"] + pos["width"] > page["width"] or pos["y"] + pos["height"] > page["height"]):
                problems.append(f"{path}: the visual reaches outside its {page['width']}x{page['height']} page")
            if min(pos["x"], pos["y"]) < 0:
                problems.append(f"{path}: the visual starts outside its page")
            problems += _bound_field_problems(path, visual, model)
            problems += _platform_wide_label_problems(path, visual, model, platform_wide)
    return problems


def _platform_problems(item_dir: Path, kind: str, problems: list[str]) -> None:
    platform = _load(item_dir / ".platform", "platform", problems)
    if platform and platform["metadata"]["type"] != kind:
        problems.append(f"{item_dir / '.platform'}: type {platform['metadata']['type']!r}, expected {kind!r}")


def project_problems(powerbi_dir: Path, model: SemanticModel) -> list[str]:
    """The whole PBIP project: each .pbip, the items it opens and their semantic models, and the report."""
    problems: list[str] = []
    pbips = sorted(powerbi_dir.glob("*.pbip"))
    if not pbips:
        problems.append(f"{powerbi_dir}: no .pbip file")
    for pbip_path in pbips:
        pbip = _load(pbip_path, "pbip", problems)
        for artifact in (pbip or {}).get("artifacts", []):
            report_dir = powerbi_dir / artifact["report"]["path"]
            if not report_dir.is_dir():
                problems.append(f"{pbip_path}: report {artifact['report']['path']!r} is not a folder")
                continue
            problems += report_problems(report_dir, model)
    for model_dir in sorted(powerbi_dir.glob("*.SemanticModel")):
        _platform_problems(model_dir, "SemanticModel", problems)
        _load(model_dir / "definition.pbism", "pbism", problems)
    return problems
