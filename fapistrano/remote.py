"""One host: a connection opened once per run, and a way to run shell text on it.

Over SSH the connection is one ``ssh`` process per host that is both an
OpenSSH ControlMaster (so plumbum's ``SshMachine`` multiplexes over it) and a
session running ``sh`` on the host. Each command is a few lines written to
that shell's stdin; a random per-connection marker, printed after the command
with its exit status, says where its output ends. A command then costs one
round trip and no new local process (a mux client ``ssh`` per command costs
~13 ms of CPU). A command with a binary stdin (an upload) is the one
exception: it gets a channel of its own on the same connection, opened by
a client of that master, so that its bytes go straight to it.
With :attr:`Host.persist` the master outlives the run (``ssh_persist``,
see :mod:`fapistrano.connections`) and the ``ssh`` of the next run is a
client of it: no key exchange. ``connection: local`` runs the same shell
text on this machine through plumbum's ``local``.

This module knows nothing of deploys: it runs text and reports what came
back. Quoting of configured values is the caller's job (see ``layout``).
"""

from __future__ import annotations

import base64
import codecs
import os
import queue
import re
import secrets
import selectors
import shlex
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from fapistrano.connections import SshSettings, control_name, stop_master
from fapistrano.errors import CommandKilled, FapError, HostUnreachable


@dataclass(frozen=True)
class Result:
    """What a command left behind: its exit status and its output (all of it, or its last :data:`KEEP_CHARS`)."""

    exit_code: int
    stdout: str
    stderr: str
    #: Lines of output the command printed before the part kept (0: ``stdout``/``stderr`` are whole).
    stdout_dropped: int = 0
    stderr_dropped: int = 0


def ssh_hint(ssh: SshSettings, control_path: str, said: str) -> str:
    """What to do when ssh refused the key or the host's key (``; …``, after ssh's own words), else ``""``.

    ``ssh -G`` (no connection) tells which keys, user and known_hosts file ssh used with fap's options.
    """
    refused = "Permission denied" in said and "publickey" in said
    changed = "REMOTE HOST IDENTIFICATION HAS CHANGED" in said
    if not (refused or changed or "Host key verification failed" in said):
        return ""
    try:
        shown = subprocess.run(["ssh", "-G", *ssh.base_options(control_path), ssh.host], capture_output=True, text=True,
                               timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    options: dict[str, list[str]] = {}
    for line in shown.splitlines():
        name, _, value = line.partition(" ")
        options.setdefault(name, []).append(value)
    first = {name: values[0] for name, values in options.items()}
    if refused:
        keys = [path for path in (os.path.expanduser(k) for k in options.get("identityfile", [])) if os.path.exists(path)]
        agent = " and the agent's keys" if os.environ.get("SSH_AUTH_SOCK") and first.get("identitiesonly") != "yes" else ""
        offered = (f"the key {keys[0]}" if len(keys) == 1 else f"the keys {', '.join(keys)}" if keys else "no key file") + agent
        public = f"its public key ({keys[0]}.pub)" if len(keys) == 1 else "the public key of the right one"
        return (f"; ssh offered {offered} as user {first.get('user', '?')}: add {public} to the host's ~/.ssh/authorized_keys,"
                " or name the right key with IdentityFile in the ssh config or ssh_options: [-i, KEY]")
    known = os.path.expanduser((first.get("userknownhostsfile") or "~/.ssh/known_hosts").split()[0])
    alias = first.get("hostkeyalias", "none")
    name = alias if alias != "none" else first.get("hostname", ssh.host)
    port = first.get("port", "22")
    if changed:
        return (f"; the host's key is not the one {known} holds for {name}: if the server was rebuilt or its key replaced,"
                f" check the new fingerprint, then remove the old one (ssh-keygen -f {known} -R {name})")
    stored = f", each line's host name replaced by {alias}, its HostKeyAlias" if alias != "none" else ""
    return (f"; the host's key is not in {known}: check its fingerprint, then add it"
            f" (ssh-keyscan -p {port} {first.get('hostname', ssh.host)} >> {known}{stored}),"
            " or name a known_hosts file with ssh_options: [-o, UserKnownHostsFile=FILE]")


LineCallback = Callable[[str, str], None]

#: Characters of each stream of a command's output kept for its result: all of it up to this, then its tail.
KEEP_CHARS = 4 * 1024 * 1024
#: Bytes read from a command's output at once: many lines per read, not one read per line.
READ_SIZE = 64 * 1024

#: What a command may read on its stdin: text (sent whole), or bytes of any size streamed in
#: bounded pieces - ``bytes``, a binary file object, or an iterable of ``bytes``.
Stdin = str | bytes | BinaryIO | Iterable[bytes] | None


@dataclass
class Later:
    """A command whose result nobody waits for now: it goes to the host with the host's next round trip.

    ``done`` is called with its :class:`Result` once it ran (it raises to fail whoever sent it);
    a command after one that failed is not run, and its ``done`` is not called.
    """

    script: str
    done: Callable[[Result], None]
    on_line: LineCallback | None = None

#: Bytes of a binary stdin per piece fap reads and writes into its channel's pipe (a file goes by sendfile).
STREAM_CHUNK = 512 * 1024

#: Bytes a binary stdin's pipe holds (Linux's default is 64 KiB).
PIPE_SIZE = 1024 * 1024

# How long close() lets the session end by itself: a process the run left in
# the background with the session's stdout open keeps ssh waiting for ever.
CLOSE_WAIT = 3.0
#: Seconds to wait for a host to kill the command being cancelled.
CANCEL_WAIT = 5.0
#: Seconds to wait for a session's reader to read the last of what ssh wrote, once ssh has gone.
READER_WAIT = 2.0


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
        # One command at a time on the session; separate from _lock, which guards the plumbum machine.
        self._run_lock = threading.Lock()
        self._running: Any = None
        # The host's process group of the command running on a channel of its own (see _run_streaming).
        self._channel_group: int | None = None
        self._session: Session | None = None
        # Started by start(), not yet answered: (session, its control path), or why it could not start.
        self._pending: tuple[Session, str] | None = None
        self._start_error: HostUnreachable | None = None
        self._connects = 0
        self._cancelled = False
        #: Seconds the master stays up after the run (``ssh_persist``; 0: it ends with the run).
        self.persist = 0.0
        #: The run's bound on connections being set up at once (``max_connecting``), if any.
        self.gate: Any = None
        self._gate_held = False
        self._reusing = False  # a persisted master's socket was there when this connection started
        #: Commands waiting for the host's next round trip (:meth:`run_later`), oldest first.
        self._later: list[Later] = []
        #: Round trips to the host so far: each write of commands whose answer fap waits for.
        self.round_trips = 0
        #: What a command sent with the end of the session (:meth:`close`) raised: reported by the runner.
        self.failed_at_close: BaseException | None = None

    @property
    def is_local(self) -> bool:
        return self._ssh is None

    # -- connection -------------------------------------------------------

    def start(self, wait: bool = False) -> None:
        """Begin connecting without waiting: ssh's handshake runs while the caller does other work.

        :meth:`connect` waits for the answer (and starts first if nobody did).
        With a :attr:`gate` full, nothing starts unless ``wait`` (then it waits for a slot).
        """
        if self._ssh is None or self._pending is not None or self._session is not None:
            return
        if self.gate is not None and not self._gate_held:
            if not self.gate.acquire(wait):
                return
            self._gate_held = True
        if self._control_dir is None:
            self._control_dir = tempfile.mkdtemp(prefix="fap-")
        self._connects += 1
        if self.persist > 0:

            # ssh makes the master, or becomes a client of the one a command before left (no handshake).
            control_path = os.path.join(self._control_dir, control_name(self._ssh))
            self._reusing = os.path.exists(control_path)
            master = ["-o", "ControlMaster=auto", "-o", f"ControlPersist={max(1, round(self.persist))}"]
        else:
            # %C is a hash of host, port and user: short enough for a unix socket path. A reconnect
            # gets a new name: a master that was killed leaves its socket file behind.
            suffix = "" if self._connects == 1 else f"-{self._connects}"
            control_path = os.path.join(self._control_dir, f"%C{suffix}")
            master = ["-o", "ControlMaster=yes", "-o", "ControlPersist=no"]
        argv = [
            "ssh", "-T",
            *self._ssh.base_options(control_path),
            *master,
            self._ssh.host,
            "exec sh",
        ]
        try:
            self._pending = (Session(argv), control_path)
        except FileNotFoundError:
            self._start_error = HostUnreachable(f"{self.name}: cannot connect: no ssh client on this machine")
        except OSError as error:  # e.g. out of open files or processes
            self._start_error = HostUnreachable(f"{self.name}: cannot connect: cannot start ssh: {error.strerror}")

    def connect(self) -> None:
        """Open the run's one connection; raise :class:`HostUnreachable` naming the host."""
        if self._ssh is None or self._session is not None:
            return
        try:
            session, control_path, problem = self._wait_started()
            if problem is not None and self._reusing:
                # The master a command before left is gone or no longer answers: stop it, connect afresh.

                session.kill()
                stop_master(control_path)
                session, control_path, problem = self._wait_started()
        finally:
            self._release_gate()
        if problem is not None:
            session.kill()
            if problem == "timeout":
                problem = f"no answer in {self._ssh.connect_timeout} s"
            else:
                problem += ssh_hint(self._ssh, control_path, problem)
            raise HostUnreachable(f"{self.name}: cannot connect: {problem}")
        self._session = session
        self._control_path = control_path

    def _wait_started(self) -> tuple[Session, str, str | None]:
        """Start (waiting for a slot of the gate) and wait for the far shell: ``(session, control path, problem)``."""
        assert self._ssh is not None
        self.start(wait=True)
        if self._pending is None:
            # start() either left a session to wait for or said why it could not.
            error, self._start_error = self._start_error, None
            assert error is not None
            raise error
        (session, control_path), self._pending = self._pending, None
        # Through a persisted master there is no handshake: a master that does not answer soon is dead.
        wait = self._ssh.connect_timeout if self._reusing else self._ssh.connect_timeout + 20
        return session, control_path, session.wait_ready(wait)

    def _release_gate(self) -> None:
        if self._gate_held:
            self._gate_held = False
            self.gate.release()

    def close(self, last: str | None = None, last_if_failed: str | None = None) -> Result | None:
        """End the session (and plumbum's, if one was opened): EOF to the shell, then a kill if it lingers.

        ``last``: a command to run before the end (releasing the lock); its
        result is returned. On a live session it is sent together with the
        end of the shell's input: one round trip for both. ``last_if_failed``
        runs instead when a command sent later (:meth:`run_later`) that goes
        with it failed. What running it raises is raised once the session is
        closed all the same.
        """
        if last is None and self._later:
            last = "true"  # the commands still waiting go with the end of the session all the same
        try:
            return self._run_last(last, last_if_failed) if last is not None else None
        finally:
            self._later = []
            self._close_machine()
            if self._pending is not None:
                # Started, never used: nothing runs there yet, so there is nothing to wait for.
                self._pending[0].kill()
                self._pending = None
            self._release_gate()
            if self._session is not None:
                self._session.close(CLOSE_WAIT)
                self._session = None
            self._control_path = None

    def _run_last(self, script: str, if_failed: str | None = None) -> Result:
        session = self._session
        if self._ssh is None or session is None or session.dead or self._cancelled:
            if if_failed is not None and self._later:
                try:
                    self.flush_later()
                except BaseException as error:  # noqa: BLE001 - the end still runs: the runner reports it
                    self.failed_at_close = error
                    script = if_failed
            return self.run(script)  # local, not connected, or killed by cancel(): the plain path says or reconnects
        self._close_machine()  # plumbum's channel first, as without a last command
        with self._run_lock:
            entries, self._later = self._later, []
            self.round_trips += 1
            try:
                *earlier, result = session.run_batch([*((e.script, e.on_line) for e in entries), (script, None)],
                                                     None, self._sudo_user, last_always=True, end=True,
                                                     last_if_failed=if_failed if entries else None)
            except SessionLost as lost:
                raise self._lost(str(lost)) from None
        try:
            _finish(entries, earlier)
        except BaseException as error:  # noqa: BLE001 - the session is over: the runner reports it
            self.failed_at_close = error
        assert result is not None
        return result

    def _close_machine(self) -> None:
        with self._lock:
            if self._machine is not None:
                try:
                    self._machine.close()
                except Exception:  # noqa: BLE001 - closing a dead session must not hide the real error
                    pass
                self._machine = None

    @property
    def machine(self) -> Any:
        """The plumbum machine (``SshMachine`` on the run's connection, or ``local``).

        What :meth:`run_later` left waiting runs first: whoever looks at the
        host through plumbum sees what the phases before sent.
        """
        self.flush_later()
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
        """Kill the command running now, if any (the run was interrupted).

        Over ssh the command runs in the host's one session, so the session
        goes with it; the next :meth:`run` opens a new one, so that the
        runner can still clean up on this host.
        """
        process = self._running
        if process is not None and process.poll() is None:
            # Its whole session: GNU timeout (a health check) moves to a process group of its own.
            kill_session(process.pid)
        channel_group = self._channel_group
        if channel_group is not None:
            # A command on a channel of its own: the session is idle and stays, the command goes.
            self._kill_remote_group(channel_group)
        session = self._session
        if session is not None and session.busy:
            self._cancelled = True
            self._kill_remote_group(session.remote_group)
            session.kill()

    def _kill_remote_group(self, group: int | None) -> None:
        """Kill a process group on the host, and its session: ending ssh alone leaves the command running there.

        sshd made the shell the leader of a session, whose id is the group's:
        ``pkill -s`` reaches what left the group for one of its own in that
        session (GNU ``timeout``, which a health check runs under).
        """
        if group is None or self._ssh is None or self._control_path is None:
            return
        kill = f"kill -KILL -- -{group} 2>/dev/null; pkill -KILL -s {group}"
        if self._sudo_user:
            # The command runs as sudo_user: the deploy user may not signal it, sudo_user may.
            sudo = ["sudo", "-n", "-u", self._sudo_user, "--"]
            kill = (f"{kill} 2>/dev/null; {quote_all([*sudo, 'kill', '-KILL', '--', f'-{group}'])} 2>/dev/null;"
                    f" {quote_all([*sudo, 'pkill', '-KILL', '-s', str(group)])}")
        try:
            subprocess.run(["ssh", *self._client_options(), self._ssh.host, kill],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=CANCEL_WAIT, check=False, start_new_session=True)
        except (OSError, subprocess.TimeoutExpired):
            pass  # the host is gone or slow: killing ssh below is all that is left to do

    def run_later(self, script: str, done: Callable[[Result], None], on_line: LineCallback | None = None) -> None:
        """Send ``script`` with the host's next round trip (the next :meth:`run`, :meth:`flush_later` or :meth:`close`).

        The commands go in order, in one write with that next one; after one
        fails, the rest (and that next command) do not run, and the failing
        one's ``done`` raises from whoever sent it.
        """
        if self._ssh is None:
            # This machine: a round trip costs nothing, and a plugin may look at the files directly.
            done(self.run(script, on_line))
            return
        self._later.append(Later(script, done, on_line))

    def flush_later(self) -> None:
        """Run the commands :meth:`run_later` left waiting, now: one round trip (none when nothing waits)."""
        if not self._later:
            return
        if self._ssh is None:
            self._run_later_one_by_one()
            return
        with self._run_lock:
            entries, self._later = self._later, []
            session = self._session_after_cancel()
            self.round_trips += 1
            try:
                results = session.run_batch([(e.script, e.on_line) for e in entries], None, self._sudo_user)
            except SessionLost as lost:
                if self._cancelled:
                    raise CommandKilled(f"{self.name}: command killed (signal {signal.SIGKILL.value})") from None
                raise self._lost(str(lost)) from None
        _finish(entries, results)

    def discard_later(self) -> None:
        """Forget the commands waiting for the next round trip (the run failed: the release they worked on goes)."""
        self._later = []

    def _run_later_one_by_one(self) -> None:
        entries, self._later = self._later, []
        for entry in entries:
            entry.done(self.run(entry.script, entry.on_line))

    def run(
        self,
        script: str,
        on_line: LineCallback | None = None,
        stdin: Stdin = None,
    ) -> Result:
        """Run ``script`` in a new ``sh`` (as ``sudo_user`` when set); stream lines to ``on_line(stream, line)``.

        The script and a text ``stdin`` reach the host as here-documents of
        the shell's input, never as an argument: a script of any size runs
        (see :func:`command_text`). A binary ``stdin`` (bytes, a binary file,
        an iterable of bytes) goes with its script on a stream of its own
        (see :meth:`_run_streaming`): memory stays flat whatever its size.
        """
        if self._later and (self._ssh is None or not (stdin is None or isinstance(stdin, str))):
            if self._ssh is None:
                self._run_later_one_by_one()
            else:
                self.flush_later()  # a command on a channel of its own: what waits goes first, in the session
        if not (stdin is None or isinstance(stdin, str)):
            self.round_trips += 1
            return self._run_streaming(script, on_line, stdin)
        if self._ssh is not None:
            return self._run_in_session(script, on_line, stdin)
        self.round_trips += 1
        from plumbum import local

        # The same shell text as over ssh, read by a local ``sh`` from its stdin: no argument carries the script.
        program = command_text(script, stdin, self._sudo_user, "FAP-" + secrets.token_hex(12)).encode()
        process = local["sh"].popen(
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # Ctrl-C reaches fap, not the command: the runner decides when to stop.
            start_new_session=True,
        )
        self._running = process
        threading.Thread(target=_feed, args=(process.stdin, [program]), daemon=True).start()
        stdout = Output("stdout", on_line)
        stderr = Output("stderr", on_line)
        exit_code = settle(process, (Reading(process.stdout, stdout), Reading(process.stderr, stderr)))
        self._running = None
        if exit_code < 0:
            raise CommandKilled(f"{self.name}: command killed (signal {-exit_code})")
        return _result(exit_code, stdout, stderr)

    def _session_after_cancel(self) -> Session:
        """The session to run in: a new one when cancel() killed the last (the failure path still has work here)."""
        if self._cancelled and (self._session is None or self._session.dead):
            self._cancelled = False
            self._close_machine()
            if self._session is not None:
                self._session.kill()
                self._session = None
            self.connect()
        if self._session is None:
            raise HostUnreachable(f"{self.name}: not connected")
        return self._session

    def _run_in_session(self, script: str, on_line: LineCallback | None, stdin: str | None) -> Result:
        with self._run_lock:
            entries, self._later = self._later, []
            session = self._session_after_cancel()
            self.round_trips += 1
            try:
                if not entries:
                    return session.run(script, on_line, stdin, self._sudo_user)
                *earlier, result = session.run_batch([*((e.script, e.on_line) for e in entries), (script, on_line)],
                                                     stdin, self._sudo_user)
            except SessionLost as lost:
                if self._cancelled:
                    raise CommandKilled(f"{self.name}: command killed (signal {signal.SIGKILL.value})") from None
                raise self._lost(str(lost)) from None
        _finish(entries, earlier)
        assert result is not None  # run only when every command before it succeeded
        return result

    def _lost(self, said: str) -> HostUnreachable:
        """The error for a connection that ended under a command, with ssh's last word when there is one."""
        return HostUnreachable(f"{self.name}: connection lost{': ' + said if said else ''}")

    def _run_streaming(self, script: str, on_line: LineCallback | None,
                       stdin: bytes | BinaryIO | Iterable[bytes]) -> Result:
        """Run ``script`` with a binary ``stdin``: the script, then the bytes, on one stream of their own.

        Over ssh that stream is a channel of its own, multiplexed on the
        run's connection by an ``ssh`` client of the session's master
        (``ControlMaster=no``): no new connection, key exchange or login. The
        session's shell would have to count the bytes through ``head``,
        ``cat`` and a FIFO on the host; the channel carries them straight to
        the command, and a regular file goes into it by ``sendfile``, copied
        by no process of fap (see bench/upload_bench.py). Locally the stream
        is a new ``sh``'s stdin. Either way the shell runs only
        :func:`channel_input`'s command and reads the script from the head of
        the stream.
        """
        head, command = channel_input(script, self._sudo_user)
        if self._ssh is None:
            return self._run_process(["sh", "-c", command], head, stdin, on_line)
        with self._run_lock:
            session = self._session_after_cancel()
            result = self._run_process(["ssh", *self._client_options(), self._ssh.host, command], head, stdin, on_line)
            if result.exit_code == 255 and (session.dead or session.process.poll() is not None):
                said = [line.strip() for line in result.stderr.splitlines() if line.strip()]
                raise self._lost(said[-1] if said else "")
            return result

    def _run_process(self, argv: list[str], head: bytes, stdin: bytes | BinaryIO | Iterable[bytes],
                     on_line: LineCallback | None) -> Result:
        """Run ``argv`` with ``head`` and ``stdin`` on its stdin; its first line is the far shell's pid."""
        try:
            # A session of its own: Ctrl-C reaches fap, not the command; the runner decides when to stop.
            process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       start_new_session=True)
        except OSError as error:
            raise HostUnreachable(f"{self.name}: cannot start {argv[0]}: {error.strerror}") from None
        self._running = process
        try:
            threading.Thread(target=_feed_channel, args=(process.stdin, head, stdin), daemon=True).start()
            stderr = Output("stderr", on_line)
            stderr_reading = Reading(process.stderr, stderr)
            assert process.stdout is not None
            first = process.stdout.readline()
            stdout = Output("stdout", on_line)
            if first.strip().isdigit():
                self._channel_group = int(first)
            elif first:  # the shell never started: what came is ssh's or the login shell's
                stdout.add(first.decode("utf-8", errors="replace"))
            exit_code = settle(process, (Reading(process.stdout, stdout), stderr_reading))
        finally:
            self._running = None
            self._channel_group = None
        if exit_code < 0:
            raise CommandKilled(f"{self.name}: command killed (signal {-exit_code})")
        return _result(exit_code, stdout, stderr)


def _finish(entries: Sequence[Later], results: Sequence[Result | None]) -> None:
    """Tell each command sent later how it went, in order; the first failure's ``done`` raises (the rest did not run)."""
    for entry, result in zip(entries, results, strict=True):
        if result is None:
            return
        entry.done(result)


def kill_session(leader: int) -> None:
    """SIGKILL every process of this machine in the session ``leader`` started (``start_new_session``).

    Its process group first; then, from ``/proc`` (Linux), the processes that
    moved to a group of their own in the same session (GNU ``timeout`` does).
    A process that left the session (``setsid``) is out of reach, as it meant to be.
    """
    try:
        os.killpg(leader, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        entries = os.listdir("/proc")
    except OSError:
        return
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat_file:
                fields = stat_file.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After the command's name: state, ppid, pgrp, session.
        if len(fields) > 3 and fields[3] == str(leader).encode():
            try:
                os.kill(int(entry), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


class LocalProcesses:
    """The commands a run starts on this machine (``local:`` steps, a plugin's build), so that a stop ends them.

    Each runs in a session of its own (Ctrl-C reaches fap, which decides, as
    for commands on the hosts); :meth:`kill` ends every one, with whatever it
    started in that session.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[Any] = set()
        self._killed: set[int] = set()

    def started(self, process: Any) -> None:
        """``process`` runs now: :meth:`kill` ends it."""
        with self._lock:
            self._running.add(process)

    def finished(self, process: Any) -> bool:
        """``process`` ended; whether :meth:`kill` killed it."""
        with self._lock:
            self._running.discard(process)
            killed = process.pid in self._killed
            self._killed.discard(process.pid)  # a later process may get the same pid
            return killed

    def kill(self) -> None:
        """SIGKILL every running command and its session."""
        with self._lock:
            running = list(self._running)
            self._killed.update(process.pid for process in running)
        for process in running:
            kill_session(process.pid)


def _feed(pipe: Any, pieces: Iterable[bytes]) -> None:
    """Write ``pieces`` into ``pipe`` and close it; a reader that is gone stops the writing."""
    try:
        for piece in pieces:
            pipe.write(piece)
    except OSError:
        pass
    finally:
        _close_quietly(pipe)


def _feed_channel(pipe: Any, head: bytes, stdin: bytes | BinaryIO | Iterable[bytes]) -> None:
    """Write ``head``, then ``stdin``, into a channel's pipe and close it.

    A regular file goes by ``sendfile``: the kernel moves its pages into the
    pipe and fap copies none of them (on 20 hosts, a second of CPU per GB).
    """
    _widen(pipe)
    source = _regular_file(stdin)
    if source is None:
        _feed(pipe, _with_head(head, binary_pieces(stdin)))
        return
    try:
        pipe.write(head)
        pipe.flush()
        offset = source.tell()
        while sent := os.sendfile(pipe.fileno(), source.fileno(), offset, 4 * STREAM_CHUNK):
            offset += sent
        source.seek(offset)
    except OSError:
        pass  # the command stopped reading: its status says the rest
    finally:
        _close_quietly(pipe)


def _widen(pipe: Any) -> None:
    """Give the pipe 1 MiB instead of 64 KiB: ssh then reads it in a few large pieces, not thousands of small ones.

    With 20 hosts a 64 KiB pipe costs a quarter of the upload's time in
    context switches. Linux only; elsewhere, or past the user's pipe
    quota, the pipe keeps its size.
    """
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except (AttributeError, ImportError, OSError, ValueError):
        pass


def _regular_file(stdin: Any) -> BinaryIO | None:
    try:
        return stdin if stat.S_ISREG(os.fstat(stdin.fileno()).st_mode) else None
    except (AttributeError, OSError, ValueError):
        return None


def _close_quietly(pipe: Any) -> None:
    try:
        pipe.close()
    except OSError:
        pass


def binary_pieces(stdin: bytes | BinaryIO | Iterable[bytes], size: int = STREAM_CHUNK) -> Iterator[bytes]:
    """``stdin`` as pieces of at most ``size`` bytes (small ones joined): one file, one iterable, one ``bytes``."""
    if isinstance(stdin, (bytes, bytearray, memoryview)):
        data = bytes(stdin)
        for start in range(0, len(data), size):
            yield data[start:start + size]
        return
    read = getattr(stdin, "read", None)
    if read is not None:
        while True:
            piece = read(size)
            if not piece:
                return
            yield piece
    pending = bytearray()
    for piece in stdin:
        pending += piece
        while len(pending) >= size:
            yield bytes(pending[:size])
            del pending[:size]
    if pending:
        yield bytes(pending)


def _script_bytes(script: str) -> bytes:
    return (script if script.endswith("\n") else script + "\n").encode()


def _with_head(head: bytes, pieces: Iterator[bytes]) -> Iterator[bytes]:
    yield head
    yield from pieces


def read_output(pipe: Any, output: Output | Reading) -> None:
    """Read ``pipe`` (binary) to its end into ``output``, then close it."""
    for text in text_chunks(pipe):
        output.add(text)
    output.finish()
    pipe.close()


class Reading:
    """``pipe`` read to its end into ``output`` by a thread of its own, until :meth:`detach`."""

    def __init__(self, pipe: Any, output: Output) -> None:
        self._output = output
        self._attached = True
        self._owner: Any = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=read_output, args=(pipe, self), daemon=True)
        self._thread.start()

    def add(self, text: str) -> None:
        with self._lock:
            if self._attached:
                self._output.add(text)

    def finish(self) -> None:
        with self._lock:
            if self._attached:
                self._output.finish()

    def ended(self, timeout: float) -> bool:
        """Whether the pipe ended, waiting up to ``timeout`` seconds for it."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def detach(self, owner: Any) -> None:
        """What the pipe brings from now on is not the output's (the thread reads on, and drops it).

        ``owner`` (the process whose pipe it is) stays referenced until the
        pipe ends: closing the pipe (plumbum's process does, when collected)
        would wait for the thread's read, and so for the background process.
        """
        with self._lock:
            self._attached = False
            self._owner = owner


def settle(process: Any, readings: Sequence[Reading], wait: float = CLOSE_WAIT) -> int:
    """``process``'s exit status once it has exited and its output is read.

    A process the command left in the background (``server &``) inherits the
    pipes and holds them open after the command ended: the command's output
    is what came by then and within ``wait`` seconds after, and fap does not
    wait for the background process (a server would hold it for ever).
    """
    status: int = process.wait()
    deadline = time.monotonic() + wait
    for reading in readings:
        if not reading.ended(max(0.0, deadline - time.monotonic())):
            reading.detach(process)
    return status


def text_chunks(pipe: Any, size: int = READ_SIZE) -> Iterator[str]:
    """What ``pipe`` (a binary file) gives, decoded (bad UTF-8 replaced), in pieces of whole lines.

    Each piece holds as many lines as one read brought (each piece but the
    last ends with a newline), so that the cost is per read, not per line;
    a line longer than :data:`KEEP_CHARS` comes in several pieces.
    """
    chunker = LineChunker()
    read = getattr(pipe, "read1", None) or pipe.read
    while True:
        data = read(size)
        if not data:
            break
        piece = chunker.feed(data)
        if piece:
            yield piece
    rest = chunker.finish()
    if rest:
        yield rest


class LineChunker:
    """Bytes in, text out in pieces of whole lines (bad UTF-8 replaced); see :func:`text_chunks`."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""

    def feed(self, data: bytes) -> str:
        """The whole lines ``data`` completes (``""`` while a line is still open, up to :data:`KEEP_CHARS`)."""
        text = self._partial + self._decoder.decode(data)
        end = text.rfind("\n") + 1
        if end == 0 and len(text) < KEEP_CHARS:
            self._partial = text
            return ""
        if end == 0:
            end = len(text)
        self._partial = text[end:]
        return text[:end]

    def finish(self) -> str:
        """What is left once the input ended."""
        rest, self._partial = self._partial + self._decoder.decode(b"", final=True), ""
        return rest


class Output:
    """One stream of one command's output as it arrives: kept whole up to :data:`KEEP_CHARS`, then its tail.

    Lines beyond the tail are counted, not kept: a command printing millions
    of lines costs fap a bounded memory. ``on_line`` gets each line, except
    when it is marked ``latest_only`` (a live view showing the last line):
    then it gets the last line of each piece that arrives.
    """

    def __init__(self, stream: str, on_line: LineCallback | None = None) -> None:
        self.stream = stream
        self.on_line = on_line
        self._latest_only = bool(getattr(on_line, "latest_only", False))
        self._pieces: list[str] = []
        self._size = 0
        self._partial = ""  # a line not ended yet, for on_line
        #: Lines before the part kept.
        self.dropped = 0
        #: What ``on_line`` raised; it is called no more after (the output is still read to its end).
        self.failure: BaseException | None = None

    def add(self, text: str) -> None:
        """Append ``text`` (any piece of the stream)."""
        if not text:
            return
        self._pieces.append(text)
        self._size += len(text)
        if self._size > 2 * KEEP_CHARS:
            self._trim()
        if self.on_line is None or self.failure is not None:
            return
        try:
            if self._latest_only:
                lines = (self._partial + text).rsplit("\n", 2)
                self._partial = lines[-1]
                if len(lines) > 1:
                    self.on_line(self.stream, lines[-2])
                return
            *lines, self._partial = (self._partial + text).split("\n")
            for line in lines:
                self.on_line(self.stream, line)
        except BaseException as error:  # noqa: BLE001 - the output is read to its end first; the caller raises it
            self.failure = error

    def finish(self) -> None:
        """The stream ended: a last line without a newline goes to ``on_line`` too."""
        if self._partial and self.on_line is not None and self.failure is None:
            try:
                self.on_line(self.stream, self._partial)
            except BaseException as error:  # noqa: BLE001 - as in add()
                self.failure = error
        self._partial = ""

    def text(self) -> str:
        """What is kept: the whole output, or its last :data:`KEEP_CHARS` from a line's start."""
        if len(self._pieces) > 1:
            self._pieces = ["".join(self._pieces)]
        if self._size > KEEP_CHARS:
            self._trim()
        return self._pieces[0] if self._pieces else ""

    def last_char(self) -> str:
        """The last character added ("" before any)."""
        return self._pieces[-1][-1:] if self._pieces else ""

    def drop_final_newline(self) -> None:
        """Take back a final newline that was not the command's (a marker's)."""
        if self._pieces and self._pieces[-1].endswith("\n"):
            self._pieces[-1] = self._pieces[-1][:-1]
            self._size -= 1

    def lines(self) -> list[str]:
        """The lines kept, without their newlines."""
        return self.text().splitlines()

    def _trim(self) -> None:
        text = "".join(self._pieces)
        cut = len(text) - KEEP_CHARS
        newline = text.find("\n", cut)
        cut = newline + 1 if newline >= 0 else cut
        self.dropped += text.count("\n", 0, cut)
        self._pieces = [text[cut:]]
        self._size = len(self._pieces[0])


def _result(exit_code: int, stdout: Output, stderr: Output) -> Result:
    for output in (stdout, stderr):
        if output.failure is not None:
            raise output.failure
    return Result(exit_code, stdout.text(), stderr.text(), stdout.dropped, stderr.dropped)


def channel_input(script: str, sudo_user: str | None) -> tuple[bytes, str]:
    """What a channel of its own needs: the head of its stdin (before the bytes) and the login shell's command.

    The login shell (``sh``, ``bash``, ``fish``, ``zsh``: whatever the
    account has) runs only ``exec sh -c '…'``, text that reads alike in
    all of them: the shell says its pid (sshd made it a process group
    leader: :meth:`Host.cancel` kills that group), then reads exactly the
    script's length from its stdin (``head -c`` reads no further than its
    count) and runs it; the bytes that follow are the script's stdin. With
    ``sudo_user`` the first text read is ``exec sudo … sh -c '…'``, whose
    shell reads the script the same way: sudo passes stdin on, so the
    script is never an argument of any process, whatever its size.
    """
    code = _script_bytes(script)
    head = code
    if sudo_user:
        inner = quote_all(["sudo", "-n", "-H", "-u", sudo_user, "--", "sh", "-c", f'eval "$(head -c {len(code)})"'])
        wrapper = f"exec {inner}\n".encode()
        head = wrapper + code
        code = wrapper
    return head, f"exec sh -c 'echo $$; eval \"$(head -c {len(code)})\"'"


def command_text(script: str, stdin: str | None, sudo_user: str | None, tag: str) -> str:
    """Shell text that, read by a POSIX ``sh`` from its input, runs ``script`` in a new ``sh``.

    No argument of any process carries the script or its stdin: Linux caps
    one argument at 128 KiB (``Argument list too long``), and a script may
    list thousands of releases or a 300 KB ``.env``. The script is a
    here-document that the new shell reads as a file (``sh /dev/fd/3``), so
    it stays opaque text: a syntax error in it fails it alone, and ``exit``
    ends only it. Its stdin is ``/dev/null`` (never the stream of commands),
    or ``stdin`` decoded from base64 in a second here-document: that keeps
    its exact bytes and cannot contain the terminator (``-`` is not in
    base64's alphabet). sudo closes every descriptor above 2, so with
    ``sudo_user`` the same text is the program of ``sudo -u USER sh -s``,
    read from a third here-document, whose shell makes descriptor 3 itself.
    ``tag`` starts every terminator; one the script holds as a line is
    made longer until it does not.
    """
    lines = set(script.splitlines())
    end = f"{tag}-script"
    while end in lines or f"{end}-sudo" in lines:
        end += "-" + secrets.token_hex(4)
    body = script if script.endswith("\n") else script + "\n"
    if stdin is None:
        text = f"sh /dev/fd/3 3<<'{end}' </dev/null\n{body}{end}\n"
    else:
        encoded = base64.encodebytes(stdin.encode()).decode()
        text = f"base64 -d <<'{tag}-stdin' | sh /dev/fd/3 3<<'{end}'\n{encoded}{tag}-stdin\n{body}{end}\n"
    if sudo_user:
        text = f"{quote_all(['sudo', '-n', '-H', '-u', sudo_user, '--', 'sh', '-s'])} <<'{end}-sudo'\n{text}{end}-sudo\n"
    return text


def _end_of(marker: str, status: str = "$?") -> str:
    """What follows each command in a session: its status and the end of its stderr, each after ``marker``."""
    return f"printf '\\n%s %s\\n' {marker} \"{status}\"\n" + f"printf '\\n%s\\n' {marker} >&2\n"


#: The status a command of a batch reports when it did not run: one before it failed.
NOT_RUN = 254


def batch_text(commands: Sequence[tuple[str, str | None, str]], sudo_user: str | None, last_always: bool = False,
               last_if_failed: str | None = None) -> str:
    """Shell text running ``commands`` (``(script, stdin, marker)``) one after the other, each ended by its marker.

    After one fails the rest do not run (each reports :data:`NOT_RUN`), but
    the last when ``last_always`` (the unlock goes whatever happened); then
    ``last_if_failed``, when given, runs instead of the last one if one
    before failed (a history record that says so). The session's shell keeps
    the state in two variables of its own.
    """
    text = "fap_failed=\n"
    for index, (script, stdin, marker) in enumerate(commands):
        body = command_text(script, stdin, sudo_user, marker)
        if last_always and index == len(commands) - 1:
            if last_if_failed is not None:
                body = (f'if [ -z "$fap_failed" ]; then\n{body}else\n'
                        f'{command_text(last_if_failed, stdin, sudo_user, marker)}fi\n')
            text += body + "fap_status=$?\n"
        else:
            text += f'if [ -z "$fap_failed" ]; then\n{body}fap_status=$?\nelse fap_status={NOT_RUN}\nfi\n'
        text += '[ "$fap_status" -eq 0 ] || fap_failed=1\n' + _end_of(marker, "$fap_status")
    return text


class SessionLost(Exception):
    """The session's ssh process ended; the message is ssh's last word, if any."""


class Session:
    """One ``ssh`` process running ``sh`` on the host; each command is a few lines on its stdin.

    Per command the shell reads :func:`command_text`, then::

        printf '\\n%s %s\\n' FAP-<token>-<n> "$?"
        printf '\\n%s\\n' FAP-<token>-<n> >&2

    The marker starts with a newline so that it begins a line even after
    output without a trailing newline (that newline is ours and is removed
    again).
    """

    def __init__(self, argv: list[str]) -> None:
        self._token = "FAP-" + secrets.token_hex(12)
        self._count = 0
        self._lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
        # What came after a command's marker: the next command's of a batch (run_batch), else stray lines.
        self._after: list[tuple[str, str | None]] = []
        # ssh's stdin and stdout are one socket, whose other end is ours: one descriptor for both
        # directions (with stderr's pipe, two per host: a run on a few hundred hosts stays far
        # from the common limit of 1024 open files).
        self._socket, theirs = socket.socketpair()
        try:
            # A session of its own: Ctrl-C reaches fap, not ssh; the runner decides when to stop.
            self.process = subprocess.Popen(
                argv, stdin=theirs.fileno(), stdout=theirs.fileno(), stderr=subprocess.PIPE, start_new_session=True,
            )
        except BaseException:
            self._socket.close()
            raise
        finally:
            theirs.close()
        self.dead = False
        self.busy = False
        self._ended: set[str] = set()
        self._last_stderr = ""
        # One reader for both streams: one thread per host, not two.
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()
        # Queued now, answered once the far shell runs: see wait_ready(). If ssh has already given up,
        # the write fails; wait_ready() reads what it said all the same.
        # With the far shell's pid: sshd made it a process group leader, and every command it runs is in that group.
        self.remote_group: int | None = None
        self._send(f"printf '%s %s\\n' {self._token}-ready \"$$\"\n")

    def _pump(self) -> None:
        """Read ssh's stdout (our socket) and stderr as they come, in pieces of whole lines, until both end."""
        assert self.process.stderr is not None
        streams = {self._socket.fileno(): "stdout", self.process.stderr.fileno(): "stderr"}
        chunkers = {name: LineChunker() for name in streams.values()}
        # poll(2), not epoll: an epoll instance is one more descriptor per host.
        with selectors.PollSelector() as selector:
            for fd in streams:
                selector.register(fd, selectors.EVENT_READ)
            while streams:
                for key, _events in selector.select():
                    stream = streams[key.fd]
                    try:
                        data = os.read(key.fd, READ_SIZE)
                    except OSError:
                        data = b""  # our end was closed under the read: the session is over all the same
                    # Pieces of whole lines, as many as each read brings: a queue item per line cost more than the command.
                    piece = chunkers[stream].feed(data) if data else chunkers[stream].finish()
                    if piece:
                        self._lines.put((stream, piece))
                    if not data:
                        selector.unregister(key.fd)
                        del streams[key.fd]
                        self._lines.put((stream, None))

    def _send(self, text: str) -> bool:
        return self._send_bytes(text.encode())

    def _send_bytes(self, data: bytes) -> bool:
        try:
            self._socket.sendall(data)
            return True
        except (OSError, ValueError):
            return False

    def _end_input(self) -> None:
        """EOF to the far shell: no more commands (ssh reads the socket's end of input as the end of its stdin)."""
        try:
            self._socket.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def wait_ready(self, timeout: float) -> str | None:
        """``None`` once the far shell answers; ``"timeout"``; else what ssh said."""
        marker = f"{self._token}-ready"
        errors: list[str] = []
        deadline = time.monotonic() + timeout
        while len(self._ended) < 2:
            try:
                stream, line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return "timeout"
            if line is None:
                self._ended.add(stream)
                continue
            for text in line.splitlines():  # a piece may hold several lines
                if stream == "stdout" and text.startswith(marker + " ") and text[len(marker) + 1:].strip().isdigit():
                    self.remote_group = int(text[len(marker) + 1:])
                    return None
                if stream == "stderr" and text.strip() and not text.startswith("Warning: Permanently added"):
                    errors.append(text.strip())
        self.dead = True
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        return " | ".join(errors) or f"ssh exited {self.process.returncode}"

    def run(self, script: str, on_line: LineCallback | None, stdin: str | None, sudo_user: str | None = None) -> Result:
        """Run ``script`` (see :func:`command_text`); raise :class:`SessionLost` when the session ends first.

        A binary stdin never comes here: it goes on a channel of its own (:meth:`Host._run_streaming`).
        """
        self._drop_stray_lines()
        marker = self._next_marker()
        self.busy = True
        try:
            self._send_or_lose(command_text(script, stdin, sudo_user, marker) + _end_of(marker))
            return self._collect(marker, on_line)
        finally:
            self.busy = False

    def _drop_stray_lines(self) -> None:
        """Before a command: lines between commands come from something the run left in the background, not its."""
        if self.dead:
            raise SessionLost(self._last_stderr)
        stray, self._after = self._after, []
        while True:
            if stray:
                stream, line = stray.pop(0)
            else:
                try:
                    stream, line = self._lines.get_nowait()
                except queue.Empty:
                    break
            if line is None:
                self._ended.add(stream)
                self.dead = True
        if self.dead:
            raise SessionLost(self._last_stderr)

    def _next_marker(self) -> str:
        self._count += 1
        return f"{self._token}-{self._count}"

    def queue(self, script: str, sudo_user: str | None = None) -> str:
        """Send ``script`` now and return the marker :meth:`collect` reads its result up to."""
        marker = self._next_marker()
        if not self._send(command_text(script, None, sudo_user, marker) + _end_of(marker)):
            raise SessionLost("")  # the caller says why
        self.busy = True
        return marker

    def collect(self, marker: str, on_line: LineCallback | None = None) -> Result:
        """The result of the command :meth:`queue` sent with ``marker``."""
        try:
            return self._collect(marker, on_line)
        finally:
            self.busy = False

    def run_and_end(self, script: str, sudo_user: str | None = None) -> Result:
        """Run ``script`` as the last command: it and the end of the shell's input go in one write, one round trip."""
        if self.dead:
            raise SessionLost(self._last_stderr)
        try:
            marker = self.queue(script, sudo_user)
        except SessionLost:
            self.dead = True
            raise SessionLost(self._drain_stderr()) from None
        self._end_input()
        return self.collect(marker)

    def run_batch(self, commands: Sequence[tuple[str, LineCallback | None]], stdin: str | None, sudo_user: str | None = None,
                  last_always: bool = False, end: bool = False, last_if_failed: str | None = None) -> list[Result | None]:
        """Run ``commands`` (``(script, on_line)``; ``stdin`` is the last one's) in one write: one round trip.

        Each one's :class:`Result`, or ``None`` for those that did not run
        because one before failed (see :func:`batch_text`, also for
        ``last_always`` and ``last_if_failed``). ``end``: the end of the
        shell's input goes in the same write (the session's last).
        """
        self._drop_stray_lines()
        markers = [self._next_marker() for _ in commands]
        last = len(commands) - 1
        text = batch_text([(script, stdin if index == last else None, marker)
                           for index, ((script, _on_line), marker) in enumerate(zip(commands, markers, strict=True))],
                          sudo_user, last_always, last_if_failed)
        self.busy = True
        try:
            self._send_or_lose(text)
            if end:
                self._end_input()
            results: list[Result | None] = []
            failed = False
            for index, ((_script, on_line), marker) in enumerate(zip(commands, markers, strict=True)):
                result = self._collect(marker, on_line)
                ran = not failed or (last_always and index == last)
                results.append(result if ran else None)
                failed = failed or result.exit_code != 0
            return results
        finally:
            self.busy = False

    def _send_or_lose(self, data: str | bytes) -> None:
        if not self._send_bytes(data.encode() if isinstance(data, str) else data):
            self.dead = True
            raise SessionLost(self._drain_stderr())

    def _collect(self, marker: str, on_line: LineCallback | None) -> Result:
        outputs = {"stdout": Output("stdout", on_line), "stderr": Output("stderr", on_line)}
        # The status line on stdout, the marker alone on stderr; each starts a line (the printf's leading newline).
        ends = {"stdout": re.compile(rf"^{re.escape(marker)} (\d+)$", re.MULTILINE),
                "stderr": re.compile(rf"^{re.escape(marker)}$", re.MULTILINE)}
        # The newline just before a marker is ours, not the command's (it ends a last line printed without one).
        # A newline that would end an empty line is held back until the next piece says whose it is.
        held = {"stdout": "", "stderr": ""}
        done: dict[str, bool] = {"stdout": False, "stderr": False}
        code: int | None = None
        # Pieces read past this command's marker, kept in order for whoever reads next: the next command
        # of a batch (run_batch), or stray lines of what this one left in the background (dropped then).
        after: list[tuple[str, str | None]] = []
        try:
            while not (done["stdout"] and done["stderr"]):
                stream, piece = self._after.pop(0) if self._after else self._lines.get()
                if piece is None:
                    self._ended.add(stream)
                    self.dead = True
                    if done[stream]:
                        after.append((stream, None))
                        continue  # the session's last command: this stream ended after its marker, the other's is coming
                    raise SessionLost(self._drain_stderr(outputs["stderr"].lines()))
                if done[stream]:
                    after.append((stream, piece))
                    continue
                text = held[stream] + piece
                held[stream] = ""
                found = ends[stream].search(text)
                output = outputs[stream]
                if found is None:
                    if text.endswith("\n\n") or (text == "\n" and output.last_char() in ("", "\n")):
                        text, held[stream] = text[:-1], "\n"
                    output.add(text)
                    continue
                before = text[:found.start()]
                if before:
                    output.add(before[:-1])
                else:
                    output.drop_final_newline()  # ours, added with the piece before: the line it ended was shown, rightly
                rest = text[found.end():]
                rest = rest[1:] if rest.startswith("\n") else rest  # the marker line's own newline
                if rest:
                    after.append((stream, rest))
                done[stream] = True
                if stream == "stdout":
                    code = int(found.group(1))
        finally:
            self._after = after + self._after
        for output in outputs.values():
            output.finish()
        assert code is not None
        return _result(code, outputs["stdout"], outputs["stderr"])

    def _drain_stderr(self, seen: Sequence[str] = ()) -> str:
        """ssh's last stderr line once the session ended (it says why)."""
        lines = [line.strip() for line in seen if line.strip()]
        deadline = time.monotonic() + 2.0
        while "stderr" not in self._ended:
            try:
                stream, line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                self._ended.add(stream)
            elif stream == "stderr":
                lines.extend(part.strip() for part in line.splitlines() if part.strip())
        self._last_stderr = lines[-1] if lines else ""
        return self._last_stderr

    def close(self, wait: float) -> None:
        """EOF to the shell; kill ssh if it has not ended after ``wait`` seconds."""
        self._end_input()
        try:
            self.process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            self.kill()
        self.dead = True
        self._release()

    def _release(self) -> None:
        """Close our ends once ssh has gone and the reader has read them out (never under a reader or a writer)."""
        self._reader.join(timeout=READER_WAIT)
        if not self._reader.is_alive():
            self._socket.close()
            assert self.process.stderr is not None
            self.process.stderr.close()

    def kill(self) -> None:
        """End ssh now (its control socket and any multiplexed channel go with it)."""
        self.dead = True
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            try:
                self.process.kill()
            except ProcessLookupError:
                pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return
        self._release()


#: Open files a run needs: some for itself, and per host its session's two (a socket for ssh's stdin
#: and stdout, a pipe for its stderr) plus,
#: when a plugin uses ``ctx.remote``, plumbum's.
BASE_OPEN_FILES = 64
OPEN_FILES_PER_HOST = 8
#: Below this many per host a run cannot hold its sessions at all.
MIN_OPEN_FILES_PER_HOST = 2


def allow_open_files(hosts: int) -> None:
    """Raise this process's open-file limit (up to the hard limit) to what a run on ``hosts`` hosts needs.

    A soft limit of 1024 is common and ends a run on ~300 hosts; the hard
    limit is usually far higher and any process may raise its soft limit
    up to it. Raises :class:`FapError` when even the hard limit cannot hold
    the sessions.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = BASE_OPEN_FILES + OPEN_FILES_PER_HOST * hosts
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
    if soft != resource.RLIM_INFINITY and soft < ceiling:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
            soft = ceiling
        except (ValueError, OSError):
            pass
    needed = BASE_OPEN_FILES + MIN_OPEN_FILES_PER_HOST * hosts
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise FapError(f"{hosts} hosts need at least {needed} open files, but this process may open {soft}"
                       " (ulimit -n): raise the limit, or deploy fewer hosts at a time (--role)")


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

