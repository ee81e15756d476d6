"""The shell scripts the git plugin runs on a host: one per phase, sent with the host's next round trip.

Pure functions that return shell text. Every configured value is assigned,
quoted with :func:`shlex.quote`, to a shell variable at the top of the
script; the body below only ever uses ``"$variable"``. So no value from
deploy.yml or the command line is ever pasted into a command line, and the
body reads as plain shell.

The scripts exit with a code from :data:`EXIT` when something the operator
can fix went wrong; the plugin turns each code into a one-line error.
"""

from __future__ import annotations

import shlex

#: Exit codes of the scripts, each a failure the plugin explains in one line.
EXIT = {
    "not_a_repository": 3,  # repo_path exists and is not a git repository
    "unreachable": 4,  # the repository cannot be read from the host
    "no_revision": 5,  # branch names no branch, tag or commit of the repository
    "no_tree": 6,  # git_archive_tree is not a directory of that commit
    "no_git": 7,  # git is not installed on the host
}

#: Where the mirror keeps the revision it fetched last. Keeping it under a
#: ref is what makes the next fetch incremental (the mirror tells the server
#: what it already has) and keeps ``git gc`` from dropping those objects.
DEPLOY_REF = "refs/fap/deploy"

_PRELUDE = """\
export GIT_TERMINAL_PROMPT=0  # never wait for a password nobody will type
fail() { code=$1; shift; printf '%s\\n' "$*" >&2; exit "$code"; }
command -v git >/dev/null 2>&1 || fail {no_git} "git is not installed (command -v git found nothing)"
"""


def _assign(**values: object) -> str:
    """``name='value'`` lines, every value quoted."""
    return "".join(f"{name}={shlex.quote(str(value))}\n" for name, value in values.items())


def _prelude() -> str:
    return _PRELUDE.replace("{no_git}", str(EXIT["no_git"]))


def fetch_script(*, repo: str, mirror: str, revision: str, depth: int, tree: str) -> str:
    """started: make sure the mirror exists, fetch ``revision`` into it with ONE fetch, print its sha.

    The fetch asks the server for exactly ``revision`` (a branch, a tag or a
    full commit sha; protocol v2 serves any commit) at ``depth`` (0 = whole
    history), so it is both the reachability check and the whole update of
    the mirror. Only an abbreviated sha, which no server resolves, costs a
    second fetch (of every branch and tag) after the first one found no ref
    of that name. When the fetch fails, ``git ls-remote`` tells an
    unreachable repository from a missing revision.
    """
    return (
        _assign(repo=repo, mirror=mirror, rev=revision, depth=depth, tree=tree, ref=DEPLOY_REF)
        + _prelude()
        + """\
if [ ! -e "$mirror" ]; then
  mkdir -p "$(dirname -- "$mirror")" && git -c init.defaultBranch=master init -q --bare -- "$mirror" || exit 1
fi
# Depth: shallow by default; a full mirror that was shallow once is deepened.
if [ "$depth" -gt 0 ]; then set -- --depth "$depth"
elif [ -f "$mirror/shallow" ]; then set -- --unshallow
else set --
fi
# The happy path is this one fetch; only when it fails does the script find out why.
if ! git --git-dir="$mirror" fetch -q --no-tags "$@" -- "$repo" "+$rev:$ref"; then
  git --git-dir="$mirror" rev-parse --git-dir >/dev/null 2>&1 \\
    || fail {not_a_repository} "repo_path $mirror exists but is not a git repository"
  git ls-remote -- "$repo" HEAD >/dev/null 2>&1 || fail {unreachable} "cannot read the repository"
  case "$rev" in
    *[!0-9a-f]*) fail {no_revision} "no such branch, tag or commit" ;;
  esac
  # An abbreviated sha: fetch every branch and tag, then look for it here.
  git --git-dir="$mirror" fetch -q --no-tags "$@" -- "$repo" '+refs/heads/*:refs/heads/*' '+refs/tags/*:refs/tags/*' \\
    || fail {unreachable} "cannot read the repository"
  git --git-dir="$mirror" update-ref "$ref" "$rev^{commit}" 2>/dev/null || fail {no_revision} "no such branch, tag or commit"
fi
sha=$(git --git-dir="$mirror" rev-parse --verify -q "$ref^{commit}") || fail {no_revision} "not a commit"
if [ -n "$tree" ]; then
  [ "$(git --git-dir="$mirror" cat-file -t "$sha:$tree" 2>/dev/null)" = tree ] \\
    || fail {no_tree} "no directory $tree in commit $sha"
fi
printf '%s\\n' "$sha"
""".replace("{not_a_repository}", str(EXIT["not_a_repository"]))
        .replace("{unreachable}", str(EXIT["unreachable"]))
        .replace("{no_revision}", str(EXIT["no_revision"]))
        .replace("{no_tree}", str(EXIT["no_tree"]))
    )


def archive_script(*, mirror: str, sha: str, tree: str, release_path: str, revision_path: str) -> str:
    """updating: ``git archive`` the commit (or its ``tree``, stripped) straight into the release.

    ``sha`` empty: the commit the mirror's :data:`DEPLOY_REF` names, which the
    fetch script of this deploy set (the lock keeps other runs off the mirror).

    No checkout, no copy: the archive streams from the mirror into ``tar``.
    ``sh`` has no ``pipefail``, so git's own exit status is carried out of
    the pipe on file descriptor 3. ``revision_path`` (when not empty) gets
    the deployed sha.
    """
    return (
        _assign(mirror=mirror, sha=sha, tree=tree, release=release_path, revision_file=revision_path, ref=DEPLOY_REF)
        + """\
set -e
# Empty: what the fetch of this run put under the mirror's ref (it ran just before, in the same round trip).
[ -n "$sha" ] || sha=$(git --git-dir="$mirror" rev-parse --verify -q "$ref^{commit}")
if [ -n "$tree" ]; then spec="$sha:$tree"; else spec=$sha; fi
status=$( { { git --git-dir="$mirror" archive --format=tar "$spec"; echo $? >&3; } | tar -x -f - -C "$release"; } 3>&1 )
[ "$status" = 0 ] || { echo "git archive $spec failed (exit $status)" >&2; exit 1; }
if [ -n "$revision_file" ]; then
  # A link the repository ships at that path is replaced, never written through.
  if [ -L "$revision_file" ]; then rm -f "$revision_file"; fi
  printf '%s\\n' "$sha" > "$revision_file"
fi
"""
    )


def append_script(*, log_path: str, line: str) -> str:
    """published: append one ``line`` to the revision log."""
    return _assign(log=log_path, line=line) + """printf '%s\\n' "$line" >> "$log"\n"""


def read_revisions_script(paths: list[str]) -> str:
    """rollback: print the first line of each file in ``paths`` (an empty line when missing)."""
    quoted = " ".join(shlex.quote(path) for path in paths)
    return f"""for file in {quoted}; do if [ -f "$file" ]; then head -n 1 "$file"; else echo; fi; done\n"""


def revisions_script(*, releases_path: str, revision_file: str, log_path: str) -> str:
    """fap releases (read only): ``revision=NAME SHA`` per release holding ``revision_file``, then the log's tail.

    ``revision_file`` is relative to each release; empty reads none. Each log
    line comes back prefixed with ``log=``; an empty ``log_path`` reads none.
    """
    return _assign(releases=releases_path, file=revision_file, log=log_path) + """\
if [ -n "$file" ] && [ -d "$releases" ]; then
  for entry in "$releases"/*; do
    if [ -f "$entry/$file" ]; then
      printf 'revision=%s %s\\n' "${entry##*/}" "$(head -c 200 "$entry/$file" | tr '\\n\\t' '  ')"
    fi
  done
fi
if [ -n "$log" ] && [ -f "$log" ]; then tail -n 1000 "$log" | sed 's/^/log=/'; fi
exit 0
"""


def check_script(*, repo: str, mirror: str, revision: str) -> str:
    """fap check (read only): git installed, repo_path sane, repository reachable; list matching refs."""
    return (
        _assign(repo=repo, mirror=mirror, rev=revision)
        + _prelude()
        + """\
if [ -e "$mirror" ] && ! git --git-dir="$mirror" rev-parse --git-dir >/dev/null 2>&1; then
  fail {not_a_repository} "repo_path $mirror exists but is not a git repository"
fi
git ls-remote -- "$repo" "$rev" || fail {unreachable} "cannot read the repository"
""".replace("{not_a_repository}", str(EXIT["not_a_repository"])).replace("{unreachable}", str(EXIT["unreachable"]))
    )


def ls_remote_script(*, repo: str, mirror: str, revision: str) -> str:
    """fap pending (read only): the refs of the repository that ``revision`` may name, as ``git ls-remote`` prints them.

    An abbreviated sha no server resolves is looked up in the mirror too
    (``mirror=SHA``), where the last deploy fetched it.
    """
    return (
        _assign(repo=repo, mirror=mirror, rev=revision)
        + _prelude()
        + """\
git ls-remote -- "$repo" "$rev" || fail {unreachable} "cannot read the repository"
case "$rev" in
  *[!0-9a-f]*) ;;
  *) sha=$(git --git-dir="$mirror" rev-parse --verify -q "$rev^{commit}" 2>/dev/null) && printf 'mirror=%s\\n' "$sha" ;;
esac
exit 0
""".replace("{unreachable}", str(EXIT["unreachable"]))
    )


def commits_script(*, repo: str, since: str, until: str, limit: int) -> str:
    """fap pending (read only): ``count=N ahead=M``, then the commits in ``until`` not in ``since``, newest first.

    The history is fetched (commits and trees, no file contents when the
    server allows it) into a scratch repository that is removed again, so the
    host's mirror and releases stay as they are. ``ahead`` counts the commits
    of ``since`` that ``until`` does not have (the host runs something newer,
    or a history that was rewritten).
    """
    return (
        _assign(repo=repo, since=since, until=until, limit=limit)
        + _prelude()
        + """\
scratch=$(mktemp -d) || exit 1
trap 'rm -rf "$scratch"' EXIT
git init -q --bare "$scratch" || exit 1
g() { git --git-dir="$scratch" "$@"; }
g fetch -q --no-tags --filter=blob:none -- "$repo" "$until" 2>/dev/null \\
  || { git ls-remote -- "$repo" HEAD >/dev/null 2>&1 || fail {unreachable} "cannot read the repository"; \\
       fail {no_revision} "no such revision: $until"; }
if ! g cat-file -e "$since^{commit}" 2>/dev/null; then
  g fetch -q --no-tags --filter=blob:none -- "$repo" "$since" 2>/dev/null
  g cat-file -e "$since^{commit}" 2>/dev/null || fail {no_revision} "no such revision: $since"
fi
printf 'count=%s ahead=%s\\n' "$(g rev-list --count "$since..$until")" "$(g rev-list --count "$until..$since")"
g log --no-decorate --format='%h %s' -n "$limit" "$since..$until"
""".replace("{unreachable}", str(EXIT["unreachable"])).replace("{no_revision}", str(EXIT["no_revision"]))
    )
