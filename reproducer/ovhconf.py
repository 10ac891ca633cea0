"""ovh.conf, the official ``ovh`` client's credential file, checked before the client parses it.

Importing ``ovh`` parses ``/etc/ovh.conf``, ``~/.ovh.conf`` and ``./ovh.conf`` with ``RawConfigParser`` and lets its
exceptions escape. These files are outside input: :func:`check_default_configs` parses them the same way first and
turns every problem into an InputError that names lines and sections, never a value. The reader (``sources``) and
the sandbox both import the client, so this lives below them.
"""

from __future__ import annotations

import configparser
import os
from pathlib import Path

from reproducer.errors import InputError


def default_config_paths() -> tuple[str, ...]:
    """Where the ``ovh`` client looks for ovh.conf (``ovh.config.CONFIG_PATH``), from the home and directory of now.

    Computed at each call, not at import: a module imported once must not freeze another directory's paths.
    """
    return ("/etc/ovh.conf", os.path.expanduser("~/.ovh.conf"), os.path.realpath("./ovh.conf"))


_CONF_HINT = "ovh.conf is an INI file: [default] with endpoint=..., then one [endpoint] section with its keys"


def check_ovh_config(path: Path, *, required: bool = False) -> None:
    """Parse ``path`` as the ``ovh`` client will (RawConfigParser); an InputError says what is wrong with it.

    A file that cannot be opened is skipped, as the client skips it, unless ``required`` (``--config``).
    Messages name lines, sections and options, never a value (ovh.conf holds secrets).
    """
    if required:
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise InputError(
                f"cannot read OVH config file {path}: {exc.strerror}", hint="check its permissions"
            ) from None
    try:
        configparser.RawConfigParser().read(path)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"OVH config file {path} is not {exc.encoding.upper()} text (byte at offset {exc.start})",
            hint=f"save it as {exc.encoding.upper()}; {_CONF_HINT}",
        ) from None
    except configparser.Error as exc:
        raise InputError(f"OVH config file {path} {_conf_problem(exc)}", hint=_CONF_HINT) from None


def _conf_problem(exc: configparser.Error) -> str:
    if isinstance(exc, configparser.DuplicateSectionError):
        return f"is ambiguous: section [{exc.section}] appears twice (line {exc.lineno})"
    if isinstance(exc, configparser.DuplicateOptionError):
        return f"is ambiguous: option {exc.option} appears twice in section [{exc.section}] (line {exc.lineno})"
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return f"has no [section] header before line {exc.lineno}"
    if isinstance(exc, configparser.ParsingError):
        lines = ", ".join(str(number) for number, _line in exc.errors)
        return f"cannot be parsed: line(s) {lines} are not 'name = value' nor a [section]"
    return f"cannot be parsed ({type(exc).__name__})"


def check_default_configs() -> None:
    """Check the files the ``ovh`` client parses when it is imported; call it before ``import ovh``."""
    for path in default_config_paths():
        check_ovh_config(Path(path))


def sandbox_conf(endpoint: str, application_key: str, application_secret: str, consumer_key: str) -> str:
    """An ovh.conf for an API at the URL ``endpoint`` (the sandbox's), saying plainly who can read it as it is.

    reproducer and go-ovh (Terraform's ``ovh`` provider) accept an API URL as the endpoint; the official Python
    ``ovh`` client accepts only its own names (``ovh-eu``...) and raises ``InvalidRegion`` for this file alone, so
    the comment says how to register the URL first (tests/unit/test_small_things.py checks both with the client).
    """
    return (
        "# reproducer reads this file as it is, and so does go-ovh (Terraform's ovh provider). The official Python\n"
        "# ovh client does not on its own: it knows only its endpoint names (ovh-eu, ovh-ca...) and raises\n"
        "# InvalidRegion for a URL. In Python, register the URL before making a client:\n"
        f'#   ovh.client.ENDPOINTS["{endpoint}"] = "{endpoint}"\n'
        f"[default]\nendpoint={endpoint}\n\n[{endpoint}]\n"
        f"application_key={application_key}\napplication_secret={application_secret}\n"
        f"consumer_key={consumer_key}\n"
    )
