"""Releases that changed the database schema, and a rollback that knows about them.

A step of ``hooks:`` with ``migrates: true`` (or a plugin calling
:meth:`fapistrano.Context.mark_migrated`) changes the schema when a release
is deployed. When the step succeeds, the run records it in its
:class:`Ledger` (``run.state.migrations``, shared by every host's thread),
and at the start of the next phase every host of the stage writes the
release's ``migrated`` mark (the built-in :mod:`fapistrano.builtin.migrations`).

``fap rollback`` reads those marks from the probe. Returning to a release
older than one that migrated (the current release, or one between them) is
refused before anything changes (exit 2, :func:`guard`), unless
``--across-migrations`` says the old code runs on the new schema, or a
``migrates_back: true`` step of ``reverting``/``reverted`` brings the schema
back first: it runs once, on one host, in the newest release that migrated
(its down-migrations are there), before the switch; its failure stops the
rollback with nothing switched.
"""

from __future__ import annotations

import posixpath
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fapistrano import flows, layout
from fapistrano.errors import ExitCode, FapError, one_line

#: The phases whose steps may say ``migrates: true``: a deploy's, from the code's arrival to the last but one
#: (every host writes the mark at the start of the next phase, so a migration in ``finished`` would mark no host).
MIGRATING_PHASES: tuple[str, ...] = tuple(
    str(phase) for phase in flows.RELEASE.phases[flows.RELEASE.phases.index(flows.Phase.UPDATING):-1])
#: The phases whose steps may say ``migrates_back: true``: a rollback's own, before the switch.
MIGRATING_BACK_PHASES: tuple[str, ...] = tuple(
    str(phase) for phase in flows.ROLLBACK.phases if flows.ROLLBACK.before_publishing(phase) and phase not in flows.RELEASE.phases)
#: The kind of release mark a migration writes.
MARK_KIND = "migrated"
#: The kind of release mark a ``migrates_back`` step writes on each release whose migration it undid.
BACK_MARK_KIND = "migrated_back"


class MigrationsCrossed(FapError):
    """A rollback would cross releases that migrated the schema: refused before anything changed (as bad input is)."""

    exit_code = ExitCode.BAD_INPUT


@dataclass(frozen=True)
class Migration:
    """One schema change of a release: what made it (a step, or a plugin's words), on which host, in which phase."""

    release: str
    #: ``step deploy.yml:14 (python3 manage.py migrate)``, or what the plugin told :meth:`~fapistrano.Context.mark_migrated`.
    what: str
    #: The host it ran on (``local`` for a ``local:`` step, on the deployer's machine).
    host: str
    phase: str
    #: The stage whose schema it changed; ``None`` for a ``local:`` step (every stage of the run).
    stage: str | None = None

    def as_record(self) -> dict[str, Any]:
        """What the mark file keeps of it (the release is the mark's own name)."""
        return {"what": self.what, "host": self.host, "phase": self.phase, "stage": self.stage}

    @classmethod
    def from_record(cls, release: str, record: Any) -> Migration | None:
        """A migration read back from a mark; ``None`` for a record that is not one (a file edited by hand)."""
        if not isinstance(record, Mapping) or not isinstance(record.get("what"), str):
            return None
        stage = record.get("stage")
        return cls(release, record["what"], str(record.get("host") or "?"), str(record.get("phase") or "?"),
                   stage if isinstance(stage, str) else None)

    def describe(self) -> str:
        """``step deploy.yml:14 (python3 manage.py migrate) on host1``."""
        return f"{self.what} on {self.host}"


def step_text(where: str, command: str) -> str:
    """How a step is named in a mark and in every message: its ``file:line`` and its command's first line."""
    return f"step {where} ({one_line(command, 60)})"


def mark_record(migrations: Sequence[Migration]) -> dict[str, Any]:
    """The content of a release's ``migrated`` mark: every migration of the release, in the order they ran."""
    return {"migrations": [m.as_record() for m in migrations]}


def read_mark(release: str, record: Any) -> list[Migration]:
    """The migrations a ``migrated`` mark holds (an unreadable one still says the release migrated)."""
    items = record.get("migrations") if isinstance(record, Mapping) else None
    found = [m for m in (Migration.from_record(release, item) for item in items or ()) if m is not None]
    return found or [Migration(release, "a migration (its mark names no step)", "?", "?")]


@dataclass(frozen=True)
class GoingBack:
    """What a rollback's ``migrates_back`` step does for one stage (or stage/role): where it runs, what it undoes."""

    #: The release returned to.
    target: str
    #: The releases crossed that migrated, newest first, each with its migrations.
    crossed: tuple[tuple[str, tuple[Migration, ...]], ...]
    #: ``--across-migrations``: the step does not run, the schema stays as it is.
    across: bool = False

    @property
    def run_in(self) -> str:
        """The newest release that migrated: its code holds the down-migrations of every migration crossed."""
        return self.crossed[0][0]


@dataclass
class Ledger:
    """One run's schema changes (a deploy) and its down-migration plan (a rollback), shared by every host's thread."""

    _recorded: list[Migration] = field(default_factory=list)
    #: A rollback's plan for its ``migrates_back`` steps, by once group (the stage, or ``stage/role``).
    going_back: dict[str, GoingBack] = field(default_factory=dict)
    #: The ``migrates_back`` steps that succeeded, by once group: ``(step, host)``.
    _undone: dict[str, tuple[str, str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, migration: Migration) -> None:
        """A migration succeeded: the hosts write its release's mark from their next phase on (thread-safe)."""
        with self._lock:
            self._recorded.append(migration)

    def record_back(self, group: str, what: str, host: str) -> None:
        """The ``migrates_back`` step of ``group`` succeeded: its hosts mark the releases it undid (thread-safe)."""
        with self._lock:
            self._undone[group] = (what, host)

    def undone(self, group: str) -> tuple[GoingBack, str, str] | None:
        """``(plan, step, host)`` of ``group``'s ``migrates_back`` step once it succeeded; ``None`` before."""
        with self._lock:
            done = self._undone.get(group)
        plan = self.going_back.get(group)
        return (plan, *done) if done is not None and plan is not None else None

    def of_release(self, release: str | None, stage: str | None = None) -> list[Migration]:
        """The migrations recorded for ``release`` that changed ``stage``'s schema (every stage's, when ``None``)."""
        with self._lock:
            return [m for m in self._recorded if m.release == release and (stage is None or m.stage in (None, stage))]


def ledger_of(run_state: Any) -> Ledger | None:
    """The run's :class:`Ledger` (``run.state.migrations``, ``ctx.run_state.migrations``); ``None`` outside a run."""
    ledger = getattr(run_state, "migrations", None)
    return ledger if isinstance(ledger, Ledger) else None


def record(ctx: Any, what: str) -> None:
    """``ctx.mark_migrated(what)`` and a ``migrates: true`` step that succeeded: the run records the migration."""
    if str(ctx.flow) != "release" or ctx.phase not in MIGRATING_PHASES:
        raise FapError(f"mark_migrated({what!r}): only a deploy's release migrates, in {', '.join(MIGRATING_PHASES)};"
                       f" called in {ctx.phase} ({ctx.flow})")
    if ctx.dry_run:
        ctx.log(f"would mark {ctx.release} migrated: {what}")
        return
    ledger = ledger_of(ctx.run_state)
    if ledger is None:  # a Context made outside a run (a plugin's own test): nothing to mark
        return
    ledger.record(Migration(ctx.release, what, ctx.host, str(ctx.phase), ctx.stage))
    ctx.log(f"{ctx.release} migrated the schema: {what}; every host of {ctx.stage} marks it migrated")


def marks_due(ctx: Any) -> list[Migration] | None:
    """What this host's mark of its release should say now, or ``None`` when it says it already (or nothing migrated)."""
    ledger = ledger_of(getattr(ctx, "run_state", None))  # first: a hook called with a stand-in ctx asks nothing else
    if ledger is None or str(ctx.flow) != "release" or ctx.dry_run or not ctx.release:
        return None
    migrations = ledger.of_release(ctx.release, ctx.stage)
    if len(migrations) == ctx.state.get(_WRITTEN, 0):
        return None
    return migrations


def marked(ctx: Any, migrations: Sequence[Migration]) -> None:
    """This host's mark now holds ``migrations``."""
    ctx.state[_WRITTEN] = len(migrations)


#: ``ctx.state`` key: how many of the run's migrations this host's mark holds.
_WRITTEN = "core.migrations.written"


def down_step(ctx: Any, step: Any, environment: Mapping[str, str]) -> tuple[str, dict[str, str], str] | None:
    """Where a ``migrates_back`` step runs on this host, its variables and a line saying what it does;
    ``None`` when it does not run in this rollback (said in a line).

    It runs in the newest release crossed that migrated (its code holds the
    down-migrations), with ``FAP_RELEASE``/``FAP_RELEASE_PATH`` naming the
    release returned to (whose schema to migrate back to),
    ``FAP_MIGRATED_RELEASE`` the release it runs in and
    ``FAP_MIGRATED_RELEASES`` every release crossed that migrated, newest first.
    """
    ledger = ledger_of(ctx.run_state)
    going_back = ledger.going_back.get(once_group(ctx, step)) if ledger else None
    if going_back is None:
        ctx.log(f"migrates_back step {step.where} skipped: this rollback crosses no migration")
        return None
    names = " ".join(name for name, _ in going_back.crossed)
    if going_back.across:
        ctx.log(f"migrates_back step {step.where} skipped (--across-migrations): the schema stays as it is"
                f" (migrated by {', '.join(name for name, _ in going_back.crossed)})")
        return None
    directory = posixpath.join(ctx.config["releases_path"], going_back.run_in)
    return (directory, {**environment, "FAP_MIGRATED_RELEASE": going_back.run_in, "FAP_MIGRATED_RELEASES": names},
            f"migrating the schema back for {going_back.target} before the switch, in {going_back.run_in}"
            f" (crossed: {_named(going_back.crossed)})")


def once_group(ctx: Any, step: Any) -> str:
    """The once group of ``step`` on this host: its stage, or ``stage/role`` for a step of a role's block."""
    return ctx.stage if step.role is None else f"{ctx.stage}/{ctx.role}"


def record_back(ctx: Any, step: Any) -> None:
    """A ``migrates_back`` step succeeded on this host: every host of its group marks the releases it undid."""
    ledger = ledger_of(ctx.run_state)
    if ledger is not None and not ctx.dry_run:
        ledger.record_back(once_group(ctx, step), step_text(step.where, step.command), ctx.host)


def back_marks_due(ctx: Any) -> list[tuple[str, dict[str, Any]]] | None:
    """The ``migrated_back`` marks this host writes now, ``(release, record)``; ``None`` when none (or written).

    One for each release the step undid that this host has a ``migrated``
    mark of, saying which step undid it, where, and the release returned to.
    """
    ledger = ledger_of(getattr(ctx, "run_state", None))
    if ledger is None or str(ctx.flow) != "rollback" or ctx.dry_run or ctx.state.get(_BACK_WRITTEN):
        return None
    done = ledger.undone(ctx.stage) or ledger.undone(f"{ctx.stage}/{ctx.role}")
    if done is None:
        return None
    plan, what, host = done
    ctx.state[_BACK_WRITTEN] = True
    marks = getattr(ctx, "marks", None) or {}
    return [(release, {"what": what, "host": host, "to": plan.target})
            for release, _ in plan.crossed if MARK_KIND in marks.get(release, {})]


#: ``ctx.state`` key: this host wrote its ``migrated_back`` marks.
_BACK_WRITTEN = "core.migrations.back_written"


def recorded(ctx: Any) -> list[str]:
    """For the host's history record: the migrations this run made for its release (``step … on host1``), if any."""
    ledger = ledger_of(getattr(ctx, "run_state", None))
    if ledger is None or str(ctx.flow) != "release":
        return []
    return [m.describe() for m in ledger.of_release(ctx.release, ctx.stage)]


def migrated_releases(marks: Mapping[str, Mapping[str, Any]]) -> dict[str, list[Migration]]:
    """From a host's release marks (``{release: {kind: record}}``), the releases that migrated and how."""
    return {release: read_mark(release, kinds[MARK_KIND]) for release, kinds in marks.items() if MARK_KIND in kinds}


def migrated_back_releases(marks: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """From a host's release marks, the releases whose migration a ``migrates_back`` step undid, and how."""
    return {release: kinds[BACK_MARK_KIND] for release, kinds in marks.items()
            if BACK_MARK_KIND in kinds and MARK_KIND in kinds}


def undone_ahead(target: str, current: str | None, migrated: Mapping[str, Sequence[Migration]],
                 migrated_back: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, list[Migration], Mapping[str, Any]]]:
    """The releases a rollback *forward* from ``current`` to ``target`` passes whose migration was undone, newest first.

    Passed: newer than ``current`` and not newer than ``target``. Their code
    (and the target's) expects a migration the schema no longer has.
    """
    if current is None or layout.release_key(target) <= layout.release_key(current):
        return []
    low, high = layout.release_key(current), layout.release_key(target)
    names = [name for name in migrated_back if name in migrated and low < layout.release_key(name) <= high]
    return [(name, list(migrated[name]), migrated_back[name]) for name in sorted(names, key=layout.release_key, reverse=True)]


def crossed(target: str, current: str | None, migrated: Mapping[str, Sequence[Migration]]) -> list[tuple[str, list[Migration]]]:
    """The releases a rollback from ``current`` to ``target`` crosses that migrated, newest first.

    Crossed: newer than ``target`` and not newer than ``current`` (the release
    left counts; a rollback to a newer release crosses nothing). A release
    removed since still counts while its mark is there: its migration ran.
    """
    if current is None or layout.release_key(target) >= layout.release_key(current):
        return []
    low, high = layout.release_key(target), layout.release_key(current)
    names = [name for name in migrated if low < layout.release_key(name) <= high]
    return [(name, list(migrated[name])) for name in sorted(names, key=layout.release_key, reverse=True)]


@dataclass(frozen=True)
class HostPlan:
    """One host of a rollback, as the migration guard sees it."""

    host: str
    #: The once group of its ``migrates_back`` steps: its stage, and its ``stage/role``.
    stage: str
    label: str
    target: str
    current: str | None
    migrated: Mapping[str, Sequence[Migration]]
    #: Whether a ``migrates_back`` step is written for its stage (``"stage"``), its target (``"label"``), or none.
    down_step: str | None
    #: The releases whose migration a ``migrates_back`` step undid: their ``migrated_back`` marks.
    migrated_back: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def host_plan(member: Any, target: str | None) -> HostPlan:
    """A rollback's host (a :class:`fapistrano.runner.Member`, probed) returning to ``target``, for :func:`guard`."""
    state = member.state
    steps = [step for step in member.settings.steps if step.migrates_back]
    down = "stage" if any(s.role is None for s in steps) else "label" if steps else None
    marks = getattr(state, "marks", None) or {}
    return HostPlan(member.name, member.settings.stage, member.label, target or "", state.current if state else None,
                    migrated_releases(marks), down, migrated_back_releases(marks))


def guard(hosts: Iterable[HostPlan], across: bool) -> tuple[dict[str, GoingBack], list[str]]:
    """Decide a rollback over migrations before anything changes: the plan of the ``migrates_back`` steps, and warnings.

    Raises :class:`MigrationsCrossed` naming every release and step crossed
    when a host would cross a migration with neither ``--across-migrations``
    nor a ``migrates_back`` step for it.
    """
    going_back: dict[str, dict[str, list[Migration]]] = {}
    targets: dict[str, str] = {}
    refused: dict[str, list[Migration]] = {}
    refused_hosts: list[str] = []
    refused_targets: list[str] = []
    ahead: dict[str, tuple[list[Migration], Mapping[str, Any]]] = {}
    ahead_hosts: list[str] = []
    ahead_targets: list[str] = []
    warnings: list[str] = []
    for host in hosts:
        for release, migrations, back in undone_ahead(host.target, host.current, host.migrated, host.migrated_back):
            if across:
                warnings.append(f"rolling forward over a migration that was migrated back (--across-migrations):"
                                f" {host.target} runs on the schema as it is, without the migration of {release}"
                                f" (migrated back by {back_text(back)})")
                continue
            ahead.setdefault(release, (migrations, back))
            ahead_hosts.append(host.host)
            ahead_targets.append(host.target)
        found = crossed(host.target, host.current, host.migrated)
        if not found:
            continue
        if host.down_step is None and not across:
            for release, migrations in found:
                _merge(refused, release, migrations)
            refused_hosts.append(host.host)
            refused_targets.append(host.target)
            continue
        group = host.stage if host.down_step == "stage" or host.down_step is None else host.label
        for release, migrations in found:
            _merge(going_back.setdefault(group, {}), release, migrations)
        # The oldest release returned to in the group: its schema is the one the step brings back.
        if group not in targets or layout.release_key(host.target) < layout.release_key(targets[group]):
            targets[group] = host.target
    if refused:
        raise MigrationsCrossed(refusal(refused, refused_hosts, refused_targets))
    if ahead:
        raise MigrationsCrossed(forward_refusal(ahead, ahead_hosts, ahead_targets))
    plans = {group: GoingBack(targets[group], _newest_first(releases), across) for group, releases in going_back.items()}
    warnings += [f"rolling back across migrations (--across-migrations): {_named(plan.crossed)};"
                 f" the schema stays as it is, {plan.target} runs on it" for plan in plans.values() if across]
    return plans, list(dict.fromkeys(warnings))


def forward_refusal(releases: Mapping[str, tuple[Sequence[Migration], Mapping[str, Any]]], hosts: Sequence[str],
                    targets: Sequence[str]) -> str:
    """The one line of a rollback forward over migrations a ``migrates_back`` step undid."""
    passed = "; ".join(
        f"{release} migrated by {', '.join(m.describe() for m in releases[release][0])},"
        f" migrated back by {back_text(releases[release][1])}"
        for release in sorted(releases, key=layout.release_key, reverse=True))
    to = ", ".join(dict.fromkeys(targets))
    where = ", ".join(dict.fromkeys(hosts))
    return (f"rollback to {to} runs code newer than a migration the schema no longer has: {passed} ({where});"
            " nothing changed. To run that code, deploy again so that the migration runs, or give"
            f" --across-migrations if {to} runs on the schema as it is")


def back_text(record: Mapping[str, Any]) -> str:
    """``step deploy.yml:18 (…) on host1``, from a ``migrated_back`` mark (a mark edited by hand still says something)."""
    return f"{record.get('what') or 'a migrates_back step'} on {record.get('host') or '?'}"


def refusal(releases: Mapping[str, Sequence[Migration]], hosts: Sequence[str], targets: Sequence[str]) -> str:
    """The one line of a refused rollback: the releases crossed and the steps that migrated, and the ways on."""
    crossed_text = _named(_newest_first(releases))
    to = ", ".join(dict.fromkeys(targets))
    where = ", ".join(dict.fromkeys(hosts))
    return (f"rollback to {to} crosses a migration: {crossed_text}; switching would run older code on the migrated schema"
            f" ({where}); nothing changed. Add a migrates_back: true step to hooks: (reverting) that migrates the schema"
            " back, or give --across-migrations if the older code runs on the new schema")


def _merge(into: dict[str, list[Migration]], release: str, migrations: Iterable[Migration]) -> None:
    known = into.setdefault(release, [])
    for migration in migrations:
        if all(m.what != migration.what for m in known):  # the same step, read from every host's mark: once
            known.append(migration)


def _newest_first(releases: Mapping[str, Sequence[Migration]]) -> tuple[tuple[str, tuple[Migration, ...]], ...]:
    return tuple((name, tuple(releases[name])) for name in sorted(releases, key=layout.release_key, reverse=True))


def _named(releases: Sequence[tuple[str, Sequence[Migration]]]) -> str:
    """``240103-101500 migrated by step deploy.yml:14 (…) on host1; 240102-…``."""
    return "; ".join(f"{release} migrated by {', '.join(m.describe() for m in migrations)}" for release, migrations in releases)


def not_undone(ledger: Ledger | None, release: str | None, switched_back: bool) -> list[str]:
    """After a deploy whose release is live nowhere (switched back, or failed before the switch): the migration it left.

    The schema stays migrated: the report says by which release and step, so
    that nobody takes the release now live for the schema's.
    """
    migrations = ledger.of_release(release) if ledger is not None and release else []
    if not migrations:
        return []
    how = "switched away from" if switched_back else "removed after the failure"
    undo = "switching back" if switched_back else "removing it"
    return [f"the schema was migrated by {release}, the release {how}"
            f" ({', '.join(m.describe() for m in migrations)}): {undo} does not undo it;"
            " the release live now runs on the migrated schema"]
