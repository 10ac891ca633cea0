"""``--adopt ADDRESS=ID``: Terraform ``import`` blocks for resources that already exist, and what is new.

An address must be one the render produces (read back from the rendered ``.tf`` files, so it can never name
anything else); an id is outside input: its characters are checked, then it is written through
:func:`~reproducer.targets.render.hcl_string`, which escapes quotes, backslashes, line breaks and the ``${``
and ``%{`` template sequences by construction. ``import`` blocks need Terraform 1.5 or later
(docs/reference/adoption.md#import-blocks).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from reproducer.errors import InputError
from reproducer.targets.base import Network
from reproducer.targets.render import Safe, align, hcl_string, one_line

#: ``TYPE.NAME`` or ``TYPE.NAME[INDEX]``: the only address forms a render produces (no modules, no for_each).
_ADDRESS = re.compile(r"[a-z][a-z0-9_]{0,63}\.[a-z_][a-z0-9_]{0,63}(?:\[(?:0|[1-9][0-9]{0,3})\])?")
#: Provider ids (``vpc-0a1b``, ``projects/p/global/networks/n``, ``arn:aws:…``, ``service/engine/uuid``,
#: ``vpc-0a1b@eu-west-1``): no quote, backslash, ``$``, ``%``, brace, space or control character.
_ID = re.compile(r"[A-Za-z0-9._:/@+=,~-]{1,512}")
_BLOCK = re.compile(r'^(resource|data) "([a-z0-9_]+)" "([a-z0-9_]+)" \{$(.*?)^\}$', re.MULTILINE | re.DOTALL)
_COUNT = re.compile(r"^  count\s*=\s*(.+)$", re.MULTILINE)
#: Instances accepted for a resource whose count is an expression (zones, list lengths): ``[0]`` to ``[99]``.
EXPRESSION_COUNT = 100
#: Where the import blocks go (a file the render owns, written only when something is adopted).
IMPORTS_FILE = "terraform/imports.tf"


def parse_network(value: str) -> Network:
    """``--network``: ``new`` or ``existing``, anything else refused."""
    if value == "new":
        return "new"
    if value == "existing":
        return "existing"
    raise InputError(
        f"--network {_shown(value)} is neither new nor existing",
        hint="pass --network new (the render creates the network) or --network existing (yours, by id)",
    )


def parse_adoptions(values: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """``ADDRESS=ID`` values as sorted ``(address, id)`` pairs; refuses bad forms, characters and duplicates."""
    pairs: dict[str, str] = {}
    for value in values:
        address, sep, ident = value.partition("=")
        if not sep or not address.strip():
            raise InputError(
                f"--adopt {_shown(value)} is not of the form ADDRESS=ID",
                hint="write --adopt aws_vpc.NAME=vpc-0123456789abcdef0 (a resource address of the render, "
                "then the provider's id)",
            )
        check_address_form(address)
        check_id(address, ident)
        if pairs.setdefault(address, ident) != ident:
            raise InputError(
                f"--adopt gives {address} two ids",
                hint="adopt each resource once: one --adopt ADDRESS=ID per address",
            )
    return tuple(sorted(pairs.items()))


def check_address_form(address: str) -> None:
    """Refuse what is not ``TYPE.NAME`` or ``TYPE.NAME[N]`` (modules, data sources, for_each keys, junk)."""
    if not _ADDRESS.fullmatch(address):
        raise InputError(
            f"--adopt address {_shown(address)} is not a resource address of the form TYPE.NAME or TYPE.NAME[N]",
            hint="take the address from the rendered terraform/*.tf files or from the error listing them "
            "(data sources and modules cannot be adopted)",
        )


def check_id(address: str, ident: str) -> None:
    """Refuse an id with characters no provider id has (quotes, ``$``, ``%``, braces, spaces, line breaks)."""
    if not _ID.fullmatch(ident):
        raise InputError(
            f"--adopt {address}: the id {_shown(ident)} is empty, longer than 512 characters or has a character "
            "other than letters, digits and . _ : / @ + = , ~ -",
            hint="give the provider's id of the existing resource (e.g. vpc-0123456789abcdef0, "
            "projects/PROJECT/global/networks/NAME), as its import documentation shows",
        )


def _shown(value: str) -> str:
    text = one_line(value)
    return repr(text if len(text) <= 80 else text[:77] + "...")


@dataclass(frozen=True)
class Block:
    """A ``resource`` or ``data`` block of the rendered files: its kind, type, name and ``count`` expression."""

    kind: str
    type: str
    name: str
    count: str | None

    @property
    def address(self) -> str:
        """``TYPE.NAME`` (``data.TYPE.NAME`` for a data source)."""
        prefix = "data." if self.kind == "data" else ""
        return f"{prefix}{self.type}.{self.name}"

    def instances(self) -> list[str]:
        """The instance addresses it produces: one, one per literal count, or ``[0]``.. for a count expression."""
        if self.count is None:
            return [self.address]
        number = int(self.count) if self.count.isdigit() else EXPRESSION_COUNT
        return [f"{self.address}[{index}]" for index in range(number)]

    def describe(self) -> str:
        """The address as shown in lists: with ``[0..N-1]`` or ``[N]`` and its count expression."""
        if self.count is None:
            return self.address
        if self.count.isdigit():
            last = int(self.count) - 1
            return f"{self.address}[0]" if last == 0 else f"{self.address}[0..{last}]"
        return f"{self.address}[N] (count = {self.count})"


def blocks(files: Mapping[str, str]) -> list[Block]:
    """Every ``resource`` and ``data`` block of the rendered ``terraform/*.tf`` files, sorted by address."""
    found = [
        Block(kind, kind_type, name, count.group(1).strip() if (count := _COUNT.search(body)) else None)
        for path, text in files.items()
        if path.startswith("terraform/") and path.endswith(".tf")
        for kind, kind_type, name, body in _BLOCK.findall(text)
    ]
    return sorted(found, key=lambda block: block.address)


def check_adoptions(adopt: Sequence[tuple[str, str]], rendered: Sequence[Block], title: str) -> None:
    """Refuse an address the render does not produce (listing the ones it does) and an id of bad characters."""
    for address, ident in adopt:
        check_address_form(address)
        check_id(address, ident)
    resources = [block for block in rendered if block.kind == "resource"]
    valid = {instance for block in resources for instance in block.instances()}
    unknown = [address for address, _ in adopt if address not in valid]
    if not unknown:
        return
    listing = "; ".join(block.describe() for block in resources) or "none: it renders no Terraform resource"
    raise InputError(
        f"--adopt {', '.join(unknown)}: not a resource this render of {title} produces (its resources: {listing})",
        hint="adopt one of the listed addresses (a network read with --network existing is not a resource)",
    )


def imports_tf(adopt: Sequence[tuple[str, str]], header: Safe) -> str:
    """``imports.tf``: one ``import`` block per adopted resource, sorted by address, ids escaped HCL strings."""
    parts = [str(header), ""]
    for address, ident in sorted(adopt):
        check_address_form(address)
        parts += ["import {", f"  to = {address}", f"  id = {hcl_string(ident)}", "}", ""]
    return align("\n".join(parts).rstrip("\n"))


def resource_report(rendered: Sequence[Block], adopt: Sequence[tuple[str, str]], network: str) -> dict[str, object]:
    """What the render adopts (address → id), creates and reads, and where the network comes from."""
    adopted = dict(sorted(adopt))
    new: list[str] = []
    for block in rendered:
        if block.kind != "resource":
            continue
        if block.count is not None and not block.count.isdigit():
            some = any(address.startswith(block.address + "[") for address in adopted)
            new.append(block.describe() + (", but the adopted instances" if some else ""))
            continue
        new += [instance for instance in block.instances() if instance not in adopted]
    return {
        "network": network,
        "adopted": adopted,
        "new": new,
        "read": [block.address for block in rendered if block.kind == "data"],
    }
