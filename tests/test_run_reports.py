"""The phases report per-host data to the run-level hooks (``ctx.report`` -> ``run.reports``), and a run-level
hook orders itself among the plugins' with ``tryfirst``/``trylast``, as the guide's gate example does."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HOSTS = ("host1", "host2", "host3")

TIMER_SOURCE = '''\
"""Test plugin: times each host's switch and writes what fap_run_finished saw."""

import json
import time

from fapistrano import Setting, hookimpl


@hookimpl
def fap_settings():
    return [Setting("timer_file", "", "Where fap_run_finished writes run.reports (JSON).")]


@hookimpl
def fap_run_starting(run):
    run.state["timer_seen_at_start"] = {host: dict(data) for host, data in run.reports.items()}


@hookimpl
def fap_deploy_publishing(ctx):
    ctx.report("timer_publishing", time.time())


@hookimpl
def fap_deploy_published(ctx):
    ctx.report("timer_published", time.time())
    ctx.report("timer_release", ctx.release)


@hookimpl
def fap_run_finished(run):
    reports = run.reports
    with open(run.config["timer_file"], "w") as stream:
        json.dump({"start": run.state["timer_seen_at_start"], "finished": reports}, stream)
    reports.clear()  # a copy: clearing it changes nothing fap keeps
    run.log(f"timer: {len(run.reports)} hosts reported")
'''


def test_each_host_reports_to_fap_run_finished(fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path) -> None:
    (tmp_path / "fap_timer.py").write_text(TIMER_SOURCE)
    out = tmp_path / "reports.json"
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["fap_timer"], "timer_file": str(out)})

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    release = released(result)
    seen = json.loads(out.read_text())
    assert seen["start"] == {}
    assert sorted(seen["finished"]) == sorted(HOSTS)
    for host in HOSTS:
        data = seen["finished"][host]
        assert set(data) == {"timer_publishing", "timer_published", "timer_release"}
        assert data["timer_publishing"] <= data["timer_published"] and data["timer_release"] == release
    assert "timer: 3 hosts reported" in result.stdout


def _gate_example() -> str:
    """The CI gate of docs/plugins.rst ("A CI gate and a notification, in one plugin"), as the guide prints it."""
    text = (REPO / "docs" / "plugins.rst").read_text()
    after = re.split(r"A CI gate and a\s+notification, in one plugin:", text, maxsplit=1)[1]
    block = re.search(r"\.\. code-block:: python\n\n((?:   .*\n|\n)+)", after)
    assert block, "docs/plugins.rst: the gate example is gone"
    return "\n".join(line[3:] for line in block.group(1).splitlines()) + "\n"


BUILDER_SOURCE = '''\
from fapistrano import hookimpl


@hookimpl
def fap_run_starting(run):
    run.local("touch BUILT", cwd=run.project_dir)
'''


def test_the_guides_gate_refuses_before_an_earlier_plugin_builds(fap_local: Any, fap_run: Any, assert_error: Any) -> None:
    root = fap_local.root
    (root / "gate_example.py").write_text(_gate_example())
    (root / "builder.py").write_text(BUILDER_SOURCE)
    bin_dir = root / "bin"
    bin_dir.mkdir()
    (bin_dir / "ci-status").write_text("#!/bin/sh\necho failed\n")
    (bin_dir / "notify-team").write_text(f"#!/bin/sh\necho \"$1\" >> {root / 'notified'}\n")
    for script in bin_dir.iterdir():
        script.chmod(0o755)
    # The builder is listed first: without tryfirst, its build would run before the gate's refusal.
    fap_local.write_deployfile({"plugins": ["builder", "gate_example"]})

    result = fap_run(["deploy", "-s", "test"], cwd=root, env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})

    assert result.exit_code == 1, result.output
    assert_error(result, "gate_example", "CI is failed on main: not deploying")
    assert not (root / "BUILT").exists(), "the build ran before the gate refused"
    assert fap_local.releases() == []
    assert "failed" in (root / "notified").read_text()
