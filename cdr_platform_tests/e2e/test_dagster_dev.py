"""`dagster dev` as a user starts it: the UI serves on 127.0.0.1 and the code location loads."""

import socket

from cdr_platform.utils.dagster_dev import DagsterDev

QUERY = """{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {
  __typename ... on RepositoryLocation { repositories { jobs { name } assetNodes { assetKey { path } } } }
  ... on PythonError { message } } } } } }"""


def test_dagster_dev_serves_the_code_location_on_loopback_and_stops_on_sigterm(tmp_path):
    dev = DagsterDev(tmp_path / "dagster_home", tmp_path / "dev.log")
    try:
        loaded = dev.wait_until_loaded()
        assert loaded["__typename"] == "RepositoryLocation", dev.graphql(QUERY)
        location = dev.graphql(QUERY)["workspaceOrError"]["locationEntries"][0]["locationOrLoadError"]
        repo = location["repositories"][0]
        jobs = {j["name"] for j in repo["jobs"]}
        assert {"cdr_pipeline", "generate_cdrs", "mediate_cdrs", "rate_cdrs", "bill_cdrs", "build_marts"} <= jobs
        keys = {"/".join(a["assetKey"]["path"]) for a in repo["assetNodes"]}
        assert {"raw_cdrs", "clean_cdrs", "error_cdrs", "rating_cdrs", "tariffs/tp_rates"} <= keys
        assert {"billing/billing_cdrs", "marts/fct_revenue_daily", "bi/dashboard", "powerbi/report"} <= keys
        with socket.socket() as s:  # nothing listens on the machine's other addresses
            assert s.connect_ex(("127.0.0.2", dev.port)) != 0
    finally:
        assert dev.stop(), "dagster dev did not stop on SIGTERM"
