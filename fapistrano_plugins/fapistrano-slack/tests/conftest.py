"""A real incoming-webhook server on loopback for the slack plugin's tests.

It records every POST (path, headers, JSON body) and answers as told: 200
``ok`` as Slack does, an HTTP error, never (accepts the connection and
stays silent), or one byte every 0.2 s forever (defeats a per-read socket
timeout). The fleet's hosts share this machine's network namespace, but the
plugin posts from the deployer's machine anyway.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

#: A webhook URL's secret part, as Slack's carry it in their path.
TOKEN = "tok-Secret-42xyz"


@dataclass
class Post:
    """One POST the server received."""

    path: str
    content_type: str
    body: dict[str, Any]

    @property
    def text(self) -> str:
        return self.body["text"]


class WebhookServer:
    """Answers POSTs as :attr:`answer` says: ``"ok"``, an HTTP status (int), ``"silent"`` or ``"trickle"``."""

    def __init__(self) -> None:
        self.answer: str | int = "ok"
        self.token = TOKEN
        self.posts: list[Post] = []
        self.released = threading.Event()  # ends the handlers that never answer
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                server._answer(self)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str = f"/services/T0001/B0002/{TOKEN}") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def texts(self) -> list[str]:
        return [post.text for post in self.posts]

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length)
        self.posts.append(Post(handler.path, handler.headers.get("Content-Type", ""), json.loads(raw)))
        if self.answer == "silent":
            self.released.wait(60)
            return
        if self.answer == "trickle":
            handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
            while not self.released.wait(0.2):
                try:
                    handler.wfile.write(b"X")
                    handler.wfile.flush()
                except OSError:
                    return
            return
        status = 200 if self.answer == "ok" else int(self.answer)
        body = b"ok" if status == 200 else b"invalid_token"
        handler.send_response(status)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    """A started :class:`WebhookServer` on 127.0.0.1 (a free port), stopped after the test."""
    server = WebhookServer()
    server.thread.start()
    yield server
    server.released.set()
    time.sleep(0.05)
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def dead_url() -> str:
    """A webhook URL on a loopback port nothing listens on (connection refused)."""
    probe = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = probe.server_address[1]
    probe.server_close()
    return f"http://127.0.0.1:{port}/services/T0001/B0002/{TOKEN}"
