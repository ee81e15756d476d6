"""``fap_settings``: plugins declare ``fapistrano.Setting`` objects; the 1.0 form keeps working.

Plugins here are real modules, loaded by dotted name through the same
PluginManager a run uses, and deploy.yml is a real file, so the errors carry
the lines a user would see.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from fapistrano import Setting
from fapistrano import config as cfg
from fapistrano.errors import ConfigError
from fapistrano.plugins import Plugins

NEW_FORM = '''
from fapistrano import Setting, hookimpl

@hookimpl
def fap_settings():
    return [
        Setting("typed_greeting", "hello", "What the greeting says."),
        Setting("typed_retries", None, "How often to retry (unset: never).", type=int | None),
        Setting("typed_tags", [], "Tags of the release.", type=list[str]),
        Setting("typed_token", "", "Token of the greeting service.", secret=True),
        Setting("typed_mode", "fast", "How to greet.", choices=["fast", "slow"]),
    ]
'''

OLD_FORM = '''
from fapistrano import hookimpl

@hookimpl
def fap_defaults():
    return {"legacy_greeting": "hi", "legacy_times": 2, "legacy_token": ""}

@hookimpl
def fap_setting_docs():
    return {"legacy_greeting": "What the 1.0 plugin writes."}

@hookimpl
def fap_secret_settings():
    return ["legacy_token"]
'''


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "plugins"
    directory.mkdir()
    monkeypatch.syspath_prepend(str(directory))
    yield directory
    for name in [n for n in sys.modules if n.startswith("settings_case_")]:
        del sys.modules[name]


def load(plugin_dir: Path, **modules: str) -> Plugins:
    for name, text in modules.items():
        (plugin_dir / f"settings_case_{name}.py").write_text(textwrap.dedent(text))
    plugins = Plugins()
    plugins.load([(f"settings_case_{name}", "deploy.yml:3") for name in modules])
    return plugins


def merged(plugins: Plugins, tmp_path: Path, body: str = "", cli: list[str] | None = None) -> cfg.RoleSettings:
    path = tmp_path / "deploy.yml"
    path.write_text(body + "stage_role_configs:\n  prod:\n    web:\n      hosts: [web1]\n")
    deployfile = cfg.DeployFile.load(path)
    declared = cfg.declared_settings(plugins.settings())
    overrides = cfg.parse_overrides(cli or [], cfg.with_user_settings(deployfile, declared))
    return cfg.merge(deployfile, "prod", "web", declared, overrides, [])


def test_a_setting_carries_name_default_doc_type_and_secrecy() -> None:
    setting = Setting("hello_retries", None, "Retries.", type=int | None, secret=True)
    assert (setting.name, setting.default, setting.doc, setting.secret) == ("hello_retries", None, "Retries.", True)
    assert (setting.kind, setting.optional) == ("int", True)
    assert (Setting("a", 5).kind, Setting("b", []).kind, Setting("c", None).kind) == ("int", "list", "str")


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"name": "bad-name"}, "the name must be a Python identifier"),
        ({"name": "n", "default": None, "type": int}, "the default is None but the type is int; write type=int | None"),
        ({"name": "n", "default": "3", "type": int}, "the default '3' is not an integer"),
        ({"name": "n", "default": [], "type": list[int]}, "type list[int] is not supported"),
        ({"name": "n", "default": "x", "choices": ["a", "b"]}, "the default 'x' is not one of the choices"),
    ],
)
def test_a_bad_declaration_names_its_file_and_line(arguments: dict, problem: str) -> None:
    line = sys._getframe().f_lineno + 2  # the line of Setting(**arguments) below
    with pytest.raises(ConfigError) as caught:
        Setting(**arguments)
    assert str(caught.value).startswith(f"{__file__}:{line}: setting {arguments['name']!r}: {problem}")


def test_a_bad_declaration_in_a_plugin_stops_the_run_naming_the_plugin(plugin_dir: Path) -> None:
    bad = 'from fapistrano import Setting, hookimpl\n\n@hookimpl\ndef fap_settings():\n    return [Setting("x", None, type=int)]\n'
    with pytest.raises(ConfigError) as caught:
        load(plugin_dir, bad=bad).settings()
    assert str(caught.value).startswith(f"{plugin_dir / 'settings_case_bad.py'}:5: setting 'x': the default is None")
    assert str(caught.value).endswith("(plugin settings_case_bad)")


def test_new_and_old_form_plugins_declare_settings_side_by_side(plugin_dir: Path) -> None:
    plugins = load(plugin_dir, new=NEW_FORM, old=OLD_FORM)
    by_plugin = {name: {s.name: s for s in settings} for name, settings in plugins.settings()}
    legacy = by_plugin["settings_case_old"]
    assert [(s.default, s.doc, s.secret, s.kind) for s in legacy.values()] == [
        ("hi", "What the 1.0 plugin writes.", False, "str"), (2, "", False, "int"), ("", "", True, "str")]
    assert by_plugin["settings_case_new"]["typed_retries"].kind == "int"
    assert set(plugins.secret_settings()) == {"typed_token", "legacy_token"}
    assert plugins.docs()["typed_greeting"] == "What the greeting says."


def test_values_are_checked_against_the_declared_type(plugin_dir: Path, tmp_path: Path) -> None:
    plugins = load(plugin_dir, new=NEW_FORM)
    assert merged(plugins, tmp_path).values["typed_retries"] is None
    assert merged(plugins, tmp_path, "typed_retries: 3\n").values["typed_retries"] == 3
    assert merged(plugins, tmp_path, "typed_tags: [a, b]\n").values["typed_tags"] == ["a", "b"]
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'deploy.yml'}:1: typed_retries: expected an integer, got 'three'$"):
        merged(plugins, tmp_path, "typed_retries: three\n")
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'deploy.yml'}:2: typed_mode: expected one of fast, slow, got 'slower'$"):
        merged(plugins, tmp_path, "typed_greeting: hi\ntyped_mode: slower\n")


def test_declared_settings_work_on_the_command_line(plugin_dir: Path, tmp_path: Path) -> None:
    plugins = load(plugin_dir, new=NEW_FORM, old=OLD_FORM)
    values = merged(plugins, tmp_path, cli=["--typed-retries", "4", "--legacy-times", "5", "--typed-tags", "a,b"]).values
    assert (values["typed_retries"], values["legacy_times"], values["typed_tags"]) == (4, 5, ["a", "b"])
    assert merged(plugins, tmp_path, "typed_retries: 2\n", cli=["--typed-retries", "null"]).values["typed_retries"] is None
    with pytest.raises(ConfigError, match=r"^command line: typed_mode: expected one of fast, slow, got 'slowly'$"):
        merged(plugins, tmp_path, cli=["--typed-mode", "slowly"])


def test_a_plugin_may_not_take_a_name_already_declared(plugin_dir: Path) -> None:
    clash = 'from fapistrano import Setting, hookimpl\n\n@hookimpl\ndef fap_settings():\n    return [Setting("legacy_times", 1)]\n'
    plugins = load(plugin_dir, old=OLD_FORM, clash=clash)
    with pytest.raises(ConfigError, match=r"setting 'legacy_times' is already declared by plugin default \(settings_case_old\)"):
        cfg.declared_settings(plugins.settings())


def test_fap_settings_must_return_settings(plugin_dir: Path) -> None:
    odd = 'from fapistrano import hookimpl\n\n@hookimpl\ndef fap_settings():\n    return {"odd_name": 1}\n'
    with pytest.raises(ConfigError, match=r"^plugin settings_case_odd: fap_settings must return a list of fapistrano.Setting$"):
        load(plugin_dir, odd=odd).settings()


CHECKED = '''
from fapistrano import Setting, hookimpl

def positive_port(value):
    if not 0 < value < 65536:
        raise ValueError(f"expected a TCP port (1-65535), got {value}")

def web_address(value):
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"expected an http:// or https:// address, got {value!r}")

@hookimpl
def fap_settings():
    return [
        Setting("checked_port", 8000, "Where the app listens.", check=positive_port),
        Setting("checked_url", "http://%(host)s/", "Where the app answers.", check=web_address),
    ]
'''


def _target(settings: cfg.RoleSettings) -> cfg.Target:
    (host,) = cfg.hosts_of(settings)
    return cfg.target_for_host(settings, host, "240517-120000")


def test_a_check_refuses_a_bad_value_in_one_line_naming_file_line_and_setting(plugin_dir: Path, tmp_path: Path) -> None:
    plugins = load(plugin_dir, checked=CHECKED)
    assert _target(merged(plugins, tmp_path, "app_name: shop\nchecked_port: 8080\n")).config["checked_port"] == 8080
    with pytest.raises(ConfigError) as raised:
        _target(merged(plugins, tmp_path, "app_name: shop\nchecked_port: 70000\n"))
    assert str(raised.value) == f"{tmp_path / 'deploy.yml'}:2: checked_port: expected a TCP port (1-65535), got 70000"
    with pytest.raises(ConfigError, match=r"^command line: checked_port: expected a TCP port \(1-65535\), got 0$"):
        _target(merged(plugins, tmp_path, "app_name: shop\n", cli=["--checked-port", "0"]))


def test_a_check_sees_the_value_once_its_references_are_filled_in(plugin_dir: Path, tmp_path: Path) -> None:
    plugins = load(plugin_dir, checked=CHECKED)
    assert _target(merged(plugins, tmp_path, "app_name: shop\n")).config["checked_url"] == "http://web1/"
    with pytest.raises(ConfigError, match=r":3: checked_url: expected an http:// or https:// address, got 'ftp://web1/'$"):
        _target(merged(plugins, tmp_path, "app_name: shop\nscheme: ftp\nchecked_url: '%(scheme)s://%(host)s/'\n"))


def test_a_check_that_crashes_is_one_line_naming_the_setting_and_where_it_is_declared(plugin_dir: Path, tmp_path: Path) -> None:
    crashing = CHECKED.replace('if not 0 < value < 65536:', 'if not 0 < value < "65536":')
    plugins = load(plugin_dir, crashing=crashing)
    with pytest.raises(ConfigError) as raised:
        _target(merged(plugins, tmp_path, "app_name: shop\n"))
    assert str(raised.value).startswith("prod/web: checked_port: its check (")
    assert "settings_case_crashing.py:" in str(raised.value) and str(raised.value).endswith("failed: TypeError:"
                                                                                          " '<' not supported between"
                                                                                          " instances of 'int' and 'str'")


def test_a_check_that_is_not_a_function_is_refused_where_the_setting_is_declared() -> None:
    with pytest.raises(ConfigError, match=r"setting 'odd_port': check must be a function of the value, got 5"):
        Setting("odd_port", 1, "A port.", check=5)  # type: ignore[arg-type]


def test_the_core_settings_are_a_built_in_plugins_typed_settings_with_checks() -> None:
    plugins = Plugins()
    (owner, core), *_others = plugins.settings()
    assert owner == cfg.CORE_PLUGIN == "core.settings"
    by_name = {setting.name: setting for setting in core}
    assert by_name["connection"].choices == ("ssh", "local")
    assert by_name["keep_releases"].kind == "int" and by_name["keep_releases"].check is not None
    assert {"path", "max_fail", "ssh_persist", "linked_files", "environment"} <= {n for n, s in by_name.items() if s.check}
    assert cfg.declared_settings(plugins.settings())["keep_releases"].origin == cfg.Origin("core")
