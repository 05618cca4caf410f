"""Headless Chromium (Debian's `chromium`): a page's DOM after its scripts ran, and a screenshot.

Used by the dashboard's browser test and by `make screenshots`. Each call is a fresh browser with
a throwaway profile and no background networking (this machine's network is closed, and a
browser that keeps trying to reach Google's hosts only slows down).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = (
    "--headless=new",
    "--no-sandbox",  # as root, in a container
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


class BrowserError(RuntimeError):
    pass


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise BrowserError("chromium is not installed: apt-get install chromium (make setup does it as root)")
    return found


def _run(url: str, extra: list[str], budget_ms: int, timeout_s: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="cdr-chromium-") as profile:
        # the virtual time budget lets the page's scripts (and their timers) run before the capture
        command = [chromium(), *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", *extra, url]
        result = subprocess.run(command, capture_output=True, timeout=timeout_s)
    if result.returncode != 0:
        raise BrowserError(f"chromium failed on {url}: {result.stderr.decode(errors='replace')[-500:]}")
    return result


def dom(url: str, budget_ms: int = 15_000, timeout_s: float = 120) -> str:
    """The page's DOM once its scripts ran."""
    return _run(url, ["--dump-dom"], budget_ms, timeout_s).stdout.decode("utf-8", errors="replace")


def screenshot(url: str, path: Path, size: tuple[int, int] = (1400, 2000), budget_ms: int = 15_000) -> Path:
    """A PNG of the page at `size` (width, height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _run(url, [f"--window-size={size[0]},{size[1]}", f"--screenshot={path}"], budget_ms, 120)
    if not path.is_file():
        raise BrowserError(f"chromium wrote no screenshot of {url}")
    return path
