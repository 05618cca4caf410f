"""Every asset key of the code location is declared in lib/asset_keys.py, and nowhere else as text."""

from __future__ import annotations

import ast
import re

from cdr_platform.lib import asset_keys
from cdr_platform.lib.settings import REPO_ROOT

DECLARED = {v for v in vars(asset_keys).values() if isinstance(v, tuple) and all(isinstance(p, str) for p in v)}
PREFIXES = {asset_keys.TARIFFS_PREFIX, asset_keys.BILLING_PREFIX, asset_keys.MARTS_PREFIX}


def test_every_asset_of_the_code_location_has_a_declared_key():
    from cdr_platform.definitions import defs

    keys = {tuple(k.path) for k in defs.resolve_asset_graph().get_all_asset_keys()}
    undeclared = {k for k in keys if k not in DECLARED and not (len(k) == 2 and k[0] in PREFIXES)}
    assert undeclared == set()
    assert DECLARED <= keys, "a declared key no asset has"


def test_the_dbt_key_prefixes_are_the_declared_ones():
    project = (REPO_ROOT / "dbt_project" / "dbt_project.yml").read_text()
    assert set(re.findall(r"key_prefix:\s*(\w+)", project)) == PREFIXES


def test_no_module_writes_an_asset_key_as_text():
    """AssetKey("...") or a materialization of a literal name: the key must come from asset_keys."""
    offenders = []
    for module in (REPO_ROOT / "cdr_platform").rglob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            literal_args = [a for a in node.args[:1] if _literal(a)]
            keyword = [k.value for k in node.keywords if k.arg in ("asset_key", "key")]
            if name in ("AssetKey", "AssetMaterialization", "AssetSpec") and literal_args:
                offenders.append(f"{module.name}:{node.lineno}")
            if any(_literal(v) for v in keyword):
                offenders.append(f"{module.name}:{node.lineno}")
    assert offenders == [], "take the key from cdr_platform.lib.asset_keys"


def _literal(node: ast.AST) -> bool:
    """A key written out: a string, or a list or tuple of strings."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    return isinstance(node, ast.List | ast.Tuple) and all(isinstance(e, ast.Constant) for e in node.elts)
