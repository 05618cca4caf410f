"""The local stack, without Docker: a one-node Kafka (KRaft) and a PostgreSQL cluster.

    cdr stack up        # fetch jars, start, wait, create topics
    cdr stack status
    cdr stack down      # stop exactly what `up` started
    cdr stack setup     # only fetch the jars (Kafka, Spark, JDBC) and record Spark's class-data archive

Everything lives under CDR_STACK_DIR (default .stack/, ignored by git): jars fetched by Maven
from Maven Central, Kafka's storage, PostgreSQL's data directory, PID files and logs. Both
services listen on 127.0.0.1 only. `up` is idempotent; `down` only signals processes whose
PID file it wrote and whose command line is the one it started.
"""

from __future__ import annotations

import base64
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from cdr_platform.lib.settings import Settings, local_kafka_password_file
from cdr_platform.lib.spark.jars import java_executable
from cdr_platform.utils.signals import default_signals_in_child

HEALTH_TIMEOUT_S = 90


class StackError(RuntimeError):
    """A service could not be started or checked; the message says which and where to look."""


def _maven_dir(settings: Settings) -> Path:
    """The Maven poms of the jars: `stack/maven/` of the project's files (CDR_PROJECT_DIR)."""
    return settings.project_dir / "stack" / "maven"


def _kafka_log4j(settings: Settings) -> Path:
    return settings.project_dir / "stack" / "kafka" / "log4j2.properties"


def _say(message: str) -> None:
    print(f"[stack] {message}", flush=True)


# -- jars ----------------------------------------------------------------------------------


def installed_pyspark_version() -> str:
    from importlib.metadata import version

    return version("pyspark")


def _maven_copy(pom: Path, target: Path, extra: list[str]) -> None:
    if shutil.which("mvn") is None:
        raise StackError("Maven (mvn) is not installed; it fetches the Kafka and Spark jars")
    target.mkdir(parents=True, exist_ok=True)
    cmd = ["mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies", f"-DoutputDirectory={target}", *extra]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(
            f"Maven could not fetch the jars of {pom.name}:\n{result.stdout[-3000:]}{result.stderr[-2000:]}"
        )


def fetch_jars(settings: Settings) -> None:
    jars = settings.stack.jars_dir
    marker = jars / "kafka" / ".complete"
    if not marker.exists():
        _say("fetching the Kafka broker jars from Maven Central")
        _maven_copy(_maven_dir(settings) / "kafka-broker.pom.xml", jars / "kafka", ["-DincludeScope=runtime"])
        marker.touch()
    spark_version = installed_pyspark_version()
    spark_marker = jars / "spark" / f".complete-{spark_version}"
    if not spark_marker.exists():
        _say(f"fetching Spark's Kafka connector {spark_version} and the JDBC drivers")
        shutil.rmtree(jars / "spark", ignore_errors=True)
        _maven_copy(_maven_dir(settings) / "spark-jars.pom.xml", jars / "spark", [f"-Dspark.version={spark_version}"])
        spark_marker.touch()


# -- process bookkeeping -------------------------------------------------------------------


@dataclass
class Service:
    name: str
    pid_file: Path
    log_file: Path
    address: str
    marker: str  # a string the process's command line must contain to be ours

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except FileNotFoundError:
            return None
        return pid if self.marker in cmdline else None  # a recycled PID is not ours

    def running(self) -> bool:
        return self.pid() is not None


def _services(settings: Settings) -> dict[str, Service]:
    d = settings.stack.directory
    return {
        "kafka": Service(
            "kafka",
            d / "run" / "kafka.pid",
            d / "logs" / "kafka.log",
            f"127.0.0.1:{settings.stack.kafka_port}",  # the PLAINTEXT listener (SASL_SSL: CDR_KAFKA_SASL_SSL_PORT)
            str(d / "kafka" / "server.properties"),
        ),
        "postgres": Service(
            "postgres",
            postgres_root(settings) / "data" / "postmaster.pid",
            postgres_root(settings) / "postgres.log",
            f"{settings.warehouse.host}:{settings.stack.postgres_port}",
            str(postgres_root(settings) / "data"),
        ),
    }


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log yet)"


# -- Kafka ---------------------------------------------------------------------------------


def _kafka_properties(settings: Settings) -> str:
    s = settings.stack
    data = s.directory / "kafka" / "data"
    tls = kafka_tls_dir(settings)
    scram_login = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    return "\n".join(
        [
            "# written by cdr_platform.utils.local_stack; edits are overwritten on `up`",
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{s.kafka_controller_port}",
            # PLAINTEXT for the default local clients; SASL_SSL (SCRAM users, the stack's own CA)
            # for the secured path and its tests. The controller and the broker itself stay on loopback.
            f"listeners=PLAINTEXT://127.0.0.1:{s.kafka_port},CONTROLLER://127.0.0.1:{s.kafka_controller_port},"
            f"SASL_SSL://127.0.0.1:{s.kafka_sasl_ssl_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{s.kafka_port},SASL_SSL://127.0.0.1:{s.kafka_sasl_ssl_port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL",
            "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512",
            f"listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={scram_login}",
            f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={scram_login}",
            "listener.name.sasl_ssl.ssl.keystore.type=PEM",
            f"listener.name.sasl_ssl.ssl.keystore.location={tls / BROKER_KEYSTORE}",
            "listener.name.sasl_ssl.ssl.client.auth=none",
            f"log.dirs={data}",
            f"num.partitions={settings.kafka.topic_partitions}",
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.retention.hours=168",
            "",
        ]
    )


def _kafka_cluster_id() -> str:
    """A random cluster id as Kafka writes them (URL-safe base64 of a UUID), never starting with
    '-': the storage tool's argument parser would take such an id for an option (one id in 64)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def start_kafka(settings: Settings) -> None:
    svc = _services(settings)["kafka"]
    if svc.running():
        _say(f"kafka already running (pid {svc.pid()}) on {svc.address}")
        return
    d = settings.stack.directory
    (d / "kafka").mkdir(parents=True, exist_ok=True)
    (d / "run").mkdir(parents=True, exist_ok=True)
    (d / "logs").mkdir(parents=True, exist_ok=True)
    props = d / "kafka" / "server.properties"
    make_kafka_tls(settings)
    props.write_text(_kafka_properties(settings))
    classpath = str(settings.stack.jars_dir / "kafka" / "*")
    log4j = _kafka_log4j(settings)
    java = java_executable()
    if not (d / "kafka" / "data" / "meta.properties").exists():
        cluster_id = _kafka_cluster_id()
        _say(f"formatting Kafka storage (cluster id {cluster_id})")
        result = subprocess.run(
            [
                java,
                "-cp",
                classpath,
                f"-Dlog4j2.configurationFile={log4j}",
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(props),
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise StackError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")
    _say(f"starting kafka on {svc.address} (log: {svc.log_file})")
    with svc.log_file.open("ab") as log:
        proc = subprocess.Popen(
            [
                java,
                f"-Xmx{settings.stack.kafka_heap}",
                "-Xms256m",
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={log4j}",
                "-cp",
                classpath,
                "kafka.Kafka",
                str(props),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # not killed with the shell that ran `make up`
            preexec_fn=default_signals_in_child,  # and `make down` stops it with SIGTERM
        )
    svc.pid_file.write_text(f"{proc.pid}\n")
    _wait_for_kafka(settings, svc, proc)


def _wait_for_kafka(settings: Settings, svc: Service, proc: subprocess.Popen) -> None:
    from cdr_platform.lib.kafka_io import BrokerUnavailableError, ensure_cdr_topics, wait_for_broker

    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise StackError(
                f"kafka exited with code {proc.returncode} during start-up; "
                f"see {svc.log_file}:\n{_log_tail(svc.log_file)}"
            )
        try:
            wait_for_broker(stack_kafka(settings), timeout_s=1)
            problems = ensure_cdr_topics(stack_kafka(settings))
            ensure_scram_user(settings)
            _say(f"kafka is up (SASL_SSL listener on 127.0.0.1:{settings.stack.kafka_sasl_ssl_port})")
            for problem in problems:
                _say(f"WARNING: {problem}")
            return
        except BrokerUnavailableError:
            pass
        except Exception as exc:  # broker listening but not ready yet
            if time.monotonic() >= deadline:
                raise StackError(f"kafka did not become ready: {exc}; see {svc.log_file}") from exc
        if time.monotonic() >= deadline:
            raise StackError(
                f"kafka did not accept connections on {svc.address} within "
                f"{HEALTH_TIMEOUT_S} s; see {svc.log_file}:\n{_log_tail(svc.log_file)}"
            )
        time.sleep(0.5)


# -- Kafka's SASL_SSL listener: a CA of the stack's own, SCRAM users ------------------------

BROKER_KEYSTORE = "broker-keystore.pem"  # the broker's PKCS#8 key and certificate chain, one PEM file
LOCAL_KAFKA_USER = "cdr"  # the SCRAM user the platform logs in as on the SASL_SSL listener


def kafka_tls_dir(settings: Settings) -> Path:
    return settings.stack.directory / "kafka" / "tls"


def kafka_secrets_dir(settings: Settings) -> Path:
    return settings.stack.directory / "kafka" / "secrets"


def _openssl(*args: str) -> None:
    if shutil.which("openssl") is None:
        raise StackError("openssl is not installed; it makes the local broker's CA and certificate")
    result = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(f"openssl {args[0]} failed: {result.stderr.strip()[-2000:]}")


def _private(path: Path) -> Path:
    """A file only its owner reads: keys and passwords."""
    path.chmod(0o600)
    return path


def _write_private(path: Path, text: str) -> Path:
    """Write a file readable by its owner only, never by others even briefly: a new file is
    created 0600, an existing one made 0600 before it is truncated and written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        out.truncate()
        out.write(text)
    return path


def stack_kafka(settings: Settings):
    """The local broker as the stack tool reaches it: its PLAINTEXT listener, whatever security the
    shell's clients use (`cdr stack env --sasl-ssl`): the SCRAM user may not exist yet."""
    import dataclasses

    return dataclasses.replace(
        settings.kafka, bootstrap_servers=f"127.0.0.1:{settings.stack.kafka_port}", security_protocol="PLAINTEXT"
    )


def make_certificate_authority(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA in `directory` (ca.pem, ca.key); kept if it is there."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_pem, ca_key = directory / "ca.pem", directory / "ca.key"
    if not (ca_pem.exists() and ca_key.exists()):
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "3650",
            "-subj", f"/CN={name}", "-keyout", str(ca_key), "-out", str(ca_pem),
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
        _private(ca_key)
    return ca_pem, ca_key


def issue_certificate(ca: tuple[Path, Path], directory: Path, name: str, subject_alt_names: str) -> tuple[Path, Path]:
    """A server certificate signed by `ca` for `subject_alt_names` ("IP:127.0.0.1"): (name.pem, name.key);
    the key is PKCS#8, unencrypted, readable by its owner only."""
    ca_pem, ca_key = ca
    pem, key, request = directory / f"{name}.pem", directory / f"{name}.key", directory / f"{name}.csr"
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(request))
    _private(key)
    extensions = directory / f"{name}.ext"
    extensions.write_text(f"subjectAltName={subject_alt_names}\nextendedKeyUsage=serverAuth\n")
    _openssl(
        "x509", "-req", "-in", str(request), "-CA", str(ca_pem), "-CAkey", str(ca_key), "-CAcreateserial",
        "-sha256", "-days", "825", "-extfile", str(extensions), "-out", str(pem),
    )  # fmt: skip
    request.unlink()
    extensions.unlink()
    return pem, key


def make_kafka_tls(settings: Settings) -> Path:
    """The local broker's TLS material in .stack/kafka/tls/, made once: a CA of the stack's own
    (ca.pem is what clients trust) and a broker certificate for 127.0.0.1 only, so a client that
    connects by another name fails host name verification. Returns the CA file."""
    tls = kafka_tls_dir(settings)
    keystore = tls / BROKER_KEYSTORE
    ca = make_certificate_authority(tls, "cdr-platform local Kafka CA")
    if not keystore.exists():
        _say(f"making the local broker's CA and certificate in {tls}")
        pem, key = issue_certificate(ca, tls, "broker", "IP:127.0.0.1")
        _write_private(keystore, key.read_text() + pem.read_text())
    return ca[0]


def local_kafka_password(settings: Settings) -> str:
    """The SCRAM password of LOCAL_KAFKA_USER, generated once into .stack/kafka/secrets/ (mode 0600),
    the way the PostgreSQL roles' are (two `up` at once agree on one)."""
    from cdr_platform.utils.local_postgres import ensure_password

    return ensure_password(local_kafka_password_file(settings.stack.directory, LOCAL_KAFKA_USER))


def local_sasl_ssl_environment(settings: Settings, with_password: bool = True) -> dict[str, str]:
    """The settings (as environment variables) of a client of the local broker's SASL_SSL listener,
    the certificate verified: for the tests and `cdr stack env --sasl-ssl`. Without the password,
    the settings find it in its file (CDR_KAFKA_SASL_PASSWORD's local default)."""
    environment = {
        "CDR_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{settings.stack.kafka_sasl_ssl_port}",
        "CDR_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "CDR_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "CDR_KAFKA_SASL_USERNAME": LOCAL_KAFKA_USER,
        "CDR_KAFKA_SSL_CA_FILE": str(kafka_tls_dir(settings) / "ca.pem"),
        "CDR_KAFKA_SSL_CHECK_HOSTNAME": "true",
    }
    if with_password:
        environment["CDR_KAFKA_SASL_PASSWORD"] = local_kafka_password(settings)
    return environment


def ensure_scram_user(settings: Settings) -> None:
    """LOCAL_KAFKA_USER's SCRAM-SHA-256 and -512 credentials, set with the broker's own tool
    (kafka-configs' ConfigCommand, over the PLAINTEXT listener) once per Kafka storage: a marker
    holding the storage's cluster id says it was done."""
    meta = settings.stack.directory / "kafka" / "data" / "meta.properties"
    cluster_id = next(
        (line.split("=", 1)[1].strip() for line in meta.read_text().splitlines() if line.startswith("cluster.id=")),
        "",
    )
    marker = kafka_secrets_dir(settings) / f"{LOCAL_KAFKA_USER}.scram"
    if marker.exists() and marker.read_text().strip() == cluster_id:
        return
    password = local_kafka_password(settings)
    for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):  # one per request: the broker refuses two
        _set_scram_credential(settings, mechanism, password)
    marker.write_text(cluster_id)
    _say(f"kafka SCRAM user {LOCAL_KAFKA_USER} ready (password in {kafka_secrets_dir(settings)}, mode 0600)")


def _set_scram_credential(settings: Settings, mechanism: str, password: str) -> None:
    # a file, not the command line: no password in the process list; a file of this call's own
    handle, name = tempfile.mkstemp(dir=kafka_secrets_dir(settings), prefix=".scram.", suffix=".properties")
    config = Path(name)
    with os.fdopen(handle, "w") as out:  # 0600, as mkstemp makes it
        out.write(f"{mechanism}=password={password}\n")
    try:
        result = subprocess.run(
            [
                java_executable(),
                "-cp",
                str(settings.stack.jars_dir / "kafka" / "*"),
                f"-Dlog4j2.configurationFile={_kafka_log4j(settings)}",
                "kafka.admin.ConfigCommand",
                "--bootstrap-server",
                f"127.0.0.1:{settings.stack.kafka_port}",
                "--alter",
                "--entity-type",
                "users",
                "--entity-name",
                LOCAL_KAFKA_USER,
                "--add-config-file",
                str(config),
            ],
            capture_output=True,
            text=True,
        )
    finally:
        config.unlink(missing_ok=True)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).replace(password, "(password)")  # never in a log
        raise StackError(f"creating the Kafka SCRAM user {LOCAL_KAFKA_USER} failed:\n{output[-3000:]}")


# -- PostgreSQL ----------------------------------------------------------------------------


def _pg_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise StackError("PostgreSQL server binaries not found; install Debian's `postgresql` package")


def postgres_root(settings: Settings) -> Path:
    """Where the cluster lives: .stack/postgres, unless the `postgres` account (which runs it
    when we are root) cannot reach that folder - a clone under /root, say. Then a folder of
    /var/lib/cdr-platform named after the stack directory, so each checkout keeps its own."""
    local = settings.stack.directory / "postgres"
    if os.geteuid() != 0 or _postgres_can_reach(settings.stack.directory):
        return local
    import hashlib

    tag = hashlib.sha1(str(settings.stack.directory.resolve()).encode()).hexdigest()[:12]
    return Path("/var/lib/cdr-platform") / tag / "postgres"


def _postgres_can_reach(directory: Path) -> bool:
    """Can the `postgres` account traverse every folder down to `directory` (existing part)?"""
    import pwd

    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        return True  # no such account: the install step will say so
    path = directory.resolve()
    while not path.exists():
        path = path.parent
    for folder in [path, *path.parents]:
        st = folder.stat()
        if st.st_uid == pw.pw_uid:
            mode_bit = 0o100
        elif st.st_gid == pw.pw_gid:
            mode_bit = 0o010
        else:
            mode_bit = 0o001
        if not st.st_mode & mode_bit:
            return False
    return True


def _as_postgres_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: use the `postgres` account the package creates."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


def _chown_for_postgres(*paths: Path) -> None:
    if os.geteuid() != 0:
        return
    import pwd

    pw = pwd.getpwnam("postgres")
    for p in paths:
        os.chown(p, pw.pw_uid, pw.pw_gid)


def start_postgres(settings: Settings) -> None:
    svc = _services(settings)["postgres"]
    if svc.running():
        _say(f"postgres already running (pid {svc.pid()}) on {svc.address}")
        _ensure_database(settings)
        return
    from cdr_platform.utils import local_postgres

    bindir = _pg_bindir()
    root = postgres_root(settings)
    data, sockets = root / "data", root / "run"
    for p in (root, sockets):
        p.mkdir(parents=True, exist_ok=True)
    if root != settings.stack.directory / "postgres":
        _say(f"the postgres account cannot reach {settings.stack.directory}; the cluster lives in {root}")
    svc.log_file.touch()
    _chown_for_postgres(root, sockets, svc.log_file)
    if not (data / "PG_VERSION").exists():
        _say(f"initialising a PostgreSQL cluster in {data}")
        # The bootstrap superuser is the stack's admin role, with a generated password; the
        # application's role is created without privileges by _ensure_database (local_postgres).
        with local_postgres.initdb_password_file(settings, root, _chown_for_postgres) as pwfile:
            result = subprocess.run(
                _as_postgres_user(
                    [
                        str(bindir / "initdb"),
                        "-D",
                        str(data),
                        "-U",
                        local_postgres.ADMIN_ROLE,
                        f"--pwfile={pwfile}",
                        "--auth=scram-sha-256",
                        "--encoding=UTF8",
                        "--no-instructions",
                    ]
                ),
                capture_output=True,
                text=True,
            )
        if result.returncode != 0:
            raise StackError(f"initdb failed:\n{result.stdout}{result.stderr}")
        local_postgres.write_hba(settings, data)
    elif local_postgres.hba_is_ours(data):
        local_postgres.write_hba(settings, data)  # a cluster from before keeps its own until upgraded
    _say(f"starting postgres on {svc.address} (log: {svc.log_file})")
    # Durable (fsync, synchronous commit), tuned for bulk loads: a day of rating_cdrs is
    # gigabytes of WAL, so checkpoints are spaced by 8 GB rather than forced mid-load.
    options = (
        f"-p {settings.stack.postgres_port} -k {sockets} -c listen_addresses=127.0.0.1 "
        "-c shared_buffers=256MB -c max_connections=60 -c synchronous_commit=on "
        "-c fsync=on -c max_wal_size=8GB -c checkpoint_timeout=15min -c wal_compression=lz4 "
        "-c jit=off -c work_mem=64MB -c maintenance_work_mem=256MB"
    )
    result = subprocess.run(
        _as_postgres_user(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(svc.log_file),
                "-o",
                options,
                "-w",
                "-t",
                str(HEALTH_TIMEOUT_S),
                "start",
            ]
        ),
        capture_output=True,
        text=True,
        start_new_session=True,
    )
    if result.returncode != 0:
        raise StackError(
            f"postgres did not start on {svc.address}; see {svc.log_file}:\n"
            f"{result.stdout}{result.stderr}\n{_log_tail(svc.log_file)}"
        )
    _ensure_database(settings)
    _say("postgres is up")


def _ensure_database(settings: Settings) -> None:
    """The warehouse database, its schemas, the roles and their passwords, and password
    authentication in the local PostgreSQL (the stack's own server); a cluster from before the
    passwords is upgraded in place (cdr_platform.utils.local_postgres)."""
    from cdr_platform.utils import local_postgres

    try:
        local_postgres.secure(settings, postgres_root(settings) / "data")
    except (local_postgres.SecurityError, RuntimeError) as exc:
        raise StackError(f"{exc}\nsee {_services(settings)['postgres'].log_file}") from exc


# -- commands ------------------------------------------------------------------------------


def up(settings: Settings, services: tuple[str, ...] = ("postgres", "kafka")) -> None:
    fetch_jars(settings)
    if "postgres" in services:
        start_postgres(settings)
    if "kafka" in services:
        start_kafka(settings)


def _stop_process(svc: Service, timeout_s: float = 30) -> None:
    pid = svc.pid()
    if pid is None:
        _say(f"{svc.name} is not running")
        svc.pid_file.unlink(missing_ok=True)
        return
    _say(f"stopping {svc.name} (pid {pid})")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        if _is_zombie(pid):
            break
        time.sleep(0.2)
    if Path(f"/proc/{pid}").exists() and not _is_zombie(pid):
        _say(f"{svc.name} did not stop within {timeout_s:.0f} s; killing it")
        os.kill(pid, signal.SIGKILL)
    svc.pid_file.unlink(missing_ok=True)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return True


def restart_kafka(settings: Settings) -> None:
    _stop_process(_services(settings)["kafka"])
    start_kafka(settings)


def down_postgres(settings: Settings) -> None:
    pg = _services(settings)["postgres"]
    if pg.running():
        _say(f"stopping postgres (pid {pg.pid()})")
        data = postgres_root(settings) / "data"
        result = subprocess.run(
            _as_postgres_user([str(_pg_bindir() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise StackError(f"pg_ctl stop failed: {result.stdout}{result.stderr}")
    else:
        _say("postgres is not running")


def down(settings: Settings, services: tuple[str, ...] = ("postgres", "kafka")) -> None:
    if "kafka" in services:
        _stop_process(_services(settings)["kafka"])
    if "postgres" in services:
        down_postgres(settings)


def status(settings: Settings) -> dict[str, bool]:
    out = {}
    for name, svc in _services(settings).items():
        pid = svc.pid()
        out[name] = pid is not None
        state = f"running (pid {pid})" if pid else "stopped"
        _say(f"{name:9} {state:22} {svc.address:22} log: {svc.log_file}")
    if out["kafka"]:
        from cdr_platform.lib.kafka_io import topic_partitions

        topics = [settings.kafka.raw_cdrs_topic, settings.kafka.error_cdrs_topic]
        for topic, parts in topic_partitions(stack_kafka(settings), topics).items():
            _say(f"topic {topic}: {parts} partition(s)")
    return out
