"""The engine: runs a flow's phases over many hosts in lockstep, and says what became of each host.

Every host finishes a phase before any host starts the next. A failure before
publishing stops the run on every host: ``fap_deploy_failed`` runs, the new
release is removed everywhere, ``current`` is untouched. A failure while
publishing (or a signal while publishing) switches already-switched hosts
back; after publishing the new release is kept and the outcome says so. The
lock is released on every exit path, Ctrl-C and SIGTERM included.

The engine knows phases, barriers, hosts, outcomes and signals, and nothing of
any built-in plugin or command. The sessions are :mod:`fapistrano.sessions`',
the stop :mod:`fapistrano.stopping`'s, the failure path
:mod:`fapistrano.recovery`'s, the run's end :mod:`fapistrano.outcome`'s; the
health check is a hook (``fap_health_check``).
"""

from __future__ import annotations

import dataclasses
import signal
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Protocol

from fapistrano import flows
from fapistrano.config import target_for_host
from fapistrano.context import Context
from fapistrano.errors import CommandKilled, Interrupted, Stopped, Terminated
from fapistrano.flows import Flow, FlowName
from fapistrano.hosts import Member, key
from fapistrano.masking import Masker
from fapistrano.plugins import Plugins, describe, unwrapped
from fapistrano.recovery import Recovery
from fapistrano.remote import LocalProcesses
from fapistrano.reporting import StepNaming
from fapistrano.sessions import Sessions
from fapistrano.stopping import Stop
from fapistrano.throttle import Throttles
from fapistrano.ui import Event, EventKind, Reporter


class PhaseBarrier(Protocol):
    """Work of the run as a whole at a phase's edges (the ``local:`` steps of ``hooks:``): see :meth:`Runner.run_flow`."""

    def before(self, phase: str, members: Sequence[Member]) -> None:
        """Before any host of ``members`` starts ``phase``."""

    def after(self, phase: str, members: Sequence[Member]) -> None:
        """After every host of ``members`` finished ``phase`` without failing."""


class Runner:
    """Drives one command over its members; owns the thread pool, the sessions and the stop."""

    def __init__(
        self,
        plugins: Plugins,
        reporter: Reporter,
        masker: Masker,
        *,
        dry_run: bool = False,
        max_parallel: int = 20,
        lock_text: str = "",
        project_dir: str | None = None,
    ) -> None:
        self.plugins = plugins
        self.project_dir = project_dir  # deploy.yml's directory, for ctx.project_dir
        self.reporter = reporter
        self.masker = masker
        self.dry_run = dry_run
        self.max_parallel = max(1, max_parallel)
        self._pool = ThreadPoolExecutor(max_workers=self.max_parallel, thread_name_prefix="fap-host")
        #: The commands the run starts on this machine (``run.local``): a stop kills them as it kills the hosts'.
        self.local_processes = LocalProcesses()
        self.throttles = Throttles()  # ``parallel: N`` and ctx.throttle: one per run, shared by every host
        self.sessions = Sessions(self.on_each, self.emit, masker, lock_text)
        self.stop = Stop(lambda message: self.emit("error", message), self.cancel_running, self.sessions.release_locks_now)
        #: Set by the first SIGINT/SIGTERM: every host reads it (``ctx.stopping``).
        self.stopping = self.stop.requested
        self.recovery = Recovery(self)

    @property
    def stopped_by(self) -> signal.Signals | None:
        """The signal that stopped the run, once one did."""
        return self.stop.signal

    def emit(self, kind: EventKind, message: str = "", **fields: Any) -> None:
        self.reporter.handle(Event(kind=kind, message=self.masker(message), **fields))

    def on_each(self, members: Iterable[Member], work: Callable[[Member], Any]) -> dict[str, BaseException]:
        """Run ``work`` for every member in parallel; wait for all; return failures by host key."""
        members = list(members)
        futures: dict[Future[Any], Member] = {self._pool.submit(work, m): m for m in members}
        failures: dict[str, BaseException] = {}
        pending = set(futures)
        while pending:
            try:
                _done, pending = wait(pending, timeout=0.5)
            except KeyboardInterrupt as stop:
                # Outside execute() (fap once, unlock) the signal arrives as an exception: same handling.
                self.stop.interrupt(signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT)
                continue
        for future, member in futures.items():
            error = future.exception()
            if error is not None:
                failures[key(member)] = error
        return failures

    def connect(self, members: Sequence[Member], probe: bool = False, lock: bool = False) -> dict[str, BaseException]:
        """Open every member's connection, all at once (see :meth:`fapistrano.sessions.Sessions.connect`)."""
        return self.sessions.connect(members, probe=probe, lock=lock)

    def close(self, members: Sequence[Member], before_unlock: Mapping[str, str] | None = None) -> None:
        """Release the locks this run holds and disconnect, each host on its own; the run's threads end.

        ``before_unlock``: shell run under each host's lock just before it goes (see :meth:`fapistrano.sessions.Sessions.close`).
        """
        self.stop.stop_cancelling()
        self.sessions.close(members, before_unlock)
        self._pool.shutdown(wait=True)

    def cancel_running(self) -> None:
        """After the grace period of a Ctrl-C (at once after SIGTERM): kill the commands still running, on every host at once."""
        self.local_processes.kill()
        self.sessions.cancel_running()

    def make_contexts(self, members: Sequence[Member], release_of: Callable[[Member], tuple[str | None, str | None]],
                      flow: Flow | FlowName) -> None:
        """Resolve every member's settings for its release; build its ``ctx``: the one place a ``ctx`` is made.

        ``flow`` is a deploy flow, or the name of a command's flow (check, once, releases) that runs no phases.
        """
        name = flow.name if isinstance(flow, Flow) else flow
        reporter = StepNaming(self.reporter, self.plugins.attribution)
        for member in members:
            release, rollback_from = release_of(member)
            target = dataclasses.replace(target_for_host(member.settings, member.spec, release), steps=member.steps)
            member.target = target
            ctx = Context(
                target,
                member.connection,
                reporter,
                dry_run=self.dry_run,
                masker=self.masker,
                rollback_from=rollback_from,
                previous_release=member.state.current if member.state else None,
                flow=name,
                stopping=self.stopping,
                host_state=member.state,
                locked=member.locked,
                revision_hook=self.plugins.caller("fap_release_revision", target.plugins),
                project_dir=self.project_dir,
                throttles=self.throttles,
            )
            member.ctx = ctx

    # -- phases -----------------------------------------------------------

    def run_phase(self, flow: Flow, phase: str, members: Sequence[Member], send_waiting: bool = False) -> dict[str, BaseException]:
        """Run ``phase``'s hooks on every member; with ``send_waiting`` each host's phase ends once the commands
        plugins sent later (``ctx.run_later``) have run there too."""
        hook_name = flow.hook_name(phase)

        def work(member: Member) -> None:
            ctx = member.ctx
            assert ctx is not None
            ctx.phase = phase
            started = time.monotonic()
            if self.stopping.is_set():
                raise Interrupted("interrupted before this phase started")
            self.reporter.handle(Event("phase", host=member.name, phase=phase, status="start"))
            try:
                try:
                    self.plugins.caller(hook_name, member.target.plugins)(ctx=ctx)
                    if send_waiting:
                        member.connection.flush_later()
                except BaseException as error:
                    if self.stopping.is_set() and isinstance(unwrapped(error), CommandKilled):
                        # Killed by fap itself on the way out: the stop, not a failure of this host.
                        raise Interrupted(f"interrupted: {describe(error, member.name)}") from error
                    raise
            except BaseException as error:
                member.last_active = time.monotonic()
                # A command sent later fails in the phase that sent it (ctx.run_later).
                member.failed_phase = getattr(error, "phase", None) or phase
                message = describe(error, member.name)
                self.reporter.handle(Event("phase", host=member.name, phase=phase, status="failed",
                                           message=self.masker(message), duration=time.monotonic() - started))
                raise
            member.last_active = time.monotonic()
            self.reporter.handle(Event("phase", host=member.name, phase=phase, status="ok",
                                       duration=time.monotonic() - started,
                                       data={"commands": ctx.commands_run}))

        return self.on_each(members, work)

    def run_flow(self, flow: Flow, members: list[Member], max_fail: int = 0, barrier: PhaseBarrier | None = None,
                 earlier: Sequence[Member] = (), later: Sequence[Member] = (), phases: Sequence[str] | None = None) -> bool:
        """Run every phase in lockstep; on failure take the failure path. True when all went well.

        Up to ``max_fail`` hosts (counting those already dropped) that fail before
        publishing are dropped — their new release removed — while the rest go on.
        ``barrier`` is called before any host starts a phase and after every host
        finished it; what it raises is that phase's failure on every host.
        ``earlier``: the hosts of batches already done, switched back too when
        this batch's health check fails; ``later``: those of the batches to come,
        which may take over a ``once`` step (:meth:`hand_over`). ``phases``: those
        of ``flow`` to run (all of them by default), for a batch that holds its last ones.
        A host that ran (or was running) a ``once`` step is never dropped.
        """
        late_failures = False
        for phase in flow.phases if phases is None else phases:
            active = [m for m in members if m.failed is None]
            if not active:
                return False
            all_or_nothing = flow.publish_phase is not None and (flow.before_publishing(phase) or phase == flow.publish_phase)
            if self.stopping.is_set():
                for member in active:
                    member.failed_phase = f"before {phase}"
                if all_or_nothing:
                    self.recovery.fail_run(flow, members, {key(active[0]): Interrupted("interrupted")})
                else:
                    for member in active:
                        member.failed = Stopped("stopped: interrupted")
                return False
            started = time.monotonic()
            whole_run = False
            failures = self.at_barrier(barrier.before, phase, active) if barrier else {}
            if not failures:
                failures = self.run_phase(flow, phase, active, send_waiting=self.sends_waiting_after(flow, phase, barrier))
                if flow.creates_release and phase == flow.phases[0]:
                    for member in active:
                        # Its release directory is this run's: the failure path may remove it even unmarked.
                        member.made_release = key(member) not in failures
                if not failures and barrier:
                    failures = self.at_barrier(barrier.after, phase, active)
                    whole_run = bool(failures)
            else:
                whole_run = True  # the barrier's failure is the run's, not some hosts': --max-fail drops nobody for it
            self.reporter.handle(Event("phase_done", phase=phase, status="failed" if failures else "ok",
                                       duration=time.monotonic() - started,
                                       message=f"{len(active) - len(failures)}/{len(active)} hosts ok"))
            if phase == flow.publish_phase and self.stopping.is_set():
                # Stopped while switching: all or nothing, like a failure there; every switched host goes back.
                for member in active:
                    if key(member) not in failures:
                        failures[key(member)] = Interrupted("interrupted while publishing")
                        member.failed_phase = phase
            if phase == flow.publish_phase:
                for member in active:
                    # A later publishing hook (trylast) may fail after this host's switch: it is switched all the same.
                    moved = member.ctx is not None and member.ctx.current_release != member.ctx.previous_release
                    member.switched = key(member) not in failures or moved
            if phase == health_phase(flow):
                for member in active:
                    if key(member) in failures:
                        member.failed = failures[key(member)]
                checked = [m for m in active if key(m) not in failures]
                if not self.recovery.health_gate(flow, checked, members, earlier, max_fail):
                    return False
            if not failures:
                continue
            failed = [m for m in active if key(m) in failures]
            for member in failed:
                member.failed = failures[key(member)]
            dropped = sum(1 for m in members if m.status == "dropped") + len(failed)
            interrupted = any(isinstance(e, Interrupted) for e in failures.values())
            droppable = flow.publish_phase and flow.before_publishing(phase) and dropped <= max_fail and not interrupted and not whole_run
            # A migration that ran (or may have) on a host cannot go live without it, nor run again elsewhere.
            so_far = flow.phases[:flow.phases.index(phase) + 1]
            ran_once = [(m, step) for m in failed for step in m.steps if step.once and step.phase in so_far]
            if droppable and not ran_once:
                self.recovery.drop(flow, failed, next(iter(failures.values())))
                self.recovery.hand_over(flow, phase, failed, [*members, *later])
                continue
            for member, step in ran_once if droppable else ():
                self.emit("error", f"not dropped (--max-fail): it ran once step {step.where} in {step.phase}, or was running it;"
                                   " the run fails before the switch", host=member.name, phase=phase)
            if all_or_nothing:
                self.recovery.fail_run(flow, members, failures)
                return False
            # After the switch, or in a restart: nothing to undo for the run, each host's failure is its own.
            self.recovery.tell_plugins_failed(failed)
            self.recovery.hand_over(flow, phase, failed, [*members, *later])
            late_failures = True
        return not late_failures

    @staticmethod
    def sends_waiting_after(flow: Flow, phase: str, barrier: PhaseBarrier | None) -> bool:
        """Whether ``phase`` ends with every command plugins sent later (``ctx.run_later``) run on its host.

        Before the switch: ``current`` moves on no host while something
        before it may still fail on another. And after every phase when the
        run has ``local:`` steps, which may count on every host having done its
        part. Otherwise they ride with the host's next round trip.
        """
        following = flow.phases.index(phase) + 1
        if following < len(flow.phases) and flow.phases[following] == flow.publish_phase:
            return True
        return bool(getattr(barrier, "steps", ()))

    def at_barrier(self, call: Callable[[str, Sequence[Member]], None], phase: str,
                   members: Sequence[Member]) -> dict[str, BaseException]:
        """Call a :class:`PhaseBarrier` method; what it raises is the phase's failure on every host of ``members``."""
        try:
            call(phase, members)
        except Exception as error:  # noqa: BLE001 - any error of the barrier fails the phase, named
            if self.stopping.is_set() and isinstance(unwrapped(error), CommandKilled):
                error = Interrupted(f"interrupted: {describe(error, 'local')}")  # killed by the stop: not a failure
            for member in members:
                member.failed_phase = phase
                member.last_active = time.monotonic()
            return {key(m): error for m in members}
        return {}


def health_phase(flow: Flow) -> str:
    """The phase after which the health check runs: ``published`` (after the switch and restarts), or a restart's last."""
    return flows.Phase.PUBLISHED if flow.publish_phase is not None else flow.phases[-1]


__all__ = ["Member", "PhaseBarrier", "Runner", "describe", "health_phase", "key"]
