"""A render-only target that exists only in the tests: the "Adding a target" recipe of docs/architecture.md, followed.

``dummy.py`` is the target's module, ``templates/dummy/`` its templates, ``dummy.ENTRY`` its registry line and
``plugin.py`` registers it for a pytest run (see tests/unit/test_add_target.py).
"""
