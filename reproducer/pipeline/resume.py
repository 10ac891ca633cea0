"""The copy's options kept in its run directory (``data/options.json``), so ``--resume`` copies as the first run did.

A copy (``copy``, or the copy phase of ``migrate``) saves its options when it starts. On ``--resume``:

- an option not given again takes the saved value (the rate limits, batch sizes, conflict policy, replica reads);
- an option given again wins, is saved, and a note says what it replaced;
- the scope (``--db``, ``--match``) cannot change: the checkpoint's cursors only hold for the keys first chosen,
  so a different one is refused.

``given`` names the options the user gave (``CopyOptions`` field names). A caller that cannot tell (``None``)
treats a value other than the default as given.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from reproducer.data.copy import CopyOptions
from reproducer.errors import InputError
from reproducer.pipeline.files import read_state_file, save_state_file

OPTIONS_FILE = Path("data") / "options.json"
FORMAT_VERSION = 1
#: What to copy: fixed for the life of a run directory.
SCOPE = ("match", "dbs")
#: How to copy: the saved value unless given again.
TUNING = (
    "batch",
    "conflict",
    "from_replica",
    "max_keys_per_second",
    "max_bytes_per_second",
    "max_batch_bytes",
    "read",
)
_FLAGS = {
    "match": "--match",
    "dbs": "--db",
    "batch": "--batch",
    "conflict": "--replace/--skip-existing",
    "from_replica": "--from-replica",
    "max_keys_per_second": "--max-keys-per-second",
    "max_bytes_per_second": "--max-mb-per-second",
    "max_batch_bytes": "--max-batch-mb",
    "read": "--read",
}
_HINT = "resume with the same --db and --match, or start a new copy with another --run-dir"
_DEFAULTS = {f.name: f.default for f in fields(CopyOptions)}


def settle_copy_options(
    options: CopyOptions, run_dir: Path, given: frozenset[str] | None = None
) -> tuple[CopyOptions, list[str]]:
    """The options to copy with, and notes on what a resume took from, or changed in, the saved ones.

    Nothing is written: :func:`save_copy_options` keeps them once the copy has a checkpoint to resume.
    """
    path = run_dir / OPTIONS_FILE
    if not options.resume or not path.exists():  # a run directory of an older version has none
        return options, []
    saved = _load(path)
    chosen = _given(options, given)
    for name in SCOPE:
        if name in chosen and getattr(options, name) != saved[name]:
            raise InputError(
                f"{_FLAGS[name]} differs from the interrupted copy's ({_show(saved[name])}, now "
                f"{_show(getattr(options, name))}): its checkpoint only holds for the keys it first chose",
                hint=_HINT,
            )
    notes = [
        f"resume: {_FLAGS[name]} {_show(getattr(options, name))} replaces the saved {_show(saved[name])}"
        for name in TUNING
        if name in chosen and getattr(options, name) != saved[name]
    ]
    kept = {name: saved[name] for name in (*SCOPE, *TUNING) if name not in chosen}
    return replace(options, **kept), notes


def save_copy_options(run_dir: Path, options: CopyOptions) -> None:
    """Keep ``options`` in ``run_dir`` for a later ``--resume`` (atomically)."""
    _save(run_dir / OPTIONS_FILE, options)


def _given(options: CopyOptions, given: frozenset[str] | None) -> set[str]:
    if given is not None:
        return set(given)
    return {name for name in (*SCOPE, *TUNING) if getattr(options, name) != _DEFAULTS[name]}


def _save(path: Path, options: CopyOptions) -> None:
    record: dict[str, Any] = {name: getattr(options, name) for name in (*SCOPE, *TUNING)}
    record["dbs"] = list(options.dbs) if options.dbs is not None else None
    path.parent.mkdir(parents=True, exist_ok=True)
    save_state_file(path, {"format_version": FORMAT_VERSION, "options": record})


def _load(path: Path) -> dict[str, Any]:
    """The saved options, each checked (the run directory may have been edited): InputError when one is bad."""
    state = read_state_file(path, {"format_version": int, "options": dict})
    record = {"read": "auto", **state["options"]}  # saved before --read existed: the default
    checks: dict[str, Callable[[Any], bool]] = {
        "match": lambda v: v is None or (isinstance(v, str) and len(v) <= 4096),
        "dbs": lambda v: v is None or (isinstance(v, list) and all(_int(d, 0, 1_000_000) for d in v)),
        "batch": lambda v: _int(v, 1, 100_000),
        "conflict": lambda v: v in ("refuse", "replace", "skip"),
        "from_replica": lambda v: isinstance(v, bool),
        "max_keys_per_second": _rate,
        "max_bytes_per_second": _rate,
        "max_batch_bytes": lambda v: _int(v, 1, 1 << 40),
        "read": lambda v: v in ("auto", "sync", "scan"),
    }
    bad = sorted(name for name, check in checks.items() if name not in record or not check(record[name]))
    if state["format_version"] != FORMAT_VERSION or bad:
        raise InputError(
            f"{path} is not a copy's saved options (bad: {', '.join(bad) or 'format_version'})",
            hint="start a new copy with another --run-dir",
        )
    return {**record, "dbs": tuple(record["dbs"]) if record["dbs"] is not None else None}


def _int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _rate(value: Any) -> bool:
    if value is None:
        return True
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value)
