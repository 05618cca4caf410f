"""Markdown for people: the tables that Dagster metadata, checks and the CLI show."""

from __future__ import annotations


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """Rows (dicts) as a markdown table; integers with thousands separators; `_(none)_` if empty."""
    if not rows:
        return "_(none)_"
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append(
            "| "
            + " | ".join(
                f"{r[c]:,}" if isinstance(r[c], int) and not isinstance(r[c], bool) else str(r[c]) for c in columns
            )
            + " |"
        )
    return "\n".join(lines)
