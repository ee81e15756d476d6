"""``fap rollback`` and ``fap restart`` on the real fleet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

HOSTS = ("host1", "host2", "host3")
ROLLBACK_HOOKS = [
    "fap_deploy_starting", "fap_deploy_started", "fap_deploy_reverting", "fap_deploy_reverted",
    "fap_deploy_publishing", "fap_deploy_published", "fap_deploy_finishing_rollback", "fap_deploy_finished",
]


@pytest.fixture
def three_releases(fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path, recorder: Any) -> list[str]:
    """Three releases deployed on every host, the recorder enabled (and its log emptied)."""
    fap_fleet.write_deployfile(tmp_path, recorder.settings())
    names = []
    for _ in range(3):
        result = fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path)
        assert result.exit_code == 0, result.output
        names.append(released(result))
    recorder.log.unlink()
    return names


def test_rollback_returns_to_the_previous_release_and_keeps_the_rolled_back_one_marked_bad(
    fap_fleet: Any, fap_run: Any, tmp_path: Path, recorder: Any, three_releases: list[str]
) -> None:
    first, second, third = three_releases
    result = fap_run(["rollback", "-s", "test"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert "rolled back" in result.stdout
    for host in HOSTS:
        assert fap_fleet.current(host) == second
        assert fap_fleet.releases(host) == [first, second, third]  # kept, marked bad
        assert (fap_fleet.app_dir(host) / ".fap" / "marks" / f"{third}.bad.json").exists()
        assert not fap_fleet.locked(host)
    for host in HOSTS:
        assert recorder.hooks(host) == ROLLBACK_HOOKS
    events = recorder.events()
    assert {(e["release"], e["rollback_from"], e["previous_release"], e["flow"]) for e in events} == {(second, third, third, "rollback")}
    # And again: one more step back.
    result = fap_run(["rollback", "-s", "test"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    for host in HOSTS:
        assert fap_fleet.current(host) == first
        assert fap_fleet.releases(host) == [first, second, third]


def test_rollback_to_a_named_release(fap_fleet: Any, fap_run: Any, tmp_path: Path, three_releases: list[str]) -> None:
    first, second, third = three_releases
    result = fap_run(["rollback", "-s", "test", "--to", first], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    for host in HOSTS:
        assert fap_fleet.current(host) == first
        assert fap_fleet.releases(host) == [first, second, third]  # the release left is kept, marked bad


def test_rollback_to_an_unknown_release_is_refused_on_every_host(
    fap_fleet: Any, fap_run: Any, tmp_path: Path, three_releases: list[str]
) -> None:
    result = fap_run(["rollback", "-s", "test", "--to", "200101-000000"], cwd=tmp_path)
    assert result.exit_code == 2, result.output  # bad input, no host touched
    assert "Traceback" not in result.output
    for host in HOSTS:
        assert f"{host}: cannot roll back to 200101-000000: no such finished release" in result.stderr
        assert fap_fleet.current(host) == three_releases[-1]
        assert fap_fleet.releases(host) == three_releases
        assert not fap_fleet.locked(host)


def test_rollback_with_only_one_release_is_refused_cleanly(
    fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path, recorder: Any
) -> None:
    fap_fleet.write_deployfile(tmp_path, recorder.settings())
    only = released(fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path))
    recorder.log.unlink()
    result = fap_run(["rollback", "-s", "test"], cwd=tmp_path)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"nothing to roll back to: {only} is the only finished release" in result.stderr
    for host in HOSTS:
        assert fap_fleet.current(host) == only
        assert fap_fleet.releases(host) == [only]
        assert not fap_fleet.locked(host)
    assert recorder.hooks() == []  # refused before any phase ran


def test_rollback_from_the_oldest_release_names_the_newer_ones_and_exits_2(
    fap_fleet: Any, fap_run: Any, tmp_path: Path, three_releases: list[str]
) -> None:
    first, second, third = three_releases
    assert fap_run(["rollback", "-s", "test", "--to", first], cwd=tmp_path).exit_code == 0

    result = fap_run(["rollback", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "only finished release" not in result.stderr
    for host in HOSTS:
        assert (f"{host}: nothing to roll back to: no release older than {first} (newer: {second}, {third});"
                " pick one with --to RELEASE") in result.stderr
        assert fap_fleet.current(host) == first
        assert not fap_fleet.locked(host)


def test_rollback_before_any_deploy_is_refused(fap_fleet: Any, fap_run: Any, tmp_path: Path) -> None:
    fap_fleet.write_deployfile(tmp_path)
    result = fap_run(["rollback", "-s", "test"], cwd=tmp_path)
    assert result.exit_code == 2, result.output
    assert "nothing to roll back: no current release" in result.stderr
    assert "Traceback" not in result.output
    for host in HOSTS:
        assert fap_fleet.current(host) is None
        assert not fap_fleet.locked(host)


def test_rollback_is_refused_everywhere_when_one_host_cannot(
    fap_fleet: Any, fap_run: Any, on_host: Any, tmp_path: Path, three_releases: list[str]
) -> None:
    # host2 has lost its older releases: it has nothing to return to, so no host moves.
    on_host("host2", f"rm -rf /home/deploy/www/app/releases/{three_releases[0]} /home/deploy/www/app/releases/{three_releases[1]}")
    result = fap_run(["rollback", "-s", "test"], cwd=tmp_path)
    assert result.exit_code != 0
    assert "host2: nothing to roll back to" in result.stderr
    for host in HOSTS:
        assert fap_fleet.current(host) == three_releases[-1]


def test_restart_runs_only_the_restart_hooks_on_the_current_release(
    fap_fleet: Any, fap_run: Any, tmp_path: Path, recorder: Any, three_releases: list[str]
) -> None:
    before = {host: fap_fleet.tree(host) for host in HOSTS}
    result = fap_run(["restart", "-s", "test"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert "restarted" in result.stdout
    events = recorder.events()
    assert [e["hook"] for e in events] == ["fap_deploy_restarting"] * 3 + ["fap_deploy_restarted"] * 3
    assert {e["host"] for e in events} == set(HOSTS)
    assert {(e["release"], e["flow"]) for e in events} == {(three_releases[-1], "restart")}
    assert {e["release_path"] for e in events} == {f"/home/deploy/www/app/releases/{three_releases[-1]}"}
    assert {host: fap_fleet.tree(host) for host in HOSTS} == before


def test_restart_failing_on_one_host_is_reported(
    fap_fleet: Any, fap_run: Any, assert_error: Any, tmp_path: Path, recorder: Any, three_releases: list[str]
) -> None:
    result = fap_run(["restart", "-s", "test", "--recorder-fail-phase", "restarting", "--recorder-fail-host", "host3",
                      "--recorder-fail-stderr", "supervisor says no"], cwd=tmp_path)
    assert_error(result, "host3", "restarting", "supervisor says no")
    for host in HOSTS:
        assert fap_fleet.current(host) == three_releases[-1]
    # A restart changes no release: fap_deploy_failed runs on the host that failed only.
    assert [e["host"] for e in recorder.events() if e["hook"] == "fap_deploy_failed"] == ["host3"]


def test_restart_before_any_deploy_is_refused(fap_fleet: Any, fap_run: Any, tmp_path: Path, recorder: Any) -> None:
    fap_fleet.write_deployfile(tmp_path, recorder.settings())
    result = fap_run(["restart", "-s", "test"], cwd=tmp_path)
    assert result.exit_code != 0
    assert "nothing deployed yet" in result.stderr
    assert "Traceback" not in result.output
    assert recorder.hooks() == []
