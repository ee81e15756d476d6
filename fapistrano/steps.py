"""The steps of ``hooks:`` in deploy.yml: which host runs which, what they see, and the local ones.

``run:`` steps run on the hosts through the built-in plugin
:mod:`fapistrano.builtin.run_steps` (plugin ``core.steps``), after every other plugin's hookimpl of the
phase. ``local:`` steps run on the deployer's machine, once per run, from
:class:`LocalSteps` - the phase engine's barrier
(:class:`fapistrano.runner.PhaseBarrier`): before any host starts ``starting``,
after every host finished any other phase, and once when the run failed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fapistrano.config import Step
from fapistrano.errors import CommandFailed, FapError, one_line
from fapistrano.migrations import Migration, ledger_of, step_text

if TYPE_CHECKING:
    from fapistrano.hosts import Member
    from fapistrano.run import Run


class StepFailed(FapError):
    """A step of ``hooks:`` exited non-zero: names the step, where it ran, and its last lines."""


def assign_steps(members: Sequence[Member]) -> None:
    """Give each member the ``run:`` steps it runs; a ``once`` step goes to one host only.

    ``once`` written at the top level: the first selected host of each stage
    (in deploy.yml's order); written in a stage/role block: that target's
    first selected host. A ``%(name)s`` no setting defines is an error here,
    before any host is connected.
    """
    first_of: dict[tuple[str, str | None], Member] = {}
    for member in members:
        first_of.setdefault((member.settings.stage, None), member)
        first_of.setdefault((member.settings.stage, member.settings.role), member)
    for member in members:
        chosen = []
        for step in member.settings.steps:
            step.expand(member.target.config)  # an unknown name fails now, not half-way through the run
            if step.local:
                continue
            if step.once and first_of[(member.settings.stage, step.role)] is not member:
                continue
            chosen.append(step)
        member.steps = tuple(chosen)


def once_group(member: Member, step: Step) -> str:
    """Among whom ``step`` runs once: the stage (written at the top level), or the member's stage/role (in a block)."""
    return member.settings.stage if step.role is None else member.label


def hand_over_once_steps(lost: Member, candidates: Sequence[Member], phases: Sequence[str]) -> list[tuple[Step, Member | None]]:
    """Move the ``once`` steps ``lost`` carries in ``phases`` to the first of ``candidates`` that runs the same step.

    ``lost`` leaves the run (unreachable, dropped under ``--max-fail``, failed
    after the switch) before those phases: the step must still run on a host
    that goes on, the next one of its stage (or target) in deploy.yml's order.
    Returns each step moved with its new host (``None``: no host of its group goes on).
    """
    moved: list[tuple[Step, Member | None]] = []
    for step in [s for s in lost.steps if s.once and s.phase in phases]:
        heir = next((c for c in candidates if c is not lost and step in c.settings.steps
                     and once_group(c, step) == once_group(lost, step)), None)
        _set_steps(lost, [s for s in lost.steps if s != step])
        if heir is not None:
            _set_steps(heir, [*heir.steps, step])
        moved.append((step, heir))
    return moved


def _set_steps(member: Member, steps: Sequence[Step]) -> None:
    """``member`` runs ``steps`` (in deploy.yml's order), from its next phase on: its ``ctx`` reads them there."""
    keep = set(steps)
    member.steps = tuple(s for s in member.settings.steps if s in keep)
    member.target = dataclasses.replace(member.target, steps=member.steps)
    if member.ctx is not None:
        member.ctx.target = member.target


def remote_environment(ctx: Any) -> dict[str, str]:
    """The ``FAP_*`` variables a ``run:`` step sees on its host."""
    config = ctx.config
    environment = {
        "FAP_APP_NAME": str(config.get("app_name") or ""),
        "FAP_COMMAND": ctx.command,
        "FAP_STAGE": ctx.stage,
        "FAP_ROLE": ctx.role,
        "FAP_HOST": ctx.host,
        "FAP_RELEASE": ctx.release or "",
        "FAP_RELEASE_PATH": ctx.release_path,
        "FAP_CURRENT_PATH": config["current_path"],
        "FAP_SHARED_PATH": config["shared_path"],
        "FAP_PREVIOUS_RELEASE": ctx.previous_release or "",
    }
    revision = ctx.revision()
    if revision:  # known only to the plugin that put the code in the release (fap_release_revision)
        environment["FAP_REVISION"] = revision
    return environment


def failure(step: Step, where: str, error: CommandFailed) -> StepFailed:
    """The error of a failed step: the step (file:line and command), where it ran, its status and last lines."""
    lines = [line.strip() for line in (error.stderr or error.stdout).strip().splitlines() if line.strip()]
    cause = " | ".join(lines[-3:]) or "no output"
    return StepFailed(f"{where}: step {step.where} ({one_line(step.command, 80)}) exited {error.status}: {cause}")


class LocalSteps:
    """The ``local:`` steps of one run, run on the deployer's machine in deploy.yml's directory.

    Each step runs once per run even when several targets' blocks inherit it
    from the top level. Under ``--dry-run`` a step is shown, not run.
    """

    def __init__(self, run: Run, members: Sequence[Member], directory: str) -> None:
        self.run = run
        self.directory = directory
        steps: dict[tuple[str, str], Step] = {}
        # A step's %(name)s are its first target's settings, read when it runs (the release is named by then).
        self._member_of: dict[tuple[str, str], Member] = {}
        for member in members:
            for step in member.settings.steps:
                if step.local:
                    steps.setdefault((step.where, step.phase), step)
                    self._member_of.setdefault((step.where, step.phase), member)
        self.steps = tuple(steps.values())
        #: How many batches the run goes through (``batch_size``): steps after a phase wait for the last one.
        self.batches = 1
        self._calls: dict[tuple[str, str], int] = {}

    def before(self, phase: str, members: Sequence[Member]) -> None:
        """Before any host starts ``phase``: the ``local:`` steps of ``starting`` (before the first batch)."""
        self._calls[("before", phase)] = self._calls.get(("before", phase), 0) + 1
        if phase == "starting" and self._calls[("before", phase)] == 1:
            self._run_phase(phase)

    def after(self, phase: str, members: Sequence[Member]) -> None:
        """Every host finished ``phase`` (in the last batch): its ``local:`` steps (``starting``'s ran before)."""
        self._calls[("after", phase)] = self._calls.get(("after", phase), 0) + 1
        if phase != "starting" and self._calls[("after", phase)] == self.batches:
            self._run_phase(phase, ok=True if phase == "finished" else None)

    def failed(self, members: Sequence[Member]) -> None:
        """The run failed: the ``local:`` steps of ``failed``, once; a failing one is reported, the others go on."""
        for step in self._of("failed"):
            try:
                self._run_step(step, ok=False)
            except FapError as error:
                self.run.warn(str(error))

    def _of(self, phase: str) -> list[Step]:
        return [step for step in self.steps if step.phase == phase]

    def _run_phase(self, phase: str, ok: bool | None = None) -> None:
        for step in self._of(phase):
            self._run_step(step, ok)

    def _run_step(self, step: Step, ok: bool | None) -> None:
        command = step.expand(self._member_of[(step.where, step.phase)].target.config)
        previous_hook = self.run.hook
        self.run.hook = f"fap_{step.phase}"  # where the step's lines show: its phase
        try:
            try:
                self.run.local(command, cwd=self.directory, env=self._environment(ok))
            except CommandFailed as error:
                raise failure(step, "local", error) from None
            ledger = ledger_of(self.run.state)
            if step.migrates and not self.run.dry_run and self.run.release and ledger is not None:
                # Run here, it changed the schema of every stage of the run: every host marks the release.
                ledger.record(Migration(self.run.release, step_text(step.where, step.command), "local", step.phase))
        finally:
            self.run.hook = previous_hook

    def _environment(self, ok: bool | None) -> dict[str, str]:
        run = self.run
        environment = {
            "FAP_APP_NAME": str(run.config.get("app_name") or ""),
            "FAP_COMMAND": run.command,
            "FAP_STAGE": " ".join(dict.fromkeys(t.stage for t in run.targets)),
            "FAP_ROLES": " ".join(dict.fromkeys(t.role for t in run.targets)),
            "FAP_RELEASE": run.release or "",
            "FAP_HOSTS": " ".join(run.hosts),
        }
        if ok is not None:
            environment["FAP_OK"] = "true" if ok else "false"
        return environment
