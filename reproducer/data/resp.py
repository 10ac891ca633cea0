"""A lean RESP connection for the copy's hot path: raw sockets, batched writes, libvalkey's C parser.

valkey-py spends about 14 µs of Python per DUMP+PTTL+RESTORE; building commands as bytes and parsing
replies with ``libvalkey.Reader`` costs a fraction of that (see ``docs/reference/performance.md#cost-per-key``).
Errors come back as :class:`ReplyError` values in reply lists, so a batch is never cut short by one key.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable

import libvalkey

from reproducer.data.tlsbio import BufferedTls
from reproducer.errors import DataAuthError, DataError

ReplyError = libvalkey.ReplyError
#: Opens a socket to a node address (``host, port, timeout``): a route such as an SSH bastion.
Dial = Callable[[str, int, float], socket.socket]
_READ_SIZE = 1 << 20
_TLS_READ_SIZE = 1 << 16
#: What the parser returns while a reply is incomplete: a sentinel no reply equals (``False`` would equal a 0).
_INCOMPLETE = object()
#: The reply of a write that took (SET, RESTORE), as :meth:`RawConnection.read` returns it, and on the wire.
OK = b"OK"
_OK_REPLY = b"+OK\r\n"
#: Parts at least this big are written as they are, never copied into a bigger buffer.
DIRECT_SEND = 64 * 1024
#: Smaller parts are gathered into writes of about this many bytes.
GATHER = 1 << 20


def command(*args: bytes | str | int) -> bytes:
    """One command in RESP (arguments as bytes, str or int)."""
    return bytes(libvalkey.pack_command(args))


class RawConnection:
    """One socket to one Valkey node; ``send`` bytes, then ``read`` that many replies."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: ssl.SSLContext | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 60.0,
        dial: Dial | None = None,
        via: str = "",
    ) -> None:
        self.address = f"{host}:{port}" + (f" {via}" if via else "")
        try:
            raw = _open(host, port, timeout, dial)
            # through a route too, TLS checks the node's real name (SNI and hostname), never the tunnel's end
            self._sock: socket.socket | BufferedTls = BufferedTls(raw, tls, host) if tls else raw
        except ssl.SSLCertVerificationError as exc:
            raise DataError(
                f"TLS handshake with {self.address} failed: its certificate cannot be verified ({exc.verify_message})",
                hint="pass the CA that signed the server's certificate with ?ca=PATH, "
                "or ?insecure=1 to skip verification (never in production)",
            ) from None
        except ssl.SSLError as exc:
            raise DataError(
                f"TLS handshake with {self.address} failed: {exc.reason or exc.strerror or exc}",
                hint="check that the server speaks TLS on this port and the CA file (?ca=PATH); "
                "?insecure=1 skips verification",
            ) from None
        except OSError as exc:
            raise DataError(
                f"cannot connect to {self.address}: {exc.strerror or exc}",
                hint="check the host, the port and the allow-list",
                retryable=True,
            ) from None
        except ValueError as exc:  # a host name IDNA cannot encode (a label too long, empty)
            raise DataError(f"cannot connect to {self.address}: {exc}", hint="check the host name") from None
        self._reader = libvalkey.Reader(notEnoughData=_INCOMPLETE)
        self._inbox = memoryview(bytearray(_TLS_READ_SIZE)) if tls else None
        self._raw_inbox: memoryview | None = None  # what recv_raw reads into (a stream's bytes), made when used
        self._early: list[object] = []  # replies read past a ``read``'s count, handed to the next one
        self._timeout = timeout
        self.db = 0
        if password is not None or username is not None:
            self._auth(username, password)

    def _auth(self, username: str | None, password: str | None) -> None:
        args = ("AUTH", username, password or "") if username else ("AUTH", password or "")
        self.send(command(*args))
        reply = self.read(1)[0]
        if reply != b"OK":
            raise refused(self.address, username, reply)

    def send(self, data: bytes) -> None:
        """Write already-encoded commands."""
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise DataError(f"connection to {self.address} lost: {exc}", retryable=True) from None

    def send_parts(self, parts: list[bytes]) -> None:
        """Write commands given as parts, without copying large ones into one buffer."""
        small: list[bytes] = []
        size = 0
        for part in parts:
            if len(part) >= DIRECT_SEND:
                if small:
                    self.send(b"".join(small))
                    small, size = [], 0
                self.send(part)
                continue
            small.append(part)
            size += len(part)
            if size >= GATHER:
                self.send(b"".join(small))
                small, size = [], 0
        if small:
            self.send(b"".join(small))

    def read(self, count: int, *, limit: int | None = None, limited: int = 0) -> list[object]:
        """Read exactly ``count`` replies (errors included as ReplyError values).

        With ``limit``, any of the first ``limited`` replies that grows past ``limit`` bytes before it is complete
        raises :class:`ReplyOverLimit` (the connection is then mid-reply: close it).
        """
        replies, self._early = self._early, []
        reader, gets = self._reader, self._reader.gets
        while True:
            replies.extend(iter(gets, _INCOMPLETE))  # the replies complete in the buffer, without a Python loop
            if len(replies) >= count:
                break
            if limit is not None and len(replies) < limited and reader.len() > limit:
                raise ReplyOverLimit(self.address, len(replies), limit)  # what is buffered is one partial reply
            try:
                chunk = self._recv()
            except TimeoutError:
                raise DataError(f"no answer from {self.address} within {self._timeout:.0f}s", retryable=True) from None
            oks = 0 if reader.has_data() else _only_oks(chunk)
            if oks:  # a batch of writes that all took: no reply to parse
                replies += [OK] * oks
            else:
                reader.feed(chunk)
        if len(replies) > count:
            self._early = replies[count:]
            del replies[count:]
        return replies

    def poll(self, timeout: float) -> list[object]:
        """Replies that arrive within ``timeout`` seconds (for subscriptions); possibly none."""
        replies, self._early = self._early, []
        replies.extend(iter(self._reader.gets, _INCOMPLETE))
        if replies:
            return replies
        self._sock.settimeout(timeout)
        try:
            self._reader.feed(self._recv())
        except TimeoutError:
            return []
        finally:
            self._sock.settimeout(self._timeout)
        replies.extend(iter(self._reader.gets, _INCOMPLETE))
        return replies

    def recv_raw(self) -> memoryview:
        """The next bytes from the socket as they come: a stream that is not replies (SYNC's RDB).

        Only once every reply sent for was read: the parser may hold bytes of a reply, never of a stream. The bytes
        are a view of a buffer the next call reads into: copy them before calling again. Over TLS, every record
        already received comes in one call (:class:`BufferedTls`).
        """
        if self._raw_inbox is None:
            self._raw_inbox = memoryview(bytearray(_READ_SIZE))
        size = self._recv_into(self._raw_inbox)
        if not size:
            raise DataError(f"connection to {self.address} closed by the server", retryable=True)
        return self._raw_inbox[:size]

    def _recv_into(self, buffer: memoryview) -> int:
        try:
            return self._sock.recv_into(buffer)
        except TimeoutError:
            raise
        except OSError as exc:
            raise DataError(f"connection to {self.address} lost: {exc}", retryable=True) from None

    def _recv(self) -> bytes:
        try:
            if isinstance(self._sock, socket.socket):
                chunk = self._sock.recv(_READ_SIZE)
            else:  # TLS: into a buffer kept for it, not a new one each time
                assert self._inbox is not None
                chunk = bytes(self._inbox[: self._sock.recv_into(self._inbox)])
        except TimeoutError:
            raise
        except OSError as exc:
            raise DataError(f"connection to {self.address} lost: {exc}", retryable=True) from None
        if not chunk:
            raise DataError(f"connection to {self.address} closed by the server", retryable=True)
        return chunk

    def call(self, *args: bytes | str | int) -> object:
        """Send one command and return its reply; a server error raises DataError."""
        self.send(command(*args))
        reply = self.read(1)[0]
        if isinstance(reply, ReplyError):
            if str(reply).startswith("NOAUTH"):
                raise DataAuthError(
                    f"{self.address} requires a password and none was given ({reply})",
                    hint="add ?password_env=VAR or ?password_file=PATH to the endpoint URL "
                    "(and user@ before the host for an ACL user)",
                )
            raise DataError(f"{args[0]!s} on {self.address} failed: {reply}")
        return reply

    def select(self, db: int) -> None:
        """Switch database when needed."""
        if db != self.db:
            self.call("SELECT", db)
            self.db = db

    def call_bytes(self, *args: bytes | str | int) -> bytes:
        """``call`` for a command whose reply is a bulk or status string."""
        reply = self.call(*args)
        if not isinstance(reply, bytes):
            raise DataError(f"{args[0]!r} on {self.address} answered {reply!r}, not a string")
        return reply

    def call_int(self, *args: bytes | str | int) -> int:
        """``call`` for a command whose reply is an integer."""
        reply = self.call(*args)
        if not isinstance(reply, int):
            raise DataError(f"{args[0]!r} on {self.address} answered {reply!r}, not an integer")
        return reply

    def adopt(self, fresh: RawConnection) -> None:
        """Go on over ``fresh``'s socket (this one's, broken or mid-reply, is closed), in this one's database."""
        db = self.db
        self.close()
        self._sock, self._reader, self.address, self._early = fresh._sock, fresh._reader, fresh.address, fresh._early
        self._inbox = fresh._inbox
        self._timeout, self.db = fresh._timeout, fresh.db
        self.select(db)

    def close(self) -> None:
        """Close the socket."""
        with contextlib.suppress(OSError):
            self._sock.close()


class ReplyOverLimit(DataError):
    """Reply ``index`` of a read grew past ``limit`` bytes before it was complete (the connection is mid-reply)."""

    def __init__(self, address: str, index: int, limit: int) -> None:
        super().__init__(f"a reply from {address} grew past {limit} bytes", retryable=True)
        self.index = index


def _only_oks(chunk: bytes) -> int:
    """How many replies ``chunk`` holds when it is ``+OK`` replies and nothing else, whole; else 0."""
    whole = len(chunk) // len(_OK_REPLY)
    return whole if len(chunk) == whole * len(_OK_REPLY) and chunk.count(_OK_REPLY) == whole else 0


def _open(host: str, port: int, timeout: float, dial: Dial | None) -> socket.socket:
    """A socket to ``host:port``: directly, or from ``dial`` (which raises DataError itself)."""
    if dial is not None:
        raw = dial(host, port, timeout)
        raw.settimeout(timeout)
        return raw
    raw = socket.create_connection((host, port), timeout=timeout)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return raw


def refused(address: str, username: str | None, reply: object) -> DataAuthError:
    """The error for an AUTH that ``address`` refused, naming the user (never the password) and the fix."""
    user = username or "default"
    return DataAuthError(
        f"authentication to {address} as user {user!r} failed: {reply}",
        hint=f"check the password given for user {user!r} (?password_env=VAR or ?password_file=PATH) "
        "and that this user exists and is on",
    )
