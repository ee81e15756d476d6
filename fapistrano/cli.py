"""``fap``: a registry. The global options, and each command module's click command.

Every command is one module of :mod:`fapistrano.commands` holding its options
(a click command named ``command``), its plan and its rendering; a new
command is a new module, listed in :data:`fapistrano.flows.COMMANDS` and in
:data:`COMMAND_MODULES`. Heavy imports (ruamel.yaml, rich, plumbum) happen
inside commands so that ``fap --help`` and ``fap --version`` stay fast.
"""

from __future__ import annotations

import copy
import importlib
import sys
from typing import Any

import click

from fapistrano import __version__
from fapistrano.commands.options import Options, fleet_command, run_options, wait_lock_option
from fapistrano.errors import FapError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="fap", message="%(prog)s %(version)s")
@run_options
@click.pass_context
def cli(context: click.Context, **options: Any) -> None:
    """Deploy Python applications to a fleet of servers, Capistrano-style.

    Settings come from deploy.yml; any setting can be overridden after the
    command, e.g. fap deploy -s production --keep-releases 3.
    """
    context.obj = Options().merged(**options)


# ---------------------------------------------------------------------------
# The changing commands (deploy, rollback, restart): their wiring stays beside
# _finish, which renders how a run of the engine ended.
# ---------------------------------------------------------------------------


@fleet_command("deploy", "Ship a new release to every selected host (alias: release).")
@wait_lock_option
def deploy(options: Options, stage: str | None, role: str | None, overrides: list[str]) -> None:
    from fapistrano.commands.deploy import deploy as run
    from fapistrano.commands.fleet import Fleet

    with Fleet(options, stage, role, overrides, "deploy") as fleet:
        outcome = run(fleet)
        _finish(fleet, outcome, success=f"deployed release {outcome.release}")


cli.add_command(deploy)
_release_alias = copy.copy(deploy)
_release_alias.hidden = True
cli.add_command(_release_alias, "release")


@fleet_command("rollback", "Switch every selected host back to its previous release.")
@click.option("--to", "to", metavar="RELEASE", help="Return to this release instead of the previous one.")
@wait_lock_option
def rollback(options: Options, stage: str | None, role: str | None, overrides: list[str], to: str | None) -> None:
    from fapistrano.commands.fleet import Fleet
    from fapistrano.commands.rollback import rollback as run

    with Fleet(options, stage, role, overrides, "rollback") as fleet:
        _finish(fleet, run(fleet, to), success="rolled back")


cli.add_command(rollback)


@fleet_command("restart", "Run the restart hooks (restarting, restarted) on every selected host.")
@wait_lock_option
def restart(options: Options, stage: str | None, role: str | None, overrides: list[str]) -> None:
    from fapistrano.commands.fleet import Fleet
    from fapistrano.commands.restart import restart as run

    with Fleet(options, stage, role, overrides, "restart") as fleet:
        _finish(fleet, run(fleet), success="restarted")


cli.add_command(restart)


def _finish(fleet: Any, outcome: Any, success: str) -> None:
    """Render how deploy, rollback or restart ended: the summary, then success or the errors; exit with its code."""
    from fapistrano.runner import summarize

    ran = any(m.ctx is not None or m.failed is not None for m in fleet.members)
    results = summarize(fleet.members, fleet.masker) if ran else []
    title = f"fap {fleet.command}: {'ok' if outcome.ok else 'FAILED'}"
    fleet.reporter.summary(title, results, outcome.ok)
    fleet.close()
    if fleet.command == "deploy":
        from fapistrano.selection import left_behind

        switched = [(m.label, m.name, m.ctx.release) for m in fleet.members if m.switched and m.status != "reverted" and m.ctx]
        for line in left_behind(switched, fleet.left_out):
            fleet.console.print(f"warning: {fleet.masker(line)}", style="yellow", markup=False, highlight=False, soft_wrap=True)
    if outcome.ok:
        fleet.console.print(f"dry run, nothing changed: would have {success}" if fleet.options.dry_run else success,
                            markup=False, highlight=False)
        return
    for error in outcome.errors:
        fleet.errors.print(f"fap: error: {fleet.masker(error)}", style="red", markup=False, highlight=False, soft_wrap=True)
    if outcome.where:
        fleet.errors.print(f"fap: {outcome.where}", style="red", markup=False, highlight=False, soft_wrap=True)
    if outcome.moved and fleet.command == "deploy":
        from fapistrano.commands.changing import return_hints

        for line in return_hints(fleet.members, fleet.selection, bool(fleet.left_out)):
            fleet.errors.print(f"fap: {line}", style="red", markup=False, highlight=False, soft_wrap=True)
    sys.exit(outcome.exit_code)


#: The modules whose ``command`` is a command of fap, in the order ``fap --help`` lists them (click sorts them).
COMMAND_MODULES = ("once", "shell", "lock", "unlock", "init", "disconnect", "check", "releases", "config", "plugins")
for _module in COMMAND_MODULES:
    cli.add_command(importlib.import_module(f"fapistrano.commands.{_module}").command)
del _module


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``fap`` command: user errors are one line, never a traceback.

    SIGINT and SIGTERM unwind (connections closed) and exit 130 and 143; while
    hosts run phases, the runner handles both (see :func:`fapistrano.runner.execute`).
    """
    from fapistrano.errors import Terminated

    _unwind_on_signals()
    try:
        cli.main(args=argv, prog_name="fap", standalone_mode=False)
    except Terminated:
        click.echo("fap: terminated", err=True)
        sys.exit(143)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.Abort as abort:
        if isinstance(abort.__context__, Terminated):
            click.echo("fap: terminated", err=True)
            sys.exit(143)
        click.echo("fap: aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except FapError as error:
        click.echo(f"fap: error: {error}", err=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        click.echo("fap: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)


def _unwind_on_signals() -> None:
    """SIGINT raises KeyboardInterrupt, SIGTERM :class:`~fapistrano.errors.Terminated`: both unwind through ``finally``.

    Replaces the launcher's handlers (which exit at once while nothing is started yet, see
    :mod:`fapistrano.launch`): from here on ssh sessions may be open, and unwinding closes them.
    """
    import signal
    import threading

    from fapistrano.errors import Terminated

    if threading.current_thread() is not threading.main_thread():
        return

    def terminate(*_: Any) -> None:
        raise Terminated()

    for number, handler in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, terminate)):
        if signal.getsignal(number) is not signal.SIG_IGN:  # ignored by whoever started fap (nohup): left ignored
            signal.signal(number, handler)
