"""Talking to supervisorctl: building its command lines and reading its answers.

Nothing here runs anything; :mod:`fapistrano_supervisorctl` runs the text
these functions build through ``ctx.run``. Keeping the parsing pure lets the
tests check it against supervisorctl's real output lines.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from fapistrano import FapError

#: supervisord's process states (supervisor.states.ProcessStates).
STATES = ("STOPPED", "STARTING", "RUNNING", "BACKOFF", "STOPPING", "EXITED", "FATAL", "UNKNOWN")

#: States a process passes through on its way to RUNNING (or back to it, with autorestart).
TRANSIENT = ("STARTING", "BACKOFF", "STOPPING", "EXITED")

@dataclass(frozen=True)
class Process:
    """One line of ``supervisorctl status``: ``app:web_00  RUNNING  pid 12, uptime 0:00:03``."""

    name: str
    state: str
    description: str

    def __str__(self) -> str:
        return f"{self.name} {self.state} {self.description}".rstrip()

    @property
    def pid(self) -> int | None:
        """The pid supervisord reports for a RUNNING process."""
        if self.description.startswith("pid "):
            number = self.description[4:].split(",", 1)[0]
            if number.isdigit():
                return int(number)
        return None


@dataclass(frozen=True)
class Status:
    """What ``supervisorctl status PROGRAM`` answered."""

    exit_code: int
    output: str
    processes: tuple[Process, ...]
    #: What supervisorctl was asked (``status PROGRAM``, or ``pid`` for "does it answer").
    asked: tuple[str, ...] = ("status",)
    #: ``supervisorctl pid`` printed supervisord's pid.
    pid_answered: bool = False

    @property
    def unknown_program(self) -> bool:
        """supervisord answered but does not know the program (not yet read from its conf)."""
        return not self.processes and says_unknown(self.output)

    @property
    def answered(self) -> bool:
        """supervisord answered: it listed the program, or said it does not know it."""
        return bool(self.processes) or self.unknown_program or self.pid_answered

    @property
    def all_running(self) -> bool:
        return bool(self.processes) and all(p.state == "RUNNING" for p in self.processes)

    @property
    def settled_not_running(self) -> list[Process]:
        """Processes in a state that will not become RUNNING without help (FATAL, STOPPED, UNKNOWN)."""
        return [p for p in self.processes if p.state != "RUNNING" and p.state not in TRANSIENT]

    def describe(self) -> str:
        """The processes' states on one line, or supervisorctl's own words."""
        if self.processes:
            return "; ".join(str(p) for p in self.processes)
        return last_lines(self.output) or f"no output (exit {self.exit_code})"


def command(supervisorctl: str, *args: str) -> str:
    """Shell text running the configured ``supervisorctl`` with ``args``, every word quoted.

    ``supervisorctl`` is the setting's value, split like a shell would
    (``supervisorctl -c /etc/supervisor/supervisord.conf``).
    """
    try:
        words = shlex.split(supervisorctl)
    except ValueError as error:
        raise FapError(f"supervisorctl: cannot split {supervisorctl!r}: {error}") from None
    if not words:
        raise FapError("supervisorctl: the setting is empty; it names the supervisorctl command")
    return " ".join(shlex.quote(word) for word in [*words, *args])


def parse_pid(exit_code: int, output: str) -> Status:
    """Read ``supervisorctl pid`` (supervisord's pid when it answers) into a :class:`Status` with no process."""
    answered = exit_code == 0 and output.strip().isdigit()
    return Status(exit_code, output, (), asked=("pid",), pid_answered=answered)


def parse_status(exit_code: int, output: str, program: str | None = None) -> Status:
    """Read ``supervisorctl status [PROGRAM]`` output into a :class:`Status`."""
    processes = []
    for line in output.splitlines():
        words = line.split(None, 2)
        if len(words) >= 2 and words[1] in STATES:
            processes.append(Process(words[0], words[1], words[2].strip() if len(words) > 2 else ""))
    return Status(exit_code, output, tuple(processes), asked=("status", program) if program else ("status",))


#: What ``supervisorctl reread`` says of a group whose conf changed, appeared or went away.
REREAD_CHANGES = ("changed", "available", "disappeared")


def parse_reread(output: str) -> list[tuple[str, str]]:
    """``[(group, change), ...]`` from ``supervisorctl reread`` (``web: changed``, ``worker: available``)."""
    changes = []
    for line in output.splitlines():
        group, sep, change = line.strip().rpartition(": ")
        if sep and change in REREAD_CHANGES and group:
            changes.append((group, change))
    return changes


def says_error(output: str) -> bool:
    """Whether supervisorctl reported an error with a zero status (``reread`` and ``update`` may: ``ERROR: CANT_REREAD``)."""
    return any(line.startswith("ERROR") for line in output.splitlines())


def says_unknown(output: str) -> bool:
    """Whether supervisorctl said it knows no such program or group."""
    return "ERROR (no such group)" in output or "ERROR (no such process)" in output or "ERROR: no such group" in output


def group_of(program: str) -> str:
    """The supervisor group of ``program`` (``web:*`` and ``web:web_00`` -> ``web``), as ``update`` wants it."""
    return program.split(":", 1)[0]


def last_lines(text: str, count: int = 3) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:])
