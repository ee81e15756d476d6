"""deploy.yml -> settings: finding the file, layering, type checks, hosts, command-line overrides.

Every deploy.yml here is a real file parsed by ruamel.yaml, so the line
numbers in errors are the ones a user would see in their editor.
"""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path
from typing import Any

import pytest

from fapistrano import config as cfg
from fapistrano.config import ConfigError, HostSpec, Origin
from fapistrano.plugins import Plugins
from fapistrano.settings import from_legacy

PLUGIN = ("greeter", {"greeting": "plugin default", "greeter_only": "plugin default", "loud": False, "times": 1})


def declare(*plugins: tuple[str, Any]) -> dict[str, cfg.Declared]:
    """The core's settings and each plugin's, a plugin given by its 1.0 ``fap_defaults`` mapping."""
    return cfg.declared_settings([*Plugins().settings(), *((name, from_legacy(name, defaults, {}, [])) for name, defaults in plugins)])


def load(tmp_path: Path, text: str) -> cfg.DeployFile:
    path = tmp_path / "deploy.yml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return cfg.DeployFile.load(path)


def settings_of(
    tmp_path: Path,
    text: str,
    stage: str = "prod",
    role: str = "web",
    cli: list[str] | None = None,
    plugins: list[tuple[str, dict[str, Any]]] | None = None,
) -> cfg.RoleSettings:
    deployfile = load(tmp_path, text)
    declared = declare(*(plugins if plugins is not None else [PLUGIN]))
    overrides = cfg.parse_overrides(cli or [], declared)
    return cfg.merge(deployfile, stage, role, declared, overrides, [])


def resolve(settings: cfg.RoleSettings, host: str = "web1", release: str | None = "240517-120000") -> dict[str, Any]:
    spec = HostSpec.parse(host, Origin("core"))
    return dict(cfg.target_for_host(settings, spec, release).config)


def line_of(path: Path, needle: str) -> int:
    """The 1-based line of the first line containing ``needle``: what an editor shows."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


BASIC = """
app_name: shop
stage_role_configs:
  prod:
    web:
      hosts: [web1]
"""


# ---------------------------------------------------------------------------
# Precedence: core default < plugin fap_defaults < top level < stage/role block < command line
# ---------------------------------------------------------------------------


def test_core_defaults_apply_when_nothing_is_set(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, BASIC)
    config = resolve(settings)
    assert config["user"] == "deploy"
    assert config["keep_releases"] == 5
    assert config["path"] == "/home/deploy/www/shop"
    assert config["current_path"] == "/home/deploy/www/shop/current"
    assert config["releases_path"] == "/home/deploy/www/shop/releases"
    assert config["shared_path"] == "/home/deploy/www/shop/shared"
    assert config["release_path"] == "/home/deploy/www/shop/releases/240517-120000"
    assert config["connection"] == "ssh"
    assert config["ssh_connect_timeout"] == 10
    assert settings.origins["keep_releases"] == Origin("core")


def test_plugin_defaults_fill_in_the_plugin_settings(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, BASIC)
    assert settings.values["greeter_only"] == "plugin default"
    assert settings.origins["greeter_only"] == Origin("plugin", "greeter")
    assert str(settings.origins["greeter_only"]) == "plugin default (greeter)"


LAYERS = ("top", "block", "cli")


@pytest.mark.parametrize("present", [combo for n in range(4) for combo in itertools.combinations(LAYERS, n)])
def test_the_highest_layer_that_sets_a_value_wins(tmp_path: Path, present: tuple[str, ...]) -> None:
    top = "greeting: from top\n" if "top" in present else ""
    block = "      greeting: from block\n" if "block" in present else ""
    text = f"app_name: shop\n{top}stage_role_configs:\n  prod:\n    web:\n      hosts: [web1]\n{block}"
    cli = ["--greeting", "from cli"] if "cli" in present else []
    settings = settings_of(tmp_path, text, cli=cli)
    expected = {"top": "from top", "block": "from block", "cli": "from cli"}
    winner = present[-1] if present else None
    assert settings.values["greeting"] == (expected[winner] if winner else "plugin default")
    kind = {"top": "file", "block": "block", "cli": "cli", None: "plugin"}[winner]
    assert settings.origins["greeting"].kind == kind


def test_origins_name_the_file_and_line_of_each_layer(tmp_path: Path) -> None:
    text = """
    app_name: shop
    keep_releases: 4
    stage_role_configs:
      prod:
        web:
          hosts: [web1]
          keep_releases: 6
    """
    settings = settings_of(tmp_path, text)
    path = tmp_path / "deploy.yml"
    assert settings.origins["app_name"] == Origin("file", f"{path}:1")
    assert settings.origins["keep_releases"] == Origin("block", f"{path}:{line_of(path, 'keep_releases: 6')}")
    assert settings.values["keep_releases"] == 6


def test_blocks_of_other_stages_and_roles_do_not_leak(tmp_path: Path) -> None:
    text = """
    app_name: shop
    keep_releases: 4
    stage_role_configs:
      prod:
        web:
          hosts: [web1]
          keep_releases: 6
        worker:
          hosts: [work1]
      staging:
        web:
          hosts: [stage1]
          keep_releases: 2
    """
    assert settings_of(tmp_path, text, "prod", "web").values["keep_releases"] == 6
    assert settings_of(tmp_path, text, "prod", "worker").values["keep_releases"] == 4
    assert settings_of(tmp_path, text, "staging", "web").values["keep_releases"] == 2


def test_a_plugin_may_not_redeclare_a_core_setting() -> None:
    with pytest.raises(ConfigError, match=r"plugin greedy: setting 'keep_releases' is already declared by core default"):
        declare(("greedy", {"keep_releases": 9}))


def test_two_plugins_may_not_declare_the_same_setting() -> None:
    with pytest.raises(ConfigError, match=r"plugin second: setting 'greeting' is already declared by plugin default \(greeter\)"):
        declare(PLUGIN, ("second", {"greeting": "x"}))


def test_fap_defaults_must_return_a_mapping_of_names() -> None:
    with pytest.raises(ConfigError, match=r"plugin odd: fap_defaults must return a mapping, got list"):
        declare(("odd", ["greeting"]))
    with pytest.raises(ConfigError, match=r"plugin odd: fap_defaults: 'not-a-name' is not a valid setting name"):
        declare(("odd", {"not-a-name": 1}))


def test_a_setting_fap_sets_per_run_cannot_be_configured(tmp_path: Path) -> None:
    text = BASIC + "      release: mine\n"
    with pytest.raises(ConfigError) as caught:
        settings_of(tmp_path, text)
    path = tmp_path / "deploy.yml"
    assert str(caught.value) == f"{path}:{line_of(path, 'release: mine')}: 'release' is set by fap for each run and cannot be configured"


@pytest.mark.parametrize("key", ["keep_release", "keep_releasse", "keep_relaeses", "keep_relEases", "greetng"])
def test_a_key_one_edit_from_a_known_setting_is_an_error(tmp_path: Path, key: str) -> None:
    # Left as a warning, the deploy went on with the default: keep_release: 3 kept 5 releases.
    with pytest.raises(ConfigError) as caught:
        settings_of(tmp_path, f"{key}: 3\n" + BASIC)
    path = tmp_path / "deploy.yml"
    known = "greeting" if key == "greetng" else "keep_releases"
    assert str(caught.value).startswith(f"{path}:1: {key} is not a known setting (did you mean {known!r}?)")
    assert "custom_settings" in str(caught.value)


def test_a_key_one_edit_from_a_known_setting_in_a_block_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_of(tmp_path, BASIC + "      keep_release: 3\n")
    path = tmp_path / "deploy.yml"
    assert str(caught.value).startswith(f"{path}:{line_of(path, 'keep_release:')}: keep_release is not a known setting")


def test_custom_settings_keeps_a_setting_one_edit_from_a_known_one(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, "custom_settings: [keep_release]\nkeep_release: 3\n" + BASIC)
    assert settings.values["keep_release"] == "3" and settings.values["keep_releases"] == 5
    assert settings.warnings == ()
    assert "custom_settings" not in settings.values


@pytest.mark.parametrize("text", ["custom_settings: keep_release\n", "custom_settings: [1]\n"])
def test_custom_settings_must_be_a_list_of_names(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match=r"deploy.yml:1: custom_settings: expected a list of setting names"):
        settings_of(tmp_path, text + BASIC)


def test_a_misspelt_setting_two_edits_away_warns_with_the_closest_name(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, "keep_relses: 3\n" + BASIC)
    path = tmp_path / "deploy.yml"
    assert settings.warnings == (f"{path}:1: keep_relses is not a known setting (did you mean 'keep_releases'?)",)
    assert settings.values["keep_releases"] == 5


def test_an_upper_case_key_beside_an_empty_environment_warns(tmp_path: Path) -> None:
    # GREETING dedented out of environment: is a setting of its own, and environment: is empty.
    settings = settings_of(tmp_path, "environment:\nGREETING: hi\n" + BASIC)
    path = tmp_path / "deploy.yml"
    assert settings.warnings == (
        f"{path}:2: GREETING is upper-case beside an empty environment: (line 1): indent it under environment:"
        " to set it in the app's environment",)
    assert settings.values["environment"] in ({}, None)


def test_an_upper_case_top_level_key_warns(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, "environment:\n  A: b\nDATABASE_URL: x\n" + BASIC)
    path = tmp_path / "deploy.yml"
    assert settings.warnings == (
        f"{path}:3: DATABASE_URL is an upper-case setting, not an environment variable:"
        " to set it in the app's environment, put it under environment:",)


def test_an_upper_case_key_beside_an_empty_environment_in_a_block_warns(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, BASIC + "      environment:\n      GREETING: hi\n")
    path = tmp_path / "deploy.yml"
    assert settings.warnings == (
        f"{path}:{line_of(path, 'GREETING')}: GREETING is upper-case beside an empty environment:"
        f" (line {line_of(path, 'environment:')}): indent it under environment: to set it in the app's environment",)


def test_own_settings_are_allowed_for_references(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, "domain: shop.example.com\n" + BASIC)
    assert settings.warnings == ()
    assert settings.values["domain"] == "shop.example.com"


# ---------------------------------------------------------------------------
# Type checks: one line naming file:line and the key
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("keep_releases: many", "keep_releases: expected an integer, got 'many'"),
        ("keep_releases: true", "keep_releases: expected an integer, got True"),
        ("keep_releases: 2.5", "keep_releases: expected an integer, got 2.5"),
        ("max_parallel: [1, 2]", "max_parallel: expected an integer, got a list"),
        ("environment: [A, B]", "environment: expected a mapping, got a list"),
        ("environment: {A: [1, 2]}", "environment: expected a mapping, got a mapping with non-scalar values"),
        ("linked_files: {a: b}", "linked_files: expected a list, got a mapping"),
        ("linked_dirs: [[log]]", "linked_dirs: expected a list, got a list of non-scalar items"),
        ("app_name: {name: shop}", "app_name: expected a string, got a mapping"),
        ("loud: maybe", "loud: expected true or false, got 'maybe'"),
    ],
)
def test_a_wrong_type_names_file_line_and_key(tmp_path: Path, line: str, message: str) -> None:
    text = f"app_name: shop\n{line}\nstage_role_configs:\n  prod:\n    web:\n      hosts: [web1]\n"
    if line.startswith("app_name"):
        text = text.replace("app_name: shop\n", "", 1)
    with pytest.raises(ConfigError) as caught:
        settings_of(tmp_path, text)
    path = tmp_path / "deploy.yml"
    error = str(caught.value)
    assert error == f"{path}:{line_of(path, line)}: {message}"
    assert "\n" not in error


def test_a_wrong_type_in_a_block_names_the_block_line(tmp_path: Path) -> None:
    text = BASIC + "      keep_releases: lots\n"
    with pytest.raises(ConfigError) as caught:
        settings_of(tmp_path, text)
    path = tmp_path / "deploy.yml"
    assert str(caught.value) == f"{path}:6: keep_releases: expected an integer, got 'lots'"


def test_values_are_converted_where_the_meaning_is_plain(tmp_path: Path) -> None:
    text = """
    app_name: 2048
    linked_files: config/settings.ini
    environment: {PORT: 8000, DEBUG: false, EMPTY: null}
    times: 3
    stage_role_configs:
      prod:
        web:
          hosts: web1
    """
    values = settings_of(tmp_path, text).values
    assert values["app_name"] == "2048"
    assert values["linked_files"] == ["config/settings.ini"]
    assert values["environment"] == {"PORT": "8000", "DEBUG": "false", "EMPTY": ""}
    assert values["times"] == 3
    assert values["hosts"] == ["web1"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("keep_releases: 0", "keep_releases: must be at least 1, got 0"),
        ("max_parallel: -2", "max_parallel: must be at least 1, got -2"),
        ("connection: telnet", "connection: expected one of ssh, local, got 'telnet'"),
        ("linked_files: [/etc/passwd]", "linked_files: '/etc/passwd' must be a path relative to the release, without '..'"),
        ("linked_dirs: [../outside]", "linked_dirs: '../outside' must be a path relative to the release, without '..'"),
        ("environment: {BAD-NAME: 1}", "environment: 'BAD-NAME' is not a valid variable name"),
    ],
)
def test_impossible_values_name_file_line_and_key(tmp_path: Path, line: str, message: str) -> None:
    text = f"app_name: shop\n{line}\nstage_role_configs:\n  prod:\n    web:\n      hosts: [web1]\n"
    with pytest.raises(ConfigError) as caught:
        resolve(settings_of(tmp_path, text))
    path = tmp_path / "deploy.yml"
    assert str(caught.value) == f"{path}:2: {message}"


def test_app_name_is_required_when_path_uses_it(tmp_path: Path) -> None:
    text = "stage_role_configs:\n  prod:\n    web:\n      hosts: [web1]\n"
    with pytest.raises(ConfigError, match=r"app_name is not set \(path uses it\)"):
        resolve(settings_of(tmp_path, text))
    resolve(settings_of(tmp_path, "path: /srv/shop\n" + text))  # no app_name needed then


# ---------------------------------------------------------------------------
# Hosts: [user@]host[:port]
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "user", "port"),
    [
        ("web1", "web1", None, None),
        ("web1.example.com", "web1.example.com", None, None),
        ("ops@web1", "web1", "ops", None),
        ("web1:2222", "web1", None, 2222),
        ("ops@web1:2222", "web1", "ops", 2222),
        ("10.0.0.7:22", "10.0.0.7", None, 22),
        ("root@[2001:db8::1]:2200", "2001:db8::1", "root", 2200),
        ("[::1]", "::1", None, None),
    ],
)
def test_host_parsing(text: str, name: str, user: str | None, port: int | None) -> None:
    assert HostSpec.parse(text, Origin("core")) == HostSpec(name=name, user=user, port=port)


@pytest.mark.parametrize("text", ["", "a@b@c", "web1:port", "web1:22:33", "two words", "@web1", "web1:"])
def test_unreadable_hosts_are_errors(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match=r"hosts: cannot read host .*; write \[user@\]host\[:port\]"):
        HostSpec.parse(text, Origin("file", "deploy.yml:3"))


def test_hosts_of_a_role_with_their_user_and_port(tmp_path: Path) -> None:
    text = """
    app_name: shop
    user: nobody
    stage_role_configs:
      prod:
        web:
          hosts: ["ops@web1:2222", web2]
    """
    settings = settings_of(tmp_path, text)
    hosts = cfg.hosts_of(settings)
    assert hosts == [HostSpec("web1", "ops", 2222), HostSpec("web2")]
    first, second = (cfg.target_for_host(settings, spec, None).config for spec in hosts)
    # A user written in the host wins over user: and reaches %(user)s in the default path.
    assert (first["user"], first["path"]) == ("ops", "/home/ops/www/shop")
    assert (second["user"], second["path"]) == ("nobody", "/home/nobody/www/shop")


def test_a_bad_host_names_the_line_of_hosts(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, BASIC.replace("[web1]", "['web1:x']"))
    with pytest.raises(ConfigError) as caught:
        cfg.hosts_of(settings)
    assert str(caught.value).startswith(f"{tmp_path / 'deploy.yml'}:5: hosts: cannot read host 'web1:x'")


def test_a_role_without_hosts_is_an_error(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, "app_name: shop\nstage_role_configs:\n  prod:\n    web: {}\n")
    with pytest.raises(ConfigError, match=r"prod/web: no hosts"):
        cfg.hosts_of(settings)


# ---------------------------------------------------------------------------
# Command-line overrides
# ---------------------------------------------------------------------------


def declared() -> dict[str, cfg.Declared]:
    return declare(PLUGIN)


def test_overrides_are_converted_to_each_setting_kind() -> None:
    overrides = cfg.parse_overrides(
        [
            "--keep-releases", "3",
            "--linked-dirs=log, tmp/cache",
            "--linked-files", "[a.ini, b.ini]",
            "--environment", "{A: 1, B: two}",
            "--loud", "yes",
            "--greeting=a=b c",
            "--app-name", "007",
        ],
        declared(),
    )
    assert overrides == {
        "keep_releases": 3,
        "linked_dirs": ["log", "tmp/cache"],
        "linked_files": ["a.ini", "b.ini"],
        "environment": {"A": "1", "B": "two"},
        "loud": True,
        "greeting": "a=b c",
        "app_name": "007",
    }


def test_an_unknown_override_suggests_the_closest_setting() -> None:
    with pytest.raises(ConfigError) as caught:
        cfg.parse_overrides(["--keep-relases", "3"], declared())
    assert str(caught.value) == "command line: unknown setting --keep-relases (did you mean '--keep-releases'?)"
    with pytest.raises(ConfigError) as caught:
        cfg.parse_overrides(["--greting", "hi"], declared())
    assert "(did you mean '--greeting'?)" in str(caught.value)


def test_an_unknown_override_far_from_any_setting_has_no_suggestion() -> None:
    with pytest.raises(ConfigError) as caught:
        cfg.parse_overrides(["--zzzzqqq", "1"], declared())
    assert str(caught.value) == "command line: unknown setting --zzzzqqq"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--keep-releases", "many"], "command line: keep_releases: expected an integer, got 'many'"),
        (["--keep-releases"], "command line: --keep-releases needs a value"),
        (["--loud", "perhaps"], "command line: --loud: expected true or false, got 'perhaps'"),
        (["stray"], "command line: unexpected argument 'stray'"),
        (["--environment", "{A: [1"], "command line: --environment: cannot read '{A: [1'"),
    ],
)
def test_bad_overrides_are_one_line_errors(args: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        cfg.parse_overrides(args, declared())
    assert str(caught.value) == message


def test_a_plugin_setting_can_be_overridden_like_a_core_one(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, BASIC, cli=["--greeter-only", "from cli", "--times", "4"])
    assert settings.values["greeter_only"] == "from cli"
    assert settings.values["times"] == 4
    assert settings.origins["times"] == Origin("cli")


# ---------------------------------------------------------------------------
# Finding deploy.yml: $FAP_APP -> $<APP>_DEPLOYFILE, else -d, else ./deploy.yml
# ---------------------------------------------------------------------------


def test_fap_app_names_the_variable_that_holds_the_file(tmp_path: Path) -> None:
    chosen = tmp_path / "shop.yml"
    chosen.write_text(BASIC)
    other = tmp_path / "other.yml"
    other.write_text(BASIC)
    environ = {"FAP_APP": "shop", "SHOP_DEPLOYFILE": str(chosen)}
    assert cfg.find_deployfile(str(other), environ) == chosen


def test_fap_app_without_its_variable_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"FAP_APP=shop but \$SHOP_DEPLOYFILE is not set"):
        cfg.find_deployfile(None, {"FAP_APP": "shop"})


def test_deployfile_option_then_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    given = tmp_path / "elsewhere.yml"
    given.write_text(BASIC)
    assert cfg.find_deployfile(str(given), {}) == given
    monkeypatch.chdir(tmp_path)
    (tmp_path / "deploy.yml").write_text(BASIC)
    assert cfg.find_deployfile(None, {}) == Path("deploy.yml")


def test_the_nearest_parent_directory_with_a_deploy_file_wins(tmp_path: Path) -> None:
    (tmp_path / "deploy.yml").write_text(BASIC)
    project = tmp_path / "project"
    deep = project / "config" / "deep"
    deep.mkdir(parents=True)
    assert cfg.find_deployfile(None, {}, here=deep) == tmp_path / "deploy.yml"
    (project / "deploy.yml").write_text(BASIC)
    assert cfg.find_deployfile(None, {}, here=deep) == project / "deploy.yml"
    assert cfg.find_deployfile(None, {}, here=project) == project / "deploy.yml"


def test_a_deploy_file_named_by_option_is_not_looked_for_upwards(tmp_path: Path) -> None:
    (tmp_path / "deploy.yml").write_text(BASIC)
    (tmp_path / "sub").mkdir()
    with pytest.raises(ConfigError, match=r"other.yml: no deploy file here \("):
        cfg.find_deployfile("other.yml", {}, here=tmp_path / "sub")


def test_a_missing_deploy_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^deploy.yml: no deploy file here"):
        cfg.find_deployfile(None, {})
    with pytest.raises(ConfigError, match=r"nope.yml: no deploy file here"):
        cfg.find_deployfile(str(tmp_path / "nope.yml"), {})
    with pytest.raises(ConfigError, match=r"gone.yml: no deploy file here"):
        cfg.find_deployfile(None, {"FAP_APP": "shop", "SHOP_DEPLOYFILE": str(tmp_path / "gone.yml")})


# ---------------------------------------------------------------------------
# Reading the file: syntax errors, shape errors, selecting targets
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("step", ["- run: echo migrated: done", "- local: echo tagged: ok", "- run: curl -H X-Team: ops"])
def test_a_hook_command_with_an_unquoted_colon_gets_the_hint_to_quote_it(tmp_path: Path, step: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, f"app_name: shop\nhooks:\n  updated:\n    {step}\n")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'deploy.yml'}:4: YAML syntax error: mapping values are not allowed here")
    command = step.split(": ", 1)[1]
    kind = step[2:].split(":", 1)[0]
    assert message.endswith(f"; a command holding ': ' must be quoted: {kind}: \"{command}\""), message
    assert "\n" not in message


def test_mapping_values_elsewhere_get_the_hint_without_the_value(tmp_path: Path) -> None:
    # A setting's value may be a secret: the hint names the key only.
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, "app_name: shop\ndb_password: s3cr3t: x\n")
    assert str(caught.value).endswith("mapping values are not allowed here; a value holding ': ' must be quoted: db_password: \"…\"")
    assert "s3cr3t" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("app_name: shop\nkeep_releases: [1\nuser: x\n", 3, "YAML syntax error"),
        ("app_name: shop\n  bad: indent\n", 2, "YAML syntax error"),
        ("app_name: 'shop\n", 2, "YAML syntax error"),
        ("- just\n- a list\n", 1, "the top level must be a mapping of settings"),
        ("app_name: shop\nstage_role_configs: [prod]\n", 2, "stage_role_configs must be a mapping"),
        ("stage_role_configs:\n  prod: [web]\n", 2, "stage 'prod' must map role names to settings"),
        ("stage_role_configs:\n  prod:\n    web: [web1]\n", 3, "role 'web' of stage 'prod' must be a mapping of settings"),
    ],
)
def test_unreadable_files_name_file_and_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = tmp_path / "deploy.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        cfg.DeployFile.load(path)
    assert str(caught.value).startswith(f"{path}:{line}: ")
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


SELECTION = """
app_name: shop
stage_role_configs:
  prod:
    web: {hosts: [web1]}
    worker: {hosts: [work1]}
  staging:
    web: {hosts: [stage1]}
"""


def test_stage_and_role_select_targets(tmp_path: Path) -> None:
    deployfile = load(tmp_path, SELECTION)
    assert deployfile.select("prod", "web") == [("prod", "web")]
    assert deployfile.select("prod", None) == [("prod", "web"), ("prod", "worker")]
    assert deployfile.select(None, "web") == [("prod", "web"), ("staging", "web")]


@pytest.mark.parametrize(
    ("stage", "role", "message"),
    [
        ("prd", None, "unknown stage 'prd' (did you mean 'prod'?); stages: prod, staging"),
        (None, "wokrer", "unknown role 'wokrer' (did you mean 'worker'?); roles: web, worker"),
        ("staging", "worker", "stage 'staging' has no role 'worker'; its roles: web"),
    ],
)
def test_unknown_targets_are_named(tmp_path: Path, stage: str | None, role: str | None, message: str) -> None:
    deployfile = load(tmp_path, SELECTION)
    with pytest.raises(ConfigError) as caught:
        deployfile.select(stage, role)
    assert str(caught.value) == f"{tmp_path / 'deploy.yml'}: {message}"


def test_plugins_come_with_their_lines_and_command_plugins_replace_them(tmp_path: Path) -> None:
    text = """
    plugins:
      - fapistrano.git
      - mine.hooks
    restart_plugins: [fapistrano.supervisorctl]
    stage_role_configs:
      prod:
        web: {hosts: [web1]}
        worker:
          hosts: [work1]
          plugins: [worker_only]
    """
    deployfile = load(tmp_path, text)
    path = tmp_path / "deploy.yml"
    assert deployfile.plugins_for("prod", "web", "deploy") == [("fapistrano.git", f"{path}:2"), ("mine.hooks", f"{path}:3")]
    assert deployfile.plugins_for("prod", "web", "restart") == [("fapistrano.supervisorctl", f"{path}:4")]
    assert deployfile.plugins_for("prod", "worker", "deploy") == [("worker_only", f"{path}:{line_of(path, 'worker_only')}")]
