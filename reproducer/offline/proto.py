"""Translate between the schema model and tfplugin6 protobuf messages, and encode cty values as msgpack.

The protobuf classes come from the ``tf`` package (``tf.gen.tfplugin_pb2``). Its copy of the protocol predates
``write_only`` (field 11 of ``Schema.Attribute``), so that flag is appended as a raw protobuf field.
"""

# mypy: disable-error-code="import-untyped"
from __future__ import annotations

import json
from typing import Any

import msgpack
from tf.gen import tfplugin_pb2 as pb

from reproducer.offline.schema import Attribute, Block, NestedBlock, ProviderSchema, Schema
from reproducer.offline.values import UNKNOWN, Path

_WRITE_ONLY_TRUE = bytes([11 << 3 | 0, 1])  # field 11 (write_only), varint, true
_BLOCK_NESTING = {"single": 1, "list": 2, "set": 3, "map": 4, "group": 5}
_OBJECT_NESTING = {"single": 1, "list": 2, "set": 3, "map": 4}
_UNKNOWN_EXT = msgpack.ExtType(0, b"\x00")  # how cty encodes an unknown value


def _attribute(attr: Attribute) -> Any:
    message = pb.Schema.Attribute(
        name=attr.name,
        description=attr.description,
        required=attr.required,
        optional=attr.optional,
        computed=attr.computed,
        sensitive=attr.sensitive,
        deprecated=attr.deprecated,
    )
    if attr.nested is not None:
        message.nested_type.CopyFrom(_object(attr.nested))
    else:
        message.type = json.dumps(attr.type, separators=(",", ":")).encode()
    if attr.write_only:
        message.MergeFromString(_WRITE_ONLY_TRUE)
    return message


def _object(nested: NestedBlock) -> Any:
    attributes = [_attribute(a) for a in nested.block.attributes.values()]
    return pb.Schema.Object(attributes=attributes, nesting=_OBJECT_NESTING[nested.nesting])


def block_message(block: Block) -> Any:
    """The ``Schema.Block`` message of a block."""
    return pb.Schema.Block(
        attributes=[_attribute(a) for a in block.attributes.values()],
        block_types=[
            pb.Schema.NestedBlock(
                type_name=name,
                block=block_message(nested.block),
                nesting=_BLOCK_NESTING[nested.nesting],
                min_items=nested.min_items,
                max_items=nested.max_items,
            )
            for name, nested in block.block_types.items()
        ],
        description=block.description,
        deprecated=block.deprecated,
    )


def schema_message(schema: Schema) -> Any:
    """The ``Schema`` message of a provider, resource type or data source."""
    return pb.Schema(version=schema.version, block=block_message(schema.block))


def capabilities() -> Any:
    """What this provider tells Terraform it supports."""
    return pb.ServerCapabilities(plan_destroy=True, get_provider_schema_optional=True)


def provider_schema_response(provider: ProviderSchema) -> Any:
    """The whole ``GetProviderSchema`` response, built once at start-up."""
    return pb.GetProviderSchema.Response(
        provider=schema_message(provider.provider),
        resource_schemas={name: schema_message(s) for name, s in provider.resources.items()},
        data_source_schemas={name: schema_message(s) for name, s in provider.data_sources.items()},
        provider_meta=pb.Schema(block=pb.Schema.Block()),
        server_capabilities=capabilities(),
    )


def _ext_hook(code: int, data: bytes) -> Any:
    return UNKNOWN  # cty uses msgpack extensions only for unknown values (code 0, or 12 with refinements)


def _default(value: Any) -> Any:
    if value is UNKNOWN:
        return _UNKNOWN_EXT
    raise TypeError(f"cannot encode {type(value).__name__} as a cty value")


def decode(dynamic: Any) -> Any:
    """The value inside a ``DynamicValue`` message (msgpack or JSON)."""
    if dynamic.msgpack:
        return msgpack.unpackb(dynamic.msgpack, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    if dynamic.json:
        return json.loads(dynamic.json)
    return None


def encode(value: Any) -> Any:
    """A msgpack ``DynamicValue`` message holding ``value``."""
    return pb.DynamicValue(msgpack=msgpack.packb(value, default=_default, use_bin_type=True))


def encode_json(value: Any) -> Any:
    """A JSON ``DynamicValue`` message holding ``value``.

    For values read from stored state, whose dynamic-typed attributes are in cty's JSON form
    (``{"value": ..., "type": ...}``), not in msgpack's.
    """
    return pb.DynamicValue(json=json.dumps(value, separators=(",", ":")).encode())


def attribute_path(path: Path) -> Any:
    """The ``AttributePath`` message of a path (see :mod:`reproducer.offline.values`)."""
    steps = []
    for item in path:
        if isinstance(item, tuple):
            steps.append(pb.AttributePath.Step(element_key_string=item[0]))
        elif isinstance(item, int):
            steps.append(pb.AttributePath.Step(element_key_int=item))
        else:
            steps.append(pb.AttributePath.Step(attribute_name=item))
    return pb.AttributePath(steps=steps)


def error(summary: str, detail: str = "", path: Path = ()) -> Any:
    """An error ``Diagnostic`` message, tied to an attribute when ``path`` is given."""
    diagnostic = pb.Diagnostic(severity=pb.Diagnostic.ERROR, summary=summary, detail=detail)
    if path:
        diagnostic.attribute.CopyFrom(attribute_path(path))
    return diagnostic
