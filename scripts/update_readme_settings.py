"""Regenerate the README's settings table from the declarations (cdr_platform/lib/settings.py)."""

import re
from pathlib import Path

from cdr_platform.lib.settings import settings_table

README = Path(__file__).resolve().parents[1] / "README.md"
PATTERN = re.compile(r"(<!-- settings table:[^\n]*-->\n)(.*?)(\n<!-- end of settings table -->)", re.S)

if __name__ == "__main__":
    text = README.read_text()
    updated = PATTERN.sub(lambda m: m.group(1) + settings_table() + m.group(3), text, count=1)
    README.write_text(updated)
    print("README.md settings table:", "updated" if updated != text else "already current")
