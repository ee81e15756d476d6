"""Per-host settings: an item of ``hosts:`` written as a mapping overrides its role's values for that host only.

Every deploy.yml here is a real file parsed by ruamel.yaml: the lines in errors are the editor's.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from fapistrano import config as cfg
from fapistrano.config import ConfigError, HostSpec, Origin
from fapistrano.plugins import Plugins
from fapistrano.settings import from_legacy

PLUGIN = ("greeter", {"greeting": "plugin default", "times": 1})


def declare(*plugins: tuple[str, Any]) -> dict[str, cfg.Declared]:
    """The core's settings and each plugin's, a plugin given by its 1.0 ``fap_defaults`` mapping."""
    return cfg.declared_settings([*Plugins().settings(), *((name, from_legacy(name, defaults, {}, [])) for name, defaults in plugins)])


def settings_of(tmp_path: Path, text: str, role: str = "web", cli: list[str] | None = None) -> cfg.RoleSettings:
    path = tmp_path / "deploy.yml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    deployfile = cfg.DeployFile.load(path)
    declared = declare(PLUGIN)
    overrides = cfg.parse_overrides(cli or [], declared)
    return cfg.merge(deployfile, "prod", role, declared, overrides, [])


def target(settings: cfg.RoleSettings, host: str) -> cfg.Target:
    (spec,) = [spec for spec in cfg.hosts_of(settings) if spec.name == host]
    return cfg.target_for_host(settings, spec, "240517-120000")


def line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


FILE = """
app_name: shop
greeting: top
environment: {DJANGO_SETTINGS: site.prod, WORKERS: "4"}
stage_role_configs:
  prod:
    web:
      greeting: role
      hosts:
        - web1
        - {host: web2, greeting: "hello from %(host)s", times: 2, weight: 3}
        - host: deploy@web3:2222
          environment: {WORKERS: "8", EXTRA: "yes"}
    worker:
      hosts: [web2]
"""


def test_a_host_item_overrides_its_roles_value_for_that_host_only(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, FILE)

    assert [str(spec) for spec in cfg.hosts_of(settings)] == ["web1", "web2", "web3:2222"]
    assert target(settings, "web1").config["greeting"] == "role"
    web2 = target(settings, "web2").config
    assert (web2["greeting"], web2["times"], web2["weight"]) == ("hello from web2", 2, "3")  # a setting of your own is text, as at the top level
    assert target(settings, "web3").config["greeting"] == "role"
    assert target(settings, "web3").host.user == "deploy" and target(settings, "web3").host.port == 2222


def test_a_host_in_two_roles_keeps_each_roles_own_values(tmp_path: Path) -> None:
    worker = settings_of(tmp_path, FILE, role="worker")

    assert target(worker, "web2").config["greeting"] == "top"
    assert target(worker, "web2").config["times"] == 1


def test_environment_of_a_host_item_merges_over_the_roles(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, FILE)

    assert target(settings, "web3").config["environment"] == {"DJANGO_SETTINGS": "site.prod", "WORKERS": "8", "EXTRA": "yes"}
    assert target(settings, "web1").config["environment"] == {"DJANGO_SETTINGS": "site.prod", "WORKERS": "4"}


def test_origin_of_a_host_value_names_its_line_and_host(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, FILE)
    line = line_of(tmp_path / "deploy.yml", "host: web2")

    origins = target(settings, "web2").origins
    assert str(origins["greeting"]) == f"{tmp_path / 'deploy.yml'}:{line} (host web2)"
    assert str(target(settings, "web1").origins["greeting"]).startswith("stage/role block")


def test_the_command_line_beats_a_host_item(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, FILE, cli=["--greeting", "cli"])

    assert target(settings, "web2").config["greeting"] == "cli"
    assert str(target(settings, "web2").origins["greeting"]) == "command line"


@pytest.mark.parametrize(("item", "message"), [
    ("{host: web2, stage: other}", "hosts: host web2: stage cannot be set per host"),
    ("{host: web2, role: other}", "hosts: host web2: role cannot be set per host"),
    ("{host: web2, hosts: [a]}", "hosts: host web2: hosts cannot be set per host"),
    ("{host: web2, plugins: [fapistrano.git]}", "hosts: host web2: plugins cannot be set per host"),
    ("{host: web2, deploy_plugins: [fapistrano.git]}", "hosts: host web2: deploy_plugins cannot be set per host"),
    ("{host: web2, release: x}", "hosts: host web2: release cannot be set per host"),
    ("{host: web2, hooks: {}}", "hosts: host web2: hooks cannot be set per host"),
    ("{host: web2, max_fail: 1}", "hosts: host web2: max_fail applies to the whole run, not to one host"),
    ("{host: web2, batch_size: 1}", "hosts: host web2: batch_size applies to the whole run, not to one host"),
    ("{host: web2, max_parallel: 1}", "hosts: host web2: max_parallel applies to the whole run, not to one host"),
    ("{host: web2, greting: x}", "hosts: host web2: greting is not a known setting (did you mean 'greeting'?)"),
    ("{host: web2, times: many}", "hosts: host web2: times: expected an integer, got 'many'"),
    ("{greeting: x}", "hosts: a host written as a mapping needs host: NAME"),
    ("{hots: web2, greeting: x}", "hosts: a host written as a mapping needs host: NAME, e.g. {host: web2, setting: value};"
                                  " hots (did you mean 'host'?)"),
    ("{host: [web2]}", "hosts: host: expected a host name [user@]host[:port], got a list"),
    ("{host: '-oProxyCommand=x'}", "a host or user name must not start with '-'"),
    ("[web2]", "hosts: expected a host ([user@]host[:port]) or a mapping with host:, got a list"),
])
def test_a_bad_host_item_is_one_line_naming_file_line_and_key(tmp_path: Path, item: str, message: str) -> None:
    text = f"""
    app_name: shop
    stage_role_configs:
      prod:
        web:
          hosts:
            - web1
            - {item}
    """
    with pytest.raises(ConfigError) as raised:
        settings = settings_of(tmp_path, text)
        for spec in cfg.hosts_of(settings):
            cfg.target_for_host(settings, spec, None)

    assert str(raised.value) == f"{tmp_path / 'deploy.yml'}:7: {message}" or (
        message in str(raised.value) and str(raised.value).startswith(f"{tmp_path / 'deploy.yml'}:7"))
    assert "\n" not in str(raised.value)


def test_a_key_of_a_host_item_on_its_own_line_is_named_by_that_line(tmp_path: Path) -> None:
    text = """
    app_name: shop
    stage_role_configs:
      prod:
        web:
          hosts:
            - host: web2
              times: 2
              greting: x
    """
    with pytest.raises(ConfigError) as raised:
        settings_of(tmp_path, text)

    assert str(raised.value).startswith(f"{tmp_path / 'deploy.yml'}:8: hosts: host web2: greting is not a known setting")


def test_custom_settings_allows_a_host_key_one_edit_from_a_known_one(tmp_path: Path) -> None:
    text = """
    app_name: shop
    custom_settings: [greting]
    stage_role_configs:
      prod:
        web:
          hosts: [{host: web2, greting: x}]
    """
    assert target(settings_of(tmp_path, text), "web2").config["greting"] == "x"


def test_a_host_item_may_be_written_at_the_top_level(tmp_path: Path) -> None:
    text = """
    app_name: shop
    hosts: [{host: web2, times: 5}]
    stage_role_configs:
      prod:
        web: {}
    """
    assert target(settings_of(tmp_path, text), "web2").config["times"] == 5


def test_a_host_value_reaches_references_of_other_settings(tmp_path: Path) -> None:
    text = """
    app_name: shop
    program: web
    supervisor_conf: /etc/supervisor/%(program)s.conf
    stage_role_configs:
      prod:
        web:
          hosts: [web1, {host: web2, program: web-b}]
    """
    settings = settings_of(tmp_path, text)
    config: dict[str, Any] = dict(target(settings, "web2").config)

    assert config["supervisor_conf"] == "/etc/supervisor/web-b.conf"
    assert target(settings, "web1").config["supervisor_conf"] == "/etc/supervisor/web.conf"


def test_hosts_written_as_text_are_unchanged(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, FILE, role="worker")

    assert settings.values["hosts"] == ["web2"]
    assert cfg.hosts_of(settings) == [HostSpec("web2")]
    assert Origin("core")  # the public names stay importable


def test_an_error_in_a_host_value_never_quotes_a_secret_of_that_host(tmp_path: Path) -> None:
    text = """
    app_name: shop
    mask: [db_password]
    db_password: role-secret-1
    stage_role_configs:
      prod:
        web:
          hosts: [{host: web2, db_password: host-secret-2, connection: "%(db_password)s"}]
    """
    with pytest.raises(ConfigError) as raised:
        target(settings_of(tmp_path, text), "web2")

    assert str(raised.value) == f"{tmp_path / 'deploy.yml'}:7: connection: expected one of ssh, local, got '***'"
