"""``fap``: parse the command line, build the plan, hand it to the runner.

Heavy imports (ruamel.yaml, rich, plumbum) happen inside commands so that
``fap --help`` and ``fap --version`` stay fast.
"""

from __future__ import annotations

import copy
import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click

from fapistrano import __version__
from fapistrano.errors import FapError

OVERRIDES = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": ["-h", "--help"]}


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
    extra: dict[str, Any] = field(default_factory=dict)

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


def run_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The options every command accepts, before or after its name."""
    decorators = [
        click.option("-d", "--deployfile", metavar="FILE", help="The deploy file (default: $FAP_APP's, else ./deploy.yml)."),
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
    names = ("deployfile", "dry_run", "verbose", "quiet", "parallel", "log_json", "live")
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
    function = click.option("-r", "--role", metavar="ROLE", help="Role to act on (every stage that has it, without --stage).")(function)
    function = click.option("-s", "--stage", metavar="STAGE", help="Stage to act on (every role of it, without --role).")(function)
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
        command = target_options(command)
        return cli.command(name, help=help_text, context_settings=OVERRIDES, **extra)(command)

    return decorate


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------


@fleet_command("deploy", "Ship a new release to every selected host (alias: release).")
def deploy(options: Options, stage: str | None, role: str | None, overrides: list[str]) -> None:
    from fapistrano import flows
    from fapistrano.runner import execute

    def plan(members: Any) -> Any:
        release = flows.release_for_run([m.state for m in members])
        return lambda member: (release, None)

    with _fleet(options, stage, role, overrides, "deploy") as fleet:
        fleet.announce(f"deploying {fleet.app} to {fleet.describe()}")
        outcome = execute(fleet.runner, flows.RELEASE, fleet.members, plan, **fleet.run_policy)
        fleet.finish("deploy", outcome, success=f"deployed release {outcome.release}")


_release_alias = copy.copy(deploy)
_release_alias.hidden = True
cli.add_command(_release_alias, "release")


@fleet_command("rollback", "Switch every selected host back to its previous release.")
@click.option("--to", "to", metavar="RELEASE", help="Return to this release instead of the previous one.")
def rollback(options: Options, stage: str | None, role: str | None, overrides: list[str], to: str | None) -> None:
    from fapistrano import flows
    from fapistrano.runner import execute

    def plan(members: Any) -> Any:
        choices, refusals = {}, []
        for member in members:
            try:
                choices[id(member)] = flows.rollback_choice(member.name, member.state, to)
            except FapError as error:
                refusals.append(str(error))
        if refusals:
            raise FapError("; ".join(refusals))
        return lambda member: choices[id(member)]

    with _fleet(options, stage, role, overrides, "rollback") as fleet:
        fleet.announce(f"rolling back {fleet.app} on {fleet.describe()}")
        outcome = execute(fleet.runner, flows.ROLLBACK, fleet.members, plan, **fleet.run_policy)
        fleet.finish("rollback", outcome, success="rolled back")


@fleet_command("restart", "Run the restart hooks (restarting, restarted) on every selected host.")
def restart(options: Options, stage: str | None, role: str | None, overrides: list[str]) -> None:
    from fapistrano import flows
    from fapistrano.runner import execute

    def plan(members: Any) -> Any:
        current = {id(m): flows.restart_choice(m.name, m.state) for m in members}
        return lambda member: (current[id(member)], None)

    with _fleet(options, stage, role, overrides, "restart") as fleet:
        fleet.announce(f"restarting {fleet.app} on {fleet.describe()}")
        outcome = execute(fleet.runner, flows.RESTART, fleet.members, plan, **fleet.run_policy)
        fleet.finish("restart", outcome, success="restarted")


@fleet_command("once", "Run a one-off admin command in the current release, with its .env loaded.")
@click.option("-c", "--command", "command", required=True, metavar="CMD", help="Shell command to run.")
@click.option("--host", "host", metavar="NAME", help="Run on this host (default: the first host of each stage/role).")
@click.option("--all-hosts", is_flag=True, help="Run on every selected host.")
def once(options: Options, stage: str | None, role: str | None, overrides: list[str], command: str, host: str | None, all_hosts: bool) -> None:
    from fapistrano.runner import run_once

    with _fleet(options, stage, role, overrides, "once", hosts=_host_filter(host, all_hosts)) as fleet:
        exit_code = run_once(fleet.runner, fleet.members, command)
        fleet.close()
        if exit_code:
            sys.exit(exit_code)


@fleet_command("shell", "Open an interactive shell in the current release of one host.")
@click.option("--host", "host", metavar="NAME", help="Which host (default: the first one selected).")
def shell(options: Options, stage: str | None, role: str | None, overrides: list[str], host: str | None) -> None:
    from fapistrano.runner import shell_argv

    with _fleet(options, stage, role, overrides, "shell", hosts=_host_filter(host, False)) as fleet:
        member = fleet.members[0]
        argv = shell_argv(member)
        fleet.close()
    sys.stdout.flush()
    os.execvp(argv[0], argv)


@fleet_command("unlock", "Remove a stale deploy lock after showing who held it.")
def unlock(options: Options, stage: str | None, role: str | None, overrides: list[str]) -> None:
    from fapistrano.runner import run_unlock

    with _fleet(options, stage, role, overrides, "unlock") as fleet:
        exit_code = run_unlock(fleet.runner, fleet.members)
        fleet.close()
        if exit_code:
            sys.exit(exit_code)


def _host_filter(host: str | None, all_hosts: bool) -> Callable[[list[Any]], list[Any]]:
    def choose(members: list[Any]) -> list[Any]:
        if host is not None:
            chosen = [m for m in members if m.name == host]
            if not chosen:
                names = ", ".join(sorted({m.name for m in members}))
                raise FapError(f"--host {host}: not a host of the selected targets ({names})")
            return chosen[:1]
        if all_hosts:
            return members
        first: dict[str, Any] = {}
        for member in members:
            first.setdefault(member.label, member)
        return list(first.values())

    return choose


# ---------------------------------------------------------------------------
# Building a fleet from deploy.yml
# ---------------------------------------------------------------------------


class _fleet:  # noqa: N801 - used as a context manager: `with _fleet(...) as fleet`
    """Resolve the targets, load plugins, make the runner; report at the end."""

    def __init__(self, options: Options, stage: str | None, role: str | None, overrides: list[str], command: str,
                 hosts: Callable[[list[Any]], list[Any]] | None = None) -> None:
        from fapistrano import config as cfg
        from fapistrano.masking import Masker
        from fapistrano.plugins import Plugins
        from fapistrano.runner import Runner, build_members, control_directory, lock_owner_text
        from fapistrano.ui import Fanout, JsonLog, make_console, make_reporter

        self.options = options
        self.console = make_console()
        self.errors = make_console(stderr=True)
        deployfile = cfg.DeployFile.load(cfg.find_deployfile(options.deployfile))
        pairs = deployfile.select(stage, role)
        plugins = Plugins()
        enabled = {pair: deployfile.plugins_for(*pair, command if command != "release" else "deploy") for pair in pairs}
        plugins.load((entry for names in enabled.values() for entry in names), search_path=str(deployfile.path.parent.resolve()))
        declared = cfg.declared_settings(plugins.defaults(), plugins.docs())
        parsed = cfg.parse_overrides(overrides, declared)
        self.roles = [cfg.merge(deployfile, s, r, declared, parsed, [n for n, _ in enabled[(s, r)]]) for s, r in pairs]
        for role_settings in self.roles:
            for warning in role_settings.warnings:
                self.errors.print(f"fap: warning: {warning}", style="yellow", markup=False, highlight=False)
        self._control_dir = control_directory()
        members = build_members(self.roles, self._control_dir)
        if hosts is not None:
            members = hosts(members)
        self.members = members
        secret_names = set(plugins.secret_settings())
        secrets = [
            member.target.config[name]
            for member in members
            for name in (*member.target.config["mask"], *secret_names)
            if isinstance(member.target.config.get(name), str) and member.target.config.get(name)
        ]
        self.masker = Masker(secrets)
        reporters = [make_reporter(self.console, options.verbosity, live=options.live)]
        if options.log_json:
            try:
                reporters.append(JsonLog(open(options.log_json, "a", encoding="utf-8")))  # noqa: SIM115 - closed by the reporter
            except OSError as error:
                raise FapError(f"--log-json {options.log_json}: {error.strerror}") from None
        self.reporter = Fanout(reporters)
        max_parallel = options.parallel or min(r.values["max_parallel"] for r in self.roles)
        self.runner = Runner(plugins, self.reporter, self.masker, dry_run=options.dry_run,
                             max_parallel=max_parallel, lock_text=lock_owner_text(f"fap {command}"))
        self.app = self.roles[0].values.get("app_name") or "the application"
        first = members[0].target.config if members else {"batch_size": 0, "max_fail": "0"}
        # Run-wide settings: one value for the whole fleet run (the top level or the command line sets them).
        self.run_policy = {"batch_size": first["batch_size"], "max_fail": first["max_fail"]}
        self._closed = False

    def __enter__(self) -> _fleet:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.reporter.close()
            try:
                os.rmdir(self._control_dir)
            except OSError:
                pass

    def describe(self) -> str:
        targets = ", ".join(f"{r.stage}/{r.role}" for r in self.roles)
        count = len(self.members)
        return f"{targets} ({count} host{'s' if count != 1 else ''}){' [dry run]' if self.options.dry_run else ''}"

    def announce(self, message: str) -> None:
        from fapistrano.ui import Event

        self.reporter.handle(Event("run", message=self.masker(message)))

    def finish(self, command: str, outcome: Any, success: str) -> None:
        from fapistrano.runner import summarize

        ran = any(m.ctx is not None or m.failed is not None for m in self.members)
        results = summarize(self.members, self.masker) if ran else []
        title = f"fap {command}: {'ok' if outcome.ok else 'FAILED'}"
        self.reporter.summary(title, results, outcome.ok)
        self.close()
        if outcome.ok:
            self.console.print(f"{success}{' (dry run: nothing changed)' if self.options.dry_run else ''}", markup=False, highlight=False)
            return
        for error in outcome.errors:
            self.errors.print(f"fap: error: {self.masker(error)}", style="red", markup=False, highlight=False, soft_wrap=True)
        sys.exit(outcome.exit_code)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``fap`` command: user errors are one line, never a traceback."""
    try:
        cli.main(args=argv, prog_name="fap", standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.Abort:
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
