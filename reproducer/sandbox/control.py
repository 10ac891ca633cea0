"""Run the sandbox (OVH API emulator + its fleets) as a background daemon: up, status, down.

``up`` starts ``python -m reproducer.sandbox.control ROOT`` detached from the terminal and waits until
it has written ``sandbox.json`` (endpoint, credentials, project, services). State lives in ROOT, so a
later ``up`` finds the same project and keys. ``down`` stops the daemon by pid; the daemon stops every
fleet it started before it exits.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from reproducer.atomic import atomic_write
from reproducer.errors import SandboxError
from reproducer.procs import child_env, pid_alive, stop_pid, wait_until
from reproducer.sandbox.fleet import Fleet
from reproducer.sandbox.ovh_api import OvhApiServer
from reproducer.sandbox.seed import load_dataset, seed_business_service

INFO_FILE = "sandbox.json"
_DAEMON_MODULE = "reproducer.sandbox.control"
#: What the daemon (and the valkey-server fleets it starts) may inherit: where the package is, nothing secret.
_DAEMON_ENV_ALLOWED = ("PYTHONPATH", "VIRTUAL_ENV")
_UP_TIMEOUT = 90.0


def default_root() -> Path:
    """Where the sandbox keeps its state: ``$REPRODUCER_SANDBOX_DIR`` or ``~/.local/state/reproducer/sandbox``."""
    env = os.environ.get("REPRODUCER_SANDBOX_DIR")
    return Path(env) if env else Path.home() / ".local" / "state" / "reproducer" / "sandbox"


def status(root: Path) -> dict[str, Any] | None:
    """The running sandbox's info, or None when no daemon of ``root`` runs.

    The pid in ``sandbox.json`` counts only while it is still our daemon: the same command line and the start
    time recorded at start (a pid reused by another process is never taken for the sandbox, nor signalled).

    Raises:
        SandboxError: ``sandbox.json`` is not a state file the sandbox wrote.
    """
    info = _read_info(Path(root) / INFO_FILE)
    return info if info is not None and _is_our_daemon(info) else None


def _read_info(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_bytes().decode("utf-8"))
        pid = info["pid"] if isinstance(info, dict) else None
    except (OSError, ValueError, KeyError) as exc:
        raise _corrupt(path, type(exc).__name__) from None
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
        raise _corrupt(path, "no valid pid")
    return dict(info)


def _corrupt(path: Path, reason: str) -> SandboxError:
    return SandboxError(
        f"{path} is not a sandbox state file ({reason})",
        hint=f"stop any sandbox process yourself if one runs, then delete {path} and run 'sandbox up' again",
    )


def _is_our_daemon(info: dict[str, Any]) -> bool:
    pid = int(info["pid"])
    if not pid_alive(pid):
        return False
    cmdline = _cmdline(pid)
    if _DAEMON_MODULE not in cmdline:
        return False
    return "started" not in info or info["started"] == process_start_time(pid)


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def process_start_time(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (``/proc/PID/stat``): with the pid, names one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(") ", 1)[1].split()[19])


def up(root: Path, *, dataset_keys: int = 2000) -> dict[str, Any]:
    """Start the sandbox daemon for ``root`` unless it already runs; return its info."""
    running = status(root)
    if running is not None:
        return running
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / INFO_FILE).unlink(missing_ok=True)
    log = (root / "daemon.log").open("ab")
    argv = [sys.executable, "-m", _DAEMON_MODULE, str(root), str(dataset_keys)]
    proc = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=child_env(_DAEMON_ENV_ALLOWED),
    )
    log.close()
    try:
        wait_until(lambda: _started(root, proc), timeout=_UP_TIMEOUT, what="the sandbox to start", interval=0.2)
    except SandboxError as exc:
        stop_pid(proc.pid)
        stop_leftover_fleets(root)
        raise SandboxError(f"{exc.message}; see {root / 'daemon.log'}", hint="run 'make setup' and retry") from None
    info = status(root)
    if info is None:
        raise SandboxError("the sandbox daemon exited right after starting", hint=f"see {root / 'daemon.log'}")
    return info


def _started(root: Path, proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        raise SandboxError(
            f"the sandbox daemon exited with status {proc.returncode}", hint=f"see {root / 'daemon.log'}"
        )
    return (root / INFO_FILE).exists()


def down(root: Path) -> bool:
    """Stop the daemon of ``root`` and every fleet, and forget its services; False when none was running.

    The servers' data goes with them, so the next ``up`` seeds a fresh service rather than an empty one. Only
    our daemon is signalled (see :func:`status`); a ``sandbox.json`` naming another process is left alone.
    """
    info = status(root)
    if info is None:
        return False
    stop_pid(int(info["pid"]), grace=30.0)
    stop_leftover_fleets(root)
    (Path(root) / INFO_FILE).unlink(missing_ok=True)
    (Path(root) / "state.json").unlink(missing_ok=True)
    shutil.rmtree(Path(root) / "fleets", ignore_errors=True)
    return True


def serve(root: Path, dataset_keys: int) -> None:
    """Daemon body: serve the emulator for ``root``, seeding a demo project on first start."""
    root = Path(root)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    server = OvhApiServer(root, port=_previous_port(root)).start()
    try:
        if not any(p["services"] for p in server.store.state["projects"].values()):
            server.store.reset()
            seeded = seed_business_service(server)
            _load_demo_data(server, seeded.project, seeded.service_id, seeded.app_password, dataset_keys)
        _write_info(root, server)
        stopping.wait()
    finally:
        server.stop(stop_fleets=True)


def stop_leftover_fleets(root: Path) -> None:
    """Stop fleets a killed daemon left behind under ``root``."""
    for fleet_file in sorted((Path(root) / "fleets").glob("*/fleet.json")):
        Fleet.attach(fleet_file.parent).stop()


def _previous_port(root: Path) -> int:
    port_file = root / "port"
    return int(port_file.read_text()) if port_file.exists() else 0


def _load_demo_data(server: OvhApiServer, project: str, service_id: str, password: str, keys: int) -> None:
    record = server.store.find_service(project, service_id)
    assert record is not None
    fleet = server.store.fleet(service_id, record)
    with fleet.client(fleet.current_primary(), username="app", password=password) as client:
        load_dataset(client, keys)


def _write_info(root: Path, server: OvhApiServer) -> None:
    (root / "port").write_text(server.url.split(":")[2].split("/")[0])
    info = {"pid": os.getpid(), "started": process_start_time(os.getpid()), **describe(server)}
    atomic_write(root / INFO_FILE, json.dumps(info, indent=2, sort_keys=True))


def describe(server: OvhApiServer) -> dict[str, Any]:
    """Endpoint, credentials, project and services of a running emulator (what ``sandbox up --json`` prints)."""
    state = server.store.state
    consumer_key, credential = next(iter(state["credentials"].items()))
    project_id, project = next(iter(state["projects"].items()))
    services = []
    for service_id, record in project["services"].items():
        fleet = server.store.fleet(service_id, record)
        port = fleet.current_primary().port
        services.append(
            {
                "id": service_id,
                "plan": record["plan"],
                "data_endpoint": f"valkeys://127.0.0.1:{port}",
                "ca_file": str(fleet.tls_files.ca_cert) if fleet.tls_files else None,
            }
        )
    return {
        "endpoint": server.url,
        "application_key": credential["application_key"],
        "application_secret": state["applications"][credential["application_key"]],
        "consumer_key": consumer_key,
        "project": project_id,
        "services": services,
    }


def main(argv: list[str]) -> None:
    """Entry point of the daemon process (``python -m reproducer.sandbox.control ROOT [KEYS]``)."""
    serve(Path(argv[0]), int(argv[1]) if len(argv) > 1 else 2000)


if __name__ == "__main__":
    main(sys.argv[1:])
