"""The aiven twin: ``aiven_valkey`` services and ``aiven_valkey_user`` users backed by real Valkey.

The plan name gives the topology (startup/hobbyist: one node; business: primary + standby; premium: three
nodes), the service is TLS-only by default, and Aiven's defaults that differ from Valkey's (idle timeout 300 s,
``allchannels`` for new users) are applied. Each rule cites ``docs/twins.md`` (section Aiven).
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from typing import Any

from reproducer.offline.values import UNKNOWN
from reproducer.sandbox.fleet import ADMIN_USER, Fleet, hash_password
from reproducer.twins import valkey
from reproducer.twins.base import Change, GenericTwin, TwinError, TwinWorld, plain

SERVICE = "aiven_valkey"
USER = "aiven_valkey_user"
_SOURCE = "docs/twins.md#aiven"
VALKEY_VERSIONS = ("8.1", "9.0", "9.1")
#: Nodes per plan tier (docs/reference/targets.md#topology-limits: Startup 1, Business 2, Premium 3).
TIER_NODES = {"hobbyist": 1, "startup": 1, "business": 2, "premium": 3}
_PLAN = re.compile(r"(hobbyist|(startup|business|premium)-\d+)")
_PLAN_NAME = re.compile(r"[a-z0-9-]+")
_USERNAME = re.compile(r"^[_A-Za-z0-9][-._A-Za-z0-9]{0,63}$")
#: Aiven project names: lower-case letters, digits and dashes (63 at most) [I].
_PROJECT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_ACL_TOGETHER = ("valkey_acl_categories", "valkey_acl_commands", "valkey_acl_keys")
#: Aiven's user-config defaults that differ from Valkey's, and the Valkey parameter each option sets.
DEFAULTS = {
    "valkey_timeout": 300,
    "valkey_maxmemory_policy": "noeviction",
    "valkey_acl_channels_default": "allchannels",
}
PARAMETERS = {
    "valkey_timeout": "timeout",
    "valkey_maxmemory_policy": "maxmemory-policy",
    "valkey_acl_channels_default": "acl-pubsub-default",
    "valkey_lfu_log_factor": "lfu-log-factor",
    "valkey_notify_keyspace_events": "notify-keyspace-events",
}
_PASSWORD_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def _api_error(status: int, message: str) -> TwinError:
    """An Aiven API error as the provider prints it (status, then the JSON body)."""
    body = f'{{"errors":[{{"message":"{message}","status":{status}}}],"message":"{message}"}}'
    return TwinError(f"{status}: {body}", f"twin rule, see {_SOURCE}")


def _known(value: Any) -> bool:
    return value is not None and value is not UNKNOWN


def _record_id(*parts: str) -> str:
    return "~".join(parts)


def _password() -> str:
    return "AVNS_" + "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(19))


def _user_config(state: dict[str, Any]) -> dict[str, Any]:
    blocks = state.get("valkey_user_config") or []
    return dict(blocks[0]) if blocks else {}


def service_fleet(world: TwinWorld, project: str, service_name: str) -> Fleet | None:
    """The fleet of a running service, or None when the service does not exist (or its Valkey is gone)."""
    if world.load(SERVICE, _record_id(project, service_name)) is None:
        return None
    return valkey.fleet_of(world, SERVICE, _record_id(project, service_name))


# ---- aiven_valkey -------------------------------------------------------------------------------------------


def _check_plan(plan: str) -> None:
    if not _PLAN.fullmatch(plan):
        raise _api_error(400, f"Invalid plan '{plan}' for service type 'valkey'")


def service_shape(state: dict[str, Any], default_password: str) -> valkey.ValkeyShape:
    """One node per plan tier's count; TLS unless ``valkey_ssl = false``; user ``default`` with the password."""
    nodes = TIER_NODES[str(state["plan"]).split("-", maxsplit=1)[0]]
    return valkey.ValkeyShape(
        replicas=nodes - 1,
        tls=_user_config(state).get("valkey_ssl") is not False,
        users=(valkey.TwinUser.with_passwords("default", "on ~* &* +@all", [default_password]),),
        parameters=_parameters(state),
    )


def _parameters(state: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The user config's Valkey parameters, with Aiven's defaults where it is silent."""
    config = {**DEFAULTS, **{k: v for k, v in _user_config(state).items() if _known(v)}}
    return tuple((parameter, str(config[option])) for option, parameter in PARAMETERS.items() if option in config)


class ValkeyService(GenericTwin):
    """``aiven_valkey``: one service of the plan's size; ``service_uri``/``host``/``port`` announce its primary."""

    type_name = SERVICE

    def validate(self, config: dict[str, Any]) -> None:
        """The provider's plan-time checks: plan name format, Valkey version enum."""
        plan = config.get("plan")
        if isinstance(plan, str) and not _PLAN_NAME.fullmatch(plan):
            raise TwinError(
                f"invalid plan name {plan!r}: use lowercase letters, digits and hyphens (business-8)",
                f"see {_SOURCE}",
                ("plan",),
            )
        version = _user_config(config).get("valkey_version")
        if isinstance(version, str) and version not in VALKEY_VERSIONS:
            allowed = " ".join(f'"{v}"' for v in VALKEY_VERSIONS)
            raise TwinError(
                f"expected valkey_user_config.0.valkey_version to be one of [{allowed}], got {version}",
                f"see {_SOURCE}",
            )

    def create(self, change: Change) -> dict[str, Any]:
        """Check the plan as the API does, start the fleet, fill the computed attributes."""
        assert change.planned is not None
        state = dict(change.planned)
        project, name = str(state["project"]), str(state["service_name"])
        _check_plan(str(state["plan"]))
        if change.world.load(SERVICE, _record_id(project, name)) is not None:
            raise _api_error(409, f"Service name '{name}' is already in use in project '{project}'")
        password = _password()
        record_id = _record_id(project, name)
        valkey.stop(change.world, SERVICE, record_id)
        valkey.start(change.world, SERVICE, record_id, service_shape(state, password))
        fleet = valkey.fleet_of(change.world, SERVICE, record_id)
        assert fleet is not None
        return self._record(change.world, fleet, state, password)

    def update(self, change: Change) -> dict[str, Any]:
        """Reconfigure; another plan tier restarts the fleet (empty: the twin does not migrate data)."""
        assert change.planned is not None and change.prior is not None
        state = dict(change.planned)
        _check_plan(str(state["plan"]))
        project, name = str(state["project"]), str(state["service_name"])
        fleet = service_fleet(change.world, project, name)
        if fleet is None:
            raise _api_error(404, "Service not found")
        password = str(change.prior["service_password"])
        shape, before = service_shape(state, password), service_shape(change.prior, password)
        if dataclasses.replace(shape, parameters=()) != dataclasses.replace(before, parameters=()):
            record_id = _record_id(project, name)
            valkey.stop(change.world, SERVICE, record_id)
            valkey.start(change.world, SERVICE, record_id, shape)
            fleet = valkey.fleet_of(change.world, SERVICE, record_id)
            assert fleet is not None
        else:
            valkey.apply_parameters(fleet, shape.parameters)
        return self._record(change.world, fleet, state, password)

    def delete(self, change: Change) -> None:
        """Refuse while termination protection is on; else stop the fleet and forget the service."""
        assert change.prior is not None
        if change.prior.get("termination_protection") is True:
            raise _api_error(
                403, "Service is protected against termination and shutdown. Remove termination protection first."
            )
        project, name = str(change.prior["project"]), str(change.prior["service_name"])
        valkey.stop(change.world, SERVICE, _record_id(project, name))
        change.world.forget(SERVICE, _record_id(project, name))

    def read(self, state: dict[str, Any], world: TwinWorld) -> dict[str, Any] | None:
        """The service while its fleet runs; gone otherwise."""
        fleet = service_fleet(world, str(state.get("project")), str(state.get("service_name")))
        return state if fleet is not None and fleet.alive() else None

    @staticmethod
    def _record(world: TwinWorld, fleet: Fleet, state: dict[str, Any], password: str) -> dict[str, Any]:
        project, name = str(state["project"]), str(state["service_name"])
        ssl = fleet.spec.tls
        primary = valkey.addresses(fleet)[0]
        scheme = "valkeys" if ssl else "valkey"
        uri = f"{scheme}://default:{password}@{primary.address}"
        components = _components(fleet, scheme, ssl)
        out = {
            **state,
            "id": f"{project}/{name}",
            "service_host": primary.host,
            "service_port": primary.port,
            "service_uri": uri,
            "service_username": "default",
            "service_password": password,
            "service_type": "valkey",
            "state": "RUNNING",
            "components": components,
            "maintenance_window_enabled": True,
        }
        out = {k: ("" if v is UNKNOWN and k.startswith("disk_space") else v) for k, v in out.items()}
        world.save(
            SERVICE,
            _record_id(project, name),
            plain({k: v for k, v in out.items() if "password" not in k and k != "service_uri"}),
        )
        return out


def _components(fleet: Fleet, scheme: str, ssl: bool) -> list[dict[str, Any]]:
    """``components``: one ``valkey`` entry per node (two at most), primary first, on the public route."""
    return [
        {
            "component": "valkey",
            "host": node.host,
            "port": node.port,
            "connection_uri": f"{scheme}://{node.address}",
            "route": "dynamic",
            "usage": "primary" if node.role == "primary" else "replica",
            "ssl": ssl,
            "privatelink_connection_id": None,
            "kafka_authentication_method": None,
            "kafka_ssl_ca": None,
        }
        for node in valkey.addresses(fleet)[:2]
    ]


# ---- aiven_valkey_user --------------------------------------------------------------------------------------


def _acl_rules(state: dict[str, Any]) -> str:
    keys = [f"~{k}" for k in state.get("valkey_acl_keys") or []]
    channels = state.get("valkey_acl_channels")
    channel_rules = ["allchannels"] if channels is None else ["resetchannels", *(f"&{c}" for c in channels)]
    parts = [
        *keys,
        *channel_rules,
        *(state.get("valkey_acl_categories") or []),
        *(state.get("valkey_acl_commands") or []),
    ]
    return " ".join(parts)


class ValkeyUser(GenericTwin):
    """``aiven_valkey_user``: an ACL user on every server of the service; ``password_wo`` is write-only."""

    type_name = USER

    def validate(self, config: dict[str, Any]) -> None:
        """The provider's plan-time checks: user name pattern, password length, ACL arguments set together."""
        username = config.get("username")
        if isinstance(username, str) and not _USERNAME.fullmatch(username):
            raise TwinError(
                f'expected value of username to match regular expression "{_USERNAME.pattern}", got {username}',
                f"see {_SOURCE}",
                ("username",),
            )
        for name in ("password", "password_wo"):
            value = config.get(name)
            if isinstance(value, str) and not 8 <= len(value) <= 256:
                raise TwinError(
                    f"expected length of {name} to be in the range (8 - 256), got {len(value)} characters",
                    f"see {_SOURCE}",
                    (name,),
                )
        given = [n for n in _ACL_TOGETHER if config.get(n) is not None]
        if given and len(given) != len(_ACL_TOGETHER):
            missing = next(n for n in _ACL_TOGETHER if n not in given)
            raise TwinError(
                f'"{missing}": all of `{",".join(_ACL_TOGETHER)}` must be specified', f"see {_SOURCE}", (missing,)
            )

    def create(self, change: Change) -> dict[str, Any]:
        """Create the ACL user on the service."""
        assert change.planned is not None and change.config is not None
        return self._set(change, None)

    def update(self, change: Change) -> dict[str, Any]:
        """New ACLs; a new password only when ``password``, or ``password_wo_version``, changed."""
        assert change.planned is not None and change.prior is not None
        return self._set(change, change.prior)

    def delete(self, change: Change) -> None:
        """Remove the ACL user."""
        assert change.prior is not None
        prior = change.prior
        fleet = service_fleet(change.world, str(prior["project"]), str(prior["service_name"]))
        if fleet is not None:
            fleet.delete_user(str(prior["username"]))
        change.world.forget(USER, _record_id(str(prior["project"]), str(prior["service_name"]), str(prior["username"])))

    def read(self, state: dict[str, Any], world: TwinWorld) -> dict[str, Any] | None:
        """Gone with its service or its record."""
        ids = (str(state.get("project")), str(state.get("service_name")), str(state.get("username")))
        if service_fleet(world, ids[0], ids[1]) is None or world.load(USER, _record_id(*ids)) is None:
            return None
        return state

    @staticmethod
    def _set(change: Change, prior: dict[str, Any] | None) -> dict[str, Any]:
        assert change.planned is not None and change.config is not None
        state = dict(change.planned)
        project, service, username = str(state["project"]), str(state["service_name"]), str(state["username"])
        if username == ADMIN_USER:
            raise _api_error(400, f"The user name {ADMIN_USER} is reserved by the twin")
        fleet = service_fleet(change.world, project, service)
        if fleet is None:
            raise _api_error(404, "Service not found")
        record_id = _record_id(project, service, username)
        recorded = change.world.load(USER, record_id) or {}
        password_hash, shown = _new_password(change.config, state, prior)
        password_hash = password_hash or recorded.get("password_hash")
        fleet.set_user(username, _acl_rules(state), password_hash=password_hash)
        change.world.save(USER, record_id, {"password_hash": password_hash, "username": username})
        return {**state, "id": f"{project}/{service}/{username}", "type": "normal", "password": shown}


def _new_password(
    config: dict[str, Any], state: dict[str, Any], prior: dict[str, Any] | None
) -> tuple[str | None, str]:
    """(hash of the password to set or None to keep the current one, the value of ``password`` in state)."""
    write_only = config.get("password_wo")
    if isinstance(write_only, str):
        version_changed = prior is None or prior.get("password_wo_version") != state.get("password_wo_version")
        return (hash_password(write_only) if version_changed else None), ""
    given = state.get("password")
    if isinstance(given, str) and given and (prior is None or prior.get("password") != given):
        return hash_password(given), given
    if prior is not None:
        return None, str(prior.get("password") or "")
    generated = _password()
    return hash_password(generated), generated


class ProjectData:
    """``data "aiven_project"``: the project, with the CA its services' certificates chain to (the world CA here)."""

    type_name = "aiven_project"

    def read(self, config: dict[str, Any], world: TwinWorld, provider: dict[str, Any]) -> dict[str, Any]:
        """The project named in ``config``, its ``ca_cert`` the PEM the twins' TLS servers are signed with."""
        project = config.get("project")
        if not isinstance(project, str) or not _PROJECT_NAME.fullmatch(project):
            raise TwinError(f"Error: project {project!r} not found", f"twin rule, see {_SOURCE}")
        ca = valkey.world_ca(world).cert.read_text(encoding="ascii")
        return {**config, "id": project, "project": project, "ca_cert": ca, "default_cloud": None}


RESOURCES = (ValkeyService(), ValkeyUser())
DATA_SOURCES: tuple[Any, ...] = (ProjectData(),)
