"""A plugin author's mistakes are one line naming the plugin and what to write instead, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

MISSPELT_HOOK = '''\
from fapistrano import hookimpl


@hookimpl
def fap_deploy_publish(ctx):
    ctx.log("never called")
'''

UNDECLARED_SETTING = '''\
from fapistrano import Setting, hookimpl


@hookimpl
def fap_settings():
    return [Setting("reader_greeting", "hello", "What the reader greets with.")]


@hookimpl
def fap_deploy_updated(ctx):
    ctx.log(ctx.config["reader_greting"])
'''


def _write_plugin(root: Path, name: str, source: str) -> None:
    (root / f"{name}.py").write_text(source)


@pytest.mark.parametrize("command", ["deploy", "check"])
def test_a_misspelt_hook_name_is_one_line_naming_the_plugin_and_the_real_hook(fap_local: Any, fap_run: Any, assert_error: Any,
                                                                              command: str) -> None:
    _write_plugin(fap_local.root, "typo_plugin", MISSPELT_HOOK)
    fap_local.write_deployfile({"plugins": ["typo_plugin"]})

    result = fap_run([command, "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 2, result.output
    line = assert_error(result, "plugin typo_plugin", "fap_deploy_publish", "did you mean fap_deploy_published or fap_deploy_publishing?")
    assert "deploy.yml:" in line
    assert fap_local.releases() == []


def test_fap_plugins_names_the_misspelt_hook_and_exits_2(fap_local: Any, fap_run: Any) -> None:
    _write_plugin(fap_local.root, "typo_plugin", MISSPELT_HOOK)
    fap_local.write_deployfile({"plugins": ["typo_plugin"]})

    result = fap_run(["plugins"], cwd=fap_local.root)

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stdout.splitlines() if line.startswith("  error:")]
    assert len(errors) == 1, result.output
    assert "unknown hook fap_deploy_publish (did you mean fap_deploy_published or fap_deploy_publishing?)" in errors[0]


def test_reading_an_undeclared_setting_says_no_plugin_declares_it(fap_local: Any, fap_run: Any, assert_error: Any) -> None:
    _write_plugin(fap_local.root, "reader_plugin", UNDECLARED_SETTING)
    fap_local.write_deployfile({"plugins": ["reader_plugin"]})

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 1, result.output
    assert_error(result, "reader_plugin", "setting 'reader_greting' is not declared by any plugin's fap_settings",
                 "did you mean 'reader_greeting'?")
    assert "KeyError" not in result.output
    assert fap_local.current() is None


def test_an_undeclared_setting_is_still_a_key_error_for_code_that_catches_one() -> None:
    from types import MappingProxyType

    from fapistrano.context import Settings

    settings = Settings(MappingProxyType({"keep_releases": 5}))

    with pytest.raises(KeyError):
        settings["keep_release"]
    assert settings.get("keep_release", 3) == 3
    assert "keep_release" not in settings and settings["keep_releases"] == 5
    assert dict(settings) == {"keep_releases": 5}


def test_a_hook_marked_optionalhook_that_fap_does_not_know_loads(fap_local: Any, fap_run: Any) -> None:
    _write_plugin(fap_local.root, "future_plugin", MISSPELT_HOOK.replace("@hookimpl", "@hookimpl(optionalhook=True)"))
    fap_local.write_deployfile({"plugins": ["future_plugin"]})

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    assert "never called" not in result.output
