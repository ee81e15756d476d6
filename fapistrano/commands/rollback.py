"""``fap rollback``: every selected host back to its previous release (or ``--to RELEASE``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import click

from fapistrano import flows, migrations
from fapistrano.commands.options import Options, exit_with, fleet_command, wait_lock_option
from fapistrano.errors import FapError

if TYPE_CHECKING:  # what they name is imported when the command runs: fap --help stays fast
    from fapistrano.commands.changing import Outcome
    from fapistrano.compose import Composition
    from fapistrano.hosts import Member
    from fapistrano.run import Run


def planner(to: str | None, across_migrations: bool = False, run: Run | None = None,
            warn: Callable[[str], None] | None = None) -> Callable[[Sequence[Member]], Callable[[Member], tuple[str | None, str | None]]]:
    """For each host, ``(release to return to, release being left)``; every refusal at once, before any host changes.

    A rollback across a release that migrated the schema is refused here too
    (exit 2), unless ``across_migrations`` or a ``migrates_back`` step; the
    plan of those steps goes to ``run``'s ledger (see :mod:`fapistrano.migrations`).
    """

    def plan(members: Sequence[Member]) -> Callable[[Member], tuple[str | None, str | None]]:
        choices, refusals = {}, []
        for member in members:
            assert member.state is not None
            try:
                choices[id(member)] = flows.rollback_choice(member.name, member.state, to)
            except FapError as error:
                refusals.append(str(error))
        if refusals:
            raise FapError("; ".join(refusals))
        going_back, warnings = migrations.guard([migrations.host_plan(m, choices[id(m)][0]) for m in members], across_migrations)
        ledger = migrations.ledger_of(run.state) if run is not None else None
        if ledger is not None:
            ledger.going_back.update(going_back)
        for warning in warnings:
            if warn is not None:
                warn(warning)
        return lambda member: choices[id(member)]

    return plan


def rollback(fleet: Composition, to: str | None, across_migrations: bool = False) -> Outcome:
    """Switch every host of ``fleet`` back; across a migration only with ``across_migrations`` or a ``migrates_back`` step."""
    from fapistrano.commands.changing import execute, make_run

    fleet.announce(f"rolling back {fleet.app} on {fleet.describe()}")
    run = make_run("rollback", fleet.members, fleet.run_config(), fleet.options.dry_run, fleet.runner)
    plan = planner(to, across_migrations, run, warn=lambda text: fleet.runner.emit("warning", text))
    return execute(fleet.runner, flows.ROLLBACK, fleet.members, plan, run=run, local_steps=fleet.local_steps(run),
                   **fleet.run_policy)


@fleet_command("rollback", "Switch every selected host back to its previous release.")
@click.option("--to", "to", metavar="RELEASE", help="Return to this release instead of the previous one.")
@click.option("--across-migrations", "across_migrations", is_flag=True,
              help="Roll back past releases that migrated the schema, leaving the schema as it is (no migrates_back step).")
@wait_lock_option
def command(options: Options, stage: str | None, role: str | None, overrides: list[str], to: str | None,
            across_migrations: bool) -> None:
    from fapistrano.commands.changing import render
    from fapistrano.compose import Composition

    with Composition(options, stage, role, overrides, "rollback") as fleet:
        exit_with(render(fleet, rollback(fleet, to, across_migrations), success="rolled back"))
