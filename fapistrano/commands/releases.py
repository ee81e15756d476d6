"""``fap releases``: each target's releases — revision, age, which is current — and where hosts disagree.

One probe per host, then ``fap_release_revision`` for each release; nothing
changes a host. :func:`releases` returns plain data; :func:`render` prints the tables.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from fapistrano import layout
from fapistrano.commands.wiring import exit_with, fleet_command
from fapistrano.errors import ExitCode
from fapistrano.flows import FlowName
from fapistrano.hosts import Member, key
from fapistrano.migrations import MARK_KIND, back_text, migrated_back_releases, migrated_releases
from fapistrano.options import Options

if TYPE_CHECKING:  # what they name is imported when the command runs: fap --help stays fast
    from fapistrano.compose import Composition

_SHA = re.compile(r"[0-9a-fA-F]{7,64}\Z")


@dataclass
class HostReleases:
    """One host's releases: the probe's state and a revision per release (when a plugin knows it)."""

    host: str
    state: layout.HostState
    revisions: dict[str, str] = field(default_factory=dict)


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


def releases(fleet: Composition) -> tuple[dict[str, list[HostReleases]], list[str]]:
    """One probe per host, then each release's revision from the plugins.

    Returns hosts by target and one error line per host that could not answer.
    """
    runner, members = fleet.runner, fleet.members
    found: dict[str, HostReleases] = {}
    with fleet.connected(FlowName.RELEASES) as hosts:

        def work(member: Member) -> None:
            assert member.ctx is not None and member.state is not None
            member.ctx.phase = "releases"
            host = HostReleases(member.name, member.state)
            caller = runner.plugins.caller("fap_release_revision", member.target.plugins)
            host.revisions = ask_revisions(caller, member.ctx, [*host.state.releases, *host.state.unfinished])
            found[key(member)] = host

        hosts.on_each(work)
    by_target: dict[str, list[HostReleases]] = {}
    for member in members:
        by_target.setdefault(member.label, [])
        if key(member) in found:
            by_target[member.label].append(found[key(member)])
    return by_target, hosts.failure_lines()


@dataclass
class ReleaseFacts:
    """One release of a target: on which of its hosts it is, is current, is unfinished, carries each mark."""

    release: str
    #: Every revision the hosts' plugins gave for it (one, unless the hosts disagree).
    revisions: list[str]
    on: list[str]
    current_on: list[str]
    unfinished_on: list[str]
    bad_on: list[str]
    migrated_on: list[str]
    migrated_back_on: list[str]

    def as_json(self, target: str) -> dict[str, Any]:
        """``fap releases --json``: one object per release of a target."""
        return {"target": target, "release": self.release, "revisions": self.revisions, "hosts": self.on,
                "current_on": self.current_on, "unfinished_on": self.unfinished_on, "bad_on": self.bad_on,
                "migrated_on": self.migrated_on, "migrated_back_on": self.migrated_back_on}


def release_facts(hosts: Sequence[HostReleases]) -> list[ReleaseFacts]:
    """Every release any host of one target holds, newest first."""
    names = sorted({r for h in hosts for r in (*h.state.releases, *h.state.unfinished)}, key=layout.release_key, reverse=True)
    return [ReleaseFacts(
        release=name,
        revisions=sorted({h.revisions[name] for h in hosts if name in h.revisions}),
        on=[h.host for h in hosts if name in h.state.releases or name in h.state.unfinished],
        current_on=[h.host for h in hosts if h.state.current == name],
        unfinished_on=[h.host for h in hosts if name in h.state.unfinished],
        bad_on=[h.host for h in hosts if h.state.is_bad(name)],
        migrated_on=[h.host for h in hosts if MARK_KIND in h.state.marks.get(name, {})],
        migrated_back_on=[h.host for h in hosts if name in migrated_back_releases(h.state.marks)],
    ) for name in names]


def release_rows(hosts: Sequence[HostReleases], now: _dt.datetime) -> list[ReleaseRow]:
    """The table of one target: every release any host holds, newest first."""
    everyone = [h.host for h in hosts]
    rows = []
    for facts in release_facts(hosts):
        holders = facts.on
        if facts.current_on and facts.current_on == everyone:
            status = "current"
        elif facts.current_on:
            status = f"current on {', '.join(facts.current_on)}"
        elif facts.unfinished_on:
            status = "unfinished" + ("" if facts.unfinished_on == holders else f" on {', '.join(facts.unfinished_on)}")
        else:
            status = ""
        if facts.bad_on:
            bad = "bad" if facts.bad_on == holders else f"bad on {', '.join(facts.bad_on)}"
            status = f"{status}, {bad}" if status else bad
        if facts.migrated_on:
            word = "migrated back" if facts.migrated_back_on else "migrated"
            migrated = word if facts.migrated_on == holders else f"{word} on {', '.join(facts.migrated_on)}"
            status = f"{status}, {migrated}" if status else migrated
        rows.append(ReleaseRow(
            release=facts.release,
            revision=" / ".join(short_revision(r) for r in facts.revisions) or "-",
            age=age_text(facts.release, now),
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


def bad_notes(hosts: Sequence[HostReleases]) -> list[str]:
    """A line per release marked bad: who marked it, when and why (one line for the hosts that agree)."""
    from fapistrano.commands.rollback import bad_text

    by_text: dict[str, list[str]] = {}
    for host in hosts:
        for release in host.state.releases:
            mark = host.state.marked(release, "bad")
            if mark is not None:
                by_text.setdefault(f"{release} is marked bad {bad_text(mark)}", []).append(host.host)
    everyone = [h.host for h in hosts]
    return [text if names == everyone else f"{text} (on {', '.join(names)})" for text, names in by_text.items()]


def migration_notes(hosts: Sequence[HostReleases]) -> list[str]:
    """A line per release that migrated the schema: which step (or plugin) did it, on which host."""
    found: dict[str, list[str]] = {}
    for host in hosts:
        for release, migrations in migrated_releases(host.state.marks).items():
            for migration in migrations:
                if migration.describe() not in found.setdefault(release, []):
                    found[release].append(migration.describe())
    undone: dict[str, str] = {}
    for host in hosts:
        for release, record in migrated_back_releases(host.state.marks).items():
            undone.setdefault(release, f"; migrated back to {record.get('to') or '?'} by {back_text(record)}")
    return [f"{release} migrated the schema: {', '.join(found[release])}{undone.get(release, '')}"
            for release in sorted(found, key=layout.release_key, reverse=True)]


def render(fleet: Composition, by_target: dict[str, list[HostReleases]], errors: Sequence[str]) -> None:
    """One table per target, newest release first, then its warnings; then the hosts that did not answer."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from fapistrano.freeze import notes
    from fapistrano.ui import print_table

    moment = layout.now()
    for label, hosts in by_target.items():
        count = sum(1 for m in fleet.members if m.label == label)
        title = f"{label}: {len(hosts)} of {count} host{'s' if count != 1 else ''} answered" if len(hosts) < count else \
            f"{label} ({count} host{'s' if count != 1 else ''})"
        rows = release_rows(hosts, moment)
        frozen = notes([(h.host, h.state) for h in hosts])
        if not rows:
            fleet.console.print(f"{title}: no releases yet", markup=False, highlight=False)
            for warning in frozen:
                fleet.console.print(f"warning: {warning}", style="yellow", markup=False, highlight=False, soft_wrap=True)
            continue
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for column in ("release", "revision", "age", "status", "hosts"):
            table.add_column(column, no_wrap=column != "hosts")
        for row in rows:
            style = "bold green" if row.status == "current" else ("yellow" if row.status else "")
            # What the hosts hold is text, masked and printable (a revision is whatever a plugin answered).
            table.add_row(*(Text(fleet.masker(cell)) for cell in (row.release, row.revision, row.age, row.status, row.hosts)),
                          style=style)
        print_table(fleet.console, table)
        for note in bad_notes(hosts):
            fleet.console.print(fleet.masker(note), style="yellow", markup=False, highlight=False, soft_wrap=True)
        for note in migration_notes(hosts):
            fleet.console.print(fleet.masker(note), markup=False, highlight=False, soft_wrap=True)
        disagreement = current_disagreement(label, hosts)
        for warning in [*([disagreement] if disagreement else []), *broken_currents(hosts), *frozen]:
            fleet.console.print(fleet.masker(f"warning: {warning}"), style="yellow", markup=False, highlight=False,
                                soft_wrap=True)
    for error in errors:
        fleet.errors.print(f"fap: error: {error}", style="red", markup=False, highlight=False, soft_wrap=True)


def render_json(fleet: Composition, by_target: dict[str, list[HostReleases]], errors: Sequence[str]) -> None:
    """``--json``: one object per release per line on stdout, newest first by target; warnings and errors on stderr."""
    from fapistrano.freeze import notes
    from fapistrano.ui import json_line

    for label, hosts in by_target.items():
        for facts in release_facts(hosts):
            click.echo(json_line(fleet.masker.hide_in(facts.as_json(label))))
        disagreement = current_disagreement(label, hosts)
        for warning in [*([disagreement] if disagreement else []), *broken_currents(hosts),
                        *notes([(h.host, h.state) for h in hosts])]:
            fleet.errors.print(f"warning: {warning}", style="yellow", markup=False, highlight=False, soft_wrap=True)
    for error in errors:
        fleet.errors.print(f"fap: error: {error}", style="red", markup=False, highlight=False, soft_wrap=True)


@fleet_command("releases", "List each target's releases: revision, age, which is current; warn when hosts disagree.",
               short_help="List releases: revision, age, which is current.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per release per line: its target, revisions, and the hosts it is on, current on"
                   " and marked on.")
def command(options: Options, stage: str | None, role: str | None, overrides: list[str], as_json: bool) -> None:
    from fapistrano.compose import Composition

    with Composition(options.plain(), stage, role, overrides, "releases") as fleet:
        by_target, errors = releases(fleet)
        fleet.close()
    (render_json if as_json else render)(fleet, by_target, errors)
    exit_with(ExitCode.FAILED if errors else ExitCode.OK)
