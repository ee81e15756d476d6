"""Whatever deploy.yml holds, loading it either works or says one clear line: never a traceback."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from fapistrano import config as cfg
from fapistrano.errors import FapError
from fapistrano.plugins import Plugins, core_settings

CORE_NAMES = [setting.name for setting in core_settings()]
NAMES = [*CORE_NAMES, "stage", "role", "release", "custom", "plugins", "deploy_plugins"]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(NAMES).map(lambda n: f"%({n})s"),
    st.sampled_from(["%(nope)s", "%(", "%%", "%(path)s/x", "a%(user)sb", "user@host:22", "h:notaport"]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                      max_leaves=6)
settings_maps = st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=8), values, max_size=6)
blocks = st.one_of(
    values,
    st.dictionaries(st.text(max_size=6), st.one_of(values, st.dictionaries(st.text(max_size=6), st.one_of(settings_maps, values), max_size=3)), max_size=3),
)
documents = st.one_of(values, st.builds(lambda top, srs: {**top, "stage_role_configs": srs}, settings_maps, blocks))


def _load_everything(path: Path) -> None:
    deployfile = cfg.DeployFile.load(path)
    blocks = deployfile.blocks
    stages = list(blocks)[:2] or [None]
    for stage in stages:
        pairs = deployfile.select(stage, None)
        declared = cfg.declared_settings(Plugins().settings())
        for pair in pairs:
            deployfile.plugins_for(*pair, "deploy")
            merged = cfg.merge(deployfile, *pair, declared, {}, [])
            for host in cfg.hosts_of(merged):
                cfg.target_for_host(merged, host, "261127-120000")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=documents)
def test_any_deploy_yml_loads_or_fails_with_a_config_error(tmp_path_factory, document):
    path = tmp_path_factory.mktemp("prop") / "deploy.yml"
    yaml = YAML(typ="safe", pure=True)
    with path.open("w") as stream:
        yaml.dump(document, stream)
    try:
        _load_everything(path)
    except FapError as error:
        message = str(error)
        assert message and "\n" not in message
        assert "Traceback" not in message


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_any_text_loads_or_fails_with_a_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("text") / "deploy.yml"
    path.write_text(text)
    try:
        _load_everything(path)
    except FapError as error:
        assert "\n" not in str(error)


#: YAML that builds dates, tagged values, aliases and flow collections: what a typo or a paste can hold.
TRICKY = st.sampled_from([
    "2020-13-45", "2020-01-05", "2020-01-05 10:00:00", "!!int x", "!!float x", "!!bool maybe", "!!timestamp 2020-13-45",
    "!!binary x", "!!set {a}", "!!omap [a: 1]", "!vault abc", "!!python/object:os.system x", "&a [*a]", "*nope", "{1: a}",
    "{A: 2020-13-45}", "[2020-13-45]", "~", "", "[", "{", "0x1F", "1e400", "-.inf", "!!int 99999999999999999999999",
])
tricky_values = st.one_of(TRICKY, st.lists(TRICKY, max_size=3).map(" ".join), st.text(max_size=20))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(CORE_NAMES), value=tricky_values)
def test_any_command_line_value_is_taken_or_refused_in_one_line(tmp_path_factory, name, value):
    path = tmp_path_factory.mktemp("cli") / "deploy.yml"
    path.write_text("app_name: t\npath: /srv/t\nstage_role_configs:\n  s:\n    r:\n      hosts: [h]\n")
    deployfile = cfg.DeployFile.load(path)
    declared = cfg.declared_settings(Plugins().settings())
    try:
        overrides = cfg.parse_overrides([f"--{name.replace('_', '-')}", value], declared)
        merged = cfg.merge(deployfile, "s", "r", declared, overrides, [])
        for host in cfg.hosts_of(merged):
            cfg.target_for_host(merged, host, "261127-120000")
    except FapError as error:
        assert str(error) and "\n" not in str(error)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from([*CORE_NAMES, "custom"]), value=tricky_values)
def test_any_tagged_or_date_like_value_in_deploy_yml_loads_or_names_its_line(tmp_path_factory, name, value):
    path = tmp_path_factory.mktemp("tagged") / "deploy.yml"
    path.write_text(f"app_name: t\npath: /srv/t\n{name}: {value}\nstage_role_configs:\n  s:\n    r:\n      hosts: [h]\n")
    try:
        _load_everything(path)
    except FapError as error:
        assert str(error) and "\n" not in str(error)
        assert str(error).startswith(f"{path}:"), str(error)
