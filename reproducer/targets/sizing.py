"""Node sizes per target and the choice of the smallest one that holds a shard.

Each table row is (node type, usable memory in GB) with the source of the figure; figures marked
"unverified" in ``shared/reference/targets.md`` §3 are flagged in the note the compatibility report shows.
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


AWS = (
    NodeSize("cache.t4g.small", 1.37, "AWS docs via third-party table (targets.md §3)"),
    NodeSize("cache.t4g.medium", 3.09, "third-party table (targets.md §3)"),
    NodeSize("cache.m7g.large", 6.38, "third-party table (targets.md §3)"),
    NodeSize("cache.r7g.large", 13.07, "commonly published, unverified (targets.md §3)"),
    NodeSize("cache.r7g.xlarge", 26.32, "commonly published, unverified (targets.md §3)"),
    NodeSize("cache.r7g.2xlarge", 52.82, "commonly published, unverified (targets.md §3)"),
    NodeSize("cache.r7g.4xlarge", 105.81, "commonly published, unverified (targets.md §3)"),
    NodeSize("cache.r7g.8xlarge", 209.55, "commonly published, unverified (targets.md §3)"),
)
GCP = (
    NodeSize("SHARED_CORE_NANO", 1.12, "Google instance-node specification, writable GB (targets.md §3)"),
    NodeSize("CUSTOM_MICRO", 2.0, "Google instance-node specification, writable GB"),
    NodeSize("CUSTOM_MINI", 3.0, "Google instance-node specification, writable GB"),
    NodeSize("STANDARD_SMALL", 5.2, "Google instance-node specification, writable GB"),
    NodeSize("HIGHMEM_MEDIUM", 10.4, "Google instance-node specification, writable GB"),
    NodeSize("STANDARD_LARGE", 20.8, "Google instance-node specification, writable GB"),
    NodeSize("HIGHMEM_XLARGE", 46.4, "Google instance-node specification, writable GB"),
    NodeSize("HIGHMEM_2XLARGE", 88.0, "Google instance-node specification, writable GB"),
)
AIVEN = tuple(
    NodeSize(f"{{tier}}-{gb}", float(gb), "Aiven plan naming tier-x, x ≈ GB per node (targets.md §3)")
    for gb in (4, 8, 16, 32, 64)
)
OVH = (
    NodeSize("db1-4", 4, "OVH flavor db1-X = X GB (ovh-api-valkey.md §6.2)"),
    NodeSize("db1-7", 7, "OVH flavor table (ovh-api-valkey.md §6.2)"),
    NodeSize("db1-15", 15, "OVH flavor table"),
    NodeSize("db1-30", 30, "OVH flavor table"),
    NodeSize("db1-60", 60, "OVH flavor table"),
    NodeSize("db1-120", 120, "OVH flavor table"),
)
#: OVH Public Cloud (OpenStack) B3 instances; a quarter of the RAM is left to the OS and forks (BGSAVE).
OPENSTACK = tuple(
    NodeSize(f"b3-{gb}", gb * 0.75, f"OVH Public Cloud b3-{gb}: {gb} GB RAM, 75 % given to Valkey")
    for gb in (8, 16, 32, 64, 128, 256)
)


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


#: OVH region → the nearest region of each provider (a default the user can change: approximated).
REGIONS: dict[str, dict[str, str]] = {
    "aws": {
        "GRA": "eu-west-3",
        "SBG": "eu-central-1",
        "RBX": "eu-west-3",
        "DE": "eu-central-1",
        "UK": "eu-west-2",
        "WAW": "eu-central-1",
        "BHS": "ca-central-1",
        "SGP": "ap-southeast-1",
        "EU-WEST-PAR": "eu-west-3",
        "EU-SOUTH-MIL": "eu-south-1",
        "AP-SOUTH-MUM": "ap-south-1",
    },
    "gcp": {
        "GRA": "europe-west9",
        "SBG": "europe-west3",
        "RBX": "europe-west9",
        "DE": "europe-west3",
        "UK": "europe-west2",
        "WAW": "europe-central2",
        "BHS": "northamerica-northeast1",
        "SGP": "asia-southeast1",
        "EU-WEST-PAR": "europe-west9",
        "EU-SOUTH-MIL": "europe-west8",
        "AP-SOUTH-MUM": "asia-south1",
    },
    "aiven": {
        "GRA": "google-europe-west9",
        "SBG": "google-europe-west3",
        "RBX": "google-europe-west9",
        "DE": "google-europe-west3",
        "UK": "google-europe-west2",
        "WAW": "google-europe-central2",
        "BHS": "google-northamerica-northeast1",
        "SGP": "google-asia-southeast1",
        "EU-WEST-PAR": "google-europe-west9",
        "EU-SOUTH-MIL": "google-europe-west8",
        "AP-SOUTH-MUM": "google-asia-south1",
    },
}


def nearest_region(provider: str, ovh_region: str) -> str:
    """The provider region nearest to an OVH region (Paris when unknown)."""
    table = REGIONS[provider]
    return table.get(ovh_region.upper(), table["GRA"])
