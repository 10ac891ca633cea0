"""sources/live.py: answers of a live endpoint → a spec; hostile answers never reach it, refusals are named."""

from __future__ import annotations

from dataclasses import replace

import pytest

from reproducer.errors import SourceError, SpecError
from reproducer.model import load_spec, spec_from_data
from reproducer.sources.live import Given, LiveAnswers, Refused, build_live_spec, load_overlay
from tests.golden.regen import HERE

HASH = "30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4"
CONFIG = {
    "acl-pubsub-default": "resetchannels",
    "io-threads": "1",
    "lfu-decay-time": "1",
    "lfu-log-factor": "10",
    "notify-keyspace-events": "Ex",
    "databases": "16",
    "save": "3600 1 300 100 60 10000",
    "client-output-buffer-limit": "normal 0 0 0 slave 268435456 67108864 60 pubsub 67108864 67108864 60",
    "timeout": "300",
}
ANSWERS = LiveAnswers(
    kind="standalone",
    tls=True,
    seed=("10.0.0.5", 6379),
    hello={"server": "valkey", "version": "8.0.1", "proto": "2"},
    info_server="# Server\r\nredis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.1\r\n",
    cluster=False,
    replicas=[1],
    memory=["# Memory\r\nused_memory:1048576\r\nmaxmemory:1073741824\r\n"],
    config=dict(CONFIG),
    acl=[
        f"user app on sanitize-payload #{HASH} ~app:* resetchannels &* -@all +@read +get",
        "user default on nopass sanitize-payload ~* &* +@all",
    ],
)


def test_a_full_read_is_a_version_2_spec_with_what_was_not_seen_listed():
    spec = build_live_spec(ANSWERS, Given(region="GRA", allow_list=None))

    assert spec.schema_version == 2 and spec.source.provider == "live" and spec.source.region == "GRA"
    assert (spec.engine.name, spec.engine.version) == ("valkey", "8.0")
    assert (spec.topology.mode, spec.topology.shards, spec.topology.replicas_per_shard) == ("sentinel", 1, 1)
    assert spec.plan.memory_gb == 1.0 and spec.observed.used_memory_bytes == 1048576
    app = next(u for u in spec.users if u.name == "app")
    assert (app.categories, app.commands, app.keys, app.channels) == (("+@read",), ("+get",), ("app:*",), ("*",))
    config = {c.source_name: c.value for c in spec.configuration}
    assert config["redis_persistence"] == "rdb" and config["redis_notify_keyspace_events"] == "Ex"
    assert config["redis_pubsub_client_output_buffer_limit"] == "64" and config["redis_timeout"] == "300"
    assert spec.given == ("source.region",)
    assert {"network", "allow_list", "backups", "plan.name"} <= {u.field for u in spec.unknown}
    assert spec_from_data(spec.to_dict()) == spec  # what it writes, it reads back


def test_password_hashes_and_passwords_never_reach_the_spec():
    acl = [f"user a on #{HASH} >plain-secret <{HASH} nopass ~k:* +@read", f"user b on #{HASH} ~* +@all"]
    text = build_live_spec(replace(ANSWERS, acl=acl)).to_yaml()

    assert HASH not in text and "plain-secret" not in text and "nopass" not in text
    assert {"a", "b"} <= set(text.split())  # the users themselves are there


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("user x on ~k:* %R~ro:* +@read", "read-only or write-only key pattern"),
        ("user x on ~k:* (~other:* +get)", "selector"),
        ("user x on ~{{ lookup('env') }} +@read", "not one the spec can hold"),
        ("user x on ~k:* +@read skip-sanitize-payload", "skips payload sanitizing"),
        ("user x off ~* +@all", "the user is off"),
        ("user x on ~k:* +get|{{x}}", "not one the spec can hold"),
    ],
)
def test_a_user_the_spec_cannot_hold_is_left_out_and_named(line, why):
    spec = build_live_spec(replace(ANSWERS, acl=[line]))

    assert spec.users == ()
    unknown = {u.field: u.reason for u in spec.unknown}
    assert why in unknown["users.x"]
    assert "{{" not in spec.to_yaml() and "ro:*" not in spec.to_yaml()


@pytest.mark.parametrize("name", ["-rf", "a b", "{{x}}", "é\u202e", "#hash", ""])
def test_a_hostile_user_name_is_never_shown(name):
    spec = build_live_spec(replace(ANSWERS, acl=[f"user {name} on ~* +@all"]))

    assert all(u.name != name for u in spec.users)
    if name.strip():
        assert name not in spec.to_yaml().replace("\n", " ").split()


@pytest.mark.parametrize("value", ["Ex\nrequirepass x", 'a"b', "{{ x }}", "x" * 600, " leading", "KEA\x00", "${var}"])
def test_a_configuration_value_the_spec_cannot_hold_is_left_out(value):
    spec = build_live_spec(replace(ANSWERS, config={**CONFIG, "notify-keyspace-events": value}))

    assert "redis_notify_keyspace_events" not in {c.source_name for c in spec.configuration}
    assert "configuration.redis_notify_keyspace_events" in {u.field for u in spec.unknown}
    assert value.strip() not in spec.to_yaml()


def test_refused_config_and_acl_say_why_without_the_servers_words():
    renamed = Refused("CONFIG GET", "CONFIG on 10.0.0.5:6379 failed: ERR unknown command 'CONFIG', with args ...")
    noperm = Refused("ACL LIST", "ACL on 10.0.0.5:6379 failed: NOPERM User app has no permissions to run 'acl|list'")
    spec = build_live_spec(replace(ANSWERS, config=renamed, acl=noperm))

    unknown = {u.field: u.reason for u in spec.unknown}
    assert "disabled or renamed" in unknown["configuration"] and "NOPERM" in unknown["users"]
    assert spec.configuration == () and spec.users == ()
    assert "with args" not in spec.to_yaml() and "acl|list" not in spec.to_yaml()


def test_partly_refused_reads_keep_what_was_read():
    config = {**CONFIG, "timeout": Refused("CONFIG GET", "NOPERM no permissions")}
    memory = [Refused("INFO", "ERR unknown command 'INFO'")]
    spec = build_live_spec(replace(ANSWERS, config=config, memory=memory, replicas=Refused("INFO", "NOPERM")))

    unknown = {u.field: u.reason for u in spec.unknown}
    assert "NOPERM" in unknown["configuration.redis_timeout"]
    assert {"observed.used_memory_bytes", "plan.memory_gb", "topology.replicas_per_shard"} <= set(unknown)
    assert spec.plan.memory_gb is None and spec.observed.used_memory_bytes is None
    assert len(spec.configuration) == len(CONFIG) - 1 and spec.users


def test_no_version_at_all_is_a_source_error():
    with pytest.raises(SourceError, match="which Valkey or Redis version"):
        build_live_spec(replace(ANSWERS, hello=Refused("HELLO", "x"), info_server=Refused("INFO", "x")))
    with pytest.raises(SourceError):
        build_live_spec(replace(ANSWERS, hello={"server": "dragonfly", "version": "1.0"}, info_server=""))


def test_redis_is_read_as_redis_and_a_cluster_as_its_shards():
    answers = replace(
        ANSWERS,
        kind="cluster",
        cluster=True,
        hello={"server": "redis", "version": "7.0.15"},
        info_server="redis_version:7.0.15\r\n",
        replicas=[1, 1, 2],
        memory=ANSWERS.memory * 3,
    )
    spec = build_live_spec(answers)

    assert (spec.engine.name, spec.engine.version) == ("redis", "7.0")
    assert (spec.topology.mode, spec.topology.shards, spec.topology.replicas_per_shard) == ("cluster", 3, 1)
    assert "[1, 2]" in {u.field: u.reason for u in spec.unknown}["topology.replicas_per_shard"]
    assert spec.plan.memory_gb == 3.0


def test_a_topology_beyond_the_specs_bounds_is_a_source_error():
    with pytest.raises(SourceError, match="no valid spec"):
        build_live_spec(replace(ANSWERS, kind="cluster", cluster=True, replicas=[0] * 600, memory=[]))


def test_version_1_specs_keep_their_bytes_and_version_2_needs_observed():
    path = HERE / "specs" / "business.yaml"
    assert load_spec(path).to_yaml() == path.read_text()
    data = load_spec(path).to_dict()
    with pytest.raises(SpecError, match="observed"):
        spec_from_data({**data, "schema_version": 2})
    with pytest.raises(SpecError, match="need schema_version 2"):
        spec_from_data({**data, "given": ["allow_list"]})


def test_the_overlay_gives_fields_and_refuses_anything_else(tmp_path):
    good = tmp_path / "overlay.yaml"
    good.write_text(
        "region: SBG\nname: cache\nallow_list:\n- cidr: 10.0.0.0/8\nbackups:\n  time: '02:00:00'\n"
        "network:\n  type: public\n"
    )
    given = load_overlay(good)
    spec = build_live_spec(ANSWERS, given)
    assert spec.given == ("allow_list", "backups", "network", "source.description", "source.region")
    assert spec.allow_list[0].cidr == "10.0.0.0/8" and spec.backups.time == "02:00:00"

    for text in ("users: []\n", "allow_list:\n- cidr: not-a-cidr\n", "region: 'a b'\n", "a: &x 1\nb: *x\n"):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(SpecError):
            load_overlay(bad)


@pytest.mark.parametrize(
    "flags",
    [
        {"region": "GRA; rm -rf /"},
        {"region": "{{x}}"},
        {"name": "a\nb"},
        {"name": "x" * 2000},
        {"allow_cidrs": ("10.0.0.0/33",)},
        {"allow_cidrs": ("10.0.0.0/8", "10.0.0.0/8")},
        {"backup_time": "25:00:00"},
        {"memory_gb": 1e9},
    ],
)
def test_a_bad_flag_is_an_input_error_before_any_connection(flags):
    from reproducer.errors import InputError
    from reproducer.pipeline.live import LiveInspectRequest, given_fields

    with pytest.raises(InputError):  # SpecError is an InputError too
        given_fields(LiveInspectRequest(url="valkey://127.0.0.1:1", **flags))


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["inspect"], "either --project"),
        (["inspect", "--project", "p", "--from", "valkey://h:1"], "either --project"),
        (["inspect", "--region", "GRA", "--project", "p"], "--region needs --from"),
        (["inspect", "--from", "valkey://h:1", "--service", "s"], "not with --from"),
        (["archive", "-o", "x"], "--from URL"),
        (["migrate", "--from", "valkey://h:1", "--to", "valkey://h:2"], "--from URL goes with --target only"),
        (["migrate", "--from", "valkey://h:1", "--target", "local", "--cutover"], "--from URL goes with --target"),
        (["migrate", "--target", "local"], "give --project and --service"),
    ],
)
def test_live_options_are_refused_where_they_mean_nothing(argv, says):
    from click.testing import CliRunner

    from reproducer.cli import cli

    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 2 and says in result.output, result.output
