"""The ``reproducer`` command line: the only module that prints, prompts or exits.

Data goes to stdout (YAML, JSON, ovh.conf); progress and errors go to stderr.
Exit codes: 0 success, 1 runtime error, 2 bad input or usage, 4 authentication refused, 130 interrupted.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from reproducer import __version__, pipeline
from reproducer.errors import ReproducerError

_stderr = Console(stderr=True, highlight=False)
F = TypeVar("F", bound=Callable[..., Any])


def _progress(message: str) -> None:
    _stderr.print(f"[dim]·[/dim] {escape(message)}", markup=True, soft_wrap=True)


def _emit(text: str) -> None:
    click.echo(text, nl=not text.endswith("\n"))


def _sandbox_dir_option(func: F) -> F:
    return click.option(
        "--dir",
        "root",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="Sandbox state directory (default: $REPRODUCER_SANDBOX_DIR or ~/.local/state/reproducer/sandbox).",
    )(func)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reproducer")
def cli() -> None:
    """Leave (or join) a managed Valkey service: inspect it, render it for another provider, move the data.

    Exit codes: 0 success, 1 runtime error, 2 bad input, 4 authentication refused, 130 interrupted.
    """


@cli.command()
@click.option("--project", required=True, help="OVH Public Cloud project id (32 hex characters).")
@click.option("--service", default=None, help="Valkey service id; every Valkey service of the project if omitted.")
@click.option("--endpoint", default=None, help="OVH endpoint name (ovh-eu, ovh-ca, ovh-us) or API URL.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="An ovh.conf to read credentials from (besides the usual places).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the spec here (a directory when several services are read).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout instead of YAML.")
def inspect(
    project: str,
    service: str | None,
    endpoint: str | None,
    config_file: Path | None,
    output: Path | None,
    as_json: bool,
) -> None:
    """Read a live OVHcloud Valkey service through the OVH API into a secret-free service spec.

    Credentials are read as the official ovh client reads them: OVH_APPLICATION_KEY,
    OVH_APPLICATION_SECRET, OVH_CONSUMER_KEY, OVH_ENDPOINT, then ovh.conf files.
    """
    options = pipeline.InspectOptions(project=project, service=service, endpoint=endpoint, config_file=config_file)
    specs = pipeline.inspect(options, _progress)
    if output is not None:
        for path in pipeline.write_specs(specs, output):
            _progress(f"wrote {path}")
    elif as_json:
        data = specs[0].to_dict() if service else [s.to_dict() for s in specs]
        _emit(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        _emit(pipeline.specs_to_yaml(specs))


@cli.group()
def sandbox() -> None:
    """The embedded OVH API emulator, backed by real Valkey servers."""


@sandbox.command("up")
@_sandbox_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (endpoint, keys, project, services).")
def sandbox_up(root: Path | None, as_json: bool) -> None:
    """Start the sandbox (idempotent) and print how to reach it."""
    info = pipeline.sandbox_up(root, _progress)
    _print_sandbox(info, as_json)


@sandbox.command("status")
@_sandbox_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def sandbox_status(root: Path | None, as_json: bool) -> None:
    """Show whether the sandbox runs and how to reach it (exit 1 when it does not run)."""
    info = pipeline.sandbox_status(root)
    if info is None:
        _stderr.print("the sandbox is not running; start it with: reproducer sandbox up")
        sys.exit(1)
    _print_sandbox(info, as_json)


@sandbox.command("down")
@_sandbox_dir_option
def sandbox_down(root: Path | None) -> None:
    """Stop the sandbox and every Valkey process it started."""
    stopped = pipeline.sandbox_down(root)
    _progress("sandbox stopped" if stopped else "the sandbox was not running")


def _print_sandbox(info: dict[str, Any], as_json: bool) -> None:
    public = {k: v for k, v in info.items() if k != "pid"}
    if as_json:
        _emit(json.dumps(public, indent=2, sort_keys=True))
        return
    _emit(ovh_conf(info))
    _stderr.print(f"sandbox OVH API: {info['endpoint']}   project: {info['project']}")
    for service in info["services"]:
        _stderr.print(f"  service {service['id']} ({service['plan']}): data at {service['data_endpoint']}")
    _stderr.print(f"save the lines above as ./ovh.conf, then: reproducer inspect --project {info['project']}")


def ovh_conf(info: dict[str, Any]) -> str:
    """An ovh.conf for the sandbox, in the format the ovh client (and go-ovh) read."""
    return (
        f"[default]\nendpoint={info['endpoint']}\n\n[{info['endpoint']}]\n"
        f"application_key={info['application_key']}\napplication_secret={info['application_secret']}\n"
        f"consumer_key={info['consumer_key']}\n"
    )


@cli.command()
@_sandbox_dir_option
def demo(root: Path | None) -> None:
    """Start the sandbox with a loaded Business service, inspect it through the real ovh client, show the spec."""
    info, specs = pipeline.demo(root, _progress)
    _emit(pipeline.specs_to_yaml(specs))
    _stderr.print(f"the sandbox keeps running at {info['endpoint']}; stop it with: reproducer sandbox down")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI and turn reproducer errors into a message and an exit code."""
    try:
        cli.main(args=argv, prog_name="reproducer", standalone_mode=False)
    except ReproducerError as exc:
        _stderr.print(f"[bold red]error:[/bold red] {escape(exc.message)}", markup=True, soft_wrap=True)
        if exc.hint:
            _stderr.print(f"[bold]hint:[/bold] {escape(exc.hint)}", markup=True, soft_wrap=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _stderr.print("interrupted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _stderr.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
