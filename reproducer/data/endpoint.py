"""One URL form for every Valkey/Redis endpoint, and connections made from it.

:data:`SCHEMES` is the registry of URL schemes (one line each: the kind of deployment reached, TLS or not, the
form and what it is for); :func:`describe_schemes` is its text for help screens. ``redis`` spellings are
accepted everywhere a ``valkey`` one is. Query parameters are listed in :data:`OPTIONS`; the password itself
never appears in a URL, argv or a log. Cluster mode is also detected on a plain URL when the server reports
``cluster_enabled:1``.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from reproducer.errors import DataAuthError, DataError, InputError, SourceError

Kind = Literal["standalone", "sentinel", "cluster"]


@dataclass(frozen=True)
class Scheme:
    """One endpoint URL scheme: what it reaches, whether it speaks TLS, how its URL is written."""

    kind: Kind
    tls: bool
    form: str
    description: str
    alias_of: str | None = None


def _with_aliases(*schemes: tuple[str, Scheme]) -> dict[str, Scheme]:
    """The schemes, each followed by its ``redis`` spelling (same kind and TLS, ``alias_of`` set)."""
    table: dict[str, Scheme] = {}
    for name, scheme in schemes:
        alias = name.replace("valkey", "redis", 1)
        table[name] = scheme
        table[alias] = Scheme(scheme.kind, scheme.tls, scheme.form.replace(name, alias, 1), scheme.description, name)
    return table


#: Every endpoint URL scheme the data commands accept, keyed by scheme name.
SCHEMES: dict[str, Scheme] = _with_aliases(
    ("valkey", Scheme("standalone", False, "valkey://[user@]host:port[/db]", "one server, plain TCP")),
    ("valkeys", Scheme("standalone", True, "valkeys://[user@]host:port[/db]", "one server, TLS")),
    (
        "valkey+sentinel",
        Scheme("sentinel", False, "valkey+sentinel://h1:p1,h2:p2/<primary>[/db]", "ask Sentinels for the primary"),
    ),
    (
        "valkeys+sentinel",
        Scheme("sentinel", True, "valkeys+sentinel://h1:p1,h2:p2/<primary>[/db]", "ask Sentinels for the primary, TLS"),
    ),
    ("valkey+cluster", Scheme("cluster", False, "valkey+cluster://seed1:p1,seed2:p2", "cluster mode, plain TCP")),
    ("valkeys+cluster", Scheme("cluster", True, "valkeys+cluster://seed1:p1,seed2:p2", "cluster mode, TLS")),
)
#: Every query parameter an endpoint URL may carry, with what it means.
OPTIONS: dict[str, str] = {
    "password_env": "?password_env=VAR: the password is in this environment variable",
    "password_file": "?password_file=PATH: the password is this file's text",
    "ca": "?ca=PATH: verify the server against this CA bundle (PEM)",
    "cert": "?cert=PATH: client certificate (PEM)",
    "key": "?key=PATH: the client certificate's key (PEM)",
    "insecure": "?insecure=1: no certificate verification (explicit only)",
    "sentinel_tls": "?sentinel_tls=0|1: whether the Sentinels speak TLS too (default: as the scheme)",
}


def describe_schemes(separator: str = "\n") -> str:
    """The accepted URL forms, one per scheme with what it is for, then the ``redis`` spellings also accepted."""
    lines = [f"{s.form}: {s.description}" for s in SCHEMES.values() if s.alias_of is None]
    aliases = ", ".join(f"{name}://" for name, s in SCHEMES.items() if s.alias_of is not None)
    return separator.join([*lines, f"also accepted: {aliases}"])


def describe_options(separator: str = "\n") -> str:
    """The endpoint query parameters and their meaning, joined by ``separator``."""
    return separator.join(OPTIONS.values())


_MAX_PORT = 65535
_UNSAFE_AUTHORITY = re.compile(r"[^A-Za-z0-9._:\[\],@*-].*")  # shown up to the first character no address has
_UNSAFE_PATH = re.compile(r"[^A-Za-z0-9._/-].*")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,32}")


@dataclass(frozen=True)
class Tls:
    """TLS settings: verification is on unless ``insecure``."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False

    def context(self) -> ssl.SSLContext:
        """An SSL context for these settings (system CAs unless a CA file is given)."""
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


class Route(Protocol):
    """How to reach the nodes of an endpoint that this machine cannot reach directly (an SSH bastion)."""

    def dial(self, host: str, port: int, timeout: float) -> socket.socket:
        """A socket connected to the node a server announced as ``host:port``."""

    def describe(self) -> str:
        """How messages name the route (``via ssh://bastion``)."""


@dataclass(frozen=True)
class Endpoint:
    """A parsed endpoint URL (see the module docstring). ``password`` is resolved, never printed."""

    kind: Kind
    hosts: tuple[tuple[str, int], ...]
    db: int | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: Tls | None = None
    primary_name: str | None = None
    sentinel_tls: bool = False
    url: str = ""
    #: Set by the pipeline for ``--via``: every connection to every node goes through it.
    route: Route | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        return f"{self.url} {self.route.describe()}" if self.route is not None else self.url


def normalised(endpoint: Endpoint) -> dict[str, Any]:
    """The endpoint as comparable data: scheme, sorted hosts, db, user, primary name (never a password)."""
    scheme = ("valkeys" if endpoint.tls is not None else "valkey") + (
        "" if endpoint.kind == "standalone" else f"+{endpoint.kind}"
    )
    return {
        "scheme": scheme,
        "hosts": sorted(f"{host.lower()}:{port}" for host, port in endpoint.hosts),
        "db": endpoint.db,
        "user": endpoint.username,
        "primary_name": endpoint.primary_name,
    }


def parse_endpoint(url: str, *, environ: dict[str, str] | None = None) -> Endpoint:
    """Parse an endpoint URL and resolve its password from the environment or a file.

    Every refusal is an InputError whose message shows the URL through :func:`redact_url`.
    """
    shown = redact_url(url)
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in url):
        raise InputError(f"the endpoint URL {shown!r} holds a control character", hint="write the URL on one line")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InputError(f"malformed endpoint URL {shown!r}: {exc}", hint="write scheme://host:port") from None
    if parts.scheme not in SCHEMES:
        known = ", ".join(f"{name}://" for name, scheme in SCHEMES.items() if scheme.alias_of is None)
        raise InputError(f"unsupported endpoint scheme in {shown!r}", hint=f"use one of {known}")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username = unquote(userinfo) if userinfo else None
    if username is not None and ":" in username:
        raise InputError(
            f"a password is written in the endpoint URL {shown!r}",
            hint="passwords in URLs end up in shell history and process lists: "
            "use ?password_env=VAR or ?password_file=PATH",
        )
    scheme = SCHEMES[parts.scheme]
    kind, tls = scheme.kind, scheme.tls
    query = _query(parts.query, shown)
    hosts = _hosts(hostlist, shown)
    db, primary_name = _path(parts.path, kind, shown)
    return Endpoint(
        kind=kind,
        hosts=hosts,
        db=db,
        username=username,
        password=_password(query, environ if environ is not None else dict(os.environ), shown),
        tls=_tls(query) if tls else None,
        primary_name=primary_name,
        sentinel_tls=query.get("sentinel_tls", "1" if tls else "0") == "1",
        url=shown,
    )


def redact_url(url: str) -> str:
    """``url`` fit for a message: user info (``user:pass@``, ``user%3Apass@``) and unknown option values masked.

    Only the options known to hold no secret (``password_env`` names a variable, ``password_file`` a path)
    keep their values, up to the first character no path or variable name has (a malformed URL can put its
    credentials there); the fragment is dropped. Works on malformed URLs too.
    """
    url = url.split("#", 1)[0]
    base, sep, query = url.partition("?")
    scheme, slashes, rest = base.rpartition("://")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    authority = _UNSAFE_AUTHORITY.sub("***", authority)
    base = f"{scheme}{slashes}{authority}{slash}{_UNSAFE_PATH.sub('***', path)}"
    if not sep:
        return base
    shown = []
    for item in query.replace(";", "&").split("&"):
        name, equals, value = item.partition("=")
        if name in OPTIONS:  # a value up to the first character no path or variable name has: it can hold anything
            shown.append(f"{name}{equals}{_UNSAFE_PATH.sub('***', value)}")
        else:
            shown.append(f"{_option_name(name)}{equals}***" if equals else "***")
    return f"{base}?{'&'.join(shown)}"


def _option_name(name: str) -> str:
    """An unknown option's name as shown: only short plain words (a name can hide a secret too)."""
    return name if _PLAIN_NAME.fullmatch(name) else "***"


def _query(raw: str, url: str) -> dict[str, str]:
    query = {k: v[-1] for k, v in parse_qs(raw).items()}
    unknown = set(query) - OPTIONS.keys()
    if unknown:
        raise InputError(
            f"unknown endpoint option(s) {', '.join(sorted(_option_name(n) for n in unknown))} in {url!r}",
            hint=f"known options: {', '.join(sorted(OPTIONS))}",
        )
    return query


_HOST = re.compile(r"[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]")


def _hosts(netloc: str, url: str) -> tuple[tuple[str, int], ...]:
    hosts = []
    for item in filter(None, netloc.split(",")):
        host, _, port = item.rpartition(":") if ":" in item and not item.endswith("]") else (item, "", "6379")
        if not _number(port) or not 0 < int(port) <= _MAX_PORT:
            raise InputError(
                f"bad port {port[:10]!r} in {url!r}",
                hint="write host:port with a port from 1 to 65535, e.g. 127.0.0.1:6379",
            )
        if host and not _HOST.fullmatch(host):
            raise InputError(f"bad host name in {url!r}", hint="write a DNS name, an IPv4 address or [IPv6]")
        hosts.append((host.strip("[]") or "127.0.0.1", int(port)))
    if not hosts:
        raise InputError(f"no host in {url!r}", hint="write scheme://host:port")
    return tuple(hosts)


def _number(text: str) -> bool:
    """ASCII digits only: ``int`` also reads other scripts' digits (a fullwidth one would mean port 1)."""
    return text.isascii() and text.isdigit()


def _path(path: str, kind: Kind, url: str) -> tuple[int | None, str | None]:
    segment = path.strip("/")
    if kind == "sentinel":
        name, _, db = segment.partition("/")
        if not name:
            raise InputError(f"no primary name in {url!r}", hint="write valkey+sentinel://h1:p1,h2:p2/<primary-name>")
        return (int(db) if _number(db) else None), name
    if segment and not _number(segment):
        raise InputError(f"the database in {url!r} must be a number", hint="write .../0 for db 0")
    return (int(segment) if segment else None), None


def _password(query: dict[str, str], environ: dict[str, str], url: str) -> str | None:
    if "password_env" in query:
        name = query["password_env"]
        if name not in environ:
            raise InputError(f"environment variable {name} (password_env of {url!r}) is not set", hint=f"export {name}")
        return environ[name]
    if "password_file" in query:
        try:
            return Path(query["password_file"]).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise InputError(
                f"cannot read password_file {query['password_file']}: {exc.strerror}",
                hint="check the path and its permissions",
            ) from None
        except ValueError:
            raise InputError(
                f"password_file {query['password_file']} is not UTF-8 text", hint="write the password alone, as text"
            ) from None
    return None


def _tls(query: dict[str, str]) -> Tls:
    """TLS settings whose files exist and load (InputError naming the option otherwise)."""
    for option in ("ca", "cert", "key"):
        path = query.get(option)
        if path is not None and not (Path(path).is_file() and os.access(path, os.R_OK)):
            raise InputError(
                f"the endpoint's {option} file {path} does not exist or is not a readable file",
                hint=f"check the path given in ?{option}=PATH",
            )
    if "key" in query and "cert" not in query:
        raise InputError("the endpoint has a client key but no certificate", hint="add ?cert=PATH beside ?key=PATH")
    tls = Tls(
        ca_file=query.get("ca"),
        cert_file=query.get("cert"),
        key_file=query.get("key"),
        insecure=query.get("insecure", "0") in ("1", "true", "yes"),
    )
    try:
        tls.context()
    except (ssl.SSLError, OSError, ValueError) as exc:
        given = ", ".join(f"{o}={query[o]}" for o in ("ca", "cert", "key") if o in query)
        raise InputError(
            f"cannot load the endpoint's TLS files ({given}): {getattr(exc, 'reason', None) or exc}",
            hint="ca, cert and key must be PEM files (the key matching the certificate)",
        ) from None
    return tls


# ---- valkey-py clients (the slow, convenient path) -----------------------------------------------


def client_kwargs(endpoint: Endpoint) -> dict[str, Any]:
    """Keyword arguments for a valkey-py client on this endpoint (auth and TLS)."""
    kwargs: dict[str, Any] = {"username": endpoint.username, "password": endpoint.password, "socket_timeout": 30}
    if endpoint.tls is not None:
        kwargs.update(
            ssl=True,
            ssl_ca_certs=endpoint.tls.ca_file,
            ssl_certfile=endpoint.tls.cert_file,
            ssl_keyfile=endpoint.tls.key_file,
            ssl_cert_reqs="none" if endpoint.tls.insecure else "required",
            ssl_check_hostname=not endpoint.tls.insecure,
        )
    return kwargs


def node_client(endpoint: Endpoint, host: str, port: int, db: int = 0) -> Any:
    """A valkey-py client (``valkey.Valkey``) on one node of the endpoint (through its route when it has one)."""
    import valkey  # slow to import; the copy's hot path does not need it

    if endpoint.route is not None:
        return routed_client(endpoint.route, host, port, db=db, **client_kwargs(endpoint))
    return valkey.Valkey(host=host, port=port, db=db, **client_kwargs(endpoint))


def routed_client(route: Route, host: str, port: int, *, ssl: bool = False, **kwargs: Any) -> Any:
    """A valkey-py client whose connections are dialled by ``route``; TLS still checks ``host``, the real name.

    valkey-py would wrap with the address it dials (``server_hostname=self.host``): here that address stays the
    node's real one and only the socket comes from the route (``docs/reference/bastions.md#tls-through-a-tunnel``).
    """
    import valkey

    from reproducer.data import routed  # valkey-py connection classes, imported with valkey

    kwargs.pop("socket_keepalive", None)
    kind = routed.RoutedSSLConnection if ssl else routed.RoutedConnection
    pool = valkey.ConnectionPool(connection_class=kind, host=host, port=port, dial=route.dial, **kwargs)
    return valkey.Valkey.from_pool(pool)


@contextlib.contextmanager
def valkey_errors(what: str) -> Iterator[None]:
    """Turn valkey-py exceptions raised while doing ``what`` into DataError with the server's message."""
    import valkey

    try:
        yield
    except valkey.exceptions.AuthenticationError as exc:
        raise DataAuthError(
            f"{what}: authentication failed ({exc})",
            hint="check the endpoint's user and its password (?password_env=VAR or ?password_file=PATH)",
        ) from None
    except valkey.exceptions.ConnectionError as exc:
        raise DataError(
            f"{what}: connection failed ({exc})",
            hint="check the address, TLS options and the allow-list",
            retryable=True,
        ) from None
    except valkey.exceptions.ValkeyError as exc:
        raise DataError(f"{what}: {without_arguments(str(exc))}") from None


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
#: how valkey-py names the failed command of a pipeline, with all its arguments
_PIPELINE_COMMAND = re.compile(r"Command # (\d+) \(.*\) of pipeline caused error: ", re.DOTALL)


def without_quoted(text: str) -> str:
    """``text`` (a server's error or log line) with every quoted part replaced by ``'…'``."""
    return _QUOTED.sub("'…'", text)


def without_arguments(text: str) -> str:
    """A server error without the data it was about: no command arguments (valkey-py's pipeline errors), no quotes.

    Keys and values are the user's data (or, for an import, a file's bytes): messages never quote them.
    """
    return without_quoted(_PIPELINE_COMMAND.sub(r"command \1 of the batch: ", text))


def resolve_primary(endpoint: Endpoint) -> tuple[str, int]:
    """The current primary of a Sentinel endpoint (first Sentinel that answers), else the first host."""
    if endpoint.kind != "sentinel":
        return endpoint.hosts[0]
    import valkey

    errors = []
    for host, port in endpoint.hosts:
        try:
            with sentinel_client(endpoint, host, port) as sentinel:
                found = sentinel.sentinel_get_master_addr_by_name(endpoint.primary_name)
        except valkey.exceptions.ValkeyError as exc:
            errors.append(f"{host}:{port}: {exc}")
            continue
        if found:
            return str(found[0]), int(found[1])
        errors.append(f"{host}:{port}: does not know {endpoint.primary_name!r}")
    raise SourceError(
        f"no Sentinel of {endpoint} named a primary: {'; '.join(errors)}",
        hint="check the Sentinel addresses and the primary name",
        retryable=True,
    )


def sentinel_client(endpoint: Endpoint, host: str, port: int) -> Any:
    """A client of the Sentinel at ``host:port`` (TLS when the endpoint's Sentinels speak it, through its route)."""
    import valkey

    kwargs: dict[str, Any] = {"socket_timeout": 5, "decode_responses": True}
    if endpoint.sentinel_tls and endpoint.tls is not None:
        kwargs.update({k: v for k, v in client_kwargs(endpoint).items() if k.startswith("ssl")})
    if endpoint.route is not None:
        return routed_client(endpoint.route, host, port, **kwargs)
    return valkey.Valkey(host=host, port=port, **kwargs)
