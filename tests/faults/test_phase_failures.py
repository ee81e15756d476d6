"""A hook fails on one host in each phase: before publishing nothing moves; while publishing the fleet switches back."""

from __future__ import annotations

import re

import pytest


@pytest.mark.parametrize("phase", ["starting", "started", "updating", "updated"])
def test_failure_before_publishing_switches_no_host(faulty, phase):
    result = faulty.fap("deploy", "-s", "test", "--fault-phase", phase, "--fault-host", "host2")

    assert result.exit_code == 1
    assert f"fap: error: host2: {phase}: faultplugin: boom (command exited 7)\n" in result.stderr
    assert "fap: nothing changed: the new release was removed, current is unchanged on every host" in result.stderr
    assert "fap rollback" not in result.stderr
    assert "Traceback" not in result.output
    faulty.assert_untouched()
    for host in faulty.fleet.names:
        assert summary_row(result.stdout, host)["current"] == "unchanged"
    # fap_deploy_failed ran on every host, not only the one that failed.
    for host in faulty.fleet.names:
        assert (faulty.fleet.app_dir(host) / "shared" / "failed-hook.log").read_text() == "failed\n"


def test_failure_while_publishing_switches_the_others_back(faulty):
    result = faulty.fap("deploy", "-s", "test", "--fault-phase", "publishing", "--fault-host", "host2")

    assert result.exit_code == 1
    assert "host2: publishing: faultplugin: boom (command exited 7)" in result.stderr
    assert "switched back to " + faulty.good in result.stdout
    assert "reverted" in result.stdout
    faulty.assert_untouched()


def test_failure_after_publishing_is_reported_and_rollback_brings_the_fleet_back(faulty):
    result = faulty.fap("deploy", "-s", "test", "--fault-phase", "published", "--fault-host", "host3")

    assert result.exit_code == 1
    assert "host3: published: faultplugin: boom (command exited 7)" in result.stderr
    new = faulty.fleet.current("host1")
    assert new != faulty.good
    assert faulty.currents() == {"host1": new, "host2": new, "host3": new}
    # Unlike a failure before the switch, the report says where current now is, on each host, and what to run.
    assert f"fap: current now points to {new} (kept) on every host" in result.stderr
    assert "fap: to return to the previous release: fap rollback -s test" in result.stderr
    assert "unchanged" not in result.output
    for host in faulty.fleet.names:
        assert summary_row(result.stdout, host)["current"] == f"now {new}"
    for host in faulty.fleet.names:
        faulty.assert_clean(host)
    # fap_deploy_failed ran where the failure was, with the new release still live there, and nowhere else.
    assert failed_hook_runs(faulty) == {"host1": "", "host2": "", "host3": "failed\n"}

    rollback = faulty.fap("rollback", "-s", "test")
    assert rollback.exit_code == 0, rollback.output
    assert faulty.currents() == {host: faulty.good for host in faulty.fleet.names}
    # The release left is kept, marked bad: the next deploys' cleanup removes it first.
    assert faulty.releases() == {host: sorted([faulty.good, new]) for host in faulty.fleet.names}
    for host in faulty.fleet.names:
        assert (faulty.fleet.app_dir(host) / ".fap" / "marks" / f"{new}.bad.json").exists()
        faulty.assert_clean(host)


def test_the_same_failure_on_every_host_is_one_line_leading_with_its_cause(faulty):
    result = faulty.fap("deploy", "-s", "test", "--fault-phase", "updated", "--fault-host", "*")

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "fap: error: host1, host2, host3: updated: faultplugin: boom (command exited 7)",
        "fap: nothing changed: the new release was removed, current is unchanged on every host",
    ]
    # The command is shown with -v, as it runs, not in the error.
    assert "echo boom" not in result.stderr
    verbose = faulty.fap("deploy", "-s", "test", "-v", "--fault-phase", "updated", "--fault-host", "*")
    assert "host2 | updated | $ echo boom >&2; exit 7" in verbose.stdout
    faulty.assert_untouched()


def summary_row(stdout: str, host: str) -> dict[str, str]:
    """The summary table's row for ``host``, by column name."""
    lines = stdout.splitlines()
    header = next(line for line in lines if line.startswith("host  "))
    row = next(line for line in lines[lines.index(header):] if line.startswith(f"{host} "))
    cells = [cell if cell != "-" else "" for cell in re.split(r"\s{2,}", row)]
    return dict(zip(re.split(r"\s{2,}", header), cells, strict=False))


def test_unfinished_release_left_by_a_dead_run_never_counts(faulty):
    fleet = faulty.fleet
    stale = faulty.good + "-50"  # newer than the live release, never published
    for host in fleet.names:
        releases = fleet.app_dir(host) / "releases"
        (releases / stale).mkdir()
        (releases / f".{stale}.unfinished").touch()

    rollback = faulty.fap("rollback", "-s", "test")
    assert rollback.exit_code == 2
    assert "nothing to roll back to" in rollback.stderr

    deploy = faulty.fap("deploy", "-s", "test")
    assert deploy.exit_code == 0, deploy.output
    for host in fleet.names:
        assert stale not in fleet.releases(host)
        assert fleet.current(host) not in (stale, faulty.good)


def failed_hook_runs(faulty) -> dict[str, str]:
    """What the fault plugin's ``fap_deploy_failed`` wrote on each host ("" where it did not run)."""
    found = {}
    for host in faulty.fleet.names:
        log = faulty.fleet.app_dir(host) / "shared" / "failed-hook.log"
        found[host] = log.read_text() if log.exists() else ""
    return found


@pytest.mark.parametrize("phase", ["restarting", "restarted"])
def test_a_failed_restart_tells_the_plugins_on_the_host_that_failed(faulty, phase):
    result = faulty.fap("restart", "-s", "test", "--fault-phase", phase, "--fault-host", "host2")

    assert result.exit_code == 1, result.output
    assert f"host2: {phase}: faultplugin: boom (command exited 7)" in result.stderr
    assert failed_hook_runs(faulty) == {"host1": "", "host2": "failed\n", "host3": ""}
    faulty.assert_untouched()


def test_a_failed_rollback_after_its_switch_tells_the_plugins_on_the_host_that_failed(faulty):
    assert faulty.fap("deploy", "-s", "test").exit_code == 0
    result = faulty.fap("rollback", "-s", "test", "--fault-phase", "finishing_rollback", "--fault-host", "host1")

    assert result.exit_code == 1, result.output
    assert failed_hook_runs(faulty) == {"host1": "failed\n", "host2": "", "host3": ""}
    assert faulty.currents() == {host: faulty.good for host in faulty.fleet.names}


def test_a_host_dropped_under_max_fail_runs_fap_deploy_failed_while_the_others_go_live(faulty):
    result = faulty.fap("deploy", "-s", "test", "--max-fail", "1", "--fault-phase", "updated", "--fault-host", "host2")

    assert result.exit_code == 3, result.output
    assert "host2 | updated | warning: dropped from the run (--max-fail)" in result.stdout
    new = faulty.fleet.current("host1")
    assert faulty.currents() == {"host1": new, "host2": faulty.good, "host3": new}
    # The dropped host is told, as hookspecs promises; the hosts that went live are not.
    assert failed_hook_runs(faulty) == {"host1": "", "host2": "failed\n", "host3": ""}


def test_a_host_stopped_mid_switch_is_switched_back_though_fap_never_saw_it_move(faulty):
    # host2's current moves, then its publishing fails before fap records a switch there: it may have moved.
    result = faulty.fap("deploy", "-s", "test", "--fault-phase", "mid-switch", "--fault-host", "host2")

    assert result.exit_code == 1, result.output
    assert "host2: publishing: faultplugin: lost mid-switch (command exited 7)" in result.stderr
    assert "nothing changed: the new release was removed, current is unchanged on every host" in result.stderr
    faulty.assert_untouched()
