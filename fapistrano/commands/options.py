"""The options every command accepts, and the click decorators each command module builds its command with.

Light, so ``fap --help`` stays fast: click and nothing heavy.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

#: A command taking ``--SETTING VALUE`` overrides after its own options.
OVERRIDES = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": ["-h", "--help"]}
#: A command without overrides.
PLAIN = {"help_option_names": ["-h", "--help"]}


@dataclass
class Options:
    """Run options, given before or after the command (after wins)."""

    deployfile: str | None = None
    dry_run: bool = False
    verbose: int = 0
    quiet: bool = False
    parallel: int | None = None
    log_json: str | None = None
    live: bool | None = None
    hosts: str | None = None  # --hosts: patterns filtering the selected targets' hosts
    wait_lock: str | None = None  # --wait-lock DURATION (changing commands): see fapistrano.freeze

    def merged(self, **later: Any) -> Options:
        values = {**self.__dict__}
        for name, value in later.items():
            if value not in (None, False, 0):
                values[name] = value
        return Options(**values)

    @property
    def verbosity(self) -> int:
        from fapistrano.ui import NORMAL, QUIET, VERBOSE

        if self.quiet:
            return QUIET
        return VERBOSE if self.verbose else NORMAL

    def plain(self) -> Options:
        """Read-only reports print lines and tables, not the live deploy view (unless --live asks)."""
        import dataclasses

        return self if self.live else dataclasses.replace(self, live=False)


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
            function(options=options, stage=stage, role=role, overrides=list(overrides), **local)

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


def exit_with(code: int) -> None:
    """End the command with exit ``code`` (nothing when 0)."""
    import sys

    if code:
        sys.exit(code)
