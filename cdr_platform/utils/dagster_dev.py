"""A `dagster dev` of its own (webserver and daemon) on a free loopback port, and its GraphQL API.

Used by `make screenshots` and the end-to-end tests. It starts in a session of its own with
default signals, so SIGTERM stops it and every child (code server, runs); `stop()` says whether
it did within the grace period.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from cdr_platform.lib.settings import load_settings, process_environment
from cdr_platform.utils import dagster_instance
from cdr_platform.utils.signals import default_signals_in_child

_LOCATION = "{ workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError { __typename } } } } }"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DagsterDev:
    def __init__(self, dagster_home: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.log = log
        dagster_instance.prepare(dagster_home)  # the local instance: run queue limits, retries, retention
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(self.port)]
            + ["-w", "workspace.yaml"],
            cwd=load_settings().project_dir,
            env={**(env or process_environment()), "DAGSTER_HOME": str(dagster_home)},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=default_signals_in_child,  # stops on SIGTERM even if this process ignores it
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def graphql(self, query: str) -> dict:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query}).encode(),
            headers={"Content-Type": "application/json"},
        )
        return json.loads(urllib.request.urlopen(request, timeout=10).read())["data"]

    def wait_until_loaded(self, timeout_s: float = 180) -> dict:
        """The code location's entry once the webserver answers and has loaded it (or an error)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dagster dev exited: {self.log.read_text()[-2000:]}")
            try:
                entries = self.graphql(_LOCATION)["workspaceOrError"]["locationEntries"]
                if entries and entries[0]["locationOrLoadError"]:
                    return entries[0]["locationOrLoadError"]
            except (OSError, KeyError, TypeError):
                pass
            time.sleep(2)
        raise RuntimeError(
            f"dagster dev did not load the code location in {timeout_s:.0f} s: {self.log.read_text()[-2000:]}"
        )

    def stop(self, grace_s: float = 60) -> bool:
        """SIGTERM to its session; True if it stopped in time (else it is killed)."""
        if self.process.poll() is not None:
            return True
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(grace_s)
            return True
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            return False

    def __enter__(self) -> DagsterDev:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
