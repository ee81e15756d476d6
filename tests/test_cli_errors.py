"""Bad input, through the real ``fap`` command: one line naming file:line and key, non-zero exit,
no traceback, and nothing changed on any host."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

HEAD = """\
app_name: app
connection: local
path: {path}
"""
TARGETS = """\
stage_role_configs:
  test:
    web:
      hosts: [localhost]
"""

# (id, deploy.yml text, fap arguments, fragments the one error line must contain).
# Line numbers: HEAD is lines 1-3.
CASES = [
    ("yaml-syntax", HEAD + "keep_releases: [3\n" + TARGETS, ["deploy", "-s", "test"],
     ["deploy.yml:5:", "YAML syntax error"]),
    ("yaml-indent", HEAD + "linked_dirs: [log]\n  oops: 1\n" + TARGETS, ["deploy", "-s", "test"],
     ["deploy.yml:5:", "YAML syntax error"]),
    ("unknown-stage", HEAD + TARGETS, ["deploy", "-s", "tset"],
     ["deploy.yml", "unknown stage 'tset'", "did you mean 'test'"]),
    ("stage-prefix", HEAD + TARGETS.replace("  test:", "  production:"), ["deploy", "-s", "prod"],
     ["deploy.yml", "unknown stage 'prod'", "did you mean 'production'"]),
    ("unknown-role", HEAD + TARGETS, ["deploy", "-s", "test", "-r", "wbe"],
     ["deploy.yml", "unknown role 'wbe'", "did you mean 'web'"]),
    ("no-target", HEAD + TARGETS, ["deploy"],
     ["--stage", "test"]),
    ("unknown-plugin", HEAD + "plugins:\n  - fap_no_such_plugin\n" + TARGETS, ["deploy", "-s", "test"],
     ["deploy.yml:5:", "unknown plugin 'fap_no_such_plugin'"]),
    ("plugin-import-error", HEAD + "plugins: [fap_broken_plugin]\n" + TARGETS, ["deploy", "-s", "test"],
     ["deploy.yml:4:", "fap_broken_plugin failed to load", "ZeroDivisionError"]),
    ("unknown-name", HEAD + 'greeting: "hi %(nobody)s"\n' + TARGETS, ["deploy", "-s", "test"],
     ["deploy.yml:4:", "greeting", "%(nobody)s"]),
    ("unknown-name-in-block", HEAD + TARGETS + '      shared_path: "%(pth)s/shared"\n', ["deploy", "-s", "test"],
     ["deploy.yml:8:", "shared_path", "%(pth)s", "did you mean 'path'"]),
    ("cycle", HEAD + 'one: "%(two)s"\ntwo: "%(one)s"\n' + TARGETS, ["deploy", "-s", "test"],
     ["deploy.yml:4:", "one", "cycle", "one -> two -> one"]),
    ("wrong-type", HEAD + "keep_releases: many\n" + TARGETS, ["deploy", "-s", "test"],
     ["deploy.yml:4:", "keep_releases: expected an integer, got 'many'"]),
    ("wrong-type-cli", HEAD + TARGETS, ["deploy", "-s", "test", "--keep-releases", "many"],
     ["command line", "keep_releases", "'many'"]),
    ("unknown-setting-cli", HEAD + TARGETS, ["deploy", "-s", "test", "--keep-relases", "3"],
     ["unknown setting --keep-relases", "did you mean '--keep-releases'"]),
    ("setting-one-letter-off", HEAD + "keep_release: 3\n" + TARGETS, ["deploy", "-s", "test"],
     ["deploy.yml:4:", "keep_release is not a known setting", "did you mean 'keep_releases'", "custom_settings: [keep_release]"]),
    ("setting-one-letter-off-in-block", HEAD + TARGETS + "      linked_dir: [log]\n", ["deploy", "-s", "test"],
     ["deploy.yml:8:", "linked_dir is not a known setting", "did you mean 'linked_dirs'"]),
    ("hook-command-with-colon", HEAD + "hooks:\n  updated:\n    - run: echo migrated: done\n" + TARGETS, ["deploy", "-s", "test"],
     ["deploy.yml:6:", "mapping values are not allowed here", "must be quoted: run: \"echo migrated: done\""]),
    ("bad-host", HEAD + TARGETS.replace("[localhost]", "['localhost:ssh']"), ["deploy", "-s", "test"],
     ["deploy.yml:7:", "hosts", "localhost:ssh"]),
    ("bad-linked-file", HEAD + "linked_files: [../secrets.env]\n" + TARGETS, ["deploy", "-s", "test"],
     ["deploy.yml:4:", "linked_files", "../secrets.env"]),
    ("rollback-unknown-name", HEAD + 'keep_releases: "%(keep)s"\n' + TARGETS, ["rollback", "-s", "test"],
     ["deploy.yml:4:", "keep_releases"]),
    ("once-wrong-type", HEAD + "max_parallel: [1]\n" + TARGETS, ["once", "-s", "test", "-c", "true"],
     ["deploy.yml:4:", "max_parallel: expected an integer"]),
    # Values YAML would read as dates or tags, in the file and on the command line.
    ("impossible-date", HEAD + "keep_releases: 2020-13-45\n" + TARGETS, ["deploy", "-s", "test"],
     ["deploy.yml:4:", "keep_releases: expected an integer, got '2020-13-45'"]),
    ("bad-int-tag", HEAD + "keep_releases: !!int x\n" + TARGETS, ["deploy", "-s", "test"],
     ["deploy.yml:4:", "cannot read 'x'"]),
    ("bad-timestamp-in-list", HEAD + "linked_dirs: [log, !!float 2020-13-45]\n" + TARGETS, ["deploy", "-s", "test"],
     ["deploy.yml:4:", "cannot read '2020-13-45'"]),
    ("unknown-tag", HEAD + "greeting: !vault abc\n" + TARGETS, ["deploy", "-s", "test"],
     ["deploy.yml:4:", "unknown YAML tag"]),
    ("cli-impossible-date", HEAD + TARGETS, ["deploy", "-s", "test", "--keep-releases", "2020-13-45"],
     ["command line", "keep_releases", "'2020-13-45'"]),
    ("cli-bad-int-tag", HEAD + TARGETS, ["deploy", "-s", "test", "--keep-releases", "!!int x"],
     ["command line", "--keep-releases", "cannot read '!!int x'"]),
    ("cli-bad-tag-in-mapping", HEAD + TARGETS, ["deploy", "-s", "test", "--environment", "{A: !!int x}"],
     ["command line", "--environment", "cannot read"]),
    ("cli-empty-integer", HEAD + TARGETS, ["deploy", "-s", "test", "--keep-releases", ""],
     ["command line", "--keep-releases", "expected an integer, got an empty value"]),
    ("cli-max-fail-over-100-percent", HEAD + TARGETS, ["deploy", "-s", "test", "--max-fail", "150%"],
     ["command line", "max_fail", "'150%'"]),
    ("cli-plugins", HEAD + "plugins: []\n" + TARGETS, ["deploy", "-s", "test", "--plugins", "fapistrano.git"],
     ["command line", "--plugins", "cannot be chosen on the command line", "deploy.yml"]),
    ("cli-command-plugins", HEAD + TARGETS, ["deploy", "-s", "test", "--deploy-plugins=fapistrano.git"],
     ["command line", "--deploy-plugins", "cannot be chosen on the command line"]),
    ("environment-number-name", HEAD + "environment: {{1: a}}\n" + TARGETS, ["deploy", "-s", "test"],
     ["deploy.yml:4:", "environment: expected a mapping, got a mapping with a name that is not a string (1"]),
    # Core paths: absolute, set, before anything is locked.
    ("null-path", HEAD.replace("{path}", "~") + TARGETS, ["deploy", "-s", "test"],
     ["deploy.yml:3:", "path: is not set"]),
    ("null-shared-path", HEAD + "shared_path:\n" + TARGETS, ["deploy", "-s", "test"],
     ["deploy.yml:4:", "shared_path: is not set"]),
    ("relative-path", HEAD.replace("{path}", "srv/app") + TARGETS, ["deploy", "-s", "test"],
     ["deploy.yml:3:", "path: 'srv/app' is not an absolute path"]),
    ("home-path", HEAD.replace("{path}", "'~/srv/app'") + TARGETS, ["deploy", "-s", "test"],
     ["deploy.yml:3:", "path: '~/srv/app' is not an absolute path", "'~'"]),
    ("home-variable-path", HEAD.replace("{path}", "$HOME/srv/app") + TARGETS, ["unlock", "-s", "test"],
     ["deploy.yml:3:", "path: '$HOME/srv/app' is not an absolute path"]),
    ("relative-releases-path", HEAD + "releases_path: releases\n" + TARGETS, ["deploy", "-s", "test"],
     ["deploy.yml:4:", "releases_path: 'releases' is not an absolute path"]),
    ("relative-current-path-in-block", HEAD + TARGETS + "      current_path: current\n", ["deploy", "-s", "test"],
     ["deploy.yml:8:", "current_path: 'current' is not an absolute path"]),
    ("relative-release-path", HEAD + "release_path: '%(release)s'\n" + TARGETS, ["deploy", "-s", "test"],
     ["deploy.yml:4:", "release_path: '' is not an absolute path"]),
    ("relative-path-cli", HEAD + TARGETS, ["deploy", "-s", "test", "--path", "srv/app"],
     ["command line", "path: 'srv/app' is not an absolute path"]),
    # A misspelt option of the command is read as a setting: the error names the option it is near.
    ("misspelt-deploy-option", HEAD + TARGETS, ["deploy", "-s", "test", "--if-changd"],
     ["command line: unknown setting --if-changd (did you mean --if-changed, an option of fap deploy?)"]),
    ("misspelt-pending-option", HEAD + TARGETS, ["pending", "-s", "test", "--jsn"],
     ["unknown setting --jsn (did you mean --json, an option of fap pending?)"]),
    ("promote-from-unknown-stage", HEAD + TARGETS, ["promote", "-s", "test", "--from", "tset"],
     ["fap promote: --from tset: unknown stage"]),
    ("promote-to-itself", HEAD + TARGETS, ["promote", "-s", "test", "--from", "test"],
     ["fap promote: -s and --from both name test"]),
]


@pytest.mark.parametrize(("text", "args", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(
    fap_local: Any, fap_run: Any, assert_error: Any, text: str, args: list[str], fragments: list[str]
) -> None:
    (fap_local.root / "deploy.yml").write_text(text.format(path=fap_local.path))
    (fap_local.root / "fap_broken_plugin.py").write_text("1 / 0\n")
    result = fap_run(args, cwd=fap_local.root)
    assert_error(result, *fragments)
    assert result.exit_code == 2
    assert not fap_local.path.exists()
    assert not fap_local.root.joinpath("srv").exists()


def test_no_deploy_file(tmp_path: Path, fap_run: Any, assert_error: Any) -> None:
    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert_error(result, "deploy.yml: no deploy file here", "-d FILE")
    assert os.listdir(tmp_path) == []


def test_no_deploy_file_where_dash_d_points(tmp_path: Path, fap_run: Any, assert_error: Any) -> None:
    result = fap_run(["deploy", "-s", "test", "-d", str(tmp_path / "missing.yml")], cwd=tmp_path)
    assert_error(result, f"{tmp_path / 'missing.yml'}: no deploy file here")


def test_fap_app_without_its_deployfile_variable(tmp_path: Path, fap_run: Any, assert_error: Any) -> None:
    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path, env={"FAP_APP": "shop"})
    assert_error(result, "FAP_APP=shop", "$SHOP_DEPLOYFILE is not set")


def test_a_directory_is_not_a_deploy_file(tmp_path: Path, fap_run: Any, assert_error: Any) -> None:
    (tmp_path / "deploy.yml").mkdir()
    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert_error(result, "deploy.yml")


def test_unknown_command_is_a_usage_error(tmp_path: Path, fap_run: Any) -> None:
    result = fap_run(["deplyo"], cwd=tmp_path)
    assert result.exit_code == 2
    assert "No such command 'deplyo'" in result.stderr
    assert "Traceback" not in result.output


def test_once_needs_a_command(fap_local: Any, fap_run: Any) -> None:
    fap_local.write_deployfile()
    result = fap_run(["once", "-s", "test"], cwd=fap_local.root)
    assert result.exit_code == 2
    assert "--command" in result.stderr
    assert "Traceback" not in result.output


# -- the same on the fleet: no host is touched ---------------------------------

FLEET_CASES = [
    ("unknown-plugin", {"plugins": ["fap_no_such_plugin"]}, ["deploy", "-s", "test"], ["unknown plugin 'fap_no_such_plugin'"]),
    ("cycle", {"shared_path": "%(linked)s", "linked": "%(shared_path)s/x"}, ["deploy", "-s", "test"], ["cycle"]),
    ("wrong-type", {"keep_releases": "many"}, ["deploy", "-s", "test"], ["keep_releases: expected an integer"]),
    ("unknown-name-in-release-path", {"release_path": "%(releases_path)s/%(nope)s"}, ["deploy", "-s", "test"],
     ["release_path", "%(nope)s"]),
    ("bad-host", {"stage_role_configs": {"test": {"web": {"hosts": ["host1", "host2:22:22"]}}}}, ["deploy", "-s", "test"],
     ["host2:22:22"]),
    ("unknown-setting", {}, ["deploy", "-s", "test", "--linked-dir", "log"], ["--linked-dir", "did you mean '--linked-dirs'"]),
    ("rollback-unknown-stage", {}, ["rollback", "-s", "prod"], ["unknown stage 'prod'"]),
    ("relative-path", {"path": "www/app"}, ["deploy", "-s", "test"], ["path: 'www/app' is not an absolute path"]),
    ("home-path", {"path": "~/www/app"}, ["deploy", "-s", "test"], ["path: '~/www/app' is not an absolute path"]),
]


@pytest.mark.parametrize(("extra", "args", "fragments"), [c[1:] for c in FLEET_CASES], ids=[c[0] for c in FLEET_CASES])
def test_bad_input_touches_no_host_of_the_fleet(
    fap_fleet: Any, fap_run: Any, assert_error: Any, tmp_path: Path, extra: dict[str, Any], args: list[str], fragments: list[str]
) -> None:
    fap_fleet.write_deployfile(tmp_path, extra)
    result = fap_run(args, cwd=tmp_path)
    assert_error(result, "deploy.yml" if "--linked-dir" not in args else "command line", *fragments)
    for host in fap_fleet.hosts:
        assert not fap_fleet.app_dir(host).exists(), host


# -- inputs that would run away: refused at once, within a size limit ----------

def _alias_bomb(levels: int) -> str:
    lines = ["bomb0: &bomb0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"bomb{n}: &bomb{n} [{', '.join([f'*bomb{n - 1}'] * 9)}]" for n in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


RUNAWAY_CASES = [
    # 9**10 values in eleven lines: expanding them took minutes before it was refused.
    ("alias-bomb", _alias_bomb(9), ["deploy.yml:", "expands to more than 100000 values"]),
    # a0 -> a1 -> ... -> a250: a RecursionError before the depth limit.
    ("reference-chain", "".join(f'a{n}: "%(a{n + 1})s"\n' for n in range(250)) + 'a250: "x"\n',
     ["deploy.yml:4:", "a0: %(name)s references nest deeper than 50 levels"]),
    # Each value twice the one before, 15 levels: a MemoryError before the size limit.
    ("doubling-values", 'd0: "' + "x" * 10_000 + '"\n' + "".join(f'd{n}: "%(d{n - 1})s%(d{n - 1})s"\n' for n in range(1, 16)),
     ["deploy.yml:", "grows past 1000000 characters"]),
]


@pytest.mark.parametrize(("extra", "fragments"), [c[1:] for c in RUNAWAY_CASES], ids=[c[0] for c in RUNAWAY_CASES])
def test_runaway_values_are_refused_at_once(
    fap_local: Any, fap_run: Any, assert_error: Any, extra: str, fragments: list[str]
) -> None:
    (fap_local.root / "deploy.yml").write_text(HEAD.format(path=fap_local.path) + extra + TARGETS)
    # The timeout is the failure: before the limits these ran for minutes or ran out of memory.
    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root, timeout=30)
    assert_error(result, *fragments)
    assert result.exit_code == 2
    assert not fap_local.path.exists()


def test_the_same_runaway_values_on_the_command_line(fap_local: Any, fap_run: Any, assert_error: Any) -> None:
    fap_local.write_deployfile()
    bomb = "{" + ", ".join(f"A{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9) if n else 'x, x, x, x, x, x, x, x, x'}]"
                           for n in range(10)) + "}"
    result = fap_run(["config", "-s", "test", "--environment", bomb], cwd=fap_local.root, timeout=30)
    assert_error(result, "command line", "--environment", "expands to more than")
    assert result.exit_code == 2


def test_a_date_like_value_is_kept_as_text(fap_local: Any, fap_run: Any) -> None:
    fap_local.write_deployfile()
    result = fap_run(["config", "-s", "test", "--environment", "{RELEASED: 2020-13-45, ON: 2020-01-05}"], cwd=fap_local.root)
    assert result.exit_code == 0, result.output
    assert "{RELEASED: 2020-13-45, ON: 2020-01-05}" in result.stdout


# -- a relative path is refused before anything is locked or created -----------

def test_a_relative_path_is_refused_before_anything_is_created(fap_local: Any, fap_run: Any, assert_error: Any,
                                                               tmp_path: Path) -> None:
    fap_local.write_deployfile({"path": "srv/rel"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for command in (["deploy"], ["unlock"], ["once", "-c", "true"]):
        result = fap_run([*command, "-s", "test", "-d", str(fap_local.root / "deploy.yml")], cwd=elsewhere)
        assert_error(result, "deploy.yml:3:", "path: 'srv/rel' is not an absolute path")
        assert result.exit_code == 2
    assert os.listdir(elsewhere) == []
    assert not Path("/srv/rel").exists()
    assert not fap_local.root.joinpath("srv").exists()


# -- a config error leaves no private directory behind -------------------------

PRIVATE_TMP = """\
keep=$1; real=$(mktemp -d /run/fap-real-tmp.XXXXXX) && mount --bind /tmp "$real" &&
mount -t tmpfs tmpfs /tmp && mkdir /tmp/work && cd /tmp/work &&
if [ -n "$keep" ]; then mkdir "/tmp/$keep" && mount --bind "$real/$keep" "/tmp/$keep"; fi && cat > deploy.yml &&
"$0" -m fapistrano deploy -s test; code=$?
echo "left in /tmp: $(ls -A /tmp | grep -v -x -e work -e "${keep:-work}")"; umount "$real"; rmdir "$real"; exit $code
"""


def _kept_in_tmp() -> str:
    """The directory under /tmp holding this Python and checkout (a CI clone, a tox env), if any: mounted back."""
    places = {Path(sys.prefix).resolve(), Path(__file__).resolve()}
    names = {place.parts[2] for place in places if place.parts[:2] == ("/", "tmp") and len(place.parts) > 2}
    assert len(names) <= 1, names
    return names.pop() if names else ""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a private /tmp (mount namespace)")
@pytest.mark.parametrize("text", [
    HEAD.format(path="/srv/app") + "keep_releases: many\n" + TARGETS,  # a bad value in a setting
    HEAD.format(path="srv/app") + TARGETS,  # a relative path
    HEAD.format(path="/srv/app") + TARGETS.replace("[localhost]", "['localhost:ssh']"),  # a bad host
], ids=["wrong-type", "relative-path", "bad-host"])
def test_a_config_error_leaves_no_directory_in_tmp(text: str, assert_error: Any) -> None:
    import subprocess
    import sys

    from fapistrano.testing import FapResult

    completed = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", PRIVATE_TMP, sys.executable, _kept_in_tmp()],
                               input=text, capture_output=True, text=True, timeout=60, check=False)
    result = FapResult(completed.returncode, completed.stdout, completed.stderr, 0.0)
    assert_error(result, "deploy.yml")
    assert result.exit_code == 2
    assert "left in /tmp: \n" in result.stdout, result.output


@pytest.mark.parametrize("blocks", ['{"\\n": {web: {}}}', '{test: {"": {}}}', '{"te st": {web: {}}}', '{test: {"a/b": {}}}'])
def test_a_stage_or_role_name_that_is_not_one_word_is_one_line_naming_it(fap_run, tmp_path, blocks):
    (tmp_path / "deploy.yml").write_text(f"stage_role_configs: {blocks}\n")
    result = fap_run(["check", "-s", "test"], cwd=tmp_path)
    assert result.exit_code == 2, result.output
    error = result.stderr.strip()
    assert "\n" not in error and "is one word" in error and "deploy.yml:1" in error, result.output
