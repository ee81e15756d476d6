"""``fap deploy``: a new release on every selected host, one name for the whole run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import click

from fapistrano import flows
from fapistrano.commands.wiring import exit_with, fleet_command, wait_lock_option
from fapistrano.options import Options

if TYPE_CHECKING:  # what they name is imported when the command runs: fap --help stays fast
    from fapistrano.commands.changing import Outcome
    from fapistrano.compose import Composition
    from fapistrano.hosts import Member


def plan(members: Sequence[Member]) -> Callable[[Member], tuple[str | None, str | None]]:
    """One new release name, unique on every host that answered."""
    release = flows.release_for_run([m.state for m in members if m.state is not None])
    return lambda member: (release, None)


def deploy(fleet: Composition, promoted_from: str | None = None) -> Outcome:
    """Ship a new release to every host of ``fleet`` (``promoted_from``: the stage whose revision ``fap promote`` ships)."""
    from fapistrano.commands.changing import execute, make_run

    fleet.announce(f"deploying {fleet.app} to {fleet.describe()}")
    run = make_run("deploy", fleet.members, fleet.run_config(), fleet.options.dry_run, fleet.runner)
    run.promoted_from = promoted_from
    return execute(fleet.runner, flows.RELEASE, fleet.members, plan, run=run, local_steps=fleet.local_steps(run),
                   **fleet.run_policy)


@fleet_command("deploy", "Ship a new release to every selected host (alias: release).")
@click.option("--retry-failed", "retry_failed", is_flag=True, help=(
    "Deploy only to the hosts the last run of the selected targets did not finish on (read from the hosts' history);"
    " 'nothing to retry' when it finished everywhere."))
@wait_lock_option
@click.option("--if-changed", "if_changed", is_flag=True, help=(
    "Make no release when the revision to ship and every setting, plugin and step are what the live release"
    " was made with, on every selected host."))
def command(options: Options, stage: str | None, role: str | None, overrides: list[str], retry_failed: bool,
            if_changed: bool) -> None:
    from fapistrano.commands.changing import render
    from fapistrano.compose import Composition

    if retry_failed:
        from fapistrano.commands.history import hosts_to_retry

        retry = hosts_to_retry(options, stage, role, overrides)
        if retry is None:
            return
        options = options.merged(hosts=retry)
    with Composition(options, stage, role, overrides, "deploy") as fleet:
        if if_changed:
            from fapistrano.commands.unchanged import already_live

            if already_live(fleet):
                return
        outcome = deploy(fleet)
        exit_with(render(fleet, outcome, success=f"deployed release {outcome.release}"))
