"""``fap lock``: freeze the selected targets with a reason; every changing command then refuses (exit 5)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click

from fapistrano import layout
from fapistrano.commands.wiring import exit_with, fleet_command
from fapistrano.errors import CommandFailed, ExitCode
from fapistrano.hosts import Member, key
from fapistrano.options import Options

if TYPE_CHECKING:  # what they name is imported when the command runs: fap --help stays fast
    from fapistrano.compose import Composition


def freezer() -> str:
    """Who froze the target, as the run lock names its holder: ``user@machine``."""
    import os
    import socket

    from fapistrano.sessions import account_name

    return f"{os.environ.get('USER') or os.environ.get('LOGNAME') or account_name()}@{socket.gethostname()}"


def lock(fleet: Composition, message: str) -> ExitCode:
    """Freeze every host of ``fleet`` with ``message`` (masked); a host frozen already keeps its freeze. Return fap's exit code.

    Under ``--dry-run`` the freeze is shown, not written.
    """
    from fapistrano import freeze
    from fapistrano.plugins import describe

    runner, members = fleet.runner, fleet.members
    # A secret typed into the reason never reaches a host: the freeze is stored as it would be shown.
    line = freeze.record(freezer(), time.strftime("%Y-%m-%d %H:%M:%S %z"), fleet.masker(message))
    shown = freeze.parse(line)
    assert shown is not None
    with fleet.connected() as hosts:
        if hosts.failures:  # nothing frozen unless every host answered
            for error in hosts.failure_lines():
                runner.emit("error", error)
            return ExitCode.FAILED

        def work(member: Member) -> None:
            assert member.state is not None
            there = freeze.parse(member.state.freeze)
            if there is None and runner.dry_run:
                runner.emit("log", f"would freeze: {freeze.shown(shown.message)}", host=member.name, phase="lock")
                return
            if there is None:
                path = member.target.config["path"]
                result = member.connection.run(freeze.freeze_script(path, line))
                if result.exit_code != 0:
                    raise CommandFailed(member.name, "(lock) writing the freeze", result.exit_code, runner.masker(result.stderr))
                # Frozen meanwhile by another fap lock: its freeze is the one kept.
                there = freeze.parse(layout.parse_probe(result.stdout).freeze)
            if there is None:
                runner.emit("log", f"frozen: {freeze.shown(shown.message)}", host=member.name, phase="lock")
            else:
                runner.emit("log", f"already frozen {there.describe()}; kept (fap unlock lifts it)", host=member.name, phase="lock")

        errors = hosts.on_each(work)
        for member in members:
            if key(member) in errors:
                runner.emit("error", describe(errors[key(member)], member.name), host=member.name, phase="lock")
        return ExitCode.FAILED if errors else ExitCode.OK


@fleet_command("lock", "Freeze the selected targets with a reason: deploy, rollback and restart refuse (exit 5) until"
               " fap unlock.", short_help="Freeze the target with a reason, until fap unlock.")
@click.option("-m", "--message", "message", metavar="REASON", is_flag=False, flag_value="",
              help="Why the target is frozen (shown to whoever tries to deploy), e.g. 'incident 431: db failover'.")
def command(options: Options, stage: str | None, role: str | None, overrides: list[str], message: str | None) -> None:
    from fapistrano import freeze
    from fapistrano.compose import Composition

    reason = freeze.check_message(message, stage)  # before anything connects
    with Composition(options, stage, role, overrides, "lock") as fleet:
        exit_code = lock(fleet, reason)
        fleet.close()
    exit_with(exit_code)
