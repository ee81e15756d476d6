"""``fap once`` (a one-off command in current, with .env loaded) and ``fap shell`` on the real fleet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

HOSTS = ("host1", "host2", "host3")


@pytest.fixture
def deployed_roles(fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path) -> str:
    """test/web on host1 and host2, test/worker on host3, deployed once; the release name."""
    fap_fleet.write_deployfile(tmp_path, {
        "environment": {"GREETING": "hello from %(host)s", "TRICKY": "a b; $(echo no) `echo no` 'q'"},
        "stage_role_configs": {"test": {"web": {"hosts": ["host1", "host2"]}, "worker": {"hosts": ["host3"]}}},
    })
    result = fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    return released(result)


def lines_of(result: Any, host: str) -> list[str]:
    """What the command printed on ``host`` (without fap's closing "command exited N" line)."""
    lines = [line.split(" | ", 2)[2] for line in result.stdout.splitlines() if line.startswith(f"{host} | once | ")]
    return [line for line in lines if not line.startswith("command exited ")]


def test_once_runs_in_current_with_env_on_the_first_host_of_each_role(
    fap_run: Any, tmp_path: Path, deployed_roles: str
) -> None:
    result = fap_run(["once", "-s", "test", "-c", 'echo "$GREETING"; echo "$TRICKY"; pwd -P'], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    release_dir = f"/home/deploy/www/app/releases/{deployed_roles}"
    assert lines_of(result, "host1") == ["hello from host1", "a b; $(echo no) `echo no` 'q'", release_dir]
    assert lines_of(result, "host3") == ["hello from host3", "a b; $(echo no) `echo no` 'q'", release_dir]
    assert lines_of(result, "host2") == []  # second host of test/web: not by default


def test_once_on_all_hosts(fap_run: Any, tmp_path: Path, deployed_roles: str) -> None:
    result = fap_run(["once", "-s", "test", "--all-hosts", "-c", 'echo "$GREETING"'], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    for host in HOSTS:
        assert lines_of(result, host) == [f"hello from {host}"]


def test_once_on_one_named_host_says_its_exit_status_and_exits_1(fap_run: Any, tmp_path: Path, deployed_roles: str) -> None:
    result = fap_run(["once", "-s", "test", "--host", "host2", "-c", 'echo "$GREETING" >&2; exit 7'], cwd=tmp_path)
    # fap's own exit code: 1 when the command failed; the command's status is printed, not passed through.
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert lines_of(result, "host2")[0] == "hello from host2"
    assert lines_of(result, "host1") == [] and lines_of(result, "host3") == []
    assert "host2 | once | command exited 7" in result.stdout


def test_once_on_every_host_prints_each_hosts_status(fap_run: Any, tmp_path: Path, deployed_roles: str) -> None:
    result = fap_run(["once", "-s", "test", "--all-hosts", "-c", '[ "$GREETING" != "hello from host2" ] || exit 2'],
                     cwd=tmp_path)
    assert result.exit_code == 1, result.output
    assert "host2 | once | command exited 2" in result.stdout
    assert "host1 | once | command exited 0" in result.stdout


def test_once_in_one_role(fap_run: Any, tmp_path: Path, deployed_roles: str) -> None:
    result = fap_run(["once", "-r", "worker", "-c", "echo $GREETING"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert lines_of(result, "host3") == ["hello from host3"]
    assert lines_of(result, "host1") == []


def test_once_on_a_host_that_is_not_selected(fap_run: Any, assert_error: Any, tmp_path: Path, deployed_roles: str) -> None:
    result = fap_run(["once", "-r", "worker", "--host", "host1", "-c", "true"], cwd=tmp_path)
    assert_error(result, "--host host1", "host3")


def test_once_changes_nothing_it_is_not_told_to(fap_fleet: Any, fap_run: Any, tmp_path: Path, deployed_roles: str) -> None:
    before = {host: fap_fleet.tree(host) for host in HOSTS}
    result = fap_run(["once", "-s", "test", "--all-hosts", "-c", "ls > /dev/null"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert {host: fap_fleet.tree(host) for host in HOSTS} == before


def test_once_without_a_release_says_so(fap_fleet: Any, fap_run: Any, tmp_path: Path) -> None:
    fap_fleet.write_deployfile(tmp_path)
    result = fap_run(["once", "-s", "test", "-c", "echo should-not-run"], cwd=tmp_path)
    assert result.exit_code != 0
    assert "no current release" in result.output
    assert "should-not-run" not in result.stdout


def test_shell_opens_in_current_on_the_chosen_host(fap_fleet: Any, fap_run: Any, on_host: Any, tmp_path: Path, deployed_roles: str) -> None:
    on_host("host2", "echo i-am-host2 > /home/deploy/www/app/current/WHO")
    result = fap_run(["shell", "-s", "test", "--host", "host2"], cwd=tmp_path, input="pwd; cat WHO; exit 3\n")
    assert result.exit_code == 3, result.output
    assert "/home/deploy/www/app/current\ni-am-host2\n" in result.stdout


def test_shell_loads_the_release_env_as_once_does(fap_run: Any, tmp_path: Path, deployed_roles: str) -> None:
    result = fap_run(["shell", "-s", "test", "--host", "host2"], cwd=tmp_path,
                     input='echo "got $GREETING"; echo "got $TRICKY"; sh -c \'echo "child $GREETING"\'\n')
    assert result.exit_code == 0, result.output
    assert "got hello from host2\ngot a b; $(echo no) `echo no` 'q'\nchild hello from host2\n" in result.stdout


def test_once_dry_run_prints_the_command_and_runs_nothing(
    fap_fleet: Any, fap_run: Any, on_host: Any, tmp_path: Path, deployed_roles: str
) -> None:
    result = fap_run(["once", "-s", "test", "--all-hosts", "--dry-run", "-c", "touch RAN; echo ran"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    for host in HOSTS:
        assert f"{host} | once | would run touch RAN; echo ran" in result.stdout
        assert lines_of(result, host) == ["would run touch RAN; echo ran"]
        assert not (fap_fleet.current_dir(host) / "RAN").exists()


def test_once_without_a_release_in_a_path_with_a_quote(fap_fleet: Any, fap_run: Any, tmp_path: Path) -> None:
    fap_fleet.write_deployfile(tmp_path, {"app_name": "it's app"})
    result = fap_run(["once", "-s", "test", "-c", "echo should-not-run"], cwd=tmp_path)
    assert result.exit_code != 0
    assert "no current release in /home/deploy/www/it's app/current" in result.output
    assert "should-not-run" not in result.stdout
