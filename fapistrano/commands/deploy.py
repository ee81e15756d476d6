"""``fap deploy``: a new release on every selected host, one name for the whole run."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fapistrano import flows
from fapistrano.commands.changing import Outcome, execute, make_run
from fapistrano.compose import Composition
from fapistrano.hosts import Member


def plan(members: Sequence[Member]) -> Callable[[Member], tuple[str | None, str | None]]:
    """One new release name, unique on every host that answered."""
    release = flows.release_for_run([m.state for m in members if m.state is not None])
    return lambda member: (release, None)


def deploy(fleet: Composition) -> Outcome:
    """Ship a new release to every host of ``fleet``."""
    fleet.announce(f"deploying {fleet.app} to {fleet.describe()}")
    run = make_run("deploy", fleet.members, fleet.run_config(), fleet.options.dry_run, fleet.runner)
    return execute(fleet.runner, flows.RELEASE, fleet.members, plan, run=run, local_steps=fleet.local_steps(run),
                   **fleet.run_policy)
