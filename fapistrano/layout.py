"""The Capistrano layout: release names, what a host holds, and the scripts that change it.

Pure functions: they build shell text (every configured value quoted) and
read back what the probe printed. Nothing here connects to anything.

::

    <path>/
      .fap-lock/owner          held while a run changes this target
      .fap-freeze              the target is frozen (``fap lock -m``): who, since when, why
      current -> releases/<name>
      releases/<name>/         one per release; ``.<name>.unfinished`` marks one not yet published
      shared/                  linked_files and linked_dirs live here
      .fap/history.jsonl       one JSON record per run that changed this target, oldest first (the last 1000)
      .fap/marks/<release>.<kind>.json   a mark on a release: ``bad`` (rolled back from), ``migrated``, ``migrated_back``

fap's own records live in ``.fap/``, outside the release tree: a release
may be read-only, and what is known about it (a mark) must survive its
code being replaced. A mark is a small JSON object, one file per release and
kind, written by :func:`mark_script` (a temporary file renamed into place, as
the deploy user) and read back by every probe, in the probe's own round trip
(:attr:`HostState.marks`). Removing a release removes its marks.

The history (:func:`history_append_script`) is appended one line at a time,
under the run's lock: one ``write`` of a line shorter than ``PIPE_BUF``
(:data:`RECORD_LIMIT`) with ``O_APPEND``, so a crash leaves every earlier
record whole; trimming to :data:`HISTORY_KEEP` records writes the kept lines
to a temporary file and renames it over the history. Readers take no lock:
they see the file before or after a rename, and skip a line that is not
JSON. See :mod:`fapistrano.history` for the record's fields.
"""

from __future__ import annotations

import datetime as _dt
import json
import posixpath
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

RELEASE_FORMAT = "%y%m%d-%H%M%S"
LOCK_DIR = ".fap-lock"
#: The file in the lock that holds the token of the run that took it.
LOCK_TOKEN = "token"
#: :func:`unlock_script`'s status when the lock is another run's now: left in place.
LOCK_NOT_OURS = 3
#: The freeze (``fap lock``): a file beside the lock directory, never taken or released by a run (see fapistrano.freeze).
FREEZE_FILE = ".fap-freeze"
#: How much of a freeze file a probe reads: what ``fap lock`` writes is far less; a file made by hand is cut.
FREEZE_READ = 4096
#: fap's own directory in the app's directory: the history and the release marks.
FAP_DIR = ".fap"
#: The history of the runs that changed this target (JSON lines, oldest first).
HISTORY_FILE = "history.jsonl"
#: How many records the history keeps; older ones are trimmed away.
HISTORY_KEEP = 1000
#: The longest record line (with its newline): shorter than ``PIPE_BUF`` (4096), so one append is one atomic write.
RECORD_LIMIT = 4000
#: The release marks: ``<release>.<kind>.json``.
MARKS_DIR = "marks"
#: How much of one mark file a probe reads.
MARK_READ = 4096
_MARK_KIND = re.compile(r"[a-z][a-z0-9_]*\Z")
# A time, then, when that time (or a later one) is already taken, a counter: -01 ... -99, -100 ...
# written in one way only (no "-1", no "-001"), so that every name has its own sort key.
_RELEASE_NAME = re.compile(r"(\d{6}-\d{6})(?:-(0[1-9]|[1-9]\d+))?\Z")

q = shlex.quote


def release_key(name: str) -> tuple[str, int, str]:
    """Sort key of a release name: its time, then its counter as a number (``-100`` after ``-99``).

    Releases are ordered by this key everywhere (listing, rollback, cleanup),
    never as strings. A name that is not a release sorts by its text, before
    the releases of the same time.
    """
    match = _RELEASE_NAME.match(name)
    if match is None:
        return (name, -1, name)
    return (match.group(1), int(match.group(2) or 0), name)


def sort_releases(names: Iterable[str]) -> list[str]:
    """``names`` oldest first, by :func:`release_key`."""
    return sorted(names, key=release_key)


def release_name(now: _dt.datetime, taken: Iterable[str] = ()) -> str:
    """A release name for ``now`` that sorts after every release name in ``taken``.

    ``%y%m%d-%H%M%S`` as Fapistrano 0.9 named releases. When that time, or a
    later one (a clock that was ahead, a release copied from elsewhere), is
    already taken, the latest time taken gets the next counter: ``-01``,
    ``-02``, ... ``-99``, ``-100`` and on without limit. The name is always
    one :func:`is_release_name` accepts and always new.
    """
    base = now.strftime(RELEASE_FORMAT)
    names = [n for n in taken if is_release_name(n)]
    if not names:
        return base
    latest_time, latest_counter, _ = max(release_key(n) for n in names)
    if base > latest_time:
        return base
    return f"{latest_time}-{latest_counter + 1:02d}"


def is_release_name(name: str) -> bool:
    """Whether ``name`` looks like a release directory fap made."""
    return bool(_RELEASE_NAME.match(name))


def marker(releases_path: str, release: str) -> str:
    """The file that marks ``release`` unfinished until it is published."""
    return posixpath.join(releases_path, f".{release}.unfinished")


@dataclass(frozen=True)
class HostState:
    """What a host's probe reported: current release, releases, lock."""

    current: str | None = None
    releases: tuple[str, ...] = ()  # finished, sorted oldest first
    unfinished: tuple[str, ...] = ()
    lock_owner: str | None = None  # someone else's lock, as its owner file reads
    freeze: str | None = None  # the freeze file's line (fapistrano.freeze reads it); None: not frozen
    locked_by_us: bool = False
    path_exists: bool = True
    #: Marks on releases, ``{release: {kind: data}}`` (``bad``, ``migrated``...): see :func:`mark_script`.
    marks: Mapping[str, Mapping[str, Mapping[str, object]]] = field(default_factory=dict)

    def marked(self, release: str | None, kind: str) -> Mapping[str, object] | None:
        """The mark of ``kind`` on ``release``, or ``None``."""
        return self.marks.get(release or "", {}).get(kind)

    def is_bad(self, release: str | None) -> bool:
        """Whether ``release`` is marked bad on this host (a rollback left it)."""
        return self.marked(release, "bad") is not None


def probe_script(
    path: str,
    current_path: str,
    releases_path: str,
    lock_info: str | None,
    token: str = "",
) -> str:
    """One round trip: (optionally) take the lock, then report current, releases and the lock.

    ``lock_info`` is written into the lock when given; ``None`` only reads.
    ``token``, this run's own, is written beside it: the run releases the
    lock only while it still holds that token (see :func:`unlock_script`).

    Every line is ``key=value`` and no name on the host can add one: only
    release names (digits and dashes) and their markers are listed, and the
    lock's owner and ``current``'s target are printed with their newlines
    replaced. A directory named ``"zz\\nlock=ours"`` is not a line of its own.
    """
    lock = posixpath.join(path, LOCK_DIR)
    lines = ["cd / || exit 1", "nl='\n'"]
    if lock_info is not None:
        lines += [
            f"[ -d {q(path)} ] || mkdir -p {q(path)} || exit 1",
            # A frozen target is not locked: the run refuses (fapistrano.freeze) with nothing taken.
            f"{freeze_probe_line(path)}",
            f"elif lock_error=$(mkdir {q(lock)} 2>&1); then printf '%s\\n' {q(lock_info)} > {q(lock + '/owner')}"
            f" && printf '%s\\n' {q(token)} > {q(lock + '/' + LOCK_TOKEN)} && echo 'lock-taken=1';"
            f" elif [ -d {q(lock)} ]; then printf 'lock=%s\\n' \"$(tr '\\n' ' ' < {q(lock + '/owner')} 2>/dev/null || echo unknown)\";"
            # No lock there and none made (permissions, full disk): say why, not "locked by unknown".
            " else printf '%s\\n' \"$lock_error\" >&2; exit 1; fi",
        ]
    else:
        lines.append(
            f"if [ -d {q(lock)} ]; then printf 'lock=%s\\n' \"$(tr '\\n' ' ' < {q(lock + '/owner')} 2>/dev/null || echo unknown)\"; fi"
        )
        lines.append(f"{freeze_probe_line(path)}; fi")
    lines += [
        f"[ -d {q(path)} ] || echo 'nopath=1'",
        f"link=$(readlink {q(current_path)} 2>/dev/null)",
        # Only a link made by hand holds a newline: tr runs for it alone.
        'case $link in *"$nl"*) link=$(printf \'%s\' "$link" | tr \'\\n\' \'?\');; esac',
        "printf 'current=%s\\n' \"$link\"",
        marks_probe_line(path),
        # Release names are digits and dashes: any other name (a newline in it) is not listed at all.
        f"if [ -d {q(releases_path)} ]; then cd {q(releases_path)} && for entry in * .*.unfinished; do"
        " name=${entry#.}; name=${name%.unfinished}; case $name in ''|*[!0-9-]*) continue;; esac;"
        " if [ -d \"$entry\" ]; then printf 'release=%s\\n' \"$entry\";"
        " elif [ -f \"$entry\" ]; then printf 'unfinished=%s\\n' \"$entry\"; fi; done; fi",
        "exit 0",
    ]
    return "\n".join(lines)


def parse_probe(output: str) -> HostState:
    """Read what :func:`probe_script` printed."""
    current = None
    releases: list[str] = []
    unfinished: list[str] = []
    lock_owner = None
    ours = False
    path_exists = True
    freeze = None
    marks: dict[str, dict[str, dict[str, object]]] = {}
    for line in output.splitlines():
        key, _, value = line.partition("=")
        if key == "mark":
            _read_mark(value, marks)
            continue
        if key == "current" and value:
            current = posixpath.basename(value.rstrip("/"))
        elif key == "release" and is_release_name(value):
            releases.append(value)
        elif key == "unfinished" and value.startswith(".") and value.endswith(".unfinished"):
            name = value[1 : -len(".unfinished")]
            if is_release_name(name):
                unfinished.append(name)
        elif key == "lock-taken":
            ours = True  # a key of its own: an owner file reading "ours" is someone else's lock
        elif key == "lock":
            lock_owner = value.strip() or "unknown"
        elif key == "nopath":
            path_exists = False
        elif key == "freeze":
            freeze = value
    finished = tuple(sort_releases(r for r in releases if r not in unfinished))
    return HostState(
        current=current,
        releases=finished,
        unfinished=tuple(sort_releases(unfinished)),
        lock_owner=lock_owner,
        locked_by_us=ours,
        path_exists=path_exists,
        freeze=freeze,
        marks=marks,
    )


def _read_mark(value: str, marks: dict[str, dict[str, dict[str, object]]]) -> None:
    """One ``mark=<release>.<kind>.json <json>`` line into ``marks``; a file that is not a mark or not JSON is left out."""
    name, _, text = value.partition(" ")
    release, _, rest = name.partition(".")
    kind = rest.removesuffix(".json")
    if not (is_release_name(release) and rest.endswith(".json") and _MARK_KIND.match(kind)):
        return
    try:
        data = json.loads(text)
    except ValueError:
        data = {"unreadable": text[:200]}  # made by hand: still a mark, shown as such
    marks.setdefault(release, {})[kind] = data if isinstance(data, dict) else {"value": data}


def previous_release(state: HostState) -> str | None:
    """The finished release just before ``current``; ``None`` when there is none."""
    if state.current not in state.releases:
        older = [r for r in state.releases if state.current is None or release_key(r) < release_key(state.current)]
        return older[-1] if older else None
    index = state.releases.index(state.current)
    return state.releases[index - 1] if index > 0 else None


def previous_good_release(state: HostState) -> str | None:
    """The newest finished release before ``current`` that is not marked bad; ``None`` when there is none."""
    older = [r for r in state.releases if state.current is None or release_key(r) < release_key(state.current)]
    good = [r for r in older if not state.is_bad(r)]
    return good[-1] if good else None


def outdated_releases(state: HostState, keep: int, keep_also: Iterable[str] = ()) -> list[str]:
    """Finished releases cleanup removes: never ``current`` nor ``keep_also``; bad releases first.

    The newest ``keep`` good releases stay (``current`` and ``keep_also``
    count among them): a release marked bad never pushes a good one out. Bad
    releases fill what room ``keep`` leaves, the newest first; the rest go.
    """
    protected = {state.current, *keep_also}
    good = [r for r in state.releases if r in protected or not state.is_bad(r)]
    newest_good = set(good[-keep:]) if keep > 0 else set()
    outdated = [r for r in good if r not in protected and r not in newest_good]
    kept = len(good) - len(outdated)
    bad = [r for r in state.releases if r not in protected and state.is_bad(r)]
    room = max(0, keep - kept)
    outdated += bad[:max(0, len(bad) - room)]
    return sort_releases(outdated)


# ---------------------------------------------------------------------------
# Scripts that change a host. Every value is quoted; each is one round trip.
# ---------------------------------------------------------------------------


def _fail(message: str) -> str:
    return f"{{ echo {q(message)} >&2; exit 1; }}"


def starting_script(
    path: str,
    releases_path: str,
    shared_path: str,
    linked_files: Sequence[str],
    linked_dirs: Sequence[str],
    release_path: str | None,
    release_marker: str | None,
    current_path: str | None = None,
    leftovers: Sequence[str] = (),
) -> str:
    """Make the directories, check linked files, remove ``leftovers``, create the release (marked unfinished).

    ``leftovers`` are unfinished releases of runs that died; only a run
    holding the lock may pass them (see :func:`remove_releases_script`).
    """
    # A test is a shell builtin, mkdir a process: after the first deploy these directories exist.
    directories = [path, releases_path, shared_path, *(posixpath.join(shared_path, d) for d in linked_dirs)]
    lines = [f"for dir in {' '.join(q(d) for d in directories)}; do [ -d \"$dir\" ] || mkdir -p \"$dir\" || exit 1; done"]
    missing = []
    for name in linked_files:
        shared = posixpath.join(shared_path, name)
        missing.append(f"[ -e {q(shared)} ] || {{ echo {q('missing linked file: ' + shared)} >&2; missing=1; }}")
    if missing:
        lines += ["missing=", *missing, '[ -z "$missing" ] || exit 1']
    if leftovers:
        if current_path is None:
            raise ValueError("removing leftovers needs current_path")
        lines.append(f"( {remove_releases_script(releases_path, current_path, leftovers, marks_path(path))}\n) || exit 1")
    if release_path is not None and release_marker is not None:
        lines += [
            # Never mark as ours, nor later remove, a directory that was there before this run.
            f"if [ -e {q(release_path)} ] || [ -L {q(release_path)} ]; then "
            + _fail(f"release directory {release_path} already exists") + "; fi",
            f": > {q(release_marker)} || exit 1",
            f"mkdir {q(release_path)} || " + _fail(f"cannot create release directory {release_path}"),
        ]
    return "\n".join(lines)


def link_script(
    release_path: str,
    shared_path: str,
    linked_files: Sequence[str],
    linked_dirs: Sequence[str],
    environment: Mapping[str, str],
) -> str:
    """Link shared files and dirs into the release, replacing what the code shipped; write .env.

    Nothing is written or removed outside the release and ``shared/`` because of a symlink the
    code ships: a linked path whose directory in the release is a symlink fails the deploy (mkdir,
    rm and ln would act wherever it points); a shipped link at the linked path itself, or at
    ``.env``, is replaced (rm and rename act on the link, never on its target). ``.env`` holds the
    secrets: it is created 0640, readable by the deploy user and its group only.
    """
    lines = [
        f"cd {q(release_path)} || exit 1",
        # link PARENT SHARED TARGET: mkdir and rm only when needed (each is a process; tests are builtins).
        'link() { [ -d "$1" ] || mkdir -p "$1" || return 1; if [ -e "$3" ] || [ -L "$3" ]; then rm -rf "$3" || return 1; fi;'
        ' ln -s "$2" "$3"; }',
    ]
    for name in [*linked_dirs, *linked_files]:
        parts = [part for part in name.split("/") if part not in ("", ".")]
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            lines.append(f"[ -L {q(directory)} ] && " + _fail(
                f"cannot link {name} into {release_path}: {directory} in the release is a symlink; "
                "fap does not write through links the code ships"))
        target = posixpath.join(release_path, name)
        lines.append(
            f"link {q(posixpath.dirname(target))} {q(posixpath.join(shared_path, name))} {q(target)} || "
            + _fail(f"cannot link {name} into {release_path}")
        )
    if environment:
        # One quoted printf argument, not a heredoc: a value may contain any line, a terminator included.
        # Written beside .env and renamed over it: a shipped .env symlink is replaced, never followed.
        lines.append(
            f"if [ -e {DOTENV_TEMPORARY} ] || [ -L {DOTENV_TEMPORARY} ]; then rm -f {DOTENV_TEMPORARY}; fi; "
            f"( umask 027 && printf '%s' {q(dotenv(environment))} > {DOTENV_TEMPORARY} ) && mv -fT {DOTENV_TEMPORARY} .env || "
            + _fail(f"cannot write .env in {release_path}")
        )
    return "\n".join(lines)


#: Where .env is written before it is renamed into place.
DOTENV_TEMPORARY = ".env.fap-new"


def dotenv(environment: Mapping[str, str]) -> str:
    """``.env`` text: one ``NAME='value'`` line each, quoted so sourcing it runs nothing."""
    return "".join(f"{name}={q(str(value))}\n" for name, value in environment.items())


def switch_script(current_path: str, release_path: str, tag: str) -> str:
    """Point ``current_path`` at ``release_path`` atomically: a new symlink renamed over the old."""
    temporary = f"{current_path}.fap-{tag}"
    return "\n".join(
        [
            f"[ -d {q(release_path)} ] || " + _fail(f"release {release_path} is not there"),
            # A leftover of an interrupted switch; rm is a process, the tests are builtins.
            f"if [ -e {q(temporary)} ] || [ -L {q(temporary)} ]; then rm -f {q(temporary)}; fi",
            f"ln -s {q(release_path)} {q(temporary)} && mv -fT {q(temporary)} {q(current_path)} || "
            + "{ rm -f " + q(temporary) + "; " + _fail(f"cannot switch {current_path}")[2:],
        ]
    )


def finish_release_script(releases_path: str, release: str) -> str:
    """Mark ``release`` finished (publishing removes its marker)."""
    return f"rm -f {q(marker(releases_path, release))}"


def _refuse_current(current_path: str, releases: Sequence[str]) -> list[str]:
    """Lines (run in ``releases_path``) that exit 1 when ``current`` resolves to one of ``releases``.

    The host decides, not the probe read earlier: ``current`` is compared
    after resolving every symlink, and by the name it points to, so neither
    a stale view nor a release reached through a symlink is ever removed.
    """
    return [
        "here=$(pwd -P) || exit 1",
        f"live=$(cd -P {q(current_path)} 2>/dev/null && pwd -P)",
        f"link=$(readlink {q(current_path)} 2>/dev/null); link=${{link%/}}; link=${{link##*/}}",
        "refused=",
        # A loop of builtins over words of the script: no process per release, no argument list.
        f"for name in {' '.join(releases)}; do"
        ' if [ "$here/$name" = "$live" ] || [ "$name" = "$link" ]; then'
        " printf 'refusing to remove %s: current points to it\\n' \"$here/$name\" >&2; refused=1; fi; done",
        '[ -z "$refused" ] || exit 1',
    ]


#: A shell function: ``remove DIR...`` removes each whole, as the deploy user can. A directory the code
#: shipped read-only (``chmod 555``, kept by tar) is made writable first, then removed; rm alone would
#: leave it, and every later deploy would fail on it. find, not ``chmod -R``: it follows no symlink,
#: and its ``-exec … ;`` opens a directory to the user before it goes into it. Only on rm's failure:
#: a release of ordinary directories costs one rm, as before.
_REMOVE = (
    'remove() { rm -rf -- "$@" 2>/dev/null && return 0;'
    ' find "$@" -type d ! -perm -u+rwx -exec chmod u+rwx {} \\; 2>/dev/null; rm -rf -- "$@"; }'
)
_REMOVE_ARGUMENTS = '; remove "$@"'


def _checked(releases: Iterable[str]) -> list[str]:
    names = list(releases)
    for name in names:
        if not is_release_name(name):
            raise ValueError(f"not a release name: {name!r}")
    return names


def remove_releases_script(releases_path: str, current_path: str, releases: Iterable[str], marks: str | None = None) -> str:
    """Remove releases, their markers and (in ``marks``, :func:`marks_path`) their marks; nothing if ``current`` points to one.

    Any number of releases: the names reach ``rm`` through ``xargs``, which
    splits them into argument lists the system accepts.
    """
    names = _checked(releases)
    if not names:
        return ":"
    return "\n".join([*_remove_releases(releases_path, current_path, names), *_remove_marks(marks, names)])


def _remove_marks(marks: str | None, names: Sequence[str]) -> list[str]:
    """Lines that remove every mark of ``names`` (builtins only when there is none)."""
    if marks is None:
        return []
    return [
        f"if [ -d {q(marks)} ]; then cd {q(marks)} || exit 1; set --; for name in {' '.join(names)}; do"
        ' for file in "$name".*.json; do [ -e "$file" ] && set -- "$@" "$file"; done; done;'
        ' [ $# -eq 0 ] || rm -f -- "$@" || exit 1; fi',
    ]


def _remove_releases(releases_path: str, current_path: str, names: Sequence[str]) -> list[str]:
    return (
        [
            # No releases directory: nothing to remove (a run that failed before making it).
            f"[ -d {q(releases_path)} ] || exit 0",
            f"cd {q(releases_path)} || exit 1",
            *_refuse_current(current_path, names),
            # Release names are digits and dashes: nothing for xargs to unquote.
            f"xargs sh -c {q(_REMOVE + _REMOVE_ARGUMENTS)} sh <<'FAP-RELEASES' || exit 1",
            *names,
            "FAP-RELEASES",
            # Markers last, so that a release that could not be removed whole still reads as unfinished.
            f"for name in {' '.join(names)}; do"
            ' if [ -e ".$name.unfinished" ]; then rm -f ".$name.unfinished" || exit 1; fi; done',
        ]
    )


def remove_new_release_script(releases_path: str, current_path: str, release: str, created: bool,
                              marks: str | None = None) -> str:
    """Remove a run's new ``release`` (never ``current``).

    ``created``: the run saw its starting step make the directory. Otherwise
    the directory goes only while marked unfinished: a run that failed
    before making it must not remove a directory of that name it did not make.
    """
    (name,) = _checked([release])
    return "\n".join(
        [
            f"[ -d {q(releases_path)} ] || exit 0" if created else f"[ -e {q(marker(releases_path, name))} ] || exit 0",
            f"cd {q(releases_path)} || exit 1",
            *_refuse_current(current_path, [name]),
            _REMOVE,
            f"remove {name} || exit 1",
            f"rm -f -- .{name}.unfinished",
            *_remove_marks(marks, [name]),
        ]
    )


# ---------------------------------------------------------------------------
# fap's own records on a host: release marks and the history (see the module's docstring).
# ---------------------------------------------------------------------------


def marks_path(path: str) -> str:
    """The directory of the release marks of the app at ``path``."""
    return posixpath.join(path, FAP_DIR, MARKS_DIR)


def history_path(path: str) -> str:
    """The history file of the app at ``path``."""
    return posixpath.join(path, FAP_DIR, HISTORY_FILE)


def marks_probe_line(path: str) -> str:
    """Probe lines: one ``mark=<release>.<kind>.json <json>`` line per mark file (its newlines replaced).

    Only file names of digits, dashes, lower-case letters, ``_`` and dots are
    read: no name on the host can add a line of its own. One ``awk`` reads
    them all, and only when there is a mark: a host without marks pays builtins only.
    """
    marks = q(marks_path(path))
    reader = ("'FNR==1{if(NR>1)print \"\";printf \"mark=%s \",FILENAME}"
              f" {{printf \"%s \",substr($0,1,{MARK_READ})}} END{{if(NR)print \"\"}}'")
    return (f"if [ -d {marks} ] && cd {marks}; then set --; for file in *.json; do"
            " case $file in *[!0-9a-z_.-]*|'*.json') continue;; esac; set -- \"$@\" \"$file\"; done;"
            f" [ $# -eq 0 ] || awk {reader} \"$@\"; cd /; fi")


def unmark_script(path: str, release: str, kind: str) -> str:
    """Remove ``release``'s mark of ``kind`` (nothing when it has none)."""
    (name,) = _checked([release])
    if not _MARK_KIND.match(kind):
        raise ValueError(f"not a mark kind: {kind!r}")
    return f"rm -f -- {q(posixpath.join(marks_path(path), f'{name}.{kind}.json'))}"


def mark_script(path: str, release: str, kind: str, data: Mapping[str, object]) -> str:
    """Mark ``release`` with ``kind`` (``bad``, ``migrated``...): ``data`` as JSON in its mark file, written atomically.

    Written to a temporary file beside it and renamed into place, as whoever
    runs the script (the deploy user): a reader sees the old mark or the new
    one, never half of one. A mark of the same kind replaces the earlier one.
    """
    (name,) = _checked([release])
    if not _MARK_KIND.match(kind):
        raise ValueError(f"not a mark kind: {kind!r}")
    marks = marks_path(path)
    target = posixpath.join(marks, f"{name}.{kind}.json")
    temporary = posixpath.join(marks, f".{name}.{kind}.json.new")
    text = json.dumps(dict(data), sort_keys=True, ensure_ascii=False, default=str)
    return "\n".join([
        f"[ -d {q(marks)} ] || mkdir -p {q(marks)} || exit 1",
        f"printf '%s\\n' {q(text)} > {q(temporary)} && mv -f {q(temporary)} {q(target)} || "
        + "{ rm -f " + q(temporary) + "; " + _fail(f"cannot mark {name} {kind} in {marks}")[2:],
    ])


def history_append_script(path: str, record: str, keep: int = HISTORY_KEEP) -> str:
    """Append one record line to the history of the app at ``path``; trim it to the last ``keep`` records.

    ``record`` is one line of JSON shorter than :data:`RECORD_LIMIT`: one
    ``O_APPEND`` write, whole or not at all, never touching earlier lines.
    Trimming (only once the file holds more than ``keep`` lines) writes the
    kept lines to a temporary file renamed over the history: a crash leaves
    the history as it was, or trimmed, never emptied. Run under the lock.
    """
    if "\n" in record or len(record.encode()) >= RECORD_LIMIT:
        raise ValueError("a history record is one line shorter than RECORD_LIMIT")
    history = history_path(path)
    directory = posixpath.dirname(history)
    temporary = f"{history}.trim"
    return "\n".join([
        f"[ -d {q(directory)} ] || mkdir -p {q(directory)} || exit 1",
        f"printf '%s\\n' {q(record)} >> {q(history)} || exit 1",
        f"lines=$(wc -l < {q(history)}) || exit 1",
        f"if [ \"$lines\" -gt {int(keep)} ]; then tail -n {int(keep)} {q(history)} > {q(temporary)}"
        f" && mv -f {q(temporary)} {q(history)} || {{ rm -f {q(temporary)}; exit 1; }}; fi",
    ])


def history_read_script(path: str, last: int | None = None) -> str:
    """Print the history of the app at ``path`` (its ``last`` records; nothing when there is none), after a ``freeze=``
    line when the target is frozen (a line that is not JSON: no record). Takes no lock."""
    history = q(history_path(path))
    reader = f"tail -n {int(last)} {history}" if last is not None else f"cat {history}"
    return f"{freeze_probe_line(path)}; fi\nif [ -f {history} ]; then {reader} || exit 1; fi"


def freeze_probe_line(path: str) -> str:
    """``if`` a freeze is there, print it as one ``freeze=`` line (bounded, newlines replaced); the caller ends the ``if``."""
    freeze = q(posixpath.join(path, FREEZE_FILE))
    return (f"if [ -f {freeze} ]; then printf 'freeze=%s\\n' \"$(head -c {FREEZE_READ} {freeze} 2>/dev/null"
            f" | tr '\\n\\r' '  ')\"")


def unlock_script(path: str, token: str | None = None) -> str:
    """Release the lock: the run's own (``token``), or whoever's (``fap unlock``: ``None``).

    A run's lock may have been removed by ``fap unlock`` and taken by another
    run since: then the lock holds another token and stays; the script exits
    :data:`LOCK_NOT_OURS` and says whose it is on stderr. A lock that is not
    there any more is nothing to release.
    """
    lock = posixpath.join(path, LOCK_DIR)
    if token is None:
        return f"rm -rf {q(lock)}"
    return "\n".join(
        [
            f"[ -d {q(lock)} ] || exit 0",
            # read is a builtin: no process; a lock without a token file is not this run's either.
            f"held=; read -r held 2>/dev/null < {q(lock + '/' + LOCK_TOKEN)}",
            f"if [ \"$held\" = {q(token)} ]; then rm -rf {q(lock)}; exit; fi",
            f"printf '%s\\n' \"$(tr '\\n' ' ' < {q(lock + '/owner')} 2>/dev/null || echo unknown)\" >&2",
            f"exit {LOCK_NOT_OURS}",
        ]
    )


def now() -> _dt.datetime:
    """The current local time (a seam for tests)."""
    return _dt.datetime.now()
