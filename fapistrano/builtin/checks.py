"""check: what would make a deploy to this host fail — the layout's directories writable, linked files there, no lock.

Registered like any plugin: ``fap check`` calls every enabled ``fap_check``,
the core's among them. One read-only round trip; the lock comes from the
probe ``fap check`` made when it connected.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from fapistrano import hookimpl, layout

q = layout.q


def check_script(config: Mapping[str, Any]) -> str:
    """Writability of the layout's directories, then the linked files; prints one ``key=value`` line per finding.

    A directory that does not exist yet is fine when its nearest existing
    parent is writable, because ``starting`` will create it there.
    """
    lines = []
    for name in ("path", "releases_path", "shared_path"):
        lines += [
            f"p={q(config[name])}",
            # Walk up to the nearest existing ancestor: that is where mkdir -p will need write access.
            'while [ ! -e "$p" ] && [ "$p" != / ] && [ "$p" != . ]; do p=$(dirname -- "$p"); done',
            f'if [ ! -d "$p" ] || [ ! -w "$p" ] || [ ! -x "$p" ]; then printf \'notwritable=%s %s\\n\' {q(name)} "$p"; fi',
        ]
    for name in config["linked_files"]:
        shared = posixpath.join(config["shared_path"], name)
        lines.append(f"[ -e {q(shared)} ] || printf 'missing=%s\\n' {q(shared)}")
    lines.append("printf 'whoami=%s\\n' \"$(id -un 2>/dev/null)\"")
    return "\n".join(lines)


def read_check(config: Mapping[str, Any], output: str) -> list[str]:
    """The problems in what :func:`check_script` printed: directories not writable first, then missing files."""
    user = ""
    blocked: dict[str, list[str]] = {}
    missing = []
    for line in output.splitlines():
        key, _, value = line.partition("=")
        if key == "notwritable":
            setting, _, directory = value.partition(" ")
            blocked.setdefault(directory, []).append(setting)
        elif key == "missing":
            missing.append(f"missing linked file: {value} (put it in shared_path before deploying)")
        elif key == "whoami":
            user = value
    who = f" by {user}" if user else ""
    return [
        *(f"not writable{who}: {directory} (needed for {', '.join(settings)} = {config[settings[0]]})"
          for directory, settings in blocked.items()),
        *missing,
    ]


@hookimpl(tryfirst=True)  # the core's problems first, as the operator reads them: is the host usable at all
def fap_check(ctx) -> list[str]:
    problems = read_check(ctx.config, ctx.run(check_script(ctx.config), readonly=True))
    if ctx.lock_owner:
        problems.append(f"locked by {ctx.lock_owner} (run 'fap unlock' if that run is gone)")
    return problems
