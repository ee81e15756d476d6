"""``fap promote -s production --from staging``: production gets exactly the commit staging runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

STAGING = ("host1", "host2")
PRODUCTION = ("host3",)


def write(fap_fleet: Any, tmp_path: Path, git_repo: Any, **extra: Any) -> None:
    fap_fleet.write_deployfile(tmp_path, {
        "plugins": ["fapistrano.git"], "repo": str(git_repo.path),
        "stage_role_configs": {"staging": {"web": {"hosts": list(STAGING)}},
                               "production": {"web": {"hosts": list(PRODUCTION)}}},
        **extra,
    }, hosts=[])


def deploy(fap_run: Any, tmp_path: Path, *args: str) -> str:
    result = fap_run(["deploy", "-q", *args], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    return re.search(r"deployed release (\S+)", result.stdout).group(1)


def test_promote_ships_the_commit_staging_runs_after_the_branch_moved_on(fap_fleet, fap_run, tmp_path, git_repo):
    write(fap_fleet, tmp_path, git_repo)
    git_repo.commit({"app.py": "print('tested')\n"}, "tested on staging")
    tested = git_repo.head()
    deploy(fap_run, tmp_path, "-s", "staging")
    git_repo.commit({"app.py": "print('not tested yet')\n"}, "newer")

    result = fap_run(["promote", "-s", "production", "--from", "staging"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    release = re.search(r"deployed release (\S+)", result.stdout).group(1)
    assert f"promoted {tested[:12]} from staging: deployed release {release}" in result.stdout
    assert fap_fleet.current("host3") == release
    assert (fap_fleet.current_dir("host3") / "REVISION").read_text().strip() == tested
    assert (fap_fleet.current_dir("host3") / "app.py").read_text() == "print('tested')\n"


def test_promote_refuses_when_staging_hosts_disagree(fap_fleet, fap_run, tmp_path, git_repo):
    write(fap_fleet, tmp_path, git_repo)
    old = git_repo.head()
    first = deploy(fap_run, tmp_path, "-s", "staging")
    git_repo.commit({"app.py": "print('two')\n"}, "two")
    second = deploy(fap_run, tmp_path, "-s", "staging", "--hosts", "host2")

    result = fap_run(["promote", "-s", "production", "--from", "staging"], cwd=tmp_path)

    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        f"fap: error: fap promote: the hosts of staging disagree: host1 runs {old} (release {first});"
        f" host2 runs {git_repo.head()} (release {second}); deploy staging first, or choose a role with -r")
    assert fap_fleet.current("host3") is None


def test_promote_refuses_with_a_plugin_that_cannot_promote(fap_fleet, fap_run, tmp_path, git_repo):
    write(fap_fleet, tmp_path, git_repo)
    deploy(fap_run, tmp_path, "-s", "staging")
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "app.py").write_text("print('local build')\n")
    stages = {"staging": {"web": {"hosts": list(STAGING)}},
              "production": {"web": {"hosts": list(PRODUCTION), "plugins": ["fapistrano.upload"], "upload_source": "dist"}}}
    write(fap_fleet, tmp_path, git_repo, stage_role_configs=stages)

    result = fap_run(["promote", "-s", "production", "--from", "staging"], cwd=tmp_path)

    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        "fap: error: production/web: fapistrano.upload cannot promote: it ships this machine's build (upload_source),"
        " not the release staging runs; build the same version here and use fap deploy")
    assert not fap_fleet.app_dir("host3").exists() or fap_fleet.releases("host3") == []


def test_promote_names_an_unknown_stage(fap_fleet, fap_run, tmp_path, git_repo):
    write(fap_fleet, tmp_path, git_repo)

    result = fap_run(["promote", "-s", "production", "--from", "stagign"], cwd=tmp_path)

    assert result.exit_code == 2, result.output
    assert result.stderr.strip().startswith(
        "fap: error: fap promote: --from stagign: unknown stage (did you mean 'staging'?); stages: ")


def test_promote_is_refused_by_a_freeze_like_deploy(fap_fleet, fap_run, tmp_path, git_repo):
    write(fap_fleet, tmp_path, git_repo)
    deploy(fap_run, tmp_path, "-s", "staging")
    frozen = fap_run(["lock", "-s", "production", "-m", "incident 431"], cwd=tmp_path)
    assert frozen.exit_code == 0, frozen.output

    result = fap_run(["promote", "-s", "production", "--from", "staging"], cwd=tmp_path)

    assert result.exit_code == 5, result.output
    assert "incident 431" in result.output
    assert fap_fleet.current("host3") is None


RECORD_RUN = '''\
from fapistrano import hookimpl


@hookimpl
def fap_run_finished(run):
    with open(run.project_dir + "/promoted_from.txt", "w") as out:
        out.write(f"{run.command} {run.promoted_from}")
'''


def test_promote_is_recorded_as_promoted_from_staging(fap_fleet, fap_run, tmp_path, git_repo):
    (tmp_path / "record_run.py").write_text(RECORD_RUN)
    write(fap_fleet, tmp_path, git_repo, plugins=["fapistrano.git", "record_run"])
    deploy(fap_run, tmp_path, "-s", "staging")
    assert (tmp_path / "promoted_from.txt").read_text() == "deploy None"

    result = fap_run(["promote", "-s", "production", "--from", "staging"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert (tmp_path / "promoted_from.txt").read_text() == "deploy staging"


def test_promote_refuses_with_curl_before_touching_production(fap_fleet, fap_run, tmp_path, git_repo):
    write(fap_fleet, tmp_path, git_repo)
    deploy(fap_run, tmp_path, "-s", "staging")
    stages = {"staging": {"web": {"hosts": list(STAGING)}},
              "production": {"web": {"hosts": list(PRODUCTION), "plugins": ["fapistrano.curl"],
                                     "curl_url": "https://ci.example.org/app.tar.gz"}}}
    write(fap_fleet, tmp_path, git_repo, stage_role_configs=stages)

    result = fap_run(["promote", "-s", "production", "--from", "staging"], cwd=tmp_path)

    assert result.exit_code == 2, result.output
    assert result.stderr.strip().startswith("fap: error: production/web: fapistrano.curl cannot promote:")
    assert fap_fleet.current("host3") is None


def test_promote_dry_run_names_the_commit_and_changes_nothing(fap_fleet, fap_run, tmp_path, git_repo):
    write(fap_fleet, tmp_path, git_repo)
    deploy(fap_run, tmp_path, "-s", "staging")
    tested = git_repo.head()

    result = fap_run(["promote", "-s", "production", "--from", "staging", "--dry-run"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert f"dry run, nothing changed: would have promoted {tested[:12]} from staging" in result.stdout
    assert fap_fleet.current("host3") is None
