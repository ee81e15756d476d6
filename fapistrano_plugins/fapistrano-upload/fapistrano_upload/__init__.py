"""fapistrano.upload: build once on this machine, ship the result to every host over the run's own connection.

No git, compiler or registry on the servers: ``upload_build`` runs once per
run on the deployer, and what ``upload_source`` holds is packed once and
streamed into every host's new release through the connection the run
already has (no scp, sftp or rsync, no second connection)::

    plugins: [fapistrano.upload]
    upload_build: python -m build --wheel && cp requirements.txt dist/
    upload_source: dist
    upload_exclude: ['*.pyc', '__pycache__']

When:

``fap_run_starting`` (once, on this machine, before any host changes)
    Runs ``upload_build`` in deploy.yml's directory (its output streams into
    the view; its failure stops the run with nothing changed), then packs
    ``upload_source`` into one temporary tar file, with the checksum of
    every file it packs.
``updating`` (every host)
    Streams that file into ``upload_target`` (the release by default) through
    a channel of the host's connection; the host unpacks it and checks the
    checksum (POSIX ``cksum``) of every file it unpacked: a damaged or short upload fails the deploy before publishing.
``fap_run_finished``
    Removes the temporary file. One a run killed before its end left behind
    (SIGKILL, a second SIGTERM) is removed by the next run's ``fap_run_starting``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from typing import Any

from fapistrano import CommandFailed, ConfigError, FapError, Setting, hookimpl

from fapistrano_upload import pack

__version__ = "1.0.0"

PLUGIN = "fapistrano.upload"
#: ``run.state`` / ``ctx.run_state`` key of what ``fap_run_starting`` packed.
STATE = "fapistrano.upload"
#: What each host needs to receive an upload.
HOST_TOOLS = ("tar", "cksum", "xargs", "head", "mkfifo", "tee")
#: A run's scratch directory on this machine: ``fap-upload-<pid>-XXXXXXXX`` in the temporary directory.
SCRATCH_PREFIX = "fap-upload-"
_SCRATCH_NAME = re.compile(rf"{SCRATCH_PREFIX}(\d+)-[^/]+\Z")


@hookimpl
def fap_settings() -> list[Setting]:
    """The ``upload_*`` settings."""
    return [
        Setting("upload_build", "", "Shell command run once per deploy on this machine, in deploy.yml's directory,"
                " before any host changes (empty: no build); its failure stops the deploy.", shell=True),
        Setting("upload_source", ".", "What to send, relative to deploy.yml's directory: a directory, a .tar/.tar.gz/.tgz"
                " unpacked into the release, or one file copied into it."),
        Setting("upload_exclude", [], "Shell globs of paths not to send, matched against each path relative to"
                " upload_source and against its base name (.git is always left out).", type=list[str]),
        Setting("upload_target", "", "Where the upload lands on the hosts: a directory inside the release, relative"
                " to it (empty: the release directory itself)."),
    ]


def _key(config: Any, project_dir: str) -> tuple[str, tuple[str, ...]]:
    return pack.source_path(config["upload_source"], project_dir), tuple(config["upload_exclude"] or ())


def _project_dir(owner: Any) -> str:
    return owner.project_dir or os.getcwd()


@hookimpl
def fap_run_starting(run: Any) -> None:
    """Build once and pack once, before any host changes; under ``--dry-run`` say what would be built and sent."""
    _remove_stale_copies()
    if run.command != "deploy":
        return
    configs = [target.config for target in run.targets if "upload_source" in target.config] or [run.config]
    project_dir = _project_dir(run)
    for config in configs:
        pack.target_path(config["upload_target"], config["release_path"])  # a ConfigError before anything runs
    builds = list(dict.fromkeys((config["upload_build"] or "").strip() for config in configs))
    for build in filter(None, builds):
        if run.dry_run:
            run.log(f"would build: {build} (in {project_dir})")
            continue
        run.log(f"building: {build}")
        try:
            run.local(build, cwd=project_dir)
        except CommandFailed as error:
            raise FapError(f"upload_build failed (exit {error.status}), no host changed: {_last_lines(error.stderr)}") from None
    keys = list(dict.fromkeys(_key(config, project_dir) for config in configs))
    if run.dry_run:
        for source, patterns in keys:
            run.log(_would_send(source, patterns, len(run.hosts)))
        return
    scratch = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-")
    run.state[STATE] = {"scratch": scratch, "packed": {}}
    for source, patterns in keys:
        packed = pack.pack(source, patterns, scratch)
        run.state[STATE]["packed"][(source, patterns)] = packed
        run.log(f"packed {packed.files} files ({_size(packed.file_bytes)}) from {source}: {_size(packed.size)} to send")


def _remove_stale_copies() -> None:
    """Remove what runs killed before their end (SIGKILL, a second SIGTERM) left: their packed copies.

    Each run's scratch directory is named after its process; the process is
    gone, so is the run. Only this user's: another's is not ours to judge.
    """
    base = tempfile.gettempdir()
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        match = _SCRATCH_NAME.match(name)
        if match is None:
            continue
        path = os.path.join(base, name)
        try:
            if os.lstat(path).st_uid != os.getuid():
                continue
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            _remove_in_background(path)
        except OSError:
            continue  # the process is there (another user's, PermissionError), or the entry went


def _would_send(source: str, patterns: tuple[str, ...], hosts: int) -> str:
    every = f" to each of {hosts} hosts" if hosts != 1 else " to the host"
    if not os.path.lexists(source):
        return f"would send {source}{every} (not there yet: upload_build makes it)"
    if pack.is_archive(source):
        return f"would send the archive {source} ({_size(os.path.getsize(source))}){every}, unpacked into the release"
    entries = [entry for entry in pack.scan(source, patterns) if entry.kind == "file"]
    return f"would send {len(entries)} files ({_size(sum(e.size for e in entries))}) from {source}{every}"


@hookimpl
def fap_run_finished(run: Any) -> None:
    """Remove the packed file, it was only for this run: in the background, so that the run's end does not wait."""
    state = run.state.get(STATE)
    if state:
        _remove_in_background(state["scratch"])


def _remove_in_background(path: str) -> None:
    # Removing a file the kernel is still writing to disk waits for that write: on a busy disk a
    # second for 50 MB, at the very end of the deploy. ``rm`` in a session of its own outlives fap.
    try:
        subprocess.Popen(["rm", "-rf", "--", path], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError:
        shutil.rmtree(path, ignore_errors=True)


@hookimpl
def fap_deploy_updating(ctx: Any) -> None:
    """Stream the packed upload into the release; the host checks what it unpacked before the deploy goes on."""
    target = pack.target_path(ctx.config["upload_target"], ctx.release_path)
    source, patterns = _key(ctx.config, _project_dir(ctx))
    if ctx.dry_run:
        ctx.log(f"would unpack {source} into {target}")
        return
    state = ctx.run_state.get(STATE)
    packed = state["packed"].get((source, patterns)) if state else None
    if packed is None:
        raise FapError(f"{ctx.host}: nothing packed for upload_source {source} (fap_run_starting did not run for it)")
    ctx.log(f"sending {_size(packed.size)} to {target}")
    try:
        with open(packed.path, "rb") as stream:
            ctx.run(pack.receive_command(target, packed), stdin=stream)
    except CommandFailed as error:
        raise FapError(f"{ctx.host}: upload to {target} failed: {_last_lines(error.stderr)}") from None
    ctx.log(f"received {packed.files} files, checksum verified")


@hookimpl
def fap_check(ctx: Any) -> list[str]:
    """Whether the build's program is found here (or, without a build, the source exists), and the hosts' tools."""
    found: list[str] = []
    project_dir = _project_dir(ctx)
    build = (ctx.config["upload_build"] or "").strip()
    if build:
        program = _program(build)
        if program is None:
            found.append(f"upload_build {build!r}: cannot read its program")
        elif "/" in program:
            path = os.path.join(project_dir, program)
            if not os.access(path, os.X_OK):
                found.append(f"upload_build: {program} is not an executable file (in {project_dir})")
        elif shutil.which(program) is None and not _shell_builtin(program):
            found.append(f"upload_build: {program} is not found on this machine (PATH)")
    else:
        source = pack.source_path(ctx.config["upload_source"], project_dir)
        if not os.path.lexists(source):
            found.append(f"upload_source {source}: no such file or directory (and no upload_build makes it)")
    missing = [tool for tool in HOST_TOOLS if not ctx.test(f"command -v {tool} >/dev/null")]
    if missing:
        found.append(f"{', '.join(missing)} not installed on the host ({PLUGIN} needs them)")
    return found


@hookimpl
def fap_source_revision(ctx: Any) -> str | None:
    """A build of this machine has no revision to compare: ``fap pending`` says so, ``--if-changed`` deploys."""
    raise FapError("fapistrano.upload ships what upload_source holds on this machine: it has no revision to compare")


@hookimpl
def fap_source_promote(revision: str, stage: str, role: str, config: Any) -> dict[str, Any] | None:
    """Refused: an upload ships this machine's build, which need not be the one staging runs.

    Copying staging's release tree to production would ship exactly what
    staging runs, but through this machine and with no revision to check it
    by; refusing is the safe answer until a plugin option says so.
    """
    raise ConfigError(f"{stage}/{role}: fapistrano.upload cannot promote: it ships this machine's build (upload_source),"
                      " not the release staging runs; build the same version here and use fap deploy")


def _program(command: str) -> str | None:
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    for word in words:
        if "=" in word.split("/")[0] and not word.startswith("="):
            continue  # a variable assignment before the command: VERSION=1 make dist
        return word
    return None


def _shell_builtin(program: str) -> bool:
    return program in {"cd", "set", "export", "test", "[", "true", ":", "echo", "printf", "exec", "{", "("}


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    scaled = float(count)
    for unit in ("KiB", "MiB", "GiB"):
        scaled /= 1024
        if scaled < 1024 or unit == "GiB":
            break
    return f"{scaled:.1f} {unit}"


def _last_lines(text: str, count: int = 5) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:]) or "no output"
