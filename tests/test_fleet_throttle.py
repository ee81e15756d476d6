"""``parallel: N`` on six real hosts: at most N run the step at once, seen from the hosts' own timestamps.

The rest of the phase stays parallel, the phase ends on every host before the
next starts, and a failure in a throttled step fails the phase as any step does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fapistrano.testing import Fleet, FleetUnavailable

HOSTS = [f"node{n}" for n in range(1, 7)]
#: Writes when the step started and ended on this host, by the host's clock, to shared/NAME.times.
RECORD = '{ date +%%s.%%N; sleep %s; date +%%s.%%N; } > "$FAP_SHARED_PATH"/%s.times'


@pytest.fixture(scope="module")
def six() -> Iterator[Fleet]:
    try:
        Fleet.check_machine()
    except FleetUnavailable as reason:
        pytest.skip(str(reason))
    with Fleet(HOSTS) as fleet:
        yield fleet


@pytest.fixture
def fleet(six: Fleet) -> Fleet:
    six.reset()
    return six


def times(fleet: Fleet, name: str) -> dict[str, tuple[float, float]]:
    found = {}
    for host in HOSTS:
        path = fleet.app_dir(host) / "shared" / f"{name}.times"
        if path.exists():
            start, end = (float(line) for line in path.read_text().split())
            found[host] = (start, end)
    return found


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one moment (an end before a start at the same instant)."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans], key=lambda e: (e[0], e[1]))
    most = inside = 0
    for _, change in edges:
        inside += change
        most = max(most, inside)
    return most


def write(fleet: Fleet, root: Path, updated: list[dict[str, Any]]) -> Path:
    return fleet.write_deployfile(root, {"hooks": {
        "updated": updated,
        "publishing": [{"run": RECORD % (0, "next")}],
    }}, hosts=HOSTS)


def test_parallel_two_on_six_hosts_runs_the_step_on_at_most_two_at_once(fleet: Fleet, fap_run: Any, tmp_path: Path,
                                                                        released: Any) -> None:
    write(fleet, tmp_path, [
        {"run": RECORD % (1, "pip"), "parallel": 2},
        {"run": RECORD % (2, "free")},
    ])

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    release = released(result)
    assert all(fleet.current(host) == release for host in HOSTS)
    pip = times(fleet, "pip")
    assert sorted(pip) == HOSTS
    assert most_at_once(list(pip.values())) == 2
    # A host that waits says why, in fap's output (four of the six wait at least once).
    waiting = [line for line in result.stdout.splitlines() if "waiting: step deploy.yml:" in line and "runs on 2 hosts at a time" in line]
    assert len(waiting) >= 4, result.stdout
    # The unthrottled step of the same phase is not held back: it overlaps on more than two hosts.
    free = times(fleet, "free")
    assert most_at_once(list(free.values())) > 2
    # The phase ends on every host before the next starts on any.
    next_phase = times(fleet, "next")
    assert min(start for start, _ in next_phase.values()) >= max(end for _, end in [*pip.values(), *free.values()])


def test_a_failure_in_a_throttled_step_fails_the_phase_and_switches_no_host(fleet: Fleet, fap_run: Any, tmp_path: Path,
                                                                           released: Any, assert_error: Any) -> None:
    write(fleet, tmp_path, [])
    first = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert first.exit_code == 0, first.output
    release = released(first)
    for host in HOSTS:
        (fleet.app_dir(host) / "shared" / "next.times").unlink()
    path = write(fleet, tmp_path, [{"run": 'test "$FAP_HOST" != node4 || { echo index refused >&2; exit 3; }',
                                    "parallel": 2}])
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "- parallel: 2" in text)

    failed = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert failed.exit_code == 1, failed.output
    assert_error(failed, f"node4: updated: core.steps: step deploy.yml:{line}", "exited 3: index refused")
    assert "nothing changed: the new release was removed" in failed.stderr
    for host in HOSTS:
        assert fleet.current(host) == release
        assert fleet.releases(host) == [release]
    assert times(fleet, "next") == {}
