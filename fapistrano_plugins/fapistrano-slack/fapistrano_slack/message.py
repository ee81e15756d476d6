"""The text of the two messages a run posts: what is being done, where, by whom, and how it ended."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: Hosts named in a message; more are counted ("and 7 more").
SHOWN_HOSTS = 10

#: How each command reads in a sentence: ``deploy of release R``, ``rollback to release R``.
_WORK_ON = {"deploy": "of", "rollback": "to", "restart": "of"}

#: The end message's verdict for each ``run.outcome``, and what it means for the fleet.
_VERDICTS = {
    "ok": ("ok", ""),
    "failed": ("failed", ""),
    "partial": ("partial", "done except on the hosts dropped under --max-fail"),
    "switched back": ("failed and switched back", "every host is on its previous release again"),
}


def started(run: Any, who: str) -> str:
    """The message posted by ``fap_run_starting``."""
    return "\n".join([f"{_headline(run)} started by {who}", *_details(run)])


def finished(run: Any, who: str, seconds: float | None) -> str:
    """The message posted by ``fap_run_finished``: the start message's facts and the verdict, with the first error."""
    outcome = str(run.outcome or ("ok" if run.ok else "failed"))
    verdict, meaning = _VERDICTS.get(outcome, (outcome, ""))
    took = f" in {_duration(seconds)}" if seconds is not None else ""
    lines = [f"{_headline(run)} by {who}: {verdict}{took}" + (f": {meaning}" if meaning else ""), *_details(run)]
    old, new = getattr(run, "previous_revision", None), getattr(run, "revision", None)
    if old or new:
        lines.append(f"revision: {_short(old)} -> {_short(new)}")
    first_error = first_line(run.error)
    if first_error and outcome != "ok":
        lines.append(f"error: {first_error}")
    return "\n".join(lines)


def first_line(error: str | None) -> str:
    """The first non-empty line of ``run.error`` (which may hold one line per failure)."""
    for line in (error or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def _headline(run: Any) -> str:
    app = str(run.config.get("app_name") or "app")
    release = f" {_WORK_ON.get(run.command, 'of')} release {run.release}" if run.release else ""
    places = ", ".join(dict.fromkeys(f"{t.stage}/{t.role}" for t in run.targets)) or "no target"
    return f"{app}: {run.command}{release} to {places}"


def _details(run: Any) -> list[str]:
    return [f"hosts: {_hosts(run.hosts)}"]


def _short(revision: str | None) -> str:
    """A revision as people quote it (a git sha's first 7 characters); ``?`` when no plugin knows it."""
    return revision[:7] if revision else "?"


def _hosts(hosts: Sequence[str]) -> str:
    shown = ", ".join(hosts[:SHOWN_HOSTS])
    if len(hosts) > SHOWN_HOSTS:
        shown += f" and {len(hosts) - SHOWN_HOSTS} more"
    return f"{shown} ({len(hosts)})" if len(hosts) > 1 else shown or "none"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest} s"


def payload(text: str, settings: Mapping[str, Any]) -> dict[str, str]:
    """Slack's incoming webhook JSON (``text``, and ``channel`` when set), which Mattermost and Rocket.Chat accept too."""
    body = {"text": text}
    channel = str(settings.get("slack_channel") or "").strip()
    if channel:
        body["channel"] = channel
    return body
