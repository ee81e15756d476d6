"""healthcheck: run the configured check on one host until it passes or its timeout ends.

Answers ``fap_health_check``, which the run calls on every host after
``published`` (after ``restarted`` in ``fap restart``) before it decides for
the fleet (see :meth:`fapistrano.recovery.Recovery.health_gate`). Each attempt runs under the
host's ``timeout`` (coreutils), so a check that hangs is killed on the host at
the deadline and the run's one connection stays usable.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from fapistrano import hookimpl
from fapistrano.errors import CommandFailed, FapError
from fapistrano.hosts import HealthResult
from fapistrano.steps import remote_environment

#: How many of the last check's output lines the report shows.
SHOWN_LINES = 5
#: Seconds ``timeout`` waits after its TERM before it KILLs a check that ignores it.
KILL_AFTER = 2


def check_script(command: str, seconds: float) -> str:
    """``command`` run by ``sh`` under ``timeout``: killed on the host after ``seconds``.

    ``timeout`` makes a process group of its own, and every process the
    check started is in it: what the check leaves running (``sleep 120 &``)
    is killed when it ends, so that nothing of it outlives the check nor
    holds the session's output open.

    The command is a here-document the shell reads as a file, never an
    argument: a secret it holds stays out of the host's process list, and a
    check of any size runs (Linux caps one argument at 128 KiB).
    """
    redirections, document = _as_file(command)
    check = f"timeout -k {KILL_AFTER} {max(seconds, 0.1):.1f} sh /dev/fd/4 {redirections} &"
    return f"{check}\n{document}check=$!\nwait $check\nstatus=$?\nkill -s KILL -- -$check 2>/dev/null\nexit $status"


def _as_file(command: str) -> tuple[str, str]:
    """Redirections making ``command`` descriptor 4 (a here-document), its stdin ``/dev/null``; and the document's lines."""
    lines = set(command.splitlines())
    end = "FAP-HEALTHCHECK-" + secrets.token_hex(8)
    while end in lines:
        end += secrets.token_hex(4)
    body = command if command.endswith("\n") else command + "\n"
    return f"4<<'{end}' </dev/null", f"{body}{end}\n"


def killed_at_timeout(status: int, seconds: float, limit: float) -> bool:
    """Whether ``timeout`` ended the check: its 124 (137 after the KILL), once ``limit`` had passed.

    A check may exit 124 itself (a gateway timeout): ``timeout`` cannot fire
    before ``limit``, and the time seen here is never shorter than the host's.
    """
    return (status == 124 and seconds >= limit) or (status == 128 + 9 and seconds >= limit + KILL_AFTER)


def last_lines(text: str, count: int = SHOWN_LINES) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:])


@hookimpl
def fap_check(ctx: Any) -> list[str]:
    """``fap check`` validates the check without running it: it would test the live release, not the next one."""
    command = ctx.config["healthcheck"]
    if not command:
        return []
    redirections, document = _as_file(command)
    output = ctx.run(
        f"sh -n /dev/fd/4 2>&1 {redirections}\n{document}[ $? = 0 ] || echo fap-health-syntax\n"
        "command -v timeout >/dev/null 2>&1 || echo fap-health-no-timeout",
        readonly=True,
    )
    problems = []
    lines = output.splitlines()
    if "fap-health-syntax" in lines:
        detail = last_lines("\n".join(line for line in lines if not line.startswith("fap-health-")), 1)
        problems.append(f"healthcheck is not valid shell: {detail}")
    if "fap-health-no-timeout" in lines:
        problems.append("healthcheck needs 'timeout' (coreutils) on the host, to kill a check that hangs")
    return problems


@hookimpl
def fap_health_check(ctx: Any) -> HealthResult | None:
    """The ``healthcheck`` command, retried until it passes or its timeout ends; ``None`` when it is empty (no check)."""
    if not ctx.config["healthcheck"]:
        return None
    return check_host(ctx, ctx.stopping)


def check_host(ctx: Any, stopping: Any = None) -> HealthResult:
    """Run ``healthcheck`` on ``ctx``'s host every ``healthcheck_interval`` s until it passes or ``healthcheck_timeout`` ends.

    ``stopping`` (a ``threading.Event``) set by Ctrl-C or SIGTERM ends the
    retries: the check counts as failed. Under ``--dry-run`` the check is shown, not run.
    """
    config = ctx.config
    command = config["healthcheck"]
    interval = float(config["healthcheck_interval"])
    timeout = float(config["healthcheck_timeout"])
    started = time.monotonic()
    deadline = started + timeout
    attempts = 0
    output = ""
    environment = remote_environment(ctx)  # the FAP_* variables a run: step sees
    while True:
        attempts += 1
        limit = round(max(deadline - time.monotonic(), 0.1), 1)  # what ``timeout`` is given, to the tenth
        attempt_started = time.monotonic()
        try:
            ctx.run(check_script(command, limit), cwd=config["current_path"], env=environment)
            return HealthResult(True, attempts, time.monotonic() - started)
        except CommandFailed as failure:
            shown = failure.stdout if failure.stderr == failure.stdout else f"{failure.stdout}\n{failure.stderr}"
            output = last_lines(shown) or f"exited {failure.status}"
            if killed_at_timeout(failure.status, time.monotonic() - attempt_started, limit):
                output = f"killed at the timeout ({timeout:g} s)"
        except FapError as failure:  # interrupted before running, or the host lost
            output = str(failure)
        if stopping is not None and stopping.is_set():
            return HealthResult(False, attempts, time.monotonic() - started, output, interrupted=True)
        if time.monotonic() + interval >= deadline:
            return HealthResult(False, attempts, time.monotonic() - started, output)
        if stopping is not None and stopping.wait(interval):
            return HealthResult(False, attempts, time.monotonic() - started, output, interrupted=True)
        if stopping is None:
            time.sleep(interval)
