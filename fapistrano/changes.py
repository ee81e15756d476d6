"""What shapes a release, as one fingerprint: ``fap deploy --if-changed`` compares it with the live release's.

Every deploy writes a record of its release into :data:`RECORDS_DIR` (the
built-in ``core.fingerprint``, last in ``published``): the revision the source plugin put
there, a digest of every resolved setting (the ``environment:``, linked
files and dirs, paths included; secrets only ever as digests), the plugins
and their versions, the ``run:`` steps of ``hooks:``, and fap's version.
Names that change with every release (``%(release)s`` and what interpolates
it) are written as ``%(release)s``, so two deploys of the same thing print
the same fingerprint.

``fap deploy --if-changed`` computes the same for the release it would make
and reads the live release's record on every host (:func:`live_fingerprints`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import shlex
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fapistrano import __version__

#: The directory of the app (``path``) where each release's record is kept, as ``<release>.json``.
RECORDS_DIR = ".fap/fingerprints"
#: What :func:`fingerprint` writes in place of the release's name.
RELEASE_PLACEHOLDER = "%(release)s"


#: Core settings that say how fap reaches and runs the hosts, not what a release is: changing one (``--max-fail 1``
#: on a CI command line, a new host in ``hosts:``) is no reason for a new release. The plugins' lists (``plugins``,
#: ``<command>_plugins``) are left out too: the plugins a deploy runs are recorded with their versions.
RUN_ONLY = frozenset({
    "hosts", "connection", "ssh_config", "ssh_options", "ssh_connect_timeout", "ssh_persist", "max_parallel",
    "max_connecting", "batch_size", "batch_pause", "max_fail", "keep_releases", "healthcheck", "healthcheck_interval",
    "healthcheck_timeout", "mask", "shell_command",
})


def shapes_release(name: str) -> bool:
    """Whether setting ``name`` is part of a release's record (see :data:`RUN_ONLY`)."""
    return name not in RUN_ONLY and name != "plugins" and not name.endswith("_plugins")


def _digest(value: Any) -> str:
    """A short, stable digest of a JSON-able value (16 hex digits: enough to tell two settings apart)."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _neutral(value: Any, release: str | None) -> Any:
    """``value`` with the release's name written as ``%(release)s``, in every string it holds."""
    if not release:
        return value
    if isinstance(value, str):
        return value.replace(release, RELEASE_PLACEHOLDER)
    if isinstance(value, Mapping):
        return {str(k): _neutral(v, release) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_neutral(v, release) for v in value]
    return value


@functools.lru_cache(maxsize=1)
def _installed_versions() -> dict[str, str]:
    # Read once per process: the installed distributions do not change during a run, and every host asks.
    from fapistrano.plugins import installed_plugins

    return {plugin.name: plugin.version for plugin in installed_plugins()}


def plugin_versions(names: Iterable[str]) -> dict[str, str]:
    """Each plugin's version: its distribution's, else its module's ``__version__``, else ``""``."""
    installed = _installed_versions()
    versions = {}
    for name in names:
        version = installed.get(name)
        if version is None:
            version = str(getattr(sys.modules.get(name), "__version__", ""))
        versions[name] = version
    return versions


def fingerprint(revision: str | None, config: Mapping[str, Any], plugins: Iterable[str], steps: Iterable[Any],
                release: str | None) -> dict[str, Any]:
    """The record of what shapes a release: ``{"fingerprint": …, "revision": …, "parts": {…}}``.

    ``parts`` holds one digest per setting (so a difference can be named),
    the plugins with their versions, one digest of the steps, and fap's
    version; ``fingerprint`` is the digest of them all. No value is written
    in clear but the revision, the plugins' names and versions.
    """
    settings = {name: _digest(_neutral(value, release)) for name, value in sorted(config.items()) if shapes_release(name)}
    step_list = [{"phase": s.phase, "command": _neutral(s.command, release), "once": s.once, "parallel": s.parallel}
                 for s in steps]
    parts = {
        "revision": revision or "",
        "settings": settings,
        "plugins": plugin_versions(plugins),
        "hooks": _digest(step_list),
        "fap": __version__,
    }
    return {"fingerprint": _digest(parts), "revision": revision or "", "parts": parts}


def of_context(ctx: Any, revision: str | None) -> dict[str, Any]:
    """:func:`fingerprint` of the release ``ctx`` works on, with ``revision`` in it."""
    target = ctx.target
    return fingerprint(revision, ctx.config, target.plugins, target.steps, ctx.release)


def differences(live: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """What differs between two records, named: ``revision``, ``setting environment``, ``plugins``, ``hooks``, ``fap``."""
    if live.get("fingerprint") == expected.get("fingerprint"):
        return []
    old, new = live.get("parts") or {}, expected.get("parts") or {}
    found = []
    if old.get("revision") != new.get("revision"):
        found.append("revision")
    old_settings, new_settings = old.get("settings") or {}, new.get("settings") or {}
    changed = sorted(n for n in {*old_settings, *new_settings} if old_settings.get(n) != new_settings.get(n))
    if changed:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        found.append(f"setting{'s' if len(changed) > 1 else ''} {shown}")
    for part in ("plugins", "hooks", "fap"):
        if old.get(part) != new.get(part):
            found.append({"hooks": "hooks: steps", "fap": "fap's version"}.get(part, part))
    return found or ["fingerprint"]


def record_path(path: str, release: str) -> str:
    """Where the record of ``release`` is kept: :data:`RECORDS_DIR` of the app's directory ``path``."""
    return f"{path.rstrip('/')}/{RECORDS_DIR}/{release}.json"


def write_script(path: str, releases_path: str, release: str, record: Mapping[str, Any]) -> str:
    """Shell text that writes ``record`` for ``release`` (whole or not at all), and removes the records of releases gone.

    The records live beside the releases, not in them: a release holds what
    its source shipped and nothing else (a test comparing a release with the
    repository, a web root listing its files, see no file of fap's).
    """
    text = json.dumps(record, sort_keys=True, indent=1)
    return (
        f"dir={shlex.quote(f'{path.rstrip(chr(47))}/{RECORDS_DIR}')}; releases={shlex.quote(releases_path)};"
        f" file={shlex.quote(record_path(path, release))}\n"
        'mkdir -p "$dir" || exit 1\n'
        f"printf '%s\\n' {shlex.quote(text)} > \"$file.tmp\" && mv -f \"$file.tmp\" \"$file\" || exit 1\n"
        'for old in "$dir"/*.json; do\n'
        '  name=${old##*/}; name=${name%.json}\n'
        '  [ -e "$old" ] && [ "$old" != "$file" ] && [ ! -d "$releases/$name" ] && rm -f "$old"\n'
        "done\n"
        "exit 0\n"
    )


def read_script(path: str, release: str) -> str:
    """Shell text that prints the record of ``release``, or nothing when it has none."""
    return (f"file={shlex.quote(record_path(path, release))}\n"
            'if [ -f "$file" ]; then head -c 200000 "$file"; fi\nexit 0\n')


def parse_record(text: str) -> dict[str, Any] | None:
    """The record a release's file holds; ``None`` when there is none or it is not one."""
    try:
        record = json.loads(text) if text.strip() else None
    except ValueError:
        return None
    return record if isinstance(record, dict) and "fingerprint" in record else None


@dataclass
class SourceAnswer:
    """What the source plugin said a deploy would ship: the revision, or why it cannot tell."""

    revision: str | None
    problem: str | None = None


def source_revision(caller: Any, ctx: Any) -> SourceAnswer:
    """Ask ``fap_source_revision``: a revision, or the line saying why none (no source plugin, or it cannot tell)."""
    from fapistrano.errors import FapError, PluginFailure

    try:
        revision = caller(ctx=ctx)
    except PluginFailure as failure:
        error = failure.error if isinstance(failure.error, FapError) else failure
        return SourceAnswer(None, _without_host(str(error), ctx.host))
    except FapError as error:
        return SourceAnswer(None, _without_host(str(error), ctx.host))
    if revision is None or not str(revision).strip():
        plugins = ", ".join(ctx.target.plugins) or "none"
        return SourceAnswer(None, f"no plugin of {ctx.stage}/{ctx.role} tells which revision a deploy would ship"
                                  f" (plugins: {plugins}; the git plugin does)")
    return SourceAnswer(" ".join(str(revision).split()))


def _without_host(message: str, host: str) -> str:
    prefix = f"{host}: "
    return message[len(prefix):] if message.startswith(prefix) else message
