"""Runs a flow over many hosts: connect all, lock, phases in lockstep, all-or-nothing on failure.

Every host finishes a phase before any host starts the next. A failure before
publishing stops the run on every host: ``fap_deploy_failed`` runs, the new
release is removed everywhere, ``current`` is untouched. A failure while
publishing (or a signal while publishing) switches already-switched hosts
back; after publishing the new release is kept and the outcome says so. The
lock is released on every exit path, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import pwd
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Literal, Protocol

from fapistrano import flows, layout
from fapistrano.builtin.health import HealthResult, check_host
from fapistrano.config import HostSpec, RoleSettings, Step, Target, hosts_of, target_for_host
from fapistrano.context import Context
from fapistrano.errors import CommandFailed, CommandKilled, FapError, HealthCheckFailed, Interrupted, Stopped, Terminated, one_line
from fapistrano.flows import Flow, FlowName
from fapistrano.masking import Masker
from fapistrano.plugins import PluginFailure, Plugins
from fapistrano.remote import Host, LocalProcesses, ssh_settings_from
from fapistrano.steps import hand_over_once_steps, once_group
from fapistrano.throttle import Throttles
from fapistrano.ui import Event, EventKind, Reporter

#: Seconds a running command may go on after Ctrl-C before it is killed.
#: After SIGTERM there is no grace: whoever sent it (a CI job being cancelled)
#: sends SIGKILL soon, and the cleanup needs that time.
INTERRUPT_GRACE = 10.0

#: fap's exit status after a signal, once cleaned up: 128 + the signal's number, as shells report it.
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}
#: Seconds a second signal waits for the locks to be released before fap exits.
UNLOCK_ON_EXIT_WAIT = 10.0


#: How a member ended, beyond failed or not: "" while running, "ok"/"failed" in fap once,
#: "dropped" (taken out under --max-fail), "reverted" (switched back after a failed switch or health check),
#: "unhealthy" (its health check failed, within --max-fail: left on the new release).
MemberStatus = Literal["", "ok", "failed", "dropped", "reverted", "unhealthy"]


@dataclass
class Member:
    """One (stage, role, host) of the run and everything the run learns about it."""

    settings: RoleSettings
    spec: HostSpec
    target: Target
    connection: Host
    state: layout.HostState | None = None
    ctx: Context | None = None
    locked: bool = False
    switched: bool = False
    made_release: bool = False  # its first phase made this run's release directory
    release_left: bool = False  # the run's new release could not be removed after a failure: still on the host
    failed: BaseException | None = None
    failed_phase: str = ""
    status: MemberStatus = ""
    health: HealthResult | None = None  # how its health check ended, when one ran
    started: float = field(default_factory=time.monotonic)
    last_active: float | None = None  # when its last phase ended: its time in the summary
    steps: tuple[Step, ...] = ()  # the run: steps of hooks: this host runs (see fapistrano.steps.assign_steps)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def label(self) -> str:
        return f"{self.settings.stage}/{self.settings.role}"


def build_members(roles: Sequence[RoleSettings], control_dir: str, stand_in: str | None = None) -> list[Member]:
    """A :class:`Member` per host of every selected stage/role (no release chosen yet).

    ``stand_in`` names a host that connects nowhere for a stage/role with ``hosts: []``
    (``fap config`` shows its settings before any server exists); without it that is an error.
    """
    members = []
    for settings in roles:
        specs = [HostSpec(stand_in)] if stand_in and not settings.values["hosts"] else hosts_of(settings)
        for spec in specs:
            target = target_for_host(settings, spec, None)
            config = target.config
            ssh = None
            if config["connection"] != "local":
                ssh = ssh_settings_from(config, spec.name, spec.port, config["user"])
            sudo_user = config["sudo_user"] if config["sudo_user"] and config["sudo_user"] != config["user"] else None
            connection = Host(spec.name, ssh, sudo_user=sudo_user, control_dir=control_dir)
            members.append(Member(settings, spec, target, connection))
    return members


def check_distinct_paths(members: Sequence[Member]) -> None:
    """Refuse two targets of one run that would deploy into the same directory of the same host.

    Each (stage, role) has its own settings and plugins, so two of them sharing
    ``path`` on one host would create two releases and fight over ``current``
    and the lock. Give each role its own ``path`` (e.g. with ``%(role)s``), or
    select one role with ``-r``.
    """
    seen: dict[tuple[str, int | None, str], Member] = {}
    for member in members:
        place = (member.spec.name, member.spec.port, member.target.config["path"])
        other = seen.setdefault(place, member)
        if other is not member:
            raise FapError(
                f"{member.name}: {other.label} and {member.label} both deploy to {place[2]} on this host in one run;"
                " give each role its own path (e.g. path: /home/%(user)s/www/%(app_name)s-%(role)s) or select one role with -r"
            )


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


class PhaseBarrier(Protocol):
    """Work of the run as a whole at a phase's edges (the ``local:`` steps of ``hooks:``): see :meth:`Runner.run_flow`."""

    def before(self, phase: str, members: Sequence[Member]) -> None:
        """Before any host of ``members`` starts ``phase``."""

    def after(self, phase: str, members: Sequence[Member]) -> None:
        """After every host of ``members`` finished ``phase`` without failing."""


class Runner:
    """Drives one command over its members; owns the thread pool and the stop flag."""

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
        self.lock_text = lock_text
        # This run's own mark in the locks it takes: it releases a lock only while the lock still holds it.
        # ``None`` releases whoever's lock (``fap unlock``).
        self.lock_token: str | None = secrets.token_hex(16)
        self.stopping = threading.Event()
        self.stopped_by: signal.Signals | None = None  # the signal that stopped the run
        self._pool = ThreadPoolExecutor(max_workers=self.max_parallel, thread_name_prefix="fap-host")
        self._connections: list[Host] = []
        # The grace timer's kill and the cleanup must not overlap: a late kill would hit a cleanup command.
        self._cancel_lock = threading.Lock()
        self._cancelling_over = False
        # Which stretch of the run a grace timer belongs to: one started before the cleanup kills nothing in it.
        self._cancel_window = 0
        #: The commands the run starts on this machine (``run.local``): a stop kills them as it kills the hosts'.
        self.local_processes = LocalProcesses()
        self.throttles = Throttles()  # ``parallel: N`` and ctx.throttle: one per run, shared by every host
        self._locked: list[Member] = []  # every member whose lock this run took: a second signal still releases them

    # -- plumbing ---------------------------------------------------------

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
                self.interrupt(signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT)
                continue
        for future, member in futures.items():
            error = future.exception()
            if error is not None:
                failures[key(member)] = error
        return failures

    def interrupt(self, signum: int = signal.SIGINT, _frame: Any = None) -> None:
        """First SIGINT/SIGTERM: start no new command, end running ones, clean up. Second: kill them, leave now.

        After SIGINT running commands get a grace period; after SIGTERM they are killed at once.
        """
        received = signal.Signals(signum)
        if self.stopping.is_set():
            # No cleanup, but no orphans either: the commands this run started die with it, and its locks go.
            self.cancel_running()
            self._release_locks_now()
            os._exit(SIGNAL_EXIT.get(received, 130))
        self.stopped_by = received
        self.stopping.set()
        grace = 0.0 if received == signal.SIGTERM else INTERRUPT_GRACE
        # A signal handler may interrupt the main thread while it holds the reporter's lock: report from a thread.
        threading.Thread(target=self._report_interrupt, args=(received, grace), daemon=True).start()
        timer = threading.Timer(grace, self._cancel_after_grace, args=(self._cancel_window,))
        timer.daemon = True
        timer.start()

    def _cancel_after_grace(self, window: int) -> None:
        with self._cancel_lock:
            if not self._cancelling_over and window == self._cancel_window:
                self.cancel_running()
                self._cancelling_over = True

    def stop_cancelling(self) -> None:
        """Cleanup begins: the grace timer kills nothing from now on (waits for a kill already under way)."""
        with self._cancel_lock:
            self._cancelling_over = True

    @contextlib.contextmanager
    def cancellable(self) -> Iterator[None]:
        """Steps of the failure path (``fap_deploy_failed``, ``failed`` steps): a signal now stops them as it stops a phase.

        A grace timer of a signal that came before does not reach into them:
        that signal is why they run. Once they end, nothing is killed again
        (the switch-back, the removal of the release and the unlock follow).
        """
        with self._cancel_lock:
            reopened = self._cancelling_over  # in the cleanup; before it (--max-fail drops a host) nothing changes
            if reopened:
                self._cancel_window += 1
                self._cancelling_over = False
        try:
            yield
        finally:
            if reopened:
                self.stop_cancelling()

    def _release_locks_now(self) -> None:
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

    def _report_interrupt(self, received: signal.Signals, grace: float) -> None:
        if received == signal.SIGTERM:
            self.emit("error", "terminated (SIGTERM): killing running commands, then cleaning up; SIGTERM again to quit at once")
        else:
            self.emit("error", f"interrupted: finishing running commands (killed after {grace:.0f} s), then cleaning up;"
                               " Ctrl-C again to quit at once")

    def connect(self, members: Sequence[Member], probe: bool = False, lock: bool = False) -> dict[str, BaseException]:
        """Open every member's connection, all at once.

        With ``probe``, each host is probed (and locked, with ``lock``) as
        soon as it answers, not after the slowest host has answered.
        """
        self._connections.extend(m.connection for m in members)

        def work(member: Member) -> None:
            member.connection.connect()
            if probe:
                self._probe(member, lock)

        return self.on_each(members, work)

    def close(self, members: Sequence[Member], before_unlock: Mapping[str, str] | None = None) -> None:
        """Release the locks this run holds and disconnect: on every exit path, each host on its own.

        ``before_unlock``: shell to run under the lock just before it is released, by host key
        (the history record, :func:`fapistrano.history.closing_scripts`); it prints
        :data:`fapistrano.history.NOT_WRITTEN` when it failed.
        """

        self.stop_cancelling()

        def work(member: Member) -> None:
            if not member.locked:
                member.connection.close()
                return
            # The unlock goes with the end of the session: one round trip for both (and the history record).
            self.emit("command", "(unlock) removing the lock", host=member.name, phase="unlock")
            last = layout.unlock_script(member.target.config["path"], self.lock_token)
            recording = (before_unlock or {}).get(key(member))
            result = member.connection.close(last=f"{recording}\n{last}" if recording else last)
            if recording and result is not None and "fap-history-not-written" in result.stdout.splitlines():
                self.emit("warning", f"could not write the history record in {member.target.config['path']}",
                          host=member.name, phase="unlock")
            if result is not None and result.exit_code == 0:
                member.locked = False
            elif result is not None and result.exit_code == layout.LOCK_NOT_OURS:
                member.locked = False
                self.emit("warning", "the lock is no longer this run's (removed by 'fap unlock';"
                                     f" now held by {result.stderr.strip() or 'unknown'}): left in place",
                          host=member.name, phase="unlock")
            elif result is not None:
                self.emit("error", f"could not release the lock: {result.stderr.strip()}", host=member.name)

        by_key = {key(m): m for m in members}
        for name, error in self.on_each(members, work).items():
            host = by_key[name].name
            self.emit("error", f"could not release the lock (run 'fap unlock' when the host is back): {describe(error, host)}",
                      host=host, phase="unlock")
        self._pool.shutdown(wait=True)

    def _probe(self, member: Member, lock: bool) -> None:
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
        self.emit("command", "(probe) reading releases and lock", host=member.name, phase="probe")
        result = member.connection.run(script)
        if result.exit_code != 0:
            raise CommandFailed(member.name, "(probe) reading releases and lock", result.exit_code, self.masker(result.stderr))
        member.state = layout.parse_probe(result.stdout)
        member.locked = member.state.locked_by_us
        if member.locked:
            self._locked.append(member)

    def make_contexts(self, members: Sequence[Member], release_of: Callable[[Member], tuple[str | None, str | None]],
                      flow: Flow | FlowName) -> None:
        """Resolve every member's settings for its release; build its ``ctx``: the one place a ``ctx`` is made.

        ``flow`` is a deploy flow, or the name of a command's flow (check, once, releases) that runs no phases.
        """
        name = flow.name if isinstance(flow, Flow) else flow
        reporter = StepNaming(self.reporter, self.plugins.manager)
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

    def run_phase(self, flow: Flow, phase: str, members: Sequence[Member]) -> dict[str, BaseException]:
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
                except BaseException as error:
                    if self.stopping.is_set() and isinstance(unwrapped(error), CommandKilled):
                        # Killed by fap itself on the way out: the stop, not a failure of this host.
                        raise Interrupted(f"interrupted: {describe(error, member.name)}") from error
                    raise
            except BaseException as error:
                member.last_active = time.monotonic()
                member.failed_phase = phase
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
                    self.fail_run(flow, members, {key(active[0]): Interrupted("interrupted")})
                else:
                    for member in active:
                        member.failed = Stopped("stopped: interrupted")
                return False
            started = time.monotonic()
            whole_run = False
            failures = self.at_barrier(barrier.before, phase, active) if barrier else {}
            if not failures:
                failures = self.run_phase(flow, phase, active)
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
                if not self.health_gate(flow, checked, members, earlier, max_fail):
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
                self.drop(flow, failed, next(iter(failures.values())))
                self.hand_over(flow, phase, failed, [*members, *later])
                continue
            for member, step in ran_once if droppable else ():
                self.emit("error", f"not dropped (--max-fail): it ran once step {step.where} in {step.phase}, or was running it;"
                                   " the run fails before the switch", host=member.name, phase=phase)
            if all_or_nothing:
                self.fail_run(flow, members, failures)
                return False
            # After the switch, or in a restart: nothing to undo for the run, each host's failure is its own.
            self.tell_plugins_failed(failed)
            self.hand_over(flow, phase, failed, [*members, *later])
            late_failures = True
        return not late_failures

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

    def health_gate(self, flow: Flow, checked: Sequence[Member], batch: Sequence[Member], earlier: Sequence[Member],
                    max_fail: int) -> bool:
        """Run ``healthcheck`` on every ``checked`` host; decide for the run. False when the run is over.

        Unhealthy hosts within ``max_fail`` (counting hosts dropped and hosts
        unhealthy in earlier batches) are reported and kept. More of them, or
        a stop during the check: a deploy switches every host of the run back
        (:meth:`switch_run_back`); a rollback or restart reports them failed.
        """
        with_check = [m for m in checked if m.ctx is not None and m.ctx.config["healthcheck"]]
        if not with_check:
            return True
        commands = sorted({m.ctx.config["healthcheck"] for m in with_check if m.ctx})
        self.emit("run", f"health check on {len(with_check)} host(s): {'; '.join(commands)}")

        def work(member: Member) -> None:
            assert member.ctx is not None
            member.ctx.phase = "healthcheck"
            member.health = result = check_host(member.ctx, self.stopping)
            member.last_active = time.monotonic()  # its time in the summary covers the check
            if self.dry_run:
                return
            if result.passed:
                self.emit("log", f"healthy: check passed after {result.seconds:.1f} s ({result.attempts} attempt(s))",
                          host=member.name, phase="healthcheck")
            else:
                self.emit("error", f"failed its health check after {result.seconds:.1f} s ({result.attempts} attempt(s)):"
                                   f" {result.output}", host=member.name, phase="healthcheck")

        self.on_each(with_check, work)
        unhealthy = [m for m in with_check if m.health is not None and not m.health.passed]
        stopped = self.stopping.is_set()
        if not unhealthy and not stopped:
            return True
        counted = len(unhealthy) + sum(1 for m in earlier if m.status == "unhealthy") + sum(1 for m in batch if m.status == "dropped")
        if counted <= max_fail and not stopped:
            for member in unhealthy:
                member.status = "unhealthy"
            return True
        names = ", ".join(m.name for m in unhealthy) or "none"
        error: FapError = HealthCheckFailed(f"health check failed on {len(unhealthy)} of {len(with_check)} host(s) ({names});"
                                            f" max_fail allows {max_fail}")
        if stopped:
            error = Interrupted("interrupted during the health check")
        for member in unhealthy:
            member.failed_phase = "healthcheck"
            member.failed = error if stopped else HealthCheckFailed(f"failed its health check: {member.health.output}"
                                                                     if member.health else "failed its health check")
        if not flow.creates_release:
            # A rollback or restart has nothing to go back to: the report, and its plugins told, is all it can do.
            for member in unhealthy:
                member.status = "unhealthy"
            self.tell_plugins_failed(unhealthy)
            return False
        self.stop_cancelling()
        everyone = [*earlier, *batch]
        self.switch_run_back(everyone)
        for member in everyone:
            if member.failed is None and member.health is not None and not member.health.passed:
                # Kept within --max-fail in its own batch: still unhealthy, whatever a later batch did.
                member.failed = HealthCheckFailed(f"failed its health check: {member.health.output}")
                member.failed_phase = "healthcheck"
            elif member.failed is None and member.status != "dropped":
                member.failed = Stopped(f"healthy, stopped: the health check failed on {names}") if not stopped else error
                member.failed_phase = member.failed_phase or "healthcheck"
        live = [m for m in everyone if m.status != "dropped" and m.ctx is not None]
        self.tell_plugins_failed(live, error)
        if not self.dry_run:
            # A host left on the new release (its first deploy) keeps it: current points there.
            self.remove_new_release([m for m in live if not m.switched])
        return False

    def switch_run_back(self, members: Sequence[Member]) -> None:
        """Every switched host back to the release it had, through the ``publishing`` and ``published`` hooks
        of a rollback to it (the core's atomic switch, then what restarts processes on the old code).

        A host on its first deploy has nothing to go back to: it stays on the new release, reported.
        """
        switched = [m for m in members if m.switched and m.status != "reverted" and m.ctx is not None]
        for member in switched:
            if not member.ctx.previous_release:  # type: ignore[union-attr]
                self.emit("warning", f"first deploy: nothing to switch back to; left on {member.ctx.release}",  # type: ignore[union-attr]
                          host=member.name, phase="healthcheck")
        back = [m for m in switched if m.ctx and m.ctx.previous_release]
        if not back:
            return
        deploying = {key(m): (m.ctx, m.target) for m in back}
        self.make_contexts(back, lambda m: (deploying[key(m)][0].previous_release, deploying[key(m)][0].release),  # type: ignore[union-attr]
                           flows.ROLLBACK)
        for member in back:
            assert member.ctx is not None
            # Where current is now (the new release): the core's switch moves it back, and says so here.
            member.ctx.current_release = deploying[key(member)][0].current_release  # type: ignore[union-attr]
        errors: dict[str, BaseException] = {}
        for phase in (flows.Phase.PUBLISHING, flows.Phase.PUBLISHED):
            hook_name = flows.ROLLBACK.hook_name(phase)

            def work(member: Member, phase: str = phase, hook_name: str = hook_name) -> None:
                assert member.ctx is not None
                member.ctx.stopping = None  # switching back must run even after Ctrl-C
                member.ctx.phase = phase
                try:
                    self.plugins.caller(hook_name, member.target.plugins)(ctx=member.ctx)
                finally:
                    member.last_active = time.monotonic()  # switching back is part of its time

            errors.update(self.on_each([m for m in back if key(m) not in errors], work))
        for member in back:
            old_ctx = member.ctx
            assert old_ctx is not None
            member.ctx, member.target = deploying[key(member)]
            previous = old_ctx.release
            moved_back = old_ctx.current_release == previous and not old_ctx.dry_run
            target = f"-s {member.settings.stage} -r {member.settings.role} --hosts {member.name}"
            if moved_back:
                member.ctx.current_release = previous  # type: ignore[union-attr]  # what fap_deploy_failed reads
                member.switched = False
                member.status = "reverted"
            if moved_back and key(member) not in errors:
                self.emit("warning", f"switched back to {previous}", host=member.name, phase="healthcheck")
            elif moved_back:
                self.emit("error", f"switched back to {previous}, but its {old_ctx.phase} hooks failed:"
                                   f" {describe(errors[key(member)], member.name)}; run: fap restart {target}",
                          host=member.name, phase="healthcheck")
            else:
                why = describe(errors[key(member)], member.name) if key(member) in errors else "current did not move"
                self.emit("error", f"could not switch back to {previous}: {why}; run: fap rollback {target} --to {previous}",
                          host=member.name, phase="healthcheck")

    def hand_over(self, flow: Flow, phase: str | None, lost: Sequence[Member], candidates: Sequence[Member]) -> None:
        """The ``once`` steps ``lost`` hosts carry in phases after ``phase`` (all, when ``None``) move to a host that goes on.

        Reported on the host that takes the step over, or as a warning when no
        host of its stage (or target) goes on (then nothing of it goes live).
        """
        later = flow.phases[flow.phases.index(phase) + 1:] if phase is not None else flow.phases
        going_on = [m for m in candidates if m.failed is None and m.status != "dropped"]
        for member in lost:
            why = "dropped" if member.status == "dropped" else "failed"
            for step, heir in hand_over_once_steps(member, going_on, later):
                command = one_line(step.command, 60)
                if heir is not None:
                    self.emit("warning", f"once step {step.where} ({command}) moves here from {member.name} ({why})",
                              host=heir.name, phase=step.phase)
                else:
                    self.emit("warning", f"once step {step.where} ({command}) runs on no host: no other host of"
                                         f" {once_group(member, step)} goes on", host=member.name, phase=step.phase)

    def drop(self, flow: Flow, members: Sequence[Member], error: BaseException) -> None:
        """Take failed hosts out of a tolerant run (``--max-fail``): clean them up, go on without them."""
        for member in members:
            member.status = "dropped"
            self.emit("warning", f"dropped from the run (--max-fail): {describe(member.failed or error, member.name)}",
                      host=member.name, phase=member.ctx.phase if member.ctx else None)
        self.tell_plugins_failed(members, error)
        if flow.creates_release and not self.dry_run:
            self.remove_new_release(members)

    def fail_run(self, flow: Flow, members: list[Member], failures: dict[str, BaseException]) -> None:
        """All-or-nothing: undo switches, tell plugins, remove the new release everywhere."""
        self.stop_cancelling()
        first = next(iter(failures.values()))
        switched = [m for m in members if m.switched]
        # Stopped inside the switch (killed after SIGTERM, a host lost mid-command): it may have switched; make sure.
        unsure = [m for m in members if not m.switched and m.failed_phase == flow.publish_phase and m.ctx is not None]
        if switched or unsure:
            self.switch_back(switched, unsure)
        for member in members:
            if member.failed is None:
                member.failed = Stopped("stopped: another host failed") if not isinstance(first, Interrupted) else first
        live = [m for m in members if m.status != "dropped" and m.ctx is not None]
        self.tell_plugins_failed(live, first)
        if flow.creates_release and not self.dry_run:
            self.remove_new_release(live)

    def tell_plugins_failed(self, members: Sequence[Member], error: BaseException | None = None) -> None:
        """``fap_deploy_failed`` on each member (with ``error``, or its own); a failing cleanup does not stop the others."""

        stopped_in = next((m.failed_phase for m in members if m.failed_phase), "")

        def work(member: Member) -> None:
            assert member.ctx is not None
            member.ctx.failed_phase = member.failed_phase or stopped_in
            member.ctx.phase = "failed"
            member.ctx.stopping = None  # cleanup must run even after Ctrl-C
            try:
                self.plugins.caller("fap_deploy_failed", member.target.plugins)(ctx=member.ctx, error=error or member.failed)
            except Exception as failure:  # noqa: BLE001 - reported, then the next plugin/host goes on
                self.emit("error", f"fap_deploy_failed: {describe(failure, member.name)}", host=member.name, phase="failed")

        with self.cancellable():
            self.on_each(members, work)

    def switch_back(self, members: Sequence[Member], unsure: Sequence[Member] = ()) -> None:
        """Point ``current`` back where it was on hosts that had already switched (and, quietly, on ``unsure`` ones)."""
        quiet = {key(m) for m in unsure}

        def work(member: Member) -> None:
            ctx = member.ctx
            assert ctx is not None
            previous = ctx.previous_release
            config = ctx.config
            if previous:
                script = layout.switch_script(config["current_path"], f"{config['releases_path'].rstrip('/')}/{previous}", tag="back")
            else:
                script = f"rm -f {layout.q(config['current_path'])}"
            try:
                result = member.connection.run(script)
            except FapError as error:  # the host is gone: say so, with what brings it back once it answers again
                back = f"fap rollback -s {member.settings.stage} -r {member.settings.role} --hosts {member.name} --to {previous}"
                what = "current may have moved: once the host answers, check with fap releases" if key(member) in quiet \
                    else f"once the host answers, run: {back}" if previous else "once the host answers, remove current"
                self.emit("error", f"could not switch back to {previous or 'no release'}: {describe(error, member.name)}; {what}",
                          host=member.name, phase="publishing")
                return
            if result.exit_code == 0:
                ctx.current_release = previous  # what fap_deploy_failed then reads
            if result.exit_code == 0 and key(member) in quiet:
                return
            if result.exit_code == 0:
                member.switched = False
                member.status = "reverted"
                self.emit("warning", f"switched back to {previous or 'no release (first deploy)'}", host=member.name, phase="publishing")
            else:
                self.emit("error", f"could not switch back to {previous}: {result.stderr.strip()}", host=member.name, phase="publishing")

        self.on_each([*members, *unsure], work)

    def remove_new_release(self, members: Sequence[Member]) -> None:
        """Remove this run's unfinished release (and its marker) from each member.

        Only a directory this run made (see :func:`layout.remove_new_release_script`);
        the script refuses to remove the release ``current`` points to.
        """

        def work(member: Member) -> None:
            ctx = member.ctx
            assert ctx is not None and ctx.release
            try:
                script = layout.remove_new_release_script(ctx.config["releases_path"], ctx.config["current_path"], ctx.release,
                                                          member.made_release, layout.marks_path(ctx.config["path"]))
                result = member.connection.run(script)
            except FapError as error:
                member.release_left = True
                self.emit("error", f"could not remove unfinished release {ctx.release}: {error}", host=member.name)
                return
            if result.exit_code != 0:
                member.release_left = True
                self.emit("error", f"could not remove unfinished release {ctx.release}: {result.stderr.strip()}", host=member.name)

        self.on_each(members, work)

    def cancel_running(self) -> None:
        """After the grace period of a Ctrl-C (at once after SIGTERM): kill the commands still running, on every host at once."""
        self.local_processes.kill()
        killers = [threading.Thread(target=connection.cancel, daemon=True) for connection in list(self._connections)]
        for killer in killers:
            killer.start()
        for killer in killers:
            killer.join(timeout=10)


class StepNaming(Reporter):
    """Adds to each command, log and warning of a ``ctx`` the name of the plugin whose hookimpl made it.

    The live view shows it beside the phase (``updated: virtualenv``). The hookimpl is
    found on the call stack (the event is emitted in the thread running it), from the
    code objects of every hookimpl - so nothing wraps or patches a hookimpl. A walk of
    a few dozen frames costs microseconds; a command costs a round trip.
    """

    def __init__(self, reporter: Reporter, manager: Any) -> None:
        self.reporter = reporter
        self._plugin_of: dict[Any, str] = {}
        for plugin in manager.get_plugins():
            for caller in manager.get_hookcallers(plugin) or []:
                for impl in caller.get_hookimpls():
                    code = getattr(inspect.unwrap(impl.function), "__code__", None)
                    if code is not None:
                        self._plugin_of.setdefault(code, impl.plugin_name)

    def output_wanted(self) -> str:
        return self.reporter.output_wanted()

    def handle(self, event: Event) -> None:
        if event.kind in ("command", "log", "warning") and "step" not in event.data:
            step = self._running_step()
            if step:
                event = dataclasses.replace(event, data={**event.data, "step": step})
        self.reporter.handle(event)

    def _running_step(self) -> str | None:
        frame: FrameType | None = sys._getframe(2)  # noqa: SLF001 - the documented way to read the caller's frames
        while frame is not None:
            name = self._plugin_of.get(frame.f_code)
            if name is not None:
                return name
            frame = frame.f_back
        return None

    def summary(self, title: str, results: list[Any], ok: bool) -> None:
        self.reporter.summary(title, results, ok)

    def close(self) -> None:
        self.reporter.close()


def health_phase(flow: Flow) -> str:
    """The phase after which the health check runs: ``published`` (after the switch and restarts), or a restart's last."""
    return flows.Phase.PUBLISHED if flow.publish_phase is not None else flow.phases[-1]


def key(member: Member) -> str:
    """A member's identity in this run: stage, role and host."""
    return f"{member.settings.stage}/{member.settings.role}/{member.spec.name}:{member.spec.port or ''}"


def unwrapped(error: BaseException) -> BaseException:
    """The error itself, out of the :class:`PluginFailure` that names its plugin."""
    return error.error if isinstance(error, PluginFailure) else error


def describe(error: BaseException, host: str) -> str:
    """One line naming the plugin and the failure, without repeating the host."""
    plugin = ""
    if isinstance(error, PluginFailure):
        plugin = f"{error.plugin}: "
        error = error.error
    if isinstance(error, FapError):
        text = str(error)
    else:
        text = f"{type(error).__name__}: {error}"
    prefix = f"{host}: "
    if text.startswith(prefix):
        text = text[len(prefix):]
    return plugin + text


__all__ = ["Member", "Runner", "build_members", "describe", "install_signal_handlers", "key", "restore_signal_handlers"]


def install_signal_handlers(runner: Runner) -> dict[signal.Signals, Any]:
    """SIGINT and SIGTERM stop ``runner`` cleanly (see :meth:`Runner.interrupt`); returns the handlers replaced."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    # A signal ignored by whoever started fap (nohup) stays ignored.
    return {number: signal.signal(number, runner.interrupt) for number in SIGNAL_EXIT
            if signal.getsignal(number) is not signal.SIG_IGN}


def restore_signal_handlers(previous: dict[signal.Signals, Any]) -> None:
    """Put back what :func:`install_signal_handlers` replaced."""
    if threading.current_thread() is threading.main_thread():
        for number, handler in previous.items():
            signal.signal(number, handler)


def summarize(members: Sequence[Member], masker: Masker | None = None) -> list[Any]:
    """A :class:`~fapistrano.ui.HostResult` per member, for the summary table."""
    from fapistrano.ui import HostResult

    now = time.monotonic()
    results = []
    for member in members:
        if member.failed is None:
            status = "ok" if member.ctx is not None else "skipped"
        elif isinstance(member.failed, Interrupted):  # stopped, or collateral of another host's failure
            status = "skipped"
        else:
            status = "failed"
        if member.status in ("reverted", "dropped", "unhealthy"):
            status = member.status
        ctx = member.ctx
        error = "" if member.failed is None else describe(member.failed, member.name)
        current = ""
        if member.switched and member.status != "reverted" and ctx is not None:
            current = f"now {ctx.release}"
        elif ctx is not None or member.state is not None:
            current = "unchanged"
        results.append(
            HostResult(
                host=member.name,
                target=member.label,
                status=status,
                release=(ctx.release or "") if ctx and member.last_active is not None and _release_remains(member, status) else "",
                duration=(member.last_active or now) - member.started,
                error=(masker or Masker())(error or _health_text(member)) if status in ("failed", "dropped", "reverted", "unhealthy") else "",
                commands=ctx.commands_run if ctx else 0,
                current=current,
            )
        )
    return results


def _health_text(member: Member) -> str:
    """The summary's error column for a host whose health check failed (its last output lines)."""
    if member.health is None or member.health.passed:
        return ""
    return f"failed its health check: {member.health.output}"


def _release_remains(member: Member, status: str) -> bool:
    """Whether the release a member's row would name is there after the run (a failed deploy removes its new one)."""
    assert member.ctx is not None
    if member.ctx.flow != "release" or status == "ok":
        return True
    return member.switched and member.status != "reverted"  # failed after the switch: current is on it
