"""Exit codes and the command fap suggests after a failure: each one true, each one possible."""

from __future__ import annotations

from fapistrano.testing import run_fap


def test_max_fail_100_percent_with_every_host_failing_exits_1(faulty):
    result = faulty.fap("deploy", "-s", "test", "--max-fail", "100%", "--fault-phase", "updating", "--fault-host", "*")

    assert result.exit_code == 1, result.output
    assert "fap deploy: FAILED" in result.stdout
    assert "nothing changed: the new release was removed, current is unchanged on every host" in result.stderr
    faulty.assert_untouched()


def test_a_first_deploy_failing_its_check_suggests_no_impossible_rollback(fap_fleet, tmp_path):
    fap_fleet.write_deployfile(tmp_path)

    result = run_fap(["deploy", "-s", "test", "--healthcheck", "false", "--healthcheck-timeout", "0.5"], cwd=tmp_path)

    # Nothing was switched back (there was nothing to go back to): not 4, which says the fleet is back.
    assert result.exit_code == 1, result.output
    new = fap_fleet.current("host1")
    assert new is not None and all(fap_fleet.current(host) == new for host in fap_fleet.names)
    assert f"current now points to {new} (kept) on every host" in result.stderr
    assert "fap rollback" not in result.output
    assert "fap: no release to return to on host1, host2, host3 (first deploy): fix the cause and deploy again" \
        in result.stderr, result.output


def test_a_host_dying_in_publishing_after_its_switch_gets_a_rollback_hint_with_its_hosts(faulty):
    fleet = faulty.fleet
    process = faulty.popen("deploy", "-s", "test", "--ssh-connect-timeout", "3", *faulty.block_args("after-switch"))
    faulty.wait_blocked()
    fleet.kill_host("host2")  # after its switch: current there is the new release
    faulty.unblock()
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 1, stdout + stderr
    new = fleet.current("host2")
    assert new != faulty.good
    faulty.assert_untouched(["host1", "host3"])
    assert f"current now points to {new} (kept) on host2" in stderr
    assert f"host2 | publishing | could not switch back to {faulty.good}" in stdout, stdout + stderr
    assert "fap: to return to the previous release: fap rollback -s test --hosts host2\n" in stderr, stdout + stderr

    # Once the host is back, the command suggested brings it back, and only it.
    fleet.start_host("host2")
    fleet.wait_ready("host2")
    assert faulty.fap("unlock", "-s", "test", "--hosts", "host2").exit_code == 0  # the dead run's lock
    back = faulty.fap("rollback", "-s", "test", "--hosts", "host2")
    assert back.exit_code == 0, back.output
    assert faulty.currents() == {host: faulty.good for host in fleet.names}


def test_a_partial_deploy_suggests_a_rollback_of_the_hosts_it_switched_only(faulty):
    result = faulty.fap("deploy", "-s", "test", "--max-fail", "1", "--fault-phase", "published", "--fault-host", "host3",
                        "--fault-block-phase", "", "--hosts", "host2,host3")

    assert result.exit_code == 1, result.output
    # host1 was not in the run: a rollback of the whole stage would take it back a release too far.
    assert "fap: to return to the previous release: fap rollback -s test --hosts host2,host3\n" in result.stderr, result.output
