"""Sizes of keys when ``MEMORY USAGE`` is refused (an ACL without ``+memory``, or the command renamed).

A key's size then comes from cheap commands of its type, asked for many keys in one write once ``TYPE`` has
answered: ``STRLEN`` of a string (exact), and of a collection its element count (``HLEN``, ``SCARD``, ``ZCARD``,
``LLEN``, ``XLEN``) times the largest of a few elements read as a sample (``HRANDFIELD … WITHVALUES``,
``SRANDMEMBER``, ``ZRANDMEMBER … WITHSCORES``, ``LRANGE 0 4``, ``XRANGE - + COUNT 5``), as ``MEMORY USAGE`` itself
estimates a collection from a sample (5 elements by default). The largest element rather than the mean leans
towards over-estimating, so a key near the byte bound is copied in windows rather than read whole. Facts:
``docs/reference/big-keys.md#sizing-without-memory-usage``.

The samples of one round trip stay within the byte bound as far as the last samples tell (:class:`Sampler`):
keys whose elements are megabytes are sized a few at a time.
"""

from __future__ import annotations

from reproducer.data.resp import RawConnection, ReplyError, command

#: Elements read from a collection to estimate its size (MEMORY USAGE's default number of samples).
SAMPLE = 5
#: Bytes counted per element beyond its own (length prefixes, a score, the entry's bookkeeping).
ELEMENT_OVERHEAD = 16
#: The size of a key whose type changed between TYPE and its size commands: over any byte bound, so it is never
#: read whole (the windowed copy and comparison read its type again).
UNBOUNDED = 1 << 62

#: Per type: the command that counts, then the sample's command and its arguments after the key.
_COMMANDS: dict[bytes, tuple[str, tuple[str | int, ...]]] = {
    b"hash": ("HLEN", ("HRANDFIELD", SAMPLE, "WITHVALUES")),
    b"set": ("SCARD", ("SRANDMEMBER", SAMPLE)),
    b"zset": ("ZCARD", ("ZRANDMEMBER", SAMPLE, "WITHSCORES")),
    b"list": ("LLEN", ("LRANGE", 0, SAMPLE - 1)),
    b"stream": ("XLEN", ("XRANGE", "-", "+", "COUNT", SAMPLE)),
}
#: Replies per element in a sample: a hash's field and value, a sorted set's member and score.
_PER_ELEMENT = {b"hash": 2, b"zset": 2}


def types_of(keys: list[bytes]) -> bytes:
    """TYPE of each key, encoded for one write."""
    return b"".join(b"*2\r\n$4\r\nTYPE\r\n$%d\r\n%b\r\n" % (len(key), key) for key in keys)


def estimate_commands(key: bytes, kind: object) -> list[bytes]:
    """The commands that size ``key`` of type ``kind`` (a TYPE reply); none for a gone key or an unknown type."""
    if kind == b"string":
        return [command("STRLEN", key)]
    shape = _COMMANDS.get(kind) if isinstance(kind, bytes) else None
    if shape is None:
        return []
    counter, (sampler, *args) = shape
    return [command(counter, key), command(sampler, key, *args)]


def estimate(kind: object, replies: list[object]) -> int | None:
    """Bytes of a key of type ``kind`` from the replies to :func:`estimate_commands`.

    0 for a gone key, :data:`UNBOUNDED` when the key changed type meanwhile (WRONGTYPE), None when the type has no
    size commands or they were refused (the caller guesses).
    """
    return _estimate(kind, replies)[0]


def _estimate(kind: object, replies: list[object]) -> tuple[int | None, int | None]:
    """(the estimate, the largest sampled element's bytes or None when nothing was sampled)."""
    if kind == b"none":
        return 0, None
    if any(isinstance(r, ReplyError) and str(r).startswith("WRONGTYPE") for r in replies):
        return UNBOUNDED, None
    if not replies or not isinstance(replies[0], int) or any(isinstance(r, ReplyError) for r in replies):
        return None, None
    count = max(replies[0], 0)
    if kind == b"string" or count == 0:
        return count, None
    largest = _largest_element(kind, replies[1])
    return count * (largest + ELEMENT_OVERHEAD) if largest is not None else 0, largest


def _largest_element(kind: object, sample: object) -> int | None:
    """Bytes of the largest element in ``sample``; None when it is empty (the key was emptied meanwhile)."""
    if not isinstance(sample, list) or not sample:
        return None
    per = _PER_ELEMENT.get(kind, 1) if isinstance(kind, bytes) else 1
    return max(_bytes_in(sample[i : i + per]) for i in range(0, len(sample), per))


def _bytes_in(reply: object) -> int:
    """Bytes of the bulk strings in a (nested) reply."""
    if isinstance(reply, bytes):
        return len(reply)
    if isinstance(reply, list):
        return sum(_bytes_in(part) for part in reply)
    return 8  # an integer or a score sent as a number


class Sampler:
    """Plans size commands so that the samples read in one round trip stay within ``max_bytes``.

    A sample reads whole elements, so the number of collections sampled at once is the bound divided by
    :data:`SAMPLE` times the largest element of the last samples read (one collection before any was read): keys
    whose elements are megabytes are sized a few at a time, keys of small elements all at once. Strings, gone keys
    and unknown types cost nothing of that budget.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._element: int | None = None

    def budget(self) -> int:
        """How many collections the next round trip may sample (at least one)."""
        if self._element is None:
            return 1
        return max(1, self.max_bytes // (SAMPLE * (self._element + ELEMENT_OVERHEAD)))

    def plan(
        self, keys: list[bytes], types: list[object], start: int, budget: int
    ) -> tuple[int, list[list[bytes]], int]:
        """Size commands of ``keys[start:end]`` within ``budget`` collections: (end, commands per key, budget left)."""
        asked: list[list[bytes]] = []
        end = start
        while end < len(keys):
            parts = estimate_commands(keys[end], types[end])
            if len(parts) > 1:  # a collection: its sample reads elements
                if budget == 0:
                    break
                budget -= 1
            asked.append(parts)
            end += 1
        return end, asked, budget

    def read(self, types: list[object], asked: list[list[bytes]], replies: list[object]) -> list[int | None]:
        """The estimates of keys of ``types`` whose commands were ``asked`` and answered with ``replies``."""
        sizes: list[int | None] = []
        largest: int | None = None
        offset = 0
        for kind, parts in zip(types, asked, strict=True):
            size, element = _estimate(kind, replies[offset : offset + len(parts)])
            sizes.append(size)
            largest = element if largest is None else max(largest, element or 0)
            offset += len(parts)
        if largest is not None:
            self._element = largest
        return sizes


def estimate_sizes(conn: RawConnection, keys: list[bytes], types: list[object], sampler: Sampler) -> list[int | None]:
    """Estimated bytes of each of ``keys`` (``types``: their TYPE replies), in the round trips ``sampler`` plans."""
    sizes: list[int | None] = []
    start = 0
    while start < len(keys):
        end, asked, _left = sampler.plan(keys, types, start, sampler.budget())
        conn.send(b"".join(part for parts in asked for part in parts))
        sizes += sampler.read(types[start:end], asked, conn.read(sum(map(len, asked))))
        start = end
    return sizes
