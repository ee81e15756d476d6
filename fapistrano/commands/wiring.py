"""How each command module builds its click command: the options every command accepts, targets, overrides, exit.

Light, so ``fap --help`` stays fast: click and nothing heavy.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from fapistrano.errors import ConfigError, FapError
from fapistrano.options import Options

#: A command taking ``--SETTING VALUE`` overrides after its own options.
OVERRIDES = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": ["-h", "--help"]}
#: A command without overrides.
PLAIN = {"help_option_names": ["-h", "--help"]}


def run_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The options every command accepts, before or after its name."""
    decorators = [
        click.option("-d", "--deployfile", metavar="FILE", help="The deploy file (default: $FAP_APP's, else deploy.yml here or in the nearest parent directory)."),
        click.option("--dry-run", is_flag=True, default=None, help="Connect and print what each phase would run; change nothing."),
        click.option("-v", "--verbose", count=True, help="Show every command and its output."),
        click.option("-q", "--quiet", is_flag=True, default=None, help="Show only errors and the summary."),
        click.option("--parallel", type=click.IntRange(min=1), metavar="N", help="Hosts at once (overrides max_parallel)."),
        click.option("--log-json", metavar="FILE", help="Write one JSON event per line to FILE."),
        click.option("--live/--no-live", default=None, help="Force the live view on or off (default: on a terminal)."),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def options_of(context: click.Context, local: dict[str, Any] | None = None) -> Options:
    """The run options: those given before the command (``fap -v deploy``), merged with those after it (``local``)."""
    base: Options = context.find_object(Options) or Options()
    if local is None:
        return base
    names = ("deployfile", "dry_run", "verbose", "quiet", "parallel", "log_json", "live", "hosts", "wait_lock")
    return base.merged(**{n: local.pop(n, None) for n in names})


def target_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """``-s STAGE`` and ``-r ROLE``, completed from deploy.yml."""
    from fapistrano.completion import complete_role, complete_stage

    function = click.option("-r", "--role", metavar="ROLE", shell_complete=complete_role,
                            help="Role to act on (every stage that has it, without --stage).")(function)
    function = click.option("-s", "--stage", metavar="STAGE", shell_complete=complete_stage,
                            help="Stage to act on (every role of it, without --role).")(function)
    return function


def fleet_command(name: str, help_text: str, **extra: Any) -> Callable[[Callable[..., Any]], click.Command]:
    """A command that acts on stage/role targets and accepts ``--setting value`` overrides.

    The function is called with ``options`` (:class:`Options`), ``stage``,
    ``role``, ``overrides`` (a list of the ``--SETTING VALUE`` words) and its
    own options. :mod:`fapistrano.cli` registers the command it returns.
    """

    def decorate(function: Callable[..., Any]) -> click.Command:
        @functools.wraps(function)
        def wrapper(context: click.Context, stage: str | None, role: str | None, overrides: tuple[str, ...], **local: Any) -> None:
            options = options_of(context, local)
            try:
                function(options=options, stage=stage, role=role, overrides=list(overrides), **local)
            except FapError as error:
                raise option_hint(error, context.command, name) from None

        command = click.pass_context(wrapper)
        command = click.argument("overrides", nargs=-1, type=click.UNPROCESSED, metavar="[--SETTING VALUE]...")(command)
        command = run_options(command)
        command = click.option("--hosts", metavar="PATTERNS", help=(
            "Act only on the hosts of the selected stage/roles whose name matches one of these comma-separated"
            " shell-style patterns (e.g. 'web[12]', 'db*,deploy@web3:2222'). Filters; never adds a host to a role."))(command)
        command = target_options(command)
        return click.command(name, help=help_text, context_settings=OVERRIDES, **extra)(command)

    return decorate


#: ``--wait-lock DURATION`` of the changing commands (see :mod:`fapistrano.freeze`).
wait_lock_option = click.option("--wait-lock", "wait_lock", metavar="DURATION", help=(
    "When another run holds the lock, wait up to DURATION (90s, 5m, 1h) for it to finish, then go on."
    " Never waits out a freeze (fap lock)."))


def option_hint(error: FapError, command: click.Command, name: str) -> FapError:
    """``unknown setting --if-changd`` with no setting near it: name the command's option it is near, if any.

    What follows a command that is not its option is read as a setting; a
    misspelt option of the command (``--if-changd``, ``--jsn``) is far more
    likely than a setting of that name.
    """
    import difflib
    import re

    match = re.fullmatch(r"command line: unknown setting (--[\w-]+)", str(error))
    if match is None:
        return error
    flags = [flag for parameter in command.params for flag in getattr(parameter, "opts", []) if flag.startswith("--")]
    close = difflib.get_close_matches(match.group(1), flags, n=1, cutoff=0.75)
    if not close:
        return error
    return ConfigError(f"{error} (did you mean {close[0]}, an option of fap {name}?)")


def exit_with(code: int) -> None:
    """End the command with exit ``code`` (nothing when 0)."""
    import sys

    if code:
        sys.exit(code)
