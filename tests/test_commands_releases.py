"""``fap releases``: per target, each release with its revision, age, and which one is current."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess

SHA = "0123456789abcdef0123456789abcdef01234567"
OLD_SHA = "fedcba9876543210fedcba9876543210fedcba98"


def _rows(output: str) -> dict[str, list[str]]:
    """Table rows by release name: ``{release: [revision, age, status, hosts]}``."""
    rows = {}
    for line in output.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells and re.fullmatch(r"\d{6}-\d{6}(-\d{2})?", cells[0]):
            rows[cells[0]] = cells[1:]
    return rows


def _deploy(fap_run, directory) -> str:
    result = fap_run(["deploy", "-s", "test", "-q"], cwd=directory)
    assert result.exit_code == 0, result.output
    return re.search(r"deployed release (\S+)", result.stdout).group(1)


#: A project's own plugin (beside deploy.yml) that says which revision a release holds.
REVISION_PLUGIN = """
from fapistrano import hookimpl

@hookimpl
def fap_release_revision(ctx, release):
    answer = ctx.run("cat " + ctx.config["releases_path"] + "/" + release + "/BUILD 2>/dev/null || true", readonly=True)
    return answer or None
"""


def test_releases_shows_revision_age_and_current(fap_fleet, fap_run, tmp_path):
    (tmp_path / "build_revisions.py").write_text(REVISION_PLUGIN)
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["build_revisions"]})
    release = _deploy(fap_run, tmp_path)
    old = (dt.datetime.now() - dt.timedelta(days=3, minutes=1)).strftime("%y%m%d-%H%M%S")
    for host in fap_fleet.hosts:
        app = fap_fleet.app_dir(host)
        (app / "releases" / old).mkdir()
        (app / "releases" / old / "BUILD").write_text(OLD_SHA + "\n")
        (app / "releases" / release / "BUILD").write_text(SHA + "\n")

    result = fap_run(["releases", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert "test/web (3 hosts)" in result.stdout
    rows = _rows(result.stdout)
    assert list(rows) == [release, old]  # newest first
    assert rows[release][0] == SHA[:12]  # what the plugin answered through fap_release_revision
    assert rows[release][2:] == ["current", "all"]
    assert rows[old][0] == OLD_SHA[:12]
    assert rows[old][1] == "3d 0h"
    assert rows[old][2:] == ["all"]
    assert "warning" not in result.output


def test_the_core_reads_no_revision_itself(fap_fleet, fap_run, tmp_path):
    """REVISION files and revisions.log belong to the git plugin: without it, no revision is shown."""
    fap_fleet.write_deployfile(tmp_path)
    release = _deploy(fap_run, tmp_path)
    for host in fap_fleet.hosts:
        app = fap_fleet.app_dir(host)
        (app / "releases" / release / "REVISION").write_text(SHA + "\n")
        (app / "revisions.log").write_text(f"2026-01-02T00:00:00Z release={release} sha={SHA} branch=main deployer=bob@laptop\n")

    result = fap_run(["releases", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert _rows(result.stdout)[release][0] == "-"


def test_releases_warns_when_hosts_of_a_role_disagree_on_current(fap_fleet, fap_run, tmp_path):
    fap_fleet.write_deployfile(tmp_path)
    first = _deploy(fap_run, tmp_path)
    second = _deploy(fap_run, tmp_path)
    # Someone switched host2 back by hand.
    link = fap_fleet.app_dir("host2") / "current"
    link.unlink()
    os.symlink(f"/home/deploy/www/app/releases/{first}", link)

    result = fap_run(["releases", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    rows = _rows(result.stdout)
    assert rows[second][2:] == ["current on host1, host3", "all"]
    assert rows[first][2:] == ["current on host2", "all"]
    assert rows[second][0] == "-"  # no revision recorded
    assert f"warning: hosts of test/web disagree on current: host1, host3 -> {second}; host2 -> {first}" in result.stdout


def test_releases_json_is_one_object_per_release_for_scripts(fap_fleet, fap_run, tmp_path):
    (tmp_path / "build_revisions.py").write_text(REVISION_PLUGIN)
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["build_revisions"]})
    first = _deploy(fap_run, tmp_path)
    second = _deploy(fap_run, tmp_path)
    for host in fap_fleet.hosts:
        (fap_fleet.app_dir(host) / "releases" / second / "BUILD").write_text(SHA + "\n")
    assert fap_run(["rollback", "-s", "test", "--hosts", "host2"], cwd=tmp_path).exit_code == 0

    result = fap_run(["releases", "-s", "test", "--json"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["release"] for r in records] == [second, first]  # newest first
    assert records[0] == {"target": "test/web", "release": second, "revisions": [SHA], "hosts": ["host1", "host2", "host3"],
                          "current_on": ["host1", "host3"], "unfinished_on": [], "bad_on": ["host2"], "migrated_on": [],
                          "migrated_back_on": []}
    assert records[1]["current_on"] == ["host2"] and records[1]["revisions"] == []
    # What is not a release is on stderr: stdout stays one object per line.
    assert f"warning: hosts of test/web disagree on current: host1, host3 -> {second}; host2 -> {first}" in result.stderr


def test_releases_lists_what_answering_hosts_have_and_fails_for_the_rest(fap_fleet, fap_run, tmp_path):
    fap_fleet.write_deployfile(tmp_path)
    release = _deploy(fap_run, tmp_path)
    subprocess.run(["rm", "-rf", str(fap_fleet.app_dir("host1") / "releases" / release)], check=True)
    fap_fleet.kill_host("host3")

    result = fap_run(["releases", "-s", "test", "--ssh-connect-timeout", "5"], cwd=tmp_path)

    assert result.exit_code == 1, result.output
    assert "test/web: 2 of 3 hosts answered" in result.stdout
    # host1 lost the directory its current points to: only host2 holds the release.
    assert _rows(result.stdout)[release][2:] == ["current", "host2"]
    assert f"warning: host1: current points to {release}, a release that is not there" in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("fap: error:")]
    assert len(errors) == 1 and errors[0].startswith("fap: error: host3: cannot connect: "), result.stderr


def test_releases_of_a_target_never_deployed_to(fap_local, fap_run):
    fap_local.write_deployfile()

    result = fap_run(["releases", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "test/web (1 host): no releases yet"
