"""fapistrano-hello's tests, written with Fapistrano's test kit.

The fixtures ``fap_local``, ``fap_fleet`` and ``fap_run`` come from
``fapistrano.testing``, the pytest plugin pyproject.toml enables (``-p fapistrano.testing``):
nothing to import. Every test runs the real ``fap``
command and checks what a user would check: the files on the host, where
``current`` points, what fap printed and its exit code.
"""

from __future__ import annotations

from pathlib import Path


def log_lines(app_dir: Path) -> list[str]:
    """The lines fapistrano-hello recorded in ``hello_log`` (default: ``<path>/hello.log``)."""
    log = app_dir / "hello.log"
    return log.read_text().splitlines() if log.exists() else []


# -- on this machine (connection: local; no root, no SSH) ---------------------


def test_deploy_writes_the_greeting_into_the_release(fap_local, fap_run):
    fap_local.write_deployfile({"plugins": ["hello"]})

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    release = fap_local.current()
    assert (fap_local.path / "current" / "HELLO").read_text() == "hello from localhost\n"
    assert log_lines(fap_local.path) == [f"published {release}"]
    assert f"published {release}" in result.stdout


def test_greeting_comes_from_deploy_yml_then_the_command_line(fap_local, fap_run):
    fap_local.write_deployfile({"plugins": ["hello"], "hello_greeting": "%(app_name)s says hi", "hello_file": "greeting.txt"})

    first = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)
    assert first.exit_code == 0, first.output
    assert (fap_local.path / "current" / "greeting.txt").read_text() == "app says hi\n"

    # A value that would run code if it reached the shell unquoted.
    hostile = "it's $(touch pwned) `touch pwned`; \"quoted\""
    second = fap_run(["deploy", "-s", "test", "--hello-greeting", hostile], cwd=fap_local.root)
    assert second.exit_code == 0, second.output
    assert (fap_local.path / "current" / "greeting.txt").read_text() == hostile + "\n"
    assert not list(fap_local.root.rglob("pwned"))


def test_rollback_and_restart_are_recorded(fap_local, fap_run):
    fap_local.write_deployfile({"plugins": ["hello"]})
    assert fap_run(["deploy", "-s", "test"], cwd=fap_local.root).exit_code == 0
    first = fap_local.current()
    assert fap_run(["deploy", "-s", "test"], cwd=fap_local.root).exit_code == 0
    second = fap_local.current()
    assert first != second

    rollback = fap_run(["rollback", "-s", "test"], cwd=fap_local.root)
    assert rollback.exit_code == 0, rollback.output
    assert fap_local.current() == first
    restart = fap_run(["restart", "-s", "test"], cwd=fap_local.root)
    assert restart.exit_code == 0, restart.output

    assert log_lines(fap_local.path) == [
        f"published {first}",
        f"published {second}",
        f"rolled back from {second} to {first}",
        f"published {first}",
        f"restarted {first}",
    ]


def test_a_bad_setting_fails_the_deploy_and_is_recorded(fap_local, fap_run):
    fap_local.write_deployfile({"plugins": ["hello"]})
    assert fap_run(["deploy", "-s", "test"], cwd=fap_local.root).exit_code == 0
    live = fap_local.current()

    result = fap_run(["deploy", "-s", "test", "--hello-file", "../outside"], cwd=fap_local.root)

    assert result.exit_code != 0
    assert "hello_file must be a path inside the release, got '../outside'" in result.stderr
    assert "Traceback" not in result.output
    # The failure came before publishing: nothing switched, the new release is gone.
    assert fap_local.current() == live
    assert fap_local.releases() == [live]
    assert not (fap_local.path / "outside").exists()
    assert log_lines(fap_local.path)[-1] == "failed: hello_file must be a path inside the release, got '../outside'"


def test_an_unknown_setting_is_a_one_line_error(fap_local, fap_run):
    fap_local.write_deployfile({"plugins": ["hello"]})

    result = fap_run(["deploy", "-s", "test", "--hello-greting", "hi"], cwd=fap_local.root)

    assert result.exit_code != 0
    assert "unknown setting --hello-greting (did you mean '--hello-greeting'?)" in result.stderr
    assert fap_local.current() is None


# -- on the SSH fleet (three real hosts; needs root, skipped without it) -------


def test_every_host_of_the_fleet_gets_its_own_greeting(fap_fleet, fap_run, tmp_path):
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["hello"]})

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    for host in fap_fleet.hosts:
        assert (fap_fleet.current_dir(host) / "HELLO").read_text() == f"hello from {host}\n"
        assert log_lines(fap_fleet.app_dir(host)) == [f"published {fap_fleet.current(host)}"]


def test_check_reports_a_log_the_deploy_user_cannot_write(fap_fleet, fap_run, tmp_path):
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["hello"]})
    app = "/home/deploy/www/app"
    fap_fleet.in_host("host2", ["mkdir", "-p", app], user="deploy")
    # A log left behind by root, which the deploy user may read but not append to.
    made = fap_fleet.in_host("host2", ["sh", "-c", f"touch {app}/hello.log && chmod 644 {app}/hello.log"])
    assert made.returncode == 0, made.stderr

    result = fap_run(["check", "-s", "test"], cwd=tmp_path)

    assert result.exit_code != 0, result.output
    assert f"hello_log {app}/hello.log is not writable by deploy" in result.output
    problem_lines = [line for line in result.output.splitlines() if "not writable" in line]
    assert problem_lines and all("host2" in line for line in problem_lines), result.output
