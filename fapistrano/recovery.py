"""The failure path: what a run does when a host fails, a health check fails, or a signal stops it.

Before ``publishing`` a failure is all or nothing: ``fap_deploy_failed`` runs
on every host, the new release is removed everywhere and ``current`` is
untouched. In ``publishing`` (or stopped there) every host already switched
is switched back. After it, each host's failure is its own. Under
``--max-fail`` hosts that fail before the switch are dropped instead, their
``once`` steps handed over to a host that goes on. A failed health check
switches every switched host of the run back through a rollback's
``publishing`` and ``published`` hooks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from fapistrano import flows, layout
from fapistrano.errors import FapError, HealthCheckFailed, Interrupted, Stopped, one_line
from fapistrano.flows import Flow
from fapistrano.hosts import HealthResult, Member, key
from fapistrano.plugins import describe
from fapistrano.steps import hand_over_once_steps, once_group

if TYPE_CHECKING:
    from fapistrano.flows import FlowName
    from fapistrano.plugins import Plugins
    from fapistrano.stopping import Stop
    from fapistrano.ui import EventKind


class Engine(Protocol):
    """What the failure path uses of the engine that runs it (:class:`fapistrano.runner.Runner`)."""

    plugins: Plugins
    dry_run: bool
    stop: Stop
    #: Set once the run is asked to stop (SIGINT, SIGTERM).
    stopping: threading.Event

    def emit(self, kind: EventKind, message: str = "", **fields: Any) -> None: ...

    def on_each(self, members: Iterable[Member], work: Callable[[Member], Any]) -> dict[str, BaseException]: ...

    def make_contexts(self, members: Sequence[Member], release_of: Callable[[Member], tuple[str | None, str | None]],
                      flow: Flow | FlowName) -> None: ...


class Recovery:
    """The failure path of one run's engine: drop, fail, switch back, remove the new release."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def health_gate(self, flow: Flow, checked: Sequence[Member], batch: Sequence[Member], earlier: Sequence[Member],
                    max_fail: int) -> bool:
        """Ask ``fap_health_check`` on every ``checked`` host; decide for the run. False when the run is over.

        Unhealthy hosts within ``max_fail`` (counting hosts dropped and hosts
        unhealthy in earlier batches) are reported and kept. More of them, or
        a stop during the check: a deploy switches every host of the run back
        (:meth:`switch_run_back`); a rollback or restart reports them failed.
        """
        engine = self.engine

        def work(member: Member) -> None:
            assert member.ctx is not None
            phase, member.ctx.phase = member.ctx.phase, "healthcheck"
            member.health = result = engine.plugins.caller("fap_health_check", member.target.plugins)(ctx=member.ctx)
            if result is None:  # no plugin checks this host: it stays where it was
                member.ctx.phase = phase
                return
            member.last_active = time.monotonic()  # its time in the summary covers the check
            if engine.dry_run:
                return
            if result.passed:
                engine.emit("log", f"healthy: check passed after {result.seconds:.1f} s ({result.attempts} attempt(s))",
                            host=member.name, phase="healthcheck")
            else:
                engine.emit("error", f"failed its health check after {result.seconds:.1f} s ({result.attempts} attempt(s)):"
                                     f" {result.output}", host=member.name, phase="healthcheck")

        failures = engine.on_each(checked, work)
        for member in checked:
            if key(member) in failures:  # the check itself could not run: that host is not healthy
                why = describe(failures[key(member)], member.name)
                member.health = HealthResult(False, 0, 0.0, why)
                engine.emit("error", f"failed its health check: {why}", host=member.name, phase="healthcheck")
        with_check = [m for m in checked if m.health is not None]
        if not with_check:
            return True
        unhealthy = [m for m in with_check if m.health is not None and not m.health.passed]
        stopped = self.engine.stopping.is_set()
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
        self.engine.stop.stop_cancelling()
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
        if not self.engine.dry_run:
            # A host left on the new release (its first deploy) keeps it: current points there.
            self.remove_new_release([m for m in live if not m.switched])
        return False

    def switch_run_back(self, members: Sequence[Member]) -> None:
        """Every switched host back to the release it had, through the ``publishing`` and ``published`` hooks
        of a rollback to it (the core's atomic switch, then what restarts processes on the old code).

        A host on its first deploy has nothing to go back to: it stays on the new release, reported.
        """
        switched = [m for m in members if m.current_moved and m.ctx is not None]
        for member in switched:
            if not member.ctx.previous_release:  # type: ignore[union-attr]
                self.engine.emit("warning", f"first deploy: nothing to switch back to; left on {member.ctx.release}",  # type: ignore[union-attr]
                          host=member.name, phase="healthcheck")
        back = [m for m in switched if m.ctx and m.ctx.previous_release]
        if not back:
            return
        deploying = {key(m): (m.ctx, m.target) for m in back}
        self.engine.make_contexts(back, lambda m: (deploying[key(m)][0].previous_release, deploying[key(m)][0].release),  # type: ignore[union-attr]
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
                    self.engine.plugins.caller(hook_name, member.target.plugins)(ctx=member.ctx)
                finally:
                    member.last_active = time.monotonic()  # switching back is part of its time

            errors.update(self.engine.on_each([m for m in back if key(m) not in errors], work))
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
                self.engine.emit("warning", f"switched back to {previous}", host=member.name, phase="healthcheck")
            elif moved_back:
                self.engine.emit("error", f"switched back to {previous}, but its {old_ctx.phase} hooks failed:"
                                   f" {describe(errors[key(member)], member.name)}; run: fap restart {target}",
                          host=member.name, phase="healthcheck")
            else:
                why = describe(errors[key(member)], member.name) if key(member) in errors else "current did not move"
                self.engine.emit("error", f"could not switch back to {previous}: {why}; run: fap rollback {target} --to {previous}",
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
                    self.engine.emit("warning", f"once step {step.where} ({command}) moves here from {member.name} ({why})",
                              host=heir.name, phase=step.phase)
                else:
                    self.engine.emit("warning", f"once step {step.where} ({command}) runs on no host: no other host of"
                                         f" {once_group(member, step)} goes on", host=member.name, phase=step.phase)

    def drop(self, flow: Flow, members: Sequence[Member], error: BaseException) -> None:
        """Take failed hosts out of a tolerant run (``--max-fail``): clean them up, go on without them."""
        for member in members:
            member.connection.discard_later()  # work on the release that goes with them (ctx.run_later): never sent
            member.status = "dropped"
            self.engine.emit("warning", f"dropped from the run (--max-fail): {describe(member.failed or error, member.name)}",
                      host=member.name, phase=member.ctx.phase if member.ctx else None)
        self.tell_plugins_failed(members, error)
        if flow.creates_release and not self.engine.dry_run:
            self.remove_new_release(members)

    def fail_run(self, flow: Flow, members: list[Member], failures: dict[str, BaseException]) -> None:
        """All-or-nothing: undo switches, tell plugins, remove the new release everywhere."""
        self.engine.stop.stop_cancelling()
        for member in members:
            member.connection.discard_later()  # work on the new release, which goes (ctx.run_later): never sent
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
        if flow.creates_release and not self.engine.dry_run:
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
                self.engine.plugins.caller("fap_deploy_failed", member.target.plugins)(ctx=member.ctx, error=error or member.failed)
            except Exception as failure:  # noqa: BLE001 - reported, then the next plugin/host goes on
                self.engine.emit("error", f"fap_deploy_failed: {describe(failure, member.name)}", host=member.name, phase="failed")

        with self.engine.stop.cancellable():
            self.engine.on_each(members, work)

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
                self.engine.emit("error", f"could not switch back to {previous or 'no release'}: {describe(error, member.name)}; {what}",
                          host=member.name, phase="publishing")
                return
            if result.exit_code == 0:
                ctx.current_release = previous  # what fap_deploy_failed then reads
            if result.exit_code == 0 and key(member) in quiet:
                return
            if result.exit_code == 0:
                member.switched = False
                member.status = "reverted"
                self.engine.emit("warning", f"switched back to {previous or 'no release (first deploy)'}", host=member.name, phase="publishing")
            else:
                self.engine.emit("error", f"could not switch back to {previous}: {result.stderr.strip()}", host=member.name, phase="publishing")

        self.engine.on_each([*members, *unsure], work)

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
                self.engine.emit("error", f"could not remove unfinished release {ctx.release}: {error}", host=member.name)
                return
            if result.exit_code != 0:
                member.release_left = True
                self.engine.emit("error", f"could not remove unfinished release {ctx.release}: {result.stderr.strip()}", host=member.name)

        self.engine.on_each(members, work)
