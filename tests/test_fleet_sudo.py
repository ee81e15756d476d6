"""``sudo_user``: every command runs as another user through ``sudo -u``, on the real fleet.

The test machine gets a second user, ``app``, and a sudoers rule letting
``deploy`` run anything as ``app`` without a password (what a real server
setup for this feature looks like). Both are removed afterwards.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HOSTS = ("host1", "host2", "host3")
SUDOERS = Path("/etc/sudoers.d/fapistrano-tests-app")


@pytest.fixture(scope="module")
def app_user(fap_fleet_session: Any) -> Iterator[pwd.struct_passwd]:
    """A user ``app`` that ``deploy`` may become with ``sudo -n -u app``."""
    if not shutil.which("sudo") or not shutil.which("useradd") or not SUDOERS.parent.is_dir():
        reason = "sudo_user tests need sudo (with /etc/sudoers.d) and useradd"
        if os.environ.get("CI") == "true":  # .ci/run installs sudo: missing there, the feature goes untested
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    created = False
    try:
        pwd.getpwnam("app")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/bin/sh", "app"], check=True)
        created = True
    SUDOERS.write_text("deploy ALL=(app) NOPASSWD: ALL\n")
    SUDOERS.chmod(0o440)
    try:
        check = subprocess.run(["visudo", "-cf", str(SUDOERS)], capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        yield pwd.getpwnam("app")
    finally:
        SUDOERS.unlink(missing_ok=True)
        if created:
            subprocess.run(["userdel", "app"], check=False)


@pytest.fixture
def app_owned(fap_fleet: Any, app_user: pwd.struct_passwd) -> None:
    """Each host's app directory exists and belongs to ``app`` (deploy itself cannot write it)."""
    for host in HOSTS:
        directory = fap_fleet.app_dir(host)
        directory.mkdir()
        os.chown(directory, app_user.pw_uid, app_user.pw_gid)
        directory.chmod(0o755)


def test_deploy_as_sudo_user(
    fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path, app_user: pwd.struct_passwd, app_owned: None
) -> None:
    fap_fleet.write_deployfile(tmp_path, {"sudo_user": "app", "linked_dirs": ["log"], "environment": {"A": "1"}})
    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    name = released(result)
    for host in HOSTS:
        assert fap_fleet.current(host) == name
        release = fap_fleet.app_dir(host) / "releases" / name
        for path in (release, release / ".env", fap_fleet.app_dir(host) / "shared" / "log", fap_fleet.app_dir(host) / "current"):
            assert path.lstat().st_uid == app_user.pw_uid, path


def test_once_runs_as_sudo_user(
    fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path, app_owned: None
) -> None:
    fap_fleet.write_deployfile(tmp_path, {"sudo_user": "app"})
    released(fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path))
    result = fap_run(["once", "-s", "test", "-c", "id -un"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert "host1 | once | app" in result.stdout


def test_without_sudo_user_the_deploy_user_cannot_write_there(
    fap_fleet: Any, fap_run: Any, tmp_path: Path, app_owned: None
) -> None:
    # The same hosts without sudo_user: proof that the run above really went through sudo.
    fap_fleet.write_deployfile(tmp_path)
    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert result.exit_code == 1
    for host in HOSTS:
        assert f"fap: error: {host}: " in result.stderr
    assert "Permission denied" in result.stderr and "Traceback" not in result.output


def test_sudo_user_equal_to_user_runs_without_sudo(
    fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path, app_user: pwd.struct_passwd
) -> None:
    fap_fleet.write_deployfile(tmp_path, {"sudo_user": "deploy"})
    result = fap_run(["deploy", "-s", "test", "-v"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    released(result)
    assert fap_fleet.app_dir("host1").stat().st_uid == pwd.getpwnam("deploy").pw_uid


def test_environment_value_over_the_argument_size_limit_as_sudo_user(
    fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path, app_user: pwd.struct_passwd, app_owned: None
) -> None:
    big = "v" * 300_000  # one argument may hold 128 KiB
    fap_fleet.write_deployfile(tmp_path, {"sudo_user": "app", "environment": {"BIG": big}})
    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    name = released(result)
    dotenv = fap_fleet.app_dir("host1") / "releases" / name / ".env"
    assert dotenv.read_text() == f"BIG={big}\n"
    assert dotenv.stat().st_uid == app_user.pw_uid


def test_a_script_over_the_argument_size_limit_with_stdin_runs_as_sudo_user(
    fap_fleet: Any, app_user: pwd.struct_passwd
) -> None:
    import tempfile

    from fapistrano.remote import Host

    host = Host("host1", fap_fleet.ssh_settings("host1"), sudo_user="app", control_dir=tempfile.mkdtemp(prefix="fap-t-"))
    host.connect()
    try:
        script = "".join(f": {'x' * 70}\n" for _ in range(3000)) + "id -un; cat; exit 4\n"
        result = host.run(script, stdin="exactly this\n\nno final newline")
        assert (result.exit_code, result.stdout, result.stderr) == (4, "app\nexactly this\n\nno final newline", "")
        assert host.run("id -un").stdout == "app\n"
    finally:
        host.close()


def test_a_run_step_of_hooks_runs_as_the_sudo_user(
    fap_fleet: Any, fap_run: Any, tmp_path: Path, app_user: pwd.struct_passwd, app_owned: None
) -> None:
    fap_fleet.write_deployfile(tmp_path, {"sudo_user": "app", "environment": {"A": "from .env"},
                                          "hooks": {"updated": [{"run": 'echo "$(id -un) $A" > whoami'}]}})

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    for host in HOSTS:
        made = fap_fleet.current_dir(host) / "whoami"
        assert made.read_text() == "app from .env\n"
        assert made.stat().st_uid == app_user.pw_uid


def test_a_binary_stdin_streams_to_a_command_run_as_sudo_user(fap_fleet: Any, app_user: pwd.struct_passwd) -> None:
    import hashlib
    import tempfile

    from fapistrano.remote import Host

    host = Host("host1", fap_fleet.ssh_settings("host1"), sudo_user="app", control_dir=tempfile.mkdtemp(prefix="fap-t-"))
    host.connect()
    try:
        data = os.urandom(3 * 1024 * 1024 + 5)
        result = host.run("id -un; sha256sum | cut -d' ' -f1; exit 5", stdin=data)
        assert (result.exit_code, result.stdout) == (5, f"app\n{hashlib.sha256(data).hexdigest()}\n"), result.stderr
        assert host.run("id -un").stdout == "app\n"
    finally:
        host.close()
