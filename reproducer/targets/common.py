"""Context shared by every target's templates, and the assembly of a target's output files."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from reproducer import catalog
from reproducer.catalog import to_valkey
from reproducer.errors import InputError
from reproducer.model import AllowedCidr, ServiceSpec, User
from reproducer.targets import adopt, compat
from reproducer.targets.base import CompatRow, Rendered, RenderOptions, TerraformProvider
from reproducer.targets.render import Safe, comment, hcl_ident, one_line, render_template, slug
from reproducer.targets.sizing import Choice, NodeSize, choose

TERRAFORM_FILES = ("versions.tf", "providers.tf", "main.tf", "variables.tf", "outputs.tf")


#: Valkey versions the targets know how to express (OVH offers 7.2, 8.0, 8.1).
KNOWN_VERSIONS = ("7.2", "8.0", "8.1")


_TIME_OF_DAY = re.compile(r"([01]\d|2[0-3]):[0-5]\d:[0-5]\d")
#: Anything a line-based file (valkey.conf, an ACL file) would read as the end of a line or worse.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")


@dataclass(frozen=True)
class Shape:
    """The largest topology a target accepts, and where that limit is documented."""

    max_shards: int
    max_replicas: int
    max_nodes: int
    source: str


#: Beyond any target: AWS ElastiCache's limits, the largest documented (docs/reference/targets.md#topology-limits).
ANY_TARGET = Shape(
    500,
    5,
    500 * 6,
    "AWS ElastiCache: 1-500 shards, up to 5 replicas per shard (docs/reference/targets.md#topology-limits)",
)


def check_renderable(spec: ServiceSpec) -> None:
    """Refuse what no target can size or express, before anything is built.

    Defence in depth: the model validates too, but a spec that bypassed it is refused here, never rendered or
    crashed on.
    """
    memory = spec.plan.memory_gb
    if memory is None or not memory:
        raise InputError(
            f"the memory of flavor {spec.plan.flavor!r} is unknown, so no target node can be sized",
            hint="set plan.memory_gb (GB per node) in the spec, or re-inspect a service with a known flavor",
        )
    if not math.isfinite(memory) or memory <= 0:
        raise InputError(
            f"plan.memory_gb {memory!r} is not a positive number of GB, so no target node can be sized",
            hint="set plan.memory_gb to the memory per node in GB (e.g. 7)",
        )
    if spec.engine.version not in KNOWN_VERSIONS:
        raise InputError(
            f"engine version {one_line(spec.engine.version)!r} is not one reproducer can render",
            hint=f"use one of {', '.join(KNOWN_VERSIONS)} in engine.version",
        )
    _check_times(spec)
    _check_cidrs(spec)


def _check_times(spec: ServiceSpec) -> None:
    for field, value in (("backups.time", spec.backups.time), ("maintenance_time", spec.maintenance_time)):
        if value is not None and not _TIME_OF_DAY.fullmatch(value):
            raise InputError(f"{field} {one_line(value)!r} is not a time of day", hint=f"write {field} as HH:MM:SS")
    days = spec.backups.retention_days
    if days is not None and not 0 <= days <= 365:
        raise InputError(
            f"backups.retention_days {days!r} is not between 0 and 365 days",
            hint="set backups.retention_days to the number of days backups are kept",
        )


def _check_cidrs(spec: ServiceSpec) -> None:
    private = spec.network.private
    cidrs = [("allow_list", entry.cidr) for entry in spec.allow_list]
    cidrs += [("network.private.subnet.cidr", private.subnet.cidr)] if private and private.subnet else []
    for field, cidr in cidrs:
        try:
            ipaddress.ip_network(cidr)
        except ValueError:
            raise InputError(
                f"{field} {one_line(cidr)!r} is not an IP network in CIDR form",
                hint="write networks as 203.0.113.0/24 (host bits cleared)",
            ) from None


def check_shape(shards: int, replicas: int, shape: Shape, title: str) -> None:
    """Refuse a topology beyond what ``title`` accepts (before any list of nodes is built)."""
    nodes = shards * (1 + replicas) if shards >= 1 and replicas >= 0 else 0
    if not 1 <= shards <= shape.max_shards:
        problem = f"{shards} shard(s) is not between 1 and {shape.max_shards}"
    elif not 0 <= replicas <= shape.max_replicas:
        problem = f"{replicas} replica(s) per shard is not between 0 and {shape.max_replicas}"
    elif nodes > shape.max_nodes:
        problem = f"{shards} x (1 + {replicas}) = {nodes} instances is more than {shape.max_nodes}"
    else:
        return
    raise InputError(
        f"{title} cannot run this topology: {problem} ({shape.source})",
        hint="pass smaller --shards/--replicas, or fix topology in the spec",
    )


def check_config_lines(settings: dict[str, str], title: str) -> None:
    """Refuse a setting whose value would end its valkey.conf line (a new directive, a truncated file)."""
    for key, value in settings.items():
        if _CONTROL.search(value) or _CONTROL.search(key):
            raise InputError(
                f"configuration {key!r} has a line break or control character in its value, which {title} "
                "would write into valkey.conf",
                hint=f"fix the value of {key} in the spec's configuration (one line of printable text)",
            )


def check_resource_names(spec: ServiceSpec, title: str) -> None:
    """Refuse two users whose names make the same Terraform resource name or user id on ``title``."""
    users = [user.name for user in spec.users]
    check_unique("users", [(hcl_ident(name), name) for name in users], title)
    check_unique("users", [(slug(name), name) for name in users], title)


def check_unique(kind: str, names: Sequence[tuple[str, str]], title: str) -> None:
    """Refuse two ``(resource name, source value)`` pairs with one resource name and different source values."""
    seen: dict[str, str] = {}
    for resource, source in names:
        other = seen.setdefault(resource, source)
        if other != source:
            first, second = sorted((other, source))
            raise InputError(
                f"{kind} {one_line(first)!r} and {one_line(second)!r} would get the same resource name on "
                f"{title} ({resource})",
                hint="rename one of them in the spec (resource names keep only a-z, 0-9, _ and -, and are cut at "
                "40 characters)",
            )


@dataclass(frozen=True)
class RegionMap:
    """A provider's region names: their shape, and the nearest one to each OVH region.

    A name of another shape (a typo, another provider's name) is refused, not rendered; the nearest region is a
    default the user can change (approximated).
    """

    form: re.Pattern[str]
    nearest: dict[str, str]

    @property
    def example(self) -> str:
        """A region to show in hints: the one nearest to Gravelines."""
        return self.nearest["GRA"]


def target_region(regions: RegionMap, title: str, spec: ServiceSpec, region: str | None) -> str:
    """``region`` when it is a well-formed region name of ``regions``, else the nearest to the source's region."""
    if region is not None:
        if not regions.form.fullmatch(region):
            raise InputError(
                f"{region!r} is not a region name of {title}",
                hint=f"pass --region with a {title} region, e.g. {regions.example}",
            )
        return region
    nearest = regions.nearest.get(spec.source.region.upper())
    if nearest is None:
        raise InputError(
            f"no {title} region is known to be near the source region {spec.source.region!r}",
            hint=f"pass --region with a {title} region (e.g. {regions.example}), or fix source.region in the spec "
            f"(OVH regions: {', '.join(catalog.REGIONS)})",
        )
    return nearest


def ovh_region(spec: ServiceSpec, region: str | None) -> str:
    """The OVH region to render: ``region`` when OVH offers Managed Valkey there, else the source's region."""
    if region is None:
        return spec.source.region
    if region.upper() not in catalog.REGIONS:
        raise InputError(
            f"OVHcloud offers no Managed Valkey in region {region!r}",
            hint=f"pass --region with one of {', '.join(catalog.REGIONS)}",
        )
    return region.upper()


def base_context(
    spec: ServiceSpec, options: RenderOptions, shape: Shape = ANY_TARGET, title: str = ""
) -> dict[str, Any]:
    """Names, the (possibly reshaped) topology, users and settings every template uses.

    Refuses, before building anything, a spec no target renders and a topology beyond ``shape``.
    """
    check_renderable(spec)
    shards = options.shards or spec.topology.shards
    replicas = options.replicas if options.replicas is not None else spec.topology.replicas_per_shard
    check_shape(shards, replicas, shape, title or "a target")
    name = options.name or spec.source.description or f"valkey-{spec.source.service_id[:8]}"
    # Valkey values, converted from the provider's (redis_persistence=rdb → save "3600 1 …").
    settings = dict(mapped for c in spec.configuration if (mapped := to_valkey(c.source_name, c.value)))
    return {
        "spec": spec,
        "name": slug(name),
        "ident": hcl_ident(name),
        "shards": shards,
        "replicas": replicas,
        "users": [{"name": u.name, "ident": hcl_ident(u.name), "user": u} for u in spec.users],
        "settings": settings,
        "allow_list": [_allowed(entry) for entry in spec.allow_list],
        "subnet_cidr": _subnet_cidr(spec),
        "existing_network": options.network == "existing",
        "header": header(spec),
    }


def check_network_options(
    options: RenderOptions, title: str, *, existing: bool, terraform: bool = True, hint: str = ""
) -> None:
    """Refuse ``--network existing`` where ``title`` cannot take the user's network, and ``--adopt`` without Terraform.

    ``existing``: the target renders data sources for an existing network (aws, gcp, ovh, selfmanaged);
    ``hint``: what to do instead on a target that cannot.
    """
    adopt.parse_network(options.network)
    if options.adopt and not terraform:
        raise InputError(
            f"--adopt: {title} renders no Terraform, so there is nothing to import",
            hint="drop --adopt, or render a target that renders Terraform (see reproducer render --help)",
        )
    if options.network == "existing" and not existing:
        raise InputError(
            f"--network existing: {title} has no network of yours to place the service in",
            hint=hint or "render with --network new (the default)",
        )


#: The user a copy connects as, with the rights OVH gives its built-in ``default`` user
#: (docs/reference/targets.md#the-default-user).
DEFAULT_USER = User(name="default", categories=("+@all",), keys=("*",), channels=("*",))


def has_full_rights(user: User) -> bool:
    """Whether ``user``'s ACL is exactly the full rights of :data:`DEFAULT_USER` (all commands, keys, channels)."""
    rights = (user.categories, user.commands, user.keys, user.channels)
    return rights == (DEFAULT_USER.categories, DEFAULT_USER.commands, DEFAULT_USER.keys, DEFAULT_USER.channels)


def with_default_user(users: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``users`` (template entries) with ``default`` first, added (marked ``added``) when the spec has none.

    The copy connects as ``default``, and an ElastiCache user group must hold a user of that name.
    """
    default = [user for user in users if user["name"] == "default"]
    others = [user for user in users if user["name"] != "default"]
    if not default:
        idents = {str(user["ident"]) for user in users}
        ident = next(
            hcl_ident(name) for name in ("default", "default_user", "reproducer_default") if name not in idents
        )
        default = [{"name": "default", "ident": ident, "user": DEFAULT_USER, "added": True}]
    return default + others


def _allowed(entry: AllowedCidr) -> dict[str, Any]:
    return {"cidr": entry.cidr, "description": entry.description, "ipv6": ":" in entry.cidr}


def _subnet_cidr(spec: ServiceSpec) -> str:
    private = spec.network.private
    return private.subnet.cidr if private and private.subnet else "10.0.0.0/24"


def header(spec: ServiceSpec) -> Safe:
    """The comment every rendered file starts with (spec values on one comment line each, never more)."""
    from reproducer import __version__

    source = (
        f"{one_line(spec.source.provider)} service {one_line(spec.source.service_id)} "
        f"(project {one_line(spec.source.project)})"
    )
    return comment(f"Generated by reproducer {__version__} from {source}.\nRe-render instead of editing by hand.")


def generic_header() -> Safe:
    """The comment of files that hold no spec value at all (the Python helper, ``ansible.cfg``)."""
    from reproducer import __version__

    return comment(f"Generated by reproducer {__version__}.\nRe-render instead of editing by hand.")


def assemble(
    target: str,
    title: str,
    context: dict[str, Any],
    rows: list[CompatRow],
    search: tuple[str, ...] = (),
    options: RenderOptions | None = None,
) -> Rendered:
    """Render the target's Terraform templates, the ``import`` blocks of ``--adopt``, and the compatibility report.

    A template the target lacks comes from ``templates/`` itself (``versions.tf.j2``, from ``context["providers"]``);
    ``search``: directories holding ``<target>/`` templates outside ``templates/``. With ``--adopt`` or
    ``--network existing`` the report also lists what is adopted, new and read.
    """
    options = options or RenderOptions()
    files = {
        f"terraform/{name}": render_template(f"{target}/{name}.j2", context, shared=f"{name}.j2", search=search)
        for name in TERRAFORM_FILES
    }
    example = render_template(f"{target}/terraform.tfvars.example.j2", context, search=search)
    files["terraform/terraform.tfvars.example"] = example
    spec = context["spec"]
    resources = None
    if options.adopt or options.network == "existing":
        rendered = adopt.blocks(files)
        adopt.check_adoptions(options.adopt, rendered, title)
        if options.adopt:
            files[adopt.IMPORTS_FILE] = adopt.imports_tf(options.adopt, context["header"])
        resources = adopt.resource_report(rendered, options.adopt, options.network)
    files["COMPATIBILITY.md"] = compat.report_markdown(title, spec, rows, resources)
    files["compatibility.json"] = compat.report_json(target, spec, rows, resources)
    return Rendered(files=dict(sorted(files.items())), rows=rows)


class BaseTarget:
    """The render path shared by every target: ``context`` → templates, ``rows`` → report."""

    name = ""
    title = ""
    #: The Terraform providers the rendered files require (``versions.tf`` is rendered from them).
    providers: tuple[TerraformProvider, ...] = ()
    #: Node sizes, smallest first.
    nodes: tuple[NodeSize, ...] = ()
    #: Its region names and the nearest to each OVH region, when it has its own.
    regions: RegionMap | None = None
    #: Directories holding its ``<name>/`` templates, when they are not in reproducer's ``templates/``.
    template_dirs: tuple[str, ...] = ()
    #: How the target takes ACL users: one rule string per user (AWS, GCP, ACL files) or the OVH-style parts.
    acl_form: Literal["string", "parts"] = "string"
    #: Whether each user becomes a Terraform resource (whose name must then be unique).
    user_resources = False
    #: The largest topology the target accepts.
    shape: Shape = ANY_TARGET
    #: Whether ``--network existing`` places the service in the user's network (read by data sources).
    existing_network = False
    #: Where it cannot: what to do instead (the hint of the refusal).
    existing_network_hint = ""

    @property
    def terraform_providers(self) -> tuple[str, ...]:
        """The keys of :attr:`providers`: what ``reproducer.offline.install_mirror`` takes."""
        return tuple(provider.key for provider in self.providers)

    def render(self, spec: ServiceSpec, options: RenderOptions) -> Rendered:
        """Files and compatibility rows for ``spec`` (pure: no I/O); refuses ACLs the target cannot express."""
        check_network_options(options, self.title, existing=self.existing_network, hint=self.existing_network_hint)
        compat.check_users(spec, self.title, one_string=self.acl_form == "string")
        if self.user_resources:
            check_resource_names(spec, self.title)
        context = self.context(spec, options) | {"providers": self.providers}
        return assemble(self.name, self.title, context, self.rows(spec, context), self.template_dirs, options)

    def base(self, spec: ServiceSpec, options: RenderOptions) -> dict[str, Any]:
        """:func:`base_context` with this target's limits."""
        return base_context(spec, options, self.shape, self.title)

    def node(self, spec: ServiceSpec, shards: int) -> Choice:
        """The smallest of :attr:`nodes` that holds one of ``shards`` shards of the source."""
        return choose(self.nodes, spec.plan.memory_gb or 0, shards)

    def region(self, spec: ServiceSpec, options: RenderOptions) -> str:
        """``--region`` when it is one of this target's region names, else the nearest to the source's."""
        if self.regions is None:
            raise NotImplementedError(f"{self.name} has no region map")
        return target_region(self.regions, self.title, spec, options.region)

    def context(self, spec: ServiceSpec, options: RenderOptions) -> dict[str, Any]:
        """The template context (each target adds its own choices to :func:`base_context`)."""
        raise NotImplementedError

    def rows(self, spec: ServiceSpec, context: dict[str, Any]) -> list[CompatRow]:
        """One compatibility row per attribute."""
        raise NotImplementedError


def time_hours(value: str | None, default: int) -> int:
    """The hour of an ``HH:MM:SS`` time."""
    return int(value.split(":")[0]) if value else default
