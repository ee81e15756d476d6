"""Bad input, through the real ``fap`` command: one line naming file:line and key, non-zero exit,
no traceback, and nothing changed on any host."""

from __future__ import annotations

import os
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
    ("bad-host", HEAD + TARGETS.replace("[localhost]", "['localhost:ssh']"), ["deploy", "-s", "test"],
     ["deploy.yml:7:", "hosts", "localhost:ssh"]),
    ("bad-linked-file", HEAD + "linked_files: [../secrets.env]\n" + TARGETS, ["deploy", "-s", "test"],
     ["deploy.yml:4:", "linked_files", "../secrets.env"]),
    ("rollback-unknown-name", HEAD + 'keep_releases: "%(keep)s"\n' + TARGETS, ["rollback", "-s", "test"],
     ["deploy.yml:4:", "keep_releases"]),
    ("once-wrong-type", HEAD + "max_parallel: [1]\n" + TARGETS, ["once", "-s", "test", "-c", "true"],
     ["deploy.yml:4:", "max_parallel: expected an integer"]),
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
