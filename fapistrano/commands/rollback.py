"""``fap rollback``: every selected host back to its previous release (or ``--to RELEASE``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fapistrano import flows
from fapistrano.commands.changing import Outcome, execute, make_run
from fapistrano.compose import Composition
from fapistrano.errors import FapError
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
    fleet.announce(f"rolling back {fleet.app} on {fleet.describe()}")
    run = make_run("rollback", fleet.members, fleet.run_config(), fleet.options.dry_run, fleet.runner)
    return execute(fleet.runner, flows.ROLLBACK, fleet.members, planner(to), run=run, local_steps=fleet.local_steps(run),
                   **fleet.run_policy)
