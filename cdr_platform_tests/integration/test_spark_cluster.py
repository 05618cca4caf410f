"""Mediation and rating on a Spark standalone cluster, the way the compose stack runs them.

A master and a worker started on loopback from PySpark's own `spark-class` (no Spark download):
the drivers submit to spark://127.0.0.1, the executors run the project's tasks. The same
messages mediated and the same day rated on local[2] must give the same rows.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pyspark
import pytest

from cdr_platform.defs.dbt.project import dbt_command
from cdr_platform.lib.ingest.generator import GeneratorConfig
from cdr_platform.lib.reference.subscribers import generate_subscribers
from cdr_platform.lib.reference.tables import SUBSCRIBERS_TABLE, subscriber_rows
from cdr_platform.lib.schema import CLEAN_COLUMNS
from cdr_platform.lib.settings import REPO_ROOT
from cdr_platform.lib.warehouse import replace_table
from cdr_platform.utils.signals import default_signals_in_child
from cdr_platform_tests.integration.mediation_support import MediationSandbox

pytestmark = pytest.mark.timeout(900)
SPARK_CLASS = Path(pyspark.__file__).parent / "bin" / "spark-class"
START = datetime(2026, 11, 20, 21, tzinfo=UTC)  # 22:00 local, for 4 hours: across local midnight


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def standalone_cluster(local_stack, tmp_path_factory):
    """spark://127.0.0.1:<port>: a master and one worker of 2 cores, stopped at the end."""
    folder = tmp_path_factory.mktemp("spark-cluster")
    port, master_ui, worker_ui = _free_port(), _free_port(), _free_port()
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_WORKER_DIR": str(folder / "work")}
    started = []
    try:
        for name, args in (
            (
                "master",
                [
                    "org.apache.spark.deploy.master.Master",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--webui-port",
                    str(master_ui),
                ],
            ),
            (
                "worker",
                [
                    "org.apache.spark.deploy.worker.Worker",
                    f"spark://127.0.0.1:{port}",
                    "--host",
                    "127.0.0.1",
                    "--cores",
                    "2",
                    "--memory",
                    "2g",
                    "--webui-port",
                    str(worker_ui),
                ],
            ),
        ):
            log = (folder / f"{name}.log").open("w")
            started.append(
                subprocess.Popen(
                    [str(SPARK_CLASS), *args],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=default_signals_in_child,  # they stop on SIGTERM, whatever this process ignores
                )
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                state = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{master_ui}/json/", timeout=5).read())
                if state.get("aliveworkers", 0) >= 1:
                    break
            except OSError:
                pass
            time.sleep(1)
        else:
            raise AssertionError("the worker did not register: " + (folder / "worker.log").read_text()[-2000:])
        yield f"spark://127.0.0.1:{port}"
    finally:
        for process in reversed(started):
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def _rate_command(day: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cdr_platform.cli",
        "rate",
        "--day",
        day,
    ]  # the local day whose calls run past midnight


def test_mediation_and_rating_on_a_standalone_cluster_give_what_local_mode_gives(
    local_stack, standalone_cluster, tmp_path
):
    conninfo = local_stack.warehouse.conninfo()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("create schema if not exists reference")
        replace_table(conn, SUBSCRIBERS_TABLE, subscriber_rows(generate_subscribers()))
    tariffs = f"tar_{uuid.uuid4().hex[:8]}"
    results = {}
    boxes = []
    try:
        envs = {}
        for mode, master in (("local", "local[2]"), ("cluster", standalone_cluster)):
            box = MediationSandbox.create(local_stack, tmp_path / mode)
            boxes.append(box)
            envs[mode] = box.env(
                CDR_SPARK_MASTER=master, CDR_RATING_SCHEMA=f"rat_{box.schema}", CDR_TARIFF_SCHEMA=tariffs
            )
            box.produce(GeneratorConfig(count=4_000, seed=81, error_rate=0.05, start_time=START, span_hours=4))
        subprocess.run(  # one tariff for both, seeded once
            dbt_command("seed", "--quiet", "--select", "tariff", target_path=tmp_path / "dbt"),
            check=True,
            env=envs["local"],
            timeout=300,
        )
        # the two modes side by side, each in its own topics, schemas and checkpoint: mediation, then
        # rating of the local day whose calls run past midnight
        for step in (lambda box: box.command(), lambda box: _rate_command("2026-11-20")):
            running = {
                mode: subprocess.Popen(
                    step(box), env=envs[mode], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                )
                for mode, box in zip(envs, boxes)
            }
            for mode, proc in running.items():
                _, stderr = proc.communicate(timeout=600)
                assert proc.returncode == 0, (mode, stderr[-3000:])
        for mode, box in zip(envs, boxes):
            columns = ", ".join(c for c in CLEAN_COLUMNS)
            results[mode] = {
                "clean": box.query(f"select {columns} from {box.tables.clean} order by record_id"),
                "ledger": box.ledger_totals(),
                "rejects": sorted((k.split(":", 1)[1], tuple(v["reason_codes"])) for k, v in box.rejects().items()),
                "rated": box.query(
                    f"select record_id, rating_day, category, destination_id, cost, connect_fee"
                    f" from rat_{box.schema}.rating_cdrs order by record_id"
                ),
                "suspense": box.query(f"select record_id, reason from rat_{box.schema}.rating_suspense order by 1"),
            }
        local, cluster = results["local"], results["cluster"]
        assert local["clean"] and local["rated"]
        for part in ("clean", "ledger", "rejects", "rated", "suspense"):
            assert cluster[part] == local[part], part
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            for box in boxes:
                conn.execute(f"drop schema if exists rat_{box.schema} cascade")
            conn.execute(f"drop schema if exists {tariffs} cascade")
        for box in boxes:
            box.drop()
