"""``fap rollback``: every selected host back to its previous release (or ``--to RELEASE``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import click

from fapistrano import flows, migrations
from fapistrano.commands.wiring import exit_with, fleet_command, wait_lock_option
from fapistrano.errors import ExitCode, FapError
from fapistrano.options import Options

if TYPE_CHECKING:  # what they name is imported when the command runs: fap --help stays fast
    from fapistrano.commands.changing import Outcome
    from fapistrano.compose import Composition
    from fapistrano.hosts import Member
    from fapistrano.run import Run


def bad_text(mark: Mapping[str, object]) -> str:
    """``by alice@laptop at 2026-12-05T07:13:00Z: rolled back to 261205-071000``."""
    parts = [f"by {mark['who']}" if mark.get("who") else "", f"at {mark['when']}" if mark.get("when") else ""]
    text = " ".join(p for p in parts if p)
    why = mark.get("why")
    return f"{text}: {why}" if why and text else str(why or text or "no details")


def planner(to: str | None, warn: Callable[[str], None] = lambda text: None, across_migrations: bool = False,
            run: Run | None = None) -> Callable[[Sequence[Member]], Callable[[Member], tuple[str | None, str | None]]]:
    """For each host, ``(release to return to, release being left)``; every refusal at once, before any host changes.

    The refusal's exit code is the highest of the hosts' (2 when a host has only bad releases to go back to).
    ``warn`` is told, once per distinct mark, when ``to`` names a release marked bad.

    A rollback across a release that migrated the schema is refused here too
    (exit 2), unless ``across_migrations`` or a ``migrates_back`` step; the
    plan of those steps goes to ``run``'s ledger (see :mod:`fapistrano.migrations`).
    """

    def plan(members: Sequence[Member]) -> Callable[[Member], tuple[str | None, str | None]]:
        choices, refusals, exit_code = {}, [], ExitCode.FAILED
        for member in members:
            assert member.state is not None
            try:
                choices[id(member)] = flows.rollback_choice(member.name, member.state, to)
            except FapError as error:
                refusals.append(str(error))
                exit_code = max(exit_code, ExitCode(error.exit_code))
        if refusals:
            refusal = FapError("; ".join(refusals))
            refusal.exit_code = exit_code
            raise refusal
        going_back, warnings = migrations.guard([migrations.host_plan(m, choices[id(m)][0]) for m in members], across_migrations)
        ledger = migrations.ledger_of(run.state) if run is not None else None
        if ledger is not None:
            ledger.going_back.update(going_back)
        marked: dict[str, list[Member]] = {}
        for member in members:
            assert member.state is not None
            mark = member.state.marked(to, "bad") if to is not None else None
            if mark is not None:
                marked.setdefault(bad_text(mark), []).append(member)
        for text, hosts in marked.items():
            where = "" if len(hosts) == len(members) else f" on {', '.join(m.name for m in hosts)}"
            warn(f"{to} is marked bad{where} ({text}): rolling back to it as asked with --to;"
                 " its bad mark is cleared")
        for warning in warnings:
            warn(warning)
        return lambda member: choices[id(member)]

    return plan


def rollback(fleet: Composition, to: str | None, across_migrations: bool = False) -> Outcome:
    """Switch every host of ``fleet`` back; across a migration only with ``across_migrations`` or a ``migrates_back`` step."""
    from fapistrano.commands.changing import execute, make_run

    fleet.announce(f"rolling back {fleet.app} on {fleet.describe()}")
    run = make_run("rollback", fleet.members, fleet.run_config(), fleet.options.dry_run, fleet.runner)

    def warn(text: str) -> None:
        fleet.runner.emit("warning", text)

    plan = planner(to, warn, across_migrations, run)
    return execute(fleet.runner, flows.ROLLBACK, fleet.members, plan, run=run, local_steps=fleet.local_steps(run),
                   **fleet.run_policy)


@fleet_command("rollback", "Switch every selected host back to its previous release (the newest before current not"
               " marked bad); the release left is kept, marked bad.",
               short_help="Switch every selected host back to its previous release.")
@click.option("--to", "to", metavar="RELEASE", help="Return to this release instead of the previous one (a bad one too,"
              " with a warning).")
@click.option("--across-migrations", "across_migrations", is_flag=True,
              help="Roll back past releases that migrated the schema, leaving the schema as it is (no migrates_back step).")
@wait_lock_option
def command(options: Options, stage: str | None, role: str | None, overrides: list[str], to: str | None,
            across_migrations: bool) -> None:
    from fapistrano.commands.changing import render
    from fapistrano.compose import Composition

    with Composition(options, stage, role, overrides, "rollback") as fleet:
        exit_with(render(fleet, rollback(fleet, to, across_migrations), success="rolled back"))
