"""Every hook Fapistrano calls, in the order a deploy meets them.

Read this file top to bottom to learn the deploy lifecycle. A plugin
implements any subset of these hooks with ``@fapistrano.hookimpl``.

A deploy, rollback or restart calls :func:`fap_run_starting` once on the
deployer's machine, then the phases on every host, then
:func:`fap_run_finished` once, whatever happened.

Phases run on every host of the run in parallel (one worker thread per host,
at most ``max_parallel`` at once), and **every host finishes a phase before
any host starts the next one**. Each phase hook is called once per host with
one argument, ``ctx`` (a :class:`fapistrano.context.Context`), which is
private to that host and that run: keep per-host state on it
(``ctx.state``), never in module globals.

A hook fails a deploy by raising; raise :class:`fapistrano.FapError` with a
message the operator can act on (``ctx.run`` already raises one naming the
host, the command and its stderr). Any other exception is reported with the
plugin's name. A failure before ``fap_deploy_publishing`` leaves ``current``
untouched on every host and removes the new release everywhere.

The core's own work (directories, shared links, the switch, cleanup, the
checks of ``fap check``, its settings) is done by built-in plugins,
hookimpls too, in :mod:`fapistrano.builtin`, and read about a host only what
``ctx`` offers every plugin; a failure in one is named like a plugin's
(``core.dirs``, ``core.switch``…). They
are registered before third-party plugins, so pluggy calls plugin hookimpls
first within a phase unless a hookimpl says ``tryfirst``/``trylast``;
plugins' hookimpls run in the order deploy.yml lists the plugins. Two built-ins pin their
place: making directories runs ``tryfirst`` in ``fap_deploy_starting`` (so
plugins find ``path`` and the release directory there), and linking shared
files runs ``trylast`` in ``fap_deploy_updating`` (after plugins have put the
code in place, so an archive cannot clobber the links); recording what shaped
the release (``core.fingerprint``, for ``fap deploy --if-changed``) runs
``trylast`` there too, once the source plugin can say which revision the
release holds. The ``run:`` steps of
deploy.yml's ``hooks:`` (``core.steps``) run ``trylast`` in every phase and in
``fap_deploy_failed``, after every other hookimpl, the core's included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fapistrano import hookspec

if TYPE_CHECKING:
    from fapistrano.context import Context
    from fapistrano.hosts import HealthResult
    from fapistrano.run import Run
    from fapistrano.settings import Setting


# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------


@hookspec
def fap_settings() -> list[Setting]:
    """Declare the plugin's settings: name, default, description, type, secrecy.

    Called once per run, before deploy.yml is resolved, on every plugin that
    deploy.yml enables (and by ``fap plugins``, ``fap init`` and the
    configuration reference). Every setting a plugin reads from
    ``ctx.config`` must be declared here: it is how ``fap config`` shows the
    value and where it came from, how ``--some-key value`` on the command
    line is recognised, and how a value from deploy.yml is checked (an error
    names the file, the line and the key).

    Prefix setting names with the plugin's name (``git_``, ``curl_``).
    Defaults may reference other settings as ``%(name)s``; they are
    interpolated after deploy.yml and the command line are merged::

        @hookimpl
        def fap_settings():
            return [
                Setting("hello_greeting", "hello from %(host)s", "What HELLO says."),
                Setting("hello_retries", None, "Retries (unset: none).", type=int | None),
                Setting("hello_token", "", "Token of the greeting service.", secret=True),
            ]

    :return: a list of :class:`fapistrano.Setting`. Results of all plugins
        are merged; a name declared twice (or a core setting's name) is an
        error naming both declarers.
    """


@hookspec
def fap_defaults() -> dict[str, Any]:
    """The 1.0 form of :func:`fap_settings`: the plugin's settings and their defaults.

    Still honoured, unchanged: a plugin written for 1.0 keeps working. Its
    settings are typed by their default (an ``int`` accepts only integers, a
    ``bool`` only booleans, a ``list`` only lists; ``None`` or a ``str``
    accept a string), described by :func:`fap_setting_docs` and masked by
    :func:`fap_secret_settings`. New plugins declare :class:`fapistrano.Setting`
    objects in :func:`fap_settings` instead (docs/migrating.rst).

    :return: a mapping of setting name to default value.
    """


@hookspec
def fap_setting_docs() -> dict[str, str]:
    """The 1.0 form of ``Setting(doc=...)``: one sentence per setting of :func:`fap_defaults`.

    :return: a mapping of setting name to a one-line description.
    """


@hookspec
def fap_secret_settings() -> list[str]:
    """The 1.0 form of ``Setting(secret=True)``: the settings whose values are secrets.

    Their values (and the password part of ``user:password`` values) are
    replaced by ``***`` in every line fap prints, in the JSON event log, in
    error messages and in ``fap config``. Passwords inside URLs
    (``https://user:pass@host``) are masked whatever the setting.

    :return: a list of setting names.
    """


# ---------------------------------------------------------------------------
# Checks (``fap check``)
# ---------------------------------------------------------------------------


@hookspec
def fap_check(ctx: Context) -> list[str] | None:
    """Report what would make a deploy to this host fail, without changing it.

    Called once per host by ``fap check``, once the host is connected and
    probed (``ctx.previous_release`` is its current release). The core's own
    checks are a hookimpl of this hook like any plugin's
    (:mod:`fapistrano.builtin.checks`, ``tryfirst``: ``path`` writable,
    linked files present, lock free); an unreachable host is reported without
    calling it. Use only read-only commands (``ctx.test``, ``ctx.exists``,
    ``ctx.run(..., readonly=True)``). A problem is shown prefixed with the
    plugin's name; a hookimpl that raises is reported as that plugin's
    ``check failed: ...`` and does not hide the other plugins' problems. A
    problem that is not about this host (the working tree, a local tool) is
    :func:`fap_check_run`'s: said once, not once per host.

    :param ctx: the host's context; ``ctx.release`` is ``None``.
    :return: a list of problems, each one line; empty or ``None`` when fine.
    """


@hookspec
def fap_check_run(run: Run) -> list[str] | None:
    """Report what would make a deploy fail that is not about one host: the project, this machine, the run's settings.

    Called once by ``fap check``, on the deployer's machine, before the hosts
    are checked (their connections open meanwhile), on every plugin that
    deploy.yml enables for any selected target. A problem with the working
    tree, a missing build tool or a CI token that does not work belongs here:
    :func:`fap_check` would say it once per host. ``run.command`` is
    ``"check"``; ``run.hosts``, ``run.targets``, ``run.config`` and
    ``run.project_dir`` are as in :func:`fap_run_starting`; ``run.release``
    is ``None``. Use only read-only commands (``run.local(...,
    readonly=True)``). A problem is shown once, prefixed with the plugin's
    name, and makes ``fap check`` exit 1; a hookimpl that raises is reported
    as that plugin's ``check failed: ...`` and does not hide the others.

    New in 1.1: a plugin that also supports 1.0 marks it
    ``@hookimpl(optionalhook=True)``.

    :param run: the run being checked (a :class:`fapistrano.Run`).
    :return: a list of problems, each one line; empty or ``None`` when fine.
    """


# ---------------------------------------------------------------------------
# Revisions (``fap releases``, and any plugin that reports a release)
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def fap_release_revision(ctx: Context, release: str) -> str | None:
    """Say which revision (a commit, a version, an artifact's checksum) ``release`` holds on this host.

    Answered by the plugin that put the code into the release (the git plugin
    reads the sha it wrote at ``updating``). ``fap releases`` asks once per
    release on every host, after reading the host's layout; a plugin may ask
    too (a notification names the revision of ``ctx.previous_release`` and of
    ``ctx.release``). Read only: use ``ctx.run(..., readonly=True)``; keep
    what one command read in ``ctx.state`` to answer the next release from it.

    Stops at the first non-``None`` result.

    :param ctx: the host's context (in ``fap releases``, ``ctx.release`` is
        ``None`` and ``ctx.command`` is ``"releases"``).
    :param release: the name of a release under ``releases_path``.
    :return: the revision, one short line; ``None`` when this plugin did not
        put that release there or cannot tell.
    """


# ---------------------------------------------------------------------------
# The source (``fap pending``, ``fap deploy --if-changed``, ``fap promote``)
#
# The plugin that puts the code into a release (git, curl, upload, a third
# party's) answers three questions about what it would ship. A plugin that
# is not the source returns ``None``; a source that cannot answer raises
# :class:`fapistrano.FapError` saying why, and fap prints that line.
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def fap_source_revision(ctx: Context) -> str | None:
    """Say which revision a deploy of this host would ship now: what ``branch`` (or its equivalent) resolves to.

    Asked by ``fap pending`` and ``fap deploy --if-changed`` on every
    selected host, after the host's layout was read and before anything
    changes (no lock is taken). Read only: use ``ctx.run(..., readonly=True)``
    (the git plugin runs ``git ls-remote`` on the host, where the deploy
    fetches). The answer must be comparable with what
    :func:`fap_release_revision` says of the release it would make (the git
    plugin answers a full commit sha in both).

    Stops at the first non-``None`` result.

    :param ctx: the host's context; ``ctx.flow`` is ``"pending"`` (or
        ``"release"`` under ``--if-changed``) and ``ctx.release`` is ``None``
        or a name nothing has made yet.
    :return: the revision, one short line; ``None`` when this plugin is not
        the source of this target.
    :raises fapistrano.FapError: when this plugin is the source and cannot
        tell (curl: an archive's URL names no revision); its message is shown
        as "cannot tell: ...". ``fap deploy --if-changed`` then deploys.
    """


@hookspec(firstresult=True)
def fap_source_commits(ctx: Context, since: str, until: str, limit: int) -> tuple[list[str], int] | None:
    """List the changes a deploy would bring: the commits in ``until`` that ``since`` does not have.

    Asked by ``fap pending`` on one host of each group of hosts that run the
    same revision, after :func:`fap_source_revision` answered ``until``.
    Read only, and it must leave nothing behind on the host (the git plugin
    fetches the history into a scratch repository it removes again).

    Stops at the first non-``None`` result.

    :param ctx: the host's context, as in :func:`fap_source_revision`.
    :param since: the revision the host runs (what :func:`fap_release_revision`
        said of its ``current`` release).
    :param until: the revision a deploy would ship.
    :param limit: at most this many lines (50).
    :return: ``(lines, count)``: one line per commit, newest first, at most
        ``limit`` (git: the short sha and the subject), and how many commits
        there are in all; ``None`` when this plugin is not the source.
    :raises fapistrano.FapError: when this plugin is the source and cannot
        tell: the repository does not have ``since`` (history rewritten), or
        cannot be read. The message is shown for that group of hosts.
    """


@hookspec(firstresult=True)
def fap_source_promote(revision: str, stage: str, role: str, config: Any) -> dict[str, Any] | None:
    """Say which settings make a deploy of ``stage/role`` ship exactly ``revision``, whatever the branch says now.

    Asked by ``fap promote -s production --from staging`` on the deployer's
    machine, once per production target, before anything connects:
    ``revision`` is what staging's ``current`` runs, as
    :func:`fap_release_revision` said. The settings returned are applied
    like ``--name value`` on the command line of the deploy that follows (the
    git plugin returns ``{"branch": revision}``: the commit is fetched by its
    sha even when the branch moved on).

    Stops at the first non-``None`` result. No answer from any plugin of a
    target is an error: fap does not know how to pin its source.

    :param revision: the revision to ship.
    :param stage: the stage deployed to (``production``).
    :param role: the role deployed to.
    :param config: that target's settings as deploy.yml resolves them
        (read only; per-host values are not resolved here).
    :return: ``{setting: value}``; ``None`` when this plugin is not the
        source of this target.
    :raises fapistrano.ConfigError: when this plugin is the source and
        cannot ship a given revision (curl, upload): ``fap promote`` stops
        with that line and exit 2, nothing touched.
    """


# ---------------------------------------------------------------------------
# The run (``fap deploy``, ``fap rollback``, ``fap restart``), once, on the deployer's machine
#
# fap_run_starting -> the phases on every host (below) -> fap_run_finished
# ---------------------------------------------------------------------------


@hookspec
def fap_run_starting(run: Run) -> None:
    """The run is about to change hosts: say no, or prepare what the whole run needs.

    Called once per run of ``fap deploy``, ``fap rollback`` and ``fap
    restart``, on the deployer's machine, after every host is connected,
    locked and probed and the release is chosen (``run.release``), and before
    the first phase changes any host. Not called by the read-only commands
    (``check``, ``releases``, ``config``), nor by ``once``, ``shell`` or
    ``unlock``. A plugin's hookimpl is called when deploy.yml enables the
    plugin for any target of the run, once (not once per target).

    Build an artifact here (``run.local("make dist")``), refuse to deploy a
    revision CI has not passed, or say in a chat that a deploy begins. The
    plugins' hookimpls run in the order deploy.yml lists the plugins: a gate
    that must refuse before another plugin builds is
    ``@hookimpl(tryfirst=True)`` (``trylast``, ``optionalhook``, ``specname``
    and wrappers work as for every hook: docs/plugins.rst). Under
    ``--dry-run`` it is called too (``run.dry_run`` is ``True``): skip what
    you would not want done for a rehearsal.

    **Raising aborts the run with nothing changed**: no phase runs on any
    host, the locks are released, ``fap_run_finished`` is still called (with
    ``run.ok`` false), and fap exits 1 printing the error as one line
    (``fap: error: <plugin>: <message>``); 2 for a
    :class:`fapistrano.ConfigError` (a setting that cannot work). Raise
    :class:`fapistrano.FapError` with a message the operator can act on.

    What it leaves in ``run.state`` every host's phases read as
    ``ctx.run_state``: build and pack once here, send in ``updating``.

    :param run: the run (a :class:`fapistrano.Run`): ``command``,
        ``release``, ``hosts``, ``targets``, ``config``, ``dry_run``, and
        ``log``, ``warn``, ``local`` to report and to run local commands.
    """


@hookspec
def fap_run_finished(run: Run) -> None:
    """The run is over: report how it ended.

    Called once per run of ``fap deploy``, ``fap rollback`` and ``fap
    restart``, on the deployer's machine, **always**: after the last phase,
    after the failure path, after Ctrl-C or SIGTERM (the hosts cleaned up),
    after a host could not be connected to, and after a
    ``fap_run_starting`` raised. The locks are already released. (Bad input
    that fap refuses before connecting to any host, exit 2, is not a run:
    neither run-level hook is called.)
    ``run.ok``, ``run.outcome`` and ``run.error`` say how the run ended;
    what each host's phases reported with ``ctx.report(key, value)`` is in
    ``run.reports`` (``{host: {key: value}}``).

    Post to a chat, write an audit record, tell CI. Raising here is shown as a
    warning (``fap: warning``-style line) and **never changes the run's
    outcome or exit status**: the fleet is already where it is.

    :param run: the run (a :class:`fapistrano.Run`), with ``ok`` (a bool),
        ``outcome`` (``"ok"``, ``"failed"``, ``"partial"`` or ``"switched
        back"``) and ``error`` (the error lines, or ``None``) filled in.
    """


# ---------------------------------------------------------------------------
# Release (``fap deploy``) and rollback (``fap rollback``)
#
# release:  starting, started, updating, updated,
#           publishing, published, finishing, finished
# rollback: starting, started, reverting, reverted,
#           publishing, published, finishing_rollback, finished
# ---------------------------------------------------------------------------


@hookspec
def fap_deploy_starting(ctx: Context) -> None:
    """First phase of a release and of a rollback.

    The core has already taken the deploy lock on every host. Its own
    hookimpl creates ``path``, ``releases_path`` and ``shared_path``, checks
    that every ``linked_files`` entry exists in ``shared_path``, removes the
    unfinished releases of runs that died and, in a release, creates the new
    (unfinished) release directory ``ctx.release_path``.

    :param ctx: the host's context.
    """


@hookspec
def fap_deploy_started(ctx: Context) -> None:
    """Runs after ``starting`` on every host.

    Plugins check that what they need is reachable (the git plugin clones
    or verifies its repository mirror here).

    :param ctx: the host's context.
    """


@hookspec
def fap_deploy_updating(ctx: Context) -> None:
    """Put the new code into ``ctx.release_path`` (release only).

    Plugins fetch code here (git archive, curl download). After every
    plugin, the core (``trylast``) links ``linked_files``/``linked_dirs``
    from ``shared_path`` into the release and writes ``environment`` to
    ``.env``.

    :param ctx: the host's context.
    """


@hookspec
def fap_deploy_updated(ctx: Context) -> None:
    """Build the release: the code and shared links are in place (release only).

    Plugins build environments here (virtualenv, assets).

    :param ctx: the host's context.
    """


@hookspec
def fap_deploy_reverting(ctx: Context) -> None:
    """Prepare to return to ``ctx.release`` (rollback only).

    The core has chosen ``ctx.release`` (the finished release before
    ``current``, or ``--to NAME``) and ``ctx.rollback_from`` (the release
    being left) before the run starts.

    :param ctx: the host's context.
    """


@hookspec
def fap_deploy_reverted(ctx: Context) -> None:
    """Runs after ``reverting`` on every host (rollback only).

    :param ctx: the host's context.
    """


@hookspec
def fap_deploy_publishing(ctx: Context) -> None:
    """Make ``ctx.release`` live.

    The core's hookimpl switches ``current_path`` to ``ctx.release_path``
    atomically (a temporary symlink renamed over ``current``). If the switch
    fails on any host, hosts already switched are switched back.

    :param ctx: the host's context.
    """


@hookspec
def fap_deploy_published(ctx: Context) -> None:
    """Runs after every host switched ``current``.

    Plugins restart processes here (supervisorctl). A failure from here on
    is reported per host and exits non-zero, but ``current`` stays switched:
    run ``fap rollback`` to return the fleet.

    :param ctx: the host's context.
    """


@hookspec
def fap_deploy_finishing(ctx: Context) -> None:
    """Tidy up after a release.

    The core removes old releases, keeping the newest ``keep_releases``
    finished ones and never ``current``.

    :param ctx: the host's context.
    """


@hookspec
def fap_deploy_finishing_rollback(ctx: Context) -> None:
    """Tidy up after a rollback.

    The core keeps the release that was rolled back from
    (``ctx.rollback_from``): once the run's outcome is known, it is marked
    bad on this host (``ctx.marks`` of a later run shows it), and cleanup
    removes it first (see :doc:`day-two`).

    :param ctx: the host's context.
    """


@hookspec
def fap_deploy_finished(ctx: Context) -> None:
    """Last phase of a release and of a rollback.

    :param ctx: the host's context.
    """


@hookspec
def fap_deploy_failed(ctx: Context, error: BaseException) -> None:
    """The run failed as a whole; undo what this plugin did on this host.

    When it is called:

    - **release and rollback**, when any host fails (or the run is stopped
      by Ctrl-C or SIGTERM) in any phase up to and including
      ``publishing``: on **every host** of the run, those that did not fail
      themselves included (``ctx.failed_phase`` is the phase the run failed
      in, on this host or another). Hosts that had already switched
      ``current`` (the core's switch runs in ``publishing``, and a
      ``trylast`` hookimpl may fail after it) are switched back first; then
      this hook runs; then the core removes the new release (release only)
      and releases the lock.
    - under ``--max-fail``, on each host **dropped** from the run (a failure
      before ``publishing``), when it is dropped, while the other hosts go
      on; under ``--batch-size``, on the hosts of the batch that failed.
    - **after** ``publishing`` (a failure in ``published``, ``finishing``
      or ``finished``; in a rollback ``reverted``, ``finishing_rollback`` or
      ``finished``), in ``fap restart`` (``restarting``,
      ``restarted``), and on a host that fails its health check in a
      rollback or restart: on the **host that failed** only, with its own
      error. Nothing is switched back or removed there: the release it
      failed in is live (``ctx.current_release == ctx.release``).

    Where the live release is: ``ctx.current_release`` (after a switch
    back, the release ``current`` points to again: ``ctx.previous_release``;
    where switching back failed, still ``ctx.release``). In a rollback,
    ``ctx.release_path`` is a finished release, the one being returned to.
    So **never remove** ``ctx.release_path``: the core removes the unfinished
    release itself, and never the one ``current`` points to. Undo only what
    your plugin made, and only in a release whose directory is not live::

        @hookimpl
        def fap_deploy_failed(ctx, error):
            if ctx.command != "deploy" or ctx.current_release == ctx.release:
                return  # a rollback's release_path, or a release still live here
            ctx.run(f"rm -rf {shlex.quote(ctx.config['myplugin_cache'])}")

    Exceptions raised here are reported but do not stop the cleanup of
    other plugins or hosts.

    :param ctx: the host's context (``ctx.phase`` is ``"failed"``).
    :param error: the error that stopped the run (the first one, if several
        hosts failed).
    """


# ---------------------------------------------------------------------------
# Restart (``fap restart``, and after ``published``)
# ---------------------------------------------------------------------------


@hookspec
def fap_deploy_restarting(ctx: Context) -> None:
    """Restart the application's processes (``fap restart`` only).

    :param ctx: the host's context; ``ctx.release`` is the current release.
    """


@hookspec
def fap_deploy_restarted(ctx: Context) -> None:
    """Runs after ``restarting`` on every host (``fap restart`` only).

    :param ctx: the host's context.
    """


# ---------------------------------------------------------------------------
# Health (after ``published`` in ``fap deploy`` and ``fap rollback``, after
# ``restarted`` in ``fap restart``)
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def fap_health_check(ctx: Context) -> HealthResult | None:
    """Check that the application answers on this host, once the run has switched it (or restarted it).

    Called on every host that went live, in parallel, after the last host
    finished ``published`` (``restarted`` in ``fap restart``). The core's
    ``core.health`` answers it by running the ``healthcheck`` setting's shell
    command until it passes or ``healthcheck_timeout`` ends (``None`` when
    ``healthcheck`` is empty). A plugin may answer instead (an HTTP probe, a
    metrics query): plugins are asked before the core's built-ins.
    Once the run is stopped (Ctrl-C, SIGTERM) ``ctx.run`` starts no new
    command and raises: end then and say ``interrupted=True``. Under
    ``--dry-run`` ``ctx.run`` shows commands without running them: say the
    check passed.

    The run decides for the fleet from the answers: hosts unhealthy within
    ``--max-fail`` stay on the new release (exit 3); more of them switch
    every switched host of a deploy back (exit 4); a rollback or restart
    reports them failed. A hookimpl that raises counts as a failed check.

    Stops at the first non-``None`` result.

    :param ctx: the host's context (``ctx.phase`` is ``"healthcheck"``;
        ``ctx.release`` is the release now live).
    :return: a :class:`fapistrano.HealthResult` (``passed``,
        ``attempts``, ``seconds``, ``output``: the last lines of a failed
        check, ``interrupted``); ``None`` when this plugin does not check
        this host (when no plugin answers, the host has no health check).
    """


def _check_phase_hooks() -> None:
    """Every phase of :mod:`fapistrano.flows` has its ``fap_deploy_<phase>`` hook here, and no other phase does."""
    from fapistrano.flows import Phase, hook_name

    declared = {name for name, value in globals().items() if name.startswith("fap_deploy_") and hasattr(value, "fapistrano_spec")}
    expected = {hook_name(phase) for phase in Phase}
    if declared != expected:
        raise RuntimeError(f"hookspecs and fapistrano.flows disagree: no hookspec for {sorted(expected - declared)},"
                           f" no phase for {sorted(declared - expected)}")


_check_phase_hooks()
