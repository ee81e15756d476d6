"""``ssh_persist``: the masters of a run stay up for the next command, in this user's private directory alone."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fapistrano.testing import DEPLOY_USER

HOSTS = ("host1", "host2", "host3")


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    """A short ``$XDG_RUNTIME_DIR`` of this test's own (unix socket paths are short), masters stopped at the end."""
    directory = Path(tempfile.mkdtemp(prefix="fapx-", dir="/tmp"))
    yield directory
    for socket in (directory / "fap").glob("*") if (directory / "fap").is_dir() else ():
        subprocess.run(["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "x"], capture_output=True, check=False)
    shutil.rmtree(directory, ignore_errors=True)


def masters(runtime: Path) -> dict[str, int]:
    """Socket name -> pid of each master running in the private directory."""
    found = {}
    for socket in sorted((runtime / "fap").glob("*")):
        check = subprocess.run(["ssh", "-o", f"ControlPath={socket}", "-O", "check", "x"], capture_output=True, text=True)
        pid = re.search(r"pid=(\d+)", check.stderr + check.stdout)
        if check.returncode == 0 and pid:
            found[socket.name] = int(pid.group(1))
    return found


def client_ports(result: Any) -> dict[str, str]:
    """Each host's ``$SSH_CONNECTION`` source port, as ``fap once`` printed it: one port, one TCP connection."""
    ports = {}
    for line in result.stdout.splitlines():
        parts = line.split(" | ", 2)
        if len(parts) == 3 and parts[1] == "once" and re.fullmatch(r"[\d.]+ \d+ [\d.]+ \d+", parts[2].strip()):
            ports[parts[0].strip()] = parts[2].split()[1]
    return ports


def once_ports(fap_run: Any, cwd: Path, env: dict[str, str]) -> dict[str, str]:
    result = fap_run(["once", "-s", "test", "--all-hosts", "-c", 'echo "$SSH_CONNECTION"'], cwd=cwd, env=env)
    assert result.exit_code == 0, result.output
    ports = client_ports(result)
    assert sorted(ports) == list(HOSTS), result.output
    return ports


def test_a_second_command_reuses_the_masters_and_a_killed_one_is_replaced(
    fap_fleet: Any, fap_run: Any, tmp_path: Path, runtime_dir: Path
) -> None:
    env = {"XDG_RUNTIME_DIR": str(runtime_dir)}
    fap_fleet.write_deployfile(tmp_path, {"ssh_persist": "60s"})
    deployed = fap_run(["deploy", "-s", "test"], cwd=tmp_path, env=env)
    assert deployed.exit_code == 0, deployed.output
    private = runtime_dir / "fap"
    assert private.stat().st_mode & 0o777 == 0o700 and private.stat().st_uid == os.getuid()
    after_deploy = masters(runtime_dir)
    assert len(after_deploy) == 3, sorted(os.listdir(private))

    # Two commands later: the same masters (same pids), the same TCP connection to each host (same source port).
    first = once_ports(fap_run, tmp_path, env)
    second = once_ports(fap_run, tmp_path, env)
    assert second == first
    assert masters(runtime_dir) == after_deploy

    # A master killed (its socket left behind, stale): the next command connects afresh on that host alone.
    name, pid = next(iter(after_deploy.items()))
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    assert (private / name).exists()
    third = once_ports(fap_run, tmp_path, env)
    changed = [host for host in HOSTS if third[host] != first[host]]
    assert len(changed) == 1, (first, third)
    now = masters(runtime_dir)
    assert len(now) == 3 and now[name] != pid
    assert {n: p for n, p in now.items() if n != name} == {n: p for n, p in after_deploy.items() if n != name}

    # fap disconnect closes them all.
    closed = fap_run(["disconnect"], cwd=tmp_path, env=env)
    assert closed.exit_code == 0, closed.output
    assert "closed 3 connection(s)" in closed.stdout
    assert masters(runtime_dir) == {}
    assert list(private.iterdir()) == []


def test_ssh_persist_0_leaves_no_connection_behind(
    fap_fleet: Any, fap_run: Any, tmp_path: Path, runtime_dir: Path
) -> None:
    env = {"XDG_RUNTIME_DIR": str(runtime_dir)}
    fap_fleet.write_deployfile(tmp_path, {"ssh_persist": 0})
    before = {host: len(fap_fleet.processes_of(host)) for host in HOSTS}
    deployed = fap_run(["deploy", "-s", "test"], cwd=tmp_path, env=env)
    assert deployed.exit_code == 0, deployed.output
    assert masters(runtime_dir) == {}
    assert not (runtime_dir / "fap").exists() or list((runtime_dir / "fap").iterdir()) == []
    # No session left on any host: each host's sshd has no connection process left.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(len(fap_fleet.processes_of(h)) != before[h] for h in HOSTS):
        time.sleep(0.1)
    assert {host: len(fap_fleet.processes_of(host)) for host in HOSTS} == before


@pytest.mark.parametrize("unsafe", ["group-readable", "another user's"])
def test_a_private_directory_others_may_enter_is_never_used(
    fap_fleet: Any, fap_run: Any, tmp_path: Path, runtime_dir: Path, unsafe: str
) -> None:
    env = {"XDG_RUNTIME_DIR": str(runtime_dir)}
    private = runtime_dir / "fap"
    if unsafe == "group-readable":
        private.mkdir(mode=0o755)
        private.chmod(0o755)
        said = "may be entered by other users (mode 755; 700 expected)"
    else:
        private.mkdir(mode=0o700)
        shutil.chown(private, DEPLOY_USER)
        said = f"belongs to another user (uid {private.stat().st_uid})"
    fap_fleet.write_deployfile(tmp_path, {"ssh_persist": "60s"})
    deployed = fap_run(["deploy", "-s", "test"], cwd=tmp_path, env=env)
    assert deployed.exit_code == 0, deployed.output
    assert f"fap: warning: ssh_persist: {private} {said}; connections end with this run" in deployed.stderr
    assert list(private.iterdir()) == []


@pytest.mark.parametrize(("setting", "value", "said"), [
    ("ssh_persist", "soon", "ssh_persist: expected a duration such as 60s, 5m or 0, got 'soon'"),
    ("max_connecting", 0, "max_connecting: must be at least 1, got 0"),
])
def test_bad_connection_settings_are_one_line_errors(
    fap_fleet: Any, fap_run: Any, assert_error: Any, tmp_path: Path, setting: str, value: Any, said: str
) -> None:
    fap_fleet.write_deployfile(tmp_path, {setting: value})
    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert result.exit_code == 2
    assert_error(result, "deploy.yml:", said)


def test_a_master_whose_host_stopped_answering_is_replaced_and_the_host_named_in_time(
    fap_fleet: Any, fap_run: Any, assert_error: Any, tmp_path: Path, runtime_dir: Path
) -> None:
    env = {"XDG_RUNTIME_DIR": str(runtime_dir)}
    fap_fleet.write_deployfile(tmp_path, {"ssh_persist": "60s", "ssh_connect_timeout": 2})
    deployed = fap_run(["deploy", "-s", "test"], cwd=tmp_path, env=env)
    assert deployed.exit_code == 0, deployed.output
    assert len(masters(runtime_dir)) == 3
    # host3 freezes (sshd and its sessions): its master is still up here, and nothing answers through it.
    frozen = fap_fleet.processes_of("host3")
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        result = fap_run(["releases", "-s", "test"], cwd=tmp_path, env=env, timeout=60)
    finally:
        fap_fleet.kill_host("host3")
    # Through the old master: no answer in 2 s; stopped, a new connection tried: ssh's own ConnectTimeout.
    assert_error(result, "host3: cannot connect", "timed out")
    assert result.duration < 15, result.duration
    assert len(masters(runtime_dir)) == 2
