"""No traceback ever (issue 11): malformed specs, URLs, files, flags and state fed to every command of the CLI.

Each property test generates hostile input with Hypothesis (derandomized, so CI sees the same examples),
runs the command in a fresh directory that is its cwd, HOME, XDG_* and TMPDIR (see tests/fuzz_helpers.py),
and asserts: an ``error:`` and a ``hint:`` line on stderr (or click's own usage error), exit 1/2/3/4, no
exception escaping ``main``, no "Traceback", no "internal error:" (the CLI's last resort only masks a bug),
nothing written outside the run/out directories the command names, and no password or secret-file content
echoed. Inputs: spec files (invalid values, unreadable bytes, hostile text, links to secret files), endpoint
URLs, import files (JSONL, AOF files and directories, RDB), ovh.conf and OVH_* variables, sandbox.json,
run-directory state on resume, a committed output directory (symlinks, manifest, deployment.yml), selfmanaged
inventories and variables, and the flags of every command. Endpoints point at a loopback port that is bound
but never listens; the import and checkpoint tests marked ``integration`` use one valkey-server of their own.

``FUZZ_SURVEY=FILE`` lists every failure instead of stopping at the first (see tests/fuzz_helpers.py).
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from reproducer.targets import target_names
from tests.fuzz_helpers import Outcome, check, closed_port, run_in_process, run_subprocess

SPECS = Path(__file__).parents[1] / "golden" / "specs"
GOLDEN: dict[str, dict[str, Any]] = {p.stem: yaml.safe_load(p.read_text()) for p in sorted(SPECS.glob("*.yaml"))}
CLOSED = closed_port()
API = f"http://127.0.0.1:{CLOSED}"  # an OVH API URL where nothing listens
REFUSED = f"valkey://127.0.0.1:{CLOSED}"
SECRET = "s3cr3t-Fuzz-pw"
TARGETS = list(target_names())


def fuzz_settings(examples: int) -> Callable[[Any], Any]:
    """Deterministic, deadline-free Hypothesis settings with ``examples`` examples."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking: a failure is reported as found
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,  # workdir is a factory: one fresh directory per example
        ],
    )


def meta(description: str, exit_code: str = "1-4") -> dict[str, str]:
    """Report metadata of one bad-input class (docs/reliability.md)."""
    return {"description": description, "exit_code": exit_code, "message": "error: + hint:, no traceback"}


@pytest.fixture
def workdir() -> Iterator[Callable[[], Path]]:
    """A factory of fresh empty directories (one per Hypothesis example), all removed afterwards."""
    made: list[Path] = []

    def make() -> Path:
        made.append(Path(tempfile.mkdtemp(prefix="fuzz-")).resolve())
        return made[-1]

    yield make
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


# ---- hostile values -------------------------------------------------------------------------------

PAYLOADS = [
    '"\nresource "aws_security_group_rule" "open" { cidr_blocks = ["0.0.0.0/0"] }\n#',
    "{{ lookup('pipe', 'id > /tmp/fuzz-pwned') }}",
    '${file("/etc/passwd")}',
    "%{ for x in [1] }x%{ endfor }",
    "'; import os; os.system('id') #",
    "metrics:* nopass ~* +@all",
    "x\nenable-debug-command yes",
    "\x00",
    "\u2028\u2029\u0085",
    "../../../../etc/passwd",
    "-" * 3000,
    "ünïcødé ☃ 日本",
    "\ud7ff\ufeff\ufffe",
]
BREAKS = ["\n", "\r\n", "\r", "\x00", "\n- hosts: all\n", "\nenable-debug-command yes\n"]


def hostile_text() -> st.SearchStrategy[str]:
    """Any string an attacker may write into a spec field (it may still be a legal free-text value)."""
    return (
        st.sampled_from(PAYLOADS)
        | st.text(max_size=40)
        | st.builds(str.__add__, st.text(max_size=10), st.sampled_from(PAYLOADS))
    )


def broken_text() -> st.SearchStrategy[str]:
    """A string no identifier, code, ACL rule or config value may hold: it carries a line break or a NUL."""
    return st.builds(
        lambda a, brk, b: a + brk + b,
        st.text(max_size=12),
        st.sampled_from(BREAKS),
        st.sampled_from(PAYLOADS) | st.text(max_size=12),
    )


def _no_nul_or_empty(value: str) -> bool:
    return bool(value) and "\x00" not in value  # environment values cannot hold NUL


def _no_nul(value: str) -> bool:
    return "\x00" not in value  # argv cannot carry NUL (the OS refuses it before reproducer runs)


# ---- spec mutations -------------------------------------------------------------------------------

Path_ = tuple[str | int, ...]
#: string fields whose values are identifiers, codes, rules or config values: a line break is never legal
STRICT_STRINGS: list[Path_] = [
    ("source", "provider"),
    ("source", "project"),
    ("source", "service_id"),
    ("source", "region"),
    ("engine", "version"),
    ("plan", "name"),
    ("plan", "flavor"),
    ("topology", "mode"),
    ("topology", "nodes", 0, "region"),
    ("network", "type"),
    ("network", "private", "subnet", "cidr"),
    ("allow_list", 0, "cidr"),
    ("allow_list", -1, "cidr"),
    ("users", 0, "name"),
    ("users", -1, "name"),
    ("users", 0, "keys", 0),
    ("users", 0, "categories", 0),
    ("users", 0, "commands", 0),
    ("users", -1, "channels", 0),
    ("configuration", 0, "valkey_name"),
    ("configuration", 0, "value"),
    ("configuration", -1, "value"),
    ("backups", "time"),
    ("backups", "regions", 0),
    ("maintenance_time",),
]
#: free-text fields (a description may legitimately hold quotes, braces, unicode)
FREE_TEXT: list[Path_] = [
    ("source", "description"),
    ("plan", "memory_source"),
    ("allow_list", 1, "description"),
    ("network", "private", "name"),
    ("features", 0, "note"),
]
NAN, INF = math.nan, math.inf
BAD_NUMBERS: dict[Path_, list[Any]] = {
    ("topology", "shards"): [0, -1, 100_000_000, 10**30, NAN, INF, 1.5],
    ("topology", "replicas_per_shard"): [-1, 100_000_000, 10**30, NAN, -INF],
    ("plan", "memory_gb"): [NAN, INF, -INF, -1.0, 0.0, 1e300],
    ("backups", "retention_days"): [-1, -(10**9), 10**30, NAN],
    ("network", "private", "vlan_id"): [-1, 99_999, 10**30, NAN],
    ("topology", "nodes", 0, "port"): [-1, 65_536, 99_999, 10**30, NAN],
    ("endpoints", 0, "port"): [-1, 65_536, 99_999, INF],
    ("schema_version",): [0, 2, -1, 10**30, NAN, "1x", None],
}
REQUIRED: list[Path_] = [
    ("source",),
    ("engine",),
    ("plan",),
    ("topology",),
    ("source", "project"),
    ("source", "service_id"),
    ("source", "region"),
    ("engine", "version"),
    ("plan", "flavor"),
    ("topology", "mode"),
    ("topology", "shards"),
    ("users", 0, "name"),
    ("allow_list", 0, "cidr"),
    ("configuration", 0, "value"),
]
MAPPINGS: list[Path_] = [(), ("source",), ("plan",), ("topology",), ("users", 0), ("configuration", 0), ("backups",)]


def _has(doc: Any, path: Path_) -> bool:
    for part in path:
        in_list = isinstance(part, int) and isinstance(doc, list) and -len(doc) <= part < len(doc)
        in_dict = isinstance(part, str) and isinstance(doc, dict) and part in doc
        if not (in_list or in_dict):
            return False
        doc = doc[part]
    return True


def _parent(doc: Any, path: Path_) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


def _set(doc: dict[str, Any], path: Path_, value: Any) -> None:
    _parent(doc, path)[path[-1]] = value


def _delete(doc: dict[str, Any], path: Path_) -> None:
    del _parent(doc, path)[path[-1]]


def _leaves(doc: Any, prefix: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else []
    for key, value in items:
        yield (*prefix, key), value
        yield from _leaves(value, (*prefix, key))


def _related(path: Path_, touched: list[Path_]) -> bool:
    """Whether ``path`` is, contains or lies inside a path an earlier mutation changed (it could undo it)."""
    return any(path[: len(t)] == t or t[: len(path)] == path for t in touched)


@st.composite
def _one_mutation(draw: st.DrawFn, doc: dict[str, Any], touched: list[Path_]) -> None:
    """Apply one certainly-invalid change to ``doc`` in place, away from the paths already ``touched``."""

    def pick(paths: list[Path_]) -> Path_:
        return draw(st.sampled_from([p for p in paths if _has(doc, p) and not _related(p, touched)] or [("x_fuzz",)]))

    kind = draw(st.sampled_from(["strict_string", "number", "wrong_type", "missing", "extra_key"]))
    if kind == "strict_string":
        path = pick(STRICT_STRINGS)
        _set(doc, path, draw(broken_text()))
    elif kind == "number":
        path = pick(list(BAD_NUMBERS))
        _set(doc, path, draw(st.sampled_from(BAD_NUMBERS.get(path, [NAN]))))
    elif kind == "wrong_type":
        path = pick([p for p, _ in _leaves(doc)])
        value = (
            _parent(doc, path).get(path[-1]) if isinstance(_parent(doc, path), dict) else _parent(doc, path)[path[-1]]
        )
        wrong = ["x", 7] if isinstance(value, dict | list) else [{"a": 1}, [1, [2]], {"$ref": "#"}]
        _set(doc, path, draw(st.sampled_from(wrong)))
    elif kind == "missing":
        path = pick(REQUIRED)
        if path == ("x_fuzz",):
            doc["x_fuzz"] = 1
        else:
            _delete(doc, path)
    else:
        path = draw(st.sampled_from([p for p in MAPPINGS if _has(doc, p)]))
        target = doc
        for part in path:
            target = target[part]
        key = "x_" + draw(st.text(min_size=1, max_size=8))
        target[key] = draw(hostile_text())
        path = (*path, key)
    touched.append(path)


def _dump(doc: Any) -> bytes:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).encode("utf-8")


@st.composite
def semantically_bad_spec(draw: st.DrawFn) -> bytes:
    """A well-formed YAML mapping from a golden spec with 1-3 certainly-invalid changes."""
    doc = json.loads(json.dumps(GOLDEN[draw(st.sampled_from(sorted(GOLDEN)))]))
    touched: list[Path_] = []
    for _ in range(draw(st.integers(1, 3))):
        draw(_one_mutation(doc, touched))
    return _dump(doc)


def _insert(data: bytes, position: int, blob: bytes) -> bytes:
    position %= len(data) + 1
    return data[:position] + blob + data[position:]


def _unreadable_variants(base: bytes) -> list[st.SearchStrategy[bytes]]:
    """Ways to make the YAML bytes ``base`` unreadable as a spec, one strategy each."""
    position = st.integers(0, 10_000)
    invalid_utf8 = st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80\x80"])
    not_a_mapping = ["- a\n- b\n", "just text\n", "42\n", "null\n", "", "~\n", "[]\n", "!!binary AAAA\n"]
    bad_yaml = ["schema_version: [1\n", "{{ x }}: 1\n", "a: b: c\n", "\t- x\n", "*undefined\n"]
    return [
        st.builds(lambda at, blob: _insert(base, at, blob), position, invalid_utf8),
        st.builds(lambda at: _insert(base, at, b"\x00"), position),
        st.just(base.decode().encode("utf-16")),
        st.sampled_from([t.encode() for t in not_a_mapping]),
        st.sampled_from([t.encode() + base for t in bad_yaml]),
        st.sampled_from([b"source: " + b"[" * d + b"]" * d + b"\n" for d in (200, 2_000, 20_000)]),
        st.just(base.replace(b"description: ", b"description: caf\xe9 ", 1)),  # Latin-1, not UTF-8
        st.builds(lambda at: base[: max(1, at % max(len(base) - 1, 2))], position),  # truncated
    ]


@st.composite
def unreadable_spec(draw: st.DrawFn) -> bytes:
    """A spec file that cannot be a spec at all: bad encoding, NUL, non-mapping, bad YAML, deep nesting.

    Every variant that is still a mapping starts with an unknown key, so that no lenient reading can turn
    it into a valid spec (some commands that read it would start servers).
    """
    golden = GOLDEN[draw(st.sampled_from(sorted(GOLDEN)))]
    return draw(st.one_of(_unreadable_variants(_dump({"x_fuzz_unknown_key": 1, **golden}))))


@st.composite
def hostile_but_maybe_legal_spec(draw: st.DrawFn) -> bytes:
    """A golden spec with attacker-chosen text in 1-3 string fields (free text or identifiers)."""
    doc = json.loads(json.dumps(GOLDEN[draw(st.sampled_from(sorted(GOLDEN)))]))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from([p for p in FREE_TEXT + STRICT_STRINGS if _has(doc, p)]))
        _set(doc, path, draw(hostile_text()))
    return _dump(doc)


# ---- spec commands --------------------------------------------------------------------------------


def _spec_command(command: str, target: str) -> tuple[list[str], list[str]]:
    """argv (with spec.yaml) and the directories it may write, for one spec-reading command."""
    if command == "render":
        return ["render", "--target", target, "--spec", "spec.yaml", "--out", "out"], ["out"]
    if command == "plan-none":
        return ["plan", "--target", target, "--spec", "spec.yaml", "--out", "out", "--terraform", "none"], ["out"]
    if command == "plan":
        return ["plan", "--target", target, "--spec", "spec.yaml", "--out", "out"], ["out"]
    if command == "apply":
        return ["apply", "--target", target, "--spec", "spec.yaml", "--out", "out"], ["out", "out.valkey-data"]
    return ["drift", "--spec", "spec.yaml", "--endpoint", API], []


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "meta",
    [pytest.param(meta("fuzzed spec: invalid field values, types, missing and extra keys (render, plan)"), id="spec")],
)
@fuzz_settings(90)
@given(spec=semantically_bad_spec(), command=st.sampled_from(["render", "plan-none"]), target=st.sampled_from(TARGETS))
def test_invalid_spec_is_refused_cleanly(meta, workdir, spec, command, target):
    root = workdir()
    (root / "spec.yaml").write_bytes(spec)
    argv, allowed = _spec_command(command, target)
    check(run_in_process(argv, root, allowed=allowed))


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "meta",
    [
        pytest.param(
            meta(
                "fuzzed spec file: non-UTF-8, NUL, UTF-16, not a mapping, bad YAML, deep nesting (every spec command)"
            ),
            id="spec-file",
        )
    ],
)
@fuzz_settings(90)
@given(
    spec=unreadable_spec(),
    command=st.sampled_from(["render", "plan", "apply", "drift"]),
    target=st.sampled_from(TARGETS),
)
def test_unreadable_spec_is_refused_cleanly(meta, workdir, spec, command, target):
    root = workdir()
    (root / "spec.yaml").write_bytes(spec)
    argv, allowed = _spec_command(command, "selfmanaged" if command == "apply" and target != "local" else target)
    check(run_in_process(argv, root, allowed=allowed))


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "meta",
    [
        pytest.param(
            meta(
                "hostile text ({{ }}, ${}, quotes, newlines, U+2028) in spec strings: accepted or refused, "
                "never a crash",
                "0 or 1-4",
            ),
            id="hostile-text",
        )
    ],
)
@fuzz_settings(45)
@given(
    spec=hostile_but_maybe_legal_spec(),
    command=st.sampled_from(["render", "plan-none"]),
    target=st.sampled_from(TARGETS),
)
def test_hostile_spec_text_never_crashes(meta, workdir, spec, command, target):
    root = workdir()
    (root / "spec.yaml").write_bytes(spec)
    argv, allowed = _spec_command(command, target)
    check(run_in_process(argv, root, allowed=allowed), may_succeed=True)


#: files a spec path (or a symlink committed as the spec) may point at, each holding a secret
SECRET_FILES = [
    f"[default]\napplication_secret={SECRET}\n",
    f"[ovh-eu]\napplication_key=ak\napplication_secret={SECRET}\nconsumer_key=ck\n",
    f"TOKEN={SECRET}\n",
    f"root:{SECRET}:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",
    f'{{"token": "{SECRET}", }}\n',
    f"-----BEGIN OPENSSH PRIVATE KEY-----\n{SECRET}\n-----END OPENSSH PRIVATE KEY-----\n",
    f"password: {SECRET}\n  bad: indent\n",
    f"users:\n- name: app\n  password: {SECRET}\n",
]


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("meta", "content"),
    [
        pytest.param(
            meta(f"spec committed as a link to a secret file ({i}): its content never echoed"), c, id=f"secret-{i}"
        )
        for i, c in enumerate(SECRET_FILES)
    ],
)
@fuzz_settings(4)
@given(command=st.sampled_from(["render", "plan-none", "drift"]), target=st.sampled_from(["aws", "local"]))
def test_spec_linked_to_a_secret_never_echoes_it(meta, content, workdir, command, target):
    """spec.yaml is a link to a secret file (a pull request can commit one): refused without quoting it."""
    root = workdir()
    (root / "secret.txt").write_text(content)
    (root / "spec.yaml").symlink_to("secret.txt")
    argv, allowed = _spec_command(command, target)
    check(run_in_process(argv, root, allowed=allowed), secrets=[SECRET])


# ---- endpoint URLs --------------------------------------------------------------------------------

SCHEMES = [
    "valkey",
    "valkeys",
    "redis",
    "rediss",
    "valkey+sentinel",
    "valkeys+sentinel",
    "valkey+cluster",
    "valkeys+cluster",
    "http",
    "valkey+unix",
    "VALKEY",
    "",
]
HOSTS = ["127.0.0.1", "localhost", "[::1]", "ünïcødé.invalid", "256.256.256.256", "[::1", "a b", "127.0.0.1\n", ""]
PORTS = [
    str(CLOSED),
    "0",
    "-1",
    "65536",
    "99999",
    "18446744073709551616",
    "",
    "abc",
    "".join(chr(0xFF10 + int(d)) for d in str(CLOSED)),
]
USERINFO = ["", "app@", f"app:{SECRET}@", f"app%3A{SECRET}@", "@", f":{SECRET}@", "ü s€r@"]
PATHS = ["", "/0", "/-1", "/99999999999999999999", "/abc", "/mymaster", "/mymaster/x", "/ /"]
QUERIES = [
    "",
    f"?password={SECRET}",
    f"?pass={SECRET}",
    "?password_env=FUZZ_UNSET_VARIABLE",
    "?password_file=/nonexistent/fuzz",
    "?password_file=.",
    "?ca=/nonexistent/ca.pem",
    "?ca=.",
    "?cert=/nonexistent/c.pem&key=/nonexistent/k.pem",
    "?cert=/nonexistent/c.pem",
    "?insecure=maybe",
    "?sentinel_tls=2",
    "?ca=%00",
    "?password_env=",
    "?&&=&",
]


@st.composite
def bad_url(draw: st.DrawFn) -> str:
    """An endpoint URL that cannot reach a server: bad syntax or options, or a port where nothing listens.

    A resolvable host always gets an explicit port (a bare host means 6379, where a server may run).
    """
    scheme = draw(st.sampled_from(SCHEMES))
    hosts = []
    for _ in range(draw(st.integers(1, 3))):
        host, port = draw(st.sampled_from(HOSTS)), draw(st.sampled_from(PORTS))
        hosts.append(
            f"{host}:{port}" if port or host in ("ünïcødé.invalid", "256.256.256.256", "a b") else f"{host}:{CLOSED}"
        )
    tail = draw(st.sampled_from(PATHS)) + draw(st.sampled_from(QUERIES))
    return f"{scheme}://{draw(st.sampled_from(USERINFO))}{','.join(hosts)}{tail}"


def _url_command(command: str, url: str) -> tuple[list[str], list[str]]:
    if command == "copy-source":
        return ["copy", url, REFUSED, "--run-dir", "run"], ["run"]
    if command == "copy-target":
        return ["copy", REFUSED, url, "--run-dir", "run"], ["run"]
    if command == "verify":
        return ["verify", url, REFUSED, "--run-dir", "run"], ["run"]
    if command == "export":
        return ["export", url, "out.jsonl"], []
    if command == "import":
        return ["import", "data.jsonl", url], []
    return ["migrate", "--project", "0" * 32, "--service", "s", "--to", url, "--endpoint", API, "--run-dir", "run"], [
        "run"
    ]


GOOD_JSONL = '{"db":0,"key":"k","type":"string","expire_at_ms":null,"value":"v"}\n'


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "meta",
    [
        pytest.param(
            meta(
                "fuzzed endpoint URLs: bad ports (0, 99999, -1), missing CA files, password in URL or query, "
                "unicode hosts"
            ),
            id="url",
        )
    ],
)
@fuzz_settings(150)
@given(
    url=bad_url(),
    command=st.sampled_from(["copy-source", "copy-target", "verify", "export", "import", "migrate"]),
)
def test_bad_endpoint_url_is_refused_cleanly(meta, workdir, url, command):
    root = workdir()
    (root / "data.jsonl").write_text(GOOD_JSONL)
    argv, allowed = _url_command(command, url)
    check(run_in_process(argv, root, allowed=allowed), secrets=[SECRET])


# ---- data files -----------------------------------------------------------------------------------

BAD_JSONL_LINES = [
    '{"db":0,"key":"z","type":"zset","expire_at_ms":null,"value":"not-a-list"}',
    '{"db":0,"key":"u","type":"no-such-type","expire_at_ms":null,"value":"v"}',
    '["a","list","line"]',
    '{"db":0,"key":"t","type":"string","expire_at_ms":"tomorrow","value":"v"}',
    '{"db":-1,"key":"d","type":"string","expire_at_ms":null,"value":"v"}',
    '{"db":99999999999,"key":"d","type":"string","expire_at_ms":null,"value":"v"}',
    '{"db":0,"key":"b","type":"string","expire_at_ms":null,"value":"%%%","b64":true}',
    '{"db":0,"key":"h","type":"hash","expire_at_ms":null,"value":[["only-field"]]}',
    '{"db":0,"key":"s","type":"stream","expire_at_ms":null,"value":{"entries":"x"}}',
    '{"db":0,"key":"n","type":"string","expire_at_ms":NaN,"value":"v"}',
    '{"db":0,"key":"n","type":"string","expire_at_ms":1e999,"value":"v"}',
    '{"db":0,"key":{"a":1},"type":"string","expire_at_ms":null,"value":"v"}',
    '{"db":0,"key":"k","type":"list","expire_at_ms":null,"value":[1,{"x":[]}]}',
    "null",
    "42",
    '{"db":0,',
    "\x00\x01\x02",
]


@st.composite
def bad_jsonl(draw: st.DrawFn) -> bytes:
    """A JSONL file with at least one line that is not a reproducer record (or bytes that are not UTF-8)."""
    lines = draw(st.lists(st.sampled_from([GOOD_JSONL.strip(), *BAD_JSONL_LINES]), min_size=0, max_size=4))
    lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(BAD_JSONL_LINES)))
    data = "\n".join(lines).encode() + b"\n"
    if draw(st.booleans()):
        data = _insert(data, draw(st.integers(0, 1000)), draw(st.sampled_from([b"\xff\xfe", b"\xc3(", b"\x80"])))
    return data


@st.composite
def bad_aof(draw: st.DrawFn) -> bytes:
    """Bytes that are not a complete RESP command stream (garbage, truncation, wrong types)."""
    return draw(
        st.sampled_from(
            [
                b"hello world\n",
                b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n",
                b"*2\r\n$3\r\nSET\r\n$100\r\nshort\r\n",
                b"*-5\r\n",
                b"*1\r\n:42\r\n",
                b"*1\r\n*1\r\n$4\r\nPING\r\n",
                b"$5\r\nhello\r\n",
                b"*99999999999999999999\r\n",
                b"\x00\xff\xfe" * 20,
                b"+OK\r\n",
                b"*0\r\n",
                b"*2\r\n$6\r\nSELECT\r\n$3\r\nabc\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
                b"*2\r\n$6\r\nSELECT\r\n$2\r\n-1\r\n",
            ]
        )
        | st.binary(min_size=1, max_size=64).filter(lambda b: not b.startswith(b"*"))
    )


@st.composite
def bad_rdb_without_magic(draw: st.DrawFn) -> bytes:
    """An RDB file without the REDIS/VALKEY magic (refused before any server starts)."""
    return draw(st.binary(min_size=0, max_size=64).filter(lambda b: b[:5] not in (b"REDIS", b"VALKE")))


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("meta", "suffix", "content"),
    [
        pytest.param(
            meta("fuzzed JSONL import file (bad lines, types, expiry, encoding)"), ".jsonl", bad_jsonl(), id="jsonl"
        ),
        pytest.param(meta("fuzzed AOF import file (not RESP, truncated, wrong types)"), ".aof", bad_aof(), id="aof"),
        pytest.param(meta("fuzzed RDB import file without magic"), ".rdb", bad_rdb_without_magic(), id="rdb"),
    ],
)
@fuzz_settings(40)
@given(data=st.data())
def test_bad_import_file_into_refusing_target_is_refused_cleanly(meta, suffix, content, workdir, data):
    root = workdir()
    (root / f"data{suffix}").write_bytes(data.draw(content))
    check(run_in_process(["import", f"data{suffix}", REFUSED], root))


MANIFESTS = [
    "file appendonly.aof.1.incr.aof seq 1 type i\n",
    "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n",
    "file ../secret.txt seq 1 type i\n",
    "file /etc/hostname seq 1 type i\n",
    "file\n",
    "seq 1 type i\n",
    "",
    "\x00\xff garbage\n",
]


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("meta", "content"),
    [
        pytest.param(
            meta(f"AOF directory, members linked to a secret file ({i}), hostile manifest"), c, id=f"aof-dir-{i}"
        )
        for i, c in enumerate(SECRET_FILES)
    ],
)
@fuzz_settings(6)
@given(manifest=st.sampled_from(MANIFESTS))
def test_hostile_aof_directory_is_refused_without_echo(meta, content, workdir, manifest):
    """The directory's members are links to a secret file: refused, and the secret never quoted back."""
    root = workdir()
    (root / "secret.txt").write_text(content)
    (root / "aof").mkdir()
    (root / "aof" / "appendonly.aof.manifest").write_text(manifest, errors="surrogateescape")
    for member in ("appendonly.aof.1.incr.aof", "appendonly.aof.1.base.rdb"):
        (root / "aof" / member).symlink_to("../secret.txt")
    check(run_in_process(["import", "aof", REFUSED, "--format", "aof"], root), secrets=[SECRET])


@pytest.fixture(scope="module")
def live_target() -> Iterator[str]:
    """One scratch valkey-server (no persistence) for the import tests; its URL."""
    if shutil.which("valkey-server") is None:
        pytest.skip("valkey-server is not installed")
    directory = Path(tempfile.mkdtemp(prefix="fuzz-valkey-"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    proc = subprocess.Popen(
        [
            "valkey-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(port)
        yield f"valkey://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"valkey-server did not listen on {port}")


@pytest.mark.integration
@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("meta", "suffix", "content"),
    [
        pytest.param(meta("fuzzed JSONL file imported into a live server"), ".jsonl", bad_jsonl(), id="jsonl"),
        pytest.param(meta("fuzzed AOF file imported into a live server"), ".aof", bad_aof(), id="aof"),
    ],
)
@fuzz_settings(40)
@given(data=st.data())
def test_bad_import_file_into_live_target_is_refused_cleanly(meta, suffix, content, workdir, live_target, data):
    import valkey

    with valkey.Valkey.from_url(live_target) as client:
        client.flushall()  # import refuses a non-empty target: start empty so the file itself is judged
    root = workdir()
    (root / f"data{suffix}").write_bytes(data.draw(content))
    check(run_in_process(["import", f"data{suffix}", live_target], root))


RDB_WITH_MAGIC = {
    "truncated-header": b"REDIS0011\xfa\x09redis-ver",
    "garbage-after-magic": b"REDIS0011" + bytes(range(256)) * 4,
    "future-version": b"REDIS9999\xff" + b"\x00" * 8,
}


@pytest.mark.integration
@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("meta", "name"),
    [pytest.param(meta(f"corrupt RDB with magic ({n}): fails fast"), n, id=n) for n in RDB_WITH_MAGIC],
)
def test_corrupt_rdb_fails_fast(meta, name, workdir):
    """A corrupt RDB is refused within 15 s (in a subprocess: today the scratch server is waited for 120 s)."""
    root = workdir()
    (root / "dump.rdb").write_bytes(RDB_WITH_MAGIC[name])
    check(run_subprocess(["import", "dump.rdb", REFUSED], root, timeout=15))


@pytest.fixture(scope="module")
def valid_rdb(live_target: str) -> bytes:
    """A real RDB file (a few keys of every type) saved by the scratch valkey-server."""
    import valkey

    with valkey.Valkey.from_url(live_target) as client:
        client.flushall()
        client.set("s", "v")
        client.hset("h", mapping={"f": "v"})
        client.rpush("l", "a", "b")
        client.zadd("z", {"m": 1.5})
        client.pexpire("s", 86_400_000)
        directory, name = client.config_get("dir")["dir"], client.config_get("dbfilename")["dbfilename"]
        client.save()
        client.flushall()
    return (Path(directory) / name).read_bytes()


@st.composite
def damaged_rdb(draw: st.DrawFn, valid: bytes) -> bytes:
    """A real RDB file cut short, with a flipped byte, or with another version number."""
    kind = draw(st.sampled_from(["truncated", "flipped", "version"]))
    if kind == "truncated":
        return valid[: draw(st.integers(9, len(valid) - 1))]
    if kind == "flipped":
        at = draw(st.integers(9, len(valid) - 1))
        return valid[:at] + bytes([valid[at] ^ draw(st.integers(1, 255))]) + valid[at + 1 :]
    return valid[:5] + draw(st.sampled_from([b"0000", b"9999", b"00-1", b"abcd"])) + valid[9:]


@pytest.mark.integration
@pytest.mark.bad_input
@pytest.mark.parametrize(
    "meta", [pytest.param(meta("damaged real RDB (truncated, a flipped byte, another version): fails fast"), id="rdb")]
)
@fuzz_settings(4)
@given(data=st.data())
def test_damaged_rdb_fails_fast(meta, workdir, valid_rdb, live_target, data):
    """In a subprocess with a 20 s limit: a damaged RDB must be refused, not waited for."""
    root = workdir()
    (root / "dump.rdb").write_bytes(data.draw(damaged_rdb(valid_rdb)))
    check(run_subprocess(["import", "dump.rdb", live_target], root, timeout=20))


# ---- OVH configuration and sandbox state ----------------------------------------------------------


@st.composite
def bad_ovh_conf(draw: st.DrawFn) -> bytes:
    """An ovh.conf that cannot give complete credentials: bad encoding, duplicates, no section, garbage."""
    section = draw(st.sampled_from(["ovh-eu", "default", API, "ovh-eu\n[x"]))
    body = f"[{section}]\napplication_key=ak\napplication_secret=as\n"
    kind = draw(st.sampled_from(["non_utf8", "duplicate_section", "duplicate_key", "no_section", "garbage", "hostile"]))
    if kind == "non_utf8":
        return body.encode() + b"endpoint=ovh-\xff\xfe\n"
    if kind == "duplicate_section":
        return (body + body).encode()
    if kind == "duplicate_key":
        return (body + "application_key=again\n").encode()
    if kind == "no_section":
        return b"application_key=ak\napplication_secret=as\n"
    if kind == "garbage":
        return draw(st.binary(min_size=1, max_size=80))
    return f"[default]\nendpoint={draw(hostile_text())}\n".encode("utf-8", "surrogatepass")


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "meta",
    [
        pytest.param(
            meta("fuzzed ovh.conf (non-UTF-8, duplicate section or key, garbage) for inspect and drift"), id="ovh-conf"
        )
    ],
)
@fuzz_settings(50)
@given(conf=bad_ovh_conf(), command=st.sampled_from(["inspect", "inspect-default-endpoint", "drift"]))
def test_bad_ovh_conf_is_refused_cleanly(meta, workdir, conf, command):
    root = workdir()
    (root / "ovh.conf").write_bytes(conf)
    (root / "spec.yaml").write_bytes(_dump(GOLDEN["business"]))
    argv = {
        "inspect": ["inspect", "--project", "0" * 32, "--endpoint", "ovh-eu", "--config", "ovh.conf"],
        "inspect-default-endpoint": ["inspect", "--project", "0" * 32, "--config", "ovh.conf"],
        "drift": ["drift", "--spec", "spec.yaml", "--endpoint", "ovh-eu", "--config", "ovh.conf"],
    }[command]
    check(run_in_process(argv, root))


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("meta", "place", "conf"),
    [
        pytest.param(
            meta("non-UTF-8 ./ovh.conf found by the ovh client itself"),
            "ovh.conf",
            b"[ovh-eu]\napplication_key=\xff\n",
            id="cwd-ovh-conf",
        ),
        pytest.param(
            meta("~/.ovh.conf with a duplicate section, found by the ovh client itself"),
            ".ovh.conf",
            b"[ovh-eu]\n[ovh-eu]\n",
            id="home-ovh-conf",
        ),
    ],
)
def test_implicit_bad_ovh_conf_is_refused_cleanly(meta, place, conf, workdir):
    """The ovh client reads ./ovh.conf and ~/.ovh.conf when imported: a subprocess sees the fresh HOME and cwd."""
    root = workdir()
    (root / place).write_bytes(conf)
    check(run_subprocess(["inspect", "--project", "0" * 32, "--endpoint", "ovh-eu"], root))


#: pid values that can never name a live process once converted (never an int, a bool or a numeric string)
SAFE_PIDS = [None, "not-a-pid", "", [], {}, "½", NAN, INF, "0x1p3"]


@st.composite
def corrupt_sandbox_json(draw: st.DrawFn) -> bytes:
    """A sandbox.json that is not what the sandbox writes; its pid (if any) can name no process."""
    kind = draw(st.sampled_from(["not_json", "non_utf8", "not_object", "bad_pid", "no_pid", "empty"]))
    if kind == "not_json":
        return b'{"pid": 12'
    if kind == "non_utf8":
        return b'{"endpoint": "\xff\xfe"}'
    if kind == "not_object":
        return draw(st.sampled_from([b"[]", b'"text"', b"null", b"42"]))
    if kind == "bad_pid":
        return json.dumps({"pid": draw(st.sampled_from(SAFE_PIDS)), "endpoint": API}).encode()
    if kind == "no_pid":
        return json.dumps({"endpoint": API, "services": "x"}).encode()
    return b""


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "meta", [pytest.param(meta("corrupt sandbox.json (sandbox status, sandbox down)"), id="sandbox-json")]
)
@fuzz_settings(30)
@given(state=corrupt_sandbox_json(), command=st.sampled_from(["status", "down"]))
def test_corrupt_sandbox_state_is_refused_cleanly(meta, workdir, state, command):
    root = workdir()
    (root / "sandbox").mkdir()
    (root / "sandbox" / "sandbox.json").write_bytes(state)
    check(run_in_process(["sandbox", command, "--dir", "sandbox"], root))


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "meta",
    [pytest.param(meta("hostile OVH_* environment values without a consumer key (inspect, drift)"), id="ovh-env")],
)
@fuzz_settings(20)
@given(
    endpoint=st.none()
    | st.sampled_from(["ovh-eu", API, "ovh-eu\n[x]", "http://127.0.0.1:99999", "file:///etc/passwd"])
    | hostile_text().filter(_no_nul_or_empty),
    key=st.none() | hostile_text().filter(_no_nul_or_empty),
    command=st.sampled_from(["inspect", "drift"]),
)
def test_hostile_ovh_environment_is_refused_cleanly(meta, workdir, endpoint, key, command):
    root = workdir()
    (root / "spec.yaml").write_bytes(_dump(GOLDEN["business"]))
    env = {"OVH_ENDPOINT": endpoint, "OVH_APPLICATION_KEY": key, "OVH_APPLICATION_SECRET": key}
    argv = ["inspect", "--project", "0" * 32] if command == "inspect" else ["drift", "--spec", "spec.yaml"]
    check(run_in_process(argv, root, env={k: v for k, v in env.items() if v is not None}))


# ---- run directories left by an earlier attempt ---------------------------------------------------

#: (state file in the run directory, argv resuming from it); with no OVH credentials, migrate reads its state
#: before it fails, copy reads its checkpoint before it connects (copy_resume uses a live server: see below)
RESUMES: list[tuple[str, list[str]]] = [
    (
        "run.json",
        [
            "migrate",
            "--project",
            "p",
            "--service",
            "s",
            "--to",
            REFUSED,
            "--endpoint",
            API,
            "--resume",
            "--run-dir",
            "run",
        ],
    ),
    (
        "job.json",
        [
            "migrate",
            "--project",
            "p",
            "--service",
            "s",
            "--target",
            "local",
            "--endpoint",
            API,
            "--resume",
            "--run-dir",
            "run",
        ],
    ),
    (
        "job.json",
        [
            "migrate",
            "--project",
            "p",
            "--service",
            "s",
            "--target",
            "aws",
            "--dry-run",
            "--endpoint",
            API,
            "--resume",
            "--run-dir",
            "run",
        ],
    ),
]
_JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_SHAPED = st.fixed_dictionaries(
    {},
    optional={
        "format_version": _JSON,
        "phases": _JSON | st.fixed_dictionaries({"inspect": _JSON, "bogus": _JSON}),
        "settings": _JSON,
        "grants": _JSON,
        "source": _JSON,
        "target": _JSON,
        "cursors": _JSON,
        "nodes": _JSON,
    },
)


@st.composite
def corrupt_state(draw: st.DrawFn) -> bytes:
    """A state file no attempt wrote: garbage, non-UTF-8, JSON of the wrong shape or types.

    It never marks the render, plan or apply phase of a job as finished (a resume would then run Ansible).
    """
    fixed = [b"", b"{", b"\xff\xfe{}", b"null", b"[]", b'"x"', b"NaN", b'{"phases": {"inspect": {"finished": true}}}']
    text = draw(st.sampled_from(fixed) | st.builds(lambda v: json.dumps(v).encode(), _JSON | _SHAPED))
    return text if not any(w in text for w in (b"render", b"plan", b"apply")) else b"{"


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "meta",
    [pytest.param(meta("corrupt run-directory state (checkpoint.json, run.json, job.json) on resume"), id="run-dir")],
)
@fuzz_settings(60)
@given(state=corrupt_state(), resume=st.sampled_from(RESUMES))
def test_corrupt_run_dir_state_is_refused_cleanly(meta, workdir, state, resume):
    relative, argv = resume
    root = workdir()
    (root / "run" / relative).parent.mkdir(parents=True, exist_ok=True)
    (root / "run" / relative).write_bytes(state)
    outcome = run_in_process(argv, root, allowed=["run"], env={"REPRODUCER_PASSWORD_DEFAULT": SECRET})
    check(outcome, secrets=[SECRET])


@pytest.mark.integration
@pytest.mark.bad_input
@pytest.mark.parametrize(
    "meta", [pytest.param(meta("corrupt copy checkpoint on --resume (live source and target)"), id="checkpoint")]
)
@fuzz_settings(30)
@given(state=corrupt_state())
def test_corrupt_checkpoint_is_refused_cleanly(meta, workdir, live_target, state):
    root = workdir()
    (root / "run" / "data").mkdir(parents=True)
    (root / "run" / "data" / "checkpoint.json").write_bytes(state)
    argv = ["copy", f"{live_target}/0", f"{live_target}/1", "--resume", "--run-dir", "run", "--no-verify"]
    check(run_in_process(argv, root, allowed=["run"]))


#: committed ansible/deployment.yml of a local target, as a pull request may change it (never a usable port:
#: a usable one runs an Ansible check, which takes half a minute)
DEPLOYMENTS = {
    "not-utf8": b"valkey_instances:\n- port: \xff\n",
    "not-a-mapping": b"- 7100\n",
    "no-instances": b"{}\n",
    "instances-a-string": b"valkey_instances: x\n",
    "instances-empty": b"valkey_instances: []\n",
    "port-a-word": b"valkey_instances:\n- port: abc\n",
    "port-missing": b"valkey_instances:\n- {}\n",
    "port-nan": b"valkey_instances:\n- port: .nan\n",
    "bad-yaml": b"valkey_instances: [\n",
}


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("meta", "name"),
    [
        pytest.param(meta(f"plan --target local, committed deployment.yml: {n}", "0 or 1-4"), n, id=n)
        for n in DEPLOYMENTS
    ],
)
def test_corrupt_local_deployment_file_never_crashes_plan(meta, name, workdir):
    """A committed deployment.yml comes from the pull request: plan refuses or ignores it, never crashes."""
    root = workdir()
    (root / "spec.yaml").write_bytes(_dump(GOLDEN["business"]))
    (root / "out" / "ansible").mkdir(parents=True)
    (root / "out" / "ansible" / "deployment.yml").write_bytes(DEPLOYMENTS[name])
    (root / "out.valkey-data").mkdir()
    argv = ["plan", "--target", "local", "--terraform", "none", "--spec", "spec.yaml", "--out", "out"]
    check(run_in_process(argv, root), may_succeed=True)


# ---- a committed output directory from a pull request ----------------------------------------------

VICTIM = {"victim/a.txt": b"precious a\n", "victim/sub/b.tf": b"precious b\n", "secret.txt": b"TOPSECRET-fuzz\n"}
#: symlinks a pull request may commit inside the output directory, pointing outside it
LINKS = {
    "old": "../victim",
    "terraform": "../victim/sub",
    "ansible": "../victim",
    "a.txt": "../victim/a.txt",
    "terraform/main.tf": "../../secret.txt",
    "COMPATIBILITY.md": "../secret.txt",
    "notes": "/nonexistent/fuzz",
}
#: manifest entries that reach a victim through each link (with the victim's digest, so it looks unedited)
THROUGH = {
    "old": {"old/a.txt": "victim/a.txt", "old/sub/b.tf": "victim/sub/b.tf"},
    "terraform": {"terraform/b.tf": "victim/sub/b.tf"},
    "ansible": {"ansible/a.txt": "victim/a.txt", "ansible/sub/b.tf": "victim/sub/b.tf"},
    "a.txt": {"a.txt": "victim/a.txt"},
    "terraform/main.tf": {"terraform/main.tf": "secret.txt"},
    "COMPATIBILITY.md": {"COMPATIBILITY.md": "secret.txt"},
    "notes": {"notes/x": "secret.txt"},
}
#: manifest entries that escape the directory outright
ESCAPES = ["../victim/a.txt", "/etc/hostname", "terraform/../../victim/a.txt", "", ".", ".reproducer-manifest.json"]


def _digest(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


@st.composite
def hostile_output_dir(draw: st.DrawFn) -> tuple[dict[str, str], dict[str, Any]]:
    """Symlinks out of the directory and a manifest that claims the files behind them (with their digests)."""
    chosen = draw(st.lists(st.sampled_from(sorted(LINKS)), min_size=1, max_size=3, unique=True))
    links = {name: LINKS[name] for name in chosen if not any(name.startswith(o + "/") for o in chosen)}
    files = {entry: _digest(VICTIM[victim]) for name in links for entry, victim in THROUGH[name].items()}
    if draw(st.integers(0, 4)) == 0:
        files[draw(st.sampled_from(ESCAPES))] = _digest(b"")
    manifest = {"format_version": draw(st.sampled_from([1, 1, 1, 1, 2, "1"])), "generator": "x", "files": files}
    return links, manifest


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "meta",
    [
        pytest.param(
            meta(
                "committed --out with symlinks out of it and a manifest claiming what they point at (render, plan)",
                "0 or 1-4",
            ),
            id="hostile-out",
        )
    ],
)
@fuzz_settings(40)
@given(
    out=hostile_output_dir(),
    command=st.sampled_from(["render", "plan-none"]),
    target=st.sampled_from(["aws", "gcp", "selfmanaged", "local"]),
)
def test_hostile_committed_output_dir_touches_nothing_outside(meta, workdir, out, command, target):
    """render may refuse or re-render, plan may compare; neither may write, delete or show anything outside."""
    links, manifest = out
    root = workdir()
    (root / "spec.yaml").write_bytes(_dump(GOLDEN["business"]))
    for relative, content in VICTIM.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(content)
    (root / "out").mkdir()
    for name, points_to in links.items():
        (root / "out" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "out" / name).symlink_to(points_to)
    (root / "out" / ".reproducer-manifest.json").write_text(json.dumps(manifest))
    argv, _ = _spec_command(command, target)
    check(run_in_process(argv, root, allowed=["out"]), may_succeed=True, secrets=["TOPSECRET-fuzz", "precious"])


# ---- selfmanaged inventory and variables files ---------------------------------------------------

#: inventories that name no reachable host (a real host would be reached over SSH)
BAD_INVENTORIES = [
    b"\xff\xfe",
    b"- a\n- b\n",
    b"",
    b"all: x\n",
    b"all: {children: x}\n",
    b"all: {children: {valkey: x}}\n",
    b"all: {children: {valkey: {hosts: x}}}\n",
    b"all: {children: {valkey: {hosts: 5}}}\n",
    b"all: {children: {valkey: {hosts: []}}}\n",
    b"all: {children: {valkey: {hosts: {}}, valkey_sentinel: [1]}}\n",
    b"all: [\n",
    b'all: {hosts: {\'{{ lookup("pipe", "id") }}\': null}}\n',
]
BAD_VARS = [b"\xff", b"- 1\n", b"x\n", b"{{ lookup('pipe', 'id') }}: 1\n", b"a: [\n", b"valkey_port: .nan\n"]
PASSWORDS = {f"REPRODUCER_PASSWORD_{u}": SECRET for u in ("ANALYTICS", "APP", "DEFAULT")}


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "meta", [pytest.param(meta("fuzzed selfmanaged --inventory and --vars files (plan, apply)"), id="inventory")]
)
@fuzz_settings(25)
@given(
    inventory=st.sampled_from(BAD_INVENTORIES),
    variables=st.none() | st.sampled_from(BAD_VARS),
    command=st.sampled_from(["plan", "apply"]),
)
def test_bad_inventory_or_vars_is_refused_cleanly(meta, workdir, inventory, variables, command):
    root = workdir()
    (root / "spec.yaml").write_bytes(_dump(GOLDEN["business"]))
    (root / "inventory.yml").write_bytes(inventory)
    argv = [command, "--target", "selfmanaged", "--spec", "spec.yaml", "--out", "out", "--inventory", "inventory.yml"]
    argv += ["--terraform", "none"] if command == "plan" else []
    if variables is not None:
        (root / "vars.yml").write_bytes(variables)
        argv += ["--vars", "vars.yml"]
    check(run_in_process(argv, root, allowed=["out"], env=PASSWORDS), secrets=[SECRET])


# ---- flags ----------------------------------------------------------------------------------------

SPEC_FLAGS = ["--spec", "spec.yaml", "--out", "out"]


def _flag_cases() -> list[tuple[str, list[str], list[str]]]:
    """(name, argv template, writable dirs): each argv is refused whatever ``{v}`` (a hostile value) is."""
    copy = ["copy", REFUSED, REFUSED, "--run-dir", "run"]
    return [
        ("render --target", ["render", "--target", "{v}-x", *SPEC_FLAGS], ["out"]),
        ("render --shards", ["render", "--target", "aws", *SPEC_FLAGS, "--shards", "{n}"], ["out"]),
        ("render --replicas", ["render", "--target", "gcp", *SPEC_FLAGS, "--replicas", "{n}"], ["out"]),
        ("render --region", ["render", "--target", "aws", *SPEC_FLAGS, "--region", "{b}"], ["out"]),
        ("render --spec dir", ["render", "--target", "aws", "--spec", "adir", "--out", "out"], ["out"]),
        ("render --spec missing", ["render", "--target", "aws", "--spec", "nope/{v}", "--out", "out"], ["out"]),
        ("render --out file", ["render", "--target", "aws", "--spec", "spec.yaml", "--out", "afile"], []),
        ("render --out user dir", ["render", "--target", "aws", "--spec", "spec.yaml", "--out", "userdir"], []),
        ("render --out .", ["render", "--target", "aws", "--spec", "spec.yaml", "--out", "."], []),
        ("render --out /proc", ["render", "--target", "aws", "--spec", "spec.yaml", "--out", "/proc/fuzz-out"], []),
        ("render --out /dev/full/x", ["render", "--target", "gcp", "--spec", "spec.yaml", "--out", "/dev/full/x"], []),
        ("render --spec /dev/null", ["render", "--target", "aws", "--spec", "/dev/null", "--out", "out"], ["out"]),
        ("plan --format", ["plan", "--target", "aws", *SPEC_FLAGS, "--format", "{v}"], ["out"]),
        ("plan --terraform", ["plan", "--target", "aws", *SPEC_FLAGS, "--terraform", "{v}"], ["out"]),
        ("plan --target", ["plan", "--target", "{v}-x", *SPEC_FLAGS, "--terraform", "none"], ["out"]),
        ("apply --target", ["apply", "--target", "{v}-x", *SPEC_FLAGS], ["out"]),
        ("apply --base-port", ["apply", "--target", "local", *SPEC_FLAGS, "--base-port", "{n}"], ["out"]),
        ("apply --out file", ["apply", "--target", "local", "--spec", "spec.yaml", "--out", "afile"], []),
        ("destroy --target", ["destroy", "--target", "{v}-x", "--out", "out"], ["out"]),
        ("destroy --out file", ["destroy", "--target", "local", "--out", "afile"], []),
        ("copy --batch", [*copy, "--batch", "{n}"], ["run"]),
        ("copy --db", [*copy, "--db", "{n}"], ["run"]),
        ("copy --max-keys-per-second", [*copy, "--max-keys-per-second", "{f}"], ["run"]),
        ("copy --max-mb-per-second", [*copy, "--max-mb-per-second", "{f}"], ["run"]),
        ("copy --follow-seconds", [*copy, "--follow", "--follow-seconds", "{f}"], ["run"]),
        ("copy --match", [*copy, "--match", "{v}"], ["run"]),
        ("copy --resume without run", ["copy", REFUSED, REFUSED, "--resume"], []),
        ("copy --resume missing run", ["copy", REFUSED, REFUSED, "--resume", "--run-dir", "nope-{v}"], []),
        ("copy --run-dir /proc", ["copy", REFUSED, REFUSED, "--run-dir", "/proc/fuzz-run"], []),
        ("export into /proc", ["export", REFUSED, "/proc/fuzz.jsonl"], []),
        ("inspect -o /proc", ["inspect", "--project", "0" * 32, "--endpoint", "ovh-eu", "-o", "/proc/fuzz"], []),
        ("copy --run-dir file", ["copy", REFUSED, REFUSED, "--run-dir", "afile"], []),
        ("copy --ovh-service", [*copy, "--ovh-service", "{v}"], ["run"]),
        ("verify --sample", ["verify", REFUSED, REFUSED, "--sample", "{f}"], []),
        ("verify --ttl-tolerance-ms", ["verify", REFUSED, REFUSED, "--ttl-tolerance-ms", "{n}"], []),
        ("verify --run-dir file", ["verify", REFUSED, REFUSED, "--run-dir", "afile"], []),
        ("export file", ["export", REFUSED, "out-{v}.jsonl"], []),
        ("export dir", ["export", REFUSED, "adir"], []),
        ("export --format", ["export", REFUSED, "x.jsonl", "--format", "{v}"], []),
        ("import dir", ["import", "adir", REFUSED], []),
        ("import --format", ["import", "afile", REFUSED, "--format", "{v}"], []),
        ("import unknown suffix", ["import", "afile", REFUSED], []),
        ("inspect --project", ["inspect", "--project", "{v}", "--endpoint", API], []),
        ("inspect --endpoint", ["inspect", "--project", "0" * 32, "--endpoint", "{v}"], []),
        ("inspect -o file", ["inspect", "--project", "0" * 32, "--endpoint", "ovh-eu", "-o", "afile/x"], []),
        ("drift --endpoint", ["drift", "--spec", "spec.yaml", "--endpoint", "{v}"], []),
        (
            "migrate --allow-cidr",
            [
                "migrate",
                "--project",
                "p",
                "--service",
                "s",
                "--to",
                REFUSED,
                "--endpoint",
                API,
                "--allow-cidr",
                "{v}",
                "--run-dir",
                "run",
            ],
            ["run"],
        ),
        (
            "migrate --source-ca",
            [
                "migrate",
                "--project",
                "p",
                "--service",
                "s",
                "--to",
                REFUSED,
                "--endpoint",
                API,
                "--source-ca",
                "nope/{v}",
                "--run-dir",
                "run",
            ],
            ["run"],
        ),
        (
            "migrate --target",
            [
                "migrate",
                "--project",
                "p",
                "--service",
                "s",
                "--target",
                "{v}",
                "--endpoint",
                API,
                "--dry-run",
                "--run-dir",
                "run",
            ],
            ["run"],
        ),
        (
            "migrate --shards",
            [
                "migrate",
                "--project",
                "p",
                "--service",
                "s",
                "--target",
                "aws",
                "--shards",
                "{n}",
                "--endpoint",
                API,
                "--run-dir",
                "run",
            ],
            ["run"],
        ),
        ("migrate both", ["migrate", "--project", "p", "--service", "s", "--to", REFUSED, "--target", "local"], []),
        ("migrate --resume", ["migrate", "--project", "p", "--service", "s", "--to", REFUSED, "--resume"], []),
        (
            "migrate --max-keys-per-second",
            [
                "migrate",
                "--project",
                "p",
                "--service",
                "s",
                "--to",
                REFUSED,
                "--endpoint",
                API,
                "--max-keys-per-second",
                "{f}",
                "--run-dir",
                "run",
            ],
            ["run"],
        ),
        ("sandbox up --keys", ["sandbox", "up", "--keys", "{neg}", "--dir", "sb"], ["sb"]),
        ("sandbox up --dir file", ["sandbox", "up", "--dir", "afile"], []),
        ("sandbox status --dir file", ["sandbox", "status", "--dir", "afile"], []),
        ("sandbox down --dir file", ["sandbox", "down", "--dir", "afile"], []),
        ("demo --keys", ["demo", "--keys", "{neg}", "--dir", "sb"], ["sb"]),
        ("demo --dir file", ["demo", "--dir", "afile", "--keys", "{neg}"], []),
        ("unknown command", ["x{v}", "--help"], []),
        ("unknown option", ["render", "--x{v}"], []),
    ]


FLAG_CASES = _flag_cases()


def _fill(template: list[str], values: dict[str, str]) -> list[str]:
    argv = []
    for template_arg in template:
        arg = template_arg
        for name, value in values.items():
            arg = arg.replace("{" + name + "}", value)
        argv.append(arg)
    return argv


def _prepare_flag_dir(root: Path) -> None:
    (root / "spec.yaml").write_bytes(_dump(GOLDEN["business"]))
    (root / "afile").write_text("a file, not a directory\n")
    (root / "adir").mkdir()
    (root / "userdir" / "src").mkdir(parents=True)
    (root / "userdir" / "NOTES.md").write_text("mine\n")
    (root / "userdir" / "src" / "main.py").write_text("print('mine')\n")


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "meta",
    [pytest.param(meta("fuzzed flags of every command (bad enums, negative counts, NaN, files as dirs)"), id="flags")],
)
@fuzz_settings(200)
@given(
    case=st.sampled_from(FLAG_CASES),
    text=hostile_text().filter(_no_nul),
    number=st.sampled_from(["-1", "99999999999999999999", "1e3", "nan", "0x10", "-7", "1.5", ""]),
    real=st.sampled_from(["nan", "-1", "-inf", "inf", "0", "1e999", "-0.0", "abc"]),
    negative=st.sampled_from(["-1", "-99999999999", "nan", "x", "1.5"]),
    breaking=broken_text().filter(_no_nul),
)
def test_bad_flag_is_refused_cleanly(meta, workdir, case, text, number, real, negative, breaking):
    _name, template, allowed = case
    root = workdir()
    _prepare_flag_dir(root)
    argv = _fill(template, {"v": text, "n": number, "f": real, "neg": negative, "b": breaking})
    check(run_in_process(argv, root, allowed=allowed), secrets=[SECRET])


# ---- a few representative cases end to end, in a real process -----------------------------------

#: name: (files to write, argv, writable dirs, whether exit 0 is acceptable)
SUBPROCESS_CASES: dict[str, tuple[dict[str, bytes], list[str], list[str], bool]] = {
    "render non-UTF-8 spec": (
        {"spec.yaml": b'schema_version: 1\nsource: {description: "\xff\xfe"}\n'},
        ["render", "--target", "aws", "--spec", "spec.yaml", "--out", "out"],
        ["out"],
        False,
    ),
    "copy to a CA file that does not exist": (
        {},
        ["copy", REFUSED, f"valkeys://127.0.0.1:{CLOSED}?ca=/nonexistent/ca.pem", "--run-dir", "run"],
        ["run"],
        False,
    ),
    "import a list as a JSONL line": ({"data.jsonl": b'["a", "list"]\n'}, ["import", "data.jsonl", REFUSED], [], False),
    "sandbox status with a corrupt sandbox.json": (
        {"sb/sandbox.json": b"{not json"},
        ["sandbox", "status", "--dir", "sb"],
        [],
        False,
    ),
    "copy to port 99999": ({}, ["copy", REFUSED, "valkey://127.0.0.1:99999", "--run-dir", "run"], ["run"], False),
    "destroy an output directory that was never deployed": (
        {"never/keep.txt": b"mine\n"},
        ["destroy", "--target", "local", "--out", "never"],
        [],
        True,
    ),
}


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("meta", "name"),
    [
        pytest.param(
            meta(f"end to end: {n}", "0 or 1-4" if SUBPROCESS_CASES[n][3] else "1-4"), n, id=n.replace(" ", "-")
        )
        for n in SUBPROCESS_CASES
    ],
)
def test_representative_case_in_a_real_process(meta, name, workdir):
    files, argv, allowed, may_succeed = SUBPROCESS_CASES[name]
    root = workdir()
    for relative, content in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(content)
    outcome: Outcome = run_subprocess(argv, root, allowed=allowed, timeout=60)
    check(outcome, may_succeed=may_succeed, secrets=[SECRET])
