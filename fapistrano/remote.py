"""One host: a connection opened once per run, and a way to run shell text on it.

Over SSH the connection is an OpenSSH ControlMaster started with ``-f -N``
when the run begins; every command is then a multiplexed channel on it
(~12 ms instead of a ~260 ms handshake). ``connection: local`` runs the same
shell text on this machine through plumbum's ``local``.

This module knows nothing of deploys: it runs text and reports what came
back. Quoting of configured values is the caller's job (see ``layout``).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fapistrano.errors import HostUnreachable


@dataclass(frozen=True)
class Result:
    """What a command left behind."""

    exit_code: int
    stdout: str
    stderr: str


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


LineCallback = Callable[[str, str], None]


class Host:
    """A host that runs shell text; ``connect()`` before ``run()``, ``close()`` after."""

    def __init__(
        self,
        name: str,
        ssh: SshSettings | None,
        sudo_user: str | None = None,
        control_dir: str | None = None,
    ) -> None:
        self.name = name
        self._ssh = ssh
        self._sudo_user = sudo_user
        self._control_dir = control_dir
        self._control_path: str | None = None
        self._machine: Any = None
        self._lock = threading.Lock()
        self._running: Any = None

    @property
    def is_local(self) -> bool:
        return self._ssh is None

    # -- connection -------------------------------------------------------

    def connect(self) -> None:
        """Open the run's one connection; raise :class:`HostUnreachable` naming the host."""
        if self._ssh is None:
            return
        directory = self._control_dir or tempfile.mkdtemp(prefix="fap-")
        # %C is a hash of host, port and user: short enough for a unix socket path.
        self._control_path = os.path.join(directory, "%C")
        argv = [
            "ssh",
            *self._ssh.base_options(self._control_path),
            "-o", "ControlMaster=yes",
            "-o", "ControlPersist=yes",
            "-f", "-N",
            self._ssh.host,
        ]
        # The backgrounded master keeps stderr open: a file, not a pipe, or we would wait for it.
        with tempfile.TemporaryFile(mode="w+") as errors:
            try:
                completed = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                    timeout=self._ssh.connect_timeout + 20,
                    start_new_session=True,
                )
            except subprocess.TimeoutExpired:
                raise HostUnreachable(f"{self.name}: cannot connect: no answer in {self._ssh.connect_timeout} s") from None
            except FileNotFoundError:
                raise HostUnreachable(f"{self.name}: cannot connect: no ssh client on this machine") from None
            errors.seek(0)
            message = " | ".join(line.strip() for line in errors.read().splitlines() if line.strip() and not line.startswith("Warning: Permanently added"))
        if completed.returncode != 0:
            self._control_path = None
            raise HostUnreachable(f"{self.name}: cannot connect: {message or f'ssh exited {completed.returncode}'}")

    def close(self) -> None:
        """Stop the ControlMaster (and plumbum's session, if one was opened)."""
        if self._machine is not None:
            try:
                self._machine.close()
            except Exception:  # noqa: BLE001 - closing a dead session must not hide the real error
                pass
            self._machine = None
        if self._ssh is not None and self._control_path is not None:
            subprocess.run(
                ["ssh", *self._ssh.base_options(self._control_path), "-O", "exit", self._ssh.host],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=30,
                check=False,
            )
            self._control_path = None

    @property
    def machine(self) -> Any:
        """The plumbum machine (``SshMachine`` on the run's connection, or ``local``)."""
        with self._lock:
            if self._machine is None:
                from plumbum import local
                from plumbum.machines.ssh_machine import SshMachine

                if self._ssh is None:
                    return local
                self._machine = SshMachine(
                    self._ssh.host,
                    ssh_opts=self._client_options(),
                    scp_opts=self._client_options(),
                    connect_timeout=self._ssh.connect_timeout,
                )
            return self._machine

    def _client_options(self) -> list[str]:
        assert self._ssh is not None
        if self._control_path is None:
            raise HostUnreachable(f"{self.name}: not connected")
        return [*self._ssh.base_options(self._control_path), "-o", "ControlMaster=no"]

    # -- running ----------------------------------------------------------

    def cancel(self) -> None:
        """Kill the command running now, if any (the run was interrupted)."""
        process = self._running
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, 9)
            except (ProcessLookupError, PermissionError):
                process.kill()

    def argv(self, script: str) -> list[str]:
        """The local argv that runs ``script`` on the host (as ``sudo_user`` when set)."""
        inner = ["sh", "-c", script]
        if self._sudo_user:
            inner = ["sudo", "-n", "-H", "-u", self._sudo_user, "--", *inner]
        if self._ssh is None:
            return inner
        # ssh joins its arguments with spaces for the remote shell: quote each word.
        return ["ssh", *self._client_options(), self._ssh.host, " ".join(shlex.quote(word) for word in inner)]

    def run(
        self,
        script: str,
        on_line: LineCallback | None = None,
        stdin: str | None = None,
    ) -> Result:
        """Run ``script`` with ``sh -c``; stream lines to ``on_line(stream, line)``."""
        from plumbum import local

        argv = self.argv(script)
        command = local[argv[0]][tuple(argv[1:])]
        process = command.popen(
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # Ctrl-C reaches fap, not the command: the runner decides when to stop.
            start_new_session=True,
        )
        self._running = process
        if stdin is not None:
            feeder = threading.Thread(target=_feed, args=(process.stdin, stdin), daemon=True)
            feeder.start()
        stdout: list[str] = []
        stderr: list[str] = []
        reader = threading.Thread(target=_read, args=(process.stderr, stderr, "stderr", on_line), daemon=True)
        reader.start()
        _read(process.stdout, stdout, "stdout", on_line)
        reader.join()
        exit_code = process.wait()
        self._running = None
        if exit_code < 0:
            raise HostUnreachable(f"{self.name}: command killed (signal {-exit_code})")
        if self._ssh is not None and exit_code == 255 and _lost_connection("".join(stderr)):
            raise HostUnreachable(f"{self.name}: connection lost: {''.join(stderr).strip().splitlines()[-1]}")
        return Result(exit_code, "".join(stdout), "".join(stderr))


def _feed(pipe: Any, text: str) -> None:
    try:
        pipe.write(text.encode())
        pipe.close()
    except OSError:
        pass


def _read(pipe: Any, sink: list[str], stream: str, on_line: LineCallback | None) -> None:
    for raw in iter(pipe.readline, b""):
        line = raw.decode("utf-8", errors="replace")
        sink.append(line)
        if on_line is not None:
            on_line(stream, line.rstrip("\n"))
    pipe.close()


def _lost_connection(stderr: str) -> bool:
    markers = ("Control socket connect", "Connection refused", "Connection closed", "Broken pipe",
               "Connection timed out", "mux_client", "No route to host", "Connection reset")
    return any(marker in stderr for marker in markers)


def ssh_settings_from(config: dict[str, Any] | Any, host: str, port: int | None, user: str | None) -> SshSettings:
    """Build :class:`SshSettings` from a target's resolved settings."""
    return SshSettings(
        host=host,
        user=user,
        port=port,
        ssh_config=config.get("ssh_config") or None,
        ssh_options=tuple(config.get("ssh_options") or ()),
        connect_timeout=int(config.get("ssh_connect_timeout") or 10),
    )


def quote_all(words: Sequence[str]) -> str:
    """Join ``words`` into one shell line, each quoted."""
    return " ".join(shlex.quote(word) for word in words)
