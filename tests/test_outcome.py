"""How a run ended is decided once, from each host's fate; the exit code and ``run.outcome`` both follow from it."""

from __future__ import annotations

import signal
from types import SimpleNamespace
from typing import Any

import pytest

from fapistrano import RunOutcome, flows
from fapistrano.errors import ExitCode, FapError, HealthCheckFailed, Interrupted, Stopped
from fapistrano.hosts import HealthResult
from fapistrano.outcome import decide, failed, refused
from fapistrano.stopping import Stop


def host(name: str, *, failed: BaseException | None = None, status: str = "", switched: bool = False,
         phase: str = "", health: HealthResult | None = None) -> Any:
    """What :func:`decide` reads of a :class:`fapistrano.hosts.Member`."""
    return SimpleNamespace(name=name, failed=failed, status=status, switched=switched, failed_phase=phase, health=health,
                           release_left=False, current_moved=switched and status != "reverted")


def stop(signum: signal.Signals | None = None) -> Stop:
    run_stop = Stop(lambda message: None, lambda: None, lambda: None)
    if signum is not None:
        run_stop.signal = signum
        run_stop.requested.set()
    return run_stop


def test_every_host_done_is_ok_and_exit_0() -> None:
    outcome = decide(flows.RELEASE, [host("web1", switched=True), host("web2", switched=True)], True, "r2", stop())

    assert (outcome.result, outcome.exit_code, outcome.ok) == (RunOutcome.OK, ExitCode.OK, True)
    assert outcome.moved == ["web1", "web2"] and outcome.errors == []


def test_a_host_dropped_within_max_fail_is_partial_and_exit_3() -> None:
    members = [host("web1", switched=True), host("web2", failed=FapError("no space left"), status="dropped", phase="updating")]

    outcome = decide(flows.RELEASE, members, True, "r2", stop())

    assert (outcome.result, outcome.exit_code) == (RunOutcome.PARTIAL, ExitCode.PARTIAL)
    assert outcome.errors == ["web2: updating: no space left"]


def test_a_failed_health_check_switched_back_is_exit_4() -> None:
    members = [host("web1", failed=HealthCheckFailed("failed its health check: 503"), status="reverted", phase="healthcheck"),
               host("web2", failed=Stopped("healthy, stopped"), status="reverted", phase="healthcheck")]

    outcome = decide(flows.RELEASE, members, False, "r2", stop())

    assert (outcome.result, outcome.exit_code) == (RunOutcome.SWITCHED_BACK, ExitCode.SWITCHED_BACK)
    assert outcome.where == "nothing changed: the new release was removed, current is unchanged on every host"


def test_a_failed_switch_switched_back_is_switched_back_but_exit_1() -> None:
    members = [host("web1", failed=FapError("ln: cannot move"), status="reverted", phase="publishing"),
               host("web2", failed=Stopped("stopped: another host failed"))]

    outcome = decide(flows.RELEASE, members, False, "r2", stop())

    assert (outcome.result, outcome.exit_code) == (RunOutcome.SWITCHED_BACK, ExitCode.FAILED)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, ExitCode.INTERRUPTED), (signal.SIGTERM, ExitCode.TERMINATED)])
def test_a_stopped_run_exits_with_its_signals_code(signum: signal.Signals, code: ExitCode) -> None:
    members = [host("web1", failed=Interrupted("interrupted"), phase="updating")]

    outcome = decide(flows.RELEASE, members, False, "r2", stop(signum))

    assert (outcome.result, outcome.exit_code) == (RunOutcome.FAILED, code)
    assert outcome.errors[-1] in ("interrupted in updating", "terminated (SIGTERM) in updating")


def test_a_refusal_before_any_host_changed_keeps_its_cause() -> None:
    assert refused(["frozen"], ExitCode.FROZEN).exit_code == ExitCode.FROZEN
    assert refused(["bad input"], ExitCode.BAD_INPUT).result is RunOutcome.FAILED
    assert failed([host("web1", switched=True)], ["after the switch"]).result is RunOutcome.FAILED
