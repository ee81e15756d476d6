"""``run``: what the run-level hooks get — one command over the whole fleet, seen from the deployer's machine."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from fapistrano.errors import CommandFailed, CommandKilled, FapError
from fapistrano.masking import Masker
from fapistrano.migrations import Ledger
from fapistrano.remote import LocalProcesses, Output, Reading, settle
from fapistrano.settings import Settings
from fapistrano.ui import Event, EventKind, Reporter, line_reader


class RunOutcome(str, Enum):
    """How a run ended, in ``run.outcome`` (a string: ``run.outcome == "ok"`` works)."""

    #: Done on every selected host.
    OK = "ok"
    #: It failed (a host, a command, a plugin, an interrupt).
    FAILED = "failed"
    #: Done, except on hosts dropped (or unhealthy) within ``--max-fail``.
    PARTIAL = "partial"
    #: It failed at or after the switch (or its health check failed), and the hosts that had switched were switched back.
    SWITCHED_BACK = "switched back"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class RunTarget:
    """One stage/role of the run: its hosts and its settings, resolved (for its first host)."""

    stage: str
    role: str
    hosts: tuple[str, ...]
    config: Mapping[str, Any]

    def __post_init__(self) -> None:
        if not isinstance(self.config, Settings):  # a name nothing declares is an error saying so, as in ctx.config
            object.__setattr__(self, "config", Settings(self.config))


class RunState(dict[str, Any]):
    """``run.state``: the dict a plugin keeps its run-wide state in, and the hosts' reports to the run (``ctx.report``).

    The reports live beside the dict, not in it: a host's thread adds to them
    under a lock while the other hosts' threads do the same.
    """

    def __init__(self) -> None:
        super().__init__()
        self._reports: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        #: The run's schema changes (``migrates: true`` steps, ``ctx.mark_migrated``) and a rollback's plan for its
        #: ``migrates_back`` steps: the core's, read by the hosts' threads (see :mod:`fapistrano.migrations`).
        self.migrations = Ledger()

    def report(self, host: str, key: str, value: Any) -> None:
        """Record ``value`` under ``key`` for ``host`` (thread-safe)."""
        with self._lock:
            self._reports.setdefault(host, {})[key] = value

    def reports(self) -> dict[str, dict[str, Any]]:
        """A copy of every host's reports, by host."""
        with self._lock:
            return {host: dict(data) for host, data in self._reports.items()}


class Run:
    """One ``fap deploy``, ``fap rollback`` or ``fap restart``, as the run-level hooks see it (and ``fap check``, as
    ``fap_check_run`` sees it).

    Every attribute below may be read by any plugin; :attr:`state` is the one
    a plugin writes. ``log``, ``warn`` and ``local`` report and run commands
    on the deployer's machine; ``mask`` hides the run's secrets in what a
    plugin sends elsewhere.
    """

    def __init__(self, command: str, hosts: tuple[str, ...], targets: tuple[RunTarget, ...], config: Mapping[str, Any], *,
                 dry_run: bool = False, reporter: Reporter | None = None, masker: Masker | None = None,
                 project_dir: str | None = None, processes: LocalProcesses | None = None) -> None:
        #: ``"deploy"``, ``"rollback"`` or ``"restart"``; ``"check"`` in ``fap_check_run``.
        self.command = command
        #: Every selected host's name, in the order of deploy.yml.
        self.hosts = hosts
        #: A :class:`RunTarget` per stage/role: ``stage``, ``role``, ``hosts``, ``config``.
        self.targets = targets
        #: The run's top-level settings: defaults, deploy.yml's top level and
        #: ``--key value`` overrides, interpolated (a per-host reference such
        #: as ``%(host)s`` is left as written); what a stage/role block sets is
        #: in ``targets[i].config``. Reading a name no plugin declares raises
        #: an error saying so.
        self.config: Mapping[str, Any] = config if isinstance(config, Settings) else Settings(config)
        #: ``True`` under ``--dry-run``: nothing is changed on any host.
        self.dry_run = dry_run
        #: deploy.yml's directory (absolute), where a build runs and relative
        #: local paths are resolved; ``None`` when not known.
        self.project_dir = project_dir
        #: This run's id: every host's history record of the run carries it
        #: (``20261205T071300Z-3f9a1c``: when it started, UTC, and a random part).
        self.id = new_run_id()
        #: When the run started (UTC, ``2026-12-05T07:13:00.123Z``).
        self.started = utc_now()
        #: The stage a ``fap promote`` took the revision from (recorded in the
        #: history); ``None`` for any other run.
        self.promoted_from: str | None = None
        #: The release the run works on (the new one in a deploy, the one
        #: returned to in a rollback, the current one in a restart); ``None``
        #: when the run stopped before one was chosen, and in ``fap check``.
        self.release: str | None = None
        #: In ``fap_run_finished``: whether every host is done. ``False`` in ``fap_run_starting``.
        self.ok = False
        #: In ``fap_run_finished``: how the run ended, a :class:`RunOutcome`
        #: (``"ok"``, ``"failed"``, ``"partial"``, ``"switched back"``);
        #: ``None`` before.
        self.outcome: RunOutcome | None = None
        #: In ``fap_run_finished``, when the run failed: the error lines fap
        #: prints (one string, lines joined by newlines, as raised: mask it
        #: before sending it elsewhere); ``None`` when ok, and before.
        self.error: str | None = None
        #: The revision the release ``current`` pointed to when the run
        #: started holds, as the plugin that put the code there answers
        #: ``fap_release_revision`` (asked on the run's first host); ``None``
        #: when no plugin knows.
        self.previous_revision: str | None = None
        #: The revision :attr:`release` holds once its code is there (set for
        #: ``fap_run_finished``); ``None`` when no plugin knows.
        self.revision: str | None = None
        #: A dict a plugin keeps its own state in, from ``fap_run_starting``
        #: to ``fap_run_finished``; prefix keys with the plugin's name. The
        #: phase hooks read it as ``ctx.run_state``: what ``fap_run_starting``
        #: prepared for every host (an artifact built once). The phases report
        #: back with ``ctx.report`` (:attr:`reports`), not by writing here.
        self.state: dict[str, Any] = RunState()
        self._reporter = reporter
        self._mask = masker or Masker()
        # Where local() leaves what it runs: the runner kills them when the run is stopped.
        self._processes = processes or LocalProcesses()
        #: The run-level hook being called (``"fap_run_starting"``,
        #: ``"fap_run_finished"`` or ``"fap_check_run"``): one function may
        #: implement several (``specname``); where its lines show.
        self.hook = "fap_run_starting"

    @property
    def reports(self) -> dict[str, dict[str, Any]]:
        """What each host's phases reported with :meth:`ctx.report(key, value) <fapistrano.context.Context.report>`.

        ``{host: {key: value}}``, a copy made when read: read it in
        ``fap_run_finished`` (it is empty in ``fap_run_starting``). A host
        that reported nothing is not in it; a host in two stage/roles of the
        run reports into one dict.
        """
        state = self.state
        return state.reports() if isinstance(state, RunState) else {}

    def __repr__(self) -> str:
        return f"<Run {self.command} release={self.release} hosts={len(self.hosts)}>"

    def mask(self, text: str) -> str:
        """``text`` with every secret of the run replaced by ``***``, in every spelling fap masks.

        ``run.error`` holds the errors as raised (a plugin's message may quote a
        secret); fap masks them where it prints them. Mask what you send elsewhere.
        """
        return self._mask(str(text))

    def log(self, message: str) -> None:
        """Show ``message`` in the view, once for the run (masked)."""
        self._emit("log", self._mask(str(message)))

    def warn(self, message: str) -> None:
        """Show ``message`` as a warning, once for the run (masked)."""
        self._emit("warning", self._mask(str(message)))

    def local(self, command: str, *, cwd: str | None = None, env: Mapping[str, str] | None = None,
              readonly: bool = False) -> str:
        """Run shell text ``command`` on the deployer's machine; stream its output into the view; return its stdout.

        Like :meth:`Context.run <fapistrano.context.Context.run>`: under
        ``--dry-run`` the command is shown and not run (it returns ``""``),
        unless ``readonly=True`` says it changes nothing (a check, a
        lookup). Its lines are masked like everything fap prints. A non-zero
        exit raises :class:`fapistrano.CommandFailed` (``host`` is
        ``"local"``) with the command's status and the tails of its stdout
        and stderr.
        """
        shown = self._mask(command if not cwd else f"(cd {cwd}) {command}")
        if self.dry_run and not readonly:
            self._emit("command", shown, data={"dry_run": True})
            return ""
        self._emit("command", shown)
        environment = {**os.environ, **{k: str(v) for k, v in (env or {}).items()}}
        try:
            # A session of its own: Ctrl-C reaches fap, which gives the command its grace period, then kills it.
            process = subprocess.Popen(["sh", "-c", command], cwd=cwd, env=environment, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        except OSError as error:
            raise FapError(f"local: cannot run {shown}: {error.strerror or error}") from None
        self._processes.started(process)
        # Kept as a command's output on a host is: its tail, in bounded memory, and no event per line nobody reads.
        reader = line_reader(self._reporter, self._on_line)
        out, err = Output("stdout", reader), Output("stderr", reader)
        status = settle(process, (Reading(process.stdout, out), Reading(process.stderr, err)))
        if self._processes.finished(process):
            raise CommandKilled(f"local: command killed (signal {-status if status < 0 else signal.SIGKILL.value}): {shown}")
        for output in (out, err):
            if output.failure is not None:
                raise output.failure
        if status != 0:
            raise CommandFailed("local", shown, status, self._mask(err.text()), self._mask(out.text()))
        return out.text().rstrip("\n")

    def _on_line(self, stream: str, line: str) -> None:
        self._emit("output", self._mask(line), data={"stream": stream})

    def _emit(self, kind: EventKind, message: str, **fields: Any) -> None:
        if self._reporter is not None:
            self._reporter.handle(Event(kind=kind, phase=self.hook.removeprefix("fap_"), message=message, **fields))


def new_run_id() -> str:
    """A run id: the UTC time it starts (so ids sort by time) and 6 random hex digits."""
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(3)}"


def utc_now() -> str:
    """The time now, UTC, to the millisecond (two runs in one second still sort): ``2026-12-05T07:13:00.123Z``."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


__all__ = ["Run", "RunOutcome", "RunState", "RunTarget"]
