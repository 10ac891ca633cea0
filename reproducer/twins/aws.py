"""The AWS twin: ElastiCache for Valkey replication groups, users, user groups and parameter groups.

A replication group stands up real Valkey shaped like it (cluster mode: N shards x R replicas; otherwise a
primary with replicas), with the users of its user groups, its parameter group's parameters and TLS when
``transit_encryption_enabled``. Computed attributes are filled as the provider's read path fills them, and
the checks the provider (plan time) or the ElastiCache API (apply time) make are made with their texts.
``docs/twins.md`` lists every rule with its source.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from reproducer.offline.values import UNKNOWN
from reproducer.sandbox.fleet import hash_password
from reproducer.twins import valkey
from reproducer.twins.base import Change, GenericTwin, TwinError, TwinWorld

RG, USER, GROUP, PARAMS = (
    "aws_elasticache_replication_group",
    "aws_elasticache_user",
    "aws_elasticache_user_group",
    "aws_elasticache_parameter_group",
)
ACCOUNT = "123456789012"
DEFAULT_PORT = 6379
#: ElastiCache's built-in user: id and name ``default``, full access, no password.
BUILTIN_DEFAULT: dict[str, Any] = {
    "user_id": "default",
    "user_name": "default",
    "access_string": "on ~* +@all",
    "hashes": [],
}

_WEEK_WINDOW = re.compile(
    r"^((sun|mon|tue|wed|thu|fri|sat):([0-1][0-9]|2[0-3]):([0-5][0-9])-"
    r"(sun|mon|tue|wed|thu|fri|sat):([0-1][0-9]|2[0-3]):([0-5][0-9])|)$"
)
_DAY_WINDOW = re.compile(r"^(([0-1][0-9]|2[0-3]):([0-5][0-9])-([0-1][0-9]|2[0-3]):([0-5][0-9])|)$")
_VALKEY_VERSION = re.compile(r"^[7-9]\.[0-9]+$")
_REDIS_VERSION = re.compile(r"^([0-5]\.[0-9]+\.[0-9]+|[6-9]\.([0-9]+|x))$")
_DIRECTIONS = {"north": "n", "south": "s", "east": "e", "west": "w", "central": "c"}
_DIRECTIONS |= {f"{a}{b}": f"{_DIRECTIONS[a]}{_DIRECTIONS[b]}" for a in ("north", "south") for b in ("east", "west")}
_ZONE_LETTERS = {"us-east-1": "abcdef", "us-west-1": "bc"}


# ---- values -----------------------------------------------------------------------------------------------------


def known(value: Any) -> bool:
    """Whether a configuration value is set and known at plan time."""
    return value is not None and value is not UNKNOWN


def _num(obj: dict[str, Any], name: str) -> int | None:
    value: Any = obj.get(name)
    return int(value) if known(value) else None


def _api_error(action: str, what: str, name: str, code: str, message: str) -> TwinError:
    """An API refusal as the provider shows it: ``<action> ElastiCache <what> (<name>): <code>: <message>``."""
    return TwinError(f"{action} ElastiCache {what} ({name}): {code}: {message}")


def _region(config: dict[str, Any], provider: dict[str, Any]) -> str:
    region = config.get("region")
    return str(region if known(region) else provider.get("region") or "us-east-1")


def _first_error(checks: Iterable[Callable[[], None]]) -> None:
    for check in checks:
        check()


# ---- plan-time validators of the provider ---------------------------------------------------------------------


def _check_group_id(value: Any) -> None:
    if not known(value):
        return
    text, path = str(value), ("replication_group_id",)
    if not 1 <= len(text) <= 40:
        raise TwinError(f"expected length of replication_group_id to be in the range (1 - 40), got {text}", path=path)
    rules = [
        (re.fullmatch(r"[0-9A-Za-z-]+", text), "must contain only alphanumeric characters and hyphens"),
        (re.match(r"[A-Za-z]", text), "must begin with a letter"),
        ("--" not in text, "cannot contain two consecutive hyphens"),
        (not text.endswith("-"), "cannot end with a hyphen"),
    ]
    for ok, message in rules:
        if not ok:
            raise TwinError(f"invalid value for replication_group_id ({message})", path=path)


def _check_windows(config: dict[str, Any]) -> None:
    week, day = config.get("maintenance_window"), config.get("snapshot_window")
    if known(week) and not _WEEK_WINDOW.match(str(week).lower()):
        message = f'({str(week).lower()}) must satisfy the format of "ddd:hh24:mi-ddd:hh24:mi"'
        raise TwinError(message, path=("maintenance_window",))
    if known(day) and not _DAY_WINDOW.match(str(day)):
        raise TwinError(f'({day}) must satisfy the format of "hh24:mi-hh24:mi"', path=("snapshot_window",))


def _check_engine(config: dict[str, Any]) -> None:
    engine, version = config.get("engine"), config.get("engine_version")
    if known(engine) and str(engine).lower() not in ("redis", "valkey"):
        raise TwinError(f'expected engine to be one of ["redis" "valkey"], got {engine}', path=("engine",))
    if known(version) and not (_VALKEY_VERSION.match(str(version)) or _REDIS_VERSION.match(str(version))):
        raise TwinError(
            f"engine_version: {version} is invalid. For Valkey use <major>.<minor>.",
            f"engine_version: {version} is invalid. For Redis v6 or higher, use <major>.<minor>. "
            "For Redis v5 or lower, use <major>.<minor>.<patch>.",
            ("engine_version",),
        )


def _check_enums(config: dict[str, Any]) -> None:
    mode = config.get("cluster_mode")
    if known(mode) and mode not in ("enabled", "disabled", "compatible"):
        message = f'expected cluster_mode to be one of ["enabled" "disabled" "compatible"], got {mode}'
        raise TwinError(message, path=("cluster_mode",))
    retention, replicas = _num(config, "snapshot_retention_limit"), _num(config, "replicas_per_node_group")
    if retention is not None and retention > 35:
        message = f"expected snapshot_retention_limit to be at most (35), got {retention}"
        raise TwinError(message, path=("snapshot_retention_limit",))
    if replicas is not None and not 0 <= replicas <= 5:
        message = f"expected replicas_per_node_group to be in the range (0 - 5), got {replicas}"
        raise TwinError(message, path=("replicas_per_node_group",))


_CONFLICTS = (
    ("auth_token", "user_group_ids"),
    ("num_cache_clusters", "num_node_groups"),
    ("num_cache_clusters", "replicas_per_node_group"),
)


def _check_conflicts(config: dict[str, Any]) -> None:
    for first, second in _CONFLICTS:
        if config.get(first) is not None and config.get(second) not in (None, []):
            raise TwinError(f'"{first}": conflicts with {second}', path=(first,))


def _check_failover(planned: dict[str, Any], config: dict[str, Any]) -> None:
    """The provider's CustomizeDiff rules (plan time)."""
    failover = planned.get("automatic_failover_enabled") is True
    if planned.get("multi_az_enabled") is True and not failover:
        raise TwinError("automatic_failover_enabled must be true if multi_az_enabled is true")
    clusters = _num(config, "num_cache_clusters")
    if failover and clusters is not None and clusters < 2:
        raise TwinError('"num_cache_clusters": must be at least 2 if automatic_failover_enabled is true')
    if known(config.get("auth_token_update_strategy")) and config.get("auth_token") is None:
        raise TwinError('"auth_token_update_strategy": "auth_token" must be specified')


# ---- shape ------------------------------------------------------------------------------------------------------


def is_cluster(config: dict[str, Any]) -> bool:
    """Cluster mode: ``cluster_mode`` enabled (or compatible), or more than one node group."""
    return config.get("cluster_mode") in ("enabled", "compatible") or (_num(config, "num_node_groups") or 1) > 1


def shape_counts(config: dict[str, Any]) -> tuple[int, int]:
    """``(node groups, replicas per node group)`` a configuration asks for."""
    if is_cluster(config):
        return _num(config, "num_node_groups") or 1, _num(config, "replicas_per_node_group") or 0
    clusters = _num(config, "num_cache_clusters")
    if clusters is not None:
        return 1, clusters - 1
    return 1, _num(config, "replicas_per_node_group") or 0


def _check_api_create(planned: dict[str, Any], name: str, world: TwinWorld) -> None:
    """What CreateReplicationGroup refuses although the plan looked fine."""
    shards, replicas = shape_counts(planned)
    failover = planned.get("automatic_failover_enabled") is True
    if not known(planned.get("node_type")) and not known(planned.get("global_replication_group_id")):
        raise TwinError('"node_type" is required unless "global_replication_group_id" is set.')
    if is_cluster(planned) and not failover:
        raise _api_error(
            "creating",
            "Replication Group",
            name,
            "InvalidParameterValue",
            "Redis with cluster mode enabled cannot be created with auto failover turned off.",
        )
    if failover and shards * (replicas + 1) < 2:
        raise _api_error(
            "creating",
            "Replication Group",
            name,
            "InvalidParameterCombination",
            "When using automatic failover, there must be at least 2 cache clusters in the replication group.",
        )
    azs = planned.get("preferred_cache_cluster_azs")
    if azs and (not known(planned.get("num_cache_clusters")) or len(azs) != replicas + 1):
        raise _api_error(
            "creating",
            "Replication Group",
            name,
            "InvalidParameterValue",
            "When specifying preferred availability zones, the number of cache clusters must be specified and "
            "must match the number of preferred availability zones.",
        )


# ---- users and parameters from the world ------------------------------------------------------------------------


def _group_users(world: TwinWorld, group_ids: Iterable[str], name: str) -> tuple[valkey.TwinUser, ...]:
    users: dict[str, valkey.TwinUser] = {}
    for group_id in sorted(group_ids):
        group = world.load(GROUP, group_id)
        if group is None:
            raise _api_error(
                "creating", "Replication Group", name, "UserGroupNotFound", f"User group {group_id} not found."
            )
        for user_id in group["user_ids"]:
            record = BUILTIN_DEFAULT if user_id == "default" else world.load(USER, user_id)
            if record is not None:
                rules, hashes = record["access_string"], tuple(record["hashes"])
                users[record["user_name"]] = valkey.TwinUser(record["user_name"], rules, hashes)
    return tuple(users[n] for n in sorted(users))


def rg_users(world: TwinWorld, state: dict[str, Any], name: str) -> tuple[valkey.TwinUser, ...]:
    """The Valkey users of a replication group: its user groups' users, or the default user (AUTH token)."""
    groups = state.get("user_group_ids") or []
    if groups:
        return _group_users(world, groups, name)
    token = state.get("auth_token")
    if known(token):
        return (valkey.TwinUser("default", "on ~* &* +@all", (hash_password(str(token)),)),)
    return ()


def rg_parameters(world: TwinWorld, state: dict[str, Any], name: str) -> tuple[tuple[str, str], ...]:
    """The parameters of the group's parameter group (none for an AWS ``default.*`` group)."""
    group = state.get("parameter_group_name")
    if not known(group) or str(group).startswith("default."):
        return ()
    record = world.load(PARAMS, str(group))
    if record is None:
        message = f"CacheParameterGroup {group} not found."
        raise _api_error("creating", "Replication Group", name, "CacheParameterGroupNotFound", message)
    return tuple((str(n), str(v)) for n, v in record["parameters"])


# ---- the replication group --------------------------------------------------------------------------------------


def _member_ids(name: str, cluster: bool, shards: int, replicas: int) -> list[str]:
    if cluster:
        return [f"{name}-{s + 1:04d}-{r + 1:03d}" for s in range(shards) for r in range(replicas + 1)]
    return [f"{name}-{r + 1:03d}" for r in range(replicas + 1)]


def _computed(planned: dict[str, Any], change: Change, nodes: list[valkey.NodeAddress]) -> dict[str, Any]:
    """The state after create: what the provider's read path sets (docs/twins.md, "Computed attributes")."""
    name = str(planned["replication_group_id"]).lower()
    cluster, (shards, replicas) = is_cluster(planned), shape_counts(planned)
    primaries, others = [n for n in nodes if n.role == "primary"], [n for n in nodes if n.role != "primary"]
    engine = str(planned["engine"]).lower() if known(planned.get("engine")) else "redis"
    region = _region(planned, change.provider)
    state = dict(planned)
    state |= {
        "id": name,
        "arn": f"arn:aws:elasticache:{region}:{ACCOUNT}:replicationgroup:{name}",
        "region": region,
        "engine": engine,
        "engine_version": planned["engine_version"] if known(planned.get("engine_version")) else "8.0",
        "engine_version_actual": _actual_version(planned),
        "cluster_enabled": cluster,
        "cluster_mode": "enabled" if cluster else "disabled",
        "configuration_endpoint_address": primaries[0].host if cluster else None,
        "primary_endpoint_address": None if cluster else primaries[0].host,
        "reader_endpoint_address": None if cluster else (others or primaries)[0].host,
        "member_clusters": sorted(_member_ids(name, cluster, shards, replicas)),
        "num_cache_clusters": shards * (replicas + 1),
        "num_node_groups": shards,
        "replicas_per_node_group": replicas,
        "transit_encryption_enabled": planned.get("transit_encryption_enabled") is True,
        "transit_encryption_mode": "required" if planned.get("transit_encryption_enabled") is True else None,
        "at_rest_encryption_enabled": _at_rest(planned, engine),
    }
    return _defaults(state, planned, engine)


def _actual_version(planned: dict[str, Any]) -> str:
    version = planned.get("engine_version")
    return f"{version}.1" if known(version) else "8.0.1"


def _at_rest(planned: dict[str, Any], engine: str) -> str:
    value = planned.get("at_rest_encryption_enabled")
    return str(value) if known(value) else ("true" if engine == "valkey" else "false")


_DEFAULTS: dict[str, Any] = {
    "apply_immediately": False,
    "auto_minor_version_upgrade": "true",
    "data_tiering_enabled": False,
    "global_replication_group_id": None,
    "ip_discovery": "ipv4",
    "network_type": "ipv4",
    "node_type": None,
    "security_group_ids": [],
    "security_group_names": [],
    "snapshot_window": "05:00-06:00",
    "maintenance_window": "sun:23:00-mon:00:00",
    "subnet_group_name": "default",
    "durability": None,
}


def _defaults(state: dict[str, Any], planned: dict[str, Any], engine: str) -> dict[str, Any]:
    for name, value in _DEFAULTS.items():
        if state.get(name) is UNKNOWN:
            state[name] = value
    if state.get("parameter_group_name") is UNKNOWN:
        state["parameter_group_name"] = f"default.{engine}{str(state['engine_version']).split('.')[0]}"
    if state.get("tags_all") is UNKNOWN:
        state["tags_all"] = planned.get("tags") or {}
    return state


class ReplicationGroupTwin:
    """``aws_elasticache_replication_group``: real Valkey shaped like the group."""

    type_name = RG

    def validate(self, config: dict[str, Any]) -> None:
        """The provider's attribute validators and conflicts (plan time)."""
        _check_group_id(config.get("replication_group_id"))
        _first_error(
            [
                lambda: _check_windows(config),
                lambda: _check_engine(config),
                lambda: _check_enums(config),
                lambda: _check_conflicts(config),
            ]
        )

    def plan(self, change: Change) -> dict[str, Any] | None:
        """The provider's CustomizeDiff checks; the planned state is the generic one."""
        if change.planned is not None and change.config is not None:
            _check_failover(change.planned, change.config)
        return change.planned

    def create(self, change: Change) -> dict[str, Any]:
        """CreateReplicationGroup: API-time checks, then Valkey with the group's users, parameters and TLS."""
        planned = change.planned or {}
        name = str(planned["replication_group_id"]).lower()
        world = change.world
        if world.load(RG, name) is not None:
            message = "Replication group already exists"
            raise _api_error("creating", "Replication Group", name, "ReplicationGroupAlreadyExists", message)
        _check_api_create(planned, name, world)
        users, parameters = rg_users(world, planned, name), rg_parameters(world, planned, name)
        shards, replicas = shape_counts(planned)
        shape = valkey.ValkeyShape(
            shards=shards,
            replicas=replicas,
            cluster=is_cluster(planned),
            tls=planned.get("transit_encryption_enabled") is True,
            port=_num(planned, "port") or DEFAULT_PORT,
            users=users,
            parameters=parameters,
        )
        nodes = valkey.start(world, RG, name, shape)
        state = _computed(planned, change, nodes)
        world.save(RG, name, _record(state, users))
        return state

    def update(self, change: Change) -> dict[str, Any]:
        """ModifyReplicationGroup: users and parameters follow; the shape cannot change in the twin."""
        prior, planned = change.prior or {}, change.planned or {}
        name = str(prior["id"])
        turned_off = prior.get("automatic_failover_enabled") and not planned.get("automatic_failover_enabled")
        if is_cluster(prior) and turned_off:
            raise _api_error(
                "modifying",
                "Replication Group",
                name,
                "InvalidParameterCombination",
                "Turning off automatic failover for replication group with cluster mode enabled is not supported.",
            )
        _refuse_reshape(prior, planned, name)
        fleet = valkey.fleet_of(change.world, RG, name)
        if fleet is None:
            raise _api_error("modifying", "Replication Group", name, "ReplicationGroupNotFoundFault", "not found")
        record = change.world.load(RG, name) or {}
        users = rg_users(change.world, planned, name)
        valkey.apply_users(fleet, users, record.get("users", []))
        valkey.apply_parameters(fleet, rg_parameters(change.world, planned, name))
        state = {**planned, **{k: prior[k] for k in _COMPUTED if k in prior}}
        change.world.save(RG, name, _record(state, users))
        return state

    def delete(self, change: Change) -> None:
        """DeleteReplicationGroup: stop its Valkey and forget it."""
        name = str((change.prior or {})["id"])
        valkey.stop(change.world, RG, name)
        change.world.forget(RG, name)

    def read(self, state: dict[str, Any], world: TwinWorld) -> dict[str, Any] | None:
        """The group while its record and Valkey exist; gone (a create is planned) otherwise."""
        name = str(state.get("id") or "")
        if not name or world.load(RG, name) is None or valkey.nodes(world, RG, name) is None:
            return None
        return state


_COMPUTED = (
    "arn",
    "cluster_enabled",
    "configuration_endpoint_address",
    "primary_endpoint_address",
    "reader_endpoint_address",
    "member_clusters",
    "engine_version_actual",
    "num_cache_clusters",
    "num_node_groups",
    "replicas_per_node_group",
)


def _refuse_reshape(prior: dict[str, Any], planned: dict[str, Any], name: str) -> None:
    asked = known(planned.get("num_node_groups")) or known(planned.get("num_cache_clusters"))
    if asked and (is_cluster(planned), shape_counts(planned)) != (is_cluster(prior), shape_counts(prior)):
        raise TwinError(
            f"modifying ElastiCache Replication Group ({name}): the twin does not model online resharding "
            "or replica changes",
            "destroy and apply again, or change the shape on the real service",
        )


def _record(state: dict[str, Any], users: Iterable[valkey.TwinUser]) -> dict[str, Any]:
    """What the world keeps of a group: ids it references and its users' names (no password, no token)."""
    return {
        "id": state["id"],
        "user_group_ids": sorted(state.get("user_group_ids") or []),
        "parameter_group_name": state.get("parameter_group_name"),
        "users": [u.name for u in users],
    }


# ---- users, user groups, parameter groups -----------------------------------------------------------------------


def _passwords(config: dict[str, Any]) -> tuple[str, list[str]]:
    """``(authentication type, passwords)`` of a user configuration."""
    modes = config.get("authentication_mode") or []
    mode = modes[0] if modes else {}
    passwords = list(mode.get("passwords") or config.get("passwords") or [])
    kind = mode.get("type") or ("no-password-required" if config.get("no_password_required") else "password")
    return str(kind), [str(p) for p in passwords]


def _check_user(planned: dict[str, Any], action: str) -> tuple[str, list[str]]:
    user_id, user_name = str(planned["user_id"]), str(planned["user_name"])
    kind, passwords = _passwords(planned)
    if kind == "iam" and user_id != user_name:
        message = "User Id and User name must be same for authentication type: iam"
        raise _api_error(action, "User", user_id, "InvalidParameterCombination", message)
    if kind == "password" and not passwords:
        operation = "Create" if action == "creating" else "Modify"
        field = f"{operation}UserInput.AuthenticationMode.Passwords"
        message = f"1 validation error(s) found.\n- minimum field size of 1, {field}."
        raise _api_error(action, "User", user_id, "InvalidParameter", message)
    if any(not 16 <= len(p) <= 128 for p in passwords):
        message = "Passwords length must be between 16-128 characters."
        raise _api_error(action, "User", user_id, "InvalidParameterValue", message)
    try:
        valkey.check_acl_rules(str(planned["access_string"]))
    except TwinError as exc:
        raise _api_error(action, "User", user_id, "InvalidParameterValue", exc.summary) from exc
    return kind, passwords


def _rgs_using(world: TwinWorld, *, user_group: str | None = None, parameter_group: str | None = None) -> list[str]:
    names = []
    for record in world.all(RG):
        by_parameters = parameter_group is not None and record["parameter_group_name"] == parameter_group
        if user_group in record["user_group_ids"] or by_parameters:
            names.append(str(record["id"]))
    return names


def _refresh(world: TwinWorld, rg_names: Iterable[str]) -> None:
    """Apply the current users and parameters to replication groups (as ElastiCache propagates changes)."""
    for name in rg_names:
        record, fleet = world.load(RG, name), valkey.fleet_of(world, RG, name)
        if record is None or fleet is None:
            continue
        users = _group_users(world, record["user_group_ids"], name) if record["user_group_ids"] else None
        if users is not None:
            valkey.apply_users(fleet, users, record["users"])
            world.save(RG, name, {**record, "users": [u.name for u in users]})
        valkey.apply_parameters(fleet, rg_parameters(world, record, name))


class UserTwin(GenericTwin):
    """``aws_elasticache_user``: recorded in the world with its password hashes; groups make it a Valkey user."""

    type_name = USER

    def create(self, change: Change) -> dict[str, Any]:
        """CreateUser."""
        return self._put(change, "creating")

    def update(self, change: Change) -> dict[str, Any]:
        """ModifyUser; replication groups whose user groups hold the user get the change."""
        state = self._put(change, "modifying")
        groups = [g["id"] for g in change.world.all(GROUP) if state["user_id"] in g["user_ids"]]
        _refresh(change.world, {rg for g in groups for rg in _rgs_using(change.world, user_group=g)})
        return state

    def _put(self, change: Change, action: str) -> dict[str, Any]:
        planned = dict(change.planned or {})
        kind, passwords = _check_user(planned, action)
        user_id = str(planned["user_id"])
        if action == "creating" and (user_id == "default" or change.world.load(USER, user_id) is not None):
            raise _api_error(action, "User", user_id, "UserAlreadyExists", "User already exists.")
        record = {
            "user_id": user_id,
            "user_name": planned["user_name"],
            "access_string": planned["access_string"],
            "hashes": [hash_password(p) for p in passwords] if kind == "password" else [],
        }
        change.world.save(USER, user_id, record)
        region = _region(planned, change.provider)
        planned |= {"id": user_id, "arn": f"arn:aws:elasticache:{region}:{ACCOUNT}:user:{user_id}", "region": region}
        for mode in planned.get("authentication_mode") or []:
            mode["password_count"] = len(passwords)
        if planned.get("tags_all") is UNKNOWN:
            planned["tags_all"] = planned.get("tags") or {}
        return planned

    def delete(self, change: Change) -> None:
        """DeleteUser."""
        change.world.forget(USER, str((change.prior or {})["user_id"]))

    def read(self, state: dict[str, Any], world: TwinWorld) -> dict[str, Any] | None:
        """The user while recorded."""
        return state if world.load(USER, str(state.get("user_id"))) is not None else None


class UserGroupTwin(GenericTwin):
    """``aws_elasticache_user_group``: a set of recorded users, which must include one named ``default``."""

    type_name = GROUP

    def create(self, change: Change) -> dict[str, Any]:
        """CreateUserGroup."""
        return self._put(change, "creating")

    def update(self, change: Change) -> dict[str, Any]:
        """ModifyUserGroup; replication groups using it get the new users."""
        state = self._put(change, "modifying")
        _refresh(change.world, _rgs_using(change.world, user_group=state["user_group_id"]))
        return state

    def _put(self, change: Change, action: str) -> dict[str, Any]:
        planned = dict(change.planned or {})
        group_id, user_ids = str(planned["user_group_id"]), sorted(planned.get("user_ids") or [])
        names = []
        for user_id in user_ids:
            record = BUILTIN_DEFAULT if user_id == "default" else change.world.load(USER, user_id)
            if record is None:
                raise _api_error(action, "User Group", group_id, "UserNotFound", f"User {user_id} not found.")
            names.append(record["user_name"])
        if "default" not in names:
            message = "User group needs to contain a user with the user name default."
            raise _api_error(action, "User Group", group_id, "DefaultUserRequired", message)
        change.world.save(GROUP, group_id, {"id": group_id, "user_ids": user_ids})
        region = _region(planned, change.provider)
        planned |= {"id": group_id, "arn": f"arn:aws:elasticache:{region}:{ACCOUNT}:usergroup:{group_id}"}
        planned["region"] = region
        if planned.get("tags_all") is UNKNOWN:
            planned["tags_all"] = planned.get("tags") or {}
        return planned

    def delete(self, change: Change) -> None:
        """DeleteUserGroup."""
        change.world.forget(GROUP, str((change.prior or {})["user_group_id"]))

    def read(self, state: dict[str, Any], world: TwinWorld) -> dict[str, Any] | None:
        """The group while recorded."""
        return state if world.load(GROUP, str(state.get("user_group_id"))) is not None else None


class ParameterGroupTwin(GenericTwin):
    """``aws_elasticache_parameter_group``: parameters recorded for the replication groups that name it."""

    type_name = PARAMS

    def create(self, change: Change) -> dict[str, Any]:
        """CreateCacheParameterGroup, then ModifyCacheParameterGroup with the parameters."""
        return self._put(change)

    def update(self, change: Change) -> dict[str, Any]:
        """ModifyCacheParameterGroup; replication groups using it get the new values."""
        state = self._put(change)
        _refresh(change.world, _rgs_using(change.world, parameter_group=state["name"]))
        return state

    def _put(self, change: Change) -> dict[str, Any]:
        planned = dict(change.planned or {})
        name = str(planned["name"])
        parameters = sorted((str(p["name"]), str(p["value"])) for p in planned.get("parameter") or [])
        change.world.save(PARAMS, name, {"name": name, "family": planned["family"], "parameters": parameters})
        region = _region(planned, change.provider)
        planned |= {"id": name, "arn": f"arn:aws:elasticache:{region}:{ACCOUNT}:parametergroup:{name}"}
        planned["region"] = region
        if planned.get("tags_all") is UNKNOWN:
            planned["tags_all"] = planned.get("tags") or {}
        return planned

    def delete(self, change: Change) -> None:
        """DeleteCacheParameterGroup."""
        change.world.forget(PARAMS, str((change.prior or {})["name"]))

    def read(self, state: dict[str, Any], world: TwinWorld) -> dict[str, Any] | None:
        """The parameter group while recorded."""
        return state if world.load(PARAMS, str(state.get("name"))) is not None else None


# ---- data sources -----------------------------------------------------------------------------------------------


def zone_id_prefix(region: str) -> str:
    """The short region code of zone ids: ``eu-west-3`` -> ``euw3``, ``ap-southeast-2`` -> ``apse2``."""
    parts = region.split("-")
    return parts[0] + "".join(_DIRECTIONS.get(p, p[:1]) for p in parts[1:-1]) + parts[-1]


class AvailabilityZonesTwin:
    """``aws_availability_zones``: the zones of the configured region (``<region>a``, ``b``, ``c``)."""

    type_name = "aws_availability_zones"

    def read(self, config: dict[str, Any], world: TwinWorld, provider: dict[str, Any]) -> dict[str, Any]:
        """Names and zone ids of the region, minus the excluded ones."""
        region = _region(config, provider)
        if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]+", region):
            raise TwinError(f"invalid AWS Region: {region}")
        letters = _ZONE_LETTERS.get(region, "abc")
        zones = [(f"{region}{letter}", f"{zone_id_prefix(region)}-az{i + 1}") for i, letter in enumerate(letters)]
        excluded = set(config.get("exclude_names") or []) | set(config.get("exclude_zone_ids") or [])
        zones = [(n, z) for n, z in zones if n not in excluded and z not in excluded]
        return {
            **config,
            "id": region,
            "region": region,
            "names": [n for n, _ in zones],
            "zone_ids": [z for _, z in zones],
            "group_names": [region] * len(zones),
        }


RESOURCES = (ReplicationGroupTwin(), UserTwin(), UserGroupTwin(), ParameterGroupTwin())
DATA_SOURCES = (AvailabilityZonesTwin(),)
