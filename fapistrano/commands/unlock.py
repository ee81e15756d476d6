"""``fap unlock``: show who holds each host's deploy lock, then remove it; lift a freeze (``fap lock``) the same way."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fapistrano.commands.wiring import exit_with, fleet_command
from fapistrano.errors import ExitCode
from fapistrano.options import Options

if TYPE_CHECKING:  # what they name is imported when the command runs: fap --help stays fast
    from fapistrano.compose import Composition


def unlock(fleet: Composition) -> ExitCode:
    """Remove the locks on the hosts of ``fleet`` (shown, not removed, under ``--dry-run``); return fap's exit code."""
    from fapistrano import freeze

    runner, members = fleet.runner, fleet.members
    runner.sessions.lock_token = None  # whoever's lock it is: that is what fap unlock is for
    # Closing the sessions removes the locks marked below.
    with fleet.connected() as hosts:
        if hosts.failures:  # nothing lifted unless every host answered
            for error in hosts.failure_lines():
                runner.emit("error", error)
            return ExitCode.FAILED
        for member in members:
            assert member.state is not None
            if member.state.lock_owner:
                runner.emit("log", f"removing lock held by {member.state.lock_owner}", host=member.name, phase="unlock")
                member.locked = True
            elif member.state.freeze is None:
                runner.emit("log", "not locked", host=member.name, phase="unlock")
        lifted = freeze.lift(runner, members)
        if runner.dry_run:
            for member in members:
                member.locked = False  # shown, not removed
    return ExitCode.FAILED if any(m.locked for m in members) or not lifted else ExitCode.OK


@fleet_command("unlock", "Remove a stale deploy lock after showing who held it; lift a freeze (fap lock) the same way.")
def command(options: Options, stage: str | None, role: str | None, overrides: list[str]) -> None:
    from fapistrano.compose import Composition

    with Composition(options, stage, role, overrides, "unlock") as fleet:
        exit_code = unlock(fleet)
        fleet.close()
    exit_with(exit_code)
