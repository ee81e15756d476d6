"""Shared helpers of the core's tests.

The fixtures ``fap_fleet``, ``fap_local`` and ``fap_run`` come from
:mod:`fapistrano.testing`, the pytest plugin this suite enables with
``-p fapistrano.testing`` (pyproject.toml's ``addopts``).

Test plugins are real modules that ``fap`` imports by dotted name: a test
writes one next to its deploy.yml (fap puts deploy.yml's directory on
``sys.path``) and lists it under ``plugins:``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

#: A plugin that records every hook it sees, and fails on demand. Every
#: setting it reads is declared in ``fap_defaults``, as the contract asks, so
#: tests steer it from deploy.yml or the command line like any plugin.
RECORDER_SOURCE = '''\
"""Test plugin: records each hook call (host, phase, release) and fails where told."""

import json
import re
import os
import shlex

from fapistrano import hookimpl


@hookimpl
def fap_defaults():
    return {
        "recorder_file": "",
        "recorder_fail_phase": "",
        "recorder_fail_host": "",
        "recorder_fail_stderr": "boom",
        "recorder_fail_how": "command",
        "recorder_run": "",
    }


def _record(ctx, hook, **extra):
    path = ctx.config["recorder_file"]
    if not path:
        return
    line = json.dumps({
        "hook": hook,
        "host": ctx.host,
        "stage": ctx.stage,
        "role": ctx.role,
        "phase": ctx.phase,
        "flow": ctx.flow,
        "release": ctx.release,
        "release_path": ctx.release_path,
        "previous_release": ctx.previous_release,
        "rollback_from": ctx.rollback_from,
        "dry_run": ctx.dry_run,
        **extra,
    })
    # One short O_APPEND write per event: lines from parallel hosts do not interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\\n").encode())
    finally:
        os.close(fd)


def _phase(hook):
    def implementation(ctx):
        config = ctx.config
        if hook == "fap_deploy_updated" and config["recorder_run"]:
            # Run the setting exactly as resolved: what ctx.run does to it is what the test checks.
            _record(ctx, hook, output=ctx.run(config["recorder_run"], cwd=ctx.release_path))
        else:
            _record(ctx, hook)
        if config["recorder_fail_phase"] == ctx.phase and config["recorder_fail_host"] in ("", ctx.host):
            if config["recorder_fail_how"] == "exception":
                raise RuntimeError(config["recorder_fail_stderr"])
            ctx.run("echo " + shlex.quote(config["recorder_fail_stderr"]) + " >&2; exit 3")

    implementation.__name__ = hook
    return hookimpl(implementation)


for _hook in (
    "fap_deploy_starting", "fap_deploy_started", "fap_deploy_updating", "fap_deploy_updated",
    "fap_deploy_reverting", "fap_deploy_reverted", "fap_deploy_publishing", "fap_deploy_published",
    "fap_deploy_finishing", "fap_deploy_finishing_rollback", "fap_deploy_finished",
    "fap_deploy_restarting", "fap_deploy_restarted",
):
    globals()[_hook] = _phase(_hook)


@hookimpl
def fap_deploy_failed(ctx, error):
    _record(ctx, "fap_deploy_failed", error=str(error))
'''


@dataclass
class Recorder:
    """The recorder plugin written beside a deploy.yml, and what it recorded."""

    directory: Path
    log: Path
    name: str = "fap_recorder"

    def events(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def hooks(self, host: str | None = None) -> list[str]:
        """Hook names in the order they ran (on ``host``, or anywhere)."""
        return [e["hook"] for e in self.events() if host is None or e["host"] == host]

    def settings(self, **extra: Any) -> dict[str, Any]:
        """deploy.yml settings that enable the recorder and point it at its log."""
        return {"plugins": [self.name], "recorder_file": str(self.log), **extra}


@pytest.fixture
def recorder(tmp_path: Path) -> Recorder:
    """The recorder plugin, written to ``tmp_path`` (where the test writes deploy.yml)."""
    (tmp_path / "fap_recorder.py").write_text(RECORDER_SOURCE)
    return Recorder(tmp_path, tmp_path / "recorder.jsonl")


def _assert_one_line_error(result: Any, *fragments: str) -> str:
    """A handled user error: non-zero exit, one ``fap: error:`` line naming ``fragments``, no traceback."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("fap: error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], result.output
    return errors[0]


@pytest.fixture
def assert_error() -> Any:
    """``assert_error(result, *fragments)``: a handled one-line error naming every fragment."""
    return _assert_one_line_error


@pytest.fixture
def released() -> Any:
    """``released(result)``: the release name ``fap deploy`` reported."""

    def find(result: Any) -> str:
        match = re.search(r"deployed release (\d{6}-\d{6}(?:-\d{2,})?)", result.stdout)
        assert match, result.output
        return match.group(1)

    return find


@pytest.fixture
def on_host(fap_fleet: Any) -> Any:
    """``on_host(host, script)``: run shell text on a fleet host as ``deploy``; return its stdout."""

    def run(host: str, script: str, check: bool = True) -> str:
        completed = fap_fleet.in_host(host, ["sh", "-c", script], user="deploy")
        if check:
            assert completed.returncode == 0, f"{host}: {script}: {completed.stderr}"
        return completed.stdout

    return run
