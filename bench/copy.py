"""Benchmark: `reproducer copy` and `verify` against replication (A1), in one run, interleaved, best of several.

The dataset is docs/reference/performance.md's mixed one (70 % strings of 50-500 B, 2.5 % session strings,
10 % hashes of 10 fields, 5 % each sets, sorted sets and lists of 20, 2.5 % streams of 10 entries; 30 % with a
TTL; incompressible base64 values). The baseline is **A1**: replication full sync with
`repl-diskless-sync-delay 0` on the source, `repl-diskless-load on-empty-db` on the replica, compression at its
default. Each round measures, each into fresh empty targets:

  A1 replication; `copy --no-verify`; `verify` of that copy; `copy` as a user runs it (copy, then verify);
  over TLS (`tls-replication yes`): A1 and `copy --no-verify`;
  3 shards: three A1 replications at once (one per source primary) and `copy --no-verify` into 3 shards;
  across engines: `copy --no-verify` Valkey 8 -> Redis 7.0 and `verify` of it.

Every copier run is a separate process (start-up included); its CPU (user + system, from wait4) and peak RSS
are its own, and the servers' CPU (from /proc) gives the split. A ratio is best(baseline) / best(copier) over
the rounds. The last line reads:
  ratio copy/replication=.. verify/replication=.. copy_verify/replication=.. tls_copy/tls_replication=..
  shards3_copy/shards3_replication=.. cross_copy/replication=.. cross_verify/replication=..
  copier_cpu_us_per_key=.. peak_rss_mb=..
"""

from __future__ import annotations

import os
import sys

# This file is named copy.py, as the issue asks; keep it from shadowing the standard library's copy module.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse
import base64
import random
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from reproducer.data.resp import command
from reproducer.data.topology import key_slot
from reproducer.sandbox.fleet import ADMIN_USER, Fleet, FleetSpec, Node, slot_range
from reproducer.sandbox.tls import CaFiles, make_ca_files

TICKS = os.sysconf("SC_CLK_TCK")


# ---- dataset -------------------------------------------------------------------------------------------------


def dataset_commands(keys: int, seed: int = 42) -> Iterator[tuple[bytes, list[bytes]]]:
    """(key, its RESP commands) for the mixed dataset, deterministic for a seed."""
    rng = random.Random(seed)
    pool = base64.b64encode(rng.randbytes(1 << 20))

    def text(low: int, high: int) -> bytes:
        size = rng.randint(low, high)
        start = rng.randrange(len(pool) - size)
        return pool[start : start + size]

    for index in range(keys):
        roll = rng.random()
        if roll < 0.70:
            key, cmds = (
                b"cache:user:%d:profile" % index,
                [command("SET", b"cache:user:%d:profile" % index, text(50, 500))],
            )
        elif roll < 0.725:
            key = b"session:%x%d" % (rng.getrandbits(32), index)
            yield key, [command("SET", key, text(100, 300), "EX", rng.randint(86_400, 7 * 86_400))]
            continue
        elif roll < 0.825:
            key = b"obj:%d" % index
            cmds = [command("HSET", key, *[p for f in range(10) for p in (b"f%d" % f, text(10, 60))])]
        elif roll < 0.875:
            key = b"tags:%d" % index
            cmds = [command("SADD", key, *[text(8, 24) for _ in range(20)])]
        elif roll < 0.925:
            key = b"rank:%d" % index
            cmds = [command("ZADD", key, *[p for _ in range(20) for p in (b"%d" % rng.randint(0, 10**6), text(8, 24))])]
        elif roll < 0.975:
            key = b"queue:%d" % index
            cmds = [command("RPUSH", key, *[text(20, 80) for _ in range(20)])]
        else:
            key = b"events:%d" % index
            cmds = [command("XADD", key, "*", "type", text(10, 40), "payload", text(10, 40)) for _ in range(10)]
        if rng.random() < 0.2821:
            cmds.append(command("EXPIRE", key, rng.randint(86_400, 7 * 86_400)))
        yield key, cmds


def load(fleet: Fleet, keys: int) -> int:
    """Write the dataset into ``fleet`` (each cluster shard its own slots) with valkey-cli --pipe."""
    primaries = [n for n in fleet.servers if n.role == "primary"] or [fleet.primary]
    shards = len(primaries)
    with tempfile.TemporaryDirectory() as scratch:
        files = [open(Path(scratch) / f"{i}.resp", "wb") for i in range(shards)]  # noqa: SIM115
        bounds = [slot_range(i, shards) for i in range(shards)]
        for key, cmds in dataset_commands(keys):
            slot = key_slot(key)
            shard = next(i for i, (low, high) in enumerate(bounds) if low <= slot <= high) if shards > 1 else 0
            files[shard].write(b"".join(cmds))
        for handle in files:
            handle.close()
        for index, node in enumerate(primaries):
            with open(Path(scratch) / f"{index}.resp", "rb") as stdin:
                subprocess.run([*cli_argv(fleet, node), "--pipe"], stdin=stdin, check=True, capture_output=True)
    return sum(int(fleet.client(n).dbsize()) for n in primaries)


def cli_argv(fleet: Fleet, node: Node) -> list[str]:
    """valkey-cli reaching ``node`` as the sandbox admin (over TLS when the fleet has it)."""
    argv = ["valkey-cli", "-h", node.host, "-p", str(node.port), "--user", ADMIN_USER]
    argv += ["--pass", fleet._state.admin_password, "--no-auth-warning"]
    tls = fleet.tls_files
    if tls is not None:
        argv += ["--tls", "--cacert", str(tls.ca_cert), "--cert", str(tls.client_cert), "--key", str(tls.client_key)]
    return argv


# ---- measuring ----------------------------------------------------------------------------------------------


def server_cpu(nodes: list[Node]) -> float:
    """CPU seconds used so far by these servers (and their reaped children: the RDB fork)."""
    total = 0
    for node in nodes:
        with open(f"/proc/{node.pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return total / TICKS


@dataclass
class Run:
    """One measured run: wall seconds, the copier's CPU and peak RSS, the servers' CPU."""

    seconds: float
    copier_cpu: float = 0.0
    rss_mb: float = 0.0
    source_cpu: float = 0.0
    target_cpu: float = 0.0
    #: CPU of the copier's worker processes (one per source primary), last seen in /proc: part of copier_cpu.
    workers_cpu: dict[int, float] = field(default_factory=dict)
    #: Which of ``workers_cpu`` are the pool's zygotes (children of the command; the workers are theirs).
    zygotes: set[int] = field(default_factory=set)


@dataclass
class Results:
    """Every run per measurement name."""

    runs: dict[str, list[Run]] = field(default_factory=dict)

    def add(self, name: str, run: Run, keys: int) -> None:
        self.runs.setdefault(name, []).append(run)
        extra = f"  copier {run.copier_cpu:.2f}s cpu  rss {run.rss_mb:.0f} MB" if run.copier_cpu else ""
        if run.workers_cpu:
            zygote = sum(cpu for pid, cpu in run.workers_cpu.items() if pid in run.zygotes)
            each = " + ".join(f"{cpu:.2f}" for pid, cpu in run.workers_cpu.items() if pid not in run.zygotes)
            parent = run.copier_cpu - sum(run.workers_cpu.values())
            extra += f" (zygote {zygote:.2f}, workers {each or 'none'}, parent {parent:.2f})"
        print(
            f"  {name:<22} {run.seconds:7.2f}s  {keys / run.seconds:>9,.0f} keys/s{extra}"
            f"  servers: source {run.source_cpu:.2f}s target {run.target_cpu:.2f}s cpu",
            flush=True,
        )

    def best(self, name: str) -> Run:
        return min(self.runs[name], key=lambda r: r.seconds)


def url(fleet: Fleet, env_name: str) -> str:
    """The endpoint URL of ``fleet`` for the copier (the password in an environment variable)."""
    scheme = "valkeys" if fleet.spec.tls else "valkey"
    kind = "+cluster" if fleet.spec.topology == "cluster" else ""
    query = f"?password_env={env_name}"
    if fleet.tls_files is not None:
        query += f"&ca={fleet.tls_files.ca_cert}"
    return f"{scheme}{kind}://{ADMIN_USER}@127.0.0.1:{fleet.primary.port}{query}"


def reproducer(source: Fleet, target: Fleet, command_name: str, extra: list[str]) -> Run:
    """Run `reproducer <command> SOURCE TARGET` as its own process; its wall time, CPU and peak RSS."""
    env = {**os.environ, "SRC_PW": source._state.admin_password, "DST_PW": target._state.admin_password}
    with tempfile.TemporaryDirectory() as run_dir:
        argv = [sys.executable, "-m", "reproducer.cli", command_name, url(source, "SRC_PW"), url(target, "DST_PW")]
        argv += ["--run-dir", run_dir, *extra]
        servers = (source.servers, target.servers)
        before = [server_cpu(nodes) for nodes in servers]
        started = time.monotonic()
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        status, usage, workers, zygotes = wait_sampling_children(proc.pid)
        elapsed = time.monotonic() - started
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(
                f"reproducer {command_name} failed ({os.waitstatus_to_exitcode(status)}): {stderr[-2000:]}"
            )
        time.sleep(0.3)  # let the source reap the fork child of a snapshot (SYNC), so its CPU counts
        after = [server_cpu(nodes) for nodes in servers]
    return Run(
        elapsed,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
        after[0] - before[0],
        after[1] - before[1],
        workers,
        zygotes,
    )


def wait_sampling_children(pid: int, every: float = 0.02) -> tuple[int, os.struct_rusage, dict[int, float], set[int]]:
    """wait4 ``pid`` (its usage includes the children it reaped), sampling its children's CPU from /proc meanwhile.

    A worker's figure is its last sample (it can miss up to ``every`` seconds of the worker's last moments). Also
    returns which of them are ``pid``'s own children (the pool's zygote; the workers are its children).
    """
    seen: dict[int, float] = {}
    direct: set[int] = set()
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage, seen, direct
        for child in descendants_of(pid):
            try:
                with open(f"/proc/{child}/stat", encoding="ascii") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            seen[child] = (int(fields[11]) + int(fields[12])) / TICKS
            if int(fields[1]) == pid:
                direct.add(child)
        time.sleep(every)


def descendants_of(pid: int) -> list[int]:
    """The pids below ``pid`` (from /proc/PID/task/*/children, recursively): the zygote and its workers."""
    found: list[int] = []
    queue = [pid]
    while queue:
        parent = queue.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children", encoding="ascii") as handle:
                    children = [int(child) for child in handle.read().split()]
            except OSError:
                continue
            found += children
            queue += children
    return found


def startup_cpu() -> float:
    """CPU seconds of `reproducer copy --help`: the interpreter and the CLI's imports, paid once per run."""
    proc = subprocess.Popen([sys.executable, "-m", "reproducer.cli", "copy", "--help"], stdout=subprocess.DEVNULL)
    _pid, _status, usage = os.wait4(proc.pid, 0)
    return usage.ru_utime + usage.ru_stime


def first_key(source: Fleet, target: Fleet) -> tuple[float, float]:
    """Seconds from the exec of `reproducer copy` to the target's first key written (the server's MONITOR
    timestamp of the first SET or RESTORE), and the CPU seconds of the whole run (a small source: start-up)."""
    env = {**os.environ, "SRC_PW": source._state.admin_password, "DST_PW": target._state.admin_password}
    with tempfile.TemporaryDirectory() as run_dir, target.client(target.primary).monitor() as monitor:
        argv = [sys.executable, "-m", "reproducer.cli", "copy", url(source, "SRC_PW"), url(target, "DST_PW")]
        started = time.time()
        proc = subprocess.Popen(
            [*argv, "--run-dir", run_dir, "--no-verify"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        while True:
            seen = monitor.next_command()
            if str(seen["command"]).split(" ", 1)[0].upper() in ("SET", "RESTORE"):
                break
        _pid, _status, usage = os.wait4(proc.pid, 0)
    return float(seen["time"]) - started, usage.ru_utime + usage.ru_stime


def replicate(sources: list[tuple[Fleet, Node]], keys: int, spec: FleetSpec) -> Run:
    """A1: REPLICAOF every source node at once into fresh servers until each holds its keys."""
    with ExitStack() as stack:
        replicas = [stack.enter_context(Fleet.start(spec)) for _ in sources]
        expected = [int(fleet.client(node).dbsize()) for fleet, node in sources]
        for (fleet, node), replica in zip(sources, replicas, strict=True):
            fleet.admin(node, "CONFIG", "SET", "repl-diskless-sync", "yes")
            fleet.admin(node, "CONFIG", "SET", "repl-diskless-sync-delay", "0")
            replica.admin(replica.primary, "CONFIG", "SET", "repl-diskless-load", "on-empty-db")
            replica.admin(replica.primary, "CONFIG", "SET", "masteruser", ADMIN_USER)
            replica.admin(replica.primary, "CONFIG", "SET", "masterauth", fleet._state.admin_password)
        source_nodes = [node for _fleet, node in sources]
        target_nodes = [r.primary for r in replicas]
        before = server_cpu(source_nodes), server_cpu(target_nodes)
        started = time.monotonic()
        for (_fleet, node), replica in zip(sources, replicas, strict=True):
            replica.admin(replica.primary, "REPLICAOF", node.host, str(node.port))
        clients = [r.client(r.primary) for r in replicas]
        pending = set(range(len(replicas)))
        while pending:
            if time.monotonic() - started > 900:
                raise SystemExit("replication never completed")
            for index in list(pending):
                info = clients[index].info("replication")
                if info.get("master_link_status") == "up" and int(clients[index].dbsize()) >= expected[index]:
                    pending.discard(index)
            time.sleep(0.005)
        elapsed = time.monotonic() - started
        time.sleep(0.3)  # let the source reap its RDB child, so its CPU counts
        run = Run(
            elapsed, source_cpu=server_cpu(source_nodes) - before[0], target_cpu=server_cpu(target_nodes) - before[1]
        )
        for replica in replicas:
            replica.admin(replica.primary, "REPLICAOF", "NO", "ONE")
        return run


# ---- the bench ----------------------------------------------------------------------------------------------


@dataclass
class Sources:
    plain: Fleet
    tls: Fleet | None
    shards: Fleet | None
    tls_spec: FleetSpec | None
    keys: dict[str, int]


def round_of(sources: Sources, results: Results, skip: set[str]) -> None:
    """One round: each measurement once, into fresh targets, baselines next to what they judge."""
    src, n = sources.plain, sources.keys["plain"]
    results.add("a1_replication", replicate([(src, src.primary)], n, FleetSpec()), n)
    with Fleet.start(FleetSpec()) as dst:
        results.add("copy", reproducer(src, dst, "copy", ["--no-verify"]), n)
        results.add("verify", reproducer(src, dst, "verify", []), n)
    with Fleet.start(FleetSpec()) as dst:
        results.add("copy_verify", reproducer(src, dst, "copy", []), n)
    if "cross" not in skip:
        with Fleet.start(FleetSpec(engine="redis")) as dst:
            results.add("cross_copy", reproducer(src, dst, "copy", ["--no-verify"]), n)
            results.add("cross_verify", reproducer(src, dst, "verify", []), n)
    if sources.tls is not None and sources.tls_spec is not None:
        tls, t = sources.tls, sources.keys["tls"]
        results.add("tls_replication", replicate([(tls, tls.primary)], t, sources.tls_spec), t)
        with Fleet.start(sources.tls_spec) as dst:
            results.add("tls_copy", reproducer(tls, dst, "copy", ["--no-verify"]), t)
    if sources.shards is not None:
        shards, s = sources.shards, sources.keys["shards"]
        primaries = [(shards, node) for node in shards.servers if node.role == "primary"]
        results.add("shards3_replication", replicate(primaries, s, FleetSpec()), s)
        with Fleet.start(FleetSpec(topology="cluster", shards=3)) as dst:
            results.add("shards3_copy", reproducer(shards, dst, "copy", ["--no-verify"]), s)


def summary(results: Results, keys: dict[str, int], startup: float) -> str:
    """The last line: every ratio (best baseline / best copier), the copier's CPU per key, its peak RSS.

    The CPU per key is the copy's own (its start-up, ``startup`` CPU seconds, left out): it sizes a machine.
    """

    def ratio(name: str, base: str) -> str:
        if name not in results.runs or base not in results.runs:
            return "n/a"
        return f"{results.best(base).seconds / results.best(name).seconds:.2f}"

    best_copy = results.best("copy")
    cpu_us = (best_copy.copier_cpu - startup) / keys["plain"] * 1e6
    rss = max(r.rss_mb for name, runs in results.runs.items() for r in runs if r.copier_cpu)
    return (
        f"ratio copy/replication={ratio('copy', 'a1_replication')} "
        f"verify/replication={ratio('verify', 'a1_replication')} "
        f"copy_verify/replication={ratio('copy_verify', 'a1_replication')} "
        f"tls_copy/tls_replication={ratio('tls_copy', 'tls_replication')} "
        f"shards3_copy/shards3_replication={ratio('shards3_copy', 'shards3_replication')} "
        f"cross_copy/replication={ratio('cross_copy', 'a1_replication')} "
        f"cross_verify/replication={ratio('cross_verify', 'a1_replication')} "
        f"copier_cpu_us_per_key={cpu_us:.1f} peak_rss_mb={rss:.0f}"
    )


def first_key_line(tries: int = 5, keys: int = 100) -> str:
    """The best of ``tries`` copies of a ``keys``-key source into fresh targets: time to the first key, CPU."""
    runs = []
    with Fleet.start(FleetSpec()) as source:
        load(source, keys)
        for _ in range(tries):
            with Fleet.start(FleetSpec()) as target:
                runs.append(first_key(source, target))
    seconds, cpu = min(runs)
    return f"{seconds:.3f}s after exec (best of {tries}; the whole {keys}-key copy {cpu:.2f}s cpu)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys in the dataset (the goals' size)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best of each is kept")
    parser.add_argument("--skip", action="append", default=[], choices=["tls", "shards", "cross"])
    args = parser.parse_args(argv)
    skip = set(args.skip)
    with ExitStack() as stack, tempfile.TemporaryDirectory() as ca_dir:
        started = time.monotonic()
        plain = stack.enter_context(Fleet.start(FleetSpec()))
        keys = {"plain": load(plain, args.keys)}
        tls = tls_spec = shards = None
        if "tls" not in skip:
            ca = make_ca_files(CaFiles(Path(ca_dir) / "ca.crt", Path(ca_dir) / "ca.key"), "bench CA")
            tls_spec = FleetSpec(tls=True, tls_ca_cert=str(ca.cert), tls_ca_key=str(ca.key))
            tls = stack.enter_context(Fleet.start(tls_spec))
            keys["tls"] = load(tls, args.keys)
        if "shards" not in skip:
            shards = stack.enter_context(Fleet.start(FleetSpec(topology="cluster", shards=3)))
            keys["shards"] = load(shards, args.keys)
        print(f"datasets: {keys} built in {time.monotonic() - started:.1f}s; {os.cpu_count()} cores", flush=True)
        sources = Sources(plain, tls, shards, tls_spec, keys)
        results = Results()
        for number in range(1, args.rounds + 1):
            loadavg = " ".join(f"{x:.1f}" for x in os.getloadavg())
            print(f"round {number}/{args.rounds} (load average {loadavg}: other processes share the cores)", flush=True)
            round_of(sources, results, skip)
    startup = min(startup_cpu() for _ in range(3))
    print(f"start-up (interpreter + CLI imports): {startup:.2f}s cpu per run, left out of the CPU per key")
    print(f"first key: {first_key_line()}")
    print(summary(results, keys, startup))


if __name__ == "__main__":
    main()
