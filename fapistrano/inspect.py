"""Read-only views of a deploy: ``fap check``, ``fap releases``, ``fap config``, ``fap plugins``.

Nothing here changes a host. ``check`` and ``releases`` cost one round trip
per host (plus whatever plugins' ``fap_check`` hooks run); ``config`` and
``plugins`` never connect. The functions return plain data; rendering is
separate so that tests and ``--log-json`` see the same facts the screen does.
"""

from __future__ import annotations

import datetime as _dt
import posixpath
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fapistrano import layout
from fapistrano.config import COMMANDS, RUN_NAMES, DeployFile, Target
from fapistrano.errors import CommandFailed, ConfigError, FapError
from fapistrano.masking import MASK, Masker

q = shlex.quote

# ---------------------------------------------------------------------------
# fap check
# ---------------------------------------------------------------------------


@dataclass
class HostCheck:
    """What ``fap check`` found on one host: problems (empty when fine) and facts."""

    host: str
    target: str
    problems: list[str] = field(default_factory=list)
    current: str | None = None
    releases: int = 0
    reachable: bool = True

    @property
    def ok(self) -> bool:
        return not self.problems


def check_script(config: Mapping[str, Any]) -> str:
    """One round trip: writability of the layout's directories, linked files, then the read-only probe.

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
    probe = layout.probe_script(config["path"], config["current_path"], config["releases_path"], None)
    return "\n".join(lines) + "\n" + probe


def read_check(host: str, target: str, config: Mapping[str, Any], output: str) -> HostCheck:
    """Turn what :func:`check_script` printed into a :class:`HostCheck`."""
    result = HostCheck(host, target)
    user = ""
    blocked: dict[str, list[str]] = {}
    for line in output.splitlines():
        key, _, value = line.partition("=")
        if key == "notwritable":
            setting, _, directory = value.partition(" ")
            blocked.setdefault(directory, []).append(setting)
        elif key == "missing":
            result.problems.append(f"missing linked file: {value} (put it in shared_path before deploying)")
        elif key == "whoami":
            user = value
    who = f" by {user}" if user else ""
    result.problems[:0] = [
        f"not writable{who}: {directory} (needed for {', '.join(settings)} = {config[settings[0]]})"
        for directory, settings in blocked.items()
    ]
    state = layout.parse_probe(output)
    if state.lock_owner:
        result.problems.append(f"locked by {state.lock_owner} (run 'fap unlock' if that run is gone)")
    result.current = state.current
    result.releases = len(state.releases)
    return result


def plugin_problems(checks: Iterable[tuple[str, Any]], ctx: Any) -> list[str]:
    """Call each plugin's ``fap_check`` (from :meth:`Plugins.one_by_one`) with ``ctx``; each problem names its plugin.

    The plugins are asked one by one so that a problem, or a crash, is
    attributed to the plugin that reported it, and one crashing check does
    not hide the others.
    """
    from fapistrano.plugins import PluginFailure

    problems: list[str] = []
    for name, check in checks:
        try:
            (found,) = check(ctx=ctx) or [None]
        except PluginFailure as failure:
            detail = str(failure) if isinstance(failure.error, FapError) else f"{type(failure.error).__name__}: {failure.error}"
            problems.append(f"{name}: check failed: {detail}")
            continue
        if found is None:
            continue
        if isinstance(found, str) or not isinstance(found, Iterable):
            found = [found]
        for problem in found:
            text = " ".join(str(problem).split())
            if text:
                problems.append(text if text.startswith(f"{name}:") else f"{name}: {text}")
    return problems


def run_check(runner: Any, members: Sequence[Any]) -> list[HostCheck]:
    """``fap check``: connect to every member, run the core's checks and each plugin's ``fap_check``.

    An unreachable host is a problem of that host; the others are still
    checked. Connections are closed before returning.
    """
    from fapistrano.context import Context
    from fapistrano.runner import describe, key

    results = {key(m): HostCheck(m.name, m.label) for m in members}
    try:
        failures = runner.connect(members)
        for member in members:
            if key(member) in failures:
                result = results[key(member)]
                result.reachable = False
                result.problems.append(describe(failures[key(member)], member.name))

        def work(member: Any) -> None:
            config = member.target.config
            output = member.connection.run(check_script(config))
            if output.exit_code != 0:
                raise CommandFailed(member.name, "(check) reading the layout", output.exit_code, runner.masker(output.stderr))
            found = read_check(member.name, member.label, config, output.stdout)
            member.state = layout.parse_probe(output.stdout)
            ctx = Context(member.target, member.connection, runner.reporter, masker=runner.masker, flow="check",
                          previous_release=member.state.current, host_state=member.state)
            ctx.phase = "check"
            member.ctx = ctx
            found.problems += plugin_problems(runner.plugins.one_by_one("fap_check", member.target.plugins), ctx)
            found.problems = [runner.masker(p) for p in found.problems]
            results[key(member)] = found

        errors = runner.on_each([m for m in members if key(m) not in failures], work)
        for member in members:
            if key(member) in errors:
                results[key(member)].problems.append(runner.masker(describe(errors[key(member)], member.name)))
    finally:
        runner.close(members)
    return [results[key(m)] for m in members]


def check_summary(checks: Sequence[HostCheck]) -> str:
    """The closing line of ``fap check``."""
    good = sum(1 for c in checks if c.ok)
    verdict = "ok" if good == len(checks) else "FAILED"
    return f"fap check: {verdict}: {good} of {len(checks)} host{'s' if len(checks) != 1 else ''} ready to deploy"


def check_ok_line(check: HostCheck) -> str:
    """What ``fap check`` says about a host that passed."""
    current = check.current or "none yet"
    return f"ok (current {current}, {check.releases} release{'s' if check.releases != 1 else ''}, not locked)"


# ---------------------------------------------------------------------------
# fap releases
# ---------------------------------------------------------------------------

_SHA = re.compile(r"[0-9a-fA-F]{7,64}\Z")


def releases_script(config: Mapping[str, Any]) -> str:
    """One round trip: the read-only probe (current, releases, the lock)."""
    return layout.probe_script(config["path"], config["current_path"], config["releases_path"], None)


@dataclass
class HostReleases:
    """One host's releases: the probe's state and a revision per release (when a plugin knows it)."""

    host: str
    state: layout.HostState
    revisions: dict[str, str] = field(default_factory=dict)


def read_releases(host: str, output: str) -> HostReleases:
    """Turn what :func:`releases_script` printed into a :class:`HostReleases` (revisions not asked yet)."""
    return HostReleases(host, layout.parse_probe(output))


def ask_revisions(caller: Any, ctx: Any, releases: Iterable[str]) -> dict[str, str]:
    """Ask ``fap_release_revision`` (first answer wins) for each release; releases nobody answers for are left out."""
    revisions = {}
    for release in releases:
        revision = caller(ctx=ctx, release=release)
        if revision is not None and str(revision).strip():
            revisions[release] = " ".join(str(revision).split())
    return revisions


def short_revision(revision: str) -> str:
    """A git sha shortened to 12 characters; anything else as written (at most 40)."""
    if _SHA.match(revision) and len(revision) > 12:
        return revision[:12]
    return revision if len(revision) <= 40 else revision[:39] + "…"


def release_time(name: str) -> _dt.datetime | None:
    """When a release was made, from its name (``%y%m%d-%H%M%S``, the deployer's local time)."""
    try:
        return _dt.datetime.strptime(name[:13], layout.RELEASE_FORMAT)
    except ValueError:
        return None


def age_text(name: str, now: _dt.datetime) -> str:
    """``3d 4h``, ``5h 12m``, ``12m``, ``40s``: how long ago release ``name`` was made."""
    made = release_time(name)
    if made is None:
        return "?"
    seconds = int((now - made).total_seconds())
    if seconds < 0:
        return "future"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m"
    return f"{seconds}s"


@dataclass
class ReleaseRow:
    """One release of a target, across its hosts."""

    release: str
    revision: str
    age: str
    status: str
    hosts: str


def run_releases(runner: Any, members: Sequence[Any]) -> tuple[dict[str, list[HostReleases]], list[str]]:
    """``fap releases``: one round trip per member, then each release's revision from the plugins.

    Returns hosts by target and one error line per host that could not answer.
    """
    from fapistrano.context import Context
    from fapistrano.runner import describe, key

    found: dict[str, HostReleases] = {}
    try:
        failures = runner.connect(members)

        def work(member: Any) -> None:
            output = member.connection.run(releases_script(member.target.config))
            if output.exit_code != 0:
                raise CommandFailed(member.name, "(releases) listing releases", output.exit_code, runner.masker(output.stderr))
            host = read_releases(member.name, output.stdout)
            ctx = Context(member.target, member.connection, runner.reporter, masker=runner.masker, flow="releases",
                          previous_release=host.state.current, host_state=host.state)
            ctx.phase = "releases"
            caller = runner.plugins.caller("fap_release_revision", member.target.plugins)
            host.revisions = ask_revisions(caller, ctx, [*host.state.releases, *host.state.unfinished])
            found[key(member)] = host

        failures.update(runner.on_each([m for m in members if key(m) not in failures], work))
    finally:
        runner.close(members)
    by_target: dict[str, list[HostReleases]] = {}
    for member in members:
        by_target.setdefault(member.label, [])
        if key(member) in found:
            by_target[member.label].append(found[key(member)])
    errors = [f"{m.name}: {runner.masker(describe(failures[key(m)], m.name))}" for m in members if key(m) in failures]
    return by_target, errors


def release_rows(hosts: Sequence[HostReleases], now: _dt.datetime) -> list[ReleaseRow]:
    """The table of one target: every release any host holds, newest first."""
    names = sorted({r for h in hosts for r in (*h.state.releases, *h.state.unfinished)}, key=layout.release_key, reverse=True)
    everyone = [h.host for h in hosts]
    rows = []
    for name in names:
        holders = [h.host for h in hosts if name in h.state.releases or name in h.state.unfinished]
        current_on = [h.host for h in hosts if h.state.current == name]
        unfinished_on = [h.host for h in hosts if name in h.state.unfinished]
        revisions = sorted({h.revisions[name] for h in hosts if name in h.revisions})
        if current_on and current_on == everyone:
            status = "current"
        elif current_on:
            status = f"current on {', '.join(current_on)}"
        elif unfinished_on:
            status = "unfinished" + ("" if unfinished_on == holders else f" on {', '.join(unfinished_on)}")
        else:
            status = ""
        rows.append(ReleaseRow(
            release=name,
            revision=" / ".join(short_revision(r) for r in revisions) or "-",
            age=age_text(name, now),
            status=status,
            hosts="all" if holders == everyone else ", ".join(holders),
        ))
    return rows


def current_disagreement(target: str, hosts: Sequence[HostReleases]) -> str | None:
    """A warning when the hosts of one stage/role do not all point ``current`` at the same release."""
    by_current: dict[str, list[str]] = {}
    for host in hosts:
        by_current.setdefault(host.state.current or "nothing", []).append(host.host)
    if len(by_current) < 2:
        return None
    parts = "; ".join(f"{', '.join(names)} -> {current}" for current, names in by_current.items())
    return f"hosts of {target} disagree on current: {parts}"


def broken_currents(hosts: Sequence[HostReleases]) -> list[str]:
    """A warning for each host whose ``current`` points at a release it does not hold (finished)."""
    warnings = []
    for host in hosts:
        current = host.state.current
        if current and current not in host.state.releases:
            what = "an unfinished release" if current in host.state.unfinished else "a release that is not there"
            warnings.append(f"{host.host}: current points to {current}, {what}")
    return warnings


# ---------------------------------------------------------------------------
# fap config
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingRow:
    """One resolved setting as ``fap config`` shows it."""

    name: str
    value: str
    origin: str


def value_text(value: Any) -> str:
    """A setting's value as YAML flow would write it: ``null``, ``true``, ``[a, b]``, ``{K: v}``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else "''"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {value_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    return str(value)


def setting_rows(target: Target, secret_names: Iterable[str], masker: Masker) -> list[SettingRow]:
    """Every resolved setting of ``target``: value (secrets masked) and where it came from."""
    secrets = set(secret_names) | set(target.config.get("mask") or [])
    rows = []
    for name, value in target.config.items():
        if name in RUN_NAMES:
            continue
        if name in secrets and value not in (None, "", [], {}):
            shown = MASK
        else:
            shown = masker(value_text(value))
        rows.append(SettingRow(name, shown, str(target.origins.get(name, "core default"))))
    return rows


# ---------------------------------------------------------------------------
# fap plugins
# ---------------------------------------------------------------------------


@dataclass
class PluginInfo:
    """A plugin as ``fap plugins`` lists it."""

    name: str
    distribution: str
    version: str
    module: str
    enabled: str = ""
    hooks: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    docs: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    error: str = ""


def describe_plugin(name: str, where: str, search_path: str | None = None) -> PluginInfo:
    """Load plugin ``name`` alone (a fresh manager) and read its hooks and settings."""
    from fapistrano.plugins import Plugins

    info = PluginInfo(name=name, distribution="-", version="-", module=name)
    plugins = Plugins()
    try:
        plugins.load([(name, where)], search_path=search_path)
        info.settings = dict(dict(plugins.defaults()).get(name) or {})
        info.docs = plugins.docs()
        info.secrets = plugins.secret_settings()
    except ConfigError as error:
        info.error = str(error).removeprefix(f"{where}: ")
        return info
    info.hooks = plugins.implemented_hooks(name)
    return info


def enabled_text(name: str, uses: Mapping[str, set[tuple[str, str, str]]], everywhere: set[tuple[str, str, str]]) -> str:
    """``yes``, ``no``, or where: ``yes (fap deploy, rollback; on production/web)``."""
    mine = uses.get(name, set())
    if not mine:
        return "no"
    if mine == everywhere:
        return "yes"
    parts = []
    commands = sorted({c for _, _, c in mine}, key=COMMANDS.index)
    if len(commands) < len(COMMANDS):
        parts.append("fap " + ", ".join(commands))
    targets = sorted({(s, r) for s, r, _ in mine})
    if len(targets) < len({(s, r) for s, r, _ in everywhere}):
        parts.append("on " + ", ".join(f"{s}/{r}" for s, r in targets))
    return f"yes ({'; '.join(parts)})"


def plugin_uses(deployfile: DeployFile) -> tuple[dict[str, set[tuple[str, str, str]]], set[tuple[str, str, str]], dict[str, str]]:
    """Which plugin deploy.yml enables for which (stage, role, command), and where each is listed."""
    uses: dict[str, set[tuple[str, str, str]]] = {}
    everywhere: set[tuple[str, str, str]] = set()
    listed: dict[str, str] = {}
    for stage, roles in deployfile.blocks.items():
        for role in roles:
            for command in COMMANDS:
                everywhere.add((stage, role, command))
                for name, where in deployfile.plugins_for(stage, role, command):
                    uses.setdefault(name, set()).add((stage, role, command))
                    listed.setdefault(name, where)
    if not deployfile.blocks:
        # No targets yet: the top-level plugins: list still says what is enabled.
        for name, where in _top_plugins(deployfile):
            uses.setdefault(name, set()).add(("", "", "deploy"))
            listed.setdefault(name, where)
        everywhere = {("", "", "deploy")}
    return uses, everywhere, listed


def _top_plugins(deployfile: DeployFile) -> list[tuple[str, str]]:
    names = deployfile.data.get("plugins") or []
    if isinstance(names, str):
        names = [names]
    return [(n, deployfile.where(deployfile.data, "plugins")) for n in names if isinstance(n, str)]


def plugin_infos(deployfile: DeployFile | None) -> list[PluginInfo]:
    """Every installed plugin, then modules deploy.yml names that are not installed distributions."""
    from fapistrano.plugins import installed_plugins

    uses: dict[str, set[tuple[str, str, str]]] = {}
    everywhere: set[tuple[str, str, str]] = set()
    listed: dict[str, str] = {}
    search_path = None
    if deployfile is not None:
        uses, everywhere, listed = plugin_uses(deployfile)
        search_path = str(deployfile.path.parent.resolve())
    infos = []
    seen = set()
    for installed in installed_plugins():
        if installed.name in seen:
            continue
        seen.add(installed.name)
        info = describe_plugin(installed.name, f"entry point {installed.name} = {installed.value}")
        info.distribution, info.version, info.module = installed.distribution, installed.version, installed.value
        if deployfile is not None:
            info.enabled = enabled_text(installed.name, uses, everywhere)
        infos.append(info)
    for name, where in listed.items():
        if name in seen:
            continue
        seen.add(name)
        info = describe_plugin(name, where, search_path)
        info.distribution = f"module listed at {where}"
        info.enabled = enabled_text(name, uses, everywhere)
        infos.append(info)
    return infos


def builtin_steps() -> list[tuple[str, list[str]]]:
    """The core's own hookimpls (always on), with the hooks each implements."""
    from fapistrano.plugins import BUILTIN_PLUGINS, Plugins

    plugins = Plugins()
    return [(name, plugins.implemented_hooks(name)) for name in BUILTIN_PLUGINS]


__all__ = [
    "HostCheck",
    "HostReleases",
    "PluginInfo",
    "ReleaseRow",
    "SettingRow",
    "age_text",
    "broken_currents",
    "builtin_steps",
    "check_script",
    "check_summary",
    "run_check",
    "run_releases",
    "current_disagreement",
    "plugin_infos",
    "plugin_problems",
    "read_check",
    "read_releases",
    "release_rows",
    "releases_script",
    "ask_revisions",
    "setting_rows",
    "value_text",
]
