"""Benchmark: peak RSS, time and progress of `reproducer copy` and `reproducer verify` on big values (issue 17).

One mode a run (the default is ``--values 200x50MB``):

  --values NxSMB   N incompressible strings of S MB each (the memory goal: copy and verify under 1 GB)
  --hash SIZE/N    one hash of N fields adding up to SIZE (``1GB/10M``): more than one RESTORE may carry
  --string SIZE    one incompressible string of SIZE (``500MB``)
  --keys N         N small mixed keys (bench/copy.py's dataset, ``1M``, ``5M``): the peak must be flat in N

The source and the target are plain valkey-servers from reproducer.sandbox.fleet (DEBUG is allowed there). Each
command runs as its own process on a pseudo-terminal, as a user sees it, while its VmHWM (peak resident set) is
sampled from /proc; progress counts what it showed: the distinct states of copy's bar (keys, MB) and verify's
progress lines. Both servers are stopped right after. Source and target together hold about twice the data:
the script refuses to start when the machine has not that much memory available (with a margin).
The last line reads: mode=.. copy_peak_rss_mb=.. verify_peak_rss_mb=.. copy_s=.. verify_s=..
copy_progress=.. verify_progress=.. copy_cpu_s=.. verify_cpu_s=.. peak_rss_mb=.. (the larger of the two peaks; CPU
is the command's user + system time, as last sampled).
"""

from __future__ import annotations

import os
import sys

# bench/copy.py would shadow the standard library's copy module: keep this directory off the import path.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse
import importlib.util
import pty
import re
import select
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from reproducer.data.resp import RawConnection, command
from reproducer.sandbox.fleet import ADMIN_USER, Fleet, FleetSpec

TICKS = os.sysconf("SC_CLK_TCK")
MARGIN = 1.5  # memory kept free beyond the two servers' data, as a share of it
_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "KB": 10**3, "MB": 10**6, "GB": 10**9}
_BAR = re.compile(rb"([\d,]+) keys\s+([\d.]+) MB")
_VERIFY_LINE = re.compile(rb"verify: [\d,]+ keys compared \([\d,]+ keys/s\)")  # the progress line, not the summary


def amount(text: str) -> int:
    """``500MB``, ``1GB``, ``10M``, ``200`` as a number (decimal units)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMG]?B?)", text.strip().upper())
    if match is None:
        raise argparse.ArgumentTypeError(f"not an amount: {text!r} (examples: 200, 1M, 500MB, 1GB)")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def available_bytes() -> int:
    """MemAvailable from /proc/meminfo."""
    with open("/proc/meminfo", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise SystemExit("cannot read MemAvailable from /proc/meminfo")


def raw(fleet: Fleet) -> RawConnection:
    """A RESP connection to the fleet's primary as its admin."""
    node = fleet.primary
    return RawConnection(node.host, node.port, username=ADMIN_USER, password=fleet._state.admin_password, timeout=600)


def pipelined(conn: RawConnection, commands: list[bytes]) -> None:
    """Send ``commands`` in one write and check every reply."""
    conn.send(b"".join(commands))
    for reply in conn.read(len(commands)):
        if isinstance(reply, Exception):
            raise SystemExit(f"filling the source failed: {reply}")


def fill_values(fleet: Fleet, keys: int, size: int) -> None:
    """N distinct incompressible strings of ``size`` bytes (rotations of one random blob)."""
    conn, blob = raw(fleet), os.urandom(size)
    for index in range(keys):
        pipelined(conn, [command("SET", f"big:{index}", blob[index:] + blob[:index])])
    conn.close()


def fill_string(fleet: Fleet, size: int) -> None:
    """One incompressible string of ``size`` bytes, appended 8 MB at a time."""
    conn, step = raw(fleet), 8 * 1000 * 1000
    blob = os.urandom(step)
    for offset in range(0, size, step):
        part = blob[offset % 997 :] + blob[: offset % 997]
        pipelined(conn, [command("APPEND", "big:string", part[: min(step, size - offset)])])
    conn.close()


def fill_hash(fleet: Fleet, size: int, fields: int) -> None:
    """One hash of ``fields`` fields whose names and values add up to about ``size`` bytes, 1000 per HSET."""
    conn = raw(fleet)
    value_size = max(size // fields - 12, 1)
    pool = os.urandom(1 << 20).hex().encode()
    for start in range(0, fields, 50_000):
        commands = []
        for first in range(start, min(start + 50_000, fields), 1000):
            args: list[bytes] = []
            for index in range(first, min(first + 1000, fields)):
                offset = (index * 7919) % (len(pool) - value_size)
                args += [b"f:%010d" % index, pool[offset : offset + value_size]]
            commands.append(command("HSET", "big:hash", *args))
        pipelined(conn, commands)
    conn.close()


def fill_keys(fleet: Fleet, keys: int) -> None:
    """bench/copy.py's mixed dataset of ``keys`` small keys."""
    spec = importlib.util.spec_from_file_location("bench_copy", Path(__file__).with_name("copy.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_copy"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    module.load(fleet, keys)


@dataclass
class Run:
    """One command's wall time, peak RSS (MB), CPU seconds (user + system, last sampled) and progress shown."""

    seconds: float
    peak_mb: float
    progress: int
    cpu_s: float


def run(argv: list[str], env: dict[str, str]) -> Run:
    """Run ``argv`` on a pseudo-terminal; sample its VmHWM every 20 ms and keep what it printed."""
    master, slave = pty.openpty()
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    output, peak, cpu = bytearray(), 0, 0.0
    while proc.poll() is None:
        peak = max(peak, _hwm_kb(proc.pid))
        cpu = max(cpu, _cpu_s(proc.pid))
        output += _drain(master, 0.02)
    output += _drain(master, 0.2)
    os.close(master)
    elapsed = time.monotonic() - started
    text = output.decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[3:4])} failed ({proc.returncode}): {text[-2000:]}")
    shown = len(set(_BAR.findall(bytes(output)))) + len(_VERIFY_LINE.findall(bytes(output)))
    return Run(elapsed, peak / 1024, shown, cpu)


def _drain(fd: int, timeout: float) -> bytes:
    data = b""
    while select.select([fd], [], [], timeout)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed its end
            return data
        if not chunk:
            return data
        data += chunk
        timeout = 0
    return data


def _cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime and stime
    except (OSError, IndexError, ValueError):
        return 0.0


def _hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            return int(handle.read().split("VmHWM:")[1].split()[0])
    except (OSError, IndexError, ValueError):  # exiting between poll() and the read
        return 0


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The mode and its size; the data's size in bytes as ``data_bytes``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--values", help="NxSMB: N strings of S MB (default 200x50MB)")
    modes.add_argument("--hash", help="SIZE/FIELDS: one hash (e.g. 1GB/10M)")
    modes.add_argument("--string", type=amount, help="SIZE: one string (e.g. 500MB)")
    modes.add_argument("--keys", type=amount, help="N small mixed keys (e.g. 1M, 5M)")
    parser.add_argument("--margin", type=float, default=MARGIN, help="free memory asked for, as a share of the data")
    args = parser.parse_args(argv)
    if not (args.hash or args.string or args.keys):
        args.values = args.values or "200x50MB"
    if args.values:
        count, _x, each = args.values.upper().partition("X")
        args.count, args.each = amount(count), amount(each)
        args.data_bytes, args.mode = args.count * args.each, f"values_{args.values}"
    elif args.hash:
        size, _slash, fields = args.hash.partition("/")
        args.size, args.fields = amount(size), amount(fields or "1M")
        args.data_bytes, args.mode = 2 * args.size, f"hash_{args.hash}"  # a hash costs about twice its bytes
    elif args.string:
        args.data_bytes, args.mode = args.string, f"string_{args.string // 10**6}MB"
    else:
        args.data_bytes, args.mode = args.keys * 250, f"keys_{args.keys}"
    return args


def fill(fleet: Fleet, args: argparse.Namespace) -> None:
    """Write the mode's data into the source."""
    if args.values:
        fill_values(fleet, args.count, args.each)
    elif args.hash:
        fill_hash(fleet, args.size, args.fields)
    elif args.string:
        fill_string(fleet, args.string)
    else:
        fill_keys(fleet, args.keys)


def main(argv: list[str] | None = None) -> None:
    """Fill a source, copy it into an empty target, verify, print the numbers."""
    args = parse(argv)
    needed = int(2 * args.data_bytes * args.margin)
    if needed > available_bytes():
        raise SystemExit(
            f"{args.mode} needs about {needed / 1e9:.1f} GB free for both servers, "
            f"{available_bytes() / 1e9:.1f} GB are available: run a smaller size, or when others are done"
        )
    with Fleet.start(FleetSpec()) as source, Fleet.start(FleetSpec()) as target, tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        fill(source, args)
        print(f"source: {args.mode} written in {time.monotonic() - started:.1f}s", flush=True)
        env = {**os.environ, "SRC_PW": source._state.admin_password, "DST_PW": target._state.admin_password}
        env.update(COLUMNS="160", TERM="xterm")
        urls = [
            f"valkey://{ADMIN_USER}@127.0.0.1:{fleet.primary.port}?password_env={var}"
            for fleet, var in ((source, "SRC_PW"), (target, "DST_PW"))
        ]
        cli = [sys.executable, "-m", "reproducer.cli"]
        copied = run([*cli, "copy", *urls, "--no-verify", "--run-dir", tmp], env)
        for name, done in (("copy", copied), ("verify", verified := run([*cli, "verify", *urls], env))):
            print(
                f"{name}: {done.seconds:.1f}s, {done.cpu_s:.1f} CPU s, peak RSS {done.peak_mb:.0f} MB, "
                f"progress {done.progress}",
                flush=True,
            )
    print(
        f"mode={args.mode} copy_peak_rss_mb={copied.peak_mb:.0f} verify_peak_rss_mb={verified.peak_mb:.0f} "
        f"copy_s={copied.seconds:.1f} verify_s={verified.seconds:.1f} copy_progress={copied.progress} "
        f"verify_progress={verified.progress} copy_cpu_s={copied.cpu_s:.1f} verify_cpu_s={verified.cpu_s:.1f} "
        f"peak_rss_mb={max(copied.peak_mb, verified.peak_mb):.0f}"
    )


if __name__ == "__main__":
    main()
