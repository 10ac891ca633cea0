"""TTLs across slow links: a copy dates deadlines early by its measured wait, verify allows exactly that.

A link that holds requests to the source for a while (a loaded bastion, a far region) makes the source answer
PTTL later than it was asked. The copy dates each deadline from the ask, so a copied key never outlives its
source's, and records the longest wait; the verify that follows allows it, and verify allows for its own reads.
A TTL that really differs is still reported.
"""

from __future__ import annotations

from reproducer.data.copy import CopyOptions, copy
from reproducer.data.endpoint import parse_endpoint
from reproducer.data.verify import VerifyOptions, verify
from reproducer.pipeline.data import CopyRequest, copy_endpoints, verify_copy
from reproducer.sandbox.fleet import AclUser, Fleet
from tests.support import cli
from tests.support.proxy import CuttableProxy
from tests.support.wait import Background, eventually, midway

LINK_S = 1.5  # each request to the source waits this long: more than verify's default tolerance of 1 s
KEYS = 200
MOVER = AclUser("mover", "m0ver-pw", "~* &* +@all")


def _url(fleet: Fleet, port: int | None = None) -> str:
    return f"valkey://127.0.0.1:{port or fleet.primary.port}"


def _seed(fleet: Fleet) -> None:
    client = fleet.client(fleet.primary)
    pipe = client.pipeline(transaction=False)
    for index in range(KEYS):
        pipe.set(f"ttl:{index}", index, px=600_000)
    pipe.set("persistent", "forever")
    pipe.execute()


def test_verify_reports_a_ttl_that_differs_and_one_that_was_lost(fleets):
    src, dst = fleets(), fleets()
    _seed(src)
    copy(parse_endpoint(_url(src)), parse_endpoint(_url(dst)), CopyOptions())
    target = dst.client(dst.primary)
    target.pexpire("ttl:1", 300_000)  # five minutes short
    target.persist("ttl:2")  # the TTL lost
    target.pexpire("persistent", 600_000)  # a TTL the source does not have
    report = verify(parse_endpoint(_url(src)), parse_endpoint(_url(dst)), VerifyOptions())
    assert report.ttl_mismatch == 3, report.to_dict()
    flagged = {difference["key"] for difference in report.differences}
    assert flagged == {"ttl:1", "ttl:2", "persistent"}, report.differences


def test_a_copy_over_a_slow_source_link_dates_ttls_early_and_its_verify_allows_exactly_that(fleets, tmp_path):
    src, dst = fleets(), fleets()
    _seed(src)
    proxy = CuttableProxy(src.primary.port, delay=LINK_S, reply_delay=0.0)
    try:
        request = CopyRequest(_url(src, proxy.port), _url(dst), tmp_path / "run")
        copied = copy_endpoints(request)
        assert copied.total.copied == KEYS + 1
        assert copied.total.ttl_early_ms >= LINK_S * 1000, copied.total
        proxy.delay = 0.0  # the link heals before verify: nothing offsets the copy's early deadlines any more
        strict = verify(parse_endpoint(_url(src)), parse_endpoint(_url(dst)), VerifyOptions())
        assert strict.ttl_mismatch == KEYS, "the copy did not date its deadlines early: the test shows nothing"
        report = verify_copy(request, copied)
    finally:
        proxy.close()
    assert report.ok, report.to_dict()
    source, target = src.client(src.primary), dst.client(dst.primary)
    for index in range(0, KEYS, 20):
        on_target = target.pttl(f"ttl:{index}")  # read first: were it later, the source's would be even shorter
        assert on_target <= source.pttl(f"ttl:{index}"), "a copied key outlives its source"


def test_verify_over_a_slow_source_link_allows_for_its_own_reads_and_still_reports_a_real_difference(fleets):
    src, dst = fleets(), fleets()
    _seed(src)
    copy(parse_endpoint(_url(src)), parse_endpoint(_url(dst)), CopyOptions())
    dst.client(dst.primary).pexpire("ttl:7", 300_000)
    proxy = CuttableProxy(src.primary.port, delay=LINK_S, reply_delay=0.0)
    try:
        report = verify(parse_endpoint(_url(src, proxy.port)), parse_endpoint(_url(dst)), VerifyOptions())
    finally:
        proxy.close()
    assert report.ttl_mismatch == 1, report.to_dict()
    [difference] = report.differences
    assert difference["key"] == "ttl:7" and "ms allowed" in difference["detail"], difference


def test_keys_sent_again_after_a_slow_reconnection_to_the_target_do_not_outlive_the_source(fleets):
    """A RESTORE's TTL counts from when it leaves, not from before a (slow) new connection to the node was made."""
    src, dst = fleets(), fleets(users=(MOVER,))
    client = src.client(src.primary)
    pipe = client.pipeline(transaction=False)
    for index in range(4000):
        pipe.set(f"ttl:{index}", index, px=600_000)
    pipe.execute()
    proxy = CuttableProxy(dst.primary.port)
    target_url = parse_endpoint(f"valkey://mover@127.0.0.1:{proxy.port}?password_env=PW", environ={"PW": "m0ver-pw"})
    try:
        running = Background(
            copy, parse_endpoint(_url(src)), target_url, CopyOptions(batch=200, max_keys_per_second=2000)
        )
        midway(running, lambda: dst.client(dst.primary).dbsize(), 1000)
        proxy.reply_delay = LINK_S  # the new connection's AUTH now takes 1.5 s
        proxy.cut()
        at_cut = dst.client(dst.primary).dbsize()
        eventually(lambda: dst.client(dst.primary).dbsize() > at_cut, "keys sent again over the new connection")
        proxy.reply_delay = 0.0
        result = running.result(120)
    finally:
        proxy.close()
    assert result.total.retries > 0 and proxy.connections >= 2, "the connection was not made again"
    report = verify(parse_endpoint(_url(src)), parse_endpoint(_url(dst)), VerifyOptions())
    assert report.ok, report.to_dict()


def test_the_cli_names_the_ttl_tolerance_when_only_ttls_differ_and_a_copy_when_values_do(fleets):
    src, dst = fleets(), fleets()
    _seed(src)
    copy(parse_endpoint(_url(src)), parse_endpoint(_url(dst)), CopyOptions())
    target = dst.client(dst.primary)
    target.pexpire("ttl:3", 300_000)
    only_ttl = cli.run("verify", _url(src), _url(dst))
    assert only_ttl.returncode == 3 and "ttl_mismatch" in only_ttl.stderr, only_ttl.stderr
    assert "--ttl-tolerance-ms" in only_ttl.stderr and "ttl_early_ms" in only_ttl.stderr
    assert "Traceback" not in only_ttl.stderr
    target.set("ttl:4", "changed", keepttl=True)
    both = cli.run("verify", _url(src), _url(dst))
    assert both.returncode == 3 and "copy --replace" in both.stderr and "--ttl-tolerance-ms" not in both.stderr
