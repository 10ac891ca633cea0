"""A sharded source is copied and verified by one worker process per source primary (issue 17).

Each test proves an outcome a user sees: the keys arrive and verify identical, progress and the checkpoint still
reach the parent, no password is in a worker's argv or environment, an error in one worker stops the others and
is the project's error, and an interrupted copy leaves no worker process behind and resumes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from reproducer.data import workers
from reproducer.data.copy import CopyOptions, copy
from reproducer.data.endpoint import parse_endpoint
from reproducer.data.verify import VerifyOptions, verify
from reproducer.errors import DataError, InputError
from reproducer.sandbox.fleet import AclUser, Fleet
from reproducer.sandbox.seed import load_dataset
from tests.support import cli
from tests.support.fleets import key_count, primary_client
from tests.support.wait import eventually

PASSWORD = "w0rker-secret-pw"
USERS = (AclUser("mover", PASSWORD, "~* &* +@all"),)
BOOT = b"reproducer.data.workers"


def url(fleet: Fleet, *, user: bool = False) -> str:
    scheme = "valkeys+cluster" if fleet.spec.tls else "valkey+cluster"
    query = ["password_env=MOVER_PW"] if user else []
    if fleet.spec.tls:
        query.append(f"ca={fleet.tls_files.ca_cert}")
    return f"{scheme}://{'mover@' if user else ''}127.0.0.1:{fleet.servers[0].port}?" + "&".join(query)


def started_by(pid: int) -> dict[int, tuple[int, bytes, bytes]]:
    """Every process of the worker pool ``pid`` started, wherever it is now (they carry ``pid`` in their argv):
    pid -> (parent pid, cmdline, environ)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if BOOT in b" ".join(argv) and str(pid).encode() in argv:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                found[int(entry.name)] = (ppid, b" ".join(argv), (entry / "environ").read_bytes())
        except (OSError, ValueError, IndexError):
            continue  # it ended meanwhile
    return found


def assert_no_process_left(pid: int, what: str = "no process of the pool left") -> None:
    """Nothing ``pid``'s pool started is left, allowing a moment: when the zygote overran its stop grace under load,
    it was SIGKILLed and its workers follow through PR_SET_PDEATHSIG, reaped by init a moment later (a worker
    still running its job, which sleeps 30 s, would stay).
    """
    eventually(lambda: started_by(pid) == {}, what, timeout=5)


def workers_of(pid: int, pool: dict[int, tuple[int, bytes, bytes]] | None = None) -> dict[int, tuple[bytes, bytes]]:
    """The worker processes of ``pid``'s pool (forked by its zygote, the pool's process ``pid`` started), from
    ``pool`` when given (one snapshot of ``started_by(pid)``: a worker can end between two reads of /proc).
    """
    pool = started_by(pid) if pool is None else pool
    zygotes = {each for each, (ppid, _argv, _env) in pool.items() if ppid == pid}
    return {each: (argv, env) for each, (ppid, argv, env) in pool.items() if ppid in zygotes}


def test_three_shards_copy_and_verify_in_one_process_per_primary(fleets, monkeypatch, tmp_path):
    """TLS and an ACL user on both sides; the password is in this process's environment (password_env)."""
    monkeypatch.setenv("MOVER_PW", PASSWORD)
    src = fleets(topology="cluster", shards=3, tls=True, users=USERS)
    dst = fleets(topology="cluster", shards=3, tls=True, users=USERS)
    load_dataset(primary_client(src), 3000)
    source, target = parse_endpoint(url(src, user=True)), parse_endpoint(url(dst, user=True))
    seen: dict[int, tuple[bytes, bytes]] = {}
    pool: dict[int, tuple[int, bytes, bytes]] = {}
    reports: list[int] = []

    def progress(totals, expected):
        reports.append(totals.scanned)
        snapshot = started_by(os.getpid())
        seen.update(workers_of(os.getpid(), snapshot))
        pool.update(snapshot)

    checkpoint = tmp_path / "checkpoint.json"
    result = copy(source, target, CopyOptions(batch=100, checkpoint=checkpoint), progress)
    assert result.total.copied == 3000 and len(result.per_node) == 3
    assert sum(s.copied for s in result.per_node.values()) == 3000
    assert len(seen) == 3 and len(pool) == 4, "one worker process per source primary, and their zygote"
    assert all(PASSWORD.encode() not in argv + environ for _ppid, argv, environ in pool.values())
    assert reports[-1] == 3000 and len(reports) > 3, "progress reached this process while the workers ran"
    saved = json.loads(checkpoint.read_text())
    assert sorted(saved["nodes"]) == sorted(result.per_node)
    assert all(node["done"] == [0] and node["stats"]["copied"] for node in saved["nodes"].values())
    assert_no_process_left(os.getpid())

    compared: list[int] = []
    checked: dict[int, tuple[bytes, bytes]] = {}

    def verify_progress(count):
        compared.append(count)
        checked.update(workers_of(os.getpid()))

    report = verify(source, target, VerifyOptions(batch=200, progress=verify_progress))
    assert report.ok and report.compared == 3000, report.to_dict()
    assert len(checked) == 3 and compared[-1] == 3000
    assert_no_process_left(os.getpid())

    spread = [f"{{{tag}}}new" for tag in ("a", "b", "c")]  # hash tags in three different shards
    for key in spread:
        primary_client(src).set(key, "v")
    primary_client(dst).set(spread[0], "other")
    report = verify(source, target, VerifyOptions(max_listed=2))
    assert (report.missing, report.value_mismatch, report.compared) == (2, 1, 3003), "findings of every worker"
    assert len(report.differences) == 2 and {d["key"] for d in report.differences} < set(spread)
    assert sum(report.source_counts["0"].values()) == 3003


def test_an_error_in_one_worker_stops_the_others_and_is_a_data_error(fleets):
    src, dst = fleets(topology="cluster", shards=3, users=USERS), fleets(topology="cluster", shards=3)
    load_dataset(primary_client(src), 3000)
    refusing = next(n for n in src.servers if n.role == "primary" and n.shard == 1)
    src.admin(refusing, "ACL", "SETUSER", "mover", "-pttl")  # ACLs are per node: one shard refuses
    source = parse_endpoint(url(src, user=True), environ={"MOVER_PW": PASSWORD})
    slow = CopyOptions(batch=50, max_keys_per_second=300)  # the other shards would take about 3 s each
    with pytest.raises(DataError, match="DUMP or PTTL .* failed: .*NOPERM") as caught:
        copy(source, parse_endpoint(url(dst), environ={}), slow)
    assert caught.value.hint == "the source user needs +dump and +pttl"
    assert_no_process_left(os.getpid())
    assert key_count(dst) < 2000, "the other workers were stopped, not left to finish"


def test_a_worker_that_dies_is_named_in_a_retryable_error(fleets):
    src, dst = fleets(topology="cluster", shards=3), fleets(topology="cluster", shards=3)
    load_dataset(primary_client(src), 3000)
    killed: list[int] = []

    def kill_one(totals, expected):
        if not killed and totals.scanned >= 200:
            victim = min(workers_of(os.getpid()))
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    slow = CopyOptions(batch=50, max_keys_per_second=600)
    with pytest.raises(DataError, match="copy worker process for 127.0.0.1:\\d+ was killed by SIGKILL") as caught:
        copy(parse_endpoint(url(src), environ={}), parse_endpoint(url(dst), environ={}), slow, kill_one)
    assert caught.value.retryable and "--resume" in caught.value.hint
    assert_no_process_left(os.getpid())


@pytest.mark.parametrize("how", ["ctrl-c to the process group", "sigterm to the copier"])
def test_an_interrupted_copy_leaves_no_worker_and_resumes(fleets, tmp_path, how):
    src, dst = fleets(topology="cluster", shards=3), fleets(topology="cluster", shards=3)
    load_dataset(primary_client(src), 3000)
    run_dir = tmp_path / "run"
    argv = ["copy", url(src), url(dst), "--run-dir", str(run_dir), "--batch", "50"]
    proc = subprocess.Popen(
        cli.argv(*argv, "--max-keys-per-second", "400", "--no-verify"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a shell's foreground job
    )
    try:
        eventually(lambda: len(workers_of(proc.pid)) == 3 and key_count(dst) >= 300, "workers copying", proc=proc)
        if how.startswith("ctrl-c"):
            os.killpg(proc.pid, signal.SIGINT)  # what a terminal does: every process of the group gets it
        else:
            proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        cli.kill_tree(proc.pid)
    assert proc.returncode == (130 if how.startswith("ctrl-c") else 143), err
    assert "Traceback" not in err
    # the CLI exits at once (os._exit); its zygote and workers follow through PR_SET_PDEATHSIG
    eventually(lambda: started_by(proc.pid) == {}, "no worker outliving the copier", timeout=10)
    assert key_count(dst) < 3000
    resumed = cli.run(*argv, "--resume", timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert key_count(dst) == 3000 and "identical" in resumed.stderr


def test_a_killed_copier_takes_its_workers_with_it(fleets, tmp_path):
    src, dst = fleets(topology="cluster", shards=3), fleets(topology="cluster", shards=3)
    load_dataset(primary_client(src), 3000)
    argv = ["copy", url(src), url(dst), "--run-dir", str(tmp_path / "run"), "--batch", "50"]
    proc = cli.start(*argv, "--max-keys-per-second", "400", "--no-verify")
    try:
        eventually(lambda: len(workers_of(proc.pid)) == 3, "three workers", proc=proc)
        proc.kill()
        proc.wait()
        eventually(lambda: started_by(proc.pid) == {}, "the workers gone with their parent", timeout=10)
    finally:
        cli.kill_tree(proc.pid)


# ---- the pool alone (no servers): jobs are module functions the workers import by name ----------------------


def reporting_job(channel, index: int, count: int) -> dict[str, object]:
    for step in range(count):
        channel.report((index, step))
    return {"index": index, "secret": os.environ.get("POOL_SECRET"), "other": os.environ.get("POOL_OTHER")}


def refusing_job(channel, index: int) -> None:
    if index == 1:
        raise InputError("the job was refused", hint="give it another input")
    time.sleep(30)  # the others would take this long: the first error stops them


def buggy_job(channel) -> None:
    {}["missing"]


def test_the_pool_relays_reports_in_order_returns_results_and_hides_secrets(monkeypatch):
    monkeypatch.setenv("POOL_SECRET", "s3cret-value")
    monkeypatch.setenv("POOL_OTHER", "plain")
    seen: list[tuple[int, object]] = []
    results = workers.run(
        [(reporting_job, (index, 50)) for index in range(3)],
        names=["a", "b", "c"],
        on_report=lambda index, payload: seen.append((index, payload)),
        secrets=["s3cret-value", None],
    )
    assert [r["index"] for r in results] == [0, 1, 2]
    assert all(r["secret"] is None and r["other"] == "plain" for r in results)
    for index in range(3):
        assert [payload for i, payload in seen if i == index] == [(index, step) for step in range(50)]
    assert_no_process_left(os.getpid())


def test_the_first_error_is_the_workers_own_and_stops_the_others():
    started = time.monotonic()
    with pytest.raises(InputError) as caught:
        workers.run([(refusing_job, (index,)) for index in range(3)], names=["a", "b", "c"], on_report=print)
    assert time.monotonic() - started < 20, "the others were waited for (their jobs sleep 30 s), not stopped"
    assert (caught.value.message, caught.value.hint) == ("the job was refused", "give it another input")
    assert_no_process_left(os.getpid(), "the workers still sleeping were stopped, not waited for")


def test_a_bug_in_a_worker_is_a_data_error_naming_the_worker_and_the_line():
    with pytest.raises(DataError, match=r"the copy worker process for shard-7 failed: KeyError: 'missing' \(test_"):
        workers.run([(buggy_job, ())], names=["shard-7"], on_report=print, what="copy worker")
    assert_no_process_left(os.getpid())
