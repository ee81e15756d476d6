"""When something goes wrong on one host: no host publishes, every host is told, the new release
goes, and the error names the host, the phase and the command with its stderr."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fapistrano.testing import FapResult

HOSTS = ("host1", "host2", "host3")
WWW_APP = "/home/deploy/www/app"


def release_entries(fleet: Any, host: str) -> list[str]:
    """Everything in releases/, hidden markers included."""
    directory = fleet.app_dir(host) / "releases"
    return sorted(os.listdir(directory)) if directory.is_dir() else []


@pytest.fixture
def first_release(fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path, recorder: Any) -> str:
    """One good release on every host, the recorder enabled (its log emptied)."""
    fap_fleet.write_deployfile(tmp_path, recorder.settings())
    result = fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    recorder.log.unlink()
    return released(result)


@pytest.mark.parametrize(
    ("phase", "host"),
    [("starting", "host1"), ("started", "host2"), ("updating", "host3"), ("updated", "host2"), ("publishing", "host2")],
)
def test_a_failure_before_publishing_switches_no_host(
    fap_fleet: Any, fap_run: Any, assert_error: Any, tmp_path: Path, recorder: Any, first_release: str, phase: str, host: str
) -> None:
    result = fap_run(["deploy", "-s", "test", "--recorder-fail-phase", phase, "--recorder-fail-host", host,
                      "--recorder-fail-stderr", "disk on fire"], cwd=tmp_path)
    assert result.exit_code == 1
    # The cause (the command's stderr) leads; the command itself is shown with -v.
    error = assert_error(result, f"{host}: {phase}: fap_recorder: disk on fire (command exited 3)")
    assert error.count("disk on fire") == 1
    for each in HOSTS:
        assert fap_fleet.current(each) == first_release, each
        assert release_entries(fap_fleet, each) == [first_release], each  # new release and its marker removed
        assert not fap_fleet.locked(each), each
    events = recorder.events()
    failed = [e for e in events if e["hook"] == "fap_deploy_failed"]
    assert sorted(e["host"] for e in failed) == list(HOSTS)
    assert all("disk on fire" in e["error"] for e in failed)
    later = ("published", "finishing", "finished")
    assert not [e for e in events if e["phase"] in later]


def test_a_failure_in_publishing_switches_the_other_hosts_back(
    fap_fleet: Any, fap_run: Any, tmp_path: Path, recorder: Any, first_release: str
) -> None:
    # Plugins' publishing hooks run before the core's switch on their host, while other hosts switch.
    result = fap_run(["deploy", "-s", "test", "--recorder-fail-phase", "publishing", "--recorder-fail-host", "host3"], cwd=tmp_path)
    assert result.exit_code == 1
    for host in HOSTS:
        assert fap_fleet.current(host) == first_release
        assert fap_fleet.releases(host) == [first_release]
    assert "host3: publishing:" in result.stderr


# In publishing, host3's hook fails while host1 and host2 switch: with no release to go back to,
# switching them back removes the current they just got.
@pytest.mark.parametrize(("phase", "host"), [("updated", "host1"), ("publishing", "host3")])
def test_a_failure_on_the_first_deploy_leaves_no_current(
    fap_fleet: Any, fap_run: Any, assert_error: Any, tmp_path: Path, recorder: Any, phase: str, host: str
) -> None:
    fap_fleet.write_deployfile(tmp_path, recorder.settings(recorder_fail_phase=phase, recorder_fail_host=host))
    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert_error(result, f"{host}: {phase}:", "boom")
    if phase == "publishing":
        for switched in ("host1", "host2"):
            assert f"{switched} | publishing | warning: switched back to no release (first deploy)" in result.stdout
    for host in HOSTS:
        assert fap_fleet.current(host) is None
        assert release_entries(fap_fleet, host) == []
        assert not fap_fleet.locked(host)


def test_a_plugin_exception_names_the_plugin_and_host(
    fap_fleet: Any, fap_run: Any, assert_error: Any, tmp_path: Path, recorder: Any, first_release: str
) -> None:
    result = fap_run(["deploy", "-s", "test", "--recorder-fail-phase", "updating", "--recorder-fail-host", "host2",
                      "--recorder-fail-how", "exception", "--recorder-fail-stderr", "bad state"], cwd=tmp_path)
    assert_error(result, "host2: updating: fap_recorder: RuntimeError: bad state")
    assert "Traceback" not in result.output
    for host in HOSTS:
        assert fap_fleet.current(host) == first_release


def test_a_failure_on_every_host_names_every_host(
    fap_fleet: Any, fap_run: Any, tmp_path: Path, recorder: Any, first_release: str
) -> None:
    result = fap_run(["deploy", "-s", "test", "--recorder-fail-phase", "updated"], cwd=tmp_path)
    assert result.exit_code == 1
    # The same error on every host: one line naming them all.
    assert f"fap: error: {', '.join(HOSTS)}: updated: fap_recorder: boom (command exited 3)\n" in result.stderr
    for host in HOSTS:
        assert fap_fleet.current(host) == first_release


def test_a_failure_after_publishing_keeps_the_new_release_live(
    fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path, recorder: Any, first_release: str
) -> None:
    result = fap_run(["deploy", "-s", "test", "--recorder-fail-phase", "published", "--recorder-fail-host", "host1"], cwd=tmp_path)
    assert result.exit_code != 0
    assert "host1: published:" in result.stderr
    currents = {fap_fleet.current(host) for host in HOSTS}
    assert len(currents) == 1 and currents != {first_release}
    # Nothing is undone: fap_deploy_failed runs on the host that failed only, the new release live there.
    failed = [e for e in recorder.events() if e["hook"] == "fap_deploy_failed"]
    assert [e["host"] for e in failed] == ["host1"]
    assert not any(fap_fleet.locked(host) for host in HOSTS)


def test_a_missing_linked_file_names_host_and_path(
    fap_fleet: Any, fap_run: Any, assert_error: Any, on_host: Any, tmp_path: Path, recorder: Any, first_release: str
) -> None:
    for host in ("host1", "host3"):
        on_host(host, f"mkdir -p {WWW_APP}/shared/config && echo x > {WWW_APP}/shared/config/settings.ini")
    result = fap_run(["deploy", "-s", "test", "--linked-files", "config/settings.ini"], cwd=tmp_path)
    assert_error(result, "host2", "starting", f"missing linked file: {WWW_APP}/shared/config/settings.ini")
    for host in HOSTS:
        assert fap_fleet.current(host) == first_release
        assert release_entries(fap_fleet, host) == [first_release]
        assert not fap_fleet.locked(host)
    assert sorted(e["host"] for e in recorder.events() if e["hook"] == "fap_deploy_failed") == list(HOSTS)


def test_an_unreachable_host_is_named_and_no_host_is_changed(
    fap_fleet: Any, fap_run: Any, assert_error: Any, tmp_path: Path, recorder: Any, first_release: str
) -> None:
    before = {host: fap_fleet.tree(host) for host in HOSTS}
    fap_fleet.kill_host("host2")
    result = fap_run(["deploy", "-s", "test", "--ssh-connect-timeout", "3"], cwd=tmp_path, timeout=60)
    assert_error(result, "host2: cannot connect", "Connection refused")
    assert {host: fap_fleet.tree(host) for host in HOSTS} == before
    assert recorder.hooks() == []


def test_a_host_that_does_not_answer_fails_within_the_connect_timeout(
    fap_fleet: Any, fap_run: Any, assert_error: Any, tmp_path: Path
) -> None:
    # A frozen sshd accepts the TCP connection and never speaks: only ConnectTimeout ends the wait.
    fap_fleet.write_deployfile(tmp_path, {"ssh_connect_timeout": 2})
    frozen = fap_fleet.processes_of("host3")
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        # The subprocess timeout only keeps a hang from blocking the suite; fap must end on its own.
        result = fap_run(["deploy", "-s", "test"], cwd=tmp_path, timeout=60)
    finally:
        fap_fleet.kill_host("host3")  # the next test's reset starts it afresh
    error = assert_error(result, "host3: cannot connect", "timed out")
    # ssh's own ConnectTimeout ended the wait (fap's last-resort process timeout says "no answer in").
    assert "no answer in" not in error
    for host in ("host1", "host2"):
        assert fap_fleet.current(host) is None
        assert not fap_fleet.locked(host)


def test_a_setup_error_after_the_handshakes_began_leaves_no_ssh_running(
    fap_fleet: Any, fap_run: Any, assert_error: Any, tmp_path: Path
) -> None:
    # fap starts connecting as soon as deploy.yml is read; --log-json is opened afterwards.
    fap_fleet.write_deployfile(tmp_path)
    log = tmp_path / "no-such-dir" / "events.jsonl"
    result = fap_run(["deploy", "-s", "test", "--log-json", str(log)], cwd=tmp_path)
    assert_error(result, f"--log-json {log}", "No such file or directory")
    stray = subprocess.run(["pgrep", "-f", f"ssh .*-F {fap_fleet.ssh_config}"], capture_output=True, text=True)
    assert stray.stdout == "", stray.stdout
    for host in HOSTS:
        assert fap_fleet.current(host) is None
        assert not fap_fleet.locked(host)


def run_with_open_file_limit(soft: int, hard: int, args: list[str], cwd: Path) -> FapResult:
    """``fap ARGS`` as :func:`fapistrano.testing.run_fap` runs it, started with an open-file limit of ``soft``
    (``ulimit -Sn``) and ``hard`` (``ulimit -Hn``): a limit run_fap cannot set from outside the new process."""
    completed = subprocess.run(
        [sys.executable, "-m", "fapistrano", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)),
    )
    return FapResult(completed.returncode, completed.stdout, completed.stderr, 0.0)


def test_a_low_open_file_limit_is_raised_for_the_run(fap_fleet: Any, released: Any, tmp_path: Path) -> None:
    # A soft limit too low for three sessions; the hard limit lets any process raise it.
    fap_fleet.write_deployfile(tmp_path)
    result = run_with_open_file_limit(14, 4096, ["deploy", "-s", "test"], tmp_path)
    assert result.exit_code == 0, result.output
    for host in HOSTS:
        assert fap_fleet.current(host) == released(result)


def test_an_open_file_limit_too_low_for_the_fleet_is_one_line(fap_fleet: Any, assert_error: Any, tmp_path: Path) -> None:
    fap_fleet.write_deployfile(tmp_path)
    result = run_with_open_file_limit(20, 20, ["deploy", "-s", "test"], tmp_path)
    assert_error(result, "3 hosts need at least 70 open files", "may open 20 (ulimit -n)")
    for host in HOSTS:
        assert fap_fleet.current(host) is None


def test_a_path_the_deploy_user_cannot_write_is_named(
    fap_fleet: Any, fap_run: Any, assert_error: Any, tmp_path: Path
) -> None:
    fap_fleet.app_dir("host3").mkdir()  # made by root, as a careless provisioning would
    fap_fleet.write_deployfile(tmp_path)
    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert_error(result, "host3", "Permission denied", WWW_APP)
    assert "locked" not in result.stderr
    for host in HOSTS:
        assert fap_fleet.current(host) is None
        assert not fap_fleet.locked(host)


def test_a_deploy_locked_by_another_run_changes_nothing(
    fap_fleet: Any, fap_run: Any, assert_error: Any, on_host: Any, tmp_path: Path, recorder: Any, first_release: str
) -> None:
    on_host("host1", f"mkdir {WWW_APP}/.fap-lock && echo 'alice@laptop pid 42' > {WWW_APP}/.fap-lock/owner")
    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert_error(result, "host1", "locked by alice@laptop pid 42", "fap unlock")
    assert fap_fleet.locked("host1")  # someone else's lock stays
    assert not fap_fleet.locked("host2") and not fap_fleet.locked("host3")
    for host in HOSTS:
        assert fap_fleet.current(host) == first_release
        assert fap_fleet.releases(host) == [first_release]
    assert recorder.hooks() == []


def test_a_failure_in_one_role_stops_every_role_of_the_run(
    fap_fleet: Any, fap_run: Any, released: Any, assert_error: Any, tmp_path: Path, recorder: Any
) -> None:
    fap_fleet.write_deployfile(tmp_path, recorder.settings(stage_role_configs={
        "test": {"web": {"hosts": ["host1", "host2"]}, "worker": {"hosts": ["host3"]}},
    }))
    first = released(fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path))
    result = fap_run(["deploy", "-s", "test", "--recorder-fail-phase", "updated", "--recorder-fail-host", "host3"], cwd=tmp_path)
    assert_error(result, "host3: updated:", "boom")
    for host in HOSTS:
        assert fap_fleet.current(host) == first
        assert release_entries(fap_fleet, host) == [first]
