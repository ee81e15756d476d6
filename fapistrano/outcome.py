"""How a run ended, decided once from what became of its hosts; the exit code follows from it.

The engine writes each host's fate on its :class:`~fapistrano.hosts.Member`
(failed, dropped, unhealthy, reverted, switched). :func:`decide` reads them
once, at the end, into an :class:`Outcome`: the run's
:class:`~fapistrano.run.RunOutcome` (what ``fap_run_finished`` gets), the
error lines, where ``current`` is. :attr:`Outcome.exit_code` is a function of
the outcome and of the cause of a failure, never the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fapistrano.errors import ExitCode, HealthCheckFailed, Interrupted
from fapistrano.flows import Flow
from fapistrano.hosts import Member
from fapistrano.plugins import PluginFailure, describe
from fapistrano.reporting import group_errors
from fapistrano.run import RunOutcome
from fapistrano.stopping import Stop


@dataclass
class Outcome:
    """How a command ended: the run's outcome, one line per failure, the release, where ``current`` is."""

    result: RunOutcome
    errors: list[str]
    release: str | None = None
    #: Hosts whose ``current`` this run moved and left moved (a failure after the switch leaves them so).
    moved: list[str] = field(default_factory=list)
    #: After a failure or a stop: where ``current`` is ("nothing changed: …" or "current now points to …").
    where: str = ""
    #: Why a run that is not ok ended so, as an :class:`~fapistrano.errors.ExitCode`: a failure, bad input,
    #: a freeze, a failed health check, a signal (or the ``exit_code`` of the error a plugin raised).
    cause: int = ExitCode.FAILED

    @property
    def ok(self) -> bool:
        """Done on every selected host."""
        return self.result is RunOutcome.OK

    @property
    def exit_code(self) -> int:
        """fap's exit status: it follows from :attr:`result` (and, for a failure, from :attr:`cause`)."""
        if self.result is RunOutcome.OK:
            return ExitCode.OK
        if self.result is RunOutcome.PARTIAL:
            return ExitCode.PARTIAL
        return self.cause


def refused(errors: list[str], cause: int = ExitCode.FAILED, release: str | None = None) -> Outcome:
    """A run that stopped before any host changed (a host that did not answer, a lock, a freeze, a plugin's refusal)."""
    return Outcome(RunOutcome.FAILED, errors, release, cause=cause)


def failed(members: Sequence[Member], errors: list[str], cause: int = ExitCode.FAILED, release: str | None = None,
           where: str = "") -> Outcome:
    """A run that failed (or was stopped): switched back when every host it had switched went back."""
    moved = [m.name for m in members if m.current_moved]
    switched_back = cause == ExitCode.SWITCHED_BACK or (any(m.status == "reverted" for m in members) and not moved)
    return Outcome(RunOutcome.SWITCHED_BACK if switched_back else RunOutcome.FAILED, errors, release, moved, where, cause)


def decide(flow: Flow, members: Sequence[Member], ok: bool, release: str | None, stop: Stop) -> Outcome:
    """The outcome of a run whose phases ran (or began): from each host's fate, once."""
    errors = group_errors([(m.name, f"{m.failed_phase or 'connecting'}: {describe(m.failed, m.name)}")
                           for m in members if m.failed is not None and not isinstance(m.failed, Interrupted)])
    moved = [m.name for m in members if m.current_moved]
    if stop.requested.is_set():
        return failed(members, [*errors, stopped_line(members, stop)], stop.exit_code, release,
                      where_current_is(flow, members, release))
    dropped = [m for m in members if m.status in ("dropped", "unhealthy")]
    if ok and not dropped:
        return Outcome(RunOutcome.OK, [], release, moved)
    if all(m.failed is None or m.status == "dropped" for m in members) and dropped:
        errors += [f"{m.name}: failed its health check, left on {release}: {m.health.output}"
                   for m in members if m.status == "unhealthy" and m.health is not None]
        if any(m.failed is None and not m.status for m in members):
            return Outcome(RunOutcome.PARTIAL, errors, release, moved)
        # Every host dropped or unhealthy (--max-fail 100%): done nowhere, a failure.
        return failed(members, errors, ExitCode.FAILED, release, where_current_is(flow, members, release))
    switched_back = any(m.status == "reverted" for m in members)
    health_failed = flow.creates_release and switched_back and any(isinstance(m.failed, HealthCheckFailed) for m in members)
    return failed(members, errors, ExitCode.SWITCHED_BACK if health_failed else ExitCode.FAILED, release,
                  where_current_is(flow, members, release))


def stopped_line(members: Sequence[Member], stop: Stop) -> str:
    """``interrupted in updating while git was running``: the stop, where it caught the run, and whose command it ended."""
    stopped = "terminated (SIGTERM)" if stop.exit_code is ExitCode.TERMINATED else "interrupted"
    phases = sorted({m.failed_phase for m in members if m.failed_phase})
    where = " and ".join(p if p.startswith("before ") else f"in {p}" for p in phases) or "before any phase"
    # The plugin whose command was stopped: the last line names it, not only the phase.
    running = sorted({m.failed.__cause__.plugin for m in members
                      if isinstance(m.failed, Interrupted) and isinstance(m.failed.__cause__, PluginFailure)})
    if running:
        where += f" while {', '.join(running)} was running"
    return f"{stopped} {where}"


def where_current_is(flow: Flow, members: Sequence[Member], release: str | None) -> str:
    """After a failed or stopped run: which hosts it left on the new ``current``, or that nothing changed."""
    moved = [m.name for m in members if m.current_moved]
    if flow.publish_phase is None:
        return "current is unchanged on every host"  # restart: no switch, but its hooks may have acted
    if not moved:
        left = [m.name for m in members if m.release_left]
        if left and release:
            # Marked unfinished still: the next run that takes the lock removes it.
            return (f"nothing changed: current is unchanged on every host; the new release {release} is left on"
                    f" {', '.join(left)}, marked unfinished (the next deploy removes it once it can)")
        removed = "the new release was removed, " if flow.creates_release and release else ""
        return f"nothing changed: {removed}current is unchanged on every host"
    hosts = "every host" if len(moved) == len(members) else ", ".join(moved)
    kept = " (kept)" if flow.creates_release else ""
    return f"current now points to {release}{kept} on {hosts}"
