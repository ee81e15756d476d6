"""The errors Fapistrano reports to users as one line, without a traceback."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """fap's exit status, the same for every command: the one table of them (docs/cli.rst shows it)."""

    #: Done on every selected host.
    OK = 0
    #: Failed: a host, a command, a plugin; ``fap once`` when the command failed on any host.
    FAILED = 1
    #: Bad input (deploy.yml, a setting, the command line): no host touched.
    BAD_INPUT = 2
    #: Done, except on hosts dropped or unhealthy within ``--max-fail``.
    PARTIAL = 3
    #: The health check failed and the fleet was switched back.
    SWITCHED_BACK = 4
    #: Refused: the target is frozen (``fap lock -m``); nothing touched.
    FROZEN = 5
    #: Interrupted (SIGINT), cleaned up: 128 + the signal's number, as shells report it.
    INTERRUPTED = 130
    #: Terminated (SIGTERM), cleaned up.
    TERMINATED = 143


class FapError(Exception):
    """A failure the user can act on; its message is the whole report.

    Plugins raise it (or let ``ctx.run`` raise it) to fail a deploy with a
    clear message; the runner adds the host, the phase and the plugin name.
    """

    exit_code: int = ExitCode.FAILED


class ConfigError(FapError):
    """deploy.yml or the command line asks for something impossible."""

    exit_code = ExitCode.BAD_INPUT


class CommandFailed(FapError):
    """A command on a host exited non-zero.

    The message leads with the cause (the last lines the command printed, on
    stderr, else on stdout); the command itself is kept in :attr:`command`
    (``fap -v`` prints it as it runs).

    :attr:`status` is the command's own exit status (:attr:`returncode` is the
    same, for plugins written against 1.0); :attr:`exit_code` stays fap's own
    process exit status (1), like every :class:`FapError`. :attr:`stdout` and
    :attr:`stderr` hold the last :data:`TAIL_LINES` lines of each stream (masked;
    ``stderr`` holds stdout's when the command wrote nothing on stderr, as in 1.0).
    """

    def __init__(self, host: str, command: str, exit_code: int, stderr: str, stdout: str = "") -> None:
        #: The host the command ran on.
        self.host = host
        #: The command as shown to the operator (masked).
        self.command = command
        #: The command's own exit status (fap's process exit status is :attr:`exit_code`).
        self.status = exit_code
        #: The last lines of the command's stdout (masked).
        self.stdout = tail(stdout)
        #: The last lines of the command's stderr (masked); its stdout's when it wrote nothing on stderr, as in 1.0.
        self.stderr = tail(stderr) or self.stdout
        cause = _last_lines(self.stderr) or _last_lines(self.stdout)
        if cause:
            message = f"{host}: {cause} (command exited {exit_code})"
        else:
            message = f"{host}: command exited {exit_code} without output: {one_line(command)}"
        super().__init__(message)

    @property
    def returncode(self) -> int:
        """The command's exit status, as in 1.0 (same as :attr:`status`)."""
        return self.status


#: How many of its last lines of stdout and of stderr a :class:`CommandFailed` keeps.
TAIL_LINES = 50


def tail(text: str, count: int = TAIL_LINES) -> str:
    """The last ``count`` lines of ``text``."""
    lines = text.splitlines(keepends=True)
    return "".join(lines[-count:])


class HostUnreachable(FapError):
    """A host could not be connected to."""


class CommandKilled(HostUnreachable):
    """fap killed the command itself: the run was stopped (Ctrl-C's grace period ended, SIGTERM)."""


class HealthCheckFailed(FapError):
    """The health check failed after the switch on more hosts than ``max_fail`` allows: the run was switched back."""

    exit_code = ExitCode.SWITCHED_BACK


class Interrupted(FapError):
    """The operator pressed Ctrl-C (or the run was sent SIGTERM)."""

    exit_code = ExitCode.INTERRUPTED


class Stopped(Interrupted):
    """This host did not go on because of something elsewhere: another host failed, an earlier batch failed,
    or the run was stopped between phases. Not a failure of this host (its summary row says ``skipped``)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived outside the phases (CI cancelling a job): unwind like Ctrl-C, exit 143."""


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


class PluginFailure(FapError):
    """A hookimpl raised; carries the plugin's name and the original error."""

    def __init__(self, plugin: str, error: BaseException, phase: str | None = None) -> None:
        self.plugin = plugin
        self.error = error
        #: The phase it failed in when that is not the one running now (a command sent later: ``ctx.run_later``).
        self.phase = phase
        if isinstance(error, FapError):
            text = str(error)
        else:
            text = f"{type(error).__name__}: {error}"
        super().__init__(text)
