"""``render``: a spec rendered for a target, in memory or into an output directory it owns."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reproducer.atomic import output_error
from reproducer.errors import InputError
from reproducer.pipeline.backend import with_backend
from reproducer.pipeline.files import write_tree

if TYPE_CHECKING:  # pydantic and the targets load only for the commands that use them
    from reproducer.model import ServiceSpec
    from reproducer.targets.base import Rendered, Target


@dataclass(frozen=True)
class RenderRequest:
    """What to render: a spec file, a target, where, the reshaping options, the network and the adoptions.

    ``network``: ``new`` (the render creates it) or ``existing`` (the user's, read by data sources);
    ``adopt``: ``ADDRESS=ID`` values of ``--adopt``, checked by the target against what it renders (``none``
    alone: no adoption). Either one None keeps what ``out`` was rendered with (its ``compatibility.json``), so a
    later ``plan``, ``apply`` or re-render of that directory does not bring a network back or drop an import.
    """

    spec: Path
    target: str
    out: Path
    shards: int | None = None
    replicas: int | None = None
    name: str | None = None
    region: str | None = None
    network: str | None = None
    adopt: tuple[str, ...] | None = None
    #: ``render --backend``: a state backend kind, ``none`` to remove one, None to keep what ``out`` has.
    backend: str | None = None


@dataclass(frozen=True)
class InMemoryRender:
    """A render that was not written: the spec it came from, the target, and its files and rows."""

    spec: ServiceSpec
    target: Target
    rendered: Rendered


def render_in_memory(request: RenderRequest) -> InMemoryRender:
    """Load the spec and render it for the target, without writing anything."""
    from reproducer.model import load_spec
    from reproducer.targets import get_target
    from reproducer.targets.adopt import parse_adoptions, parse_network
    from reproducer.targets.base import RenderOptions

    target = get_target(request.target)
    network, adopt = _network_and_adoptions(request)
    options = RenderOptions(
        shards=request.shards,
        replicas=request.replicas,
        name=request.name,
        region=request.region,
        network=parse_network(network),
        adopt=parse_adoptions(adopt),
    )
    spec = load_spec(request.spec)
    rendered = target.render(spec, options)
    files = with_backend(rendered.files, request.backend, request.out, terraform=bool(target.terraform_providers))
    return InMemoryRender(spec, target, replace(rendered, files=files))


def _network_and_adoptions(request: RenderRequest) -> tuple[str, tuple[str, ...]]:
    """The request's ``--network`` and ``--adopt``, each one not given taken from what ``out`` records."""
    recorded = recorded_resources(request.out) if request.network is None or request.adopt is None else {}
    network = request.network or str(recorded.get("network", "new"))
    if request.adopt is None:
        adopt = tuple(f"{address}={ident}" for address, ident in recorded.get("adopted", {}).items())
    else:
        adopt = () if request.adopt == ("none",) else request.adopt
    return network, adopt


def recorded_resources(out: Path) -> dict[str, Any]:
    """``resources`` of ``out/compatibility.json`` (network and adoptions a render recorded), else empty.

    The file arrives in pull requests: its shape is checked here and its values again by the target's parsers.
    """
    path = out / "compatibility.json"
    if not path.is_file() or path.is_symlink():
        return {}
    try:
        resources = json.loads(path.read_text(encoding="utf-8")).get("resources", {})
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        resources = None
    adopted = resources.get("adopted", {}) if isinstance(resources, dict) else None
    if (
        not isinstance(resources, dict)
        or not isinstance(adopted, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in adopted.items())
    ):
        raise InputError(
            f"{path} is not a compatibility report reproducer wrote",
            hint="pass --network and --adopt explicitly, or render into a new directory",
        )
    return resources


def render(request: RenderRequest) -> Rendered:
    """Render a spec for a target into ``out`` (see ``write_tree``: it owns only the files it wrote there).

    Missing parents of ``out`` are created (``--out infra/aws`` in a fresh repository), once the render succeeded.
    """
    rendered = render_in_memory(request).rendered
    make_parents(request.out)
    write_tree(request.out, rendered.files)
    return rendered


def make_parents(out: Path) -> None:
    """Create the missing parent directories of ``out``, as ``mkdir -p`` would; nothing that exists is touched.

    Raises:
        InputError: a part of the path exists and is not a directory.
        OutputError: the file system refused (read-only, permissions, full).
    """
    parent = out.parent
    if parent.is_dir():
        return
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError(
            f"cannot create {parent}: a part of that path is a file, not a directory",
            hint="choose another --out",
        ) from None
    except OSError as error:
        raise output_error(parent, error) from None
