"""Copy and verify hold a bounded number of bytes, not a number of keys: big values never pile up in memory.

Each run happens in a child process that reports its own peak RSS (``VmHWM`` in ``/proc/self/status``, which an
exec resets, unlike ``ru_maxrss`` which starts from the forking parent's size); it is compared with the peak of a
child that only imports the same modules, and the difference must stay within a few times the byte bound.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from reproducer.data import sizing
from reproducer.data.endpoint import parse_endpoint
from reproducer.data.verify import VerifyOptions, verify
from reproducer.sandbox.fleet import AclUser, Fleet
from tests.support import cli

BIG_KEYS, BIG_SIZE = 30, 20 * 1000 * 1000
BOUND = 32 * 1024 * 1024
#: What the copier may hold beyond its imports: two batches (the one read, the one the target has not confirmed),
#: each within the bound, plus reader buffers and one payload in transit.
ALLOWED = 5 * BOUND

CHILD = """
import json, sys
from reproducer.data.copy import CopyOptions, copy
from reproducer.data import sizing
from reproducer.data.endpoint import parse_endpoint
from reproducer.data.verify import VerifyOptions, verify
action, source, target, bound = sys.argv[1], parse_endpoint(sys.argv[2]), parse_endpoint(sys.argv[3]), int(sys.argv[4])
read = sys.argv[5] if len(sys.argv) > 5 else "auto"
answer = {}
if action == "copy":
    answer = {"copied": copy(source, target, CopyOptions(max_batch_bytes=bound, read=read)).total.copied}
elif action == "verify":
    report = verify(source, target, VerifyOptions(max_batch_bytes=bound))
    answer = {"ok": report.ok, "compared": report.compared}
status = open("/proc/self/status").read().split("VmHWM:")[1]
print(json.dumps({"answer": answer, "peak_kb": int(status.split()[0])}))
"""


def peak_rss(*args: str) -> tuple[dict[str, object], int]:
    """Run the child with ``args``; its answer and its peak RSS in bytes."""
    done = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    return reply["answer"], reply["peak_kb"] * 1024


def fill(fleet: Fleet) -> None:
    client = fleet.client(fleet.primary)
    blob = os.urandom(BIG_SIZE)  # incompressible: DUMP payloads are as big as the values
    for index in range(BIG_KEYS):
        client.set(f"big:{index}", blob[index:] + blob[:index])
    client.mset({f"small:{i}": f"value-{i}" for i in range(2000)})


def test_copy_and_verify_of_big_values_stay_within_the_byte_bound(fleets):
    source, target = fleets(), fleets()
    fill(source)
    urls = (f"valkey://127.0.0.1:{source.primary.port}", f"valkey://127.0.0.1:{target.primary.port}")
    _answer, baseline = peak_rss("imports", *urls, str(BOUND))
    copied, copy_peak = peak_rss("copy", *urls, str(BOUND))
    assert copied == {"copied": BIG_KEYS + 2000}
    checked, verify_peak = peak_rss("verify", *urls, str(BOUND))
    assert checked == {"ok": True, "compared": BIG_KEYS + 2000}
    data = BIG_KEYS * BIG_SIZE
    for name, peak in (("copy", copy_peak), ("verify", verify_peak)):
        assert peak - baseline < ALLOWED, (
            f"{name} peaked at {(peak - baseline) / 1e6:.0f} MB over its imports for {data / 1e6:.0f} MB of data "
            f"(bound {BOUND / 1e6:.0f} MB, allowed {ALLOWED / 1e6:.0f} MB)"
        )


def test_without_memory_usage_sizes_from_type_commands_bound_the_batches(fleets, monkeypatch):
    users = (AclUser("mover", "m0ver-pw", "~* &* +@all -memory"),)
    source, target = fleets(users=users), fleets(users=users)
    client = source.client(source.primary)
    blob = os.urandom(BIG_SIZE)
    for index in range(8):
        client.set(f"big:{index}", blob[index:] + blob[:index])
    client.mset({f"small:{i}": f"value-{i}" for i in range(2000)})
    monkeypatch.setenv("MOVER_PW", "m0ver-pw")
    urls = [f"valkey://mover@127.0.0.1:{fleet.primary.port}?password_env=MOVER_PW" for fleet in (source, target)]
    _answer, baseline = peak_rss("imports", *urls, str(BOUND))
    copied, copy_peak = peak_rss("copy", *urls, str(BOUND))
    checked, verify_peak = peak_rss("verify", *urls, str(BOUND))
    assert (copied, checked) == ({"copied": 2008}, {"ok": True, "compared": 2008})
    assert max(copy_peak, verify_peak) - baseline < ALLOWED


def test_a_value_many_times_the_bound_is_copied_and_verified_without_being_held(fleets):
    """A 64 MB string against an 8 MB bound (held whole, it alone would pass the allowance) and a hash over it."""
    bound = 8 * 1024 * 1024
    source, target = fleets(), fleets()
    client = source.client(source.primary)
    blob = os.urandom(8 * 1000 * 1000)
    for index in range(8):
        client.append("huge:string", blob[index:] + blob[:index])
    start = [i * 400 % 7_000_000 for i in range(25_000)]  # 10 MB of values: over the bound in any encoding
    client.hset("huge:hash", mapping={f"f{i}": blob[at : at + 400] for i, at in enumerate(start)})
    client.pexpire("huge:hash", 3_600_000)
    urls = (f"valkey://127.0.0.1:{source.primary.port}", f"valkey://127.0.0.1:{target.primary.port}")
    _answer, baseline = peak_rss("imports", *urls, str(bound))
    copied, copy_peak = peak_rss("copy", *urls, str(bound))
    checked, verify_peak = peak_rss("verify", *urls, str(bound))
    assert (copied, checked) == ({"copied": 0}, {"ok": True, "compared": 2})  # both rebuilt in windows
    assert target.client(target.primary).strlen("huge:string") == 64_000_000
    for name, peak in (("copy", copy_peak), ("verify", verify_peak)):
        assert peak - baseline < 5 * bound, f"{name} peaked at {(peak - baseline) / 1e6:.0f} MB over its imports"


@pytest.mark.parametrize("read", ["scan", "sync"])
def test_a_key_sized_far_under_its_real_size_is_copied_in_chunks_not_read_whole(read, fleets, monkeypatch, tmp_path):
    """Without MEMORY USAGE a list is sized from its first five elements: five tiny ones, then 24 of 2 MB.

    A snapshot tells the list's size from the stream itself: it is dropped as it goes by, and copied in chunks.
    """
    bound = 8 * 1024 * 1024
    users = (AclUser("mover", "m0ver-pw", "~* &* +@all -memory"),)
    source, target = fleets(users=users), fleets(users=users)
    client = source.client(source.primary)
    client.rpush("tail:heavy", *[f"small-{i}" for i in range(5)])
    blob = os.urandom(2 * 1000 * 1000)
    for index in range(24):
        client.rpush("tail:heavy", blob[index:] + blob[:index])
    client.mset({f"small:{i}": f"value-{i}" for i in range(500)})
    estimate = client.llen("tail:heavy") * (len(client.lindex("tail:heavy", 0)) + sizing.ELEMENT_OVERHEAD)
    assert estimate < bound, "the list is not under-counted: the test would prove nothing"
    monkeypatch.setenv("MOVER_PW", "m0ver-pw")
    urls = [f"valkey://mover@127.0.0.1:{fleet.primary.port}?password_env=MOVER_PW" for fleet in (source, target)]
    _answer, baseline = peak_rss("imports", *urls, str(bound))
    copied, copy_peak = peak_rss("copy", *urls, str(bound), read)
    assert copied == {"copied": 500}  # the list was rebuilt in chunks, not restored whole
    assert copy_peak - baseline < 5 * bound, f"copy peaked at {(copy_peak - baseline) / 1e6:.0f} MB over its imports"
    if read == "sync":  # verify reads the same target either way: it is checked in the scan variant
        target.client(target.primary).flushall()
        told = cli.run("copy", *urls, "--max-batch-mb", "8", "--no-verify", "--read", "sync", "--run-dir", tmp_path)
        assert told.returncode == 0, told.stderr
        assert "1 key(s) of 127.0.0.1" not in told.stderr, told.stderr  # a snapshot's sizes are exact: none outgrew
        return
    checked, verify_peak = peak_rss("verify", *urls, str(bound))
    assert checked == {"ok": True, "compared": 501}
    assert verify_peak - baseline < 5 * bound, f"verify peaked at {(verify_peak - baseline) / 1e6:.0f} MB over imports"
    target.client(target.primary).rpush("tail:heavy", "one more")
    differs = verify(*(parse_endpoint(url, environ={"MOVER_PW": "m0ver-pw"}) for url in urls), VerifyOptions())
    assert not differs.ok and differs.value_mismatch == 1, differs.to_dict()  # compared in windows, still compared
    target.client(target.primary).flushall()
    told = cli.run("copy", *urls, "--max-batch-mb", "8", "--no-verify", "--read", "scan", "--run-dir", tmp_path / "r")
    assert told.returncode == 0, told.stderr
    assert "1 key(s) of 127.0.0.1" in told.stderr and "over the byte bound" in told.stderr, told.stderr
