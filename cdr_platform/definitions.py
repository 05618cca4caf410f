"""The Dagster code location: every definition under cdr_platform/defs, loaded by folder."""

from pathlib import Path

import dagster as dg

import cdr_platform.defs

defs = dg.components.load_defs(cdr_platform.defs, project_root=Path(__file__).parent.parent)
