"""Benchmark: reproducer copy against replication and valkey-cli --pipe, on the same servers, in one run.

Builds N keys (default 1,000,000: 70 % strings of 50-500 B, 10 % hashes of 10 fields, 10 % sets and sorted
sets of 20 members, 5 % lists of 20 items, 5 % streams; 30 % with a TTL) in a source valkey-server, then
measures into fresh empty targets:
  (a) replication full sync (REPLICAOF; repl-diskless-sync-delay 0, otherwise stock settings),
  (b) valkey-cli --pipe of RESTORE commands prepared beforehand (what one target can ingest),
  (c) `reproducer copy` (a separate process, so its peak RSS is its own).
The last line reads: ratio copy/replication=<c/a> copy/pipe=<c/b> peak_rss_mb=<copier peak RSS>.
"""

from __future__ import annotations

import os
import sys

# This file is named copy.py, as the issue asks; keep it from shadowing the standard library's copy module.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse
import random
import subprocess
import tempfile
import time
from pathlib import Path

import valkey

from reproducer.data.resp import RawConnection, command
from reproducer.sandbox.fleet import Fleet, FleetSpec


def build_dataset(port: int, keys: int, seed: int = 42) -> None:
    """Write the dataset through valkey-cli --pipe (fast, deterministic)."""
    rng = random.Random(seed)
    with tempfile.NamedTemporaryFile("wb", suffix=".resp", delete=False) as handle:
        for index in range(keys):
            handle.write(b"".join(_commands(index, rng)))
        path = handle.name
    with open(path, "rb") as stdin:
        subprocess.run(["valkey-cli", "-p", str(port), "--pipe"], stdin=stdin, check=True, capture_output=True)
    os.unlink(path)


def _commands(index: int, rng: random.Random) -> list[bytes]:
    roll = rng.random()
    if roll < 0.70:
        key = b"string:%d" % index
        cmds = [command("SET", key, rng.randbytes(rng.randint(25, 250)).hex()[: rng.randint(50, 500)])]
    elif roll < 0.80:
        key = b"hash:%d" % index
        cmds = [command("HSET", key, *[x for f in range(10) for x in (b"field%d" % f, b"%d" % rng.randint(0, 10**9))])]
    elif roll < 0.85:
        key = b"set:%d" % index
        cmds = [command("SADD", key, *[b"member%d" % rng.randint(0, 10**6) for _ in range(20)])]
    elif roll < 0.90:
        key = b"zset:%d" % index
        cmds = [command("ZADD", key, *[x for m in range(20) for x in (b"%d" % rng.randint(0, 1000), b"m%d" % m)])]
    elif roll < 0.95:
        key = b"list:%d" % index
        cmds = [command("RPUSH", key, *[b"item%d" % rng.randint(0, 10**6) for _ in range(20)])]
    else:
        key = b"stream:%d" % index
        cmds = [command("XADD", key, "*", "event", "click", "value", rng.randint(0, 100)) for _ in range(3)]
    if rng.random() < 0.30:
        cmds.append(command("PEXPIRE", key, rng.randint(3_600_000, 86_400_000)))
    return cmds


def wait_keys(port: int, expected: int, timeout: float = 600) -> None:
    client = valkey.Valkey(port=port)
    deadline = time.monotonic() + timeout
    while client.dbsize() < expected:
        if time.monotonic() > deadline:
            raise SystemExit(f"target on {port} never reached {expected} keys")
        time.sleep(0.01)


def replication(source: Fleet, keys: int) -> float:
    """(a) REPLICAOF into an empty server until it holds every key; returns seconds."""
    with Fleet.start(FleetSpec()) as target:
        admin = target.client(target.primary)
        source.admin(source.primary, "CONFIG", "SET", "repl-diskless-sync-delay", "0")
        admin.execute_command("CONFIG", "SET", "masterauth", source._state.admin_password)
        admin.execute_command("CONFIG", "SET", "masteruser", "reproducer-sandbox-admin")
        started = time.monotonic()
        admin.execute_command("REPLICAOF", "127.0.0.1", source.primary.port)
        deadline = started + 600
        while admin.info("replication").get("master_link_status") != "up":
            if time.monotonic() > deadline:
                raise SystemExit("replication never came up")
            time.sleep(0.005)
        wait_keys(target.primary.port, keys)
        elapsed = time.monotonic() - started
        admin.execute_command("REPLICAOF", "NO", "ONE")
        return elapsed


def prepared_restores(source: Fleet) -> Path:
    """RESTORE commands for every key of the source, in a file for valkey-cli --pipe."""
    conn = RawConnection(
        "127.0.0.1", source.primary.port, username="reproducer-sandbox-admin", password=source._state.admin_password
    )
    path = Path(tempfile.mkstemp(suffix=".restore")[1])
    cursor = b"0"
    with path.open("wb") as handle:
        while True:
            cursor, batch = conn.call("SCAN", cursor, "COUNT", 1000)
            conn.send(b"".join(command("PTTL", k) + command("DUMP", k) for k in batch))
            replies = conn.read(2 * len(batch))
            for i, key in enumerate(batch):
                ttl = max(replies[2 * i], 0)
                handle.write(command("RESTORE", key, ttl, replies[2 * i + 1], "REPLACE"))
            if cursor == b"0":
                break
    conn.close()
    return path


def pipe(restores: Path, keys: int) -> float:
    """(b) valkey-cli --pipe of the prepared RESTOREs into an empty server; returns seconds."""
    with Fleet.start(FleetSpec()) as target:
        started = time.monotonic()
        with restores.open("rb") as stdin:
            subprocess.run(
                [
                    "valkey-cli",
                    "-p",
                    str(target.primary.port),
                    "--user",
                    "reproducer-sandbox-admin",
                    "--pass",
                    target._state.admin_password,
                    "--no-auth-warning",
                    "--pipe",
                ],
                stdin=stdin,
                check=True,
                capture_output=True,
            )
        wait_keys(target.primary.port, keys)
        return time.monotonic() - started


def reproducer_copy(source: Fleet, keys: int, extra: list[str]) -> tuple[float, float]:
    """(c) `reproducer copy` into an empty server; returns (seconds, peak RSS of the copier in MB)."""
    with Fleet.start(FleetSpec()) as target, tempfile.TemporaryDirectory() as run_dir:
        env = {**os.environ, "SRC_PW": source._state.admin_password, "DST_PW": target._state.admin_password}
        user = "reproducer-sandbox-admin"
        argv = [
            sys.executable,
            "-m",
            "reproducer.cli",
            "copy",
            f"valkey://{user}@127.0.0.1:{source.primary.port}?password_env=SRC_PW",
            f"valkey://{user}@127.0.0.1:{target.primary.port}?password_env=DST_PW",
            "--no-verify",
            "--run-dir",
            run_dir,
            *extra,
        ]
        started = time.monotonic()
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _pid, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not the servers'
        elapsed = time.monotonic() - started
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"reproducer copy failed with status {os.waitstatus_to_exitcode(status)}")
        wait_keys(target.primary.port, keys, timeout=5)
        return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("copy_args", nargs="*", help="extra arguments for reproducer copy (after --)")
    args = parser.parse_args()
    with Fleet.start(FleetSpec()) as source:
        started = time.monotonic()
        build_dataset(source.primary.port, args.keys)
        keys = source.client(source.primary).dbsize()
        print(f"dataset: {keys:,} keys built in {time.monotonic() - started:.1f}s", flush=True)
        a = replication(source, keys)
        print(f"(a) replication full sync: {a:.2f}s  {keys / a:,.0f} keys/s", flush=True)
        restores = prepared_restores(source)
        b = pipe(restores, keys)
        restores.unlink()
        print(f"(b) valkey-cli --pipe RESTORE: {b:.2f}s  {keys / b:,.0f} keys/s", flush=True)
        c, rss = reproducer_copy(source, keys, args.copy_args)
        print(f"(c) reproducer copy: {c:.2f}s  {keys / c:,.0f} keys/s  peak RSS {rss:.0f} MB", flush=True)
    print(f"ratio copy/replication={a / c:.2f} copy/pipe={b / c:.2f} peak_rss_mb={rss:.0f}")


if __name__ == "__main__":
    main()
