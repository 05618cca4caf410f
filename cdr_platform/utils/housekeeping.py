"""Keep the local stack's disk bounded under traffic that never stops: logs, and Spark's scratch.

- Logs (`.stack/logs/*.log`, PostgreSQL's log): one over `max_bytes` is copied to `<name>.1`
  (older copies shift up to `keep`) and truncated in place, as logrotate's copytruncate does: the
  broker and PostgreSQL hold their log open in append mode, so they write on at the new end.
  The demo's per-run logs (`demo-*.log`) older than `keep_days` are deleted.
- Spark's scratch (`spark-*` folders in the temp directory, `blockmgr-*` inside): a driver killed
  with SIGKILL leaves its folder behind; one untouched for `stale_hours` is removed. A running
  job keeps its folder fresh.
Dagster's run storage has its own retention (defs/operations/housekeeping.py).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Swept:
    rotated: list[str] = field(default_factory=list)
    deleted_files: list[str] = field(default_factory=list)
    deleted_dirs: list[str] = field(default_factory=list)
    freed_bytes: int = 0


def rotate_log(path: Path, max_bytes: int, keep: int = 3) -> bool:
    """Copy-truncate `path` if it is over `max_bytes`; keep `keep` older copies."""
    if not path.is_file() or path.stat().st_size <= max_bytes:
        return False
    for n in range(keep - 1, 0, -1):
        older = path.with_name(f"{path.name}.{n}")
        if older.exists():
            older.replace(path.with_name(f"{path.name}.{n + 1}"))
    shutil.copyfile(path, path.with_name(f"{path.name}.1"))
    with path.open("r+b") as handle:
        handle.truncate(0)
    return True


def _newest_mtime(root: Path) -> float:
    newest = root.stat().st_mtime
    for p in root.rglob("*"):
        try:
            newest = max(newest, p.stat().st_mtime)
        except OSError:
            continue
    return newest


def _size(root: Path) -> int:
    if root.is_file():
        return root.stat().st_size
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def sweep(
    log_files: list[Path],
    demo_logs: Path | None = None,
    *,
    max_log_bytes: int = 100 * 2**20,
    keep_days: float = 7,
    stale_hours: float = 24,
    spark_scratch: Path | None = None,
    now: float | None = None,
) -> Swept:
    now = now or time.time()
    swept = Swept()
    for log in log_files:
        if rotate_log(log, max_log_bytes):  # copied to .1, the oldest copy dropped: not counted as freed
            swept.rotated.append(str(log))
    if demo_logs and demo_logs.is_dir():
        for old in demo_logs.glob("demo-*.log"):
            if now - old.stat().st_mtime > keep_days * 86_400:
                swept.freed_bytes += old.stat().st_size
                old.unlink()
                swept.deleted_files.append(str(old))
    scratch = spark_scratch or Path(tempfile.gettempdir())
    for folder in scratch.glob("spark-*"):
        try:
            if folder.is_dir() and now - _newest_mtime(folder) > stale_hours * 3600:
                size = _size(folder)
                shutil.rmtree(folder)
                swept.deleted_dirs.append(str(folder))
                swept.freed_bytes += size
        except OSError:  # in use or gone meanwhile: next time
            continue
    return swept
