"""Helpers shared by the test modules: the CLI runner, waiting on a condition, the OVH emulator's service.

- :mod:`tests.support.cli`: run ``python -m reproducer.cli`` (``run``, ``start``) and kill what it started.
- :mod:`tests.support.wait`: ``eventually`` (poll a condition, never a fixed sleep) and ``Background``.
- :mod:`tests.support.ovh`: the emulator's services (``wait_ready``, ``service_fleet``, ``leftovers``, ``ovh_env``).
- :mod:`tests.support.runs`: what a run directory holds (``events``, ``confirmed_keys``).
- :mod:`tests.support.fleets`: clients and URLs for the sandbox's Valkey fleets (``primary_client``).
- :mod:`tests.support.proxy`: a TCP proxy a test can cut.
"""
