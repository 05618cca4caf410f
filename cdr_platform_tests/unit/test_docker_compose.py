"""docker-compose.yml cannot run here (no Docker engine): check what an operator relies on - its
shape against the Compose Specification's schema, pinned images, restart/health/memory of every
long-running service, state on named volumes, Kafka on SASL_SSL with the CDR topics' settings, no
`sa` and no trusted-anyway certificate for the application, the UI behind an authenticating
proxy, and no secret written in the files."""

import copy
import importlib.resources
import json
import os
import re
import subprocess
import tomllib

import jsonschema
import pytest
import yaml

from cdr_platform.lib.settings import REPO_ROOT, SETTINGS_BY_NAME, WAREHOUSE_SCHEMAS

DEPLOY = REPO_ROOT / "deploy"
COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$", re.I)
APP_SERVICES = ("dagster-webserver", "dagster-daemon")  # the Dagster code location: every run starts here
ONE_SHOT_SERVICES = {"kafka-init", "sqlserver-init"}
BROKERS = ("kafka", "kafka-2", "kafka-3")

# -- Compose's variable interpolation, enough for this file: ${NAME}, ${NAME:-default},
# ${NAME-default}, ${NAME:?message}, ${NAME?message}, $NAME and $$ (a literal $)
_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}|\$(\w+)")


def _required_variables(text: str) -> set[str]:
    return {m.group(1) for m in _VARIABLE.finditer(text) if m.group(2) in (":?", "?")}


def _interpolate(node, env: dict[str, str]):
    if isinstance(node, dict):
        return {k: _interpolate(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, env) for v in node]
    if not isinstance(node, str):
        return node

    def substitute(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1) or m.group(4), m.group(2), m.group(3)
        value = env.get(name)
        if op in (":-", ":?"):
            value = value or None  # the colon forms treat an empty variable as unset
        if op in (":?", "?") and value is None:
            raise KeyError(f"{name} is required: {arg}")
        return value if value is not None else (arg if op in (":-", "-") else "")

    return _VARIABLE.sub(substitute, node)


def _env_file(path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


REQUIRED = _required_variables((REPO_ROOT / "docker-compose.yml").read_text())
CLUSTER_ENV = _env_file(DEPLOY / "cluster.env")


def resolved(overrides: dict[str, str] | None = None) -> dict:
    """The compose file as Compose sees it: every required variable given a value (a stand-in),
    the others at their defaults unless `overrides` sets them (a --env-file)."""
    env = {name: f"stand-in-for-{name}" for name in REQUIRED} | (overrides or {})
    return _interpolate(COMPOSE, env)


def active_services(config: dict) -> dict[str, dict]:
    """The services `docker compose up` starts: those without profiles, and those of
    COMPOSE_PROFILES when the env files set it."""
    profiles = set(filter(None, CLUSTER_ENV.get("COMPOSE_PROFILES", "").split(","))) if config is CLUSTERED else set()
    return {n: s for n, s in config["services"].items() if not s.get("profiles") or set(s["profiles"]) & profiles}


DEFAULT = resolved()
CLUSTERED = resolved(CLUSTER_ENV)


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    return dict(env) if isinstance(env, dict) else dict(e.split("=", 1) for e in env)


def _command_text(service: dict) -> str:
    command = service.get("command", "")
    return command if isinstance(command, str) else " ".join(command)


def _volume_mounts(service: dict) -> list[tuple[str, str]]:
    """(source, target) of each volume entry, short or long syntax."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        mounts.append((source, target))
    return mounts


def _secret_path(service: dict, path: str) -> str:
    """The compose secret mounted at `path` (/run/secrets/<name>) in `service`, its file on the host."""
    name = path.removeprefix("/run/secrets/")
    assert path.startswith("/run/secrets/"), f"{path} is not a compose secret"
    names = [s if isinstance(s, str) else s["source"] for s in service.get("secrets", [])]
    assert name in names, f"secret {name} is not given to this service"
    return COMPOSE["secrets"][name]["file"]


# -- the stack's shape


def test_the_production_like_services_are_there():
    services = COMPOSE["services"]
    assert {"kafka", "sqlserver", "dagster-webserver", "dagster-daemon", "dagster-postgres"} <= set(services)
    assert {"kafka-init", "sqlserver-init", "dagster-proxy"} <= set(services)
    assert "mssql/server:2022" in services["sqlserver"]["image"]
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert services["dagster-webserver"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert services["dagster-daemon"]["image"] == services["dagster-webserver"]["image"]
    assert (REPO_ROOT / "deploy" / "Dockerfile").exists()


def test_the_compose_file_is_valid_against_the_compose_specification_schema():
    # the Compose Specification's JSON schema as check-jsonschema vendors it (its --builtin-schema
    # vendor.compose-spec), validated with the schema's own draft (2020-12)
    vendored = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendored.joinpath("compose-spec.json").read_text())
    assert schema["title"] == "Compose Specification"
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    for config in (COMPOSE, DEFAULT, CLUSTERED):  # as written, and as interpolated
        errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
        assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    # and the schema does bite: a misspelt service key is refused
    broken = copy.deepcopy(COMPOSE)
    broken["services"]["kafka"]["healthchek"] = broken["services"]["kafka"].pop("healthcheck")
    assert any("healthchek" in e.message for e in validator.iter_errors(broken))


def test_the_spark_cluster_runs_pyspark_s_own_master_and_worker_and_the_jobs_use_it():
    services = COMPOSE["services"]
    master, worker = services["spark-master"], services["spark-worker"]
    assert "org.apache.spark.deploy.master.Master" in _command_text(master)
    assert "org.apache.spark.deploy.worker.Worker spark://spark-master:7077" in _command_text(worker)
    for node in (master, worker):  # the project's image: the tasks import its Python package
        assert node["image"] == services["dagster-daemon"]["image"] and "bin/spark-class" in _command_text(node)
    daemon = services["dagster-daemon"]["environment"]
    assert daemon["CDR_SPARK_MASTER"] == "spark://spark-master:7077"
    assert "spark.driver.host" in daemon["CDR_SPARK_CONF"]  # executors reach the driver in the daemon


def test_every_image_has_an_exact_version_tag_and_the_project_s_is_the_package_version():
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name, service in COMPOSE["services"].items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert "latest" not in tag, f"{name}: {image} floats"
        # an exact release: major.minor.patch (PostgreSQL's are major.minor), or SQL Server's
        # cumulative update (2022-CU26-ubuntu-22.04); never a bare major (postgres:16, caddy:2)
        exact = r"\d+\.\d+" if repository == "postgres" else r"\d+\.\d+\.\d+"
        assert re.match(rf"{exact}(-[a-z0-9.]+)?$", tag) or re.fullmatch(
            r"\d{4}-CU\d+(-GDR\d+)?-ubuntu-\d+\.\d+", tag
        ), f"{name}: {image} is not pinned to a release"
    assert COMPOSE["services"]["dagster-daemon"]["image"] == f"cdr-platform:{version}"


def test_every_long_running_service_restarts_has_a_health_check_and_a_memory_limit():
    one_shot = {n for n, s in COMPOSE["services"].items() if s.get("restart") == "no"}
    assert one_shot == ONE_SHOT_SERVICES, "only the init services may stop for good"
    for name, service in COMPOSE["services"].items():
        limit = service.get("mem_limit") or service.get("deploy", {}).get("resources", {}).get("limits", {}).get(
            "memory"
        )
        assert limit, f"{name} has no memory limit"
        if name in ONE_SHOT_SERVICES:
            continue
        assert service.get("restart") in ("always", "unless-stopped"), f"{name} is not restarted"
        check = service.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name} has no health check"
    # the long-running services wait for the one-shots to have finished well
    for name in APP_SERVICES:
        depends = COMPOSE["services"][name]["depends_on"]
        for init in ONE_SHOT_SERVICES:
            assert depends[init]["condition"] == "service_completed_successfully"


def test_the_mediation_checkpoint_and_dagster_home_are_on_named_volumes():
    named = set(COMPOSE["volumes"])
    # the daemon launches the runs: the mediation stream's driver writes its checkpoint there
    assert "CDR_MEDIATION_CHECKPOINT" in DEFAULT["services"]["dagster-daemon"]["environment"]
    for name, service in DEFAULT["services"].items():
        env = _environment(service)
        for variable in ("CDR_MEDIATION_CHECKPOINT", "DAGSTER_HOME"):
            if variable not in env:
                continue
            path = env[variable].rstrip("/") + "/"
            holders = [(s, t) for s, t in _volume_mounts(service) if path.startswith(t.rstrip("/") + "/")]
            assert holders, f"{name}: {variable}={env[variable]} is in the container's own layer"
            # the innermost mount holding it decides where it lives
            source, _ = max(holders, key=lambda st: len(st[1]))
            assert source in named, f"{name}: {variable} is on {source!r}, not a named volume"
    for name in APP_SERVICES:
        assert _environment(DEFAULT["services"][name])["DAGSTER_HOME"] == "/opt/dagster/home"
    # Kafka's log too: on the volume, not in the image's default /tmp/kraft-combined-logs
    for broker in BROKERS:
        service = CLUSTERED["services"][broker]
        log_dirs = _environment(service)["KAFKA_LOG_DIRS"]
        assert {t: s for s, t in _volume_mounts(service)}[log_dirs] in named


# -- Kafka


def _listeners(spec: str) -> dict[str, str]:
    """NAME://host:port,... as {NAME: host:port}."""
    return dict(entry.split("://", 1) for entry in spec.split(","))


def test_the_platform_s_kafka_clients_use_sasl_ssl_scram_and_verify_the_brokers_against_a_mounted_ca():
    for name in APP_SERVICES:
        service = DEFAULT["services"][name]
        env = _environment(service)
        raw = _environment(COMPOSE["services"][name])
        assert env["CDR_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["CDR_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert env["CDR_KAFKA_SASL_USERNAME"]
        assert raw["CDR_KAFKA_SASL_PASSWORD"].startswith("${CDR_KAFKA_SASL_PASSWORD:?")
        assert env["CDR_KAFKA_SSL_CHECK_HOSTNAME"] == "true"
        assert _secret_path(service, env["CDR_KAFKA_SSL_CA_FILE"]).startswith("./deploy/tls/")
        # the address they bootstrap from is a SASL_SSL listener of the broker
        broker = _environment(DEFAULT["services"]["kafka"])
        protocols = dict(p.split(":") for p in broker["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
        advertised = {
            address: protocols[listener]
            for listener, address in _listeners(broker["KAFKA_ADVERTISED_LISTENERS"]).items()
        }
        for address in env["CDR_KAFKA_BOOTSTRAP_SERVERS"].split(","):
            assert advertised.get(address) == "SASL_SSL", address
        # every CDR_* variable given to the code location is a declared setting (no typo goes unnoticed)
        unknown = {k for k in env if k.startswith("CDR_") and k not in SETTINGS_BY_NAME}
        assert not unknown, unknown


def test_the_brokers_serve_clients_on_sasl_ssl_with_a_pem_keystore_and_keep_plaintext_on_their_own_network():
    networks = COMPOSE["networks"]
    assert networks["kafka-internal"]["internal"] is True
    on_internal = {n for n, s in COMPOSE["services"].items() if "kafka-internal" in (s.get("networks") or {})}
    assert on_internal == {*BROKERS, "kafka-init"}, "nothing but the brokers and kafka-init on their network"
    for broker in BROKERS:
        service = CLUSTERED["services"][broker]
        env = _environment(service)
        protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
        aliases = service["networks"]["kafka-internal"]["aliases"]
        for listener, address in _listeners(env["KAFKA_LISTENERS"]).items():
            if protocols[listener] == "PLAINTEXT":
                # bound to the broker's alias on kafka-internal, so unreachable from the default network
                assert address.rsplit(":", 1)[0] in aliases, f"{broker}: {listener} listens on {address}"
            else:
                assert protocols[listener] == "SASL_SSL", f"{broker}: {listener} is {protocols[listener]}"
        assert protocols[env["KAFKA_INTER_BROKER_LISTENER_NAME"]] == "PLAINTEXT"
        assert protocols[env["KAFKA_CONTROLLER_LISTENER_NAMES"]] == "PLAINTEXT"
        # the image's start script takes a listener named *SSL:// for a JKS keystore with a password
        assert "SSL://" not in env["KAFKA_ADVERTISED_LISTENERS"] and "SASL_" not in env["KAFKA_ADVERTISED_LISTENERS"]
        assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
        for listener in (name for name, protocol in protocols.items() if protocol == "SASL_SSL"):
            key = f"KAFKA_LISTENER_NAME_{listener}_SCRAM___SHA___512_SASL_JAAS_CONFIG"
            assert env[key].startswith("org.apache.kafka.common.security.scram.ScramLoginModule required")
            assert "=" not in env[key]  # the image's start script drops such a value
        assert env["KAFKA_SSL_KEYSTORE_TYPE"] == env["KAFKA_SSL_TRUSTSTORE_TYPE"] == "PEM"
        assert _secret_path(service, env["KAFKA_SSL_KEYSTORE_LOCATION"]).startswith("./deploy/tls/")
        assert _secret_path(service, env["KAFKA_SSL_TRUSTSTORE_LOCATION"]).startswith("./deploy/tls/")
        assert "KAFKA_SSL_KEYSTORE_PASSWORD" not in env  # Kafka refuses a store password with PEM
        assert COMPOSE["services"][broker]["environment"]["KAFKA_SSL_KEY_PASSWORD"].startswith("${")
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


@pytest.mark.parametrize("preset", ["one broker", "cluster"])
def test_broker_quorum_and_replication_settings_agree_with_the_number_of_brokers(preset):
    config = DEFAULT if preset == "one broker" else CLUSTERED
    active = active_services(config)
    brokers = [n for n in BROKERS if n in active]
    assert len(brokers) == (1 if preset == "one broker" else 3)
    replicas = int(_environment(active["kafka-init"])["CDR_TOPIC_REPLICATION_FACTOR"])
    in_sync = int(_environment(active["kafka-init"])["CDR_TOPIC_MIN_INSYNC_REPLICAS"])
    assert replicas == len(brokers)
    assert in_sync == (1 if replicas == 1 else replicas - 1)  # a broker may be down, no write lost
    node_ids = set()
    for broker in brokers:
        env = _environment(active[broker])
        node_ids.add(env["KAFKA_NODE_ID"])
        voters = dict(v.split("@") for v in env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(","))
        assert set(voters) == {_environment(active[b])["KAFKA_NODE_ID"] for b in brokers}
        assert voters[env["KAFKA_NODE_ID"]] == _listeners(env["KAFKA_LISTENERS"])["CONTROLLER"]
        for key in (
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
            "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR",
            "KAFKA_DEFAULT_REPLICATION_FACTOR",
        ):
            assert int(env[key]) == replicas, key
        for key in ("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR"):
            assert int(env[key]) == in_sync, key
        assert int(env["KAFKA_MIN_INSYNC_REPLICAS"]) == in_sync
        assert env["CLUSTER_ID"] == _environment(active["kafka"])["CLUSTER_ID"]
    assert len(node_ids) == len(brokers)
    for name in APP_SERVICES:
        env = _environment(active[name])
        assert (int(env["CDR_TOPIC_REPLICATION_FACTOR"]), int(env["CDR_TOPIC_MIN_INSYNC_REPLICAS"])) == (
            replicas,
            in_sync,
        )
        clients = {_listeners(_environment(active[b])["KAFKA_ADVERTISED_LISTENERS"])["CLIENTS"] for b in brokers}
        assert set(env["CDR_KAFKA_BOOTSTRAP_SERVERS"].split(",")) == clients
    published = [p.split(":")[1] for b in brokers for p in active[b]["ports"]]
    assert len(set(published)) == len(published), "each broker its own external port"


def _run_kafka_init(tmp_path, overrides: dict[str, str] | None = None) -> list[list[str]]:
    """kafka-init's script, run by bash with kafka-topics.sh and kafka-configs.sh replaced by
    stand-ins that record their arguments: the calls it makes."""
    service = resolved(overrides)["services"]["kafka-init"]
    assert service["entrypoint"][:2] == ["/bin/bash", "-euc"]
    script = service["command"][0]
    assert "bin=/opt/kafka/bin\n" in script
    calls = tmp_path / "calls.jsonl"
    for tool in ("kafka-topics.sh", "kafka-configs.sh"):
        stub = tmp_path / tool
        stub.write_text(
            "#!/usr/bin/env python3\nimport json, os, sys\n"
            "call = [os.path.basename(sys.argv[0]), *sys.argv[1:]]\n"
            # a config file's content and mode, read while it exists
            "if '--add-config-file' in call:\n"
            "    f = call[call.index('--add-config-file') + 1]\n"
            "    call += ['#file', open(f).read(), oct(os.stat(f).st_mode & 0o777)]\n"
            f'open({str(calls)!r}, "a").write(json.dumps(call) + "\\n")\n'
        )
        stub.chmod(0o755)
    env = {"PATH": os.environ["PATH"], **_environment(service)}
    subprocess.run(
        ["bash", "-euc", script.replace("bin=/opt/kafka/bin\n", f"bin={tmp_path}\n")], env=env, check=True, timeout=30
    )
    return [json.loads(line) for line in calls.read_text().splitlines()]


def _option_values(call: list[str], option: str) -> list[str]:
    return [call[i + 1] for i, arg in enumerate(call) if arg == option]


def test_kafka_init_creates_raw_cdrs_on_the_broker_s_clock_and_both_topics_with_explicit_size_and_replicas(tmp_path):
    calls = _run_kafka_init(tmp_path)
    created = {_option_values(c, "--topic")[0]: c for c in calls if "--create" in c}
    assert set(created) == {"raw-cdrs", "error-cdrs"}
    max_bytes = str(SETTINGS_BY_NAME["CDR_TOPIC_MAX_MESSAGE_BYTES"].default)
    assert max_bytes == "1048576"
    for topic, call in created.items():
        configs = dict(c.split("=", 1) for c in _option_values(call, "--config"))
        assert configs["max.message.bytes"] == max_bytes
        assert configs["min.insync.replicas"] == "1"
        assert _option_values(call, "--replication-factor") == ["1"]
        assert _option_values(call, "--partitions") == ["4"]
        assert (configs.get("message.timestamp.type") == "LogAppendTime") == (topic == "raw-cdrs")
        # an existing topic is brought to the same configuration (a replication factor cannot be)
        altered = [c for c in calls if "--alter" in c and _option_values(c, "--entity-name") == [topic]]
        assert (
            altered
            and dict(kv.split("=", 1) for kv in _option_values(altered[0], "--add-config")[0].split(",")) == configs
        )


def test_kafka_init_follows_the_topic_settings_and_creates_the_scram_user(tmp_path):
    calls = _run_kafka_init(tmp_path, {**CLUSTER_ENV, "CDR_TOPIC_MAX_MESSAGE_BYTES": "2097152"})
    raw = next(c for c in calls if "--create" in c and "raw-cdrs" in c)
    configs = dict(c.split("=", 1) for c in _option_values(raw, "--config"))
    assert configs["max.message.bytes"] == "2097152" and configs["min.insync.replicas"] == "2"
    assert _option_values(raw, "--replication-factor") == ["3"]
    users = [c for c in calls if _option_values(c, "--entity-type") == ["users"]]
    assert len(users) == 1 and _option_values(users[0], "--entity-name") == ["cdr_app"]
    # the password goes in a file only its owner reads, never on a command line (ps, docker top)
    content, mode = _option_values(users[0], "#file")[0], users[0][-1]
    assert content == "SCRAM-SHA-512=password=stand-in-for-CDR_KAFKA_SASL_PASSWORD\n" and mode == "0o600"
    for call in calls:
        arguments = call[: call.index("#file")] if "#file" in call else call
        assert not any("stand-in-for-CDR_KAFKA_SASL_PASSWORD" in arg for arg in arguments), call


# -- SQL Server


def test_the_application_never_gets_sa_nor_a_trusted_anyway_server_certificate():
    for name, service in COMPOSE["services"].items():
        text = json.dumps(service)
        if name not in ("sqlserver", "sqlserver-init"):
            assert "MSSQL_SA_PASSWORD" not in text and "SQLCMDPASSWORD" not in text, f"{name} gets sa's password"
        if name != "sqlserver-init":  # its sqlcmd verifies the server; the health check is sqlserver's own
            assert not re.search(r"sqlcmd[^\"']*\s-C\b", text) or name == "sqlserver", name
    for name in APP_SERVICES:
        env = _environment(DEFAULT["services"][name])
        assert env["CDR_WAREHOUSE_USER"] not in ("sa", "")
        assert _environment(COMPOSE["services"][name])["CDR_WAREHOUSE_PASSWORD"].startswith(
            "${CDR_WAREHOUSE_PASSWORD:?"
        )
        # verified: unset (the setting's default is false) or false
        assert env.get("CDR_WAREHOUSE_TRUST_SERVER_CERTIFICATE", "false") == "false"
        assert SETTINGS_BY_NAME["CDR_WAREHOUSE_TRUST_SERVER_CERTIFICATE"].default is False
        # the project's containers trust the operator's CA before they start
        assert COMPOSE["services"][name]["entrypoint"] == ["sh", "/opt/cdr-deploy/trust-ca.sh"]
    init = DEFAULT["services"]["sqlserver-init"]
    assert "-U sa" in _command_text(init) and " -C" not in _command_text(init)
    assert (
        _environment(init)["CDR_WAREHOUSE_USER"]
        == _environment(DEFAULT["services"]["dagster-daemon"])["CDR_WAREHOUSE_USER"]
    )


def test_create_logins_makes_the_app_login_own_every_project_schema_and_the_bi_login_select_the_marts_only():
    sql = (DEPLOY / "sqlserver" / "create_logins.sql").read_text()
    init = DEFAULT["services"]["sqlserver-init"]
    mounted = {t: s for s, t in _volume_mounts(COMPOSE["services"]["sqlserver-init"])}
    assert mounted["/opt/cdr-deploy/create_logins.sql"] == "./deploy/sqlserver/create_logins.sql"
    # every scripting variable it uses is given to sqlserver-init (sqlcmd reads them from the environment)
    variables = set(re.findall(r"\$\((\w+)\)", sql))
    assert variables <= set(_environment(init)), variables - set(_environment(init))
    # the schemas it hands to the application: the platform's, at their settings' defaults
    listed = re.search(r"FROM \(VALUES(.*?)\) AS s\(name\)", sql, re.S).group(1)
    names = re.findall(r"N'([^']+)'", listed)
    values = {n: _environment(init).get(n.strip("$()"), n) for n in names}
    expected = {*WAREHOUSE_SCHEMAS, SETTINGS_BY_NAME["CDR_TARIFF_SCHEMA"].default}
    assert set(values.values()) == expected
    for name in names:
        if name.startswith("$("):
            assert values[name] == SETTINGS_BY_NAME[name.strip("$()")].default
    assert "AUTHORIZATION ' + QUOTENAME(@owner)" in sql and "@owner sysname = N'$(CDR_WAREHOUSE_USER)'" in sql
    assert "GRANT SELECT ON SCHEMA::[$(CDR_MARTS_SCHEMA)] TO [$(CDR_BI_ROLE)];" in sql
    grants = re.findall(r"^GRANT .*$", sql, re.M)
    assert [g for g in grants if "$(CDR_BI_ROLE)" in g] == [
        "GRANT SELECT ON SCHEMA::[$(CDR_MARTS_SCHEMA)] TO [$(CDR_BI_ROLE)];"
    ]
    assert _environment(init)["CDR_BI_ROLE"] == SETTINGS_BY_NAME["CDR_BI_ROLE"].default


# -- the UI


def _caddy_sites(text: str) -> dict[str, str]:
    """The Caddyfile's top-level blocks as {address: body}, comment lines dropped (the global
    options block has the address ''); a block opens on an unindented line ending in "{" and
    closes on an unindented "}"."""
    sites, address, body = {}, None, []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace() and line.endswith("{"):
            address, body = line[:-1].strip(), []
        elif line == "}":
            sites[address] = "\n".join(body)
        else:
            body.append(line)
    return sites


def test_the_dagster_webserver_is_published_only_through_the_authenticating_proxy():
    services = DEFAULT["services"]
    assert "ports" not in services["dagster-webserver"] and "expose" not in services["dagster-webserver"]
    proxy = services["dagster-proxy"]
    assert proxy["image"].startswith("caddy:")
    assert proxy["ports"] == ["127.0.0.1:8443:443"]  # loopback unless CDR_UI_BIND_ADDRESS says otherwise
    assert resolved({"CDR_UI_BIND_ADDRESS": "0.0.0.0"})["services"]["dagster-proxy"]["ports"] == ["0.0.0.0:8443:443"]
    assert COMPOSE["services"]["dagster-proxy"]["environment"]["CDR_UI_PASSWORD_HASH"].startswith(
        "${CDR_UI_PASSWORD_HASH:?"
    )
    mounted = {t: s for s, t in _volume_mounts(proxy)}
    assert mounted["/etc/caddy/Caddyfile"] == "./deploy/Caddyfile"
    sites = _caddy_sites((DEPLOY / "Caddyfile").read_text())
    proxying = {address: body for address, body in sites.items() if "reverse_proxy" in body}
    assert list(proxying) == ["{$CDR_UI_HOST:localhost}"], "one site reaches the webserver"
    body = proxying["{$CDR_UI_HOST:localhost}"]
    assert re.search(r"reverse_proxy dagster-webserver:3000\s*$", body.strip())
    assert re.search(r"basic_auth \{\s*\{\$CDR_UI_USER:admin\} \{\$CDR_UI_PASSWORD_HASH\}\s*\}", body)
    assert "tls {$CDR_UI_TLS:internal}" in body  # HTTPS: basic auth is not sent in clear
    # the health check's site answers on the container's loopback and reaches nothing
    health = next(b for a, b in sites.items() if a.startswith("http://:8081"))
    assert "bind 127.0.0.1" in health and "reverse_proxy" not in health
    assert sites[""].strip() == "admin off"


def test_every_published_port_is_bound_to_loopback_unless_a_variable_says_otherwise():
    published = [p for s in CLUSTERED["services"].values() for p in s.get("ports", [])]
    assert published
    for port in published:
        assert str(port).startswith("127.0.0.1:"), port
    for name, service in COMPOSE["services"].items():
        for port in service.get("ports", []):
            # a variable may move the bind address, never drop it (which would be 0.0.0.0)
            assert re.match(r"(127\.0\.0\.1|\$\{\w+:-127\.0\.0\.1\}):", str(port)), f"{name}: {port}"


# -- secrets


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
    # every variable the file requires is in .env.example, to be filled in
    for name in REQUIRED:
        assert re.search(rf"^{name}=$", env_example, re.M), f"{name} missing from .env.example"
    # the keys and certificates stay in the operator's folder, which git ignores
    for secret in COMPOSE["secrets"].values():
        assert secret["file"].startswith("./deploy/tls/")
    assert (DEPLOY / "tls" / ".gitignore").read_text().splitlines()[-2:] == ["*", "!.gitignore"]


def test_the_cluster_preset_turns_on_the_cluster_profile_and_only_sets_shared_values():
    assert CLUSTER_ENV["COMPOSE_PROFILES"] == "cluster"
    for broker in ("kafka-2", "kafka-3"):
        assert COMPOSE["services"][broker]["profiles"] == ["cluster"]
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    for name in CLUSTER_ENV:
        if name != "COMPOSE_PROFILES":
            assert f"${{{name}:-" in text, f"{name} is not a variable of docker-compose.yml"
            assert not SECRET_NAME.search(name)


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


def test_the_dagster_containers_settings_pass_the_production_refusals_and_mount_the_reference_files():
    from cdr_platform.lib.settings import load_settings, production_problems

    for name in ("dagster-webserver", "dagster-daemon"):
        service = DEFAULT["services"][name]
        environment = _environment(service)
        settings = load_settings(environment)
        assert settings.environment == "prod" and production_problems(settings) == [], name
        assert (settings.reference_dir and str(settings.reference_dir)) in [t for _, t in _volume_mounts(service)]
