"""Hookimpls are called through pluggy as registered, and a failure still names the plugin that raised it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fapistrano.plugins import BUILTIN_PLUGINS, PluginFailure, Plugins

#: A helper library two plugins use: its wrapper's code is shared by both plugins' hookimpls.
SHARED_DECORATOR = '''\
import functools


def logged(function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return function(*args, **kwargs)
    return wrapper
'''

PLUGIN = '''\
from fapistrano import hookimpl
from calls_helpers import logged


@hookimpl
@logged
def fap_deploy_updated(ctx):
    if ctx["fail"] == {name!r}:
        raise RuntimeError("{name} fell over")


@hookimpl
def fap_check(ctx):
    if ctx["fail"] == {name!r}:
        raise RuntimeError("{name} check fell over")
    return ["{name} has a problem"]
'''


@pytest.fixture
def plugins(tmp_path: Path) -> Iterator[Plugins]:
    (tmp_path / "calls_helpers.py").write_text(SHARED_DECORATOR)
    for name in ("calls_one", "calls_two"):
        (tmp_path / f"{name}.py").write_text(PLUGIN.format(name=name))
    sys.path.insert(0, str(tmp_path))
    loaded = Plugins()
    loaded.load([("calls_one", "deploy.yml:1"), ("calls_two", "deploy.yml:2")])
    try:
        yield loaded
    finally:
        sys.path.remove(str(tmp_path))
        for name in ("calls_helpers", "calls_one", "calls_two"):
            sys.modules.pop(name, None)


def test_pluggy_calls_each_plugins_own_function(plugins: Plugins) -> None:
    for caller in vars(plugins.manager.hook).values():
        for impl in getattr(caller, "get_hookimpls", list)():
            assert impl.function is getattr(impl.plugin, impl.function.__name__), impl.plugin_name


@pytest.mark.parametrize("failing", ["calls_one", "calls_two"])
def test_a_failing_hookimpl_is_named_even_when_plugins_share_a_decorator(plugins: Plugins, failing: str) -> None:
    with pytest.raises(PluginFailure) as raised:
        plugins.caller("fap_deploy_updated", ["calls_one", "calls_two"])(ctx={"fail": failing})
    assert raised.value.plugin == failing
    assert str(raised.value) == f"RuntimeError: {failing} fell over"


class StepsFreeCtx(dict):
    """The test plugins' ctx (a dict), with no steps of hooks: for the core's core.steps to run."""

    target = type("NoSteps", (), {"steps": ()})()


def test_an_inactive_plugin_is_not_called(plugins: Plugins) -> None:
    plugins.caller("fap_deploy_updated", ["calls_two"])(ctx=StepsFreeCtx(fail="calls_one"))


def test_one_by_one_names_each_answer_and_each_crash(plugins: Plugins) -> None:
    answers: dict[str, Any] = {}
    for name, check in plugins.one_by_one("fap_check", ["calls_one", "calls_two"]):
        if name in BUILTIN_PLUGINS:
            continue  # the core's own check reads a real ctx
        try:
            answers[name] = check(ctx={"fail": "calls_one"})
        except PluginFailure as failure:
            answers[name] = f"{failure.plugin}: {failure}"
    assert answers == {"calls_one": "calls_one: RuntimeError: calls_one check fell over", "calls_two": [["calls_two has a problem"]]}


def test_a_failing_core_step_is_named_like_a_plugin(fap_local: Any, fap_run: Any, assert_error: Any) -> None:
    fap_local.write_deployfile({"linked_files": ["config/app.ini"]})
    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)
    assert_error(result, "localhost: starting: core.dirs: missing linked file: ")


def test_a_targets_caller_is_made_once_and_reused_by_every_host_and_phase(plugins: Plugins) -> None:
    # One target's plugins: the same caller for each of its hosts, whatever order deploy.yml lists them in.
    first = plugins.caller("fap_deploy_updated", ["calls_two"])
    assert plugins.caller("fap_deploy_updated", ("calls_two",)) is first
    assert plugins.caller("fap_deploy_updated", ["calls_one", "calls_two"]) is not first
    assert plugins.one_by_one("fap_check", ["calls_one"]) is plugins.one_by_one("fap_check", ["calls_one"])


def test_loading_more_plugins_forgets_the_callers_made_without_them(plugins: Plugins, tmp_path: Path) -> None:
    before = plugins.caller("fap_deploy_updated", ["calls_one", "calls_two", "calls_three"])
    (tmp_path / "calls_three.py").write_text(PLUGIN.format(name="calls_three"))
    try:
        plugins.load([("calls_three", "deploy.yml:3")])
        after = plugins.caller("fap_deploy_updated", ["calls_one", "calls_two", "calls_three"])
        assert after is not before
        with pytest.raises(PluginFailure) as raised:
            after(ctx={"fail": "calls_three"})
        assert raised.value.plugin == "calls_three"
    finally:
        sys.modules.pop("calls_three", None)


def test_the_plugin_at_work_is_named_from_the_stack_as_from_a_traceback(plugins: Plugins) -> None:
    seen: list[str | None] = []

    class Watching(StepsFreeCtx):
        def __getitem__(self, key: str) -> Any:
            seen.append(plugins.attribution.running(sys._getframe(1)))  # noqa: SLF001 - the hookimpl's frame
            return super().__getitem__(key)

    plugins.caller("fap_deploy_updated", ["calls_one", "calls_two"])(ctx=Watching(fail="nobody"))
    assert seen == ["calls_one", "calls_two"]
