"""``fap restart``: the restart hooks (restarting, restarted) on every selected host's current release."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from fapistrano import flows
from fapistrano.commands.wiring import exit_with, fleet_command, wait_lock_option
from fapistrano.options import Options

if TYPE_CHECKING:  # what they name is imported when the command runs: fap --help stays fast
    from fapistrano.commands.changing import Outcome
    from fapistrano.compose import Composition
    from fapistrano.hosts import Member


def plan(members: Sequence[Member]) -> Callable[[Member], tuple[str | None, str | None]]:
    """Each host works on its current release; a host with none refuses the run."""
    current = {id(m): flows.restart_choice(m.name, m.state) for m in members if m.state is not None}
    return lambda member: (current[id(member)], None)


def restart(fleet: Composition) -> Outcome:
    """Run the restart hooks on every host of ``fleet``."""
    from fapistrano.commands.changing import execute, make_run

    fleet.announce(f"restarting {fleet.app} on {fleet.describe()}")
    run = make_run("restart", fleet.members, fleet.run_config(), fleet.options.dry_run, fleet.runner)
    return execute(fleet.runner, flows.RESTART, fleet.members, plan, run=run, local_steps=fleet.local_steps(run),
                   **fleet.run_policy)


@fleet_command("restart", "Run the restart hooks (restarting, restarted) on every selected host.")
@wait_lock_option
def command(options: Options, stage: str | None, role: str | None, overrides: list[str]) -> None:
    from fapistrano.commands.changing import render
    from fapistrano.compose import Composition

    with Composition(options, stage, role, overrides, "restart") as fleet:
        exit_with(render(fleet, restart(fleet), success="restarted"))
