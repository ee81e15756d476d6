"""A real HTTP server on loopback for the curl plugin's tests.

The fleet's hosts live in their own mount namespaces but share this
machine's network namespace, so a server on 127.0.0.1 is reachable from
every host exactly as an artifact server would be.
"""

from __future__ import annotations

import base64
import io
import os
import tarfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest

NOT_FOUND_PAGE = b"<!DOCTYPE html><html><body><h1>404 Not Found</h1><p>install.sh</p></body></html>\n"


@dataclass
class Request:
    """One request the server answered: its path, the status sent, and the credentials it carried."""

    path: str
    status: int
    credentials: str | None
    #: argv of every curl process alive while the request was being answered.
    curl_processes: list[list[str]] = field(default_factory=list)
    #: the command line of every process on this machine at that moment, one string each.
    all_command_lines: list[str] = field(default_factory=list)
    #: the request's headers, as the server read them.
    headers: dict[str, str] = field(default_factory=dict)


class ArtifactServer:
    """Serves ``files`` (path -> bytes); with ``credentials`` set, only to requests carrying them."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.credentials: tuple[str, str] | None = None
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server._answer(self)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str, user: str | None = None, password: str | None = None) -> str:
        """``http://[user:password@]127.0.0.1:PORT/path`` (user and password percent-encoded)."""
        auth = ""
        if user is not None:
            auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password is not None else "") + "@"
        return f"http://{auth}127.0.0.1:{self.port}/{path.lstrip('/')}"

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        header = handler.headers.get("Authorization") or ""
        given = base64.b64decode(header[6:]).decode() if header.startswith("Basic ") else None
        request = Request(handler.path, 0, given, *_processes(), headers=dict(handler.headers.items()))
        if self.credentials is not None and given != ":".join(self.credentials):
            self._send(handler, request, 401, b"<html><body>401 Unauthorized</body></html>\n",
                       {"WWW-Authenticate": 'Basic realm="artifacts"', "Content-Type": "text/html"})
        elif handler.path.split("?")[0] in self.files:
            self._send(handler, request, 200, self.files[handler.path.split("?")[0]], {"Content-Type": "application/octet-stream"})
        else:
            self._send(handler, request, 404, NOT_FOUND_PAGE, {"Content-Type": "text/html"})

    def _send(self, handler: BaseHTTPRequestHandler, request: Request, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        request.status = status
        with self._lock:
            self.requests.append(request)
        handler.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)


def _processes() -> tuple[list[list[str]], list[str]]:
    """Every process's argv on this machine (the hosts share its pid namespace), and curl's among them."""
    curls, lines = [], []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        except OSError:
            continue
        words = [word.decode(errors="replace") for word in argv if word]
        if not words:
            continue
        lines.append(" ".join(words))
        if os.path.basename(words[0]) == "curl":
            curls.append(words)
    return curls, lines


def make_archive(files: Mapping[str, str | bytes], gzip: bool = True, executable: tuple[str, ...] = ("install.sh",)) -> bytes:
    """A tar (or tar.gz) archive in memory holding ``files`` (name -> content); ``executable`` ones get mode 0755."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gzip else "w") as archive:
        directories = sorted({str(Path(name).parent) for name in files} - {"."})
        for directory in directories:
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(info)
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755 if name in executable else 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def artifact_server() -> Iterator[ArtifactServer]:
    """A started :class:`ArtifactServer` on 127.0.0.1 (a free port), stopped after the test."""
    server = ArtifactServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def archive() -> object:
    """:func:`make_archive`."""
    return make_archive
