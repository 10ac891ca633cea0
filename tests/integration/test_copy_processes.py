"""A sharded source is copied and verified by one worker process per source primary (issue 17).

Each test proves an outcome a user sees: the keys arrive and verify identical, progress and the checkpoint still
reach the parent, no password is in a worker's argv or environment, an error in one worker stops the others and
is the project's error, and an interrupted copy leaves no worker process behind and resumes.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from reproducer.data import workers
from reproducer.data.copy import CopyOptions, copy
from reproducer.data.endpoint import parse_endpoint
from reproducer.data.verify import VerifyOptions, verify
from reproducer.errors import DataError, InputError
from reproducer.heap import YOUNG_GENERATION_THRESHOLD
from reproducer.sandbox.fleet import AclUser, Fleet
from reproducer.sandbox.seed import load_dataset
from tests.support import cli
from tests.support.churn import BLOCK, BLOCKS, churn_faults
from tests.support.fleets import key_count, primary_client
from tests.support.pool import assert_no_process_left, started_by, workers_of
from tests.support.wait import eventually

PASSWORD = "w0rker-secret-pw"
USERS = (AclUser("mover", PASSWORD, "~* &* +@all"),)


def url(fleet: Fleet, *, user: bool = False) -> str:
    scheme = "valkeys+cluster" if fleet.spec.tls else "valkey+cluster"
    query = ["password_env=MOVER_PW"] if user else []
    if fleet.spec.tls:
        query.append(f"ca={fleet.tls_files.ca_cert}")
    return f"{scheme}://{'mover@' if user else ''}127.0.0.1:{fleet.servers[0].port}?" + "&".join(query)


PADDING = 30_000


def pad(fleet: Fleet, count: int) -> None:
    """``count`` small strings without a TTL (``pad:<i>``), spread over the cluster's primaries."""
    pipe = primary_client(fleet).pipeline(transaction=False)
    for index in range(count):
        pipe.set(f"pad:{index}", index)
    pipe.execute()


def test_three_shards_copy_and_verify_in_one_process_per_primary(fleets, monkeypatch, tmp_path):
    """TLS and an ACL user on both sides; the password is in this process's environment (password_env)."""
    monkeypatch.setenv("MOVER_PW", PASSWORD)
    src = fleets(topology="cluster", shards=3, tls=True, users=USERS)
    dst = fleets(topology="cluster", shards=3, tls=True, users=USERS)
    load_dataset(primary_client(src), 3000)
    # 1,000 keys a worker copy in milliseconds, which a worker can start and end between two progress callbacks
    # (it failed so twice under the suite's load): 10,000 more on each primary keep every worker there to be seen
    pad(src, PADDING)
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
    assert result.total.copied == 3000 + PADDING and len(result.per_node) == 3
    assert sum(s.copied for s in result.per_node.values()) == 3000 + PADDING
    assert len(seen) == 3 and len(pool) == 4, "one worker process per source primary, and their zygote"
    assert all(PASSWORD.encode() not in argv + environ for _ppid, argv, environ in pool.values())
    assert reports[-1] == 3000 + PADDING and len(reports) > 3, "progress reached this process while the workers ran"
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
    assert report.ok and report.compared == 3000 + PADDING, report.to_dict()
    assert len(checked) == 3 and compared[-1] == 3000 + PADDING
    assert_no_process_left(os.getpid())

    spread = [f"{{{tag}}}new" for tag in ("a", "b", "c")]  # hash tags in three different shards
    for key in spread:
        primary_client(src).set(key, "v")
    primary_client(dst).set(spread[0], "other")
    report = verify(source, target, VerifyOptions(max_listed=2))
    assert (report.missing, report.value_mismatch, report.compared) == (2, 1, 3003 + PADDING), "every worker's"
    assert len(report.differences) == 2 and {d["key"] for d in report.differences} < set(spread)
    assert sum(report.source_counts["0"].values()) == 3003 + PADDING


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


def asking_job(channel, index: int) -> list[object]:
    answers: list[object] = [channel.ask(("square", index * 10 + step)) for step in range(20)]
    try:
        channel.ask(("refuse", index))
    except DataError as exc:  # the parent's project error, with its hint and retryable flag
        answers.append((exc.message, exc.hint, exc.retryable))
    return answers


def answer_squares(index: int, question: tuple[str, int]) -> int:
    kind, number = question
    if kind == "refuse":
        raise DataError(f"no answer for worker {index}", hint="ask another", retryable=True)
    return number * number


def test_each_worker_gets_the_answers_to_its_own_questions_and_the_parents_errors():
    results = workers.run(
        [(asking_job, (index,)) for index in range(3)], names=["a", "b", "c"], on_report=print, on_ask=answer_squares
    )
    for index, answers in enumerate(results):
        assert answers[:20] == [(index * 10 + step) ** 2 for step in range(20)]
        assert answers[20] == (f"no answer for worker {index}", "ask another", True)
    assert_no_process_left(os.getpid())


def test_a_question_with_nobody_to_answer_it_is_an_error_in_the_worker():
    with pytest.raises(DataError, match="answers no question"):
        workers.run([(asking_job, (0,))], names=["a"], on_report=print)


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


def heap_job(channel) -> tuple[int, int, int]:
    return gc.get_threshold()[0], gc.get_freeze_count(), churn_faults()


def test_workers_collect_at_the_bulk_data_pace_keep_freed_memory_and_leave_the_zygotes_objects_alone():
    threshold, frozen, faults = workers.run([(heap_job, ())], names=["a"], on_report=print)[0]
    assert threshold == YOUNG_GENERATION_THRESHOLD
    assert frozen > 1000, "the zygote's objects (modules, jobs) are outside every collection of the worker"
    assert faults < BLOCKS * BLOCK // 4096 // 10, "each round of blocks faulted its memory in again"
    assert_no_process_left(os.getpid())


def zygote_job(channel, held: str) -> dict[str, object]:
    """What a worker sees of its zygote and of what its parent held."""
    with open(f"/proc/{os.getppid()}/cmdline", "rb") as handle:
        zygote = handle.read()
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # the listing's own descriptor, closed by now
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
    with open(f"/proc/{os.getpid()}/environ", "rb") as handle:
        shown = handle.read()
    return {
        "zygote": zygote.decode(errors="replace"),
        "holds_the_parents_file": any(target == held for target in targets),
        "secrets_in_env": [name for name, value in os.environ.items() if value == "f0rk-secret"],
        "secret_in_proc_environ": b"f0rk-secret" in shown,
        "other_variable_kept": b"KEPT_TOO=plain" in shown and os.environ.get("KEPT_TOO") == "plain",
    }


def dying_job(channel) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


#: Run in a fresh interpreter: the caller must have one thread for the zygote to be forked from it. Modes:
#: alone, thread (another thread runs), nested (a block within the block), closed (no standard input or output),
#: sigchld (SIGCHLD ignored, as a caller may leave it).
FORKING = """
import json, os, signal, sys, threading
from reproducer.data import workers
from reproducer.errors import DataError
from tests.integration.test_copy_processes import dying_job, zygote_job
held, mode, out = open(sys.argv[1]), sys.argv[2], sys.argv[3]  # held: the parent's file, no worker may inherit it
if mode == "thread":
    threading.Thread(target=threading.Event().wait, daemon=True).start()
if mode == "closed":
    os.close(0)
    os.close(1)
if mode == "sigchld":
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
def offered():
    return [pool.zygote.pid for pool, *_rest in workers._forked]
with workers.forked_zygote(["f0rk-secret"]):
    forked = offered()
    if mode == "nested":
        with workers.forked_zygote(["f0rk-secret"]):
            assert offered() == forked, "a block within the block forked another zygote"
    results = workers.run([(zygote_job, (held.name,)) for _ in range(2)], names=["a", "b"], on_report=print,
                          secrets=["f0rk-secret"])
with workers.forked_zygote(["f0rk-secret"]):
    idle = offered()
try:
    workers.run([(dying_job, ())], names=["d"], on_report=print)
except DataError as error:
    died = error.message
with open("/proc/self/cmdline", "rb") as handle:
    mine = handle.read().decode(errors="replace")
with open(out, "w") as handle:
    json.dump({"mine": mine, "results": results, "forked": forked, "idle": idle, "died": died,
               "idle_left": [pid for pid in idle if os.path.exists(f"/proc/{pid}")]}, handle)
"""


def run_forking(tmp_path, mode: str) -> dict:
    held, out = tmp_path / "held-by-the-parent", tmp_path / "seen.json"
    held.write_text("x")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    argv = [sys.executable, "-c", FORKING, str(held), mode, str(out)]
    env = {**os.environ, "THE_PW": "f0rk-secret", "KEPT_TOO": "plain"}  # in the block the caller starts with
    done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


@pytest.mark.parametrize("mode", ["alone", "nested", "closed", "sigchld"])
def test_a_zygote_forked_from_a_thread_free_caller_runs_the_jobs_without_what_the_caller_held(tmp_path, mode):
    seen = run_forking(tmp_path, mode)
    assert len(seen["forked"]) == 1
    for result in seen["results"]:
        assert result["zygote"] == seen["mine"], "the workers' zygote is a fork of the caller, not a new interpreter"
        assert not result["holds_the_parents_file"], "a descriptor of the caller reached a worker"
        assert result["secrets_in_env"] == []
        assert not result["secret_in_proc_environ"], "/proc/PID/environ showed the caller's password"
        assert result["other_variable_kept"]
    assert len(seen["idle"]) == 1 and seen["idle_left"] == [], "a zygote no run took is stopped and reaped"
    assert seen["died"] == "the worker process for d was killed by SIGKILL before it finished"


def test_a_caller_with_another_thread_gets_a_fresh_zygote_not_a_fork(tmp_path):
    seen = run_forking(tmp_path, "thread")
    assert seen["forked"] == [] and seen["idle"] == []
    for result in seen["results"]:
        assert "from reproducer.data.workers import serve" in result["zygote"]
        assert not result["holds_the_parents_file"] and result["secrets_in_env"] == []
        assert not result["secret_in_proc_environ"] and result["other_variable_kept"]
