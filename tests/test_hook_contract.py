"""The plugin contract as a plugin author meets it: the public imports and the documented hooks."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import pytest

import fapistrano
from fapistrano import hookspecs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs" / "_ext"))

import fap_reference  # noqa: E402  (lives in docs/_ext)


def test_a_plugin_imports_what_it_needs_from_the_package_root() -> None:
    from fapistrano import Context, FapError, Setting, hookimpl  # noqa: F401

    assert {"Context", "FapError", "Setting", "hookimpl"} <= set(fapistrano.__all__)
    assert Setting.__module__ == "fapistrano.settings" and Context.__module__ == "fapistrano.context"


def _firstresult_hooks() -> list[str]:
    return [name for name, function in vars(hookspecs).items()
            if inspect.isfunction(function) and getattr(function, "fapistrano_spec", {}).get("firstresult")]


def test_the_questions_one_plugin_answers_are_first_answer_wins_hooks() -> None:
    # Which revision a release holds; whether a host is healthy (the health built-in's answer, or a plugin's before it).
    # What a deploy would ship, the commits between two revisions, the settings that ship a given one (the source's).
    assert _firstresult_hooks() == ["fap_release_revision", "fap_source_revision", "fap_source_commits", "fap_source_promote",
                                    "fap_health_check"]


@pytest.mark.parametrize("name", _firstresult_hooks())
def test_a_first_answer_wins_hook_says_so_in_the_reference(name: str) -> None:
    (hook,) = [h for h in fap_reference.hookspecs() if h.name == name]
    text = fap_reference.hook_rst(hook, core={})
    assert "Stops at the first non-``None`` result." in text


@pytest.mark.parametrize("name", ["fap_settings", "fap_release_revision", "fap_source_revision", "fap_source_commits",
                                  "fap_source_promote"])
def test_the_new_hooks_are_in_the_reference_with_every_parameter_and_the_return_contract(name: str) -> None:
    (hook,) = [h for h in fap_reference.hookspecs() if h.name == name]
    text = fap_reference.hook_rst(hook, core={})
    for parameter in inspect.signature(getattr(hookspecs, name)).parameters:
        assert f":param {parameter}:" in text, parameter
    assert ":return:" in text


def test_the_1_0_settings_hooks_point_to_fap_settings() -> None:
    for name in ("fap_defaults", "fap_setting_docs", "fap_secret_settings"):
        assert "1.0 form" in inspect.getdoc(getattr(hookspecs, name)), name


def test_a_plugin_imports_run_from_the_package_root() -> None:
    from fapistrano import Run

    assert "Run" in fapistrano.__all__ and Run.__module__ == "fapistrano.run"


@pytest.mark.parametrize("name", ["fap_run_starting", "fap_run_finished"])
def test_the_run_level_hooks_are_in_the_reference_with_when_and_what_raising_does(name: str) -> None:
    (hook,) = [h for h in fap_reference.hookspecs() if h.name == name]
    text = fap_reference.hook_rst(hook, core={})
    assert ":param run:" in text
    assert "once per run" in text and "deployer's machine" in text
    assert ("aborts the run with nothing changed" if name == "fap_run_starting" else "never changes the run's") in text


def test_flows_and_phases_are_strings_plugins_can_compare() -> None:
    from fapistrano import flows

    assert flows.RELEASE.name == "release" and f"{flows.RELEASE.name}" == "release"
    assert [f"{p}" for p in flows.RESTART.phases] == ["restarting", "restarted"]
    assert flows.RELEASE.hook_name(flows.Phase.UPDATED) == "fap_deploy_updated"


COMMAND_PLUGIN = '''\
from fapistrano import hookimpl


def _mark(ctx):
    with open(ctx.config["trace"], "a") as trace:
        trace.write(f"{ctx.phase} command={ctx.command} flow={ctx.flow}\\n")


@hookimpl
def fap_deploy_updated(ctx):
    _mark(ctx)


@hookimpl
def fap_deploy_reverted(ctx):
    _mark(ctx)


@hookimpl
def fap_deploy_restarted(ctx):
    _mark(ctx)


@hookimpl
def fap_check(ctx):
    _mark(ctx)
'''


def test_ctx_command_is_what_the_operator_typed_and_ctx_flow_keeps_its_1_0_meaning(fap_local, fap_run) -> None:
    root = fap_local.root
    (root / "command_marker.py").write_text(COMMAND_PLUGIN)
    fap_local.write_deployfile({"trace": str(root / "trace"), "plugins": ["command_marker"]})
    for command in (["deploy"], ["deploy"], ["rollback"], ["restart"], ["check"]):
        result = fap_run([*command, "-s", "test"], cwd=root)
        assert result.exit_code == 0, result.output
    assert (root / "trace").read_text().splitlines() == [
        "updated command=deploy flow=release",
        "updated command=deploy flow=release",
        "reverted command=rollback flow=rollback",
        "restarted command=restart flow=restart",
        "check command=check flow=check",
    ]
