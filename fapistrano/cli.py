"""``fap``: parse the command line, call one command of :mod:`fapistrano.commands`, render what it returns.

Heavy imports (ruamel.yaml, rich, plumbum) happen inside commands so that
``fap --help`` and ``fap --version`` stay fast.
"""

from __future__ import annotations

import copy
import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from fapistrano import __version__
from fapistrano.commands.options import Options
from fapistrano.errors import ExitCode, FapError

OVERRIDES = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": ["-h", "--help"]}


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


def _options(context: click.Context, local: dict[str, Any]) -> Options:
    base: Options = context.find_object(Options) or Options()
    names = ("deployfile", "dry_run", "verbose", "quiet", "parallel", "log_json", "live", "hosts", "wait_lock")
    return base.merged(**{n: local.pop(n, None) for n in names})


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


def target_options(function: Callable[..., Any]) -> Callable[..., Any]:
    from fapistrano.completion import complete_role, complete_stage

    function = click.option("-r", "--role", metavar="ROLE", shell_complete=complete_role,
                            help="Role to act on (every stage that has it, without --stage).")(function)
    function = click.option("-s", "--stage", metavar="STAGE", shell_complete=complete_stage,
                            help="Stage to act on (every role of it, without --role).")(function)
    return function


def fleet_command(name: str, help_text: str, **extra: Any) -> Callable[[Callable[..., Any]], click.Command]:
    """A command that acts on stage/role targets and accepts ``--setting value`` overrides."""

    def decorate(function: Callable[..., Any]) -> click.Command:
        @functools.wraps(function)
        def wrapper(context: click.Context, stage: str | None, role: str | None, overrides: tuple[str, ...], **local: Any) -> None:
            options = _options(context, local)
            function(options=options, stage=stage, role=role, overrides=list(overrides), **local)

        command = click.pass_context(wrapper)
        command = click.argument("overrides", nargs=-1, type=click.UNPROCESSED, metavar="[--SETTING VALUE]...")(command)
        command = run_options(command)
        command = click.option("--hosts", metavar="PATTERNS", help=(
            "Act only on the hosts of the selected stage/roles whose name matches one of these comma-separated"
            " shell-style patterns (e.g. 'web[12]', 'db*,deploy@web3:2222'). Filters; never adds a host to a role."))(command)
        command = target_options(command)
        return cli.command(name, help=help_text, context_settings=OVERRIDES, **extra)(command)

    return decorate


#: ``--wait-lock DURATION`` of the changing commands (see :mod:`fapistrano.freeze`).
wait_lock_option = click.option("--wait-lock", "wait_lock", metavar="DURATION", help=(
    "When another run holds the lock, wait up to DURATION (90s, 5m, 1h) for it to finish, then go on."
    " Never waits out a freeze (fap lock)."))


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------


@fleet_command("deploy", "Ship a new release to every selected host (alias: release).")
@wait_lock_option
def deploy(options: Options, stage: str | None, role: str | None, overrides: list[str]) -> None:
    from fapistrano.commands.deploy import deploy as run
    from fapistrano.compose import Composition

    with Composition(options, stage, role, overrides, "deploy") as fleet:
        outcome = run(fleet)
        _finish(fleet, outcome, success=f"deployed release {outcome.release}")


_release_alias = copy.copy(deploy)
_release_alias.hidden = True
cli.add_command(_release_alias, "release")


@fleet_command("rollback", "Switch every selected host back to its previous release.")
@click.option("--to", "to", metavar="RELEASE", help="Return to this release instead of the previous one.")
@click.option("--across-migrations", "across_migrations", is_flag=True,
              help="Roll back past releases that migrated the schema, leaving the schema as it is (no migrates_back step).")
@wait_lock_option
def rollback(options: Options, stage: str | None, role: str | None, overrides: list[str], to: str | None,
             across_migrations: bool) -> None:
    from fapistrano.commands.rollback import rollback as run
    from fapistrano.compose import Composition

    with Composition(options, stage, role, overrides, "rollback") as fleet:
        _finish(fleet, run(fleet, to, across_migrations), success="rolled back")


@fleet_command("restart", "Run the restart hooks (restarting, restarted) on every selected host.")
@wait_lock_option
def restart(options: Options, stage: str | None, role: str | None, overrides: list[str]) -> None:
    from fapistrano.commands.restart import restart as run
    from fapistrano.compose import Composition

    with Composition(options, stage, role, overrides, "restart") as fleet:
        _finish(fleet, run(fleet), success="restarted")


@fleet_command("once", "Run a one-off admin command in the current release, with its .env loaded.")
@click.option("-c", "--command", "command", required=True, metavar="CMD", help="Shell command to run.")
@click.option("--host", "host", metavar="NAME", help="Only this host (its exact name; same as --hosts NAME without patterns).")
@click.option("--all-hosts", is_flag=True, help="Run on every selected host (default: the first selected host of each stage/role).")
def once(options: Options, stage: str | None, role: str | None, overrides: list[str], command: str, host: str | None, all_hosts: bool) -> None:
    from fapistrano.commands.once import once as run
    from fapistrano.compose import Composition, host_filter

    with Composition(options, stage, role, overrides, "once", hosts=host_filter(all_hosts), host=host) as fleet:
        exit_code = run(fleet, command)
        fleet.close()
        if exit_code:
            sys.exit(exit_code)


@fleet_command("shell", "Open an interactive shell in the current release of one host, with its .env loaded.")
@click.option("--host", "host", metavar="NAME", help="Which host, by exact name (default: the first one selected).")
def shell(options: Options, stage: str | None, role: str | None, overrides: list[str], host: str | None) -> None:
    from fapistrano.commands.shell import shell_argv
    from fapistrano.compose import Composition, host_filter

    with Composition(options, stage, role, overrides, "shell", hosts=host_filter(False), host=host, connects=False) as fleet:
        argv = shell_argv(fleet.members[0])
        fleet.close()
    sys.stdout.flush()
    os.execvp(argv[0], argv)


@fleet_command("lock", "Freeze the selected targets with a reason: deploy, rollback and restart refuse (exit 5) until"
               " fap unlock.", short_help="Freeze the target with a reason, until fap unlock.")
@click.option("-m", "--message", "message", metavar="REASON", is_flag=False, flag_value="",
              help="Why the target is frozen (shown to whoever tries to deploy), e.g. 'incident 431: db failover'.")
def lock(options: Options, stage: str | None, role: str | None, overrides: list[str], message: str | None) -> None:
    from fapistrano.commands.lock import lock as run
    from fapistrano.compose import Composition
    from fapistrano.freeze import check_message

    reason = check_message(message, stage)  # before anything connects
    with Composition(options, stage, role, overrides, "lock") as fleet:
        exit_code = run(fleet, reason)
        fleet.close()
        if exit_code:
            sys.exit(exit_code)


@fleet_command("unlock", "Remove a stale deploy lock after showing who held it; lift a freeze (fap lock) the same way.")
def unlock(options: Options, stage: str | None, role: str | None, overrides: list[str]) -> None:
    from fapistrano.commands.unlock import unlock as run
    from fapistrano.compose import Composition

    with Composition(options, stage, role, overrides, "unlock") as fleet:
        exit_code = run(fleet)
        fleet.close()
        if exit_code:
            sys.exit(exit_code)


def _finish(fleet: Any, outcome: Any, success: str) -> None:
    """Render how deploy, rollback or restart ended (see :func:`fapistrano.commands.changing.render`); exit with its code."""
    from fapistrano.commands.changing import render

    exit_code = render(fleet, outcome, success)
    if exit_code:
        sys.exit(exit_code)


# ---------------------------------------------------------------------------
# Operator commands: init, check, releases, config, plugins. Each command's
# module returns plain data; these print it.
# ---------------------------------------------------------------------------


def _complete_plugins(context: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    from fapistrano.completion import complete_plugins

    return complete_plugins(context, param, incomplete)


@cli.command("init", context_settings={"help_option_names": ["-h", "--help"]}, short_help="Write a commented deploy.yml.")
@click.option("-d", "--deployfile", metavar="FILE", help="Where to write it (default: ./deploy.yml).")
@click.option("-p", "--plugins", "plugin_option", multiple=True, metavar="NAMES", shell_complete=_complete_plugins,
              help="Comma-separated plugins, e.g. git,virtualenv,supervisorctl (short for fapistrano.<name>).")
@click.option("--app-name", metavar="NAME", help="The application's name (default: the directory's name).")
@click.pass_context
def init(context: click.Context, deployfile: str | None, plugin_option: tuple[str, ...], app_name: str | None) -> None:
    """Write a commented deploy.yml: stages, roles, every setting with its default.

    Refuses to overwrite an existing file.
    """
    from pathlib import Path

    from fapistrano.commands.init import init as run

    options: Options = context.find_object(Options) or Options()
    path = Path(deployfile or options.deployfile or "deploy.yml")
    names = run(path, plugin_option, app_name)
    listed = ", ".join(names) or "none"
    click.echo(f"wrote {path} (plugins: {listed}); next: fill in hosts under stage_role_configs, then run 'fap check -s staging'")


@cli.command("disconnect", context_settings={"help_option_names": ["-h", "--help"]},
             help="Close every SSH connection kept up for the next command (ssh_persist), whichever deploy file made it.")
def disconnect_command() -> None:
    from fapistrano.commands.disconnect import disconnect

    code, text = disconnect()
    click.echo(text, err=code != 0)
    sys.exit(code)


@fleet_command("check", "Connect to every selected host and report what would make a deploy fail.",
               short_help="Report, per host, what would make a deploy fail.")
def check(options: Options, stage: str | None, role: str | None, overrides: list[str]) -> None:
    from fapistrano.commands.check import check as run
    from fapistrano.commands.check import ok_line, run_problems, summary
    from fapistrano.compose import Composition

    with Composition(options.plain(), stage, role, overrides, "check") as fleet:
        fleet.announce(f"checking {fleet.app} on {fleet.describe()}")
        problems = run_problems(fleet)
        for problem in problems:
            fleet.runner.emit("error", problem, phase="local")
        checks = run(fleet)
        for result in checks:
            if result.ok:
                fleet.runner.emit("log", ok_line(result), host=result.host, phase=result.target)
            for problem in result.problems:
                fleet.runner.emit("error", problem, host=result.host, phase=result.target)
        fleet.close()
    ok = not problems and all(c.ok for c in checks)
    fleet.console.print(summary(checks, problems), style="green" if ok else "bold red", markup=False, highlight=False)
    if not ok:
        sys.exit(ExitCode.FAILED)


@fleet_command("releases", "List each target's releases: revision, age, which is current; warn when hosts disagree.",
               short_help="List releases: revision, age, which is current.")
def releases(options: Options, stage: str | None, role: str | None, overrides: list[str]) -> None:
    from rich import box
    from rich.table import Table

    from fapistrano.commands.releases import broken_currents, current_disagreement, migration_notes, release_rows
    from fapistrano.commands.releases import releases as run
    from fapistrano.compose import Composition
    from fapistrano.freeze import notes
    from fapistrano.layout import now

    with Composition(options.plain(), stage, role, overrides, "releases") as fleet:
        by_target, errors = run(fleet)
        fleet.close()
    moment = now()
    for label, hosts in by_target.items():
        count = sum(1 for m in fleet.members if m.label == label)
        title = f"{label}: {len(hosts)} of {count} host{'s' if count != 1 else ''} answered" if len(hosts) < count else \
            f"{label} ({count} host{'s' if count != 1 else ''})"
        rows = release_rows(hosts, moment)
        frozen = notes([(h.host, h.state) for h in hosts])
        if not rows:
            fleet.console.print(f"{title}: no releases yet", markup=False, highlight=False)
            for warning in frozen:
                fleet.console.print(f"warning: {warning}", style="yellow", markup=False, highlight=False, soft_wrap=True)
            continue
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for column in ("release", "revision", "age", "status", "hosts"):
            table.add_column(column, no_wrap=column != "hosts")
        for row in rows:
            style = "bold green" if row.status == "current" else ("yellow" if row.status else "")
            table.add_row(row.release, row.revision, row.age, row.status, row.hosts, style=style)
        fleet.console.print(table)
        for note in migration_notes(hosts):
            fleet.console.print(note, markup=False, highlight=False, soft_wrap=True)
        disagreement = current_disagreement(label, hosts)
        for warning in [*([disagreement] if disagreement else []), *broken_currents(hosts), *frozen]:
            fleet.console.print(f"warning: {warning}", style="yellow", markup=False, highlight=False, soft_wrap=True)
    for error in errors:
        fleet.errors.print(f"fap: error: {error}", style="red", markup=False, highlight=False, soft_wrap=True)
    if errors:
        sys.exit(ExitCode.FAILED)


@fleet_command("config", "Show every resolved setting of a stage/role, its value (secrets masked) and where it came from."
               " Connects to nothing.", short_help="Show resolved settings and where each came from.")
@click.option("--host", "host", metavar="NAME", help="Resolve for this host, by exact name (default: the first of each stage/role).")
def config(options: Options, stage: str | None, role: str | None, overrides: list[str], host: str | None) -> None:
    from rich.text import Text

    from fapistrano.commands.config import setting_rows, step_rows
    from fapistrano.compose import Composition, host_filter

    # As 'fap deploy' resolves them (its plugins); nothing connects.
    # A stage/role with hosts: [] shows its settings for a stand-in host: they are worth checking before servers exist.
    with Composition(options.plain(), stage, role, overrides, "deploy", hosts=host_filter(False), host=host,
               connects=False, stand_in="no host yet") as fleet:
        secret_names = fleet.runner.plugins.secret_settings()
        for index, member in enumerate(fleet.members):
            rows = setting_rows(member.target, secret_names, fleet.masker) + step_rows(member.settings.steps, fleet.masker)
            if index:
                fleet.console.print()
            fleet.console.print(f"# {member.label} on {member.name}: the settings 'fap deploy' uses", style="bold",
                                markup=False, highlight=False, soft_wrap=True)
            name_width = max(len(r.name) for r in rows)
            value_width = min(max(len(r.value) for r in rows), 48)
            for row in rows:
                line = Text(row.name.ljust(name_width + 2))
                line.append(row.value.ljust(value_width) + "  ")
                line.append(row.origin, style="dim")
                fleet.console.print(line, soft_wrap=True)
        fleet.runner.close([])
        fleet.close()


@cli.command("plugins", context_settings={"help_option_names": ["-h", "--help"]},
             short_help="List installed plugins, their hooks and settings.")
@click.option("-d", "--deployfile", metavar="FILE", help="The deploy file whose plugins: to compare (default: deploy.yml here or in a parent directory, if any).")
@click.pass_context
def plugins_command(context: click.Context, deployfile: str | None) -> None:
    """List installed plugins: distribution, version, entry point, enabled or not, hooks, settings.

    Works without a deploy file; with one, also says whether it enables each
    plugin and lists the modules it names that are not installed plugins.
    """

    from rich.text import Text

    from fapistrano import config as cfg
    from fapistrano.commands.init import yaml_line
    from fapistrano.commands.plugins import builtin_steps, plugin_infos
    from fapistrano.compose import deployfile_path
    from fapistrano.ui import make_console

    options: Options = context.find_object(Options) or Options()
    explicit = deployfile or options.deployfile
    try:
        path = deployfile_path(explicit)
    except FapError:
        if explicit or os.environ.get("FAP_APP"):
            raise
        path = None  # works without a deploy file
    document = cfg.DeployFile.load(path) if path else None
    console = make_console()
    infos = plugin_infos(document)
    if not infos:
        console.print("no fapistrano plugins installed (e.g. pip install fapistrano-git)", markup=False, highlight=False)
    broken = False
    for info in infos:
        head = Text(info.name, style="bold")
        head.append(f"  {info.distribution}" + (f" {info.version}" if info.version != "-" else ""))
        if info.module != info.name:
            head.append(f"  (module {info.module})", style="dim")
        console.print(head, soft_wrap=True)
        if document is not None:
            console.print(f"  enabled:  {info.enabled}", markup=False, highlight=False, soft_wrap=True)
        if info.error:
            broken = broken or info.enabled.startswith("yes")
            console.print(f"  error:    {info.error}", style="red", markup=False, highlight=False, soft_wrap=True)
            continue
        console.print(f"  hooks:    {', '.join(info.hooks) or 'none'}", markup=False, highlight=False, soft_wrap=True)
        if not info.settings:
            console.print("  settings: none", markup=False, highlight=False)
        for index, (name, default) in enumerate(info.settings.items()):
            line = Text("  settings: " if index == 0 else "            ")
            line.append(yaml_line(name, default))
            note = " ".join(n for n in (info.docs.get(name, ""), "[secret]" if name in info.secrets else "") if n)
            if note:
                line.append(f"  # {note}", style="dim")
            console.print(line, soft_wrap=True)
    steps = "; ".join(f"{name.rsplit('.', 1)[-1]} ({', '.join(hooks)})" for name, hooks in builtin_steps())
    console.print(f"core steps, always on: {steps}", style="dim", markup=False, highlight=False, soft_wrap=True)
    if broken:  # a plugin deploy.yml enables cannot load: bad input, as 'fap deploy' would say
        sys.exit(ExitCode.BAD_INPUT)


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
