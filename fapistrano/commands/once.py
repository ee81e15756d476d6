"""``fap once``: a one-off admin command in ``current_path``, with the release's ``.env`` loaded."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import click

from fapistrano import layout
from fapistrano.commands.wiring import exit_with, fleet_command
from fapistrano.errors import ExitCode, FapError
from fapistrano.flows import FlowName
from fapistrano.hosts import Member, key
from fapistrano.options import Options
from fapistrano.ui import Event

if TYPE_CHECKING:  # what they name is imported when the command runs: fap --help stays fast
    from fapistrano.compose import Composition


def script(current_path: str, command: str) -> str:
    """``command`` run in ``current_path`` with its ``.env`` exported; a clear error when there is no current release."""
    return (
        f"cd {layout.q(current_path)} || {{ echo {layout.q('no current release in ' + current_path)} >&2; exit 1; }}\n"
        "if [ -f .env ]; then set -a; . ./.env; set +a; fi\n"
        + command
    )


def once(fleet: Composition, command: str) -> ExitCode:
    """Run ``command`` on the hosts of ``fleet``; return fap's exit code.

    0 when the command exited 0 on every host, 1 when it failed on any (each
    host's own status is printed), 130/143 after a signal.
    """
    from fapistrano.plugins import describe

    runner, members = fleet.runner, fleet.members
    with fleet.connected(FlowName.ONCE, probe=False) as hosts:
        if hosts.failures:
            for line in hosts.failure_lines():
                runner.emit("error", line)
            return ExitCode.FAILED

        def work(member: Member) -> None:
            assert member.ctx is not None
            member.ctx.phase = "once"
            if runner.dry_run:
                # --dry-run changes nothing on any host: show the command, do not run it.
                runner.emit("command", command, host=member.name, phase="once", data={"dry_run": True})
                return
            runner.emit("command", command, host=member.name, phase="once")

            def show(stream: str, line: str) -> None:
                runner.reporter.handle(Event("log", host=member.name, phase="once", message=runner.masker(line)))

            result = member.connection.run(script(member.target.config["current_path"], command), on_line=show)
            member.status = "ok" if result.exit_code == 0 else "failed"
            # Each host's own status, printed: fap's exit code is fap's (1 when any host failed), not the command's.
            if result.exit_code != 0:
                member.failed = FapError(f"exit {result.exit_code}")
                runner.emit("error", f"command exited {result.exit_code}", host=member.name, phase="once")
            else:
                runner.emit("log", "command exited 0", host=member.name, phase="once")

        errors = hosts.on_each(work)
        if runner.stopping.is_set():
            stopped = "terminated (SIGTERM)" if runner.stopped_by == signal.SIGTERM else "interrupted"
            runner.emit("error", f"{stopped}: the command was stopped on {len(errors)} host(s)" if errors else stopped)
            return runner.stop.exit_code
        for member in members:
            if key(member) in errors:
                runner.emit("error", describe(errors[key(member)], member.name))
        if errors or any(m.status == "failed" for m in members):
            return ExitCode.FAILED
        return ExitCode.OK


@fleet_command("once", "Run a one-off admin command in the current release, with its .env loaded.")
@click.option("-c", "--command", "command", required=True, metavar="CMD", help="Shell command to run.")
@click.option("--host", "host", metavar="NAME", help="Only this host (its exact name; same as --hosts NAME without patterns).")
@click.option("--all-hosts", is_flag=True, help="Run on every selected host (default: the first selected host of each stage/role).")
def command(options: Options, stage: str | None, role: str | None, overrides: list[str], command: str, host: str | None,
            all_hosts: bool) -> None:
    from fapistrano.compose import Composition, host_filter

    with Composition(options, stage, role, overrides, "once", hosts=host_filter(all_hosts), host=host) as fleet:
        exit_code = once(fleet, command)
        fleet.close()
    exit_with(exit_code)
