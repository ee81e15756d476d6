"""fapistrano.supervisorctl: run the application under supervisord and restart it on every deploy.

Enable it in deploy.yml::

    plugins: [fapistrano.git, fapistrano.supervisorctl]
    supervisor_check_status: true

What it does on each host:

``fap_deploy_started`` (release and rollback)
    Checks that supervisorctl answers and that ``supervisor_target``'s
    directory is writable, so nothing is switched on a host where the
    program cannot be applied.
``fap_deploy_updated`` (release)
    Reads the new release's ``supervisor_conf``; refuses a release without
    it or whose conf does not define ``supervisor_program`` (naming what it
    defines). Writes ``.fap-supervisor.conf`` in the release: that conf with
    ``environment`` added to every program (:mod:`fapistrano_supervisorctl.conf`).
``fap_deploy_published`` (release and rollback)
    Links ``supervisor_target`` to ``<current_path>/.fap-supervisor.conf``:
    the link goes through ``current``, so it names the live release's conf
    after every later deploy and rollback without being touched again
    (Fapistrano 0.9 linked the same way). A link to the same conf under a
    former name (``supervisor_program`` renamed) is removed. Then
    ``reread``, ``update`` for
    this app's groups whose conf changed (or appeared, or went), and
    ``restart`` of ``supervisor_program`` when its group did not change.
    With ``supervisor_check_status`` it then waits until every process of
    the program is RUNNING, and fails the deploy with their status otherwise.
``fap_deploy_restarting`` (``fap restart``)
    Restarts ``supervisor_program``.
``fap_check``
    Reports when supervisorctl does not answer, ``supervisor_target``'s
    directory is not writable or the conf does not define
    ``supervisor_program``.

``supervisor_program`` may name a group: ``web:*`` restarts every process of
group ``web``.
"""

from __future__ import annotations

import posixpath
import shlex
import time
from pathlib import Path
from typing import Any

from fapistrano import CommandFailed, FapError, Setting, hookimpl

from fapistrano_supervisorctl import conf as sconf
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
            "Stop, reread, update the group and start at every deploy, even when its conf did not change.",
        ),
        Setting(
            "supervisor_environment", True,
            "Add environment to every program's environment= in the conf supervisord includes.",
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
    """Report a supervisorctl that does not answer, an unwritable ``supervisor_target`` directory
    and a ``supervisor_program`` the program's conf does not define."""
    problems = []
    config = ctx.config
    if config["supervisor_restart"]:
        status = _answers(ctx)
        if not status.answered:
            # fap check names the host itself.
            problems.append(f"{_not_answering(ctx, status).removeprefix(f'{ctx.host}: ')}; {SETUP_DOCS}")
    if config["supervisor_conf"]:
        directory = posixpath.dirname(config["supervisor_target"]) or "."
        if not ctx.test(f"test -d {_q(directory)} && test -w {_q(directory)}"):
            problems.append(f"supervisor_target: {directory} is missing or not writable by {config['user']}; {SETUP_DOCS}")
        if config["supervisor_restart"]:
            problems.extend(_check_program_defined(ctx))
    return problems


@hookimpl
def fap_deploy_started(ctx: Any) -> None:
    """Check that supervisorctl answers and that ``supervisor_target`` can be linked, before anything is switched."""
    config = ctx.config
    if config["supervisor_conf"]:
        target = config["supervisor_target"]
        if "*" in posixpath.basename(target):
            ctx.warn(f"supervisor_target {target} has '*' in its name; set supervisor_target for a 'group:*' program")
        directory = posixpath.dirname(target) or "."
        if not ctx.test(f"test -d {_q(directory)} && test -w {_q(directory)}"):
            raise FapError(
                f"{ctx.host}: cannot link supervisor_target {target}: {directory} is missing or not writable "
                f"by {config['user']}; {SETUP_DOCS}"
            )
        # The groups of the conf live until now: a group the new conf drops is still this app's to update.
        # So are those of a link made under another name (supervisor_program renamed): it goes at the switch.
        ctx.state["supervisorctl.groups"] = set(_linked_programs(ctx, with_former_links=True).group_names)
    if config["supervisor_restart"]:
        status = _answers(ctx)
        if not status.answered:
            raise FapError(_not_answering(ctx, status))


@hookimpl(trylast=True)
def fap_deploy_updated(ctx: Any) -> None:
    """Refuse to publish a release whose conf is missing or does not define ``supervisor_program``;
    write the conf supervisord will include, with ``environment`` added."""
    config = ctx.config
    conf = config["supervisor_conf"]
    if not conf or ctx.dry_run:
        return
    path = conf if posixpath.isabs(conf) else posixpath.join(ctx.release_path, conf)
    try:
        text = ctx.run(f"cat {_q(path)}", readonly=True)
    except FapError:
        if posixpath.isabs(conf):
            raise FapError(f"{ctx.host}: supervisor_conf {conf} cannot be read") from None
        raise FapError(f"{ctx.host}: supervisor_conf {conf} is not in the release: {path} does not exist") from None
    defined = sconf.programs(text)
    program = config["supervisor_program"]
    if config["supervisor_restart"] and not defined.defines(program):
        raise FapError(f"{ctx.host}: {_not_defined(program, conf, defined)}")
    environment = config["environment"] if config["supervisor_environment"] else {}
    rendered = sconf.with_environment(text, environment)
    destination = posixpath.join(ctx.release_path, sconf.RENDERED)
    # Not readable by others: it holds the environment's values, as .env does.
    ctx.run(f"(umask 027 && cat > {_q(destination)})", stdin=rendered)


@hookimpl
def fap_deploy_published(ctx: Any) -> None:
    """Link the live release's conf and apply it: the new (or rolled-back-to) release is live."""
    if ctx.config["supervisor_conf"]:
        _link_conf(ctx)
        _remove_former_links(ctx)
    _apply(ctx)


@hookimpl
def fap_deploy_restarting(ctx: Any) -> None:
    """``fap restart``: restart the program."""
    _restart(ctx)


# ---------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------


def _link_conf(ctx: Any) -> None:
    """Link ``supervisor_target`` to the conf under ``current``: the one fap wrote, else the release's own."""
    config = ctx.config
    conf, target = config["supervisor_conf"], config["supervisor_target"]
    current = config["current_path"]
    rendered = posixpath.join(current, sconf.RENDERED)
    # A release deployed before fap wrote its own conf has only the program's conf: link that one.
    source = conf if posixpath.isabs(conf) else posixpath.join(current, conf)
    try:
        ctx.run(f"if [ -f {_q(rendered)} ]; then ln -sfn {_q(rendered)} {_q(target)}; "
                f"else ln -sfn {_q(source)} {_q(target)}; fi")
    except FapError as error:
        detail = getattr(error, "stderr", "") or str(error)
        raise FapError(
            f"{ctx.host}: cannot link supervisor_target {target}: {sctl.last_lines(detail, 1)} "
            f"(the deploy user must be able to write {posixpath.dirname(target)})"
        ) from None
    ctx.log(f"linked {target} -> {current}/...")


def _former_links(ctx: Any) -> str:
    """``find`` printing the links fap made for this app under a name other than ``supervisor_target``'s.

    A renamed ``supervisor_program`` renames the default target
    (``conf.d/<program>.conf``); the link under the old name would go on
    including this app's conf, so supervisord would keep the old program
    running beside the new one. A link is fap's when it names, word for
    word, what :func:`_link_conf` links to, in the same directory.
    """
    config = ctx.config
    target = posixpath.normpath(config["supervisor_target"])
    current, conf = config["current_path"], config["supervisor_conf"]
    made = [posixpath.join(current, sconf.RENDERED)]
    if not posixpath.isabs(conf):  # an absolute conf may be linked by hand under other names: not fap's to remove
        made.append(posixpath.join(current, conf))
    names = " -o ".join(f"-lname {_q(_glob_escaped(path))}" for path in made)
    return (f"find {_q(posixpath.dirname(target) or '.')} -mindepth 1 -maxdepth 1 -type l \\( {names} \\)"
            f" ! -name {_q(_glob_escaped(posixpath.basename(target)))}")


def _remove_former_links(ctx: Any) -> None:
    """Remove the links of :func:`_former_links`: their programs leave supervisord at the ``update`` that follows."""
    removed = ctx.run(f"{_former_links(ctx)} -print -delete")
    for line in (removed or "").splitlines():
        ctx.log(f"removed {line}: it linked this app's conf under a former name (supervisor_target is now "
                f"{ctx.config['supervisor_target']})")


def _glob_escaped(text: str) -> str:
    """``text`` as a find(1) pattern that matches only itself."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _apply(ctx: Any) -> None:
    """Make supervisord run the live release: ``update`` the groups whose conf changed, restart the program otherwise."""
    config = ctx.config
    program = config["supervisor_program"]
    if not config["supervisor_restart"]:
        ctx.log(f"supervisor_restart is false: {program} not restarted")
        return
    if config["supervisor_refresh"]:
        _ctl(ctx, "stop", program, unknown_ok=True)
        _refresh(ctx, program)
        _report(ctx, "refreshed", program)
        return
    if config["supervisor_conf"]:
        ours = set(ctx.state.get("supervisorctl.groups", ())) | set(_linked_programs(ctx).group_names)
    else:
        ours = {sctl.group_of(program)}  # a conf fap does not link: its program's group is all it knows
    # reread names every group whose conf changed, appeared or went, this app's and others':
    # only this app's are updated (stopped, re-read and started again by supervisord).
    changes = sctl.parse_reread(_ctl(ctx, "reread") or "")
    groups = [group for group, _ in changes if group in ours]
    if groups:
        _ctl(ctx, "update", *groups)
    group = sctl.group_of(program)
    if group in groups:
        added = dict(changes).get(group) == "available"
        if not ctx.dry_run:
            # update starts only what autostarts; start the rest (autostart=false), and nothing already started.
            stopped = [p.name for p in _status(ctx).processes if p.state == "STOPPED"]
            if stopped:
                _ctl(ctx, "start", *stopped)
        done = "added and started" if added else "applied the changed conf of"
    else:
        _ctl(ctx, "restart", program)
        done = "restarted"
    _report(ctx, done, program)


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
        # supervisord has not read the conf yet (it was linked by hand, or lost).
        _refresh(ctx, program)
        done = "added and started"
    else:
        done = "restarted"
    _report(ctx, done, program)


def _report(ctx: Any, done: str, program: str) -> None:
    """One line per host saying what was done; with supervisor_check_status, once every process is RUNNING."""
    if ctx.dry_run:
        return
    if ctx.config["supervisor_check_status"]:
        ctx.log(f"{done} {program}: {_wait_running(ctx, program, ctx.config['supervisor_check_timeout']).describe()}")
    else:
        ctx.log(f"{done} {program}")


def _refresh(ctx: Any, program: str) -> None:
    """Make supervisord read the conf again and (re)start the program from it."""
    _ctl(ctx, "reread")
    _ctl(ctx, "update", sctl.group_of(program))
    if not ctx.dry_run and any(p.state != "STOPPED" for p in _status(ctx).processes):
        return  # update started it (autostart); a start would only say 'already started'
    _ctl(ctx, "start", program)


def _linked_programs(ctx: Any, with_former_links: bool = False) -> sconf.Programs:
    """What the conf ``supervisor_target`` links to defines now (its section lines only: never its environment);
    ``with_former_links``: and the confs of :func:`_former_links`."""
    target = ctx.config["supervisor_target"]
    sections = "grep -hE '^[[:space:]]*(\\[|programs[[:space:]]*[=:])'"
    command = f"{sections} {_q(target)} 2>/dev/null"
    if with_former_links:
        command = f"{{ {command}; {_former_links(ctx)} -exec {sections} {{}} + 2>/dev/null; }}"
    return sconf.programs(ctx.run(f"{command} || true", readonly=True))


def _check_program_defined(ctx: Any) -> list[str]:
    """``fap check``: is supervisor_program defined in the conf a deploy would link?

    The conf beside deploy.yml when there is one (what the next deploy
    ships, deploy.yml living in the repository), else the live release's on
    the host, which supervisord is then asked about; nothing to check before
    a first deploy that has neither.
    """
    config = ctx.config
    conf, program = config["supervisor_conf"], config["supervisor_program"]
    text = where = None
    live = False  # whether the conf read is the live release's, which supervisord should run
    if not posixpath.isabs(conf) and ctx.project_dir:
        local = Path(ctx.project_dir) / conf
        if local.is_file():
            text, where = local.read_text(errors="replace"), str(local)
    if text is None:
        path = conf if posixpath.isabs(conf) else posixpath.join(config["current_path"], conf)
        if not ctx.test(f"test -f {_q(path)}"):
            return []
        text, where = ctx.run(f"cat {_q(path)}", readonly=True), path
        live = True
    defined = sconf.programs(text)
    if not defined.defines(program):
        return [_not_defined(program, where, defined)]
    if live and _status(ctx).unknown_program:
        # The live conf defines it, yet supervisord does not run it: its [include] misses the link.
        return [f"supervisord does not know {program} although {where} defines it: "
                f"is {config['supervisor_target']} in its [include] files?"]
    return []


def _not_defined(program: str, conf: str, defined: sconf.Programs) -> str:
    return (f"supervisor_program {program} is not defined in {conf}, which defines: {defined.describe()} "
            "(set supervisor_program to one of them)")


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
    return sctl.parse_status(code, output, program)


def _answers(ctx: Any) -> sctl.Status:
    """Whether supervisord answers: ``supervisorctl pid`` (about no program, so a first deploy reads no ERROR)."""
    code, output = _call(ctx, ("pid",), readonly=True)
    return sctl.parse_pid(code, output)


def _ctl(ctx: Any, *args: str, unknown_ok: bool = False) -> str | None:
    """Run ``supervisorctl ARGS``; return its output, or raise a one-line error saying what went wrong.

    With ``unknown_ok``, a program supervisord does not know returns ``None``
    instead of failing.
    """
    code, output = _call(ctx, args)
    if code == 0 and not sctl.says_error(output):
        return output
    if unknown_ok and sctl.says_unknown(output):
        return None
    status = _status(ctx) if args[0] in ("start", "restart", "stop") else None
    if status is not None and not status.answered:
        raise FapError(_not_answering(ctx, status))
    program = ctx.config["supervisor_program"]
    message = f"{ctx.host}: supervisorctl {' '.join(args)} failed (exit {code}): {sctl.last_lines(output) or 'no output'}"
    if sctl.says_unknown(output):
        # Only reached once the conf was found to define the program (or there is no conf to read).
        message += (f" (supervisord has no [program:{program}] or [group:{sctl.group_of(program)}] although "
                    f"the conf defines it: is {ctx.config['supervisor_target']} in its [include] files?)")
    elif status is not None and status.processes:
        message += f"; status: {status.describe()}"
    raise FapError(message)


def _call(ctx: Any, args: tuple[str, ...], readonly: bool = False) -> tuple[int, str]:
    """``(exit status, output)`` of ``supervisorctl ARGS``, its stderr folded into its output.

    supervisorctl says most of what went wrong on stdout, with a non-zero
    status: the caller reads both and decides what the status means.
    """
    text = sctl.command(ctx.config["supervisorctl"], *args)
    try:
        code, output = 0, ctx.run(f"{text} 2>&1", readonly=readonly)
    except CommandFailed as failed:
        code, output = failed.status, failed.stdout
    if ctx.config["supervisor_output"]:
        for line in output.splitlines():
            if line.strip():
                ctx.log(line)
    return code, output


def _not_answering(ctx: Any, status: sctl.Status) -> str:
    command = sctl.command(ctx.config["supervisorctl"], *status.asked)
    if status.exit_code == 127:
        return f"{ctx.host}: supervisorctl not found: {command}: {status.describe()}"
    return f"{ctx.host}: supervisorctl does not answer: {command}: {status.describe()}"


def _q(text: str) -> str:
    return shlex.quote(text)
