"""Clients and URLs for the sandbox's Valkey fleets."""

from __future__ import annotations

import valkey

from reproducer.sandbox.fleet import Fleet


def plain_url(port: int) -> str:
    """The URL of a server on loopback without TLS or credentials."""
    return f"valkey://127.0.0.1:{port}"


def primary_client(fleet: Fleet) -> valkey.Valkey:
    """An admin client on the fleet's current primary; cluster-aware on a cluster (any key reaches its shard)."""
    if fleet.spec.topology == "cluster":
        return valkey.ValkeyCluster(
            host="127.0.0.1",
            port=fleet.servers[0].port,
            username="reproducer-sandbox-admin",
            password=fleet._state.admin_password,
            decode_responses=True,
            **fleet.tls_client_kwargs(),
        )
    return fleet.client(fleet.current_primary())


def key_count(fleet: Fleet) -> int:
    """Keys the fleet holds: summed over a cluster's primaries (a cluster client's DBSIZE asks one node only)."""
    if fleet.spec.topology == "cluster":
        return sum(int(fleet.client(n).dbsize()) for n in fleet.servers if n.role == "primary")
    return int(fleet.client(fleet.current_primary()).dbsize())
