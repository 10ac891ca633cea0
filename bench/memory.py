"""Benchmark: peak RSS of `reproducer copy` and `reproducer verify` on big values (issue 11: < 1 GB, 200 x 50 MB).

Fills a source valkey-server with N incompressible string values of S MB each, then runs, as separate processes,
`reproducer copy --no-verify` into an empty target and `reproducer verify`, sampling each one's VmHWM (peak
resident set) from /proc until it exits. Source and target together hold 2 x N x S MB: the script refuses to start
when the machine has not that much memory available (with a margin), and says the largest N that fits.
The last line reads: keys=<N> mb_per_key=<S> copy_peak_mb=<..> verify_peak_mb=<..> copy_s=<..> verify_s=<..>.
"""

from __future__ import annotations

import os
import sys

# bench/copy.py would shadow the standard library's copy module: keep this directory off the import path.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse
import subprocess
import tempfile
import time

from reproducer.sandbox.fleet import Fleet, FleetSpec

MARGIN = 1.25  # memory kept free beyond the two servers' data, as a share of it


def available_bytes() -> int:
    """MemAvailable from /proc/meminfo."""
    with open("/proc/meminfo", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise SystemExit("cannot read MemAvailable from /proc/meminfo")


def fill(fleet: Fleet, keys: int, size: int) -> None:
    """N distinct incompressible values of ``size`` bytes (rotations of one random blob)."""
    client = fleet.client(fleet.primary)
    blob = os.urandom(size)
    for index in range(keys):
        client.set(f"big:{index}", blob[index:] + blob[:index])


def peak_of(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run ``argv``; (seconds, peak RSS in MB from its VmHWM, sampled every 20 ms until it exits)."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=errors)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _hwm_kb(proc.pid))
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[3:5])} failed ({proc.returncode}): {stderr[-2000:]}")
    return elapsed, peak / 1024


def _hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            return int(handle.read().split("VmHWM:")[1].split()[0])
    except (OSError, IndexError, ValueError):  # exiting between poll() and the read
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--mb", type=int, default=50, help="MB (10^6 B) per value")
    parser.add_argument("--margin", type=float, default=MARGIN, help="free memory asked for, as a share of the data")
    args = parser.parse_args()
    size = args.mb * 1000 * 1000
    needed = int(2 * args.keys * size * args.margin)
    if needed > available_bytes():
        fits = int(available_bytes() / (2 * size * args.margin))
        raise SystemExit(
            f"{args.keys} x {args.mb} MB needs about {needed / 1e9:.1f} GB free for both servers, "
            f"{available_bytes() / 1e9:.1f} GB are available: run with --keys {fits} or fewer"
        )
    with Fleet.start(FleetSpec()) as source, Fleet.start(FleetSpec()) as target, tempfile.TemporaryDirectory() as run:
        started = time.monotonic()
        fill(source, args.keys, size)
        print(f"source: {args.keys} x {args.mb} MB written in {time.monotonic() - started:.1f}s", flush=True)
        user = "reproducer-sandbox-admin"
        env = {**os.environ, "SRC_PW": source._state.admin_password, "DST_PW": target._state.admin_password}
        urls = [
            f"valkey://{user}@127.0.0.1:{source.primary.port}?password_env=SRC_PW",
            f"valkey://{user}@127.0.0.1:{target.primary.port}?password_env=DST_PW",
        ]
        cli = [sys.executable, "-m", "reproducer.cli"]
        copy_s, copy_mb = peak_of([*cli, "copy", *urls, "--no-verify", "--run-dir", run], env)
        print(f"copy: {copy_s:.1f}s, peak RSS {copy_mb:.0f} MB", flush=True)
        verify_s, verify_mb = peak_of([*cli, "verify", *urls], env)
        print(f"verify: {verify_s:.1f}s, peak RSS {verify_mb:.0f} MB", flush=True)
    print(
        f"keys={args.keys} mb_per_key={args.mb} copy_peak_mb={copy_mb:.0f} verify_peak_mb={verify_mb:.0f} "
        f"copy_s={copy_s:.1f} verify_s={verify_s:.1f}"
    )


if __name__ == "__main__":
    main()
