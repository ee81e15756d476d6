"""fapistrano.supervisorctl: run the application under supervisord and restart it on every deploy.

Enable it in deploy.yml::

    plugins: [fapistrano.git, fapistrano.supervisorctl]
    supervisor_check_status: true

What it does on each host:

``fap_deploy_started`` (release and rollback)
    Links ``supervisor_target`` (a file supervisord includes, by default
    ``/etc/supervisor/conf.d/<program>.conf``) to
    ``<current_path>/<supervisor_conf>``. The link goes through ``current``,
    not through the new release: the release directory only becomes the live
    one when it is published, and a link through ``current`` stays right after
    every later deploy and rollback without being touched again (Fapistrano
    0.9 did the same). Then it checks that supervisorctl answers, so an
    unreachable supervisord fails the deploy before anything is switched.
``fap_deploy_updated`` (release)
    Checks that the new release contains ``supervisor_conf``, before it can
    be published.
``fap_deploy_published`` (release and rollback) and ``fap_deploy_restarting`` (``fap restart``)
    Restarts ``supervisor_program`` (``supervisorctl restart``), or with
    ``supervisor_refresh`` stops it, rereads the configuration, updates the
    group and starts it. On the first deploy, when supervisord does not know
    the program yet, it rereads and updates first either way. With
    ``supervisor_check_status`` it then waits until every process of the
    program is RUNNING, and fails the deploy with their status otherwise.
``fap_check``
    Reports when supervisorctl does not answer or ``supervisor_target``'s
    directory is not writable.

``supervisor_program`` may name a group: ``web:*`` restarts every process of
group ``web``.
"""

from __future__ import annotations

import posixpath
import shlex
import time
from typing import Any

from fapistrano import FapError, Setting, hookimpl

from fapistrano_supervisorctl import supervisorctl as sctl

__version__ = "1.0.0"

#: How long to wait between two ``supervisorctl status`` calls while a program starts.
POLL_INTERVAL = 0.5

#: Where a user learns how the deploy user gets at supervisord (what ``fap check`` points to).
SETUP_DOCS = 'see "Supervisor on a real server" in the docs (docs/supervisor.rst)'


@hookimpl
def fap_settings() -> list[Setting]:
    """The ``supervisor*`` settings."""
    return [
        Setting("supervisor_program", "%(app_name)s", "The supervisor program to restart; 'group:*' names every process of a group."),
        Setting(
            "supervisor_conf", "configs/supervisor_%(stage)s_%(role)s.conf",
            "The program's supervisor conf inside the release (relative to it, or absolute); empty: link nothing.",
        ),
        Setting(
            "supervisor_target", "/etc/supervisor/conf.d/%(supervisor_program)s.conf",
            "Where supervisord includes the conf from; linked to <current_path>/<supervisor_conf>.",
        ),
        Setting(
            "supervisor_refresh", False,
            "Instead of a restart: stop, reread, update the group and start, so conf changes take effect.",
        ),
        Setting("supervisor_restart", True, "Restart the program after publishing, after a rollback and on 'fap restart'."),
        Setting(
            "supervisor_check_status", False,
            "After the restart, wait until every process is RUNNING; otherwise fail with their status.",
        ),
        Setting("supervisor_check_timeout", 60, "Seconds supervisor_check_status waits for RUNNING before failing."),
        Setting("supervisor_output", False, "Show supervisorctl's output (and the program's status) at normal verbosity."),
        Setting(
            "supervisorctl", "supervisorctl",
            "The supervisorctl command, split like a shell does, e.g. 'supervisorctl -c /etc/supervisord.conf'.",
        ),
    ]


# ---------------------------------------------------------------------------
# Hooks
# ---------------------------------------------------------------------------


@hookimpl
def fap_check(ctx: Any) -> list[str]:
    """Report a supervisorctl that does not answer and an unwritable ``supervisor_target`` directory."""
    problems = []
    config = ctx.config
    if config["supervisor_restart"]:
        status = _status(ctx)
        if not status.answered:
            # fap check names the host itself.
            problems.append(f"{_not_answering(ctx, status).removeprefix(f'{ctx.host}: ')}; {SETUP_DOCS}")
    if config["supervisor_conf"]:
        directory = posixpath.dirname(config["supervisor_target"]) or "."
        if not ctx.test(f"test -d {_q(directory)} && test -w {_q(directory)}"):
            problems.append(f"supervisor_target: {directory} is missing or not writable by {config['user']}; {SETUP_DOCS}")
    return problems


@hookimpl
def fap_deploy_started(ctx: Any) -> None:
    """Link supervisor_target to the conf under ``current``; check that supervisorctl answers."""
    config = ctx.config
    if config["supervisor_conf"]:
        _link_conf(ctx)
    if config["supervisor_restart"]:
        status = _status(ctx)
        if not status.answered:
            raise FapError(_not_answering(ctx, status))


@hookimpl(trylast=True)
def fap_deploy_updated(ctx: Any) -> None:
    """Refuse to publish a release that lacks the program's conf."""
    conf = ctx.config["supervisor_conf"]
    if not conf or posixpath.isabs(conf) or ctx.dry_run:
        return
    path = posixpath.join(ctx.release_path, conf)
    if not ctx.test(f"test -f {_q(path)}"):
        raise FapError(f"{ctx.host}: supervisor_conf {conf} is not in the release: {path} does not exist")


@hookimpl
def fap_deploy_published(ctx: Any) -> None:
    """Restart the program: the new (or rolled-back-to) release is live."""
    _restart(ctx)


@hookimpl
def fap_deploy_restarting(ctx: Any) -> None:
    """``fap restart``: restart the program."""
    _restart(ctx)


# ---------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------


def _link_conf(ctx: Any) -> None:
    config = ctx.config
    conf, target = config["supervisor_conf"], config["supervisor_target"]
    source = conf if posixpath.isabs(conf) else posixpath.join(config["current_path"], conf)
    if "*" in posixpath.basename(target):
        ctx.warn(f"supervisor_target {target} has '*' in its name; set supervisor_target for a 'group:*' program")
    try:
        ctx.run(f"ln -sfn {_q(source)} {_q(target)}")
    except FapError as error:
        detail = getattr(error, "stderr", "") or str(error)
        raise FapError(
            f"{ctx.host}: cannot link supervisor_target {target} -> {source}: {sctl.last_lines(detail, 1)} "
            f"(the deploy user must be able to write {posixpath.dirname(target)})"
        ) from None
    ctx.log(f"linked {target} -> {source}")


def _restart(ctx: Any) -> None:
    config = ctx.config
    program = config["supervisor_program"]
    if not config["supervisor_restart"]:
        ctx.log(f"supervisor_restart is false: {program} not restarted")
        return
    # Each supervisorctl call starts a Python interpreter on the host (~0.2 s of
    # CPU): try the restart first and learn from its answer instead of asking
    # for the status before it.
    if config["supervisor_refresh"]:
        _ctl(ctx, "stop", program, unknown_ok=True)
        _refresh(ctx, program)
        done = "refreshed"
    elif _ctl(ctx, "restart", program, unknown_ok=True) is None:
        # The first deploy: supervisord has not read the conf linked in started yet.
        _refresh(ctx, program)
        done = "added and started"
    else:
        done = "restarted"
    if ctx.dry_run:
        return
    if config["supervisor_check_status"]:
        ctx.log(f"{done} {program}: {_wait_running(ctx, program, config['supervisor_check_timeout']).describe()}")
    else:
        ctx.log(f"{done} {program}")


def _refresh(ctx: Any, program: str) -> None:
    """Make supervisord read the conf again and (re)start the program from it."""
    _ctl(ctx, "reread")
    _ctl(ctx, "update", sctl.group_of(program))
    _ctl(ctx, "start", program)


def _wait_running(ctx: Any, program: str, timeout: int) -> sctl.Status:
    """Poll until every process of ``program`` is RUNNING; raise with their status otherwise."""
    deadline = time.monotonic() + max(0, timeout)
    while True:
        status = _status(ctx)
        if not status.answered:
            raise FapError(_not_answering(ctx, status))
        if status.all_running:
            return status
        if status.unknown_program:
            raise FapError(f"{ctx.host}: {program} is not known to supervisord after the restart: {status.describe()}")
        if status.settled_not_running:
            raise FapError(f"{ctx.host}: {program} is not RUNNING after the restart: {status.describe()}")
        if time.monotonic() >= deadline:
            raise FapError(f"{ctx.host}: {program} did not reach RUNNING within {timeout}s: {status.describe()}")
        time.sleep(POLL_INTERVAL)


# ---------------------------------------------------------------------------
# supervisorctl
# ---------------------------------------------------------------------------


def _status(ctx: Any) -> sctl.Status:
    """``supervisorctl status PROGRAM``, read-only (it runs under --dry-run too)."""
    program = ctx.config["supervisor_program"]
    code, output = _call(ctx, ("status", program), readonly=True)
    return sctl.parse_status(code, output)


def _ctl(ctx: Any, *args: str, unknown_ok: bool = False) -> str | None:
    """Run ``supervisorctl ARGS``; return its output, or raise a one-line error saying what went wrong.

    With ``unknown_ok``, a program supervisord does not know returns ``None``
    instead of failing.
    """
    code, output = _call(ctx, args)
    if code == 0:
        return output
    if unknown_ok and sctl.says_unknown(output):
        return None
    status = _status(ctx) if args[0] in ("start", "restart", "stop") else None
    if status is not None and not status.answered:
        raise FapError(_not_answering(ctx, status))
    program = ctx.config["supervisor_program"]
    message = f"{ctx.host}: supervisorctl {' '.join(args)} failed (exit {code}): {sctl.last_lines(output) or 'no output'}"
    if sctl.says_unknown(output):
        message += (f" (supervisord read no [program:{program}] or [group:{sctl.group_of(program)}]: "
                    f"is {ctx.config['supervisor_target']} in its [include] files?)")
    elif status is not None and status.processes:
        message += f"; status: {status.describe()}"
    raise FapError(message)


def _call(ctx: Any, args: tuple[str, ...], readonly: bool = False) -> tuple[int, str]:
    text = sctl.command(ctx.config["supervisorctl"], *args)
    code, output = sctl.split_captured(ctx.run(sctl.captured(text), readonly=readonly))
    if ctx.config["supervisor_output"]:
        for line in output.splitlines():
            if line.strip():
                ctx.log(line)
    return code, output


def _not_answering(ctx: Any, status: sctl.Status) -> str:
    command = sctl.command(ctx.config["supervisorctl"], "status", ctx.config["supervisor_program"])
    if status.exit_code == 127:
        return f"{ctx.host}: supervisorctl not found: {command}: {status.describe()}"
    return f"{ctx.host}: supervisorctl does not answer: {command}: {status.describe()}"


def _q(text: str) -> str:
    return shlex.quote(text)
