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
