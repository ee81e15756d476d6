"""The health check after the switch, on the real fleet: the whole run back to the old release, exit 4."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.fleet

#: Fails on host2 only, saying why on stdout.
FAILS_ON_HOST2 = 'if [ "$FAP_HOST" = host2 ]; then echo "503 from $FAP_HOST release $FAP_RELEASE"; exit 1; fi'


def deploy(fap_run: Any, tmp_path: Path, *args: str) -> Any:
    return fap_run(["deploy", "-s", "test", *args], cwd=tmp_path)


@pytest.fixture
def good(fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path) -> str:
    """A release live on every host, deployed without a check."""
    fap_fleet.write_deployfile(tmp_path)
    result = deploy(fap_run, tmp_path, "-q")
    assert result.exit_code == 0, result.output
    return released(result)


def test_a_check_failing_on_one_host_switches_every_host_back_and_exits_4(fap_fleet, fap_run, tmp_path, good):
    result = deploy(fap_run, tmp_path, "--healthcheck", FAILS_ON_HOST2, "--healthcheck-interval", "0.2",
                    "--healthcheck-timeout", "1")

    assert result.exit_code == 4, result.output
    for host in fap_fleet.names:
        assert fap_fleet.current(host) == good, result.output
        assert fap_fleet.releases(host) == [good], result.output  # the new release is removed
        assert not fap_fleet.locked(host)
    assert "host2" in result.stderr and "503 from host2 release" in result.output
    assert result.output.count(f"switched back to {good}") == 3, result.output
    assert "healthy: check passed" in result.output  # host1 and host3 said so
    assert "Traceback" not in result.output


def test_a_passing_check_leaves_the_new_release_live(fap_fleet, fap_run, released, tmp_path, good):
    result = deploy(fap_run, tmp_path, "--healthcheck", 'test -n "$FAP_RELEASE" && test "$FAP_STAGE" = test')

    assert result.exit_code == 0, result.output
    new = released(result)
    for host in fap_fleet.names:
        assert fap_fleet.current(host) == new
    assert result.output.count("healthy: check passed") == 3, result.output


def test_a_hanging_check_is_killed_at_the_timeout_and_the_host_still_switches_back(fap_fleet, fap_run, tmp_path, good):
    started = time.monotonic()
    result = deploy(fap_run, tmp_path, "--healthcheck", "sleep 300", "--healthcheck-timeout", "2")

    assert result.exit_code == 4, result.output
    assert time.monotonic() - started < 60
    assert "killed at the timeout (2 s)" in result.output
    for host in fap_fleet.names:
        assert fap_fleet.current(host) == good
        assert fap_fleet.releases(host) == [good]
    # Nothing left running: the killed check's processes are gone (on a loaded machine, give them a moment).
    # The deploy user's only: the hosts share this machine's process table with whatever else runs on it.
    left = ["pgrep", "-u", "deploy", "-fa", "sleep 300"]
    deadline = time.monotonic() + 10
    while fap_fleet.in_host("host1", left).returncode == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fap_fleet.in_host("host1", left).stdout == ""


def test_unhealthy_hosts_within_max_fail_are_reported_and_exit_3(fap_fleet, fap_run, released, tmp_path, good):
    result = deploy(fap_run, tmp_path, "--max-fail", "1", "--healthcheck", FAILS_ON_HOST2, "--healthcheck-timeout", "1")

    assert result.exit_code == 3, result.output
    new = released(result) if "deployed release" in result.stdout else fap_fleet.current("host1")
    assert new != good
    for host in fap_fleet.names:
        assert fap_fleet.current(host) == new
    assert "host2: failed its health check" in result.stderr, result.output
    assert "switched back" not in result.output


def test_a_first_deploy_has_nothing_to_go_back_to_and_stays_on_the_new_release(fap_fleet, fap_run, tmp_path):
    fap_fleet.write_deployfile(tmp_path)
    result = deploy(fap_run, tmp_path, "--healthcheck", FAILS_ON_HOST2, "--healthcheck-timeout", "1")

    assert result.exit_code == 1, result.output  # not 4: no host was switched back
    new = fap_fleet.current("host1")
    assert new is not None
    for host in fap_fleet.names:
        assert fap_fleet.current(host) == new
        assert fap_fleet.releases(host) == [new]
    assert result.output.count("first deploy: nothing to switch back to") == 3, result.output


def test_with_batches_a_failing_batch_switches_earlier_batches_back_too(fap_fleet, fap_run, tmp_path, good):
    check = 'if [ "$FAP_HOST" = host3 ]; then exit 1; fi'
    result = deploy(fap_run, tmp_path, "--batch-size", "1", "--healthcheck", check, "--healthcheck-timeout", "1")

    assert result.exit_code == 4, result.output
    for host in fap_fleet.names:
        assert fap_fleet.current(host) == good
        assert fap_fleet.releases(host) == [good]
    assert result.output.count(f"switched back to {good}") == 3, result.output


def test_rollback_and_restart_run_the_check_and_report_without_switching(fap_fleet, fap_run, released, tmp_path, good):
    second = released(deploy(fap_run, tmp_path, "-q"))

    back = fap_run(["rollback", "-s", "test", "--healthcheck", FAILS_ON_HOST2, "--healthcheck-timeout", "1"], cwd=tmp_path)
    assert back.exit_code == 1, back.output
    for host in fap_fleet.names:
        assert fap_fleet.current(host) == good
    assert "host2" in back.stderr and "503 from host2" in back.output
    assert "switched back" not in back.output
    assert second  # the release left, kept on host2 (its finishing did not run)

    restart = fap_run(["restart", "-s", "test", "--healthcheck", FAILS_ON_HOST2, "--healthcheck-timeout", "1"], cwd=tmp_path)
    assert restart.exit_code == 1, restart.output
    assert "503 from host2" in restart.output
    for host in fap_fleet.names:
        assert fap_fleet.current(host) == good


def test_dry_run_shows_the_check_and_fap_check_does_not_run_it(fap_fleet, fap_run, tmp_path, good):
    mark = "/home/deploy/www/app/shared/checked"
    check = f"touch {mark}"
    dry = fap_run(["--dry-run", "-v", "deploy", "-s", "test", "--healthcheck", check], cwd=tmp_path)
    assert dry.exit_code == 0, dry.output
    assert check in dry.output
    checked = fap_run(["check", "-s", "test", "--healthcheck", check], cwd=tmp_path)
    assert checked.exit_code == 0, checked.output
    for host in fap_fleet.names:
        assert not (fap_fleet.app_dir(host) / "shared" / "checked").exists()
        assert fap_fleet.current(host) == good


@pytest.mark.parametrize(("sent", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_the_check_counts_as_a_failed_check(fap_fleet, tmp_path, good, sent, code):
    started = fap_fleet.app_dir("host1") / "shared" / "checking"
    check = 'touch "$FAP_RELEASE_PATH/../../shared/checking"; exit 1'
    process = subprocess.Popen([sys.executable, "-m", "fapistrano", "deploy", "-s", "test", "--healthcheck", check],
                               cwd=tmp_path, env={**os.environ, "COLUMNS": "200"}, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not started.exists():
        assert time.monotonic() < deadline, "the check never started"
        time.sleep(0.05)
    process.send_signal(sent)
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == code, stdout + stderr
    for host in fap_fleet.names:
        assert fap_fleet.current(host) == good, stdout + stderr
        assert fap_fleet.releases(host) == [good]
        assert not fap_fleet.locked(host)
    assert stdout.count(f"switched back to {good}") == 3, stdout + stderr
    assert "nothing changed: the new release was removed" in stderr
    assert "Traceback" not in stdout + stderr


def test_fap_check_validates_the_check_without_running_it(fap_fleet, fap_run, tmp_path, good):
    broken = fap_run(["check", "-s", "test", "--healthcheck", "if then curl"], cwd=tmp_path)
    assert broken.exit_code != 0, broken.output
    assert "healthcheck is not valid shell" in broken.output
    assert broken.output.count("healthcheck is not valid shell") >= 3 or "host1, host2, host3" in broken.output


#: A plugin whose publishing step refuses to go back on host1 (it runs before the core's switch).
REFUSES_TO_GO_BACK = """\
from fapistrano import FapError, hookimpl


@hookimpl
def fap_deploy_publishing(ctx):
    if ctx.flow == "rollback" and ctx.host == "host1":
        raise FapError("host1: the old release cannot be published again")
"""


def test_a_host_that_cannot_switch_back_is_named_with_the_command_to_run(fap_fleet, fap_run, tmp_path, good):
    (tmp_path / "refuses_to_go_back.py").write_text(REFUSES_TO_GO_BACK)
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["refuses_to_go_back"]})
    result = deploy(fap_run, tmp_path, "--healthcheck", FAILS_ON_HOST2, "--healthcheck-timeout", "1")

    assert result.exit_code == 4, result.output
    new = fap_fleet.current("host1")
    assert new != good
    assert f"could not switch back to {good}: refuses_to_go_back: the old release cannot be published again;" \
           f" run: fap rollback -s test -r web --hosts host1 --to {good}" in result.output, result.output
    assert fap_fleet.current("host2") == fap_fleet.current("host3") == good
    assert f"current now points to {new} (kept) on host1" in result.stderr, result.output
    # Once its cause is fixed, the command named does the job.
    fap_fleet.write_deployfile(tmp_path)
    back = fap_run(["rollback", "-s", "test", "-r", "web", "--hosts", "host1", "--to", good], cwd=tmp_path)
    assert back.exit_code == 0, back.output
    assert fap_fleet.current("host1") == good


#: Records how the run ended, as a notification plugin reads it.
RUN_OUTCOME = """\
import pathlib

from fapistrano import hookimpl


@hookimpl
def fap_run_finished(run):
    pathlib.Path(__file__).with_name("outcome.txt").write_text(str(run.outcome))
"""


def test_run_level_hooks_read_switched_back(fap_fleet, fap_run, tmp_path, good):
    (tmp_path / "run_outcome.py").write_text(RUN_OUTCOME)
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["run_outcome"]})
    result = deploy(fap_run, tmp_path, "--healthcheck", FAILS_ON_HOST2, "--healthcheck-timeout", "1")
    assert result.exit_code == 4, result.output
    assert (tmp_path / "outcome.txt").read_text() == "switched back"


def summary_error(stdout: str, host: str) -> str:
    """The error column of ``host``'s row in the summary table."""
    lines = stdout.splitlines()
    header = next(n for n, line in enumerate(lines) if line.startswith("host  "))
    row = next(line for line in lines[header:] if line.startswith(f"{host} "))
    return row[lines[header].index("error"):]


def test_a_batched_switch_back_keeps_every_older_release(fap_fleet, fap_run, released, tmp_path):
    # keep_releases: 1 and two earlier releases: a batch's cleanup before the last batch's check would remove the oldest.
    fap_fleet.write_deployfile(tmp_path, {"keep_releases": 1})
    first = released(deploy(fap_run, tmp_path, "-q"))
    second = released(deploy(fap_run, tmp_path, "-q"))
    assert fap_fleet.releases("host1") == [first, second]

    result = deploy(fap_run, tmp_path, "--batch-size", "1", "--healthcheck", '[ "$FAP_HOST" != host3 ]',
                    "--healthcheck-timeout", "0.5")

    assert result.exit_code == 4, result.output
    for host in fap_fleet.names:
        assert fap_fleet.current(host) == second, result.output
        assert fap_fleet.releases(host) == [first, second], result.output
    assert "removed 1 old release" not in result.output
    assert "nothing changed: the new release was removed, current is unchanged on every host" in result.stderr

    # Every batch healthy: each host cleans up, once every batch passed.
    passed = deploy(fap_run, tmp_path, "--batch-size", "1", "--healthcheck", "true")
    assert passed.exit_code == 0, passed.output
    for host in fap_fleet.names:
        assert fap_fleet.releases(host) == [second, released(passed)]


def test_a_host_unhealthy_in_an_earlier_batch_is_reported_unhealthy_when_the_run_switches_back(fap_fleet, fap_run, tmp_path,
                                                                                                   good):
    # host1 is unhealthy within --max-fail 1 in batch 1; host3's check in batch 3 is one too many.
    check = 'if [ "$FAP_HOST" != host2 ]; then echo "503 from $FAP_HOST"; exit 1; fi'
    result = deploy(fap_run, tmp_path, "--batch-size", "1", "--max-fail", "1", "--healthcheck", check,
                    "--healthcheck-timeout", "0.5")

    assert result.exit_code == 4, result.output
    for host in fap_fleet.names:
        assert fap_fleet.current(host) == good
    assert "failed its health check: 503 from host1" in summary_error(result.stdout, "host1"), result.output
    assert "healthy, stopped" in summary_error(result.stdout, "host2"), result.output
    assert "host1: healthcheck: failed its health check: 503 from host1" in result.stderr, result.output
    assert "healthy, stopped" not in result.stderr


def test_a_check_that_exits_124_itself_is_not_reported_as_killed_at_the_timeout(fap_fleet, fap_run, tmp_path, good):
    result = deploy(fap_run, tmp_path, "--healthcheck", "exit 124", "--healthcheck-timeout", "1",
                    "--healthcheck-interval", "0.2")

    assert result.exit_code == 4, result.output
    assert "killed at the timeout" not in result.output
    assert "failed its health check: exited 124" in result.stderr, result.output


#: A plugin answering fap_health_check itself: host2 is never healthy, and no healthcheck command is set.
OWN_CHECK = '''\
from fapistrano import HealthResult, hookimpl


@hookimpl
def fap_health_check(ctx):
    if ctx.host == "host2":
        return HealthResult(False, 1, 0.1, "the probe says 503 on " + ctx.host)
    return HealthResult(True, 1, 0.1)
'''


def test_a_plugin_answering_the_health_check_decides_as_the_built_in_would(fap_fleet, fap_run, tmp_path, good):
    (tmp_path / "own_check.py").write_text(OWN_CHECK)
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["own_check"]})

    result = deploy(fap_run, tmp_path)

    assert result.exit_code == 4, result.output
    for host in fap_fleet.names:
        assert fap_fleet.current(host) == good, result.output
        assert fap_fleet.releases(host) == [good], result.output
    assert "the probe says 503 on host2" in result.output
    assert result.output.count("healthy: check passed") == 2, result.output
