"""docker-compose.yml cannot run here; check its shape, its port bindings and its secrets."""

import re

import yaml

from cdr_platform.lib.settings import REPO_ROOT

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$", re.I)


def test_the_production_like_services_are_there():
    services = COMPOSE["services"]
    assert {"kafka", "sqlserver", "dagster-webserver", "dagster-daemon", "dagster-postgres"} <= set(services)
    assert "mssql/server:2022" in services["sqlserver"]["image"]
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert services["dagster-webserver"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert services["dagster-daemon"]["image"] == services["dagster-webserver"]["image"]
    assert (REPO_ROOT / "deploy" / "Dockerfile").exists()


def test_the_spark_cluster_runs_pyspark_s_own_master_and_worker_and_the_jobs_use_it():
    services = COMPOSE["services"]
    master, worker = services["spark-master"], services["spark-worker"]
    assert "org.apache.spark.deploy.master.Master" in master["command"][0]
    assert "org.apache.spark.deploy.worker.Worker spark://spark-master:7077" in worker["command"][0]
    for node in (master, worker):  # the project's image: the tasks import its Python package
        assert node["image"] == services["dagster-daemon"]["image"] and "bin/spark-class" in node["command"][0]
    daemon = services["dagster-daemon"]["environment"]
    assert daemon["CDR_SPARK_MASTER"] == "spark://spark-master:7077"
    assert "spark.driver.host" in daemon["CDR_SPARK_CONF"]  # executors reach the driver in the daemon


def test_every_published_port_is_bound_to_loopback():
    published = [p for s in COMPOSE["services"].values() for p in s.get("ports", [])]
    assert published
    for port in published:
        assert str(port).startswith("127.0.0.1:"), port


def _environment_items(service):
    env = service.get("environment", {})
    return env.items() if isinstance(env, dict) else (e.split("=", 1) for e in env)


def test_no_secret_is_written_in_the_file():
    env_example = (REPO_ROOT / ".env.example").read_text()
    for name, service in COMPOSE["services"].items():
        for key, value in _environment_items(service):
            if SECRET_NAME.search(key):
                # ${NAME:?...} (required) or ${NAME:-} (optional, empty by default): never a value
                match = re.fullmatch(r"\$\{(\w+)(:\?[^}]*|:-)?\}", str(value))
                assert match, f"{name}.{key} must come from the environment, not be written here"
                assert f"{match.group(1)}=" in env_example, f"{match.group(1)} missing from .env.example"
    assert not re.search(r"^\w*(PASSWORD|SECRET)\w*=\S+", env_example, re.M), "no value in .env.example"


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """deploy/Dockerfile as (instruction, arguments), continuation lines joined, comments dropped."""
    text = (REPO_ROOT / "deploy" / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined.splitlines() if line.strip()]


def test_the_image_installs_the_package_as_a_user_does_and_keeps_no_source_beside_it():
    steps = _dockerfile_instructions()
    runs = [args for kind, args in steps if kind == "RUN"]
    installs = [r for r in runs if re.search(r"pip install [^&]*\"/tmp/cdr_platform\[fast\]\"", r)]
    assert len(installs) == 1, "one `pip install` of the package's source, copied to /tmp/cdr_platform"
    install = installs[0]
    assert not re.search(r"\s(-e|--editable)\s", install)  # `pip install .`, not editable
    assert "rm -rf /tmp/cdr_platform" in install  # the source goes once installed
    # the working folder, where the compose services start, receives no project folder: the
    # installed package must find its own copy (and no CDR_PROJECT_DIR points elsewhere)
    workdir = next(i for i, (kind, _) in enumerate(steps) if kind == "WORKDIR")
    copied_after = [args.split()[0] for kind, args in steps[workdir:] if kind == "COPY"]
    assert not {"cdr_platform", "dbt_project", "powerbi", "stack", "."} & set(copied_after)
    assert "workspace.yaml" in copied_after  # the compose commands' `-w workspace.yaml`
    assert not any("CDR_PROJECT_DIR" in args for kind, args in steps if kind in ("ENV", "ARG"))
    for service in ("dagster-webserver", "dagster-daemon"):
        assert "CDR_PROJECT_DIR" not in COMPOSE["services"][service]["environment"]
    # the build loads the installed code location: a wheel missing a file fails the build
    assert any("from cdr_platform.definitions import defs" in r for r in runs[runs.index(install) :])
