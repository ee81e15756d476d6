"""A run composed in one place: deploy file -> plugins -> settings -> targets -> hosts -> reporters -> the engine.

Every command that acts on stage/role targets starts here: it builds a
:class:`Composition`, then hands its members to the engine
(:class:`fapistrano.runner.Runner`). Nothing here runs a phase. The ``ctx`` of
each host is built later, once, by :meth:`fapistrano.runner.Runner.make_contexts`,
when the command knows which release each host works on. A command that only
reads the hosts (``releases``, ``check``, ``once``, ``lock``, ``unlock``) goes
through :meth:`Composition.connected`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fapistrano import config as cfg
from fapistrano import flows
from fapistrano.hosts import Member
from fapistrano.hosts import key as member_key
from fapistrano.plugins import describe

if TYPE_CHECKING:
    from fapistrano.flows import FlowName
    from fapistrano.options import Options
    from fapistrano.runner import Runner


def deployfile_path(option: str | None) -> Path:
    """The deploy file to use; one found in a parent directory is named on stderr, so nobody wonders which."""
    path = cfg.find_deployfile(option)
    if option is None and not os.environ.get("FAP_APP") and path.is_absolute():
        print(f"fap: using {path}", file=sys.stderr, flush=True)
    return path


def host_filter(all_hosts: bool) -> Callable[[list[Member]], list[Member]]:
    """Among the selected hosts: every one (``--all-hosts``), or the first of each stage/role."""

    def choose(members: list[Member]) -> list[Member]:
        if all_hosts:
            return members
        first: dict[str, Member] = {}
        for member in members:
            first.setdefault(member.label, member)
        return list(first.values())

    return choose


def select_hosts(patterns: str | None, host: str | None, members: list[Member]) -> tuple[list[Member], list[Member]]:
    """``--hosts PATTERNS`` (or ``--host NAME``, its exact-name alias): ``(selected, left out)``."""
    from fapistrano.selection import HostPatterns

    if patterns is not None and host is not None:
        raise cfg.ConfigError("command line: --host and --hosts: give one of them")
    if host is not None:
        return HostPatterns.exact_name(host).split(members)
    if patterns is not None:
        return HostPatterns.parse(patterns).split(members)
    return members, []


def top_level_settings(deployfile: cfg.DeployFile, declared: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The run's own settings (``run.config``): see :func:`fapistrano.config.top_level_settings`."""
    return cfg.top_level_settings(deployfile, declared, overrides)


class Composition:
    """The selected targets' hosts, their plugins, the reporters and the engine of one command.

    Used as a context manager: connections, the live view and the socket
    directory are closed on every exit path.
    """

    def __init__(self, options: Options, stage: str | None, role: str | None, overrides: list[str], command: str,
                 hosts: Callable[[list[Member]], list[Member]] | None = None, connects: bool = True,
                 stand_in: str | None = None, host: str | None = None) -> None:
        from fapistrano import connections
        from fapistrano.hosts import build_members, check_distinct_paths
        from fapistrano.plugins import Plugins
        from fapistrano.remote import allow_open_files
        from fapistrano.steps import assign_steps

        self.options = options
        self.command = command
        # How the operator selected these hosts, for the next command we suggest ("fap rollback -s production").
        self.selection = " ".join(f"{flag} {value}" for flag, value in (("-s", stage), ("-r", role)) if value)
        deployfile = cfg.DeployFile.load(deployfile_path(options.deployfile))
        pairs = deployfile.select(stage, role)
        plugins = Plugins()
        enabled = {pair: deployfile.plugins_for(*pair, command) for pair in pairs}
        plugins.load((entry for names in enabled.values() for entry in names), search_path=str(deployfile.path.parent.resolve()))
        declared = cfg.declared_settings(plugins.settings())
        user_declared = cfg.with_user_settings(deployfile, declared)
        parsed = cfg.parse_overrides(overrides, user_declared)
        self.roles = [cfg.merge(deployfile, s, r, declared, parsed, [n for n, _ in enabled[(s, r)]]) for s, r in pairs]
        self._deployfile, self._declared, self._overrides = deployfile, declared, parsed
        persist = connections.run_persist(r.values for r in self.roles) if connects else 0.0
        self._control_dir, persist, self._persist_warning = connections.control_directory(persist)
        self._persisting = persist > 0  # the private directory: kept, with the masters in it
        try:
            members = build_members(self.roles, self._control_dir, stand_in)
            connections.attach((m.connection for m in members), persist,
                               connections.ConnectGate(min(r.values["max_connecting"] for r in self.roles)))
            members, left_out = select_hosts(options.hosts, host, members)
            self.left_out = [(m.label, m.name) for m in left_out]  # for the note after a partial deploy
            if hosts is not None:
                members = hosts(members)
            elif not flows.command(command).reads_only:  # a command that only reads: two targets may share a path
                check_distinct_paths(members)
            assign_steps(members)
        except BaseException:
            # Nothing connected yet: an empty directory goes (a kept one holding other runs' masters stays).
            with contextlib.suppress(OSError):
                os.rmdir(self._control_dir)
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
        from fapistrano.freeze import wait_policy
        from fapistrano.masking import Masker, MaskingReporter, collect_secrets
        from fapistrano.runner import Runner
        from fapistrano.sessions import lock_owner_text
        from fapistrano.ui import Fanout, JsonLog, make_console, make_reporter, open_event_log

        self.console = make_console()
        self.errors = make_console(stderr=True)
        for warning in (self._persist_warning,) if self._persist_warning else ():
            self.errors.print(f"fap: warning: {warning}", style="yellow", markup=False, highlight=False)
        # A warning about the top of deploy.yml comes from every stage/role that reads it: said once.
        for warning in dict.fromkeys(w for role_settings in self.roles for w in role_settings.warnings):
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
        reporters = [make_reporter(self.console, options.verbosity, live=options.live, dry_run=options.dry_run)]
        if options.log_json:
            try:
                stream = open_event_log(options.log_json)  # closed by the reporter
            except OSError as error:  # bad input on the command line: exit 2, before any host is reached
                raise cfg.ConfigError(f"--log-json {options.log_json}: {error.strerror}") from None
            reporters.append(JsonLog(stream, on_error=functools.partial(self._log_json_failed, options.log_json)))
        # Every event passes the masker on its way to any output: the one boundary secrets cannot cross.
        self.reporter = MaskingReporter(Fanout(reporters), self.masker)
        self.runner = Runner(plugins, self.reporter, self.masker, dry_run=options.dry_run,
                             max_parallel=self.max_parallel, lock_text=lock_owner_text(f"fap {command}"),
                             project_dir=str(self._deployfile.path.parent.resolve()))
        self.app = self.roles[0].values.get("app_name") or "the application"
        first = members[0].target.config if members else {"batch_size": 0, "batch_pause": 0.0, "max_fail": "0"}
        # Run-wide settings: one value for the whole fleet run (the top level or the command line sets them).
        self.run_policy: dict[str, Any] = {"batch_size": first["batch_size"], "batch_pause": first["batch_pause"],
                                           "max_fail": first["max_fail"],
                                           "wait_lock": wait_policy(options.wait_lock, self.reporter, self.selection)}

    def _log_json_failed(self, path: str, error: OSError) -> None:
        # The log is a side channel: a run half-way through a switch must not stop because a file cannot be written.
        self.errors.print(f"fap: warning: --log-json {path}: cannot write: {error.strerror or error};"
                          " the run goes on without the event log", style="yellow", markup=False, highlight=False,
                          soft_wrap=True)

    def local_steps(self, run: Any) -> Any:
        """The run's ``local:`` steps of ``hooks:`` (a :class:`fapistrano.steps.LocalSteps`), run in deploy.yml's directory."""
        from fapistrano.steps import LocalSteps

        return LocalSteps(run, self.members, str(self._deployfile.path.parent.resolve()))

    def run_config(self) -> dict[str, Any]:
        """The run's top-level settings (see :func:`top_level_settings`), for ``run.config``."""
        return top_level_settings(self._deployfile, self._declared, self._overrides)

    def __enter__(self) -> Composition:
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
            # A master killed at the end (a session that would not close) leaves its socket file: the
            # directory is this run's own, made by mkdtemp, and goes whole.
            if not self._persisting:
                shutil.rmtree(self._control_dir, ignore_errors=True)

    def describe(self) -> str:
        targets = ", ".join(dict.fromkeys(m.label for m in self.members))  # a role --hosts left no host of is not run
        count = len(self.members)
        return f"{targets} ({count} host{'s' if count != 1 else ''}){' [dry run]' if self.options.dry_run else ''}"

    def announce(self, message: str) -> None:
        from fapistrano.ui import Event

        self.reporter.handle(Event("run", message=self.masker(message)))

    @contextlib.contextmanager
    def connected(self, flow: FlowName | None = None, *, probe: bool = True) -> Iterator[Connected]:
        """Connect to (and probe) every host at once; hand over those that answered; release and close on the way out.

        With ``flow`` (a command's flow that runs no phases: check, once,
        releases), each host that answered gets its ``ctx``. The hosts that
        did not answer are in :attr:`Connected.failures`; what the command
        does on the others goes through :meth:`Connected.on_each`. The locks
        the command marked (``fap unlock``) are released as the sessions close.
        """
        runner = self.runner
        hosts = Connected(runner, self.members)
        try:
            hosts.failures.update(runner.connect(self.members, probe=probe))
            for member in self.members:
                if member_key(member) in hosts.failures:
                    member.failed = hosts.failures[member_key(member)]
            if flow is not None:
                runner.make_contexts(hosts.answered, lambda member: (None, None), flow)
            yield hosts
        finally:
            runner.close(self.members)


@dataclass
class Connected:
    """The hosts of a read-only command, connected: those that answered, and why the others did not."""

    runner: Runner
    members: list[Member]
    #: Why a host failed, by :func:`fapistrano.hosts.key`: connecting (or probing), then the command's own work.
    failures: dict[str, BaseException] = field(default_factory=dict)

    @property
    def answered(self) -> list[Member]:
        """The hosts that connected (and were probed), in deploy.yml's order."""
        return [m for m in self.members if member_key(m) not in self.failures]

    def on_each(self, work: Callable[[Member], Any]) -> dict[str, BaseException]:
        """Run ``work`` on every host that answered, in parallel; its failures join :attr:`failures` and are returned."""
        errors = self.runner.on_each(self.answered, work)
        self.failures.update(errors)
        return errors

    def failure_lines(self) -> list[str]:
        """``host: why`` for every host that failed (masked), in deploy.yml's order."""
        return [f"{m.name}: {self.runner.masker(describe(self.failures[member_key(m)], m.name))}" for m in self.members
                if member_key(m) in self.failures]
