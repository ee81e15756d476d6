"""SSH connections that outlive a run (``ssh_persist``), and the bound on handshakes in flight (``max_connecting``).

A run's masters normally end with it. With ``ssh_persist`` they stay up
that long after fap exits (OpenSSH's ``ControlPersist``), so that the next
command on the same hosts (``fap releases`` after a deploy, a rollback)
multiplexes over them and pays no key exchange. They live in one private
directory per user (:func:`private_directory`): made with mode 0700, used
only when this user owns it and nobody else may enter it, so no other
account can reach a master. Each socket is named after everything that
chooses the connection (host, port, user, ssh config, ssh options): a
command with other ssh settings gets a master of its own.

``max_connecting`` bounds the connections being set up at once over the
whole run (a :class:`ConnectGate`); a connection already up is not counted.
A jump host's sshd drops connections beyond its ``MaxStartups`` (10 by
default): ten handshakes at a time never reach it.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SshSettings:
    """How to reach one host over ssh."""

    host: str
    user: str | None
    port: int | None
    ssh_config: str | None
    ssh_options: tuple[str, ...]
    connect_timeout: int

    def base_options(self, control_path: str) -> list[str]:
        options: list[str] = []
        if self.ssh_config:
            options += ["-F", self.ssh_config]
        options += [
            "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={self.connect_timeout}",
            "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=3",
            "-o", f"ControlPath={control_path}",
        ]
        if self.port:
            options += ["-p", str(self.port)]
        if self.user:
            options += ["-l", self.user]
        options += list(self.ssh_options)
        return options



#: How long masters stay up after a run by default: Ansible's ControlPersist, 60 s.
DEFAULT_PERSIST = "60s"
#: Connections set up at once by default: OpenSSH's default MaxStartups starts refusing beyond 10.
DEFAULT_MAX_CONNECTING = 10

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h)?")
_UNITS = {"s": 1, "m": 60, "h": 3600, None: 1}


def parse_duration(value: Any) -> float:
    """Seconds in ``value``: a number, or ``N``, ``Ns``, ``Nm``, ``Nh``; :class:`ValueError` naming what is wrong."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 60s, 5m or 0, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        found = _DURATION.fullmatch(str(value).strip())
        if found is None:
            raise ValueError(f"expected a duration such as 60s, 5m or 0, got {value!r}")
        seconds = float(found.group(1)) * _UNITS[found.group(2)]
    if seconds < 0:
        raise ValueError(f"expected a duration such as 60s, 5m or 0, got {value!r}")
    return seconds


def run_persist(values: Iterable[Any]) -> float:
    """The run's ``ssh_persist`` in seconds: the shortest of its targets' (0 for a bad value, which config refuses)."""
    try:
        return min((parse_duration(v["ssh_persist"]) for v in values), default=0.0)
    except ValueError:
        return 0.0


#: A unix socket's path holds at most this many bytes on every system ssh runs on (108 on Linux, 104 on BSDs).
MAX_SOCKET_PATH = 104
#: What follows the directory: "/", the name (:func:`control_name`), and the ".XXXXXXXXXXXXXXXX" ssh binds first.
SOCKET_NAME_ROOM = 1 + 32 + 17


class UnsafeDirectory(Exception):
    """The private directory exists but is not this user's alone: masters must not go there."""


def private_directory() -> str:
    """This user's directory for persisted masters, made if missing; :class:`UnsafeDirectory` if it is not private.

    ``$XDG_RUNTIME_DIR/fap`` (a per-user directory the system empties at
    logout) when set, else ``/tmp/fap-<uid>``. It must be a real directory
    (not a symlink), owned by this user, with no access for group or others:
    a directory another user made first (``/tmp`` is shared) is refused.
    """
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = os.path.join(runtime, "fap") if runtime and os.path.isabs(runtime) else f"/tmp/fap-{os.getuid()}"
    if len(base) + SOCKET_NAME_ROOM > MAX_SOCKET_PATH:
        raise UnsafeDirectory(f"{base} is too long a path for ssh's sockets (at most {MAX_SOCKET_PATH - SOCKET_NAME_ROOM} characters)")
    try:
        os.mkdir(base, 0o700)
    except FileExistsError:
        pass
    except OSError as error:
        raise UnsafeDirectory(f"{base}: cannot create it: {error.strerror}") from None
    info = os.lstat(base)
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeDirectory(f"{base} is not a directory")
    if info.st_uid != os.getuid():
        raise UnsafeDirectory(f"{base} belongs to another user (uid {info.st_uid})")
    if info.st_mode & 0o077:
        raise UnsafeDirectory(f"{base} may be entered by other users (mode {stat.S_IMODE(info.st_mode):o}; 700 expected)")
    return base


def control_directory(persist: float) -> tuple[str, float, str]:
    """Where a run's masters go: ``(directory, seconds they persist, warning)``.

    With ``persist`` the private directory (kept after the run); without it,
    or when the private directory is not safe (the warning says why and the
    run persists nothing), a new directory of this run's own, removed after it.
    """
    warning = ""
    if persist > 0:
        try:
            return private_directory(), persist, ""
        except UnsafeDirectory as error:
            warning = f"ssh_persist: {error}; connections end with this run"
    base = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
    return tempfile.mkdtemp(prefix="fap-", dir=base), 0.0, warning


def control_name(ssh: SshSettings) -> str:
    """A socket name for ``ssh``'s master: a hash of everything that chooses the connection.

    Not ssh's ``%C`` (host, port, user): two deploy files naming ``web1`` in
    different ssh configs, or with other ``ssh_options`` (a jump host, a
    key), must not share a master.
    """
    config = os.path.abspath(ssh.ssh_config) if ssh.ssh_config else ""
    text = "\0".join([ssh.host, ssh.user or "", str(ssh.port or ""), config, *ssh.ssh_options])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def stop_master(control_path: str, timeout: float = 5.0) -> bool:
    """Ask the master on ``control_path`` to exit; remove its socket. True when a master answered."""
    try:
        answer = subprocess.run(["ssh", "-o", f"ControlPath={control_path}", "-O", "exit", "fap-master"],
                                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False,
                                start_new_session=True)
        stopped = answer.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        stopped = False
    try:
        os.unlink(control_path)
    except OSError:
        pass
    return stopped


def close_all(directory: str) -> tuple[int, int]:
    """Stop every master in ``directory``: ``(masters stopped, stale sockets removed)``."""
    stopped = stale = 0
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        try:
            if not stat.S_ISSOCK(os.lstat(path).st_mode):
                continue
        except OSError:
            continue
        if stop_master(path):
            stopped += 1
        else:
            stale += 1
    return stopped, stale


class ConnectGate:
    """At most ``limit`` connections being set up at once, over the whole run.

    A slot is taken when ssh starts and given back when the far shell
    answers (or the attempt ends): a connection that is up holds none.
    ``peak`` is the most ever held at once.
    """

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._slots = threading.BoundedSemaphore(self.limit)
        self._lock = threading.Lock()
        self.held = 0
        self.peak = 0

    def acquire(self, wait: bool = True) -> bool:
        """Take a slot (waiting for one when ``wait``); False when none was free and ``wait`` is off."""
        if not self._slots.acquire(blocking=wait):
            return False
        with self._lock:
            self.held += 1
            self.peak = max(self.peak, self.held)
        return True

    def release(self) -> None:
        """Give a slot back."""
        with self._lock:
            self.held -= 1
        self._slots.release()


def attach(connections: Iterable[Any], persist: float, gate: ConnectGate | None) -> None:
    """Give each host's connection (a :class:`fapistrano.remote.Host`) the run's persistence and gate."""
    for connection in connections:
        connection.persist = persist
        connection.gate = gate
