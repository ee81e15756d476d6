"""A target frozen with a reason (``fap lock -m``), and waiting for a running run's lock (``--wait-lock``).

A freeze is one file beside the run lock, ``<path>/.fap-freeze``
(:data:`fapistrano.layout.FREEZE_FILE`): one line of JSON, ASCII only, that
says who froze the target, since when and why. It is not a run's lock: no run
takes it or releases it, ``fap lock`` makes it and ``fap unlock`` lifts it.
Every changing command reads it in the probe (the round trip that would take
the run lock, which a frozen host does not take) and refuses at once with
:attr:`~fapistrano.errors.ExitCode.FROZEN` (exit 5), before any host changes. ``--wait-lock`` waits only for a
run's lock; a freeze is never waited out.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fapistrano import layout
from fapistrano.errors import ConfigError, ExitCode, FapError
from fapistrano.ui import printable

if TYPE_CHECKING:
    from fapistrano.hosts import Member
    from fapistrano.runner import Runner

#: The longest reason ``fap lock -m`` accepts, in characters: a reason is a line or two, not a log.
MESSAGE_LIMIT = 500
#: The example every hint about ``fap lock`` shows.
EXAMPLE = "incident 431: db failover"

q = shlex.quote


@dataclass(frozen=True)
class Freeze:
    """A host's freeze as its file reads: who froze the target, since when, why (masked, bounded)."""

    by: str
    since: str
    message: str

    def describe(self) -> str:
        """``by alice@laptop since 2026-12-04 18:40:00 +0000: incident 431`` with every control character shown escaped."""
        return f"by {shown(self.by)} since {shown(self.since)}: {shown(self.message)}"


def shown(text: str) -> str:
    """``text`` for one line of a terminal: newlines as ``\\n``, escapes as ``\\x1b`` (never acted on)."""
    return printable(text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t"))


def check_message(message: str | None, stage: str | None) -> str:
    """The reason of ``fap lock``, checked: there, not blank, at most :data:`MESSAGE_LIMIT` characters."""
    if not stage:
        # Without -s every stage would be frozen: never what an incident asks for.
        raise ConfigError(f"fap lock: which target? name its stage, e.g. fap lock -s STAGE -m {q(EXAMPLE)}")
    example = f"fap lock -s {stage} -m {q(EXAMPLE)}"
    if message is None or not message.strip():
        raise ConfigError(f"fap lock: -m needs the reason for the freeze, e.g. {example}")
    if len(message) > MESSAGE_LIMIT:
        raise ConfigError(f"fap lock: -m: the message is {len(message)} characters; at most {MESSAGE_LIMIT}")
    return message


def record(by: str, since: str, message: str) -> str:
    """The freeze file's one line: JSON with every character past ASCII escaped, so no byte of it is a control."""
    return json.dumps({"by": by, "since": since, "message": message}, ensure_ascii=True)


def freeze_script(path: str, line: str) -> str:
    """Write the freeze unless one is there (``set -C``: no two ``fap lock`` overwrite each other).

    Prints ``frozen=1`` when it wrote it, ``freeze=<the line there>`` when the
    target was frozen already.
    """
    target = posixpath.join(path, layout.FREEZE_FILE)
    return "\n".join([
        "cd / || exit 1",
        f"[ -d {q(path)} ] || mkdir -p {q(path)} || exit 1",
        f"if error=$( ( set -C; printf '%s\\n' {q(line)} > {q(target)} ) 2>&1 ); then echo 'frozen=1'; exit 0; fi",
        f"{layout.freeze_probe_line(path)}; exit 0; fi",
        'printf \'%s\\n\' "$error" >&2; exit 1',
    ])


def lift_script(path: str) -> str:
    """Remove the freeze (``fap unlock``); the run lock is another file, left to :func:`fapistrano.layout.unlock_script`."""
    return f"rm -f {q(posixpath.join(path, layout.FREEZE_FILE))}"


def parse(line: str | None) -> Freeze | None:
    """The freeze a probe printed (``None``: not frozen). A file fap did not write is still a freeze, shown as it reads."""
    if line is None:
        return None
    try:
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError
        fields = [data.get(name) for name in ("by", "since", "message")]
        if not all(isinstance(value, str) for value in fields):
            raise ValueError
        by, since, message = (str(value)[:layout.FREEZE_READ] for value in fields)
        return Freeze(by, since, message)
    except (ValueError, RecursionError):  # not fap's record (a file made by hand; "[[[[…" nests too deep for json)
        return Freeze("unknown", "unknown", line.strip() or "(no reason written)")


def frozen_hosts(members: Sequence[Member]) -> list[tuple[Member, Freeze]]:
    """The members whose probe found a freeze, each with it."""
    found = []
    for member in members:
        freeze = parse(member.state.freeze) if member.state is not None else None
        if freeze is not None:
            found.append((member, freeze))
    return found


def freeze_lines(members: Sequence[Member], selection: str) -> list[str]:
    """One line per freeze of a changing command's refusal: the hosts, who, when, why, and how to lift it."""
    from fapistrano.reporting import group_errors

    found = frozen_hosts(members)
    lines = group_errors([(m.name, f"{m.target.config['path']} is frozen {f.describe()}") for m, f in found])
    if found:
        lines.append(f"nothing touched; the target stays frozen until {' '.join(p for p in ('fap unlock', selection) if p)}")
    return lines


def notes(hosts: Sequence[tuple[str, layout.HostState]]) -> list[str]:
    """For ``fap releases`` and ``fap check``: one line per distinct freeze, naming its hosts."""
    from fapistrano.reporting import group_errors

    found = [(host, parse(state.freeze)) for host, state in hosts if state.freeze is not None]
    return group_errors([(host, f"frozen {freeze.describe()}") for host, freeze in found if freeze is not None])


# ---------------------------------------------------------------------------
# --wait-lock
# ---------------------------------------------------------------------------

_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?\Z")


def parse_duration(text: str | None) -> float:
    """``--wait-lock``'s DURATION in seconds: ``90s``, ``5m``, ``1h``, ``1m30s``, or a number of seconds; 0 when not given."""
    if text is None:
        return 0.0
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise ConfigError(f"--wait-lock: expected a duration like 90s, 5m or 1h, got {text!r}")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def duration_text(seconds: float) -> str:
    """``4m05s``, ``40s``: a countdown's remaining time."""
    whole = max(0, int(seconds + 0.999))
    minutes, rest = divmod(whole, 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


@dataclass(frozen=True)
class WaitLock:
    """What ``--wait-lock`` asks: how long to wait for a running run's lock, and whether to count down on a terminal."""

    seconds: float = 0.0
    #: As written on the command line, for the messages.
    text: str = ""
    #: A live view is on screen: the countdown is each waiting host's row; otherwise one plain line says it waits.
    countdown: bool = False
    #: Seconds between two looks at a lock.
    interval: float = 1.0
    #: How the operator selected the hosts (``-s production``), for the ``fap unlock`` a refusal suggests.
    selection: str = ""


def wait_policy(text: str | None, reporter: Any, selection: str = "") -> WaitLock:
    """The :class:`WaitLock` of ``--wait-lock TEXT``: a countdown when the live view is on screen."""
    from fapistrano.ui import LiveReporter

    # The run's reporter is the masker's, around a fan-out to the live view or plain lines (and --log-json).
    inner = getattr(reporter, "reporter", reporter)
    live = any(isinstance(r, LiveReporter) for r in getattr(inner, "reporters", [inner]))
    return WaitLock(parse_duration(text), text or "", countdown=live, selection=selection)


def admit(runner: Runner, members: Sequence[Member], wait: WaitLock | None) -> tuple[ExitCode, list[str]] | None:
    """After the probe: refuse a frozen target (exit 5), else wait out running runs' locks as ``--wait-lock`` allows.

    ``None`` lets the run go on; any lock still held (``--wait-lock`` gave up,
    or was not given) is then reported as it always was. A freeze that appears
    while waiting refuses at once, as one found at the start.
    """
    from fapistrano.hosts import key
    from fapistrano.plugins import describe
    from fapistrano.stopping import SIGNAL_EXIT

    selection = wait.selection if wait is not None else ""
    refusal = freeze_lines(members, selection)
    if refusal:
        return ExitCode.FROZEN, refusal
    held = _held(members)
    if not held or wait is None or wait.seconds <= 0:
        return None
    deadline = time.monotonic() + wait.seconds
    owners = "; ".join(dict.fromkeys(m.state.lock_owner or "unknown" for m in held if m.state is not None))
    runner.emit("run", f"waiting up to {wait.text} for the run holding the lock on"
                       f" {', '.join(m.name for m in held)}: {owners}")
    while held:
        left = deadline - time.monotonic()
        if left <= 0:
            runner.emit("warning", f"gave up waiting after {wait.text} (--wait-lock): the lock is still held")
            return None
        if wait.countdown:
            for member in held:
                runner.emit("output", f"locked by {member.state.lock_owner if member.state else 'unknown'};"
                                      f" waiting, {duration_text(left)} left", host=member.name, phase="lock")
        if runner.stopping.wait(min(wait.interval, left)):
            return SIGNAL_EXIT[runner.stopped_by or signal.SIGINT], ["interrupted while waiting for the lock"]
        # A dry run never takes a lock: it only looks again.
        failures = runner.on_each(held, lambda member: runner.sessions.probe(member, not runner.dry_run))
        if failures:
            return ExitCode.FAILED, [f"{m.name}: {describe(failures[key(m)], m.name)}" for m in held if key(m) in failures]
        refusal = freeze_lines(members, selection)
        if refusal:
            return ExitCode.FROZEN, refusal
        free = [m for m in held if m not in _held(held)]
        for member in free:
            runner.emit("log", "the lock is free: going on", host=member.name, phase="lock")
        held = _held(held)
    return None


def _held(members: Sequence[Member]) -> list[Member]:
    """Members whose lock another run holds."""
    return [m for m in members if m.state and m.state.lock_owner and not m.state.locked_by_us]



def lift(runner: Runner, members: Sequence[Member]) -> bool:
    """``fap unlock``: lift the freeze on every probed member that has one, saying whose it was; shown only under ``--dry-run``.

    True when every freeze found is gone (or, in a dry run, would be).
    """
    from fapistrano.hosts import key
    from fapistrano.plugins import describe

    found = frozen_hosts(members)
    for member, freeze in found:
        verb = "would lift" if runner.dry_run else "lifting"  # a dry run's plan shows only what it "would" do
        runner.emit("log", f"{verb} the freeze {freeze.describe()}", host=member.name, phase="unlock")
    if runner.dry_run or not found:
        return True

    def work(member: Member) -> None:
        result = member.connection.run(lift_script(member.target.config["path"]))
        if result.exit_code != 0:
            raise FapError(f"cannot lift the freeze: {runner.masker(result.stderr.strip())}")

    errors = runner.on_each([m for m, _ in found], work)
    for member, _ in found:
        if key(member) in errors:
            runner.emit("error", describe(errors[key(member)], member.name), host=member.name, phase="unlock")
    return not errors
