"""Every host's one SSH session in a run: opened (and probed, and locked) all at once, closed (and unlocked) on every exit path.

The probe is one round trip that reads ``current``, the releases, the lock
and the freeze, and takes the run's lock when asked. The lock file names its
holder (:func:`lock_owner_text`) and carries a token of this run: a run
releases a lock only while it still holds it (``fap unlock`` releases anyone's).
"""

from __future__ import annotations

import os
import pwd
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from fapistrano import layout
from fapistrano.errors import CommandFailed
from fapistrano.hosts import Member, key
from fapistrano.masking import Masker
from fapistrano.plugins import describe
from fapistrano.remote import Host

#: Seconds a second signal waits for the locks to be released before fap exits.
UNLOCK_ON_EXIT_WAIT = 10.0

#: Runs ``work`` for every member in parallel and returns the failures by host key (the engine's ``on_each``).
OnEach = Callable[[Iterable[Member], Callable[[Member], Any]], dict[str, BaseException]]
#: Reports one event (the engine's ``emit``).
Emit = Callable[..., None]


def lock_owner_text(command: str) -> str:
    """What the lock file says: who, where, which process, what, since when."""
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or account_name()
    return f"{user}@{socket.gethostname()} pid {os.getpid()} '{command}' since {time.strftime('%Y-%m-%d %H:%M:%S %z')}"


def account_name() -> str:
    """This process's account name (cron and ``env -i`` leave ``$USER`` unset); its uid when it has none."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid with no passwd entry (some containers)
        return str(os.getuid())


class Sessions:
    """The run's connections: open, probe, lock; unlock, close; kill what runs on them."""

    def __init__(self, on_each: OnEach, emit: Emit, masker: Masker, lock_text: str = "") -> None:
        self._on_each = on_each
        self._emit = emit
        self._masker = masker
        self.lock_text = lock_text
        # This run's own mark in the locks it takes: it releases a lock only while the lock still holds it.
        # ``None`` releases whoever's lock (``fap unlock``).
        self.lock_token: str | None = secrets.token_hex(16)
        self._connections: list[Host] = []
        self._locked: list[Member] = []  # every member whose lock this run took: a second signal still releases them
        #: Members whose last phases' commands, sent with the unlock (``ctx.run_later``), failed: the run failed there.
        self.failed_at_close: list[Member] = []

    def connect(self, members: Sequence[Member], probe: bool = False, lock: bool = False) -> dict[str, BaseException]:
        """Open every member's connection, all at once.

        With ``probe``, each host is probed (and locked, with ``lock``) as
        soon as it answers, not after the slowest host has answered.
        """
        self._connections.extend(m.connection for m in members)

        def work(member: Member) -> None:
            member.connection.connect()
            if probe:
                self.probe(member, lock)

        return self._on_each(members, work)

    def probe(self, member: Member, lock: bool) -> None:
        """One round trip: take the lock (when asked), read current and releases."""
        config = member.target.config
        script = layout.probe_script(
            config["path"],
            config["current_path"],
            config["releases_path"],
            self.lock_text if lock else None,
            self.lock_token or "",
        )
        # A ``command`` event like every other round trip, so that --log-json counts it.
        self._emit("command", "(probe) reading releases and lock", host=member.name, phase="probe")
        result = member.connection.run(script)
        if result.exit_code != 0:
            raise CommandFailed(member.name, "(probe) reading releases and lock", result.exit_code, self._masker(result.stderr))
        member.state = layout.parse_probe(result.stdout)
        member.locked = member.state.locked_by_us
        if member.locked:
            self._locked.append(member)

    def close(self, members: Sequence[Member], before_unlock: Mapping[str, str] | None = None) -> None:
        """Release the locks this run holds and disconnect: on every exit path, each host on its own.

        ``before_unlock``: shell to run under the lock just before it is released, by host key
        (the history record, :func:`fapistrano.history.closing_scripts`); it prints
        ``fap-history-not-written`` when it failed.
        """

        def work(member: Member) -> None:
            if not member.locked:
                member.connection.close()
                self._failed_at_close(member)
                return
            # The unlock goes with the end of the session, with what the last phases sent later and the history
            # record: one round trip.
            self._emit("command", "(unlock) removing the lock", host=member.name, phase="unlock")
            last = layout.unlock_script(member.target.config["path"], self.lock_token)
            recording = (before_unlock or {}).get(key(member))
            result = member.connection.close(last=f"{recording}\n{last}" if recording else last)
            self._failed_at_close(member)
            if recording and result is not None and "fap-history-not-written" in result.stdout.splitlines():
                self._emit("warning", f"could not write the history record in {member.target.config['path']}",
                           host=member.name, phase="unlock")
            if result is not None and result.exit_code == 0:
                member.locked = False
            elif result is not None and result.exit_code == layout.LOCK_NOT_OURS:
                member.locked = False
                self._emit("warning", "the lock is no longer this run's (removed by 'fap unlock';"
                                      f" now held by {result.stderr.strip() or 'unknown'}): left in place",
                           host=member.name, phase="unlock")
            elif result is not None:
                self._emit("error", f"could not release the lock: {result.stderr.strip()}", host=member.name)

        by_key = {key(m): m for m in members}
        for name, error in self._on_each(members, work).items():
            host = by_key[name].name
            self._emit("error", f"could not release the lock (run 'fap unlock' when the host is back): {describe(error, host)}",
                       host=host, phase="unlock")

    def _failed_at_close(self, member: Member) -> None:
        """A command of the last phases that went with the end of the session failed: that host's run failed there."""
        error, member.connection.failed_at_close = member.connection.failed_at_close, None
        if error is None:
            return
        phase = getattr(error, "phase", None) or "finishing"
        self._emit("error", f"{phase}: {describe(error, member.name)}", host=member.name, phase=phase)
        if member.failed is None:
            member.failed, member.failed_phase = error, phase
        self.failed_at_close.append(member)

    def release_locks_now(self) -> None:
        """On the way out after a second signal: release this run's locks, each host at once, bounded in time."""
        held = [m for m in self._locked if m.locked]
        token = self.lock_token
        if not held or token is None:
            return

        def release(member: Member) -> None:
            try:
                member.connection.run(layout.unlock_script(member.target.config["path"], token))
            except Exception:  # noqa: BLE001 - leaving now: a host that cannot be reached keeps its lock (fap unlock)
                pass

        workers = [threading.Thread(target=release, args=(m,), daemon=True) for m in held]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + UNLOCK_ON_EXIT_WAIT
        for worker in workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))

    def cancel_running(self) -> None:
        """Kill the commands still running on every host at once (a stop's grace period is over)."""
        killers = [threading.Thread(target=connection.cancel, daemon=True) for connection in list(self._connections)]
        for killer in killers:
            killer.start()
        for killer in killers:
            killer.join(timeout=10)
