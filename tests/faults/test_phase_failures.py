"""A hook fails on one host in each phase: before publishing nothing moves; while publishing the fleet switches back."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("phase", ["starting", "started", "updating", "updated"])
def test_failure_before_publishing_switches_no_host(faulty, phase):
    result = faulty.fap("deploy", "-s", "test", "--fault-phase", phase, "--fault-host", "host2")

    assert result.exit_code == 1
    assert f"host2: {phase}: faultplugin: command failed (exit 7)" in result.stderr
    assert "boom" in result.stderr
    assert "Traceback" not in result.output
    faulty.assert_untouched()
    # fap_deploy_failed ran on every host, not only the one that failed.
    for host in faulty.fleet.names:
        assert (faulty.fleet.app_dir(host) / "shared" / "failed-hook.log").read_text() == "failed\n"


def test_failure_while_publishing_switches_the_others_back(faulty):
    result = faulty.fap("deploy", "-s", "test", "--fault-phase", "publishing", "--fault-host", "host2")

    assert result.exit_code == 1
    assert "host2: publishing: faultplugin: command failed (exit 7)" in result.stderr
    assert "switched back to " + faulty.good in result.stdout
    assert "reverted" in result.stdout
    faulty.assert_untouched()


def test_failure_after_publishing_is_reported_and_rollback_brings_the_fleet_back(faulty):
    result = faulty.fap("deploy", "-s", "test", "--fault-phase", "published", "--fault-host", "host3")

    assert result.exit_code == 1
    assert "host3: published: faultplugin: command failed (exit 7)" in result.stderr
    new = faulty.fleet.current("host1")
    assert new != faulty.good
    assert faulty.currents() == {"host1": new, "host2": new, "host3": new}
    for host in faulty.fleet.names:
        faulty.assert_clean(host)

    rollback = faulty.fap("rollback", "-s", "test")
    assert rollback.exit_code == 0, rollback.output
    faulty.assert_untouched()


def test_unfinished_release_left_by_a_dead_run_never_counts(faulty):
    fleet = faulty.fleet
    stale = faulty.good + "-50"  # newer than the live release, never published
    for host in fleet.names:
        releases = fleet.app_dir(host) / "releases"
        (releases / stale).mkdir()
        (releases / f".{stale}.unfinished").touch()

    rollback = faulty.fap("rollback", "-s", "test")
    assert rollback.exit_code == 1
    assert "nothing to roll back to" in rollback.stderr

    deploy = faulty.fap("deploy", "-s", "test")
    assert deploy.exit_code == 0, deploy.output
    for host in fleet.names:
        assert stale not in fleet.releases(host)
        assert fleet.current(host) not in (stale, faulty.good)
