"""``fap rollback``: every selected host back to its previous release (or ``--to RELEASE``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import click

from fapistrano import flows
from fapistrano.commands.options import Options, exit_with, fleet_command, wait_lock_option
from fapistrano.errors import FapError

if TYPE_CHECKING:  # what they name is imported when the command runs: fap --help stays fast
    from fapistrano.commands.changing import Outcome
    from fapistrano.compose import Composition
    from fapistrano.hosts import Member


def planner(to: str | None) -> Callable[[Sequence[Member]], Callable[[Member], tuple[str | None, str | None]]]:
    """For each host, ``(release to return to, release being left)``; every refusal at once, before any host changes."""

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
        return lambda member: choices[id(member)]

    return plan


def rollback(fleet: Composition, to: str | None) -> Outcome:
    """Switch every host of ``fleet`` back."""
    from fapistrano.commands.changing import execute, make_run

    fleet.announce(f"rolling back {fleet.app} on {fleet.describe()}")
    run = make_run("rollback", fleet.members, fleet.run_config(), fleet.options.dry_run, fleet.runner)
    return execute(fleet.runner, flows.ROLLBACK, fleet.members, planner(to), run=run, local_steps=fleet.local_steps(run),
                   **fleet.run_policy)


@fleet_command("rollback", "Switch every selected host back to its previous release.")
@click.option("--to", "to", metavar="RELEASE", help="Return to this release instead of the previous one.")
@wait_lock_option
def command(options: Options, stage: str | None, role: str | None, overrides: list[str], to: str | None) -> None:
    from fapistrano.commands.changing import render
    from fapistrano.compose import Composition

    with Composition(options, stage, role, overrides, "rollback") as fleet:
        exit_with(render(fleet, rollback(fleet, to), success="rolled back"))
