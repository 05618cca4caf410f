"""Production (CDR_ENV=prod) is a deployment an operator can trust: no synthetic traffic in its code
location (raw-cdrs is the network's, an external asset, and the lineage to the Power BI tables stays
whole), the operator's reference files required, `cdr demo` and `cdr generate` refused, and unsafe
settings refused, every problem listed at once and no secret shown.

The code location is loaded in a child process per environment (the settings are read when it
loads), which prints its asset graph, jobs, sensors and schedules as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import dagster as dg
import pytest
from click.testing import CliRunner

from cdr_platform.cli import cdr
from cdr_platform.lib import asset_keys
from cdr_platform.lib.settings import load_settings, production_problems

SAFE_PRODUCTION = {
    "CDR_ENV": "prod",
    "CDR_WAREHOUSE_USER": "cdr_etl",
    "CDR_WAREHOUSE_PASSWORD": "w4rehouse-SECRET-value",
    "CDR_WAREHOUSE_TRUST_SERVER_CERTIFICATE": "false",
    "CDR_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "CDR_KAFKA_SASL_USERNAME": "cdr-platform",
    "CDR_KAFKA_SASL_PASSWORD": "k4fka-SECRET-value",
}
SECRET_VALUES = ("w4rehouse-SECRET-value", "k4fka-SECRET-value")
# what the tests decide: taken out of the inherited environment first
DECIDED = {*SAFE_PRODUCTION, "CDR_REFERENCE_DIR", "CDR_FAILURE_FILE"}

DUMP = """
import json
from cdr_platform.definitions import defs

graph = defs.resolve_asset_graph()
assets = {}
for key in graph.get_all_asset_keys():
    node = graph.get(key)
    assets[key.to_user_string()] = {
        "materializable": node.is_materializable,
        "external": node.is_external,
        "parents": sorted(parent.to_user_string() for parent in node.parent_keys),
        "config": sorted(getattr(node.assets_def.op.config_field.config_type, "fields", None) or [])
        if node.is_executable
        else [],
    }
print("GRAPH " + json.dumps({
    "assets": assets,
    "checks": sorted(f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys),
    "jobs": sorted(job.name for job in defs.resolve_all_job_defs()),
    "sensors": sorted(sensor.name for sensor in defs.sensors),
    "schedules": sorted(schedule.name for schedule in defs.schedules),
}))
"""


def environment(reference_dir, **overrides: str | None) -> dict[str, str]:
    """This process's environment with a safe production's settings, then `overrides` (None: unset)."""
    env = {name: value for name, value in os.environ.items() if name not in DECIDED}
    env.update(SAFE_PRODUCTION, CDR_REFERENCE_DIR=str(reference_dir))
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def use_environment(monkeypatch, env: dict[str, str]) -> None:
    """Make `env` this process's environment for the test (the CLI and the demo run in it)."""
    for name in DECIDED:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def load_code_location(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", DUMP], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def graph_of(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    return json.loads(next(line for line in out.splitlines() if line.startswith("GRAPH "))[len("GRAPH ") :])


@pytest.fixture(scope="module")
def graphs(tmp_path_factory) -> dict[str, dict]:
    """The code location of each environment, loaded side by side."""
    reference_dir = tmp_path_factory.mktemp("reference")
    loading = {
        "prod": load_code_location(environment(reference_dir)),
        "local": load_code_location(environment(reference_dir, CDR_ENV="local")),
    }
    return {name: graph_of(process) for name, process in loading.items()}


def ancestors(assets: dict, key: str) -> set[str]:
    found, todo = set(), list(assets[key]["parents"])
    while todo:
        parent = todo.pop()
        if parent not in found:
            found.add(parent)
            todo.extend(assets[parent]["parents"])
    return found


RAW_CDRS = asset_keys.user_string(asset_keys.RAW_CDRS)
SUBSCRIBERS = asset_keys.user_string(asset_keys.SUBSCRIBERS)
COLLECTED_FILES = asset_keys.user_string(asset_keys.COLLECTION_FILES)  # the network elements' files
POWER_BI = [asset_keys.user_string(k) for k in (asset_keys.SEMANTIC_MODEL, asset_keys.POWERBI_REPORT)]
MEDIATED = [asset_keys.user_string(k) for k in (asset_keys.CLEAN_CDRS, asset_keys.ERROR_CDRS, asset_keys.REJECT_STORE)]
SYNTHETIC_JOBS = {"generate_cdrs", "cdr_pipeline"}
GENERATOR_CHECK = f"{RAW_CDRS}:raw_cdrs_offsets_account_for_every_record"


def test_production_has_no_synthetic_traffic_and_raw_cdrs_is_the_networks_external_asset(graphs):
    prod = graphs["prod"]
    assets = prod["assets"]
    raw = assets[RAW_CDRS]
    # fed by the network: directly, and through the collected files of its elements
    assert raw == {"materializable": False, "external": True, "parents": [COLLECTED_FILES], "config": []}
    assert "collect_landing_files" in prod["jobs"] and "landing_folder_sensor" in prod["sensors"]
    assert not SYNTHETIC_JOBS & set(prod["jobs"])
    assert GENERATOR_CHECK not in prod["checks"]
    assert not any("generat" in name for name in prod["jobs"] + prod["sensors"] + prod["schedules"])
    # the operator's reference files: the reference assets are there, the generator's config is not
    for key in (asset_keys.NUMBERING_PLAN, asset_keys.CELL_CATALOGUE, asset_keys.SUBSCRIBERS):
        assert assets[asset_keys.user_string(key)]["materializable"]
        assert assets[asset_keys.user_string(key)]["config"] == []
    assert "load_reference_data" in prod["jobs"]


def test_production_keeps_the_lineage_from_raw_cdrs_to_the_power_bi_tables(graphs):
    prod = graphs["prod"]
    assets = prod["assets"]
    for mediated in MEDIATED:
        assert assets[mediated]["parents"] == [RAW_CDRS]
    marts = [key for key in assets if key.startswith(asset_keys.MARTS_PREFIX + "/")]
    assert marts and all(assets[mart]["materializable"] for mart in marts)
    for key in POWER_BI:
        assert assets[key]["materializable"]
        assert RAW_CDRS in ancestors(assets, key)
        assert set(marts) & ancestors(assets, key)
    assert {"raw_cdrs_sensor", "marts_sensor"} <= set(prod["sensors"])
    assert {"mediate_cdrs", "rate_cdrs", "bill_cdrs", "build_marts", "publish_bi"} <= set(prod["jobs"])
    # the same graph as locally but for the generator's own edge (raw_cdrs <- subscribers)
    local = graphs["local"]["assets"]
    assert set(assets) == set(local)
    assert {k: v["parents"] for k, v in assets.items() if k != RAW_CDRS} == {
        k: v["parents"] for k, v in local.items() if k != RAW_CDRS
    }


def test_the_local_code_location_still_has_the_generator(graphs):
    local = graphs["local"]
    raw = local["assets"][RAW_CDRS]
    assert raw["materializable"] and not raw["external"] and "error_rate" in raw["config"]
    assert raw["parents"] == sorted([COLLECTED_FILES, SUBSCRIBERS])
    assert local["assets"][SUBSCRIBERS]["config"] == ["count", "seed"]  # the generated subscribers'
    assert SYNTHETIC_JOBS | {"load_reference_data"} <= set(local["jobs"])
    assert GENERATOR_CHECK in local["checks"]


# -- unsafe settings -----------------------------------------------------------------------------

PROBLEMS = {
    "empty warehouse password": ({"CDR_WAREHOUSE_PASSWORD": None}, "CDR_WAREHOUSE_PASSWORD"),
    "the sa login": ({"CDR_WAREHOUSE_USER": "SA"}, "CDR_WAREHOUSE_USER"),
    "the server certificate trusted": (
        {"CDR_WAREHOUSE_TRUST_SERVER_CERTIFICATE": "true"},
        "CDR_WAREHOUSE_TRUST_SERVER_CERTIFICATE",
    ),
    "Kafka in clear": ({"CDR_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}, "CDR_KAFKA_SECURITY_PROTOCOL"),
    "SASL credentials in clear": ({"CDR_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "CDR_KAFKA_SECURITY_PROTOCOL"),
    "SASL without its user": ({"CDR_KAFKA_SASL_USERNAME": None}, "CDR_KAFKA_SASL_USERNAME"),
    "SASL without its password": ({"CDR_KAFKA_SASL_PASSWORD": None}, "CDR_KAFKA_SASL_PASSWORD"),
    "brokers' host names unchecked": ({"CDR_KAFKA_SSL_CHECK_HOSTNAME": "false"}, "CDR_KAFKA_SSL_CHECK_HOSTNAME"),
}


@pytest.mark.parametrize("problem", PROBLEMS, ids=list(PROBLEMS))
def test_each_unsafe_setting_alone_is_reported_naming_its_variable(problem, tmp_path):
    overrides, variable = PROBLEMS[problem]
    problems = production_problems(load_settings(environment(tmp_path, **overrides)))
    assert len(problems) == 1 and problems[0].startswith(variable + " "), problems
    assert not any(secret in problems[0] for secret in SECRET_VALUES)


def test_a_safe_production_has_no_problem_and_ssl_needs_no_sasl_user(tmp_path):
    assert production_problems(load_settings(environment(tmp_path))) == []
    ssl = environment(tmp_path, CDR_KAFKA_SECURITY_PROTOCOL="SSL", CDR_KAFKA_SASL_USERNAME=None)
    assert production_problems(load_settings({**ssl, "CDR_KAFKA_SASL_PASSWORD": ""})) == []


UNSAFE = {
    "CDR_WAREHOUSE_PASSWORD": None,
    "CDR_WAREHOUSE_USER": "sa",
    "CDR_WAREHOUSE_TRUST_SERVER_CERTIFICATE": "true",
    "CDR_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "CDR_KAFKA_SASL_USERNAME": None,
}


def test_the_production_code_location_refuses_unsafe_settings_listing_every_problem(tmp_path):
    process = load_code_location(environment(tmp_path, CDR_REFERENCE_DIR=None, **UNSAFE))
    out, err = process.communicate(timeout=300)
    assert process.returncode != 0 and "GRAPH" not in out
    assert "CDR_ENV=prod refuses to start with unsafe settings (6 problem(s))" in err
    for variable in (*UNSAFE, "CDR_REFERENCE_DIR"):
        assert f"  - {variable} " in err
    assert not any(secret in out + err for secret in SECRET_VALUES)


def test_the_cli_refuses_unsafe_production_settings_listing_every_problem(tmp_path, monkeypatch):
    use_environment(monkeypatch, environment(tmp_path, CDR_REFERENCE_DIR=None, **UNSAFE))
    for command in (["rejects", "list"], ["settings", "--check"]):
        result = CliRunner().invoke(cdr, command)
        assert result.exit_code == 1, result.output
        assert "(5 problem(s))" in result.output  # CDR_REFERENCE_DIR is the code location's own need
        assert all(f"  - {variable} " in result.output for variable in UNSAFE)
        assert not any(secret in result.output for secret in SECRET_VALUES)
    # help and the settings' documentation whatever the settings
    assert CliRunner().invoke(cdr, ["rejects", "list", "--help"]).exit_code == 0
    assert CliRunner().invoke(cdr, ["settings"]).exit_code == 0


# -- synthetic traffic refused, reference files required ---------------------------------------


@pytest.mark.parametrize("command", [["demo", "--count", "10"], ["generate", "--count", "10"]])
def test_demo_and_generate_refuse_production_in_one_line(command, tmp_path, monkeypatch):
    use_environment(monkeypatch, environment(tmp_path))
    result = CliRunner().invoke(cdr, command)
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"cdr {command[0]} refuses to run with CDR_ENV=prod: it writes synthetic CDRs, and production's "
        "raw-cdrs carries the network's only"
    )


def test_run_demo_itself_refuses_production(tmp_path, monkeypatch, capsys):
    from cdr_platform.demo import run_demo

    use_environment(monkeypatch, environment(tmp_path, **UNSAFE))  # refused before anything else
    assert run_demo(count=10, seed=1, producer="kafka-python") == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "CDR_ENV=prod" in err


def test_a_production_reference_asset_fails_naming_the_missing_file_and_never_generates(tmp_path):
    from cdr_platform.defs.ingest.assets import reference_assets
    from cdr_platform.defs.resources import ReferenceFilesResource, WarehouseResource, resources_for
    from cdr_platform.utils.environment_helpers import Environment

    class Unreachable(WarehouseResource):
        def connect(self):
            raise AssertionError("the warehouse was reached: generated data would have been loaded")

    settings = load_settings({})  # local defaults: no secret, so no EnvVar to resolve
    resources = {
        **resources_for(settings, Environment.LOCAL),
        "warehouse": Unreachable.for_settings(settings),
        "reference_files": ReferenceFilesResource(directory=str(tmp_path)),  # an empty folder
    }
    numbering_plan, _, subscribers = reference_assets(generated=False)
    for asset, file_name in ((numbering_plan, "numbering_plan.csv"), (subscribers, "subscribers.csv")):
        result = dg.materialize([asset], resources=resources, raise_on_error=False)
        assert not result.success
        failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
        assert failure.description.startswith(f"no {file_name} in CDR_REFERENCE_DIR ({tmp_path})")
        assert "never generated data" in failure.description
