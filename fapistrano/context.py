"""``ctx``: what every hook gets — one host's settings and the means to act on it."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

from fapistrano.config import Target
from fapistrano.errors import CommandFailed, Interrupted
from fapistrano.flows import command_of_flow
from fapistrano.layout import HostState
from fapistrano.masking import Masker
from fapistrano.remote import Host, Stdin
from fapistrano.run import RunState
from fapistrano.settings import Settings
from fapistrano.throttle import Throttles
from fapistrano.ui import Event, EventKind, Reporter, line_reader


class Context:
    """One host, one run. Hooks read settings from it and run commands through it.

    Every attribute below may be read by any plugin; the core's built-in plugins
    (:mod:`fapistrano.builtin`) read nothing else. ``ctx.state`` is the one
    a plugin writes, and :attr:`current_release` the one a plugin that moves
    ``current`` itself updates.
    """

    def __init__(
        self,
        target: Target,
        connection: Host,
        reporter: Reporter,
        *,
        dry_run: bool = False,
        masker: Masker | None = None,
        rollback_from: str | None = None,
        previous_release: str | None = None,
        flow: str = "release",
        stopping: Any = None,
        host_state: HostState | None = None,
        locked: bool = False,
        revision_hook: Callable[..., str | None] | None = None,
        project_dir: str | None = None,
        throttles: Throttles | None = None,
        command: str | None = None,
    ) -> None:
        found = host_state or HostState()
        self.target = target
        #: The resolved settings (a read-only mapping; ``%(name)s`` already
        #: interpolated for this host and release). Reading a name that no
        #: plugin's ``fap_settings`` declares raises an error saying so (a
        #: :class:`KeyError` too).
        self.config: Mapping[str, Any] = Settings(target.config)
        #: The stage's name.
        self.stage = target.stage
        #: The role's name.
        self.role = target.role
        #: The host's name.
        self.host = target.host.name
        #: The release this run works on: the new one in a deploy, the one
        #: returned to in a rollback, the current one in a restart; ``None``
        #: in ``fap check`` and ``fap releases``.
        self.release = target.release
        #: The directory of :attr:`release`.
        self.release_path: str = target.config["release_path"]
        #: In a rollback, the release being left; otherwise ``None``.
        self.rollback_from = rollback_from
        #: The release ``current`` pointed to when the run started (``None`` on
        #: a first deploy). It does not change during the run.
        self.previous_release = previous_release
        #: The release ``current`` points to now: as the run found it, until
        #: the switch in ``publishing`` moves it to :attr:`release` (in a
        #: deploy and in a rollback; not under ``--dry-run``). ``None`` when
        #: nothing is deployed. A plugin that moves ``current`` itself sets it,
        #: so that a failure switches this host back.
        self.current_release: str | None = found.current
        #: The finished releases on the host when the run started, oldest
        #: first (a deploy's new release is not among them).
        self.releases: tuple[str, ...] = found.releases
        #: Releases still marked unfinished when the run started: left by runs
        #: that died before publishing them.
        self.unfinished_releases: tuple[str, ...] = found.unfinished
        #: The marks on the host's releases when the run started, ``{release: {kind: data}}``:
        #: ``bad`` (a rollback left it: ``who``, ``when``, ``why``, ``run``), ``migrated``...
        #: See :func:`fapistrano.layout.mark_script`.
        self.marks: Mapping[str, Mapping[str, Mapping[str, Any]]] = found.marks
        #: ``True`` when this run holds the host's deploy lock (deploy,
        #: rollback and restart, not under ``--dry-run``).
        self.locked = locked
        #: Who holds the host's lock when it is not this run (as the lock's
        #: owner file reads), else ``None``.
        self.lock_owner: str | None = found.lock_owner
        #: The command the operator typed: ``"deploy"``, ``"rollback"``,
        #: ``"restart"``, ``"check"``, ``"once"`` or ``"releases"`` (in
        #: ``fap_release_revision``, asked by ``fap releases``). Test this one.
        self.command: str = command or command_of_flow(flow)
        #: The flow the hooks run in: as :attr:`command`, except that ``fap
        #: deploy`` runs the ``"release"`` flow. Kept for the plugins that test
        #: it (``ctx.flow == "release"`` means ``ctx.command == "deploy"``).
        self.flow = flow
        #: The phase running now (``"updating"``…; ``"failed"`` in ``fap_deploy_failed``).
        self.phase = "connecting"
        #: In ``fap_deploy_failed``: the phase the run failed in (on this host
        #: or, for the hosts that did not fail, on another; ``"healthcheck"``
        #: when the health check after ``published`` failed); else ``None``.
        self.failed_phase: str | None = None
        #: ``True`` under ``--dry-run``: :meth:`run` prints instead of running.
        self.dry_run = dry_run
        #: A dict for a plugin's own per-host state across phases; prefix keys
        #: with the plugin's name.
        self.state: dict[str, Any] = {}
        #: The run's :attr:`fapistrano.Run.state` (one dict shared by every host of a
        #: ``fap deploy``, ``rollback`` or ``restart``): what a ``fap_run_starting``
        #: prepared for the phases (an artifact built once). Read it; write only
        #: in ``fap_run_starting``; to tell the run something about this host,
        #: use :meth:`report`. An empty dict in the other commands.
        self.run_state: dict[str, Any] = RunState()
        #: deploy.yml's directory on the machine running fap (absolute): where a
        #: plugin resolves relative local paths. ``None`` when not known.
        self.project_dir = project_dir
        self.stopping = stopping  # a threading.Event set on Ctrl-C: start no new command
        self.commands_run = 0
        self._connection = connection
        self._reporter = reporter
        self._mask = masker or Masker()
        self._revision_hook = revision_hook
        self._throttles = throttles or Throttles()

    def __repr__(self) -> str:
        return f"<Context {self.stage}/{self.role} {self.host} release={self.release}>"

    @property
    def remote(self) -> Any:
        """The plumbum machine (``SshMachine`` on the run's connection, or
        ``plumbum.local``), for power users; prefer :meth:`run`."""
        return self._connection.machine

    def mask(self, text: str) -> str:
        """``text`` with every configured secret replaced by ``***``."""
        return self._mask(text)

    def log(self, message: str) -> None:
        """Show ``message`` for this host (masked)."""
        self._emit("log", self.mask(str(message)))

    def warn(self, message: str) -> None:
        """Show ``message`` as a warning for this host (masked)."""
        self._emit("warning", self.mask(str(message)))

    def run(
        self,
        command: str,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        readonly: bool = False,
        stdin: Stdin = None,
        show_output: bool = False,
    ) -> str:
        """Run shell text ``command`` on the host as the deploy user; return its stdout.

        ``command`` is run exactly as given, by a new ``sh``, and may be of any
        size (it is never passed as an argument); quote values you put in
        it with :func:`shlex.quote`. ``cwd`` and ``env`` are quoted for you.
        Honours ``sudo_user``. Under ``--dry-run`` the command is printed and
        not run, unless ``readonly=True`` says it changes nothing.

        Output lines stream to the live view and are printed under the host
        with ``-v``. ``show_output=True`` is for output the operator should
        read at every run (a migration's summary, a build's warnings): its
        lines are shown like :meth:`log` lines — masked, printed at normal
        verbosity, hidden by ``-q``, recorded by ``--log-json``.

        ``stdin`` is what the command reads on its standard input: a ``str``
        (sent whole, as text), or binary data of any size — ``bytes``, a
        binary file object (``open(path, "rb")``) or an iterable of ``bytes``
        — streamed through the host's one connection as it is read (over SSH
        on a channel of its own multiplexed on that connection, the bytes as
        they are; a regular file goes in by ``sendfile``, fap reads none of
        it), so memory stays flat on both ends whatever the size. The
        command starts
        while the data arrives; when it exits before reading it all, the rest
        is discarded and its exit status is what counts. A file object is read
        from its current position to its end (give each host its own).

        A non-zero exit raises :class:`fapistrano.CommandFailed` with the
        host, the command's exit status, the command (masked) and the tails
        of its stdout and stderr.
        """
        script, shown = self._script(command, cwd, env)
        if self.stopping is not None and self.stopping.is_set():
            raise Interrupted(f"{self.host}: interrupted before running: {shown}")
        if self.dry_run and not readonly:
            self._emit("command", shown, data={"dry_run": True})
            return ""
        self.commands_run += 1
        self._emit("command", shown)
        result = self._connection.run(script, on_line=self._show_line if show_output else self._output_reader(), stdin=stdin)
        if result.exit_code != 0:
            raise CommandFailed(self.host, shown, result.exit_code, self.mask(result.stderr), self.mask(result.stdout))
        return result.stdout.rstrip("\n")

    def run_later(
        self,
        command: str,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        then: Callable[[str], None] | None = None,
        explain: Callable[[CommandFailed], BaseException] | None = None,
    ) -> None:
        """Run ``command`` on the host with its next round trip, not now: for a command whose output this hook does not need.

        Each host is one network round trip away, and a phase that runs a
        command pays one on every host. A command sent later goes in the
        same write as the next command run on this host (by any plugin, in
        this phase or a later one), in order; what is still waiting when the
        phase before ``publishing`` ends is sent then (so ``current`` never
        moves while something before the switch may still fail), and what
        a phase after the switch leaves waiting goes with the run's end
        (the unlock). The default git deploy makes four round trips per host
        this way instead of eight.

        ``then(stdout)`` is called once the command ran and exited 0. A
        non-zero exit fails the phase the command was sent from (this one,
        named as this plugin's failure) as :meth:`run` would, and the commands
        after it do not run; ``explain(error)`` may turn that
        :class:`~fapistrano.CommandFailed` into a clearer error. Under
        ``--dry-run`` the command is shown and not run (``then`` is not called).
        Use :meth:`run` for a command that another host must see done before
        the next phase: every phase's :meth:`run` commands still end on every
        host before the next phase starts on any.
        """
        script, shown = self._script(command, cwd, env)
        if self.stopping is not None and self.stopping.is_set():
            raise Interrupted(f"{self.host}: interrupted before running: {shown}")
        if self.dry_run:
            self._emit("command", shown, data={"dry_run": True})
            return
        self.commands_run += 1
        self._emit("command", shown, data={"later": True})
        phase, plugin = self.phase, self._plugin_at_work()

        def done(result: Any) -> None:
            try:
                if result.exit_code != 0:
                    failure = CommandFailed(self.host, shown, result.exit_code, self.mask(result.stderr), self.mask(result.stdout))
                    raise explain(failure) if explain is not None else failure
                if then is not None:
                    then(result.stdout.rstrip("\n"))
            except Exception as error:
                from fapistrano.errors import PluginFailure

                # The failure is the phase's and plugin's that sent the command, not theirs whose round trip carried it.
                raise PluginFailure(plugin or "fapistrano", error, phase=phase) from error

        self._connection.run_later(script, done, on_line=self._output_reader())

    def test(self, command: str) -> bool:
        """Run a read-only ``command``; ``True`` when it exits 0. Runs under ``--dry-run`` too."""
        self.commands_run += 1
        self._emit("command", self.mask(command))
        return self._connection.run(command).exit_code == 0

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists on the host."""
        return self.test(f"test -e {shlex.quote(path)}")

    def report(self, key: str, value: Any) -> None:
        """Tell the run-level hooks ``value`` about this host: ``fap_run_finished`` reads it as ``run.reports[ctx.host][key]``.

        Safe from every host's thread at once (the hosts run a phase in
        parallel). Prefix ``key`` with the plugin's name; a later report
        under the same key replaces the earlier one. A plugin timing the
        switch reports ``time.time()`` in ``publishing`` and ``published``.
        In the commands without run-level hooks (``check``, ``once``…) the
        report goes nowhere.
        """
        state = self.run_state
        if isinstance(state, RunState):
            state.report(self.host, key, value)

    def mark_migrated(self, what: str) -> None:
        """Record that this deploy changed the database schema: ``what`` did it (``"alembic upgrade head"``).

        Call it once the migration has run, from a hook of a deploy phase
        from ``updating`` to ``finishing``; name your plugin in ``what``, it
        is how every message names the migration. From the next phase on,
        every host of the stage marks the release ``migrated``, as a
        ``hooks:`` step with ``migrates: true`` does: ``fap releases`` shows
        it, and ``fap rollback`` to an older release refuses (exit 2) unless
        a ``migrates_back`` step or ``--across-migrations`` says how. Under
        ``--dry-run`` it says what it would mark. Anywhere else it raises
        :class:`fapistrano.FapError`.
        """
        from fapistrano.migrations import record

        record(self, str(what))

    def throttle(self, name: str, count: int) -> AbstractContextManager[None]:
        """A context manager: at most ``count`` hosts of the run inside ``with ctx.throttle(name, count):`` at once.

        For work that must not run everywhere at the same time (``pip install``
        against a private package index from forty hosts). A host finding
        every slot taken waits for one; the rest of the phase is not held
        back, and the phase still ends on every host before the next starts.
        The limit holds fleet-wide within the run (every stage and role of
        it), per ``name``; prefix ``name`` with the plugin's name, and use one
        count per name (another count for a name in use raises
        :class:`ValueError`). An exception inside frees the slot and goes on
        as any failure of the phase does. Ctrl-C while waiting raises
        :class:`fapistrano.errors.Interrupted`. A ``hooks:`` step's
        ``parallel: N`` is this, named after the step's ``file:line``::

            with ctx.throttle("myplugin.pip", ctx.config["myplugin_parallel"]):
                ctx.run("pip install -r requirements.txt")
        """
        return self._throttles.hold(name, count, self.stopping,
                                    on_wait=lambda: self.log(f"waiting: {name} runs on {count} hosts at a time"))

    def revision(self, release: str | None = None) -> str | None:
        """The revision ``release`` (default :attr:`release`) holds, as the plugin that put the code there says.

        Asks :func:`~fapistrano.hookspecs.fap_release_revision` of this
        target's plugins; ``None`` when none knows (no such plugin, or the
        code is not there yet: a deploy's new release has it after
        ``updating``).
        """
        release = release or self.release
        if self._revision_hook is None or release is None:
            return None
        return self._revision_hook(ctx=self, release=release)

    # -- internal ---------------------------------------------------------

    def _script(self, command: str, cwd: str | None, env: Mapping[str, str] | None) -> tuple[str, str]:
        """The shell text to run (``env`` exported, in ``cwd``) and the command as shown (masked)."""
        script = command
        if env:
            exports = "".join(f"export {name}={shlex.quote(str(value))}\n" for name, value in env.items())
            script = exports + script
        if cwd:
            script = f"cd {shlex.quote(cwd)} || exit 1\n{script}"
        return script, self.mask(command if not cwd else f"(cd {cwd}) {command}")

    def _plugin_at_work(self) -> str | None:
        """The plugin whose hookimpl is running (see :class:`fapistrano.runner.StepNaming`), when the reporter knows."""
        finder = getattr(self._reporter, "running_step", None)
        return finder() if finder is not None else None

    def _on_line(self, stream: str, line: str) -> None:
        self._emit("output", self.mask(line), data={"stream": stream})

    def _output_reader(self) -> Any:
        """What reads a command's output lines (:func:`fapistrano.ui.line_reader`)."""
        return line_reader(self._reporter, self._on_line)

    def _show_line(self, stream: str, line: str) -> None:
        self._emit("log", self.mask(line), data={"stream": stream})

    def _emit(self, kind: EventKind, message: str, **fields: Any) -> None:
        self._reporter.handle(Event(kind=kind, host=self.host, phase=self.phase, message=message, **fields))
