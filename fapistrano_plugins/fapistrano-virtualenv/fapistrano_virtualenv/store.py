"""The content-addressed store of virtualenvs under ``shared/``: shell scripts that look up, publish and prune.

Layout of ``virtualenv_venvs_path`` on a host::

    <key>                  -> <key>.<release>.<nonce>   the address: a symlink, made only once pip succeeded
    <key>.<release>.<nonce>/                            a venv, built where it stays (its scripts' #! lines
                                                        name this path, so it is never moved)
    .<key>.new             a link being renamed over <key> (gone unless a run died right there)

``<key>`` is a digest of everything that decides what the venv holds: the
requirements file's content, the interpreter (its path and ``--version``),
the command that makes the venv, the installer and the pip options. A
release's venv path (``releases/<name>/venv``) is a symlink to the directory
the address resolved to when the release was built, so a later rebuild of
the same address never changes what a finished release runs.

A half-built venv has a directory but no address: nothing looks it up, and
:func:`prune_script` removes it with every other directory no kept release
links to.
"""

from __future__ import annotations

import hashlib
import posixpath
import shlex
from collections.abc import Iterable

#: Written into every key, so that a change of what the store holds gives new addresses.
KEY_FORMAT = "fapistrano-virtualenv store 1"

#: How many hex digits of the sha256 digest name an address (64 bits).
KEY_LENGTH = 16

q = shlex.quote


def material_digest(material: Iterable[str]) -> str:
    """The sha256 of the settings part of a key (computed here: the host's script hashes one line, not the settings)."""
    return hashlib.sha256("\n".join([KEY_FORMAT, *material]).encode()).hexdigest()


def link_prefix(venvs_path: str, venv_link: str) -> str:
    """What a release's venv link puts before a store directory's name.

    Relative (``../../shared/venvs``) when the store and the release share
    a directory below ``/``: the link then survives the application's
    directory being moved or mounted elsewhere. Absolute otherwise.
    """
    link_dir = posixpath.dirname(venv_link)
    if posixpath.commonpath([venvs_path, link_dir]) == "/":
        return venvs_path
    return posixpath.relpath(venvs_path, link_dir)


def lookup_script(
    *,
    venvs_path: str,
    venv_link: str,
    requirements: str,
    installer: str,
    uv: str,
    program: str,
    material: Iterable[str],
    link: bool = True,
) -> str:
    """Shell text printing one line: ``missing``, ``no-uv``, ``reuse <key> <dir>`` or ``build <key> <installer>``.

    It checks that ``requirements`` (when not empty) is a file, settles
    ``installer`` (``auto``: ``uv`` when ``uv`` is a command on the host,
    else ``pip``), computes the key, and when the address exists with a
    working interpreter, links ``venv_link`` to it (unless ``link`` is
    false): a reused venv costs this one command.
    """
    lines = [
        f"venvs={q(venvs_path)}; venv_link={q(venv_link)}; requirements={q(requirements)}",
        f"installer={q(installer)}; uv={q(uv)}; program={q(program)}",
    ]
    if requirements:
        lines.append('[ -f "$requirements" ] || { echo missing; exit 0; }')
    lines += [
        'case $installer in',
        '  auto) if command -v "$uv" >/dev/null 2>&1; then installer=uv; else installer=pip; fi ;;',
        '  uv) command -v "$uv" >/dev/null 2>&1 || { echo no-uv; exit 0; } ;;',
        'esac',
        "if command -v sha256sum >/dev/null 2>&1; then digest=sha256sum; else digest='shasum -a 256'; fi",
        # The interpreter's path and version are part of the address: a host upgrading
        # Python gets new venvs instead of ones linked against the interpreter it no longer has.
        "key=$( {",
        f"  printf '%s\\n' {q(material_digest(material))} \"installer=$installer\"",
        '  command -v "$program" 2>&1 || true',
        '  "$program" --version 2>&1 || true',
        "  echo ---",
        '  [ -z "$requirements" ] || cat "$requirements"',
        f"}} | $digest | cut -c1-{KEY_LENGTH} ) || exit 1",
        '[ -n "$key" ] || { echo "cannot compute the venv\'s key" >&2; exit 1; }',
        'if [ -x "$venvs/$key/bin/python" ] && built=$(readlink "$venvs/$key"); then',
    ]
    if link:
        lines.append(f'  ln -sfn {q(link_prefix(venvs_path, venv_link))}/"$built" "$venv_link" || exit 1')
    lines += [
        '  echo "reuse $key $built"',
        "else",
        '  mkdir -p "$venvs" || exit 1',
        '  echo "build $key $installer"',
        "fi",
    ]
    return "\n".join(lines)


def publish_script(venvs_path: str, key: str, built: str, venv_link: str) -> str:
    """Shell text giving the venv ``built`` (a directory name in the store) the address ``key``, and linking the release to it.

    The address is a new symlink renamed over the old one, so a look-up
    sees either the previous venv or the complete new one, never a venv
    being built.
    """
    temporary = f".{key}.new"
    return "\n".join(
        [
            f"cd {q(venvs_path)} || exit 1",
            f"rm -f {q(temporary)}",
            f"ln -s {q(built)} {q(temporary)} && mv -fT {q(temporary)} {q(key)} || exit 1",
            f"ln -sfn {q(link_prefix(venvs_path, venv_link) + '/' + built)} {q(venv_link)}",
        ]
    )


def prune_script(venvs_path: str, releases_path: str, venv_in_release: str) -> str:
    """Shell text removing every venv of the store that no release under ``releases_path`` links to.

    A release links to its venv at ``<release>/<venv_in_release>``. Kept:
    every directory such a link names (the live release's, the one a
    rollback returns to, every kept release's). Removed: the other
    directories (venvs of removed releases, builds that failed or were
    interrupted) and then the addresses left pointing at nothing. Prints
    the names it removed, one a line.
    """
    return "\n".join(
        [
            f"cd {q(venvs_path)} 2>/dev/null || exit 0",
            "kept=' '",
            f"for release in {q(releases_path)}/*; do",
            f'  built=$(readlink "$release"/{q(venv_in_release)} 2>/dev/null) || continue',
            '  kept="$kept${built##*/} "',
            "done",
            "for entry in * .[!.]*; do",
            '  [ -e "$entry" ] || [ -L "$entry" ] || continue',
            '  if [ -L "$entry" ]; then',
            # An address whose venv is gone; or a rename a dead run left.
            '    case $entry in .*.new) rm -f "$entry"; echo "$entry" ;; *) [ -e "$entry" ] || { rm -f "$entry"; echo "$entry"; } ;; esac',
            '  elif [ -d "$entry" ]; then',
            '    case $kept in *" $entry "*) ;; *) rm -rf "$entry" && echo "$entry" ;; esac',
            "  fi",
            "done",
            # The addresses whose directories were just removed.
            'for entry in *; do [ -L "$entry" ] && [ ! -e "$entry" ] && rm -f "$entry" && echo "$entry"; done',
            "exit 0",
        ]
    )
