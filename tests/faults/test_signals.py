"""SIGINT and SIGTERM at every point of a deploy: what is left on each host, what fap says, its exit code."""

from __future__ import annotations

import re
import signal
import subprocess

import pytest


def still_running(marker: str) -> list[str]:
    """Processes on this machine (the fleet's hosts included) whose command line holds ``marker``."""
    found = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True, check=False).stdout
    return [line for line in found.splitlines() if "pgrep" not in line]


def test_sigterm_kills_the_running_command_cleans_up_and_exits_143(faulty):
    process = faulty.popen("deploy", "-s", "test", *faulty.block_args("updating"))
    faulty.wait_blocked()
    process.send_signal(signal.SIGTERM)
    # Not unblocked: the blocked command must be killed, not waited for.
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 143, stdout + stderr
    # The last line names the plugin whose command was killed.
    assert "fap: error: terminated (SIGTERM) in updating while faultplugin was running\n" \
           "fap: nothing changed: the new release was removed, current is unchanged on every host\n" in stderr
    assert "Traceback" not in stdout + stderr
    faulty.assert_untouched()
    assert still_running(str(faulty.signals / "go")) == []


@pytest.mark.parametrize(("sent", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_second_signal_exits_at_once_and_leaves_no_command_running(faulty, sent, code):
    process = faulty.popen("deploy", "-s", "test", *faulty.block_args("updating"))
    faulty.wait_blocked()
    process.send_signal(signal.SIGINT)
    faulty.wait_reported(process, "interrupted")
    process.send_signal(sent)
    try:
        process.communicate(timeout=20)
    finally:
        leftovers = still_running(str(faulty.signals / "go"))
        faulty.unblock()
    assert process.returncode == code
    assert leftovers == []
    assert faulty.currents() == {host: faulty.good for host in faulty.fleet.names}


@pytest.mark.parametrize(("sent", "code", "word"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_signal_after_the_switch_keeps_the_new_release_and_says_so(faulty, sent, code, word):
    process = faulty.popen("deploy", "-s", "test", *faulty.block_args("published"))
    faulty.wait_blocked()
    process.send_signal(sent)
    faulty.unblock()
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == code, stdout + stderr
    new = faulty.fleet.current("host1")
    assert new != faulty.good
    assert faulty.currents() == {host: new for host in faulty.fleet.names}
    for host in faulty.fleet.names:
        assert faulty.fleet.releases(host) == [faulty.good, new], stdout + stderr
        faulty.assert_clean(host)
    # After SIGINT the blocked command ends (unblocked) and the run stops before finishing; SIGTERM kills it in published.
    assert re.search(rf"fap: error: {re.escape(word)} (in published( while faultplugin was running)?|before finishing"
                     rf"|before finishing and in published( while faultplugin was running)?)\n"
                     rf"fap: current now points to {new} \(kept\) on every host\n", stderr), stderr
    assert "fap: to return to the previous release: fap rollback -s test" in stderr
    assert "unchanged" not in stderr
    assert "Traceback" not in stdout + stderr


def test_ctrl_c_in_a_publishing_hook_after_the_switch_switches_back(faulty):
    process = faulty.popen("deploy", "-s", "test", *faulty.block_args("after-switch"))
    faulty.wait_blocked()
    process.send_signal(signal.SIGINT)
    faulty.unblock()
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 130, stdout + stderr
    faulty.assert_untouched()
    assert "switched back to " + faulty.good in stdout
    assert "fap: error: interrupted in publishing\n" \
           "fap: nothing changed: the new release was removed, current is unchanged on every host\n" in stderr
    assert "fap rollback" not in stderr


def test_failure_in_a_publishing_hook_after_the_switch_switches_back(faulty):
    result = faulty.fap("deploy", "-s", "test", "--fault-phase", "after-switch", "--fault-host", "host2")

    assert result.exit_code == 1, result.output
    assert "host2: publishing: faultplugin: boom (command exited 7)" in result.stderr
    faulty.assert_untouched()
