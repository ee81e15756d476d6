"""``fap restart``: the restart hooks (restarting, restarted) on every selected host's current release."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fapistrano import flows
from fapistrano.commands.changing import Outcome, execute, make_run
from fapistrano.compose import Composition
from fapistrano.hosts import Member


def plan(members: Sequence[Member]) -> Callable[[Member], tuple[str | None, str | None]]:
    """Each host works on its current release; a host with none refuses the run."""
    current = {id(m): flows.restart_choice(m.name, m.state) for m in members if m.state is not None}
    return lambda member: (current[id(member)], None)


def restart(fleet: Composition) -> Outcome:
    """Run the restart hooks on every host of ``fleet``."""
    fleet.announce(f"restarting {fleet.app} on {fleet.describe()}")
    run = make_run("restart", fleet.members, fleet.run_config(), fleet.options.dry_run, fleet.runner)
    return execute(fleet.runner, flows.RESTART, fleet.members, plan, run=run, local_steps=fleet.local_steps(run),
                   **fleet.run_policy)
