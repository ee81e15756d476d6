"""``fap check``: per host, what would make a deploy fail; exit non-zero when anything would."""

from __future__ import annotations

import os
import subprocess

from test_commands_support import install_demo_plugin

MARKER = "/home/deploy/www/ready"


def _lines(result, host):
    return [line for line in result.stdout.splitlines() if line.startswith(f"{host} | test/web | ")]


def test_check_passes_on_a_fleet_ready_for_its_first_deploy(fap_fleet, fap_run, tmp_path):
    fap_fleet.write_deployfile(tmp_path)

    result = fap_run(["check", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    for host in fap_fleet.hosts:
        assert _lines(result, host) == [f"{host} | test/web | ok (current none yet, 0 releases, not locked)"]
        assert fap_fleet.tree(host) == []  # checking created nothing, not even path
    assert result.stdout.splitlines()[-1] == "fap check: ok: 3 of 3 hosts ready to deploy"


def test_check_reports_each_problem_on_its_host_and_changes_nothing(fap_fleet, fap_run, tmp_path):
    env = install_demo_plugin(tmp_path / "site")
    fap_fleet.write_deployfile(tmp_path, {
        "plugins": ["fapistrano.demo"],
        "demo_marker": MARKER,
        "linked_files": ["config/app.ini"],
    })
    # host1: the plugin's marker is missing, and so is the linked file.
    # host2: path and shared/ belong to root (made by hand as root). host3: another run holds the lock.
    for host in ("host2", "host3"):
        (fap_fleet.hosts[host].path(MARKER)).write_text("")
        shared = fap_fleet.app_dir(host) / "shared" / "config"
        shared.mkdir(parents=True)
        (shared / "app.ini").write_text("[app]\n")
    os.chmod(fap_fleet.app_dir("host2"), 0o755)  # root-owned (made by root above), not writable by deploy
    lock = fap_fleet.app_dir("host3") / ".fap-lock"
    lock.mkdir()
    (lock / "owner").write_text("alice@laptop pid 4242 'fap deploy' since 2026-01-02 03:04:05 +0000\n")
    for host in ("host1", "host3"):
        subprocess.run(["chown", "-R", "deploy:", str(fap_fleet.app_dir(host))], check=False)
    before = {host: fap_fleet.tree(host) for host in fap_fleet.hosts}

    result = fap_run(["check", "-s", "test"], cwd=tmp_path, env=env)

    assert result.exit_code == 1, result.output
    assert _lines(result, "host1") == [
        "host1 | test/web | missing linked file: /home/deploy/www/app/shared/config/app.ini (put it in shared_path before deploying)",
        f"host1 | test/web | fapistrano.demo: marker file {MARKER} is missing",
    ]
    assert _lines(result, "host2") == [
        "host2 | test/web | not writable by deploy: /home/deploy/www/app (needed for path, releases_path = /home/deploy/www/app)",
        "host2 | test/web | not writable by deploy: /home/deploy/www/app/shared (needed for shared_path = /home/deploy/www/app/shared)",
    ]
    assert _lines(result, "host3") == [
        "host3 | test/web | locked by alice@laptop pid 4242 'fap deploy' since 2026-01-02 03:04:05 +0000"
        " (run 'fap unlock' if that run is gone)",
    ]
    assert result.stdout.splitlines()[-1] == "fap check: FAILED: 0 of 3 hosts ready to deploy"
    assert {host: fap_fleet.tree(host) for host in fap_fleet.hosts} == before


def test_check_reports_an_unreachable_host_and_checks_the_others(fap_fleet, fap_run, tmp_path):
    fap_fleet.write_deployfile(tmp_path)
    fap_fleet.kill_host("host2")

    result = fap_run(["check", "-s", "test", "--ssh-connect-timeout", "5"], cwd=tmp_path)

    assert result.exit_code == 1, result.output
    [line] = _lines(result, "host2")
    assert line.startswith("host2 | test/web | cannot connect: ")
    assert _lines(result, "host1") == ["host1 | test/web | ok (current none yet, 0 releases, not locked)"]
    assert _lines(result, "host3") == ["host3 | test/web | ok (current none yet, 0 releases, not locked)"]
    assert result.stdout.splitlines()[-1] == "fap check: FAILED: 2 of 3 hosts ready to deploy"


def test_check_names_the_plugin_whose_check_crashed(fap_local, fap_run):
    env = install_demo_plugin(fap_local.root / "site")
    fap_local.write_deployfile({"plugins": ["fapistrano.demo"], "demo_check_crash": True})

    result = fap_run(["check", "-s", "test"], cwd=fap_local.root, env=env)

    assert result.exit_code == 1, result.output
    assert "localhost | test/web | fapistrano.demo: check failed: RuntimeError: the demo check fell over" in result.stdout
    assert "Traceback" not in result.output


def test_check_sees_a_deployed_release_and_the_check_plugins_setting(fap_local, fap_run):
    env = install_demo_plugin(fap_local.root / "site")
    # check_plugins replaces plugins for 'fap check' only: the demo check does not run here.
    fap_local.write_deployfile({"plugins": ["fapistrano.demo"], "check_plugins": [], "demo_marker": "/nonexistent"})
    deployed = fap_run(["deploy", "-s", "test"], cwd=fap_local.root, env=env)
    assert deployed.exit_code == 0, deployed.output

    result = fap_run(["check", "-s", "test"], cwd=fap_local.root, env=env)

    assert result.exit_code == 0, result.output
    assert f"localhost | test/web | ok (current {fap_local.current()}, 1 release, not locked)" in result.stdout


PROJECT_CHECK = '''\
from fapistrano import Setting, hookimpl


@hookimpl
def fap_settings():
    return [Setting("tree_state", "clean", "What the working tree looks like.")]


@hookimpl
def fap_check_run(run):
    run.log(f"looking at {run.project_dir} for {run.command} of {len(run.hosts)} hosts")
    dirty = run.local("cat STATE", cwd=run.project_dir, readonly=True)
    if dirty != "clean":
        return [f"the working tree is {dirty}: commit or stash first"]


@hookimpl
def fap_check(ctx):
    return []
'''


def test_a_run_level_check_reports_a_project_problem_once_not_per_host(fap_fleet, fap_run, tmp_path):
    (tmp_path / "tree_check.py").write_text(PROJECT_CHECK)
    (tmp_path / "STATE").write_text("dirty\n")
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["tree_check"]})

    result = fap_run(["check", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 1, result.output
    problem = "tree_check: the working tree is dirty: commit or stash first"
    assert result.stdout.count(problem) == 1, result.output
    assert f"local | {problem}" in result.stdout
    assert f"check_run | looking at {tmp_path} for check of 3 hosts" in result.stdout
    for host in fap_fleet.hosts:
        assert _lines(result, host) == [f"{host} | test/web | ok (current none yet, 0 releases, not locked)"]
    assert result.stdout.splitlines()[-1] == "fap check: FAILED: 1 problem on this machine; 3 of 3 hosts ready to deploy"

    (tmp_path / "STATE").write_text("clean\n")
    result = fap_run(["check", "-s", "test"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "fap check: ok: 3 of 3 hosts ready to deploy"


def test_a_crashing_run_level_check_is_named_once(fap_local, fap_run):
    (fap_local.root / "tree_check.py").write_text(PROJECT_CHECK)
    fap_local.write_deployfile({"plugins": ["tree_check"]})  # no STATE file: cat fails

    result = fap_run(["check", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    failed = [line for line in result.stdout.splitlines() if "tree_check: check failed:" in line]
    assert len(failed) == 1 and "STATE" in failed[0], result.output
