"""Day two: what each run did to each host, kept on the host, and read back by ``fap history``.

Every run of ``fap deploy``, ``rollback`` or ``restart`` appends one record to
the history of every host it changed (:func:`fapistrano.layout.history_append_script`),
once that host's outcome is known, in the same round trip as the release of
its lock. A record is one JSON object:

``run``
    the run's id, the same on every host of the run (:attr:`fapistrano.Run.id`)
``started``, ``finished``
    when the run started and when this host's outcome was known (UTC, ISO 8601)
``who``
    ``$FAP_WHO`` when set (a CI pipeline names itself), else ``user@machine``
``command``, ``stage``, ``role``, ``host``
    what ran where (``host`` as deploy.yml names it)
``release``, ``revision``, ``replaced``
    the release the run worked on, the revision it holds (when a plugin
    knows), and the release ``current`` pointed to before (``null`` for a
    restart and a first deploy)
``outcome``
    this host's: one of :data:`OUTCOMES`
``why``
    for any outcome but the plain success: what happened (the error, the
    health check's output, the interrupt)
``fap``
    fap's version
``promoted_from``, ``unreached``, ``not_started``, ``migrated``
    only when there is something to say: the stage ``fap promote`` took the
    revision from; the hosts of this target the run could not reach, and
    those of a later batch it stopped before (neither has a record of it);
    the migrations of the release this run made, each ``step deploy.yml:14 (…) on host1``
    (a ``migrates: true`` step, or a plugin's ``ctx.mark_migrated``: see :mod:`fapistrano.migrations`)

A rollback marks the release it leaves ``bad`` in the same round trip
(:func:`fapistrano.layout.mark_script`): ``who``, ``when``, ``why``, ``run``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fapistrano import __version__, layout, migrations

DEPLOYED = "deployed"
ROLLED_BACK = "rolled back"
RESTARTED = "restarted"
SWITCHED_BACK = "switched back"
FAILED_BEFORE_SWITCH = "failed before the switch"
FAILED_AFTER_SWITCH = "failed after the switch"
#: A restart's failure: a restart has no switch.
FAILED = "failed"
INTERRUPTED = "interrupted"
#: Every outcome a record may have.
OUTCOMES = (DEPLOYED, ROLLED_BACK, RESTARTED, SWITCHED_BACK, FAILED_BEFORE_SWITCH, FAILED_AFTER_SWITCH, FAILED, INTERRUPTED)
#: The outcome of each command when the host is done.
SUCCESS = {"deploy": DEPLOYED, "promote": DEPLOYED, "rollback": ROLLED_BACK, "restart": RESTARTED}
#: Printed by the closing script when the record could not be written (the unlock goes on).
NOT_WRITTEN = "fap-history-not-written"
#: The longest ``why`` a record keeps.
WHY_LIMIT = 600

#: ``why`` of a host whose last phases' command, sent with the unlock (the cleanup), failed: the run's error line says which.
LATE_FAILURE = "finishing: a command of the last phases, sent with the unlock, failed (see the run's output)"


def who() -> str:
    """Who runs fap: ``$FAP_WHO`` (a CI pipeline's name), else ``user@machine``."""
    named = os.environ.get("FAP_WHO", "").strip()
    if named:
        return " ".join(named.split())[:200]
    from fapistrano.sessions import account_name

    user = os.environ.get("USER") or os.environ.get("LOGNAME") or account_name()
    return f"{user}@{socket.gethostname()}"


# ---------------------------------------------------------------------------
# Writing: one record (and a bad mark) per host, with the unlock
# ---------------------------------------------------------------------------


def host_outcome(command: str, member: Any, stopped: bool) -> tuple[str, str]:
    """``(outcome, why)`` of one host of a run that is over (``why`` is empty for a plain success)."""
    from fapistrano.errors import HealthCheckFailed
    from fapistrano.plugins import describe

    failed = member.failed
    why = describe(failed, member.name) if failed is not None else ""
    health = member.health
    if health is not None and not health.passed:
        why = f"health check failed: {health.output}"
    if stopped and failed is not None:
        if member.status == "reverted":
            why = f"{why}; switched back" if why else "switched back"
        return INTERRUPTED, why
    if failed is None:
        return SUCCESS.get(command, DEPLOYED), why  # unhealthy within --max-fail: done, and why says so
    if member.status == "reverted":
        if isinstance(failed, HealthCheckFailed) or member.failed_phase == "healthcheck":
            why = why if why.startswith("health check") else f"health check failed elsewhere: {why}"
        return SWITCHED_BACK, why
    if member.status == "dropped":
        return FAILED_BEFORE_SWITCH, f"dropped (--max-fail): {why}"
    if command == "restart":
        return FAILED, why
    return (FAILED_AFTER_SWITCH if member.switched else FAILED_BEFORE_SWITCH), why


def record_line(record: Mapping[str, Any]) -> str:
    """``record`` as one JSON line shorter than :data:`fapistrano.layout.RECORD_LIMIT` (``why`` and ``unreached`` cut to fit)."""

    def dump(data: Mapping[str, Any]) -> str:
        return json.dumps(data, ensure_ascii=False, default=str, separators=(",", ":"))

    data = dict(record)
    line = dump(data)
    for field_name in ("unreached", "not_started"):
        if len(line.encode()) >= layout.RECORD_LIMIT and len(data.get(field_name) or ()) > 20:
            hosts = list(data[field_name])
            data[field_name] = [*hosts[:20], f"and {len(hosts) - 20} more"]
            line = dump(data)
    if len(line.encode()) >= layout.RECORD_LIMIT and data.get("why"):
        data["why"] = str(data["why"])[:200] + "…"
        line = dump(data)
    if len(line.encode()) >= layout.RECORD_LIMIT:  # long names everywhere: the fields a reader needs most
        line = dump({k: v for k, v in data.items() if k in ("run", "started", "finished", "command", "stage", "role", "host",
                                                            "release", "outcome", "fap")})
    return line


def closing_scripts(runner: Any, members: Sequence[Any], run: Any) -> dict[str, tuple[str, str]]:
    """For each host this run changed (and still holds locked): the shell that records its outcome.

    Run before the unlock, in its round trip (:meth:`fapistrano.runner.Runner.close`), after what
    the last phases sent with it (``ctx.run_later``, e.g. the cleanup): two scripts, the record
    when that succeeded, and the one when it failed (the run fails there, so does the record).
    A rollback's record comes with the ``bad`` mark of the release it left.
    Nothing under ``--dry-run``. Never raises: a record that cannot be made is a warning.
    """
    from fapistrano.hosts import key

    if runner.dry_run or run is None:
        return {}
    from fapistrano.run import utc_now

    try:
        changed = [m for m in members if m.ctx is not None and m.locked and m.ctx.phase != "connecting"]
        revisions = _revisions(runner, changed)
        stopped = runner.stopping.is_set()
        finished = utc_now()
        by = who()
        scripts: dict[str, tuple[str, str]] = {}
        for member in changed:
            ctx = member.ctx
            outcome, why = host_outcome(run.command, member, stopped)
            same_target = [m for m in members if m.label == member.label]
            unreached = [m.name for m in same_target if m.ctx is None and m.failed is not None]
            # Hosts of a later batch the run stopped before (a canary failed): nothing changed there, nothing done either.
            not_started = [m.name for m in same_target if m.ctx is not None and m.ctx.phase == "connecting" and m.failed is not None]
            record: dict[str, Any] = {
                "run": run.id, "started": run.started, "finished": finished, "who": by, "command": run.command,
                "stage": member.settings.stage, "role": member.settings.role, "host": member.name,
                "release": ctx.release, "revision": revisions.get(key(member)),
                "replaced": ctx.previous_release if run.command != "restart" else None,
                "outcome": outcome, "fap": __version__,
            }
            if why:
                record["why"] = runner.masker(why)[:WHY_LIMIT]
            if getattr(run, "promoted_from", None):
                record["promoted_from"] = run.promoted_from
            if unreached:
                record["unreached"] = unreached
            if not_started:
                record["not_started"] = not_started
            migrated = migrations.recorded(ctx)
            if migrated:
                record["migrated"] = migrated
            path = ctx.config["path"]
            marking = ""
            mark = bad_mark(run, member, outcome, by, finished)
            if mark is not None:  # the switch stands even when a command after it fails: so does the mark
                marking += "\n" + layout.mark_script(path, mark[0], "bad", runner.masker.hide_in(mark[1]))
            if outcome == ROLLED_BACK and ctx.release and layout.is_release_name(ctx.release) \
                    and member.state is not None and member.state.marked(ctx.release, "bad") is not None:
                # Only --to returns to a bad release: the operator says it is good again; this record keeps the story.
                marking += "\n" + layout.unmark_script(path, ctx.release, "bad")
            failed_record = dict(record)
            if member.failed is None:
                failed_record["outcome"] = FAILED if run.command == "restart" else \
                    FAILED_AFTER_SWITCH if member.switched else FAILED_BEFORE_SWITCH
                failed_record["why"] = LATE_FAILURE
            done, failed_late = (
                f"( {layout.history_append_script(path, record_line(runner.masker.hide_in(written)))}{marking}\n) >/dev/null 2>&1 || echo {NOT_WRITTEN}"
                for written in (record, failed_record))
            scripts[key(member)] = (done, failed_late)
        return scripts
    except Exception as error:  # noqa: BLE001 - the history is a record of the run, never a reason to keep a lock
        runner.emit("warning", f"history: no record written: {type(error).__name__}: {error}")
        return {}


def bad_mark(run: Any, member: Any, outcome: str, by: str, when: str) -> tuple[str, dict[str, Any]] | None:
    """``(release, mark)``: the release this host's run leaves marked bad, if any.

    A rollback leaves the release it switched away from. A deploy switched
    back after its health check leaves its new release only where it could
    not be removed.
    """
    ctx = member.ctx
    if outcome == ROLLED_BACK and ctx.rollback_from and ctx.rollback_from != ctx.release \
            and layout.is_release_name(ctx.rollback_from):
        why = getattr(run, "reason", None) or f"rolled back to {ctx.release}"
        return ctx.rollback_from, {"who": by, "when": when, "why": why, "run": run.id}
    if outcome == SWITCHED_BACK and member.release_left and ctx.release and layout.is_release_name(ctx.release):
        return ctx.release, {"who": by, "when": when, "why": "switched back: health check failed", "run": run.id}
    return None


def _revisions(runner: Any, members: Sequence[Any]) -> dict[str, str | None]:
    """The revision of each host's release, where the release is still there (a plugin's answer; may be a round trip)."""
    from fapistrano.hosts import key

    found: dict[str, str | None] = {}

    def ask(member: Any) -> None:
        ctx = member.ctx
        still_there = member.failed is None or member.switched or ctx.flow != "release"
        if not still_there or not ctx.release:
            return
        ctx.stopping = None  # asked after a Ctrl-C too: the record is part of the cleanup
        try:
            found[key(member)] = ctx.revision(ctx.release)
        except Exception:  # noqa: BLE001 - a revision is news for the record, never a reason to fail
            found[key(member)] = None

    runner.on_each(members, ask)
    return found


# ---------------------------------------------------------------------------
# Reading: every host's records, merged by run
# ---------------------------------------------------------------------------


def parse_records(text: str) -> list[dict[str, Any]]:
    """The records of a history file's text, oldest first; a line that is not a JSON object is skipped."""
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("run"):
            records.append(record)
    return records


@dataclass
class RunSummary:
    """One run, merged across the hosts that recorded it."""

    run: str
    started: str
    finished: str
    who: str
    command: str
    targets: list[str]
    releases: list[str]
    revisions: list[str]
    outcome: str
    #: ``{host: outcome}`` of every host that recorded the run.
    hosts: dict[str, str] = field(default_factory=dict)
    #: ``{host: why}`` where there was something to say.
    why: dict[str, str] = field(default_factory=dict)
    unreached: list[str] = field(default_factory=list)
    #: Hosts of a later batch the run stopped before they started.
    not_started: list[str] = field(default_factory=list)
    promoted_from: str | None = None
    #: The migrations of the run's release (``step deploy.yml:14 (…) on host1``), when it migrated the schema.
    migrated: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.hosts) + len(self.unreached) + len(self.not_started)

    def host_count(self) -> str:
        """``3/3``, or ``2/3`` and which hosts ended differently."""
        same = sum(1 for outcome in self.hosts.values() if outcome == self.outcome)
        text = f"{same}/{self.total}"
        others = [f"{host}: {outcome}" for host, outcome in self.hosts.items() if outcome != self.outcome]
        others += [f"{host}: not reached" for host in self.unreached]
        others += [f"{host}: not started" for host in self.not_started]
        return f"{text} ({'; '.join(others)})" if others else text

    def as_json(self) -> dict[str, Any]:
        data = {
            "run": self.run, "started": self.started, "finished": self.finished, "who": self.who, "command": self.command,
            "targets": self.targets, "release": self.releases[0] if len(self.releases) == 1 else self.releases,
            "revision": (self.revisions[0] if len(self.revisions) == 1 else self.revisions) or None,
            "outcome": self.outcome, "hosts": self.hosts, "ok": sum(1 for o in self.hosts.values() if o == self.outcome),
            "total": self.total,
        }
        if self.why:
            data["why"] = self.why
        if self.unreached:
            data["unreached"] = self.unreached
        if self.not_started:
            data["not_started"] = self.not_started
        if self.promoted_from:
            data["promoted_from"] = self.promoted_from
        if self.migrated:
            data["migrated"] = self.migrated
        return data


def merge(records: Iterable[Mapping[str, Any]]) -> list[RunSummary]:
    """One :class:`RunSummary` per run id, newest first; a host's record counted once."""
    by_run: dict[str, dict[tuple[str, str, str], Mapping[str, Any]]] = {}
    for record in records:
        place = (str(record.get("stage")), str(record.get("role")), str(record.get("host")))
        by_run.setdefault(str(record["run"]), {})[place] = record
    summaries = []
    for run_id, places in by_run.items():
        group = list(places.values())
        hosts = {str(r.get("host")): str(r.get("outcome", "?")) for r in group}
        recorded = set(hosts)
        unreached = sorted({str(h) for r in group for h in (r.get("unreached") or ()) if str(h) not in recorded})
        not_started = sorted({str(h) for r in group for h in (r.get("not_started") or ()) if str(h) not in recorded})
        outcome = Counter(hosts.values()).most_common(1)[0][0]
        summaries.append(RunSummary(
            run=run_id,
            started=min(str(r.get("started", "")) for r in group),
            finished=max(str(r.get("finished", "")) for r in group),
            who=", ".join(sorted({str(r.get("who", "?")) for r in group})),
            command=", ".join(sorted({str(r.get("command", "?")) for r in group})),
            targets=sorted({f"{r.get('stage')}/{r.get('role')}" for r in group}),
            releases=sorted({str(r["release"]) for r in group if r.get("release")}),
            revisions=sorted({str(r["revision"]) for r in group if r.get("revision")}),
            outcome=outcome,
            hosts=dict(sorted(hosts.items())),
            why={str(r.get("host")): str(r["why"]) for r in group if r.get("why")},
            unreached=unreached,
            not_started=not_started,
            promoted_from=next((str(r["promoted_from"]) for r in group if r.get("promoted_from")), None),
            migrated=list(dict.fromkeys(str(m) for r in group if isinstance(r.get("migrated"), list) for m in r["migrated"])),
        ))
    summaries.sort(key=lambda s: (s.started, s.run), reverse=True)
    return summaries


def when_text(started: str) -> str:
    """``2026-12-05 07:13:00`` (UTC) from a record's ISO time; as written when it is not one."""
    try:
        moment = _dt.datetime.strptime(started[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return started
    return moment.strftime("%Y-%m-%d %H:%M:%S")


# ---------------------------------------------------------------------------
# Retrying the hosts that failed
# ---------------------------------------------------------------------------


def failed_hosts(last_records: Iterable[Mapping[str, Any]]) -> tuple[RunSummary | None, list[str]]:
    """From each host's newest record: the last run of the target and the hosts it did not finish on.

    A host whose newest record is an older run took no part in the last run
    (or was not reached: then the last run's records name it in ``unreached``).
    """
    runs = merge(last_records)
    if not runs:
        return None, []
    last = runs[0]
    success = SUCCESS.get(last.command.split(", ")[0], DEPLOYED)
    failed = [host for host, outcome in last.hosts.items() if outcome != success]
    return last, [*failed, *last.unreached, *last.not_started]


def retry_hint(command: str, selection: str, members: Sequence[Any]) -> str | None:
    """After a run done except on some hosts: the command that retries exactly those hosts."""
    failed = list(dict.fromkeys(m.name for m in members if m.failed is not None or m.status in ("dropped", "unhealthy")))
    if not failed:
        return None
    exact = " ".join(p for p in (f"fap {command}", selection, "--hosts", ",".join(host_pattern(h) for h in failed)) if p)
    hint = f"to retry the hosts that failed: {exact}"
    if command == "deploy":
        hint += f" (or: {' '.join(p for p in ('fap deploy', selection, '--retry-failed') if p)})"
    return hint


def host_pattern(name: str) -> str:
    """A ``--hosts`` pattern matching exactly ``name`` (its ``*``, ``?`` and ``[`` made literal)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


__all__ = ["OUTCOMES", "RunSummary", "closing_scripts", "failed_hosts", "host_outcome", "merge", "parse_records", "retry_hint",
           "who"]
