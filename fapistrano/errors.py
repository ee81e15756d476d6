"""The errors Fapistrano reports to users as one line, without a traceback."""

from __future__ import annotations


class FapError(Exception):
    """A failure the user can act on; its message is the whole report.

    Plugins raise it (or let ``ctx.run`` raise it) to fail a deploy with a
    clear message; the runner adds the host, the phase and the plugin name.
    """

    exit_code = 1


class ConfigError(FapError):
    """deploy.yml or the command line asks for something impossible."""

    exit_code = 2


class CommandFailed(FapError):
    """A remote command exited non-zero."""

    def __init__(self, host: str, command: str, exit_code: int, stderr: str) -> None:
        self.host = host
        self.command = command
        self.returncode = exit_code
        self.stderr = stderr
        detail = _last_lines(stderr)
        message = f"{host}: command failed (exit {exit_code}): {one_line(command)}"
        if detail:
            message += f": {detail}"
        super().__init__(message)


class HostUnreachable(FapError):
    """A host could not be connected to."""


class Interrupted(FapError):
    """The operator pressed Ctrl-C."""

    exit_code = 130


def _last_lines(text: str, count: int = 3) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:])


def one_line(command: str, width: int = 160) -> str:
    """A command as one line for an error: a multi-line script shows its first line and how many follow."""
    lines = [line.strip() for line in command.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    text = lines[0] if len(lines) == 1 else f"{lines[0]} … (+{len(lines) - 1} lines)"
    return text if len(text) <= width else text[: width - 1] + "…"
