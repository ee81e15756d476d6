"""``fap``: a registry. The global options, and each command module's click command.

Every command is one module of :mod:`fapistrano.commands` holding its options
(a click command named ``command``), its plan and its rendering; a new
command is a new module, named in :data:`fapistrano.flows.COMMANDS` (its
module is ``fapistrano.commands.<name>``). Heavy imports (ruamel.yaml, rich,
plumbum) happen inside commands so that ``fap --help`` and ``fap --version``
stay fast.
"""

from __future__ import annotations

import copy
import importlib
import sys
from typing import Any

import click

from fapistrano import __version__
from fapistrano.commands.wiring import run_options
from fapistrano.errors import ExitCode, FapError
from fapistrano.flows import COMMANDS
from fapistrano.options import Options


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


for _known in COMMANDS:
    cli.add_command(importlib.import_module(f"fapistrano.commands.{_known.name}").command)
del _known

# 'release' is Fapistrano 0.9's name of 'deploy': it still works, and help does not list it.
_release_alias = copy.copy(cli.commands["deploy"])
_release_alias.hidden = True
cli.add_command(_release_alias, "release")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``fap`` command: user errors are one line, never a traceback.

    SIGINT and SIGTERM unwind (connections closed) and exit 130 and 143; while
    hosts run phases, the run handles both (see :mod:`fapistrano.stopping`).
    """
    from fapistrano.errors import Terminated

    _unwind_on_signals()
    try:
        cli.main(args=argv, prog_name="fap", standalone_mode=False)
    except Terminated:
        click.echo("fap: terminated", err=True)
        sys.exit(ExitCode.TERMINATED)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.Abort as abort:
        if isinstance(abort.__context__, Terminated):
            click.echo("fap: terminated", err=True)
            sys.exit(ExitCode.TERMINATED)
        click.echo("fap: aborted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except FapError as error:
        click.echo(f"fap: error: {error}", err=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        click.echo("fap: interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        sys.exit(ExitCode.FAILED)


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
