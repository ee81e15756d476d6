"""``fap deploy --if-changed``: is what a deploy would make already live on every selected host?

Before the deploy takes its lock: one probe per host, the source plugin's
revision to ship (:func:`~fapistrano.hookspecs.fap_source_revision`), the
live release's record (in :data:`fapistrano.changes.RECORDS_DIR`), and the
record the new release would get. Same on every host: nothing to do. Any
difference, a host that cannot tell or does not answer: the deploy goes on
and says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fapistrano import changes, flows
from fapistrano.compose import Composition
from fapistrano.flows import FlowName
from fapistrano.hosts import Member, key
from fapistrano.plugins import describe


@dataclass
class Verdict:
    """Whether the deploy is needed: ``live`` when not; else why it is (one line per reason)."""

    live: bool
    reasons: list[str] = field(default_factory=list)
    release: str = ""
    revision: str = ""
    hosts: int = 0

    def line(self) -> str:
        """What fap says when nothing is to do."""
        revision = changes_short(self.revision)
        count = f"{self.hosts} host{'s' if self.hosts != 1 else ''}"
        return f"already live: {self.release}{f' ({revision})' if revision else ''} on {count}, nothing to do"


def changes_short(revision: str) -> str:
    from fapistrano.commands.releases import short_revision

    return short_revision(revision) if revision else ""


def check(fleet: Composition) -> Verdict:
    """Compare, on every selected host, the release a deploy would make with the live one.

    Leaves the hosts connected (the deploy that may follow reuses the
    connections) and changes nothing on them.
    """
    runner, members = fleet.runner, fleet.members
    failures = runner.connect(members, probe=True)
    if failures:
        return Verdict(False, [f"{m.name}: {describe(failures[key(m)], m.name)}" for m in members if key(m) in failures])
    release = flows.release_for_run([m.state for m in members if m.state is not None])
    runner.make_contexts(members, lambda member: (release, None), FlowName.RELEASE)
    reasons: dict[str, str] = {}
    lives: dict[str, tuple[str, str]] = {}

    def compare(member: Member) -> None:
        ctx, state = member.ctx, member.state
        assert ctx is not None and state is not None
        ctx.phase = "if-changed"
        if not state.current:
            reasons[key(member)] = "no release is live"
            return
        if state.freeze is not None:
            # A freeze refuses a deploy, a no-op one too: the deploy says so (exit 5), not "nothing to do".
            reasons[key(member)] = "frozen"
            return
        answer = changes.source_revision(runner.plugins.caller("fap_source_revision", member.target.plugins), ctx)
        if answer.revision is None:
            reasons[key(member)] = f"cannot tell which revision a deploy would ship: {answer.problem}"
            return
        recorded = changes.parse_record(ctx.run(changes.read_script(ctx.config["path"], state.current), readonly=True))
        if recorded is None:
            reasons[key(member)] = f"live release {state.current} records no fingerprint (made by an older fap)"
            return
        differ = changes.differences(recorded, changes.of_context(ctx, answer.revision))
        if differ:
            reasons[key(member)] = f"changed since live release {state.current}: {', '.join(differ)}"
            return
        lives[key(member)] = (state.current, answer.revision)

    for name, error in runner.on_each(members, compare).items():
        reasons[name] = f"cannot tell: {describe(error, '')}"
    # The contexts were made for a release name the deploy will choose again (the clock moves on).
    for member in members:
        member.ctx = None
    if reasons:
        by_text: dict[str, list[str]] = {}
        for member in members:
            if key(member) in reasons:
                by_text.setdefault(reasons[key(member)], []).append(member.name)
        return Verdict(False, [f"{', '.join(hosts)}: {text}" for text, hosts in by_text.items()])
    releases = sorted({release for release, _ in lives.values()})
    revisions = sorted({revision for _, revision in lives.values()})
    return Verdict(True, [], ", ".join(releases), ", ".join(revisions), len({m.name for m in members}))


def already_live(fleet: Composition) -> bool:
    """``--if-changed``: say "already live: …" and return ``True`` when nothing is to do; else announce why the deploy goes on."""
    verdict = check(fleet)
    if verdict.live:
        fleet.close()
        fleet.console.print(verdict.line(), markup=False, highlight=False, soft_wrap=True)
        return True
    for reason in verdict.reasons:
        fleet.announce(f"--if-changed: deploying: {reason}")
    return False
