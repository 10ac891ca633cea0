"""The external-binary backend: ``terraform``/``tofu`` command lines built by ``python-terraform``.

:mod:`reproducer.run.terraform` says what each command needs (its pure ``*_args`` builders) and runs every process
itself; for a binary on ``PATH``, the command line is built by python-terraform's ``Terraform`` (the wrapper this
project's design names), through its ``init``/``plan``/``apply``/``destroy`` methods and its ``cmd`` for the others.

python-terraform 0.10.1 (its last release) has faults, each worked around here
(docs/reference/distribution.md#python-terraform-0101):

- ``destroy`` passes ``-force``, which Terraform 0.15 and later reject: ``force`` is unset, ``-auto-approve`` given.
- variables (its ``var``, and the empty ``{}`` it defaults to) go to a ``.tfvars.json`` in the system temporary
  directory, logged at debug level, left behind when a command fails to start: ``var`` is always ``None`` and a
  ``-var`` option is refused here; variables travel as ``TF_VAR_<name>`` in the child's environment.
- ``cmd`` starts Terraform with this process's whole environment or an empty one, stdin inherited, no timeout,
  no process group, output read whole at the end, then reads ``terraform.tfstate`` (which holds passwords):
  :class:`CommandLine` overrides ``cmd`` to return the command line, and ``read_state_file`` to read nothing;
  the caller's run path starts the process.
- defaults that change the command: ``init`` adds ``-reconfigure`` and ``-backend=true``, ``plan``
  ``-detailed-exitcode`` (exit 2 on changes), ``apply`` ``-auto-approve=false``: each is set explicitly, so the
  options are the ones the embedded engine gets (``tests/unit/test_terraform_external.py`` compares them).
- it works in ``cwd=working_dir`` rather than ``-chdir``: the ``-chdir`` option is dropped and the caller runs the
  process in that directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from python_terraform import IsFlagged, IsNotFlagged
from python_terraform import Terraform as _PythonTerraform

from reproducer.errors import ToolError

_CHDIR = "-chdir="


class CommandLine(_PythonTerraform):  # type: ignore[misc]  # python-terraform has no type hints
    """python-terraform's ``Terraform`` that builds command lines and never runs a process or reads a file.

    Args:
        binary: the Terraform or OpenTofu executable (a path, as found on ``PATH``).
        workdir: the root module directory the command will run in.
    """

    def __init__(self, binary: str, workdir: Path) -> None:
        super().__init__(working_dir=str(workdir), terraform_bin_path=binary, is_env_vars_included=False)

    def read_state_file(self, file_path: str | None = None) -> None:
        """Read nothing: python-terraform would load the state (passwords included) after every command."""
        self.tfstate = None

    def cmd(self, cmd: str, *args: str, **kwargs: Any) -> list[str]:
        """The command line python-terraform builds for ``cmd`` (never with variables: see the module)."""
        if kwargs.get("var") is not None:
            raise ToolError("a Terraform variable reached the command line", hint="this is a bug; please report it")
        for option in ("capture_output", "raise_on_error", "synchronous"):
            kwargs.pop(option, None)
        return [str(word) for word in self.generate_cmd_string(cmd, *args, **kwargs)]


def parse_options(words: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """The python-terraform keyword options and the positional arguments of one subcommand's words.

    ``-no-color`` becomes ``no_color=IsFlagged``, ``-out=tfplan`` ``out="tfplan"``; a repeated option, a list.

    Raises:
        ToolError: a ``-var`` option: variables never go on a command line.
    """
    options: dict[str, Any] = {}
    positionals: list[str] = []
    for word in words:
        if not word.startswith("-"):
            positionals.append(word)
            continue
        name, has_value, value = word[1:].partition("=")
        if name == "var":
            raise ToolError("a Terraform variable reached the command line", hint="this is a bug; please report it")
        key = name.replace("-", "_")
        given: Any = value if has_value else IsFlagged
        if key in options:
            previous = options[key]
            options[key] = [*previous, given] if isinstance(previous, list) else [previous, given]
        else:
            options[key] = given
    return options, positionals


def external_argv(binary: str, workdir: Path, argv: Sequence[str]) -> list[str]:
    """The command line python-terraform builds for one of :mod:`reproducer.run.terraform`'s invocations.

    ``argv`` is the invocation's (``-chdir=DIR`` first, then the subcommand and its options); the result starts
    with ``binary`` and is meant to run in ``workdir``.

    Raises:
        ToolError: the invocation has no subcommand, or carries a variable.
    """
    words = [word for word in argv if not word.startswith(_CHDIR)]
    if not words or words[0].startswith("-"):
        raise ToolError(f"no Terraform subcommand in {list(argv)!r}", hint="this is a bug; please report it")
    command, (options, positionals) = words[0], parse_options(words[1:])
    terraform = CommandLine(binary, workdir)
    unset = {"var": None, "var_file": options.pop("var_file", None)}
    if command == "init":
        backend_config = options.pop("backend_config", None)
        backend = options.pop("backend", None)
        return list(
            terraform.init(
                backend_config=[backend_config] if isinstance(backend_config, str) else backend_config,
                reconfigure=IsNotFlagged,
                backend=backend,
                **unset,
                **options,
            )
        )
    if command == "plan":
        return list(terraform.plan(detailed_exitcode=IsNotFlagged, **unset, **options))
    if command == "apply":
        options.pop("auto_approve", None)  # python-terraform writes it itself: -auto-approve=true
        plan_file = positionals[0] if positionals else None
        return list(terraform.apply(plan_file, skip_plan=True, **unset, **options))
    if command == "destroy":
        return list(terraform.destroy(force=IsNotFlagged, **unset, **options))
    return terraform.cmd(command, *positionals, **unset, **options)
