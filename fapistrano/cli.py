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
from dataclasses import dataclass
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
    hosts: str | None = None  # --hosts: patterns filtering the selected targets' hosts

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
    names = ("deployfile", "dry_run", "verbose", "quiet", "parallel", "log_json", "live", "hosts")
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
@click.option("--host", "host", metavar="NAME", help="Only this host (its exact name; same as --hosts NAME without patterns).")
@click.option("--all-hosts", is_flag=True, help="Run on every selected host (default: the first selected host of each stage/role).")
def once(options: Options, stage: str | None, role: str | None, overrides: list[str], command: str, host: str | None, all_hosts: bool) -> None:
    from fapistrano.runner import run_once

    with _fleet(options, stage, role, overrides, "once", hosts=_host_filter(all_hosts), host=host) as fleet:
        exit_code = run_once(fleet.runner, fleet.members, command)
        fleet.close()
        if exit_code:
            sys.exit(exit_code)


@fleet_command("shell", "Open an interactive shell in the current release of one host, with its .env loaded.")
@click.option("--host", "host", metavar="NAME", help="Which host, by exact name (default: the first one selected).")
def shell(options: Options, stage: str | None, role: str | None, overrides: list[str], host: str | None) -> None:
    from fapistrano.runner import shell_argv

    with _fleet(options, stage, role, overrides, "shell", hosts=_host_filter(False), host=host, connects=False) as fleet:
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


def _host_filter(all_hosts: bool) -> Callable[[list[Any]], list[Any]]:
    """Among the selected hosts: every one, or the first of each stage/role."""

    def choose(members: list[Any]) -> list[Any]:
        if all_hosts:
            return members
        first: dict[str, Any] = {}
        for member in members:
            first.setdefault(member.label, member)
        return list(first.values())

    return choose


def _select_hosts(patterns: str | None, host: str | None, members: list[Any]) -> tuple[list[Any], list[Any]]:
    """``--hosts PATTERNS`` (or ``--host NAME``, its exact-name alias): ``(selected, left out)``."""
    from fapistrano.errors import ConfigError
    from fapistrano.selection import HostPatterns

    if patterns is not None and host is not None:
        raise ConfigError("command line: --host and --hosts: give one of them")
    if host is not None:
        return HostPatterns.exact_name(host).split(members)
    if patterns is not None:
        return HostPatterns.parse(patterns).split(members)
    return members, []


# ---------------------------------------------------------------------------
# Building a fleet from deploy.yml
# ---------------------------------------------------------------------------


def _deployfile_path(option: str | None) -> Any:
    """The deploy file to use; one found in a parent directory is named on stderr, so nobody wonders which."""
    from fapistrano.config import find_deployfile

    path = find_deployfile(option)
    if option is None and not os.environ.get("FAP_APP") and path.is_absolute():
        click.echo(f"fap: using {path}", err=True)
    return path


class _fleet:  # noqa: N801 - used as a context manager: `with _fleet(...) as fleet`
    """Resolve the targets, load plugins, make the runner; report at the end."""

    def __init__(self, options: Options, stage: str | None, role: str | None, overrides: list[str], command: str,
                 hosts: Callable[[list[Any]], list[Any]] | None = None, connects: bool = True,
                 host: str | None = None) -> None:
        from fapistrano import config as cfg
        from fapistrano.plugins import Plugins
        from fapistrano.remote import allow_open_files
        from fapistrano.runner import build_members, check_distinct_paths, control_directory

        self.options = options
        # How the operator selected these hosts, for the next command we suggest ("fap rollback -s production").
        self.selection = " ".join(f"{flag} {value}" for flag, value in (("-s", stage), ("-r", role)) if value)
        deployfile = cfg.DeployFile.load(_deployfile_path(options.deployfile))
        pairs = deployfile.select(stage, role)
        plugins = Plugins()
        enabled = {pair: deployfile.plugins_for(*pair, command) for pair in pairs}
        plugins.load((entry for names in enabled.values() for entry in names), search_path=str(deployfile.path.parent.resolve()))
        declared = cfg.declared_settings(plugins.settings())
        parsed = cfg.parse_overrides(overrides, cfg.with_user_settings(deployfile, declared))
        self.roles = [cfg.merge(deployfile, s, r, declared, parsed, [n for n, _ in enabled[(s, r)]]) for s, r in pairs]
        self._control_dir = control_directory()
        try:
            members = build_members(self.roles, self._control_dir)
            members, left_out = _select_hosts(options.hosts, host, members)
            self.left_out = [(m.label, m.name) for m in left_out]  # for the note after a partial deploy
            if hosts is not None:
                members = hosts(members)
            elif command not in ("releases", "check", "config", "unlock"):
                check_distinct_paths(members)
        except BaseException:
            os.rmdir(self._control_dir)  # nothing connected yet: it is still empty
            raise
        self.members = members
        self._closed = False
        self.max_parallel = options.parallel or min(r.values["max_parallel"] for r in self.roles)
        if connects:
            allow_open_files(len(members))
            # The SSH handshakes (the bulk of a run's start on a fleet) run while the rest is set up;
            # as many as the run will connect at once, the first hosts it will work on.
            for member in members[:self.max_parallel]:
                member.connection.start()
        try:
            self._finish_setup(options, plugins, command)
        except BaseException:
            self.close()
            raise

    def _finish_setup(self, options: Options, plugins: Any, command: str) -> None:
        from fapistrano.masking import Masker, MaskingReporter, collect_secrets
        from fapistrano.runner import Runner, lock_owner_text
        from fapistrano.ui import Fanout, JsonLog, make_console, make_reporter

        self.console = make_console()
        self.errors = make_console(stderr=True)
        for role_settings in self.roles:
            for warning in role_settings.warnings:
                self.errors.print(f"fap: warning: {warning}", style="yellow", markup=False, highlight=False)
        members = self.members
        secret_names = set(plugins.secret_settings())
        secrets = [
            secret
            for member in members
            for secret in collect_secrets(member.target.config, (*member.target.config["mask"], *secret_names),
                                          {name: origin.prefix() for name, origin in member.target.origins.items()})
        ]
        secrets += [secret for member in members for secret in member.target.environment_secrets]
        self.masker = Masker(secrets)
        reporters = [make_reporter(self.console, options.verbosity, live=options.live)]
        if options.log_json:
            try:
                stream = open(options.log_json, "a", encoding="utf-8")  # noqa: SIM115 - closed by the reporter
            except OSError as error:
                raise FapError(f"--log-json {options.log_json}: {error.strerror}") from None
            reporters.append(JsonLog(stream, on_error=functools.partial(self._log_json_failed, options.log_json)))
        # Every event passes the masker on its way to any output: the one boundary secrets cannot cross.
        self.reporter = MaskingReporter(Fanout(reporters), self.masker)
        self.runner = Runner(plugins, self.reporter, self.masker, dry_run=options.dry_run,
                             max_parallel=self.max_parallel, lock_text=lock_owner_text(f"fap {command}"))
        self.app = self.roles[0].values.get("app_name") or "the application"
        first = members[0].target.config if members else {"batch_size": 0, "max_fail": "0"}
        # Run-wide settings: one value for the whole fleet run (the top level or the command line sets them).
        self.run_policy = {"batch_size": first["batch_size"], "max_fail": first["max_fail"]}

    def _log_json_failed(self, path: str, error: OSError) -> None:
        # The log is a side channel: a run half-way through a switch must not stop because a file cannot be written.
        self.errors.print(f"fap: warning: --log-json {path}: cannot write: {error.strerror or error};"
                          " the run goes on without the event log", style="yellow", markup=False, highlight=False,
                          soft_wrap=True)

    def __enter__(self) -> _fleet:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            for member in self.members:
                member.connection.close()  # a no-op once the runner has closed it
            if hasattr(self, "reporter"):
                self.reporter.close()
            try:
                os.rmdir(self._control_dir)
            except OSError:
                pass

    def describe(self) -> str:
        targets = ", ".join(dict.fromkeys(m.label for m in self.members))  # a role --hosts left no host of is not run
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
        if command == "deploy":
            from fapistrano.selection import left_behind

            switched = [(m.label, m.name, m.ctx.release) for m in self.members if m.switched and m.status != "reverted" and m.ctx]
            for line in left_behind(switched, self.left_out):
                self.console.print(f"warning: {self.masker(line)}", style="yellow", markup=False, highlight=False, soft_wrap=True)
        if outcome.ok:
            self.console.print(f"{success}{' (dry run: nothing changed)' if self.options.dry_run else ''}", markup=False, highlight=False)
            return
        for error in outcome.errors:
            self.errors.print(f"fap: error: {self.masker(error)}", style="red", markup=False, highlight=False, soft_wrap=True)
        if outcome.where:
            self.errors.print(f"fap: {outcome.where}", style="red", markup=False, highlight=False, soft_wrap=True)
        if outcome.moved and command == "deploy":
            back = " ".join(p for p in ("fap rollback", self.selection) if p)
            self.errors.print(f"fap: to return to the previous release: {back}", style="red", markup=False, highlight=False,
                              soft_wrap=True)
        sys.exit(outcome.exit_code)


# ---------------------------------------------------------------------------
# Operator commands: init, check, releases, config, plugins.
# The logic lives in fapistrano.init and fapistrano.inspect; these only wire
# options to it and print.
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

    from fapistrano import init as scaffold

    options: Options = context.find_object(Options) or Options()
    path = Path(deployfile or options.deployfile or "deploy.yml")
    if path.exists():
        scaffold.write_new(path, "")  # raises the one-line refusal
    from fapistrano.plugins import installed_plugins

    names = scaffold.plugin_names(plugin_option, [p.name for p in installed_plugins()])
    chosen, docs, secrets = scaffold.load_plugins(names)
    text = scaffold.render(app_name or scaffold.default_app_name(path.parent), chosen, docs, secrets)
    scaffold.write_new(path, text)
    listed = ", ".join(names) or "none"
    click.echo(f"wrote {path} (plugins: {listed}); next: fill in hosts under stage_role_configs, then run 'fap check -s staging'")


def _plain_output(options: Options) -> Options:
    """Read-only reports print lines and tables, not the live deploy view (unless --live asks)."""
    import dataclasses

    return options if options.live else dataclasses.replace(options, live=False)


@fleet_command("check", "Connect to every selected host and report what would make a deploy fail.",
               short_help="Report, per host, what would make a deploy fail.")
def check(options: Options, stage: str | None, role: str | None, overrides: list[str]) -> None:
    from fapistrano.inspect import check_ok_line, check_summary, run_check

    with _fleet(_plain_output(options), stage, role, overrides, "check") as fleet:
        fleet.announce(f"checking {fleet.app} on {fleet.describe()}")
        checks = run_check(fleet.runner, fleet.members)
        for result in checks:
            if result.ok:
                fleet.runner.emit("log", check_ok_line(result), host=result.host, phase=result.target)
            for problem in result.problems:
                fleet.runner.emit("error", problem, host=result.host, phase=result.target)
        fleet.close()
    ok = all(c.ok for c in checks)
    fleet.console.print(check_summary(checks), style="green" if ok else "bold red", markup=False, highlight=False)
    if not ok:
        sys.exit(1)


@fleet_command("releases", "List each target's releases: revision, age, which is current; warn when hosts disagree.",
               short_help="List releases: revision, age, which is current.")
def releases(options: Options, stage: str | None, role: str | None, overrides: list[str]) -> None:
    from rich import box
    from rich.table import Table

    from fapistrano.inspect import broken_currents, current_disagreement, release_rows, run_releases
    from fapistrano.layout import now

    with _fleet(_plain_output(options), stage, role, overrides, "releases") as fleet:
        by_target, errors = run_releases(fleet.runner, fleet.members)
        fleet.close()
    moment = now()
    for label, hosts in by_target.items():
        count = sum(1 for m in fleet.members if m.label == label)
        title = f"{label}: {len(hosts)} of {count} host{'s' if count != 1 else ''} answered" if len(hosts) < count else \
            f"{label} ({count} host{'s' if count != 1 else ''})"
        rows = release_rows(hosts, moment)
        if not rows:
            fleet.console.print(f"{title}: no releases yet", markup=False, highlight=False)
            continue
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for column in ("release", "revision", "age", "status", "hosts"):
            table.add_column(column, no_wrap=column != "hosts")
        for row in rows:
            style = "bold green" if row.status == "current" else ("yellow" if row.status else "")
            table.add_row(row.release, row.revision, row.age, row.status, row.hosts, style=style)
        fleet.console.print(table)
        disagreement = current_disagreement(label, hosts)
        for warning in [*([disagreement] if disagreement else []), *broken_currents(hosts)]:
            fleet.console.print(f"warning: {warning}", style="yellow", markup=False, highlight=False, soft_wrap=True)
    for error in errors:
        fleet.errors.print(f"fap: error: {error}", style="red", markup=False, highlight=False, soft_wrap=True)
    if errors:
        sys.exit(1)


@fleet_command("config", "Show every resolved setting of a stage/role, its value (secrets masked) and where it came from."
               " Connects to nothing.", short_help="Show resolved settings and where each came from.")
@click.option("--host", "host", metavar="NAME", help="Resolve for this host, by exact name (default: the first of each stage/role).")
def config(options: Options, stage: str | None, role: str | None, overrides: list[str], host: str | None) -> None:
    from rich.text import Text

    from fapistrano.inspect import setting_rows

    # As 'fap deploy' resolves them (its plugins); nothing connects.
    with _fleet(_plain_output(options), stage, role, overrides, "deploy", hosts=_host_filter(False), host=host,
                connects=False) as fleet:
        secret_names = fleet.runner.plugins.secret_settings()
        for index, member in enumerate(fleet.members):
            rows = setting_rows(member.target, secret_names, fleet.masker)
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
    from fapistrano.init import yaml_line
    from fapistrano.inspect import builtin_steps, plugin_infos
    from fapistrano.ui import make_console

    options: Options = context.find_object(Options) or Options()
    explicit = deployfile or options.deployfile
    try:
        path = _deployfile_path(explicit)
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
    if broken:
        sys.exit(1)


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
