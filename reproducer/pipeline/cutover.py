"""Cutover: wait until the follower is close, freeze writes on the OVH source, drain, verify, switch, restore.

The freeze switches every application user of the source to read-only through the OVH API (``PUT …/user/{id}``
with ``-@write`` added to its categories): OVH lets a user's ACL be changed through its API
(docs/reference/ovh-api.md#disabled-commands: users are managed through the API only), Valkey applies an ACL
change to the connections already open, and writers get a clear ``NOPERM``. The allow-list is not used: an
entry removed may not cut the connections already open, and the migration host often shares the
application's CIDR. The migration user (``reproducer-migration``, read-only anyway) is never frozen.

Every change is recorded in ``cutover.json`` of the run directory *before* it is made (the users' ACLs as they
were, the notifications setting as it was); :func:`restore_source` puts them back at the end, on failure, and
after a crash (``cutover RUN_DIR --resume`` or ``rollback``). Write downtime is measured from the freeze to
the moment the new connection settings are emitted.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reproducer.atomic import atomic_write
from reproducer.data.endpoint import Endpoint
from reproducer.data.topology import connect, discover
from reproducer.errors import DataError, InputError, ReproducerError
from reproducer.pipeline.files import STATE_HINT, read_state_file, save_state_file
from reproducer.pipeline.progress import Progress

if TYPE_CHECKING:  # the OVH client loads only for the commands that use it
    from reproducer.data.follow import FollowStats
    from reproducer.data.verify import VerifyReport
    from reproducer.pipeline.data import FollowOptions
    from reproducer.sources.ovh import OvhApiClient

CUTOVER_FILE = "cutover.json"
SETTINGS_FILE = "connection.json"
NOTIFY_PARAMETER = "redis_notify_keyspace_events"
FREEZE_RULE = "-@write"
USER_READY_TIMEOUT = 120.0
_CATEGORY = re.compile(r"[+-]@[a-z][a-z_-]{0,40}")
STEPS = ("prepared", "ready", "frozen", "drained", "verified", "switched", "restored")


@dataclass(frozen=True)
class CutoverOptions:
    """When the follower is close enough (``max_lag_ms`` for ``stable_for`` seconds) and how long to wait."""

    max_lag_ms: int = 1000
    stable_for: float = 1.0
    ready_timeout: float = 600.0
    drain_timeout: float = 30.0
    #: After the freeze, the follower must see no new event for this long (its listeners poll every 0.2 s).
    drain_quiet: float = 0.6


@dataclass
class CutoverState:
    """``cutover.json``: the step reached, and every change made on the source (to put back)."""

    path: Path
    step: str = "prepared"
    notifications: dict[str, Any] | None = None
    frozen: dict[str, dict[str, Any]] = field(default_factory=dict)
    times: dict[str, float] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> CutoverState:
        """The state a previous attempt wrote, checked (the file may have been damaged)."""
        raw = read_state_file(path, {"step": str, "frozen": dict, "times": dict})
        notes = raw.get("notifications")
        if raw["step"] not in STEPS or not (notes is None or (isinstance(notes, dict) and "previous" in notes)):
            raise InputError(f"{path} is not the state of a cutover", hint=STATE_HINT)
        if not all(_frozen_record(user) for user in raw["frozen"].values()):
            raise InputError(f"{path} is not the state of a cutover", hint=STATE_HINT)
        return cls(path, raw["step"], notes, raw["frozen"], raw["times"])

    def save(self) -> None:
        """Write ``cutover.json`` atomically (ACLs and a setting; never a password)."""
        state = {
            "format_version": "1.0",
            "step": self.step,
            "notifications": self.notifications,
            "frozen": self.frozen,
            "times": self.times,
        }
        save_state_file(self.path, state)

    def reach(self, step: str) -> None:
        """Record that ``step`` is reached, with its wall-clock time."""
        self.step, self.times[step] = step, time.time()
        self.save()


def _frozen_record(user: object) -> bool:
    """Whether ``user`` is a recorded ACL: a user name and ACL category rules (``+@read``, ``-@write``…) only."""
    if not (
        isinstance(user, dict) and isinstance(user.get("username"), str) and isinstance(user.get("categories"), list)
    ):
        return False
    return all(isinstance(rule, str) and _CATEGORY.fullmatch(rule) for rule in user["categories"])


class SourceSwitch:
    """The changes a cutover makes on the OVH source through its API (recorded in ``state`` first)."""

    def __init__(self, api: OvhApiClient, project: str, service: str, state: CutoverState) -> None:
        self._api, self.state = api, state
        self._path = f"/cloud/project/{project}/database/valkey/{service}"

    def enable_notifications(self) -> None:
        """Make sure the source notifies keyspace events (``K`` + ``A``), recording the value it had."""
        path = f"{self._path}/advancedConfiguration"
        previous = self._api.get(path).get(NOTIFY_PARAMETER)
        if self.state.notifications is None:
            self.state.notifications = {"previous": previous}
            self.state.save()
        if previous is None or not {"K", "A"} <= set(previous):
            self._api.put(path, **{NOTIFY_PARAMETER: "".join(sorted(set(previous or "") | {"K", "A"}))})

    def restore_notifications(self) -> None:
        """Put the notifications setting back to what it was (empty, Valkey's default, when it was unset)."""
        if self.state.notifications is None:
            return
        previous = self.state.notifications["previous"]
        path = f"{self._path}/advancedConfiguration"
        if self._api.get(path).get(NOTIFY_PARAMETER) != (previous or ""):
            self._api.put(path, **{NOTIFY_PARAMETER: previous or ""})
        self.state.notifications = None
        self.state.save()

    def freeze(self, keep: str) -> list[str]:
        """Switch every user but ``keep`` to read-only; each user's ACL is recorded before it changes."""
        names = []
        for user_id in self._api.get(f"{self._path}/user"):
            user = self._api.get(f"{self._path}/user/{user_id}")
            if user.get("username") == keep or FREEZE_RULE in user.get("categories", []):
                continue
            self.state.frozen[str(user_id)] = {"username": user["username"], "categories": user["categories"]}
            self.state.save()
            self._set_categories(str(user_id), user, [*user["categories"], FREEZE_RULE])
            names.append(str(user["username"]))
        return names

    def unfreeze(self) -> list[str]:
        """Put back the ACL of every user the freeze changed (a user deleted since is skipped)."""
        names = []
        for user_id, saved in list(self.state.frozen.items()):
            users = {str(u) for u in self._api.get(f"{self._path}/user")}
            if user_id in users:
                user = self._api.get(f"{self._path}/user/{user_id}")
                if user.get("username") != saved["username"]:
                    raise InputError(
                        f"{self.state.path} names user id {user_id} as {saved['username']!r}, but it is "
                        f"{user.get('username')!r} on the service: its ACL is left alone",
                        hint="check that cutover.json is yours; " + STATE_HINT,
                    )
                self._set_categories(user_id, user, list(saved["categories"]))
                names.append(str(saved["username"]))
            del self.state.frozen[user_id]
            self.state.save()
        return names

    def _set_categories(self, user_id: str, user: dict[str, Any], categories: list[str]) -> None:
        body = {k: user.get(k, []) for k in ("commands", "keys", "channels")}
        self._api.put(f"{self._path}/user/{user_id}", categories=categories, **body)
        self._wait_user(user_id)

    def _wait_user(self, user_id: str) -> None:
        """Wait until OVH reports the user READY again (its ACL applied on every node)."""
        from reproducer.sources.ovh import wait_ready

        hint = "wait for OVH to finish, then run 'cutover RUN_DIR --resume' to put the source back"
        wait_ready(self._api, f"{self._path}/user/{user_id}", USER_READY_TIMEOUT, hint, every=0.1)


class TargetNotifications:
    """``notify-keyspace-events`` on every primary of a (self-managed) target, for the rollback's follower.

    The value it had is recorded in ``state`` before it changes and put back by :meth:`restore`.
    """

    def __init__(self, target: Endpoint, state: CutoverState) -> None:
        self.target, self.state = target, state

    def enable(self) -> bool:
        """Switch ``K`` + ``A`` on; False when the target refuses CONFIG (a managed service): no follow then."""
        try:
            previous = self._values()
        except DataError:
            return False
        if self.state.notifications is None:
            self.state.notifications = {"previous": previous}
            self.state.save()
        for value in set(previous):
            if not {"K", "A"} <= set(value):
                self._set("".join(sorted(set(value) | {"K", "A"})))
        return True

    def restore(self) -> None:
        """Put the recorded value back on every primary (the first node's when they differed)."""
        if self.state.notifications is not None:
            previous = self.state.notifications["previous"]
            self._set(previous[0] if previous else "")
            self.state.notifications = None
            self.state.save()

    def _values(self) -> list[str]:
        values = []
        for node in discover(self.target).primaries:
            conn = connect(self.target, node)
            try:
                reply = conn.call("CONFIG", "GET", "notify-keyspace-events")
            finally:
                conn.close()
            values.append(reply[1].decode() if isinstance(reply, list) and isinstance(reply[1], bytes) else "")
        return values

    def _set(self, value: str) -> None:
        for node in discover(self.target).primaries:
            conn = connect(self.target, node)
            try:
                conn.call("CONFIG", "SET", "notify-keyspace-events", value)
            finally:
                conn.close()


def restore_source(switch: SourceSwitch, progress: Progress) -> None:
    """Unfreeze the users and restore the notifications setting, whatever step was reached."""
    errors: list[BaseException] = []
    for undo, what in ((switch.unfreeze, "unfrozen"), (switch.restore_notifications, None)):
        try:
            done = undo()
            if what and done:
                progress(f"cutover: {', '.join(done)} {what} (ACL as before)")
        except Exception as error:  # the other undo is still tried; the first error is raised after
            errors.append(error)
    if switch.state.notifications is None and not errors:
        progress("cutover: source notifications setting restored")
    if errors:
        raise errors[0]


class Controller:
    """Runs beside the follower: waits until it is ready, freezes the source, waits for the drain, stops it."""

    def __init__(
        self,
        options: CutoverOptions,
        follow: FollowOptions,
        freeze: Callable[[], None],
        state: CutoverState,
        event: Callable[..., None],
    ) -> None:
        self.options, self.follow, self._freeze, self.state, self._event = options, follow, freeze, state, event
        self.stats: FollowStats | None = None
        self.error: BaseException | None = None
        self.frozen_at: float | None = None
        self._thread = threading.Thread(target=self._guarded, name="reproducer-cutover", daemon=True)

    def observe(self, stats: FollowStats) -> None:
        """The follower's progress hook: keep its live statistics."""
        self.stats = stats

    def start(self) -> None:
        """Start waiting for the follower (in a thread)."""
        self._thread.start()

    def join(self) -> None:
        """Wait for the thread; raise what it raised."""
        self._thread.join()
        if self.error is not None:
            raise self.error

    def _guarded(self) -> None:
        try:
            self._run()
        except BaseException as error:
            self.error = error
        finally:
            self.follow.stop.set()

    def _run(self) -> None:
        self._wait(self.follow.following.is_set, float("inf"), "the bulk copy did not end")
        self._wait(self._stable, self.options.ready_timeout, "the follower's lag never stayed low enough")
        self.state.reach("ready")
        self._event("ready", **self._lag())
        self.frozen_at = time.monotonic()
        self._freeze()
        self.state.reach("frozen")
        self._wait(self._drained, self.options.drain_timeout, "the follower did not drain after the freeze")
        self.state.reach("drained")
        self._event("drained", **self._lag())

    def _lag(self) -> dict[str, Any]:
        stats = self.stats
        if stats is None:
            return {}
        return {"behind": stats.behind, "oldest_ms": stats.oldest_ms, "events_per_second": stats.events_per_second}

    def _stable(self) -> bool:
        stats, since = self.stats, getattr(self, "_low_since", None)
        if stats is None or stats.oldest_ms > self.options.max_lag_ms:
            self._low_since = None
            return False
        if since is None:
            self._low_since = since = time.monotonic()
            self._event("lag", **self._lag())
        return time.monotonic() - since >= self.options.stable_for

    def _drained(self) -> bool:
        stats = self.stats
        if stats is None:
            return False
        seen = (stats.events, stats.behind)
        if seen != getattr(self, "_last_seen", None) or stats.behind:
            self._last_seen, self._quiet_since = seen, time.monotonic()
            return False
        return time.monotonic() - self._quiet_since >= self.options.drain_quiet

    def _wait(self, ready: Callable[[], bool], timeout: float, failure: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.follow.stop.is_set():  # Ctrl-C, or the copy failed: no freeze after that
                raise DataError(f"cutover: stopped: {failure}", hint="the source was put back; run the cutover again")
            if time.monotonic() > deadline:
                raise DataError(f"cutover: {failure} within {timeout:.0f}s", hint="raise --max-lag, or retry later")
            time.sleep(0.05)


def connection_settings(target_url: str, downtime: float | None, frozen: list[str]) -> dict[str, Any]:
    """What the application's pipeline needs to switch: the target's URL and its parts (no password)."""
    from reproducer.data.endpoint import redact_url

    return {
        "format_version": "1.0",
        "target": {"url": redact_url(target_url)},
        "write_downtime_seconds": round(downtime, 3) if downtime is not None else None,
        "frozen_users": sorted(frozen),
    }


@dataclass(frozen=True)
class CutoverPlan:
    """One cutover: where its state goes, the target to switch to, the follow it drives, the user it keeps."""

    run_dir: Path
    target_url: str
    follow: FollowOptions
    options: CutoverOptions
    keep: str


class CutoverRun:
    """One migration's cutover: prepared before the copy, switched after the verification, always restored."""

    def __init__(self, api: OvhApiClient, where: tuple[str, str], plan: CutoverPlan, progress: Progress) -> None:
        plan.run_dir.mkdir(parents=True, exist_ok=True)
        path = plan.run_dir / CUTOVER_FILE
        self.state = CutoverState.load(path) if path.exists() else CutoverState(path)
        self.source = SourceSwitch(api, where[0], where[1], self.state)
        self.plan, self.progress = plan, progress
        self._shown = plan.follow.progress
        self.follow = replace(plan.follow, progress=self._observe)
        self.controller = Controller(plan.options, self.follow, self._freeze, self.state, self.event)
        self._frozen: list[str] = []

    def prepare(self) -> None:
        """Undo what an interrupted cutover left, switch notifications on (recorded), start the controller."""
        if self.state.frozen or self.state.notifications is not None:
            self.progress("cutover: putting back what an interrupted cutover left on the source")
            restore_source(self.source, self.progress)
        self.state.times = {}
        self.state.reach("prepared")
        self.source.enable_notifications()
        self.event("prepared", notifications_before=(self.state.notifications or {}).get("previous"))
        self.controller.start()

    def _observe(self, stats: FollowStats) -> None:
        self.controller.observe(stats)
        self.event("lag", behind=stats.behind, oldest_ms=stats.oldest_ms, events_per_second=stats.events_per_second)
        if self._shown is not None:
            self._shown(stats)

    def _freeze(self) -> None:
        self._frozen = self.source.freeze(self.plan.keep)
        self.progress(f"cutover: writes frozen on the source ({', '.join(self._frozen) or 'no user'} read-only)")

    def switch(self, report: VerifyReport) -> dict[str, Any] | None:
        """After the final verification: emit the new connection settings (or, on differences, switch nothing)."""
        if not report.ok:
            self.progress("cutover: the final verification found differences: not switching, source unfrozen")
            restore_source(self.source, self.progress)
            return None
        self.state.reach("verified")
        frozen_at = self.controller.frozen_at or time.monotonic()
        settings = connection_settings(self.plan.target_url, time.monotonic() - frozen_at, self._frozen)
        atomic_write(self.plan.run_dir / SETTINGS_FILE, json.dumps(settings, indent=2, sort_keys=True) + "\n")
        self.state.times["write_downtime_seconds"] = settings["write_downtime_seconds"]
        self.state.reach("switched")
        self.event("switched", **settings)
        return settings

    def finish(self) -> None:
        """Restore the notifications setting; the source stays read-only after a switch (``rollback`` undoes it)."""
        if self.state.step != "switched":
            restore_source(self.source, self.progress)
            return
        self.source.restore_notifications()
        self.progress("cutover: source notifications setting restored; source left read-only until 'rollback'")

    def abort(self, failure: BaseException) -> None:
        """After ``failure``: put the source back (unfrozen, notifications as they were)."""
        self.follow.stop.set()
        try:
            restore_source(self.source, self.progress)
        except ReproducerError as cleanup:
            if isinstance(failure, ReproducerError):
                failure.hint = f"{failure.hint}; also: {cleanup.message} ({cleanup.hint})".lstrip("; ")

    def event(self, kind: str, **fields: Any) -> None:
        """Append one cutover event to the run directory's ``events.jsonl``."""
        append_event(self.plan.run_dir, "cutover", kind, **fields)


def append_event(run_dir: Path, phase: str, kind: str, **fields: Any) -> None:
    """Append one event line to ``run_dir/events.jsonl``."""
    line = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "phase": phase, "event": kind}
    with (run_dir / "events.jsonl").open("a", encoding="utf-8") as events:
        events.write(json.dumps({**line, **fields}, sort_keys=True) + "\n")
