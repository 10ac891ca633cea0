"""``render``: a spec rendered for a target, in memory or into an output directory it owns."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from reproducer.pipeline.backend import with_backend
from reproducer.pipeline.files import write_tree

if TYPE_CHECKING:  # pydantic and the targets load only for the commands that use them
    from reproducer.model import ServiceSpec
    from reproducer.targets.base import Rendered, Target


@dataclass(frozen=True)
class RenderRequest:
    """What to render: a spec file, a target, where, the reshaping options, the network and the adoptions.

    ``network``: ``new`` (the render creates it) or ``existing`` (the user's, read by data sources);
    ``adopt``: ``ADDRESS=ID`` values of ``--adopt``, checked by the target against what it renders.
    """

    spec: Path
    target: str
    out: Path
    shards: int | None = None
    replicas: int | None = None
    name: str | None = None
    region: str | None = None
    network: str = "new"
    adopt: tuple[str, ...] = ()
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
    options = RenderOptions(
        shards=request.shards,
        replicas=request.replicas,
        name=request.name,
        region=request.region,
        network=parse_network(request.network),
        adopt=parse_adoptions(request.adopt),
    )
    spec = load_spec(request.spec)
    rendered = target.render(spec, options)
    files = with_backend(rendered.files, request.backend, request.out, terraform=bool(target.terraform_providers))
    return InMemoryRender(spec, target, replace(rendered, files=files))


def render(request: RenderRequest) -> Rendered:
    """Render a spec for a target into ``out`` (see ``write_tree``: it owns only the files it wrote there)."""
    rendered = render_in_memory(request).rendered
    write_tree(request.out, rendered.files)
    return rendered
