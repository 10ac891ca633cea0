"""Compatibility rows for every attribute of a spec, and the report files made from them."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reproducer.errors import InputError
from reproducer.model import Category, ConfigItem, ServiceSpec, User
from reproducer.targets.base import CompatRow, Support
from reproducer.targets.render import one_line

Decision = tuple[Support, str, str]
#: Attribute → its category in OVH's reversibility policy. Users and configuration get one row each.
ATTRIBUTES: dict[str, Category] = {
    "data": Category.CORE,
    "engine.version": Category.CORE,
    "plan.flavor": Category.CORE,
    "topology.mode": Category.CORE,
    "topology.shards": Category.CORE,
    "topology.replicas_per_shard": Category.CORE,
    "persistence": Category.CORE,
    "tls": Category.CORE,
    "allow_list": Category.OVH_IMPLEMENTATION,
    "network.private": Category.OVH_IMPLEMENTATION,
    "network.private.subnet": Category.OVH_IMPLEMENTATION,
    "source.region": Category.OVH_IMPLEMENTATION,
    "backups.time": Category.OVH_IMPLEMENTATION,
    "backups.regions": Category.OVH_IMPLEMENTATION,
    "backups.retention_days": Category.OVH_IMPLEMENTATION,
    "maintenance_time": Category.OVH_IMPLEMENTATION,
    "deletion_protection": Category.OVH_IMPLEMENTATION,
    "feature.infrastructure_as_code": Category.SPECIFIC,
    "feature.anti_ddos": Category.SPECIFIC,
}
DATA_ROW: Decision = (Support.EXACT, "reproducer copy", "SCAN/DUMP/RESTORE copy with TTLs, then verify")
IAC_NOTE = "OVH Terraform resources (ovh_cloud_project_database…) are replaced by the files rendered here"


@dataclass(frozen=True)
class Reach:
    """How a target's render lets clients in; the allow-list and network rows are derived from it.

    Attributes:
        public: Internet clients in the allow-list reach the rendered service as they reach the source.
        filters: the rendered allow-list rules filter the clients' traffic to the service.
        filter_argument: where the allow-list goes.
        inside: where the service is reachable when it is not public (for the notes).
        network_argument: what a private source's network becomes.
        network: support and note for a private source's network.
        subnet_argument: what a private source's subnet becomes.
        subnet: support and note for a private source's subnet.
        filter_note: the note when the rules do not filter (why, and what to do instead).
    """

    public: bool
    filters: bool
    filter_argument: str
    inside: str
    network_argument: str
    network: tuple[Support, str]
    subnet_argument: str
    subnet: tuple[Support, str]
    filter_note: str = ""


def network_decisions(spec: ServiceSpec, reach: Reach, subnet_cidr: str) -> dict[str, Decision]:
    """The ``allow_list``, ``network.private`` and ``network.private.subnet`` rows from the source's network.

    A public source's clients keep their access only where the render is public too; a private-only render
    of a public source needs a route in, which the user builds (manual).
    """
    private = spec.network.private is not None
    if not reach.filters:
        allow: Decision = (Support.MANUAL, reach.filter_argument, reach.filter_note)
    elif private or reach.public:
        allow = (Support.EXACT, reach.filter_argument, "one rule per CIDR of the source")
    else:
        allow = (
            Support.MANUAL,
            reach.filter_argument,
            f"the source is public but {reach.inside}: its CIDRs become rules, and their clients need a route in "
            "(VPN, peering or a bastion)",
        )
    if private:
        network: Decision = (reach.network[0], reach.network_argument, reach.network[1])
        subnet: Decision = (reach.subnet[0], reach.subnet_argument, reach.subnet[1])
    elif reach.public:
        network = (Support.EXACT, "—", "public endpoint, as in the source")
        subnet = (Support.EXACT, "—", "no private subnet, as in the source")
    else:
        network = (
            Support.MANUAL,
            reach.network_argument,
            f"the source is public but {reach.inside}: give its clients a route in (VPN, peering or a bastion)",
        )
        subnet = (Support.APPROXIMATED, reach.subnet_argument, f"no subnet at the source; {subnet_cidr} is a default")
    return {"allow_list": allow, "network.private": network, "network.private.subnet": subnet}


#: Pub/sub commands a user with no channel pattern could still grant itself back through its command rules.
_PUBSUB_COMMANDS = frozenset({"+publish", "+spublish", "+subscribe", "+ssubscribe", "+psubscribe", "+pubsub"})


def no_channels(user: User, empty_means: str) -> tuple[tuple[str, ...], Decision | None]:
    """Categories to render for a parts-form target whose empty channel list means all channels.

    ``empty_means`` says where that rule is documented. A user with channel patterns is unchanged (no decision);
    one with none gets ``-@pubsub`` appended, so it still reaches no channel (approximated: it also loses the
    pub/sub commands that name no channel). When its commands grant a pub/sub command back, no rendering can keep
    it away from every channel: unsupported.
    """
    if user.channels:
        return user.categories, None
    categories = (*user.categories, "-@pubsub")
    if _PUBSUB_COMMANDS & {c.lower() for c in user.commands}:
        note = (
            f"no channel pattern is stored as all channels ({empty_means}); its pub/sub commands then reach every "
            "channel"
        )
        return categories, (Support.UNSUPPORTED, "channels", note)
    note = (
        f"no channel pattern is stored as all channels ({empty_means}), so -@pubsub is added: it still reaches no "
        "channel, and loses the pub/sub commands that name none"
    )
    return categories, (Support.APPROXIMATED, "categories + -@pubsub", note)


def build_rows(
    spec: ServiceSpec,
    decide: dict[str, Decision],
    user_row: Callable[[User], Decision],
    config_row: Callable[[ConfigItem], Decision],
) -> list[CompatRow]:
    """One row per attribute, user and configuration item; a missing decision is a bug, not a gap."""
    missing = set(ATTRIBUTES) - set(decide) - {"data"}
    if missing:
        raise ValueError(f"target decided nothing for {sorted(missing)}")
    rows = [CompatRow(name, *({"data": DATA_ROW} | decide)[name], category) for name, category in ATTRIBUTES.items()]
    rows += [CompatRow(f"users.{u.name}", *user_row(u), Category.CORE) for u in spec.users]
    rows += [CompatRow(f"configuration.{c.source_name}", *config_row(c), Category.CORE) for c in spec.configuration]
    return sorted(rows, key=lambda r: r.attribute)


def added_default(rows: list[CompatRow], users: list[dict[str, Any]], argument: str, note: str) -> list[CompatRow]:
    """``rows`` plus one for the ``default`` user a render adds when the spec has none (the copy connects as it)."""
    if not any(user.get("added") for user in users):
        return rows
    row = CompatRow("users.default", Support.APPROXIMATED, argument, f"not in the source: {note}", Category.CORE)
    return sorted([*rows, row], key=lambda r: r.attribute)


_CATEGORY = re.compile(r"[+-]@[A-Za-z0-9_-]+")
_COMMAND = re.compile(r"[+-][A-Za-z0-9_.:-]+(?:\|[A-Za-z0-9_.:-]+)?")
_PASSWORD_RULES = (">", "<", "#", "!")
#: Printable, no whitespace, not an ACL rule prefix: the name cannot be read as a rule.
_USER_NAME = re.compile(r"[^\s\x00-\x1f\x7f-\x9f\u2028\u2029>< #!~&%@+\-][^\s\x00-\x1f\x7f-\x9f\u2028\u2029]{0,127}")


def acl_problems(user: User, *, one_string: bool) -> list[str]:
    """What in ``user``'s ACL a target cannot take; ``one_string``: the target wants one ACL rule string.

    A user name is one word everywhere (an ACL file line reads ``user NAME rules…``: a space would add rules).
    """
    problems = [] if _USER_NAME.fullmatch(user.name) else ["its user name has whitespace or control characters"]
    problems += [_bad_rule(c, "category", "+@name or -@name") for c in user.categories if not _CATEGORY.fullmatch(c)]
    problems += [_bad_rule(c, "command rule", "+cmd or -cmd") for c in user.commands if not _COMMAND.fullmatch(c)]
    if one_string:
        patterns = [("key pattern", k) for k in user.keys] + [("channel pattern", c) for c in user.channels]
        problems += [
            f"{kind} {pattern!r} contains whitespace or a control character, which one ACL rule string cannot hold"
            for kind, pattern in patterns
            if not pattern or any(ch.isspace() or not ch.isprintable() for ch in pattern)
        ]
    return problems


def _bad_rule(rule: str, kind: str, form: str) -> str:
    if rule.startswith(_PASSWORD_RULES) or rule.strip().lower() in ("nopass", "resetpass"):
        return f"a password rule among its {kind}s (not shown here; passwords never belong in a spec)"
    return f"{kind} {rule!r} is not of the form {form}"


def check_users(spec: ServiceSpec, title: str, *, one_string: bool) -> None:
    """Refuse a user whose ACL the target cannot express, naming the user and the rule (never a password)."""
    for user in spec.users:
        problems = acl_problems(user, one_string=one_string)
        if problems:
            shape = " (it takes one ACL rule string per user)" if one_string else ""
            raise InputError(
                f"the ACL of user {user.name!r} cannot be expressed on {title}{shape}: {'; '.join(problems)}",
                hint=f"fix users[{user.name}] in the spec: categories +@name/-@name, commands +cmd/-cmd, "
                "keys and channels as glob patterns without spaces",
            )


def report_json(target: str, spec: ServiceSpec, rows: list[CompatRow], resources: dict[str, Any] | None = None) -> str:
    """``compatibility.json``: summary counts and every row (and ``resources`` with --adopt / --network existing)."""
    data: dict[str, Any] = {
        "format_version": "1.0",
        "target": target,
        "source_service": spec.source.service_id,
        "summary": summary(rows),
        "rows": [r.to_dict() for r in rows],
    }
    if resources is not None:
        data["resources"] = resources
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def summary(rows: list[CompatRow]) -> dict[str, int]:
    """Rows per support level (every level present, zero included)."""
    counts = Counter(str(r.support) for r in rows)
    return {str(level): counts.get(str(level), 0) for level in Support}


def report_markdown(
    title: str, spec: ServiceSpec, rows: list[CompatRow], resources: dict[str, Any] | None = None
) -> str:
    """``COMPATIBILITY.md``: what maps exactly, approximately, manually or not at all; what is adopted and new."""
    counts = ", ".join(f"{n} {level}" for level, n in summary(rows).items())
    lines = [
        f"# Compatibility: OVHcloud Valkey {one_line(spec.source.service_id)} → {title}",
        "",
        counts,
        "",
        "| attribute | support | target argument | category | note |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| `{r.attribute}` | {r.support} | {_cell(r.target_argument)} | {r.category} | {_cell(r.note)} |" for r in rows
    ]
    if resources is not None:
        lines += resources_markdown(resources)
    return "\n".join(lines) + "\n"


def resources_markdown(resources: dict[str, Any]) -> list[str]:
    """The ``Resources`` section: where the network comes from, then each resource adopted, new or read."""
    network = (
        "The network comes from you (`--network existing`): the render reads your network and subnets with the "
        "data sources below and creates none."
        if resources["network"] == "existing"
        else "The render creates its own network (`--network new`)."
    )
    lines = ["", "## Resources", "", network, "", "| resource | status | id |", "|---|---|---|"]
    lines += [
        f"| `{_cell(a)}` | adopted (import block in imports.tf) | `{_cell(i)}` |"
        for a, i in resources["adopted"].items()
    ]
    lines += [f"| `{_cell(address)}` | new | — |" for address in resources["new"]]
    lines += [f"| `{_cell(address)}` | read (data source) | — |" for address in resources["read"]]
    return lines


def existing_network_decisions(spec: ServiceSpec, network: str, subnet: str, note: str) -> dict[str, Decision]:
    """The ``network.private`` rows of ``--network existing``: the user's network, read by data sources.

    ``network`` and ``subnet`` name the variables and data sources; ``note`` says what the user's network must
    provide. Approximated: the source's network (its VLAN, its CIDR) is not reproduced, the user's is used.
    """
    private = spec.network.private
    cidr = private.subnet.cidr if private and private.subnet else None
    source = f"the source's subnet {cidr} is not reproduced" if cidr else "the source had no private subnet"
    return {
        "network.private": (Support.APPROXIMATED, network, f"your existing network (--network existing); {note}"),
        "network.private.subnet": (Support.APPROXIMATED, subnet, f"your existing subnet(s); {source}"),
    }


def _cell(text: str) -> str:
    return one_line(text).replace("|", "\\|") or "—"
