"""``%(name)s`` references: resolved after merging, per host and release; errors name key and file:line."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from fapistrano import config as cfg
from fapistrano.config import ConfigError, HostSpec, Origin
from fapistrano.plugins import Plugins
from fapistrano.settings import Setting


def settings_of(tmp_path: Path, text: str, cli: list[str] | None = None, stage: str = "prod", role: str = "web") -> cfg.RoleSettings:
    path = tmp_path / "deploy.yml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    deployfile = cfg.DeployFile.load(path)
    declared = cfg.declared_settings([*Plugins().settings(), ("greeter", [Setting("greeting", "hello from %(host)s")])])
    return cfg.merge(deployfile, stage, role, declared, cfg.parse_overrides(cli or [], declared), [])


def resolve(settings: cfg.RoleSettings, host: str = "web1", release: str | None = "240517-120000") -> dict[str, Any]:
    return dict(cfg.target_for_host(settings, HostSpec.parse(host, Origin("core")), release).config)


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def test_run_names_are_those_of_the_host_and_release(tmp_path: Path) -> None:
    text = """
    app_name: shop
    label: "%(app_name)s %(stage)s/%(role)s on %(host)s, release %(release)s in %(release_path)s"
    stage_role_configs:
      prod:
        web:
          hosts: [web1, "ops@web2:2200"]
    """
    settings = settings_of(tmp_path, text)
    assert resolve(settings, "web1")["label"] == "shop prod/web on web1, release 240517-120000 in /home/deploy/www/shop/releases/240517-120000"
    # A host's user feeds %(user)s, so the default path follows it.
    assert resolve(settings, "ops@web2:2200")["label"] == "shop prod/web on web2, release 240517-120000 in /home/ops/www/shop/releases/240517-120000"


def test_plugin_defaults_are_interpolated_per_host(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, "app_name: shop\nstage_role_configs: {prod: {web: {hosts: [a, b]}}}\n")
    assert resolve(settings, "a")["greeting"] == "hello from a"
    assert resolve(settings, "b")["greeting"] == "hello from b"


def test_references_are_resolved_after_merging(tmp_path: Path) -> None:
    # The top level refers to a name that only the block and the command line set.
    text = """
    app_name: shop
    venv_path: "%(path)s/venvs/%(python)s"
    python: "3.10"
    stage_role_configs:
      prod:
        web:
          hosts: [web1]
          python: "3.11"
          path: /srv/%(app_name)s-%(stage)s
    """
    settings = settings_of(tmp_path, text)
    assert resolve(settings)["venv_path"] == "/srv/shop-prod/venvs/3.11"
    settings = settings_of(tmp_path, text, cli=["--app-name", "store"])
    assert resolve(settings)["venv_path"] == "/srv/store-prod/venvs/3.11"
    assert resolve(settings)["current_path"] == "/srv/store-prod/current"


def test_without_a_release_release_path_is_current(tmp_path: Path) -> None:
    text = """
    app_name: shop
    venv: "%(release_path)s/venv"
    stage_role_configs: {prod: {web: {hosts: [web1]}}}
    """
    config = resolve(settings_of(tmp_path, text), release=None)
    assert config["release_path"] == "/home/deploy/www/shop/current"
    assert config["venv"] == "/home/deploy/www/shop/current/venv"


def test_lists_and_mappings_are_interpolated_item_by_item(tmp_path: Path) -> None:
    text = """
    app_name: shop
    linked_dirs: ["%(app_name)s-logs", tmp]
    environment:
      DJANGO_SETTINGS_MODULE: "%(app_name)s.settings.%(stage)s"
      RELEASE: "%(release)s"
    stage_role_configs: {prod: {web: {hosts: [web1]}}}
    """
    config = resolve(settings_of(tmp_path, text))
    assert config["linked_dirs"] == ["shop-logs", "tmp"]
    assert config["environment"] == {"DJANGO_SETTINGS_MODULE": "shop.settings.prod", "RELEASE": "240517-120000"}


def test_numbers_and_lists_read_as_text_and_double_percent_is_a_percent(tmp_path: Path) -> None:
    text = """
    app_name: shop
    note: "keep %(keep_releases)s, dirs %(linked_dirs)s, 100%% sure"
    linked_dirs: [log, tmp]
    stage_role_configs: {prod: {web: {hosts: [web1]}}}
    """
    assert resolve(settings_of(tmp_path, text))["note"] == "keep 5, dirs log tmp, 100% sure"


def test_text_that_only_looks_like_a_reference_is_left_alone(tmp_path: Path) -> None:
    text = """
    app_name: shop
    note: "%(app_name) and %s and %d and %(unclosed"
    stage_role_configs: {prod: {web: {hosts: [web1]}}}
    """
    assert resolve(settings_of(tmp_path, text))["note"] == "%(app_name) and %s and %d and %(unclosed"


def test_an_unknown_name_names_the_key_and_its_line(tmp_path: Path) -> None:
    text = """
    app_name: shop
    stage_role_configs:
      prod:
        web:
          hosts: [web1]
          venv: "%(relase_path)s/venv"
    """
    settings = settings_of(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        resolve(settings)
    path = tmp_path / "deploy.yml"
    assert str(caught.value) == f"{path}:{line_of(path, 'venv:')}: venv: unknown name %(relase_path)s (did you mean 'release_path'?)"


def test_an_unknown_name_from_the_command_line_says_so(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, "app_name: shop\nstage_role_configs: {prod: {web: {hosts: [web1]}}}\n",
                           cli=["--greeting", "hi %(nobody)s"])
    with pytest.raises(ConfigError) as caught:
        resolve(settings)
    assert str(caught.value) == "command line: greeting: unknown name %(nobody)s"


def test_an_unknown_name_is_found_before_any_release_is_named(tmp_path: Path) -> None:
    # fap resolves each host once without a release before it connects: errors must surface there.
    text = """
    app_name: shop
    stage_role_configs:
      prod:
        web:
          hosts: [web1]
          release_path: "%(releases_path)s/%(nope)s"
    """
    with pytest.raises(ConfigError, match=r"deploy.yml:6: release_path: unknown name %\(nope\)s"):
        resolve(settings_of(tmp_path, text), release=None)


@pytest.mark.parametrize(
    ("lines", "key", "cycle"),
    [
        (['a: "%(a)s"'], "a", "a -> a"),
        (['a: "x%(b)s"', 'b: "y%(a)s"'], "a", "a -> b -> a"),
        (['first: "%(second)s"', 'second: "%(third)s"', 'third: "%(first)s"'], "first", "first -> second -> third -> first"),
        (['path: "%(current_path)s/.."'], "path", "path -> current_path -> path"),
    ],
)
def test_a_cycle_names_the_key_its_line_and_the_loop(tmp_path: Path, lines: list[str], key: str, cycle: str) -> None:
    text = "app_name: shop\n" + "\n".join(lines) + "\nstage_role_configs: {prod: {web: {hosts: [web1]}}}\n"
    settings = settings_of(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        resolve(settings)
    path = tmp_path / "deploy.yml"
    assert str(caught.value) == f"{path}:{line_of(path, key + ':')}: {key}: %(name)s references form a cycle: {cycle}"


def test_a_cycle_through_a_block_names_the_block_line(tmp_path: Path) -> None:
    text = """
    app_name: shop
    upstream: "%(downstream)s"
    stage_role_configs:
      prod:
        web:
          hosts: [web1]
          downstream: "%(upstream)s"
    """
    with pytest.raises(ConfigError) as caught:
        resolve(settings_of(tmp_path, text))
    message = str(caught.value)
    path = tmp_path / "deploy.yml"
    assert message.startswith(f"{path}:2: upstream: ") or message.startswith(f"{path}:{line_of(path, 'downstream:')}: downstream: ")
    assert "cycle" in message and "upstream" in message and "downstream" in message


def test_interpolation_does_not_touch_the_merged_settings(tmp_path: Path) -> None:
    text = "app_name: shop\nstage_role_configs: {prod: {web: {hosts: [a, b]}}}\n"
    settings = settings_of(tmp_path, text)
    resolve(settings, "a")
    assert settings.values["greeting"] == "hello from %(host)s"
    assert resolve(settings, "b")["greeting"] == "hello from b"


def test_references_may_chain_up_to_the_depth_limit(tmp_path: Path) -> None:
    depth = cfg.MAX_REFERENCE_DEPTH - 1  # link0 -> ... -> link49 -> end: 50 names being resolved at once
    chain = "".join(f'link{n}: "%(link{n + 1})s"\n' for n in range(depth)) + f'link{depth}: "end"\n'
    settings = settings_of(tmp_path, "app_name: shop\n" + chain + "stage_role_configs: {prod: {web: {hosts: [web1]}}}\n")
    assert resolve(settings)["link0"] == "end"


def test_a_chain_deeper_than_the_limit_names_its_first_key_and_line(tmp_path: Path) -> None:
    chain = "".join(f'link{n}: "%(link{n + 1})s"\n' for n in range(250)) + 'link250: "end"\n'
    settings = settings_of(tmp_path, "app_name: shop\n" + chain + "stage_role_configs: {prod: {web: {hosts: [web1]}}}\n")
    with pytest.raises(ConfigError) as caught:
        resolve(settings)
    path = tmp_path / "deploy.yml"
    assert str(caught.value) == (f"{path}:2: link0: %(name)s references nest deeper than 50 levels:"
                                 " link0 -> link1 -> link2 -> ... -> link50")


def test_a_value_that_grows_past_the_size_limit_names_its_key(tmp_path: Path) -> None:
    # 10 000 characters doubled at each of 15 levels would be 327 MB; the limit stops it at d7 (1.28 MB).
    doubling = 'd0: "' + "x" * 10_000 + '"\n' + "".join(f'd{n}: "%(d{n - 1})s%(d{n - 1})s"\n' for n in range(1, 16))
    settings = settings_of(tmp_path, "app_name: shop\n" + doubling + "stage_role_configs: {prod: {web: {hosts: [web1]}}}\n")
    with pytest.raises(ConfigError) as caught:
        resolve(settings)
    path = tmp_path / "deploy.yml"
    assert str(caught.value) == f"{path}:9: d7: grows past 1000000 characters once its %(name)s references are filled in"


def test_a_large_value_within_the_limit_is_filled_in(tmp_path: Path) -> None:
    text = 'big: "' + "x" * 400_000 + '"\ntwice: "%(big)s%(big)s"\nstage_role_configs: {prod: {web: {hosts: [web1]}}}\n'
    assert len(resolve(settings_of(tmp_path, "app_name: shop\n" + text))["twice"]) == 800_000
