"""What deploy, rollback and restart share: connect, lock, probe, the run-level hooks, the phases; how they end.

The lockstep phase engine and its failure path are :class:`fapistrano.runner.Runner`'s,
the outcome is decided once by :func:`fapistrano.outcome.decide`; this module
runs the command through them and renders how it ended (:func:`render`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import MappingProxyType
from typing import Any

from fapistrano import freeze, history, migrations, ramps
from fapistrano.compose import Composition
from fapistrano.errors import CommandKilled, ExitCode, FapError, HostUnreachable, Stopped
from fapistrano.flows import Flow
from fapistrano.hosts import Member, key
from fapistrano.outcome import Outcome, decide, failed, refused
from fapistrano.plugins import describe, unwrapped
from fapistrano.reporting import group_errors, summarize
from fapistrano.run import Run, RunOutcome, RunTarget
from fapistrano.runner import Runner, health_phase
from fapistrano.selection import left_behind
from fapistrano.steps import LocalSteps
from fapistrano.stopping import install_signal_handlers, restore_signal_handlers

#: Given the hosts that answered, says for each host ``(release to work on, release being left)``.
ReleasePlan = Callable[[Sequence[Member]], Callable[[Member], tuple[str | None, str | None]]]


def execute(
    runner: Runner,
    flow: Flow,
    members: list[Member],
    plan: ReleasePlan,
    lock: bool = True,
    batch_size: int | list[int | str] = 0,
    max_fail: str = "0",
    run: Run | None = None,
    local_steps: LocalSteps | None = None,
    wait_lock: freeze.WaitLock | None = None,
    batch_pause: float = 0.0,
) -> Outcome:
    """Connect, lock, plan the release, ``fap_run_starting``, the phases batch by batch, ``fap_run_finished``.

    The locks are released and the hosts disconnected on every exit path.
    Ctrl-C (SIGINT) and SIGTERM are handled here: the first one stops the
    run cleanly (exit 130, or 143 for SIGTERM), the second exits at once.
    ``fap_run_finished`` is called whatever happened, once the hosts are
    released; what it raises is a warning. ``local_steps`` run at the
    phases' edges (see :class:`fapistrano.runner.PhaseBarrier`), and their
    ``failed`` steps once when the run failed.
    """
    previous_handlers = install_signal_handlers(runner.stop.interrupt)
    outcome = failed(members, [])
    try:
        try:
            outcome = _execute(runner, flow, members, plan, lock, batch_size, max_fail, run, local_steps, wait_lock, batch_pause)
            if run is not None and flow.creates_release and not outcome.ok and not outcome.moved:
                # The release is not live anywhere, but a migration it ran stays: the report says which.
                switched_back = any(m.status == "reverted" for m in members)
                outcome.errors += migrations.not_undone(migrations.ledger_of(run.state), outcome.release, switched_back)
        except BaseException as error:
            # Told to fap_run_finished as it will be printed (a signal outside the phases: "interrupted").
            text = describe(error, "") if isinstance(error, Exception) else "interrupted"
            outcome = failed(members, [text], getattr(error, "exit_code", ExitCode.FAILED))
            raise
        finally:
            try:
                if local_steps is not None and not outcome.ok:
                    with runner.stop.cancellable():
                        local_steps.failed(members)
                if run is not None and _run_hooks_listen(runner, members):
                    run.revision = _revision(members, lambda ctx: ctx.release)
            finally:
                runner.close(members, history.closing_scripts(runner, members, run))
                outcome = _with_failures_at_close(runner, outcome)
        return outcome
    finally:
        try:
            if run is not None:
                _run_finished(runner, members, run, outcome)
        finally:
            restore_signal_handlers(previous_handlers)


def _with_failures_at_close(runner: Runner, outcome: Outcome) -> Outcome:
    """The outcome, failed where a last phase's command, sent with the unlock (``ctx.run_later``), failed.

    A run that failed already keeps its outcome: the failure at the end is reported as an error line.
    """
    late = [(m, m.failed) for m in runner.sessions.failed_at_close if m.failed is not None]
    if not late or not outcome.ok:
        return outcome
    errors = group_errors([(m.name, f"{m.failed_phase}: {describe(error, m.name)}") for m, error in late])
    return Outcome(RunOutcome.FAILED, errors, outcome.release, outcome.moved)


def _execute(runner: Runner, flow: Flow, members: list[Member], plan: ReleasePlan, lock: bool, batch_size: int | list[int | str],
             max_fail: str, run: Run | None, local_steps: LocalSteps | None, wait_lock: freeze.WaitLock | None = None,
             batch_pause: float = 0.0) -> Outcome:
    take_lock = lock and not runner.dry_run
    tolerated = allowed_failures(max_fail, len(members))
    failures = runner.connect(members, probe=True, lock=take_lock)
    if failures:
        if len(failures) > tolerated or len(failures) == len(members):
            return stop_before_start(members, failures)
        for member in members:
            if key(member) in failures:
                member.failed = failures[key(member)]
                member.status = "dropped"
                runner.emit("warning", f"dropped from the run (--max-fail): {describe(member.failed, member.name)}", host=member.name)
    live = [m for m in members if m.failed is None]
    runner.recovery.hand_over(flow, None, [m for m in members if m.status == "dropped"], live)
    refusal = freeze.admit(runner, live, wait_lock)  # a frozen target refuses (exit 5); --wait-lock waits for a run
    if refusal is not None:
        return refused(refusal[1], refusal[0])
    held = [m for m in live if m.state and m.state.lock_owner and not m.state.locked_by_us]
    if held:
        errors = [f"{m.name}: {m.target.config['path']} is locked by {m.state.lock_owner}"  # type: ignore[union-attr]
                  f" (run 'fap unlock' if that run is gone)" for m in held]
        return refused(errors)
    try:
        release_of = plan(live)
    except FapError as error:
        return refused([str(error)], error.exit_code)
    runner.make_contexts(live, release_of, flow)
    release = live[0].ctx.release if live and live[0].ctx else None
    if run is not None:
        refusal_of_plugin = _run_starting(runner, members, run, release)
        if refusal_of_plugin is not None:
            return refusal_of_plugin
    ok = True
    batches = ramps.split(live, batch_size)
    if len(batches) > 1:
        runner.emit("run", ramps.describe_plan(batches, lambda m: m.name, batch_pause), data={"batches": [[m.name for m in b] for b in batches]})
    if local_steps is not None:
        local_steps.batches = len(batches)
    # A batch's last phases (finishing: the cleanup of old releases) wait until every batch is live and healthy:
    # a later batch's failed health check switches the earlier ones back, to releases they must still have.
    held_phases = flow.phases[flow.phases.index(health_phase(flow)) + 1:] if len(batches) > 1 else ()
    completed = True
    for number, batch in enumerate(batches, start=1):
        if number > 1:
            ramps.pause(runner, batch_pause, number, len(batches))  # a signal during it: this batch stops before it starts
        if len(batches) > 1 and not runner.stopping.is_set():
            runner.emit("run", f"batch {number}/{len(batches)}: {', '.join(m.name for m in batch)}")
        already_dropped = sum(1 for m in members if m.status == "dropped")
        done = [m for earlier in batches[:number - 1] for m in earlier]
        to_come = [m for later in batches[number:] for m in later]
        ok = runner.run_flow(flow, batch, max_fail=tolerated - already_dropped, barrier=local_steps, earlier=done,
                             later=to_come, phases=flow.phases[:len(flow.phases) - len(held_phases)]) and ok
        if any(m.failed is not None and m.status != "dropped" for m in batch):
            for later in batches[number:]:
                for member in later:
                    member.failed = Stopped(f"stopped: batch {number} failed")
            completed = False
            break
    went_live = [m for m in live if m.failed is None]
    if held_phases and went_live:
        runner.emit("run", f"{' and '.join(held_phases)} on the {len(went_live)} host(s) that went live")
        if local_steps is not None:
            local_steps.batches = 1  # the held_phases phases run once, for every batch; their local: steps with them
        ok = runner.run_flow(flow, went_live, barrier=local_steps if completed else None, phases=held_phases) and ok
    return decide(flow, members, ok, release, runner.stop)


def make_run(command: str, members: Sequence[Member], config: dict[str, Any], dry_run: bool, runner: Runner) -> Run:
    """The ``run`` of the run-level hooks, before anything is connected."""
    targets: dict[str, list[Member]] = {}
    for member in members:
        targets.setdefault(member.label, []).append(member)
    return Run(
        command=command,
        hosts=tuple(dict.fromkeys(m.name for m in members)),
        targets=tuple(RunTarget(group[0].settings.stage, group[0].settings.role, tuple(m.name for m in group),
                                group[0].target.config) for group in targets.values()),
        config=MappingProxyType(config),
        dry_run=dry_run,
        reporter=runner.reporter,
        masker=runner.masker,
        project_dir=runner.project_dir,
        processes=runner.local_processes,
    )


def _run_plugins(members: Sequence[Member]) -> list[str]:
    """The plugins enabled for any target of the run, each once."""
    return list(dict.fromkeys(name for m in members for name in m.settings.plugins))


def _run_starting(runner: Runner, members: Sequence[Member], run: Run, release: str | None) -> Outcome | None:
    """``fap_run_starting``: hosts connected, locked and probed, none changed. A refusal is the run's outcome."""
    run.release = release
    run.targets = tuple(_resolved(target, members) for target in run.targets)
    for member in members:
        if member.ctx is not None:
            member.ctx.run_state = run.state  # what fap_run_starting prepares, every host's phases read
    if _run_hooks_listen(runner, members):
        run.previous_revision = _revision(members, lambda ctx: ctx.previous_release)
    try:
        runner.plugins.caller("fap_run_starting", _run_plugins(members))(run=run)
    except Exception as error:  # noqa: BLE001 - any plugin error aborts the run, named
        if runner.stopping.is_set() and isinstance(unwrapped(error), CommandKilled):
            return None  # killed by the stop (a build): the phases report the stop, nothing changed
        # Bad input a plugin finds before any host changed is exit 2, like any other (a ConfigError).
        for member in members:
            if member.failed is None:  # not run, not failed: each row says skipped, current unchanged
                member.failed = Stopped(f"refused in fap_run_starting: {describe(error, '')}")
        return refused([describe(error, "")], getattr(unwrapped(error), "exit_code", ExitCode.FAILED), release)
    return None


def _run_hooks_listen(runner: Runner, members: Sequence[Member]) -> bool:
    """Whether a plugin of the run implements a run-level hook: only then are revisions asked (a round trip)."""
    active = set(_run_plugins(members))
    hooks = (runner.plugins.manager.hook.fap_run_starting, runner.plugins.manager.hook.fap_run_finished)
    return any(impl.plugin_name in active for hook in hooks for impl in hook.get_hookimpls())


def _revision(members: Sequence[Member], release_of: Callable[[Any], str | None]) -> str | None:
    """The revision a release holds, asked on the first host still connected that has that release; else ``None``."""
    for member in members:
        ctx = member.ctx
        if ctx is None or not release_of(ctx) or isinstance(member.failed, HostUnreachable):
            continue
        try:
            return ctx.revision(release_of(ctx))
        except Exception:  # noqa: BLE001 - a revision is news for a notification, never a reason to fail the run
            return None
    return None


def _resolved(target: RunTarget, members: Sequence[Member]) -> RunTarget:
    """``target`` with the settings of its first host as resolved for the run's release."""
    for member in members:
        if (member.settings.stage, member.settings.role) == (target.stage, target.role) and member.ctx is not None:
            return RunTarget(target.stage, target.role, target.hosts, member.ctx.config)
    return target


def _run_finished(runner: Runner, members: Sequence[Member], run: Run, outcome: Outcome) -> None:
    """``fap_run_finished``, once the hosts are released: whatever it raises is a warning."""
    run.ok = outcome.ok
    run.outcome = outcome.result
    run.error = "\n".join(outcome.errors) or None
    run.release = outcome.release or run.release
    run.hook = "fap_run_finished"
    try:
        runner.plugins.caller("fap_run_finished", _run_plugins(members))(run=run)
    except Exception as error:  # noqa: BLE001 - the outcome is decided; a notification failing cannot change it
        runner.emit("warning", f"fap_run_finished: {describe(error, '')}")


def return_hints(members: Sequence[Member], selection: str, left_out: bool) -> list[str]:
    """After a deploy that left hosts on its new release: the command that brings them back, and who has nothing to go back to.

    The command names exactly those hosts (``--hosts``) unless they are every
    host the selection reaches; ``--hosts`` matches a name in every target, so
    a name shared with a target that stays gets one command per target.
    """
    moved = [m for m in members if m.current_moved and m.ctx is not None]
    back = [m for m in moved if m.ctx and m.ctx.previous_release]
    first = [m for m in moved if not (m.ctx and m.ctx.previous_release)]
    lines = []
    if back and len(back) == len(members) and not left_out:
        lines.append(f"to return to the previous release: {' '.join(p for p in ('fap rollback', selection) if p)}")
    elif back:
        names = {m.name for m in back}
        shared = any(m.name in names for m in members if m not in back)
        groups: dict[str, list[Member]] = {}
        for member in back:
            groups.setdefault(f"-s {member.settings.stage} -r {member.settings.role}" if shared else selection, []).append(member)
        commands = [" ".join(p for p in ("fap rollback", where, "--hosts", ",".join(dict.fromkeys(m.name for m in group))) if p)
                    for where, group in groups.items()]
        lines.append(f"to return to the previous release: {'; '.join(commands)}")
    if first:
        hosts = ", ".join(dict.fromkeys(m.name for m in first))
        lines.append(f"no release to return to on {hosts} (first deploy): fix the cause and deploy again")
    return lines


def allowed_failures(spec: str | int, total: int) -> int:
    """How many hosts ``--max-fail`` lets fail: ``N`` or ``P%`` of ``total`` (rounded down)."""
    text = str(spec).strip()
    try:
        if text.endswith("%"):
            percent = float(text[:-1])
            if not 0 <= percent <= 100:
                raise ValueError
            return int(total * percent / 100)
        count = int(text)
        if count < 0:
            raise ValueError
        return count
    except ValueError:
        raise FapError(f"max_fail: expected a number of hosts or a percentage like 10%, got {text!r}") from None


def stop_before_start(members: list[Member], failures: dict[str, BaseException]) -> Outcome:
    """Hosts failed to connect (or probe): the run stops with nothing changed; one line per failed host."""
    errors = []
    for member in members:
        error = failures.get(key(member))
        if error is not None:
            member.failed = error
            errors.append(f"{member.name}: {describe(error, member.name)}")
    return refused(errors)


def render(fleet: Composition, outcome: Outcome, success: str, command: str | None = None) -> int:
    """How deploy, rollback or restart ended: the summary, then ``success`` or the errors; returns the exit code.

    ``command`` names the summary when the user typed another command than the
    flow's (``fap promote`` runs a deploy). The hosts are released before the
    lines after the summary are printed.
    """
    members = fleet.members
    ran = any(m.ctx is not None or m.failed is not None for m in members)
    results = summarize(members, fleet.masker) if ran else []
    fleet.reporter.summary(f"fap {command or fleet.command}: {'ok' if outcome.ok else 'FAILED'}", results, outcome.ok)
    fleet.close()
    trips = sorted(r.round_trips for r in results if r.round_trips)
    if trips and fleet.options.verbosity > 0:  # -v: what a slow link costs this run (docs/performance.rst)
        spread = f"{trips[0]}" if trips[0] == trips[-1] else f"{trips[0]}-{trips[-1]}"
        fleet.console.print(f"round trips per host: {spread} (the probe and the unlock included)", markup=False, highlight=False)
    if fleet.command == "deploy":
        switched = [(m.label, m.name, m.ctx.release or "") for m in members if m.current_moved and m.ctx]
        for line in left_behind(switched, fleet.left_out):
            fleet.console.print(f"warning: {fleet.masker(line)}", style="yellow", markup=False, highlight=False, soft_wrap=True)
    if outcome.ok:
        fleet.console.print(f"dry run, nothing changed: would have {success}" if fleet.options.dry_run else success,
                            markup=False, highlight=False)
        return outcome.exit_code
    for error in outcome.errors:
        fleet.errors.print(f"fap: error: {fleet.masker(error)}", style="red", markup=False, highlight=False, soft_wrap=True)
    if outcome.where:
        fleet.errors.print(f"fap: {outcome.where}", style="red", markup=False, highlight=False, soft_wrap=True)
    if outcome.moved and fleet.command == "deploy":
        for line in return_hints(members, fleet.selection, bool(fleet.left_out)):
            fleet.errors.print(f"fap: {line}", style="red", markup=False, highlight=False, soft_wrap=True)
    hint = history.retry_hint(fleet.command, fleet.selection, members) \
        if outcome.exit_code == ExitCode.PARTIAL and not fleet.options.dry_run else None
    if hint:
        fleet.errors.print(f"fap: {hint}", style="red", markup=False, highlight=False, soft_wrap=True)
    return outcome.exit_code
