"""``fap pending``: per target, what runs, what a deploy would ship now, and the commits between.

Read only and without the lock: one probe per host, then the source plugin's
answers (:func:`~fapistrano.hookspecs.fap_release_revision` for the live
release, :func:`~fapistrano.hookspecs.fap_source_revision` for what a deploy
would ship, :func:`~fapistrano.hookspecs.fap_source_commits` once per group
of hosts that run the same revision). Returns plain data; the command line
renders it as text or JSON lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from fapistrano import changes, freeze
from fapistrano.commands.wiring import exit_with, fleet_command
from fapistrano.flows import FlowName
from fapistrano.hosts import Member, key
from fapistrano.options import Options

if TYPE_CHECKING:  # imported where the command runs: fap --help stays light
    from fapistrano.compose import Composition

#: At most this many commits are listed per group (the count says how many there are).
COMMIT_LIMIT = 50


@dataclass
class HostAnswer:
    """One host: its live release and revision, and what a deploy would ship there."""

    host: str
    release: str | None
    live: str | None
    ship: changes.SourceAnswer


@dataclass
class Group:
    """Hosts of one target that run the same revision and would get the same one."""

    hosts: list[str]
    release: str | None
    live: str | None
    ship: str | None
    #: ``"up to date"``, ``"pending"``, ``"nothing live"``, ``"unknown"`` (fap cannot tell: see ``reason``).
    status: str = "unknown"
    reason: str = ""
    commits: list[str] = field(default_factory=list)
    count: int = 0
    #: A host of the group, asked for the commits.
    member: Any = None
    #: What its hosts answered, the same for each: (release, live revision, revision to ship, why none).
    answered: tuple[Any, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"hosts": self.hosts, "release": self.release, "live": self.live, "ship": self.ship,
                "status": self.status, "reason": self.reason or None, "count": self.count, "commits": self.commits}


def every_host(members: list[Member]) -> list[Member]:
    """The composition's host filter for a read-only command run with a deploy's plugins: every selected host.

    (Given a filter, the fleet does not refuse two targets sharing a path: reading them is harmless.)
    """
    return members


def pending(fleet: Composition) -> tuple[dict[str, list[Group]], list[str]]:
    """Groups of hosts by target, and one error line per host that could not answer."""
    from fapistrano.plugins import describe

    runner, members = fleet.runner, fleet.members
    answers: dict[str, HostAnswer] = {}
    try:
        failures = runner.connect(members, probe=True)
        answered = [m for m in members if key(m) not in failures]
        runner.make_contexts(answered, lambda member: (None, None), FlowName.PENDING)

        def ask(member: Member) -> None:
            ctx, state = member.ctx, member.state
            assert ctx is not None and state is not None
            ctx.phase = "pending"
            live = ctx.revision(state.current) if state.current else None
            ship = changes.source_revision(runner.plugins.caller("fap_source_revision", member.target.plugins), ctx)
            answers[key(member)] = HostAnswer(member.name, state.current, live, ship)

        failures.update(runner.on_each(answered, ask))
        by_target = _groups(members, answers)
        to_ask = [g for groups in by_target.values() for g in groups if g.status == "pending"]
        by_member = {key(g.member): g for g in to_ask}

        def commits(member: Member) -> None:
            group = by_member[key(member)]
            assert member.ctx is not None and group.live and group.ship
            caller = runner.plugins.caller("fap_source_commits", member.target.plugins)
            try:
                answer = caller(ctx=member.ctx, since=group.live, until=group.ship, limit=COMMIT_LIMIT)
            except Exception as error:  # noqa: BLE001 - the plugin's reason is the group's line, not a failure of the command
                group.status, group.reason = "unknown", _reason(error, member.name)
                return
            if answer is None:
                group.status = "unknown"
                group.reason = f"no plugin of {member.label} lists the commits between two revisions"
                return
            lines, count = answer
            group.commits, group.count = [" ".join(str(line).split()) for line in lines][:COMMIT_LIMIT], int(count)

        for name, error in runner.on_each([g.member for g in to_ask], commits).items():
            group = by_member[name]
            group.status, group.reason = "unknown", _reason(error, group.member.name)
    finally:
        runner.close(members)
    errors = [f"{m.name}: {runner.masker(describe(failures[key(m)], m.name))}" for m in members if key(m) in failures]
    return by_target, errors


def _reason(error: BaseException, host: str) -> str:
    from fapistrano.plugins import describe

    text = describe(error, host)
    return text[len(host) + 2:] if text.startswith(f"{host}: ") else text


def _groups(members: list[Member], answers: dict[str, HostAnswer]) -> dict[str, list[Group]]:
    by_target: dict[str, list[Group]] = {}
    for member in members:
        groups = by_target.setdefault(member.label, [])
        answer = answers.get(key(member))
        if answer is None:
            continue
        same = (answer.release, answer.live, answer.ship.revision, answer.ship.problem)
        for group in groups:
            if group.answered == same:
                group.hosts.append(answer.host)
                break
        else:
            groups.append(_group(member, answer))
    for groups in by_target.values():
        for group in groups:
            if group.status == "unknown" and not group.reason:
                group.reason = _why_unknown(group)
    return by_target


def _group(member: Member, answer: HostAnswer) -> Group:
    group = Group([answer.host], answer.release, answer.live, answer.ship.revision, member=member,
                  answered=(answer.release, answer.live, answer.ship.revision, answer.ship.problem))
    if answer.ship.problem:
        group.reason = f"cannot tell which revision a deploy would ship: {answer.ship.problem}"
    elif not answer.release:
        group.status = "nothing live"
    elif answer.live is None:
        pass  # _why_unknown says so
    elif answer.live == answer.ship.revision:
        group.status = "up to date"
    else:
        group.status = "pending"
    return group


def _why_unknown(group: Group) -> str:
    return (f"cannot tell what changed: release {group.release} holds no revision the source plugin can read"
            " (no revision file, no log line)")


def short(revision: str | None) -> str:
    """A revision as shown: a git sha cut to 12 characters."""
    from fapistrano.commands.releases import short_revision

    return short_revision(revision) if revision else "-"


def render(label: str, count: int, groups: list[Group]) -> list[str]:
    """The lines of one target: one group on the target's line; several, a line each under it."""
    hosts_text = f"{count} host{'s' if count != 1 else ''}"
    if not groups:
        return [f"{label} ({hosts_text}): no host answered"]
    if len(groups) == 1:
        head, *body = _group_lines(groups[0])
        return [f"{label} ({hosts_text}): {head}", *body]
    lines = [f"{label} ({hosts_text}): hosts disagree"]
    for group in groups:
        head, *body = _group_lines(group)
        lines += [f"  {', '.join(group.hosts)}: {head}", *(f"  {line}" for line in body)]
    return lines


def _group_lines(group: Group) -> list[str]:
    live = f"{short(group.live)} (release {group.release})"
    if group.status == "up to date":
        return [f"up to date: {live} is what a deploy would ship"]
    if group.status == "nothing live":
        return [f"nothing deployed yet; a deploy would ship {short(group.ship)}"]
    if group.status == "unknown":
        where = f"live {live}" if group.live else f"live release {group.release}" if group.release else "nothing live"
        return [f"{where}: {group.reason}"]
    noun = "commit" if group.count == 1 else "commits"
    lines = [f"{group.count} {noun} to ship: live {live} -> {short(group.ship)}"]
    lines += [f"  {line}" for line in group.commits]
    if group.count > len(group.commits):
        lines.append(f"  … and {group.count - len(group.commits)} more")
    return lines


def show(options: Options, stage: str | None, role: str | None, overrides: list[str], as_json: bool) -> int:
    """``fap pending``: print each target's lines (or one JSON object per target), the hosts that failed; the exit code."""
    from fapistrano.compose import Composition
    from fapistrano.errors import ExitCode
    from fapistrano.ui import json_line

    # A deploy's plugins answer (deploy_plugins: included); every selected host, read only.
    with Composition(options.plain(), stage, role, overrides, "deploy", hosts=every_host) as fleet:
        by_target, errors = pending(fleet)
        fleet.close()
    for label, groups in by_target.items():
        count = sum(1 for m in fleet.members if m.label == label)
        if as_json:
            stage_name, _, role_name = label.partition("/")
            record = {"stage": stage_name, "role": role_name, "hosts": count, "groups": [g.as_json() for g in groups]}
            click.echo(json_line(fleet.masker.hide_in(record)))
            continue
        for line in render(label, count, groups):
            # A commit's subject is text as written: ":tada:" stays ":tada:".
            fleet.console.print(fleet.masker(line), markup=False, highlight=False, soft_wrap=True, emoji=False)
        # Pending changes a freeze holds back: said, as fap releases says it.
        frozen = freeze.notes([(m.name, m.state) for m in fleet.members if m.label == label and m.state is not None])
        for warning in frozen:
            fleet.console.print(f"warning: {fleet.masker(warning)}", style="yellow", markup=False, highlight=False,
                                soft_wrap=True)
    for error in errors:
        fleet.errors.print(f"fap: error: {error}", style="red", markup=False, highlight=False, soft_wrap=True)
    return ExitCode.FAILED if errors else ExitCode.OK


@fleet_command("pending", "Show, per target, the revision live, the one a deploy would ship now and the commits"
               " between. Read only.", short_help="Show what a deploy would ship: the commits not yet live.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per target per line.")
def command(options: Options, stage: str | None, role: str | None, overrides: list[str], as_json: bool) -> None:
    exit_with(show(options, stage, role, overrides, as_json))
