"""``parallel: N`` on a step and ``ctx.throttle(name, count)``: at most N holders at once, fleet-wide within a run.

The fleet cases (six hosts, their own timestamps) are in test_fleet_throttle.py.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from fapistrano.config import ConfigError, Step
from fapistrano.errors import Interrupted
from fapistrano.throttle import Throttles


def test_at_most_count_holders_at_once() -> None:
    throttles = Throttles()
    inside = 0
    most = 0
    guard = threading.Lock()

    def work() -> None:
        nonlocal inside, most
        with throttles.hold("pip", 2):
            with guard:
                inside += 1
                most = max(most, inside)
            time.sleep(0.05)
            with guard:
                inside -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert most == 2


def test_a_holder_that_must_wait_is_told_once() -> None:
    throttles = Throttles()
    told: list[str] = []
    release = threading.Event()

    def hold_it() -> None:
        with throttles.hold("pip", 1):
            release.wait(5)

    holder = threading.Thread(target=hold_it)
    holder.start()
    time.sleep(0.05)
    threading.Timer(0.35, release.set).start()
    with throttles.hold("pip", 1, on_wait=lambda: told.append("waiting")):
        pass
    holder.join()
    with throttles.hold("pip", 1, on_wait=lambda: told.append("not waiting")):
        pass

    assert told == ["waiting"]


def test_names_are_throttled_apart() -> None:
    throttles = Throttles()
    with throttles.hold("pip", 1), throttles.hold("npm", 1):
        pass  # a second name does not wait for the first


def test_a_failure_inside_frees_the_slot() -> None:
    throttles = Throttles()
    with pytest.raises(RuntimeError), throttles.hold("pip", 1):
        raise RuntimeError("pip failed")
    with throttles.hold("pip", 1):
        pass


def test_a_stop_while_waiting_raises_interrupted() -> None:
    throttles = Throttles()
    stopping = threading.Event()
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            with throttles.hold("pip", 1, stopping):
                pass
        except Interrupted as error:
            outcome.append(error)

    with throttles.hold("pip", 1):
        waiter = threading.Thread(target=wait)
        waiter.start()
        stopping.set()
        waiter.join(timeout=5)

    assert not waiter.is_alive()
    assert "interrupted while waiting for pip (1 at a time)" in str(outcome[0])


@pytest.mark.parametrize("count", [0, -1, True, "2", 1.5])
def test_a_count_that_is_not_a_positive_integer_is_refused(count: Any) -> None:
    with pytest.raises(ValueError, match="a count of hosts at once, 1 or more"):
        with Throttles().hold("pip", count):
            pass


def test_one_name_with_two_counts_is_refused() -> None:
    throttles = Throttles()
    with throttles.hold("pip", 2):
        pass
    with pytest.raises(ValueError, match="throttle 'pip' is used with 2 at a time already, not 3"):
        with throttles.hold("pip", 3):
            pass


def test_a_step_reads_parallel() -> None:
    step = Step.parse({"run": "pip install -r requirements.txt", "parallel": 2}, "updated", "deploy.yml:7", None, None)

    assert step.parallel == 2
    assert str(step) == "updated: run: pip install -r requirements.txt (parallel 2)"
    assert Step.parse({"run": "true"}, "updated", "deploy.yml:7", None, None).parallel is None


@pytest.mark.parametrize(("item", "message"), [
    ({"run": "true", "parallel": 0}, "deploy.yml:7: hooks: updated: parallel: expected a number of hosts, 1 or more, got 0"),
    ({"run": "true", "parallel": True}, "deploy.yml:7: hooks: updated: parallel: expected a number of hosts, 1 or more, got True"),
    ({"run": "true", "parallel": "2"}, "deploy.yml:7: hooks: updated: parallel: expected a number of hosts, 1 or more, got '2'"),
    ({"local": "true", "parallel": 2}, "deploy.yml:7: hooks: updated: parallel: is for run: steps; a local: step runs once per run"),
    ({"run": "true", "paralel": 2}, "deploy.yml:7: hooks: updated: unknown step key 'paralel' (did you mean 'parallel'?)"),
])
def test_a_bad_parallel_is_one_line_naming_the_step(item: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Step.parse(item, "updated", "deploy.yml:7", None, None)

    assert str(raised.value).startswith(message)
