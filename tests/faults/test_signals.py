"""SIGINT and SIGTERM at every point of a deploy: what is left on each host, what fap says, its exit code."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from fapistrano.errors import CommandKilled
from fapistrano.remote import LocalProcesses
from fapistrano.run import Run


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


def _wait_running(command: str, count: int = 1, timeout: float = 30) -> None:
    """Wait until ``count`` processes run exactly ``command`` (fap's own command line only mentions it)."""
    deadline = time.monotonic() + timeout
    while len([line for line in still_running(command) if line.split(None, 1)[1:] == [command]]) < count:
        assert time.monotonic() < deadline, f"{command!r} never started"
        time.sleep(0.1)


def _gone(marker: str, timeout: float = 5) -> list[str]:
    """What still runs with ``marker`` in its command line after ``timeout`` s (killed processes take a moment)."""
    deadline = time.monotonic() + timeout
    while still_running(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    return still_running(marker)


def test_second_signal_still_releases_every_lock(faulty):
    process = faulty.popen("deploy", "-s", "test", *faulty.block_args("updating"))
    faulty.wait_blocked()
    process.send_signal(signal.SIGINT)
    faulty.wait_reported(process, "interrupted")
    process.send_signal(signal.SIGTERM)
    try:
        process.communicate(timeout=20)
    finally:
        faulty.unblock()
    assert process.returncode == 143
    assert [h for h in faulty.fleet.names if faulty.fleet.locked(h)] == []
    assert faulty.currents() == {host: faulty.good for host in faulty.fleet.names}


def test_sigterm_stops_a_hanging_failed_step_and_releases_the_locks(faulty):
    faulty.fleet.write_deployfile(faulty.directory, {"plugins": ["faultplugin"], "linked_files": ["config/secret.yml"],
                                                     "hooks": {"failed": [{"run": "sleep 30.7"}]}})
    process = faulty.popen("deploy", "-s", "test", "--fault-phase", "updated", "--fault-host", "host1")
    _wait_running("sleep 30.7", count=3)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 143, stdout + stderr
    assert time.monotonic() - started < 15, "the failed step was waited for"
    assert _gone("sleep 30.7") == []
    faulty.assert_untouched()


@pytest.mark.parametrize("where", ["local-step", "upload-build"])
def test_sigterm_stops_a_local_command_and_releases_the_locks(faulty, where):
    if where == "local-step":
        extra = {"plugins": ["faultplugin"], "hooks": {"updated": [{"local": "sleep 25.3"}]}}
    else:
        extra = {"plugins": ["faultplugin", "fapistrano.upload"], "upload_build": "sleep 25.3", "upload_source": "faultplugin.py"}
    faulty.fleet.write_deployfile(faulty.directory, {"linked_files": ["config/secret.yml"], **extra})
    process = faulty.popen("deploy", "-s", "test")
    _wait_running("sleep 25.3")
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 143, stdout + stderr
    assert time.monotonic() - started < 10, "the local command was waited for"
    assert _gone("sleep 25.3") == []
    assert "Traceback" not in stdout + stderr
    faulty.assert_untouched()


def test_sigterm_during_the_health_check_kills_it_on_every_host(faulty):
    process = faulty.popen("deploy", "-s", "test", "--healthcheck", "sleep 33.9", "--healthcheck-timeout", "60")
    _wait_running("sleep 33.9", count=3)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 143, stdout + stderr
    # GNU timeout puts the check in a process group of its own: killing the command's group alone leaves it.
    assert _gone("sleep 33.9") == []
    faulty.assert_untouched()


def test_a_check_that_leaves_a_process_behind_leaves_nothing_on_the_host_and_costs_no_wait(faulty):
    quick = faulty.fap("deploy", "-s", "test", "--healthcheck", "true")
    assert quick.exit_code == 0, quick.output

    result = faulty.fap("deploy", "-s", "test", "--healthcheck", "sleep 121.7 & exit 0")

    assert result.exit_code == 0, result.output
    assert _gone("sleep 121.7", timeout=1) == []
    assert result.duration < quick.duration + 2, (quick.duration, result.duration)


def test_sigterm_during_the_health_check_kills_it_with_connection_local(fap_local):
    fap_local.write_deployfile()
    process = subprocess.Popen([sys.executable, "-m", "fapistrano", "deploy", "-s", "test", "--healthcheck", "sleep 34.7",
                                "--healthcheck-timeout", "60"], cwd=fap_local.root, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    _wait_running("sleep 34.7")
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 143, stdout + stderr
    assert _gone("sleep 34.7") == []
    assert not (fap_local.path / ".fap-lock").exists()


def test_a_stopped_local_command_dies_with_what_it_started_wherever_it_moved():
    processes = LocalProcesses()
    run = Run("deploy", (), (), {}, processes=processes)
    errors: list[BaseException] = []

    def local() -> None:
        try:
            run.local("sleep 35.9 & timeout 60 sleep 36.9")
        except BaseException as error:  # noqa: BLE001 - what the test checks
            errors.append(error)

    worker = threading.Thread(target=local)
    worker.start()
    _wait_running("sleep 36.9")
    processes.kill()
    worker.join(timeout=10)

    assert not worker.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], CommandKilled), errors
    assert _gone("sleep 35.9") == [] and _gone("sleep 36.9") == []
