"""Node sizes and the choice of the smallest one that holds a shard.

Each target keeps its own table (``NODES`` in its module): rows of (node type, usable memory in GB) with the
source of the figure, which the compatibility report shows.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Memory a resharded shard needs above its share of the data (replication buffers, fragmentation).
HEADROOM = 1.2


@dataclass(frozen=True)
class NodeSize:
    """One node type, its usable memory and where that figure comes from."""

    name: str
    memory_gb: float
    source: str


@dataclass(frozen=True)
class Choice:
    """The chosen node size, what a shard needs, and whether the table had a node that large."""

    size: NodeSize
    needed_gb: float
    fits: bool

    @property
    def note(self) -> str:
        """One sentence for the compatibility report."""
        verdict = "" if self.fits else " — no node that large in the table: the largest is used; shard more"
        return (
            f"needs {self.needed_gb:.1f} GB per shard; {self.size.name} has {self.size.memory_gb:g} GB "
            f"({self.size.source}){verdict}"
        )


def needed_per_shard(memory_gb: float, shards: int) -> float:
    """Memory one shard needs: the whole source node when not resharded, else its share with headroom."""
    return memory_gb if shards <= 1 else memory_gb / shards * HEADROOM


def choose(table: tuple[NodeSize, ...], memory_gb: float, shards: int) -> Choice:
    """The smallest node of ``table`` with at least the memory a shard needs."""
    needed = needed_per_shard(memory_gb, shards)
    for size in table:
        if size.memory_gb >= needed:
            return Choice(size, needed, True)
    return Choice(table[-1], needed, False)
