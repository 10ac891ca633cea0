"""The tfplugin6 ``Provider`` gRPC service of a provider that only knows its schema.

It behaves as far as a schema allows like the real provider would at validate and plan time, and makes up
deterministic values at apply time (see :mod:`reproducer.offline.values`). Nothing leaves the
machine: there is no API behind it.
"""

# mypy: disable-error-code="import-untyped"
from __future__ import annotations

import json
from typing import Any

from tf.gen import tfplugin_pb2 as pb
from tf.gen import tfplugin_pb2_grpc as rpc

from reproducer.offline import proto
from reproducer.offline.replace import requires_replace
from reproducer.offline.schema import ProviderSchema, Schema, implied_type
from reproducer.offline.values import (
    UNKNOWN,
    complete,
    computed_only_set,
    digest,
    empty_object,
    fill,
    key_maps,
    plan_create,
    plan_update,
    read_data,
)


def _describe(path: tuple[Any, ...]) -> str:
    text = ""
    for item in path:
        if isinstance(item, tuple):
            text += f'["{item[0]}"]'
        elif isinstance(item, int):
            text += f"[{item}]"
        else:
            text += f".{item}" if text else item
    return text


#: The private data of an object imported (``import`` blocks) and not yet applied: only its id is known.
IMPORTED = b"reproducer-offline:imported"


def only_imported(private: bytes) -> bool:
    """Whether a prior state is an import not applied yet: its attributes are unknown, not different.

    Such an object plans as an in-place update to its configuration, its computed attributes unknown, never as a
    replacement: the real provider would read the object and show only its real differences, which no schema
    can tell.
    """
    return private == IMPORTED


class SchemaProvider(rpc.ProviderServicer):  # type: ignore[misc]
    """A ``tfplugin6.Provider`` servicer answering from a :class:`ProviderSchema`.

    Args:
        schema: the provider's schema; its resource and data source types are the ones served.
    """

    def __init__(self, schema: ProviderSchema) -> None:
        self.schema = schema
        self._schema_response = proto.provider_schema_response(schema)
        self._ids: set[str] = set()

    # -- schema and configuration ------------------------------------------------------------------------------

    def GetMetadata(self, request: Any, context: Any) -> Any:
        """List the served types without their schemas."""
        return pb.GetMetadata.Response(
            server_capabilities=proto.capabilities(),
            resources=[pb.GetMetadata.ResourceMetadata(type_name=n) for n in self.schema.resources],
            data_sources=[pb.GetMetadata.DataSourceMetadata(type_name=n) for n in self.schema.data_sources],
        )

    def GetProviderSchema(self, request: Any, context: Any) -> Any:
        """Return the schemas, built once from the JSON document."""
        return self._schema_response

    def ValidateProviderConfig(self, request: Any, context: Any) -> Any:
        """Accept any provider configuration Terraform found well-typed."""
        return pb.ValidateProviderConfig.Response()

    def ConfigureProvider(self, request: Any, context: Any) -> Any:
        """Accept the configuration; there is no API to log in to."""
        return pb.ConfigureProvider.Response()

    def _validate(self, schema: Schema, config: Any) -> list[Any]:
        return [
            proto.error(
                "Computed attribute cannot be set",
                f'"{_describe(path)}" is set by the provider and cannot be configured: remove it.',
                path,
            )
            for path, _attr in computed_only_set(schema.block, config)
        ]

    def ValidateResourceConfig(self, request: Any, context: Any) -> Any:
        """Reject values given to computed-only attributes, as the real providers do."""
        schema = self.schema.resources[request.type_name]
        return pb.ValidateResourceConfig.Response(diagnostics=self._validate(schema, proto.decode(request.config)))

    def ValidateDataResourceConfig(self, request: Any, context: Any) -> Any:
        """Reject values given to computed-only attributes of a data source."""
        schema = self.schema.data_sources[request.type_name]
        diagnostics = self._validate(schema, proto.decode(request.config))
        return pb.ValidateDataResourceConfig.Response(diagnostics=diagnostics)

    def GetFunctions(self, request: Any, context: Any) -> Any:
        """No provider-defined functions."""
        return pb.GetFunctions.Response()

    def StopProvider(self, request: Any, context: Any) -> Any:
        """Nothing runs in the background; stopping is immediate."""
        return pb.StopProvider.Response()

    # -- managed resources -------------------------------------------------------------------------------------

    def UpgradeResourceState(self, request: Any, context: Any) -> Any:
        """Pass the stored state through, conformed to the current schema."""
        block = self.schema.resources[request.type_name].block
        if not request.raw_state.json:
            summary = "Legacy flatmap state is not supported"
            return pb.UpgradeResourceState.Response(diagnostics=[proto.error(summary)])
        state = fill(json.loads(request.raw_state.json), implied_type(block), "upgrade")
        return pb.UpgradeResourceState.Response(upgraded_state=proto.encode_json(state))

    def ReadResource(self, request: Any, context: Any) -> Any:
        """Echo the stored state: nothing drifts in a sandbox."""
        return pb.ReadResource.Response(new_state=request.current_state, private=request.private)

    def PlanResourceChange(self, request: Any, context: Any) -> Any:
        """Plan a create (computed attributes unknown), an update (as proposed) or a destroy.

        An update names the attributes whose change forces replacement (``requires_replace``, from
        :mod:`reproducer.offline.replace`); Terraform then plans the resource as replaced. An object only imported
        (:func:`only_imported`) plans as an update with its computed attributes unknown.
        """
        block = self.schema.resources[request.type_name].block
        proposed, prior = proto.decode(request.proposed_new_state), proto.decode(request.prior_state)
        replace: list[Any] = []
        if proposed is None:
            planned = None
        elif prior is None:
            planned = plan_create(block, proposed)
        elif only_imported(request.prior_private):
            planned = plan_create(block, proposed)  # what the real provider would have read is unknown here
        else:
            planned = plan_update(block, proposed)
            replace = requires_replace(self.schema.address, request.type_name, block, prior, planned)
        return pb.PlanResourceChange.Response(
            planned_state=proto.encode(planned),
            requires_replace=[proto.attribute_path(path) for path in replace],
            planned_private=b"",
        )

    def ApplyResourceChange(self, request: Any, context: Any) -> Any:
        """Make the planned state real with deterministic fake values; a null plan deletes."""
        block = self.schema.resources[request.type_name].block
        planned = proto.decode(request.planned_state)
        if planned is None:
            return pb.ApplyResourceChange.Response(new_state=proto.encode(None))
        seed = digest(request.type_name, planned)
        if isinstance(planned, dict) and planned.get("id") is UNKNOWN:
            planned = {**planned, "id": self._unique_id(seed)}
        planned = key_maps(request.type_name, planned)
        return pb.ApplyResourceChange.Response(new_state=proto.encode(complete(block, planned, seed, one_string=True)))

    def _unique_id(self, seed: str) -> str:
        candidate, n = f"fake-{seed}", 1
        while candidate in self._ids:
            n += 1
            candidate = f"fake-{seed}-{n}"
        self._ids.add(candidate)
        return candidate

    def ImportResourceState(self, request: Any, context: Any) -> Any:
        """Import an object that has only its id, marked :data:`IMPORTED`; the next read echoes it."""
        block = self.schema.resources[request.type_name].block
        state = {**empty_object(block), "id": request.id} if "id" in block.attributes else empty_object(block)
        imported = pb.ImportResourceState.ImportedResource(
            type_name=request.type_name, state=proto.encode(state), private=IMPORTED
        )
        return pb.ImportResourceState.Response(imported_resources=[imported])

    # -- data sources ------------------------------------------------------------------------------------------

    def ReadDataSource(self, request: Any, context: Any) -> Any:
        """Answer with the configuration plus fake values for the computed attributes."""
        block = self.schema.data_sources[request.type_name].block
        config = proto.decode(request.config)
        state = read_data(block, config, digest(request.type_name, config))
        return pb.ReadDataSource.Response(state=proto.encode(state))
