"""`dagster dev` as a user starts it: the UI serves on 127.0.0.1 and the code location loads."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from cdr_platform.lib.settings import REPO_ROOT

QUERY = """{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {
  __typename ... on RepositoryLocation { repositories { jobs { name } assetNodes { assetKey { path } } } }
  ... on PythonError { message } } } } } }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dagster_dev_serves_the_code_location_on_loopback_and_stops_on_sigterm(tmp_path):
    port = _free_port()
    dagster = str(Path(sys.executable).parent / "dagster")
    # start_new_session + default signals: `dagster dev` then stops on SIGTERM with its children
    proc = subprocess.Popen(
        [dagster, "dev", "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
        stdout=open(tmp_path / "dev.log", "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    location = None
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and location is None:
            time.sleep(2)
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/graphql",
                    data=json.dumps({"query": QUERY}).encode(),
                    headers={"Content-Type": "application/json"},
                )
                entries = json.loads(urllib.request.urlopen(request, timeout=10).read())["data"]["workspaceOrError"][
                    "locationEntries"
                ]
                location = entries[0]["locationOrLoadError"] if entries else None
            except OSError:
                continue
        assert location is not None, (tmp_path / "dev.log").read_text()[-3000:]
        assert location["__typename"] == "RepositoryLocation", location
        repo = location["repositories"][0]
        assert {"cdr_pipeline", "generate_cdrs", "mediate_cdrs", "rate_cdrs"} <= {j["name"] for j in repo["jobs"]}
        keys = {"/".join(a["assetKey"]["path"]) for a in repo["assetNodes"]}
        assert {"raw_cdrs", "clean_cdrs", "error_cdrs", "rating_cdrs", "tariffs/tp_rates"} <= keys
        with socket.socket() as s:  # nothing listens on the machine's other addresses
            assert s.connect_ex(("127.0.0.2", port)) != 0
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError("dagster dev did not stop on SIGTERM") from None
