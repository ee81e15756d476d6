"""The source hooks from a third party's plugin: ``fap pending``, ``--if-changed`` and ``fap promote`` with no git at all.

The test plugin ships a "version" (a setting) as the release's VERSION file
and answers the source hooks from it, as any source plugin could.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

HOSTS = ("host1", "host2", "host3")

VERSIONED_SOURCE = '''\
"""Test plugin: ships a version number; answers the source hooks."""

import posixpath
import shlex

from fapistrano import ConfigError, FapError, Setting, hookimpl


@hookimpl
def fap_settings():
    return [Setting("versioned_version", "1", "The version to ship."),
            Setting("versioned_cannot_tell", False, "Say it cannot tell which version a deploy would ship.")]


@hookimpl
def fap_deploy_updating(ctx):
    path = posixpath.join(ctx.release_path, "VERSION")
    ctx.run(f"echo {shlex.quote(str(ctx.config['versioned_version']))} > {shlex.quote(path)}")


@hookimpl
def fap_release_revision(ctx, release):
    path = posixpath.join(ctx.config["releases_path"], release, "VERSION")
    return ctx.run(f"cat {shlex.quote(path)} 2>/dev/null || true", readonly=True).strip() or None


@hookimpl
def fap_source_revision(ctx):
    if ctx.config["versioned_cannot_tell"]:
        raise FapError("versioned: the version server is down")
    return str(ctx.config["versioned_version"])


@hookimpl
def fap_source_commits(ctx, since, until, limit):
    versions = [f"version {n}" for n in range(int(until), int(since), -1)]
    return versions[:limit], len(versions)


@hookimpl
def fap_source_promote(revision, stage, role, config):
    return {"versioned_version": revision}
'''


def write(fap_fleet: Any, tmp_path: Path, **extra: Any) -> None:
    (tmp_path / "versioned.py").write_text(VERSIONED_SOURCE)
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["versioned"], **extra})


def deploy(fap_run: Any, tmp_path: Path, *args: str) -> Any:
    result = fap_run(["deploy", "-s", "test", *args], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    return result


def released(result: Any) -> str:
    return re.search(r"deployed release (\S+)", result.stdout).group(1)


def test_a_third_party_source_plugin_answers_fap_pending(fap_fleet, fap_run, tmp_path):
    write(fap_fleet, tmp_path)
    release = released(deploy(fap_run, tmp_path, "-q"))

    result = fap_run(["pending", "-s", "test", "--versioned-version", "4"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"test/web (3 hosts): 3 commits to ship: live 1 (release {release}) -> 4",
                                          "  version 4", "  version 3", "  version 2"]


def test_a_source_that_cannot_tell_is_one_clear_line(fap_fleet, fap_run, tmp_path):
    write(fap_fleet, tmp_path)
    release = released(deploy(fap_run, tmp_path, "-q"))

    result = fap_run(["pending", "-s", "test", "--versioned-cannot-tell", "true"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"test/web (3 hosts): live 1 (release {release}): cannot tell which revision a deploy would ship:"
        " versioned: the version server is down"]


def test_without_a_source_plugin_pending_says_so(fap_fleet, fap_run, tmp_path):
    fap_fleet.write_deployfile(tmp_path)
    released(deploy(fap_run, tmp_path, "-q"))

    result = fap_run(["pending", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert "cannot tell which revision a deploy would ship: no plugin of test/web tells which revision a deploy would" \
        " ship (plugins: none; the git plugin does)" in result.stdout


def test_pending_reports_an_unreachable_host_and_exits_1(fap_fleet, fap_run, tmp_path):
    write(fap_fleet, tmp_path)
    release = released(deploy(fap_run, tmp_path, "-q"))
    fap_fleet.kill_host("host2")
    try:
        result = fap_run(["pending", "-s", "test", "--ssh-connect-timeout", "3"], cwd=tmp_path)
    finally:
        fap_fleet.start_host("host2")

    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines()[0] == f"test/web (3 hosts): up to date: 1 (release {release}) is what a deploy would ship"
    assert "fap: error: host2: " in result.stderr


def test_if_changed_with_a_third_party_source_skips_then_deploys(fap_fleet, fap_run, tmp_path):
    write(fap_fleet, tmp_path)
    release = released(deploy(fap_run, tmp_path, "-q"))

    same = deploy(fap_run, tmp_path, "--if-changed")
    changed = deploy(fap_run, tmp_path, "--if-changed", "--versioned-version", "2")

    assert same.stdout.strip() == f"already live: {release} (1) on 3 hosts, nothing to do"
    assert released(changed) != release
    assert "changed since live release" in changed.stdout and "revision, setting versioned_version" in changed.stdout
    assert all((fap_fleet.current_dir(host) / "VERSION").read_text() == "2\n" for host in HOSTS)


def test_if_changed_deploys_when_the_source_cannot_tell(fap_fleet, fap_run, tmp_path):
    write(fap_fleet, tmp_path, versioned_cannot_tell=True)
    release = released(deploy(fap_run, tmp_path, "-q"))

    result = deploy(fap_run, tmp_path, "--if-changed")

    assert released(result) != release
    assert "--if-changed: deploying: host1, host2, host3: cannot tell which revision a deploy would ship:" \
        " versioned: the version server is down" in result.stdout


def test_without_the_flag_every_deploy_makes_a_release(fap_fleet, fap_run, tmp_path):
    write(fap_fleet, tmp_path)
    first = released(deploy(fap_run, tmp_path, "-q"))

    assert released(deploy(fap_run, tmp_path, "-q")) != first


def test_every_release_has_its_record_and_records_of_releases_gone_go(fap_fleet, fap_run, tmp_path):
    write(fap_fleet, tmp_path, keep_releases=1)
    for _ in range(4):
        deploy(fap_run, tmp_path, "-q")

    releases = fap_fleet.releases("host1")
    records = sorted(p.stem for p in (fap_fleet.app_dir("host1") / ".fap" / "fingerprints").iterdir())
    assert set(releases) <= set(records)
    assert len(records) <= len(releases) + 1  # the one cleanup removed after this deploy wrote its record


def test_a_third_party_source_plugin_can_promote(fap_fleet, fap_run, tmp_path):
    stages = {"staging": {"web": {"hosts": ["host1", "host2"]}}, "production": {"web": {"hosts": ["host3"]}}}
    (tmp_path / "versioned.py").write_text(VERSIONED_SOURCE)
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["versioned"], "stage_role_configs": stages}, hosts=[])
    staged = fap_run(["deploy", "-s", "staging", "-q", "--versioned-version", "3"], cwd=tmp_path)
    assert staged.exit_code == 0, staged.output

    result = fap_run(["promote", "-s", "production", "--from", "staging", "-q"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert "promoted 3 from staging: deployed release" in result.stdout
    assert (fap_fleet.current_dir("host3") / "VERSION").read_text() == "3\n"
