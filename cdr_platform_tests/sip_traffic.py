"""Real SIP calls for the tests: Debian's Kamailio as the proxy that writes CDRs, SIPp at both ends.

    SIPp UAC (uac_calls.xml) --INVITE--> Kamailio (kamailio.cfg) --INVITE--> SIPp UAS (uas_answers.xml)

Everything listens on 127.0.0.1, on UDP ports picked free for the run. Kamailio records the route,
so the ACK and BYE of an answered call pass through it too and its dialog (and CDR) ends with the
call; the acc module's CDRs land in `<workdir>/cdrs/acc_cdrs_<process rank>.log` (db_flatstore).

Each call is a `SipCall`: who calls whom, and how the called side behaves - it answers and the
caller hangs up after `talk_ms`, it is busy (486), or it rings until the caller gives up after
1.5 s (CANCEL, 487). All calls start within a quarter of a second, so a run lasts about as long
as its longest call (plus a second of start-up).

`place_calls(workdir, calls)` starts Kamailio (a child process in its own session: runtime dir,
pid file and log under `workdir`) and the SIPp UAS, places the calls with the SIPp UAC, and
stops every process it started before it returns or raises - a failing test leaves none behind.
Needs the `kamailio` and `sip-tester` (sipp) Debian packages: scripts/install_system_packages.sh.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

SIP_DIR = Path(__file__).parent / "sip"
KAMAILIO_CONFIG = SIP_DIR / "kamailio.cfg"
UAC_SCENARIO = SIP_DIR / "uac_calls.xml"
UAS_SCENARIO = SIP_DIR / "uas_answers.xml"
HOST = "127.0.0.1"
ANSWER, BUSY, RING = "answer", "busy", "ring"  # how the called side behaves (uas_answers.xml)
RING_TIMEOUT_S = 1.5  # how long the caller lets a call ring before a CANCEL (uac_calls.xml)
STARTUP_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class SipCall:
    """One call SIPp places: from `caller` to `callee` (SIP URI user parts), answered `how`."""

    caller: str
    callee: str
    how: str = ANSWER
    talk_ms: int = 0  # how long an answered call is held before the caller's BYE


@dataclass(frozen=True)
class CallsPlaced:
    """What a run left: Kamailio's CDR files and the logs that explain a failure."""

    cdr_files: tuple[Path, ...]
    uac_exit_code: int
    uas_exit_code: int
    started_at: float  # time.time() before the first call
    ended_at: float  # time.time() after the last one
    logs: tuple[Path, ...]

    def describe(self) -> str:
        """The tail of each log, for an assertion message."""
        parts = []
        for log in self.logs:
            if log.exists():
                parts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)


def place_calls(workdir: Path, calls: list[SipCall], timeout_s: float = 60.0) -> CallsPlaced:
    """Place `calls` through a Kamailio started for this run; every process is stopped on return."""
    kamailio, sipp = _binary("kamailio"), _binary("sipp")
    workdir.mkdir(parents=True, exist_ok=True)
    cdr_dir, runtime_dir = workdir / "cdrs", workdir / "run"
    cdr_dir.mkdir(exist_ok=True)
    runtime_dir.mkdir(exist_ok=True)
    proxy_port, uas_port, uac_port = free_udp_ports(3)
    # SIPp binds an RTP port and the one two above it (audio, video) even without media
    uas_media_port, uac_media_port = free_udp_ports(2, with_port_plus_2=True)
    injection = workdir / "calls.csv"
    injection.write_text("SEQUENTIAL\n" + "".join(f"{c.caller};{c.callee};{c.talk_ms};{c.how}\n" for c in calls))
    logs = {name: workdir / f"{name}.log" for name in ("kamailio", "uas", "uac")}

    with ExitStack() as running:
        _start(
            running,
            # -DD: no daemon, a child of this process; -E: log to stderr (the log file), not syslog
            [kamailio, "-DD", "-E"]
            + _options(
                {
                    "-f": KAMAILIO_CONFIG,
                    "-l": f"udp:{HOST}:{proxy_port}",
                    "-Y": runtime_dir,
                    "-P": runtime_dir / "kamailio.pid",
                    "-w": workdir,
                }
            ),
            logs["kamailio"],
            workdir,
            env={"KAMAILIO_CDR_DB_URL": f"flatstore:{cdr_dir}", "KAMAILIO_NEXT_HOP": f"sip:{HOST}:{uas_port}"},
        )
        _wait_for_udp_listener(proxy_port, logs["kamailio"])
        sipp_common = {"-i": HOST, "-m": len(calls), "-timeout": f"{int(timeout_s)}s"}
        uas = _start(
            running,
            # -m: the UAS ends after the last call
            [sipp, "-nostdin", "-trace_err"]
            + _options({**sipp_common, "-sf": UAS_SCENARIO, "-p": uas_port, "-mp": uas_media_port}),
            logs["uas"],
            workdir,
        )
        _wait_for_udp_listener(uas_port, logs["uas"])
        started_at = time.time()
        uac = _start(
            running,
            # -l and -r 20: all calls at once, in parallel
            [sipp, "-nostdin", "-trace_err"]
            + _options(
                {
                    **sipp_common,
                    "-sf": UAC_SCENARIO,
                    "-inf": injection,
                    "-p": uac_port,
                    "-mp": uac_media_port,
                    "-l": len(calls),
                    "-r": 20,
                }
            )
            + [f"{HOST}:{proxy_port}"],
            logs["uac"],
            workdir,
        )
        uac_exit = uac.wait(timeout=timeout_s + 5)
        uas_exit = uas.wait(timeout=STOP_TIMEOUT_S + RING_TIMEOUT_S)
        ended_at = time.time()
    # Kamailio is stopped (ExitStack): every CDR it wrote is flushed and its files closed
    return CallsPlaced(
        cdr_files=tuple(sorted(cdr_dir.glob("acc_cdrs_*.log"))),
        uac_exit_code=uac_exit,
        uas_exit_code=uas_exit,
        started_at=started_at,
        ended_at=ended_at,
        logs=tuple(logs.values()) + tuple(sorted(workdir.glob("*_errors.log"))),
    )


def _options(values: dict[str, object]) -> list[str]:
    return [text for option, value in values.items() for text in (option, str(value))]


def _binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        raise RuntimeError(f"{name} is not installed: scripts/install_system_packages.sh installs it")
    return path


def _start(
    running: ExitStack, command: list[str], log: Path, workdir: Path, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """Start a process in its own session (so its children stop with it) and register its stop."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    running.callback(stop_process_group, process)
    return process


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM to the process's own group (Kamailio's workers with it), SIGKILL if it lingers."""
    if process.poll() is None:
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT_S)
    # workers the leader left behind when it exited on its own
    _signal_group(process, signal.SIGKILL)


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)  # the group's id is the leader's pid (start_new_session)
    except ProcessLookupError:
        pass


def free_udp_ports(count: int, with_port_plus_2: bool = False) -> list[int]:
    """`count` distinct UDP ports free on 127.0.0.1 now (and, if asked, each one's port + 2)."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            first = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            first.bind((HOST, 0))
            held.append(first)
            port = first.getsockname()[1]
            if with_port_plus_2:
                second = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    second.bind((HOST, port + 2))
                except OSError:
                    second.close()
                    continue  # keep `first` held, so the next try gets another port
                held.append(second)
            ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports


def _wait_for_udp_listener(port: int, log: Path) -> None:
    """Until something listens on 127.0.0.1:`port` (read from /proc, so the check never steals it)."""
    wanted = f"0100007F:{port:04X}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        listening = {line.split()[1] for line in Path("/proc/net/udp").read_text().splitlines()[1:]}
        if wanted in listening:
            return
        time.sleep(0.05)
    raise RuntimeError(
        f"nothing listens on udp {HOST}:{port} after {STARTUP_TIMEOUT_S} s; {log.name}:\n"
        f"{log.read_text(errors='replace')[-3000:]}"
    )
