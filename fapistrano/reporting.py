"""What the operator reads about a run: the plugin at work beside each line, and the summary table.

:class:`StepNaming` names, on each command, log and warning a host's ``ctx``
emits, the plugin whose hookimpl made it; :func:`summarize` turns the
members of a run into the summary's rows.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Sequence
from typing import Any

from fapistrano.errors import Interrupted
from fapistrano.hosts import Member
from fapistrano.masking import Masker
from fapistrano.plugins import Attribution, describe
from fapistrano.ui import Event, HostResult, Reporter


class StepNaming(Reporter):
    """Adds to each command, log and warning of a ``ctx`` the name of the plugin whose hookimpl made it.

    The live view shows it beside the phase (``updated: virtualenv``). The event
    is emitted in the thread running the hookimpl, so the plugin is found on
    the call stack (:meth:`fapistrano.plugins.Attribution.running`).
    """

    def __init__(self, reporter: Reporter, attribution: Attribution) -> None:
        self.reporter = reporter
        self._attribution = attribution

    def output_wanted(self) -> str:
        return self.reporter.output_wanted()

    def handle(self, event: Event) -> None:
        if event.kind in ("command", "log", "warning") and "step" not in event.data:
            step = self._attribution.running(sys._getframe(1))  # noqa: SLF001 - the documented way to read the caller's frames
            if step:
                event = dataclasses.replace(event, data={**event.data, "step": step})
        self.reporter.handle(event)

    def running_step(self) -> str | None:
        """The plugin whose hookimpl is running in this thread, if any (``ctx.run_later`` names it in a failure)."""
        return self._attribution.running(sys._getframe(1))  # noqa: SLF001 - the documented way to read the caller's frames

    def summary(self, title: str, results: list[Any], ok: bool) -> None:
        self.reporter.summary(title, results, ok)

    def close(self) -> None:
        self.reporter.close()


def summarize(members: Sequence[Member], masker: Masker | None = None) -> list[Any]:
    """A :class:`~fapistrano.ui.HostResult` per member, for the summary table."""
    now = time.monotonic()
    results = []
    for member in members:
        if member.failed is None:
            status = "ok" if member.ctx is not None else "skipped"
        elif isinstance(member.failed, Interrupted):  # stopped, or collateral of another host's failure
            status = "skipped"
        else:
            status = "failed"
        if member.status in ("reverted", "dropped", "unhealthy"):
            status = member.status
        ctx = member.ctx
        error = "" if member.failed is None else describe(member.failed, member.name)
        current = ""
        if member.current_moved and ctx is not None:
            current = f"now {ctx.release}"
        elif ctx is not None or member.state is not None:
            current = "unchanged"
        results.append(
            HostResult(
                host=member.name,
                target=member.label,
                status=status,
                release=(ctx.release or "") if ctx and member.last_active is not None and _release_remains(member, status) else "",
                duration=(member.last_active or now) - member.started,
                error=(masker or Masker())(error or _health_text(member)) if status in ("failed", "dropped", "reverted", "unhealthy") else "",
                commands=ctx.commands_run if ctx else 0,
                round_trips=member.connection.round_trips,
                current=current,
            )
        )
    return results


def _health_text(member: Member) -> str:
    """The summary's error column for a host whose health check failed (its last output lines)."""
    if member.health is None or member.health.passed:
        return ""
    return f"failed its health check: {member.health.output}"


def _release_remains(member: Member, status: str) -> bool:
    """Whether the release a member's row would name is there after the run (a failed deploy removes its new one)."""
    assert member.ctx is not None
    if member.ctx.flow != "release" or status == "ok":
        return True
    return member.current_moved  # failed after the switch: current is on it


def group_errors(errors: Sequence[tuple[str, str]], shown_hosts: int = 5) -> list[str]:
    """``host: text`` lines, one per distinct text: the same failure on eight hosts is one line naming them."""
    hosts_of_text: dict[str, list[str]] = {}
    for host, text in errors:
        hosts_of_text.setdefault(text, []).append(host)
    lines = []
    for text, hosts in hosts_of_text.items():
        names = ", ".join(hosts[:shown_hosts])
        if len(hosts) > shown_hosts:
            names += f" and {len(hosts) - shown_hosts} more"
        lines.append(f"{names}: {text}")
    return lines
