"""Helpers shared by the test modules: the CLI runner, waiting on a condition, the OVH emulator's service.

- :mod:`tests.support.cli`: run ``python -m reproducer.cli`` (``argv``, ``run``, ``start``), ``kill_tree``.
- :mod:`tests.support.wait`: ``eventually`` (poll a condition, never a fixed sleep), ``Background`` (a call in a
  thread) and ``midway`` (wait until work is provably half done before injecting a fault).
- :mod:`tests.support.ovh`: the emulator's services (``wait_ready``, ``service_fleet``, ``leftovers``,
  ``remove_grants``, ``ovh_env``, ``migrate_local_argv``).
- :mod:`tests.support.runs`: what a run directory holds (``events``, ``checkpoint``, ``confirmed_keys``).
- :mod:`tests.support.fleets`: the sandbox's Valkey fleets (``plain_url``, ``primary_client``, ``key_count``).
- :mod:`tests.support.proxy`: a TCP proxy a test can cut.
"""
