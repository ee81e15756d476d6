"""fapistrano.slack: say in a chat when a deploy, a rollback or a restart starts and how it ended.

Posts Slack's incoming webhook JSON (``{"text": ...}``), which Mattermost and
Rocket.Chat accept too. Enable it in deploy.yml::

    plugins: [fapistrano.git, fapistrano.slack]
    slack_webhook: "%(env:SLACK_WEBHOOK)s"
    slack_channel: "#deploys"

Run-level hooks only, on the deployer's machine:

``fap_run_starting``
    Posts "app: deploy of release R to stage/role started by WHO" and the hosts.
``fap_run_finished``
    Posts the same facts with the verdict (ok, failed with the first error,
    partial, switched back) and how long the run took.

A webhook that is down, slow or answers an error costs one warning line and
at most ``slack_timeout`` seconds per message; it never fails a run. Nothing
is posted under ``--dry-run``. ``slack_webhook`` is a secret: its token is in
its path, and fap masks it in everything it prints.
"""

from __future__ import annotations

import getpass
import os
import time
from collections.abc import Mapping
from typing import Any

from fapistrano import Setting, hookimpl

from fapistrano_slack import message, webhook

__version__ = "1.0.0"

PLUGIN = "fapistrano.slack"
#: Where fap_run_starting leaves the start time for fap_run_finished (``run.state``).
STARTED = "fapistrano.slack.started"
#: Where the first message leaves the timeout it used, so that a bad ``slack_timeout`` is told once per run.
TIMEOUT = "fapistrano.slack.timeout"
DEFAULT_TIMEOUT = 5.0
#: The longest a message may wait: past five minutes a notification tells nobody anything, and a larger
#: number (``1e308``) overflows the clocks that a wait is measured with.
MAX_TIMEOUT = 300.0


@hookimpl
def fap_settings() -> list[Setting]:
    """The ``slack_*`` settings; the webhook URL is a credential."""
    return [
        Setting("slack_webhook", "", "Incoming webhook URL to post to (a secret: masked everywhere); empty: post nothing.", secret=True),
        Setting("slack_channel", "", "Channel to post in (e.g. '#deploys'), when the webhook lets a message choose; empty: the webhook's own."),
        Setting("slack_timeout", DEFAULT_TIMEOUT, "Seconds to wait for the webhook per message (at most 300); then warn"
                " and go on.", type=float),
    ]


@hookimpl
def fap_run_starting(run: Any) -> None:
    """Post that the run starts."""
    run.state[STARTED] = time.monotonic()
    _post(run, message.started(run, deployer()), "start")


@hookimpl
def fap_run_finished(run: Any) -> None:
    """Post how the run ended."""
    started = run.state.get(STARTED)
    seconds = time.monotonic() - started if started is not None else None
    _post(run, message.finished(run, deployer(), seconds), "end")


def deployer() -> str:
    """Who runs fap: the login name (``$LOGNAME``, ``$USER``…, else the account of this process's uid)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid with no passwd entry and no $USER (some containers)
        return str(os.getuid())


def settings_of(run: Any) -> Mapping[str, Any]:
    """The run's ``slack_*`` settings: those of its first stage/role (a stage may set its own webhook)."""
    return run.targets[0].config if run.targets else run.config


def _post(run: Any, text: str, which: str) -> None:
    settings = settings_of(run)
    url = str(settings.get("slack_webhook") or "").strip()
    if not url:
        return
    if run.dry_run:
        run.log(f"not posting the {which} message under --dry-run")
        return
    timeout = _timeout(run, settings)
    try:
        problem = webhook.post(url, message.payload(run.mask(text), settings), timeout)
    except Exception as error:  # noqa: BLE001 - a notification never fails a run, whatever went wrong in it
        problem = f"cannot post to the webhook: {type(error).__name__}"
    if problem:
        # run.warn masks the line too; webhook.where names the host only, never the token in the path.
        run.warn(f"{PLUGIN}: {which} message not posted to {webhook.where(url)}: {problem}")


def _timeout(run: Any, settings: Mapping[str, Any]) -> float:
    """``slack_timeout`` within (0, MAX_TIMEOUT]: a value out of bounds is a warning (once per run), never an error."""
    if TIMEOUT in run.state:
        return run.state[TIMEOUT]
    value = settings.get("slack_timeout")
    timeout = DEFAULT_TIMEOUT
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:  # nan too
        run.warn(f"{PLUGIN}: slack_timeout must be a positive number of seconds, got {value!r}; using {DEFAULT_TIMEOUT:g}")
    elif value > MAX_TIMEOUT:
        run.warn(f"{PLUGIN}: slack_timeout {value:g} s is more than {MAX_TIMEOUT:g} s; using {MAX_TIMEOUT:g}")
        timeout = MAX_TIMEOUT
    else:
        timeout = float(value)
    run.state[TIMEOUT] = timeout
    return timeout
