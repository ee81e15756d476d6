"""fapistrano.git: deploy the code of a git repository.

Enable it in deploy.yml with ``plugins: [fapistrano.git]`` and set ``repo``.
Per host and deploy it does the least work it can, and waits for none of
it: each script goes with the host's next round trip (``ctx.run_later``),
so the fetch, the archive and the core's scripts before the switch reach
the host in one write, and the revision log line goes with the unlock:

- ``started``: make sure the mirror (``repo_path``, a bare repository
  reused across deploys) exists, fetch ``branch`` into it with ONE shallow
  fetch — which is also the check that the repository is reachable — and
  resolve it to a commit sha (kept under the mirror's ``refs/fap/deploy``).
- ``updating``: ``git archive`` that commit (or only ``git_archive_tree``)
  straight into the release and write the sha to ``revision_file``.
- ``published``: append a line to ``git_revision_log`` (release, sha,
  branch, deployer, time), for deploys and rollbacks alike.
- ``reverting`` (rollback): say which revision the rollback leaves and which
  it returns to.

It uses only Fapistrano's public plugin contract.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import posixpath
import re
import shlex
import socket
from typing import Any

from fapistrano import ConfigError, FapError, Setting, hookimpl

from fapistrano_git import scripts

__version__ = "1.0.0"

_STATE_SHA = "fapistrano.git.sha"
_STATE_ROLLBACK = "fapistrano.git.rollback"
_STATE_REVISIONS = "fapistrano.git.revisions"

# Characters git refuses in ref names, plus ':' (a refspec separator) and a
# leading '-' (an option): a value with them is a typo, not a revision.
_BAD_REVISION = re.compile(r"^-|[\s:~^?*\[\\]|\.\.|@\{|^$")
_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?\Z")
_ANY_SHA = re.compile(r"[0-9a-fA-F]{7,64}\Z")
_RELEASE_NAME = re.compile(r"\d{6}-\d{6}(-\d{2})?\Z")


# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------


@hookimpl
def fap_settings() -> list[Setting]:
    """The git plugin's settings.

    ``repo``, ``branch``, ``git_shallow_clone``, ``repo_path``,
    ``git_archive_tree`` and ``revision_file`` keep the names Fapistrano 0.9
    gave them; settings new in this plugin start with ``git_``.
    """
    return [
        Setting("repo", None, "The git repository to deploy, as the hosts reach it: ssh://, git@host:path, https://, file:// or a path."
                " Required for deploy."),
        Setting("branch", "master", "What to deploy: a branch, a tag, or a commit sha (full, or abbreviated when the mirror's history holds it)."),
        Setting("git_shallow_clone", 1, "History depth fetched into the mirror (1: only the deployed commit); 0 fetches the whole history."),
        Setting("repo_path", "%(path)s/repo", "The bare mirror of repo on each host, reused across deploys so each deploy fetches only what changed."),
        Setting("git_archive_tree", None, "Deploy only this subdirectory of the repository, as the root of the release (e.g. 'app');"
                " unset: the whole tree."),
        Setting("revision_file", "REVISION", "File in the release that receives the deployed commit's sha; empty to write none."),
        Setting("git_revision_log", "%(path)s/revisions.log", "File on each host that gets one line per deploy and rollback"
                " (time, release, sha, branch, deployer); empty to keep none."),
        Setting("git_ssh_command", None, "ssh command git runs on the hosts to reach an ssh repo (GIT_SSH_COMMAND),"
                " e.g. 'ssh -i ~/.ssh/deploy_key'; unset: git's default.", shell=True),
    ]


class _Settings:
    """The plugin's settings for one host, checked and normalised."""

    def __init__(self, ctx: Any) -> None:
        config = ctx.config
        self.host: str = ctx.host
        self.repo: str = (config["repo"] or "").strip()
        self.branch: str = str(config["branch"] or "").strip()
        self.depth: int = config["git_shallow_clone"]
        self.mirror: str = str(config["repo_path"]).rstrip("/") or "/"
        self.tree: str = str(config["git_archive_tree"] or "").strip().strip("/")
        if self.tree == ".":
            self.tree = ""
        self.revision_file: str = str(config["revision_file"] or "").strip()
        self.revision_log: str = str(config["git_revision_log"] or "").strip()
        self.ssh_command: str = str(config["git_ssh_command"] or "").strip()

    def check(self) -> None:
        """Raise :class:`FapError` naming the setting and host when a value cannot work."""
        if not self.repo:
            raise FapError(f"{self.host}: repo is not set: name the git repository to deploy (repo: in deploy.yml, or --repo URL)")
        if _BAD_REVISION.search(self.branch):
            raise FapError(f"{self.host}: branch {self.branch!r} is not a branch, tag or commit name")
        if not isinstance(self.depth, int) or self.depth < 0:
            raise FapError(f"{self.host}: git_shallow_clone must be 0 (full history) or a depth of at least 1, got {self.depth!r}")
        if self.tree and (".." in self.tree.split("/") or _BAD_REVISION.search(self.tree.replace(" ", "_"))):
            raise FapError(f"{self.host}: git_archive_tree {self.tree!r} must be a directory of the repository, without '..'")

    @property
    def env(self) -> dict[str, str] | None:
        return {"GIT_SSH_COMMAND": self.ssh_command} if self.ssh_command else None


# ---------------------------------------------------------------------------
# Release
# ---------------------------------------------------------------------------


@hookimpl
def fap_deploy_starting(ctx: Any) -> None:
    """Fail the deploy before anything remote happens when the settings cannot work."""
    if ctx.flow == "release":
        _Settings(ctx).check()


@hookimpl
def fap_deploy_started(ctx: Any) -> None:
    """Make sure the mirror exists, fetch ``branch`` into it (one fetch) and resolve its sha."""
    if ctx.flow != "release":
        return
    settings = _Settings(ctx)  # checked in starting
    script = scripts.fetch_script(
        repo=settings.repo, mirror=settings.mirror, revision=settings.branch, depth=settings.depth, tree=settings.tree,
    )

    def fetched(output: str) -> None:
        sha = output.strip().splitlines()[-1] if output.strip() else ""
        if not _SHA.match(sha):
            raise FapError(f"{ctx.host}: could not resolve branch {settings.branch!r} of {ctx.mask(settings.repo)}: "
                           f"git printed {output.strip()[-200:]!r}")
        ctx.state[_STATE_SHA] = sha
        where = f" ({settings.tree}/)" if settings.tree else ""
        ctx.log(f"{settings.branch} is {sha}{where}")

    if ctx.dry_run:
        ctx.state[_STATE_SHA] = f"<sha of {settings.branch}>"
    # Nothing before the switch needs the sha in Python (the archive reads it from the mirror):
    # the fetch goes with the host's next round trip, with the archive and the core's scripts.
    _run_later(ctx, script, env=settings.env, then=fetched, explain=lambda failure: _explain(ctx, settings, failure))


@hookimpl
def fap_deploy_updating(ctx: Any) -> None:
    """``git archive`` the resolved commit straight into the release; write ``revision_file``."""
    if ctx.flow != "release":
        return
    settings = _Settings(ctx)
    revision_path = posixpath.join(ctx.release_path, settings.revision_file) if settings.revision_file else ""
    # The sha the fetch in started resolved: known here when that fetch has run, else read from the mirror's ref.
    sha = ctx.state.get(_STATE_SHA, "")
    _run_later(ctx, scripts.archive_script(
        mirror=settings.mirror, sha=sha, tree=settings.tree, release_path=ctx.release_path, revision_path=revision_path,
    ))


@hookimpl(tryfirst=True)
def fap_deploy_published(ctx: Any) -> None:
    """Append the release to ``git_revision_log`` as soon as ``current`` points to it.

    ``tryfirst`` so the line is written even when a restart hook of another
    plugin fails afterwards: the release is live either way.
    """
    settings = _Settings(ctx)
    if not settings.revision_log:
        return
    fields = {"release": ctx.release}
    if ctx.flow == "release":
        fields.update(sha=ctx.state.get(_STATE_SHA, ""), branch=settings.branch)
    elif ctx.flow == "rollback":
        _leaving, returning = ctx.state.get(_STATE_ROLLBACK, ("", ""))
        fields.update(sha=returning or "unknown", rolled_back_from=ctx.rollback_from or "")
    else:
        return
    fields["deployer"] = _deployer()
    line = _now() + " " + " ".join(f"{name}={value}" for name, value in fields.items())
    # With the host's next round trip: another plugin's restart, or the run's last (the unlock).
    _run_later(ctx, scripts.append_script(log_path=settings.revision_log, line=line))


# ---------------------------------------------------------------------------
# Rollback
# ---------------------------------------------------------------------------


@hookimpl
def fap_deploy_reverting(ctx: Any) -> None:
    """Say which revision the rollback leaves and which it returns to (from each release's ``revision_file``)."""
    settings = _Settings(ctx)
    if not settings.revision_file or not ctx.rollback_from:
        return
    leaving_path = posixpath.join(ctx.config["releases_path"], ctx.rollback_from, settings.revision_file)
    returning_path = posixpath.join(ctx.release_path, settings.revision_file)
    output = ctx.run(scripts.read_revisions_script([leaving_path, returning_path]), readonly=True)
    lines = (output.splitlines() + ["", ""])[:2]
    leaving, returning = (line.strip() for line in lines)
    ctx.state[_STATE_ROLLBACK] = (leaving, returning)
    ctx.log(
        f"leaving release {ctx.rollback_from} at revision {leaving or 'unknown'}, "
        f"returning to release {ctx.release} at revision {returning or 'unknown'}"
    )


# ---------------------------------------------------------------------------
# Revisions (fap releases)
# ---------------------------------------------------------------------------


@hookimpl
def fap_release_revision(ctx: Any, release: str) -> str | None:
    """The sha ``release`` holds: its ``revision_file``, else its line in ``git_revision_log``.

    The first question on a host reads every release's answer in one round
    trip; the others are answered from ``ctx.state``.
    """
    if release == ctx.release:
        # The run's own release: what this run fetched (a deploy) or read in reverting (a rollback), no round trip.
        known = ctx.state.get(_STATE_SHA, "") if ctx.flow == "release" else ctx.state.get(_STATE_ROLLBACK, ("", ""))[1]
        if known and _SHA.match(known):
            return str(known)
    revisions = ctx.state.get(_STATE_REVISIONS)
    # The run's own release gets its REVISION in updating: until it is known, it is read again when asked.
    if revisions is None or (release == ctx.release and release not in revisions):
        settings = _Settings(ctx)
        script = scripts.revisions_script(
            releases_path=ctx.config["releases_path"],
            revision_file=_in_release(settings.revision_file, ctx.config),
            log_path=settings.revision_log,
        )
        revisions = ctx.state[_STATE_REVISIONS] = read_revisions(ctx.run(script, readonly=True))
    return revisions.get(release)


def read_revisions(output: str) -> dict[str, str]:
    """``{release: sha}`` from what :func:`scripts.revisions_script` printed; a revision file wins over the log."""
    from_file: dict[str, str] = {}
    from_log: dict[str, str] = {}
    for line in output.splitlines():
        key, _, value = line.partition("=")
        if key == "revision":
            release, _, sha = value.partition(" ")
            if sha.strip():
                from_file[release] = sha.strip()
        elif key == "log":
            release, sha = revision_log_entry(value)
            if release and sha:
                from_log[release] = sha
    return {**from_log, **from_file}


def revision_log_entry(line: str) -> tuple[str | None, str | None]:
    """``(release, sha)`` of one ``git_revision_log`` line, as :func:`fap_deploy_published` writes it.

    ``<time> release=NAME sha=SHA branch=B deployer=D``; lines of Fapistrano
    0.9's log (``NAME SHA ...``) are read by shape: the first release name and
    the first hex word that is not all digits.
    """
    words = re.split(r"[\s,;|]+", line.strip())
    fields = dict(word.split("=", 1) for word in words if "=" in word)
    if "release" in fields:
        return fields.get("release"), fields.get("sha") or None
    names = [word for word in words if _RELEASE_NAME.match(word)]
    shas = [word for word in words if _ANY_SHA.match(word) and not word.isdigit() and not _RELEASE_NAME.match(word)]
    return (names[0] if names else None), (shas[0] if shas else None)


def _in_release(revision_file: str, config: Any) -> str:
    """``revision_file`` relative to a release (``%(release_path)s/REVISION`` resolves to ``current_path/REVISION`` here)."""
    for prefix in (config["current_path"], config["release_path"]):
        if revision_file.startswith(prefix.rstrip("/") + "/"):
            return revision_file[len(prefix.rstrip("/")) + 1:]
    return revision_file.lstrip("/")


# ---------------------------------------------------------------------------
# The source (fap pending, fap deploy --if-changed, fap promote)
# ---------------------------------------------------------------------------


@hookimpl
def fap_source_revision(ctx: Any) -> str | None:
    """The commit ``branch`` names now, as the host sees ``repo`` (``git ls-remote``, run where the deploy fetches).

    A full sha is its own answer; an abbreviated one is looked up in the
    host's mirror. A branch and a tag of the same name resolve as ``git
    fetch`` resolves them (the tag wins).
    """
    settings = _Settings(ctx)
    settings.check()
    if _SHA.match(settings.branch):
        return settings.branch
    script = scripts.ls_remote_script(repo=settings.repo, mirror=settings.mirror, revision=settings.branch)
    try:
        output = ctx.run(script, env=settings.env, readonly=True)
    except FapError as failure:
        raise _explain(ctx, settings, failure) from None
    sha = resolve_ref(output, settings.branch)
    if sha is None:
        raise FapError(f"{ctx.host}: branch {settings.branch!r} is no branch or tag of repo {ctx.mask(settings.repo)}")
    return sha


def resolve_ref(ls_remote: str, name: str) -> str | None:
    """The commit ``name`` resolves to among ``git ls-remote``'s lines (and a ``mirror=SHA`` line), as git's rules order refs.

    An annotated tag's line ``<tag object> refs/tags/v1`` is followed by the
    commit it points to, ``<sha> refs/tags/v1^{}``: the commit is the answer.
    """
    refs: dict[str, str] = {}
    mirrored = None
    for line in ls_remote.splitlines():
        if line.startswith("mirror="):
            mirrored = line[len("mirror="):].strip() or None
            continue
        sha, _, ref = line.strip().partition("\t")
        if ref and _SHA.match(sha):
            refs[ref] = sha
    for candidate in (name, f"refs/{name}", f"refs/tags/{name}", f"refs/heads/{name}", f"refs/remotes/{name}",
                      f"refs/remotes/{name}/HEAD"):
        if candidate + "^{}" in refs:
            return refs[candidate + "^{}"]
        if candidate in refs:
            return refs[candidate]
    return mirrored


@hookimpl
def fap_source_commits(ctx: Any, since: str, until: str, limit: int) -> tuple[list[str], int] | None:
    """``git log --format='%h %s' since..until`` (at most ``limit`` lines) and the count, in a scratch repository on the host."""
    settings = _Settings(ctx)
    settings.check()
    script = scripts.commits_script(repo=settings.repo, since=since, until=until, limit=limit)
    try:
        output = ctx.run(script, env=settings.env, readonly=True)
    except FapError as failure:
        code = getattr(failure, "returncode", None)
        if code == scripts.EXIT["no_revision"]:
            missing = _reason(getattr(failure, "stderr", ""), 1).removeprefix("no such revision: ")
            raise FapError(f"the repository does not have revision {missing} (history rewritten, or another repo)") from None
        raise _explain(ctx, settings, failure) from None
    head, *lines = output.splitlines() or [""]
    counts = dict(word.split("=", 1) for word in head.split() if "=" in word)
    count = int(counts.get("count", "0") or 0)
    ahead = int(counts.get("ahead", "0") or 0)
    if not count and ahead:
        raise FapError(f"the hosts run {ahead} commit{'s' if ahead != 1 else ''} that {settings.branch} does not have"
                       f" ({until[:12]} is older, or the branch was rewritten)")
    return [line for line in lines if line.strip()][:limit], count


@hookimpl
def fap_source_promote(revision: str, stage: str, role: str, config: Any) -> dict[str, Any] | None:
    """Ship exactly ``revision``: ``branch`` set to that commit, fetched by its sha even when the branch moved on."""
    if not _ANY_SHA.match(revision):
        raise ConfigError(f"{stage}/{role}: cannot promote revision {revision!r}: the git plugin ships a commit sha")
    return {"branch": revision}


# ---------------------------------------------------------------------------
# fap check
# ---------------------------------------------------------------------------


@hookimpl
def fap_check(ctx: Any) -> list[str] | None:
    """Report, without changing anything, why a git deploy to this host would fail."""
    settings = _Settings(ctx)
    try:
        settings.check()
    except FapError as problem:
        return [_without_host(str(problem), ctx.host)]
    script = scripts.check_script(repo=settings.repo, mirror=settings.mirror, revision=settings.branch)
    try:
        refs = ctx.run(script, env=settings.env, readonly=True)
    except FapError as failure:
        return [_without_host(str(_explain(ctx, settings, failure)), ctx.host)]
    if not refs.strip() and not re.fullmatch(r"[0-9a-f]{4,64}", settings.branch):
        return [f"branch {settings.branch!r}: no such branch or tag in {ctx.mask(settings.repo)}"]
    if settings.tree:
        # Whether the directory exists needs the commit's trees: fetch them (no file contents) into a
        # scratch repository that is removed again, so the check changes nothing. When that fetch
        # fails the check cannot tell, and says nothing: the deploy will.
        tree_script = (
            f"repo={shlex.quote(settings.repo)}; rev={shlex.quote(settings.branch)}; tree={shlex.quote(settings.tree)}\n"
            'export GIT_TERMINAL_PROMPT=0; scratch=$(mktemp -d) || exit 0; trap \'rm -rf "$scratch"\' EXIT\n'
            'git init -q --bare "$scratch" && git --git-dir="$scratch" fetch -q --depth 1 --filter=blob:none -- "$repo" "$rev" 2>/dev/null || exit 0\n'
            '[ "$(git --git-dir="$scratch" cat-file -t "FETCH_HEAD:$tree" 2>/dev/null)" = tree ] || echo missing\n'
        )
        if ctx.run(tree_script, env=settings.env, readonly=True).strip() == "missing":
            return [f"git_archive_tree {settings.tree!r} is not a directory in {settings.branch} of repo {ctx.mask(settings.repo)}"]
    return None


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _run_later(ctx: Any, script: str, **options: Any) -> None:
    """``ctx.run_later`` (one round trip less per command); on a Fapistrano without it, ``ctx.run`` now."""
    if hasattr(ctx, "run_later"):
        ctx.run_later(script, **options)
        return
    then, explain = options.pop("then", None), options.pop("explain", None)
    try:
        output = ctx.run(script, **options)
    except FapError as failure:
        raise (explain(failure) if explain is not None else failure) from None
    if then is not None:
        then(output)


def _explain(ctx: Any, settings: _Settings, failure: FapError) -> FapError:
    """Turn a script's exit code into one line naming the host, the setting and the repository.

    ``ctx.run`` raises a :class:`FapError` carrying the command's ``returncode``
    and ``stderr``; any other failure (a lost connection) is returned as it is.
    """
    code = getattr(failure, "returncode", None)
    detail = _reason(getattr(failure, "stderr", ""))
    repo = ctx.mask(settings.repo)
    host = ctx.host
    if code == scripts.EXIT["no_git"]:
        return FapError(f"{host}: git is not installed on this host (needed to fetch {repo})")
    if code == scripts.EXIT["not_a_repository"]:
        return FapError(f"{host}: repo_path {settings.mirror} exists but is not a git repository: move it away or set repo_path")
    if code == scripts.EXIT["unreachable"]:
        return FapError(f"{host}: repo {repo} is not reachable from {host}: {detail}")
    if code == scripts.EXIT["no_revision"]:
        hint = ""
        if re.fullmatch(r"[0-9a-f]{4,39}", settings.branch) and settings.depth:
            hint = f" (an abbreviated sha is found only within git_shallow_clone={settings.depth} commits of a branch or tag: give the full sha)"
        return FapError(f"{host}: branch {settings.branch!r} is no branch, tag or commit of repo {repo}{hint}")
    if code == scripts.EXIT["no_tree"]:
        return FapError(f"{host}: git_archive_tree {settings.tree!r} is not a directory in {settings.branch} of repo {repo}")
    return failure


#: What git says after every failure to read a remote, and what our scripts add: no news.
_BOILERPLATE = (
    "fatal: Could not read from remote repository.",
    "Please make sure you have the correct access rights",
    "and the repository exists.",
    "cannot read the repository",
)


def _reason(stderr: str, count: int = 2) -> str:
    """The last lines of git's stderr that say why, without its boilerplate."""
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    telling = [line for line in lines if line not in _BOILERPLATE]
    return " | ".join((telling or lines)[-count:])


def _without_host(message: str, host: str) -> str:
    prefix = f"{host}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def _deployer() -> str:
    """Who deploys: the local user and machine, as the deploy lock names them."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in a container: fall back to the uid
        import os

        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
