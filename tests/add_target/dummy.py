"""Dummy: one generated password per Valkey user, kept in Terraform (``hashicorp/random``): a test-only target.

It is written as a real render-only target would be (see "Adding a target" in docs/architecture.md); only its
templates live beside it rather than in ``templates/``, and its registry line is :data:`ENTRY`, which the tests
insert into ``reproducer.targets.TARGETS``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from reproducer.model import ConfigItem, ServiceSpec, User
from reproducer.targets import TargetEntry, compat
from reproducer.targets.base import CompatRow, RenderOptions, Support, TerraformProvider
from reproducer.targets.common import BaseTarget, RegionMap
from reproducer.targets.sizing import NodeSize

EXACT, APPROX, MANUAL, NONE = Support.EXACT, Support.APPROXIMATED, Support.MANUAL, Support.UNSUPPORTED

#: The registry line (in a real target: one line of ``TARGETS`` in reproducer/targets/__init__.py).
ENTRY = TargetEntry("dummy", "tests.add_target.dummy:DummyTarget")

PROVIDER = TerraformProvider("registry.terraform.io/hashicorp/random", "3.9.1", resources=("random_password",))
NODES = tuple(NodeSize(f"vault-{gb}", gb, "made up for the test") for gb in (4, 16, 64))
REGIONS = RegionMap(form=re.compile(r"vault-[a-z]+"), nearest={"GRA": "vault-north", "SBG": "vault-east"})


class DummyTarget(BaseTarget):
    """Renders one ``random_password`` per user, sized and placed like a managed service would be."""

    name = "dummy"
    title = "Dummy password vault"
    providers = (PROVIDER,)
    nodes = NODES
    regions = REGIONS
    user_resources = True
    template_dirs = (str(Path(__file__).parent / "templates"),)

    def context(self, spec: ServiceSpec, options: RenderOptions) -> dict[str, Any]:
        """Template context: the vault size and region."""
        context = self.base(spec, options)
        return context | {"size": self.node(spec, context["shards"]), "region": self.region(spec, options)}

    def rows(self, spec: ServiceSpec, context: dict[str, Any]) -> list[CompatRow]:
        """Everything but the users is out of scope of a password vault."""
        size = context["size"]
        decide: dict[str, compat.Decision] = {
            attribute: (NONE, "—", "a password vault holds no Valkey") for attribute in compat.ATTRIBUTES
        }
        decide["plan.flavor"] = (EXACT if size.fits else MANUAL, "keepers.size", size.note)
        decide["source.region"] = (APPROX, "keepers.region", context["region"])
        decide["feature.infrastructure_as_code"] = (EXACT, "this configuration", compat.IAC_NOTE)
        return compat.build_rows(spec, decide, self._user_row, self._config_row)

    @staticmethod
    def _user_row(user: User) -> compat.Decision:
        return EXACT, "random_password", f"a password for {user.name}; its rules kept: {user.acl_rules}"

    @staticmethod
    def _config_row(item: ConfigItem) -> compat.Decision:
        return NONE, "—", f"{item.source_name} has no meaning in a password vault"
