"""Posting one message to an incoming webhook, never waiting longer than the timeout.

Standard library only. ``urllib``'s own timeout covers each socket operation
but not the name lookup, nor a server that trickles one byte at a time; the
post therefore runs in a daemon thread that the caller waits for at most
``timeout`` seconds. A post still pending then is abandoned (the thread ends
with the process).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

#: Sent as the request's User-Agent: a webhook's logs name who posted.
USER_AGENT = "fapistrano-slack"


def where(url: str) -> str:
    """The part of a webhook URL that may be shown: its host and port, never its path (the token) nor credentials."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "?"
    return f"{host}{port}"


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be posted to (one line, without the URL), or ``None``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "slack_webhook is not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "slack_webhook is not an http:// or https:// URL"
    return None


def post(url: str, payload: Mapping[str, Any], timeout: float) -> str | None:
    """POST ``payload`` as JSON to ``url``; return ``None`` when the webhook took it, else why not (without the URL).

    Returns after at most ``timeout`` seconds whatever the network does.
    """
    problem = url_problem(url)
    if problem:
        return problem
    outcome: list[str | None] = []
    request = urllib.request.Request(
        url,
        data=json.dumps(dict(payload)).encode(),
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
        method="POST",
    )

    def send() -> None:
        outcome.append(_send(request, timeout))

    sender = threading.Thread(target=send, name="fapistrano.slack", daemon=True)
    sender.start()
    sender.join(timeout)
    if not outcome:
        return f"no answer within {timeout:g} s"
    return outcome[0]


def _send(request: urllib.request.Request, timeout: float) -> str | None:
    # The messages below name no URL: urllib's own texts may quote it, and it holds the token.
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) only, checked above
            response.read(4096)
    except urllib.error.HTTPError as error:
        return f"the webhook answered HTTP {error.code} {error.reason}".rstrip()
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, TimeoutError):
            return f"no answer within {timeout:g} s"
        if isinstance(reason, OSError) and reason.strerror:
            return f"cannot reach the webhook: {reason.strerror.lower()}"
        return f"cannot reach the webhook: {reason if isinstance(reason, str) else type(reason).__name__}"
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as error:
        return f"cannot reach the webhook: {(error.strerror or type(error).__name__).lower()}"
    except Exception as error:  # noqa: BLE001 - a notification never fails a deploy
        return f"cannot post to the webhook: {type(error).__name__}"
    return None
