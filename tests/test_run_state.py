"""What a run prepares once reaches every host's phases: ``ctx.run_state`` is ``run.state``; ``project_dir`` is deploy.yml's."""

from __future__ import annotations

from pathlib import Path

PREPARE_SOURCE = '''\
"""Test plugin: prepares a value once per run; every host writes what its phases see into the release."""

import os
import shlex

from fapistrano import hookimpl
from fapistrano.errors import ConfigError


@hookimpl
def fap_run_starting(run):
    if os.environ.get("PREPARE_REFUSE"):
        raise ConfigError("prepare_setting: cannot work")
    run.state["prepare"] = {"calls": run.state.get("prepare", {}).get("calls", 0) + 1, "dir": run.project_dir}


@hookimpl
def fap_deploy_updating(ctx):
    seen = ctx.run_state["prepare"]
    line = f"{seen['calls']} {seen['dir']} {ctx.project_dir}"
    ctx.run(f"echo {shlex.quote(line)} > PREPARED", cwd=ctx.release_path)


@hookimpl
def fap_check(ctx):
    return [] if ctx.run_state == {} and ctx.project_dir else ["check sees a run_state or no project_dir"]
'''


def write_project(fap_local) -> Path:
    (fap_local.root / "prepare_plugin.py").write_text(PREPARE_SOURCE)
    fap_local.write_deployfile({"plugins": ["prepare_plugin"]})
    return fap_local.root


def test_phases_read_what_fap_run_starting_prepared_and_deploy_yml_s_directory(fap_local, fap_run):
    root = write_project(fap_local)
    (root / "sub").mkdir()

    result = fap_run(["deploy", "-s", "test"], cwd=root / "sub")

    assert result.exit_code == 0, result.output
    prepared = (fap_local.path / "releases" / fap_local.current() / "PREPARED").read_text()
    assert prepared == f"1 {root.resolve()} {root.resolve()}\n"
    assert fap_run(["check", "-s", "test"], cwd=root).exit_code == 0


def test_a_config_error_in_fap_run_starting_exits_2_with_nothing_changed(fap_local, fap_run):
    from fapistrano.testing import run_fap

    root = write_project(fap_local)
    result = run_fap(["deploy", "-s", "test"], cwd=root, env={"PREPARE_REFUSE": "1"})
    assert result.exit_code == 2, result.output
    assert "prepare_setting: cannot work" in result.output
    assert fap_local.releases() == []
