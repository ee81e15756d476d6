"""Run-level hooks: fap_run_starting and fap_run_finished, once per run on the deployer's machine.

A test plugin (written beside deploy.yml) records every call with what ``run``
said, refuses the run or fails its notification when told, and can block a
phase until the test lets it go (to interrupt the run there).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

HOSTS = ("host1", "host2", "host3")

RUNPROBE_SOURCE = '''\
"""Test plugin: records fap_run_starting / fap_run_finished; refuses, fails or blocks when told."""

import json
import os
import time

from fapistrano import FapError, Setting, hookimpl


@hookimpl
def fap_settings():
    return [
        Setting("runprobe_file", "", "Where to record the calls (JSON lines)."),
        Setting("runprobe_refuse", "", "Refuse the run with this message in fap_run_starting."),
        Setting("runprobe_finish_fails", False, "Raise in fap_run_finished."),
        Setting("runprobe_fail_host", "", "Fail fap_deploy_updated on this host."),
        Setting("runprobe_block", "", "Block fap_deploy_updated until this file exists (touches FILE.blocked first)."),
    ]


def _record(run, hook, **extra):
    line = {
        "hook": hook, "command": run.command, "release": run.release, "hosts": list(run.hosts),
        "targets": [[t.stage, t.role, list(t.hosts), t.config["release"]] for t in run.targets],
        "dry_run": run.dry_run, "ok": run.ok, "outcome": None if run.outcome is None else str(run.outcome),
        "outcome_is_ok": run.outcome == "ok", "error": run.error, "app_name": run.config["app_name"],
        "config": {k: run.config.get(k) for k in ("keep_releases", "greeting", "site")}, **extra,
    }
    with open(run.config["runprobe_file"], "a") as stream:
        stream.write(json.dumps(line) + "\\n")


@hookimpl
def fap_run_starting(run):
    built = run.local("echo built $RUNPROBE_WORD", env={"RUNPROBE_WORD": run.command})
    _record(run, "fap_run_starting", built=built)
    run.log(f"runprobe: {run.command} starting on {len(run.hosts)} hosts")
    if run.config["runprobe_refuse"]:
        raise FapError(run.config["runprobe_refuse"])


@hookimpl
def fap_run_finished(run):
    _record(run, "fap_run_finished")
    if run.config["runprobe_finish_fails"]:
        raise RuntimeError("the chat server is down")


@hookimpl
def fap_deploy_updated(ctx):
    with open(ctx.config["runprobe_file"], "a") as stream:
        stream.write(json.dumps({"hook": "fap_deploy_updated", "host": ctx.host}) + "\\n")
    if ctx.host == ctx.config["runprobe_fail_host"]:
        raise FapError("the build broke")
    block = ctx.config["runprobe_block"]
    if block:
        open(block + ".blocked", "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(block) and time.monotonic() < deadline:
            time.sleep(0.05)
'''


class Probe:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = root / "runprobe.jsonl"
        (root / "fap_runprobe.py").write_text(RUNPROBE_SOURCE)

    def settings(self, **extra: Any) -> dict[str, Any]:
        return {"plugins": ["fap_runprobe"], "runprobe_file": str(self.log), **extra}

    def calls(self, hook: str | None = None) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        lines = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [line for line in lines if hook is None or line["hook"] == hook]

    def run_calls(self) -> list[str]:
        return [c["hook"] for c in self.calls() if c["hook"].startswith("fap_run_")]


@pytest.fixture
def probe(tmp_path: Path) -> Probe:
    return Probe(tmp_path)


def _deploy_ok(fap_fleet: Any, fap_run: Any, tmp_path: Path, probe: Probe) -> str:
    fap_fleet.write_deployfile(tmp_path, probe.settings())
    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    return fap_fleet.current("host1")


def test_an_ok_deploy_calls_each_run_hook_once_with_the_run(fap_fleet, fap_run, tmp_path, probe):
    fap_fleet.write_deployfile(tmp_path, probe.settings())

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    release = fap_fleet.current("host1")
    assert probe.run_calls() == ["fap_run_starting", "fap_run_finished"]
    (starting,) = probe.calls("fap_run_starting")
    assert starting["command"] == "deploy" and starting["release"] == release
    assert starting["hosts"] == list(HOSTS)
    assert starting["targets"] == [["test", "web", list(HOSTS), release]]
    assert starting["app_name"] == fap_fleet.app_name and starting["dry_run"] is False
    assert starting["ok"] is False and starting["outcome"] is None
    assert starting["built"] == "built deploy"  # run.local's stdout
    (finished,) = probe.calls("fap_run_finished")
    assert finished["ok"] is True and finished["outcome"] == "ok" and finished["outcome_is_ok"] is True
    assert finished["error"] is None and finished["release"] == release
    # Before any host changed, the plugin's line is in the view, once.
    assert result.stdout.count("runprobe: deploy starting on 3 hosts") == 1


def test_rollback_and_restart_call_the_run_hooks_with_their_command(fap_fleet, fap_run, tmp_path, probe):
    first = _deploy_ok(fap_fleet, fap_run, tmp_path, probe)
    assert fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path).exit_code == 0
    probe.log.unlink()

    assert fap_run(["rollback", "-s", "test", "-q"], cwd=tmp_path).exit_code == 0
    restarted = fap_run(["restart", "-s", "test", "-q"], cwd=tmp_path)

    assert restarted.exit_code == 0, restarted.output
    calls = [(c["hook"], c["command"], c["release"]) for c in probe.calls() if c["hook"].startswith("fap_run_")]
    assert calls == [("fap_run_starting", "rollback", first), ("fap_run_finished", "rollback", first),
                     ("fap_run_starting", "restart", first), ("fap_run_finished", "restart", first)]

    # Commands that change no release are not runs: no run-level hook.
    for args in (["check", "-s", "test"], ["once", "-s", "test", "-c", "true"], ["releases", "-s", "test"],
                 ["unlock", "-s", "test"]):
        assert fap_run(args, cwd=tmp_path).exit_code == 0, args
    assert len(probe.run_calls()) == 4


def test_a_failed_run_calls_run_finished_with_the_failure(fap_fleet, fap_run, tmp_path, probe):
    fap_fleet.write_deployfile(tmp_path, probe.settings(runprobe_fail_host="host2"))

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 1
    (finished,) = probe.calls("fap_run_finished")
    assert finished["ok"] is False and finished["outcome"] == "failed"
    assert "host2: updated: fap_runprobe: the build broke" in finished["error"]
    assert all(fap_fleet.current(host) is None for host in HOSTS)


def test_run_starting_raising_aborts_with_nothing_changed_and_the_locks_released(fap_fleet, fap_run, tmp_path, probe):
    good = _deploy_ok(fap_fleet, fap_run, tmp_path, probe)
    before = {host: fap_fleet.tree(host) for host in HOSTS}
    fap_fleet.write_deployfile(tmp_path, probe.settings(runprobe_refuse="CI has not passed for this revision"))
    probe.log.unlink()

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 1
    assert result.stderr.splitlines() == ["fap: error: fap_runprobe: CI has not passed for this revision"]
    assert "Traceback" not in result.output
    for host in HOSTS:
        assert fap_fleet.current(host) == good
        assert fap_fleet.tree(host) == before[host], host
        assert not fap_fleet.locked(host), host
    assert probe.calls("fap_deploy_updated") == []  # no phase ran
    assert probe.run_calls() == ["fap_run_starting", "fap_run_finished"]
    (finished,) = probe.calls("fap_run_finished")
    assert finished["ok"] is False and finished["outcome"] == "failed"
    assert finished["error"] == "fap_runprobe: CI has not passed for this revision"


def test_run_finished_raising_is_a_warning_and_keeps_the_outcome(fap_fleet, fap_run, tmp_path, probe):
    fap_fleet.write_deployfile(tmp_path, probe.settings(runprobe_finish_fails=True))

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert "warning: fap_run_finished: fap_runprobe: RuntimeError: the chat server is down" in result.output
    assert "Traceback" not in result.output
    assert all(fap_fleet.current(host) for host in HOSTS)


def test_an_interrupted_run_still_calls_run_finished_with_outcome_failed(fap_fleet, tmp_path, probe):
    block = tmp_path / "go"
    fap_fleet.write_deployfile(tmp_path, probe.settings(runprobe_block=str(block)))
    process = subprocess.Popen([sys.executable, "-m", "fapistrano", "deploy", "-s", "test"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not Path(str(block) + ".blocked").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    time.sleep(0.3)
    block.touch()
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 130, stdout + stderr
    (finished,) = probe.calls("fap_run_finished")
    assert finished["ok"] is False and finished["outcome"] == "failed"
    assert "interrupted" in finished["error"]
    assert all(not fap_fleet.locked(host) and fap_fleet.current(host) is None for host in HOSTS)


def test_a_dry_run_calls_both_hooks_and_says_so(fap_fleet, fap_run, tmp_path, probe):
    fap_fleet.write_deployfile(tmp_path, probe.settings())

    result = fap_run(["deploy", "-s", "test", "--dry-run"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert [(c["hook"], c["dry_run"]) for c in probe.calls() if c["hook"].startswith("fap_run_")] == \
        [("fap_run_starting", True), ("fap_run_finished", True)]
    assert all(fap_fleet.releases(host) == [] for host in HOSTS)


def test_run_hooks_are_called_once_for_a_plugin_enabled_on_several_targets(fap_fleet, fap_run, tmp_path, probe):
    extra = probe.settings(stage_role_configs={"test": {"web": {"hosts": ["host1", "host2"]},
                                                        "worker": {"hosts": ["host3"]}}})
    fap_fleet.write_deployfile(tmp_path, extra, hosts=["host1", "host2"])

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert probe.run_calls() == ["fap_run_starting", "fap_run_finished"]
    (starting,) = probe.calls("fap_run_starting")
    release = fap_fleet.current("host3")
    assert starting["targets"] == [["test", "web", ["host1", "host2"], release], ["test", "worker", ["host3"], release]]


def test_run_config_is_the_top_level_resolved_with_per_host_names_left_as_written(fap_local, fap_run):
    probe = Probe(fap_local.root)
    fap_local.write_deployfile({
        **probe.settings(), "greeting": "hi %(app_name)s from %(host)s", "site": "%(site_name)s.example.com",
        "stage_role_configs": {"test": {"web": {"site_name": "shop"}}},
    })

    result = fap_run(["deploy", "-s", "test", "--keep-releases", "3"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    (starting,) = probe.calls("fap_run_starting")
    assert starting["config"] == {"keep_releases": 3, "greeting": "hi app from %(host)s",
                                  "site": "%(site_name)s.example.com"}
