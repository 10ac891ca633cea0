"""The tfplugin6 ``Provider`` servicer of a twin: the offline provider, with modelled types answered by twins."""

# mypy: disable-error-code="import-untyped"
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from tf.gen import tfplugin_pb2 as pb

from reproducer.offline import proto
from reproducer.offline.schema import ProviderSchema
from reproducer.offline.server import SchemaProvider
from reproducer.offline.values import complete, digest
from reproducer.twins.base import Change, DataSourceTwin, ResourceTwin, TwinError, TwinWorld

#: Returns the resource and data source twins of a provider (importing the modules that model them).
TwinLoader = Callable[[], tuple[Sequence[ResourceTwin], Sequence[DataSourceTwin]]]


def _diagnostic(error: TwinError) -> Any:
    return proto.error(error.summary, error.detail, error.path)


def _legacy(twin: ResourceTwin) -> bool:
    """Whether the twin's provider is built on SDKv2, whose plans and results Terraform checks only loosely."""
    return bool(getattr(twin, "legacy_type_system", False))


class TwinProvider(SchemaProvider):
    """A schema-serving provider whose modelled resource and data source types are answered by twins.

    Args:
        schema: the provider's committed schema subset.
        resources: the resource twins, one per modelled type.
        data_sources: the data source twins.
        world: where applied resources are recorded (default: from the environment).
        load_twins: instead of ``resources`` and ``data_sources``, a function returning both, called on first
            use (a provider process that only answers the schema never imports the twins' modules).
    """

    def __init__(
        self,
        schema: ProviderSchema,
        resources: Iterable[ResourceTwin] = (),
        data_sources: Iterable[DataSourceTwin] = (),
        world: TwinWorld | None = None,
        *,
        load_twins: TwinLoader | None = None,
    ) -> None:
        super().__init__(schema)
        self._load_twins = load_twins or (lambda: (tuple(resources), tuple(data_sources)))
        self._twins: tuple[dict[str, ResourceTwin], dict[str, DataSourceTwin]] | None = None
        self._world = world
        self.provider_config: dict[str, Any] = {}

    def _loaded(self) -> tuple[dict[str, ResourceTwin], dict[str, DataSourceTwin]]:
        if self._twins is None:
            resources, data_sources = self._load_twins()
            self._twins = ({t.type_name: t for t in resources}, {t.type_name: t for t in data_sources})
        return self._twins

    @property
    def resources(self) -> dict[str, ResourceTwin]:
        """The resource twins by type (loaded on first use: a schema-only start never imports them)."""
        return self._loaded()[0]

    @property
    def data_sources(self) -> dict[str, DataSourceTwin]:
        """The data source twins by type (loaded on first use)."""
        return self._loaded()[1]

    @property
    def world(self) -> TwinWorld:
        """The twins' world (read from the environment on first use)."""
        if self._world is None:
            self._world = TwinWorld.from_environment()
        return self._world

    def ConfigureProvider(self, request: Any, context: Any) -> Any:
        """Keep the provider block's configuration (region, project...) for the twins."""
        decoded = proto.decode(request.config)
        self.provider_config = decoded if isinstance(decoded, dict) else {}
        return super().ConfigureProvider(request, context)

    def _change(self, request: Any, planned_field: str) -> Change:
        config = proto.decode(request.config) if request.HasField("config") else None
        return Change(
            type_name=request.type_name,
            prior=proto.decode(request.prior_state),
            planned=proto.decode(getattr(request, planned_field)),
            config=config,
            world=self.world,
            provider=self.provider_config,
        )

    def ValidateResourceConfig(self, request: Any, context: Any) -> Any:
        """The offline checks, then the twin's plan-time rules."""
        response = super().ValidateResourceConfig(request, context)
        twin = self.resources.get(request.type_name)
        if twin is not None and not response.diagnostics:
            try:
                twin.validate(proto.decode(request.config))
            except TwinError as error:
                response.diagnostics.append(_diagnostic(error))
        return response

    def PlanResourceChange(self, request: Any, context: Any) -> Any:
        """The offline plan (replacements from the shared table, ``offline/replace.py``), adjusted by the twin."""
        response = super().PlanResourceChange(request, context)
        twin = self.resources.get(request.type_name)
        if twin is None or not response.planned_state.msgpack:
            return response
        change = self._change(request, "proposed_new_state")
        change.planned = proto.decode(response.planned_state)
        try:
            planned = twin.plan(change)
        except TwinError as error:
            return pb.PlanResourceChange.Response(diagnostics=[_diagnostic(error)])
        response.planned_state.CopyFrom(proto.encode(planned))
        response.legacy_type_system = _legacy(twin)
        return response

    def ApplyResourceChange(self, request: Any, context: Any) -> Any:
        """Create, update or delete through the twin; an error leaves the prior state, as a failed API call."""
        twin = self.resources.get(request.type_name)
        if twin is None:
            return super().ApplyResourceChange(request, context)
        change = self._change(request, "planned_state")
        block = self.schema.resources[request.type_name].block
        try:
            if change.planned is None:
                twin.delete(change)
                state = None
            else:
                made = twin.create(change) if change.prior is None else twin.update(change)
                state = complete(block, made, digest(request.type_name, change.planned))
        except TwinError as error:
            return pb.ApplyResourceChange.Response(new_state=request.prior_state, diagnostics=[_diagnostic(error)])
        return pb.ApplyResourceChange.Response(new_state=proto.encode(state), legacy_type_system=_legacy(twin))

    def ReadResource(self, request: Any, context: Any) -> Any:
        """What the twin reports now; a resource gone from the world is gone from the state (a create is planned)."""
        twin = self.resources.get(request.type_name)
        if twin is None:
            return super().ReadResource(request, context)
        current = proto.decode(request.current_state)
        try:
            state = None if current is None else twin.read(current, self.world)
        except TwinError as error:
            return pb.ReadResource.Response(new_state=request.current_state, diagnostics=[_diagnostic(error)])
        return pb.ReadResource.Response(new_state=proto.encode(state), private=request.private)

    def ReadDataSource(self, request: Any, context: Any) -> Any:
        """The twin's answer for a modelled data source, else the offline one."""
        twin = self.data_sources.get(request.type_name)
        if twin is None:
            return super().ReadDataSource(request, context)
        try:
            state = twin.read(proto.decode(request.config), self.world, self.provider_config)
        except TwinError as error:
            return pb.ReadDataSource.Response(diagnostics=[_diagnostic(error)])
        block = self.schema.data_sources[request.type_name].block
        return pb.ReadDataSource.Response(state=proto.encode(complete(block, state, digest(request.type_name, state))))
