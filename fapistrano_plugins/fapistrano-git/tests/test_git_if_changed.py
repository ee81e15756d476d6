"""``fap deploy --if-changed`` with the git plugin: no release when what would ship is what runs, on every host."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

HOSTS = ("host1", "host2", "host3")


def deploy(fap_run: Any, tmp_path: Path, *args: str) -> Any:
    result = fap_run(["deploy", "-s", "test", *args], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    return result


def released(result: Any) -> str:
    return re.search(r"deployed release (\S+)", result.stdout).group(1)


def settings(git_repo: Any, **extra: Any) -> dict[str, Any]:
    return {"plugins": ["fapistrano.git"], "repo": str(git_repo.path), "environment": {"MODE": "blue"},
            "api_token": "s3cret-token-value", "mask": ["api_token"], "custom_settings": ["api_token"], **extra}


def test_if_changed_makes_no_release_when_nothing_changed(fap_fleet, fap_run, tmp_path, git_repo):
    fap_fleet.write_deployfile(tmp_path, settings(git_repo))
    release = released(deploy(fap_run, tmp_path, "-q"))

    result = deploy(fap_run, tmp_path, "--if-changed")

    sha = git_repo.head()
    assert result.stdout.strip().splitlines()[-1] == f"already live: {release} ({sha[:12]}) on 3 hosts, nothing to do"
    assert all(fap_fleet.releases(host) == [release] and fap_fleet.current(host) == release for host in HOSTS)
    # The release records what shaped it, secrets only as digests.
    record = json.loads((fap_fleet.app_dir("host1") / ".fap" / "fingerprints" / f"{release}.json").read_text())
    assert record["revision"] == sha
    assert "environment" in record["parts"]["settings"]
    assert "s3cret-token-value" not in json.dumps(record)


def test_if_changed_deploys_when_the_branch_moved(fap_fleet, fap_run, tmp_path, git_repo):
    fap_fleet.write_deployfile(tmp_path, settings(git_repo))
    first = released(deploy(fap_run, tmp_path, "-q"))
    git_repo.commit({"app.py": "print('two')\n"}, "two")

    result = deploy(fap_run, tmp_path, "--if-changed")

    second = released(result)
    assert second != first and all(fap_fleet.current(host) == second for host in HOSTS)
    assert f"changed since live release {first}: revision" in result.stdout


def test_if_changed_deploys_when_only_an_environment_value_changed(fap_fleet, fap_run, tmp_path, git_repo):
    fap_fleet.write_deployfile(tmp_path, settings(git_repo))
    first = released(deploy(fap_run, tmp_path, "-q"))
    fap_fleet.write_deployfile(tmp_path, settings(git_repo, environment={"MODE": "green"}))

    result = deploy(fap_run, tmp_path, "--if-changed")

    second = released(result)
    assert all(fap_fleet.current(host) == second for host in HOSTS) and second != first
    assert f"changed since live release {first}: setting environment" in result.stdout
    assert "MODE=green" in (fap_fleet.current_dir("host1") / ".env").read_text()


def test_if_changed_deploys_when_one_host_differs(fap_fleet, fap_run, tmp_path, git_repo):
    fap_fleet.write_deployfile(tmp_path, settings(git_repo))
    released(deploy(fap_run, tmp_path, "-q"))
    git_repo.commit({"app.py": "print('two')\n"}, "two")
    newer = released(deploy(fap_run, tmp_path, "-q", "--hosts", "host2,host3"))
    git_repo.git("reset", "-q", "--hard", "HEAD~1")  # the branch goes back: host1 runs it, host2 and host3 do not

    result = deploy(fap_run, tmp_path, "--if-changed")

    third = released(result)
    assert third != newer and all(fap_fleet.current(host) == third for host in HOSTS)
    assert "host2, host3: changed since live release" in result.stdout


def test_if_changed_deploys_when_a_secret_changed(fap_fleet, fap_run, tmp_path, git_repo):
    fap_fleet.write_deployfile(tmp_path, settings(git_repo))
    first = released(deploy(fap_run, tmp_path, "-q"))

    result = deploy(fap_run, tmp_path, "--if-changed", "--api-token", "an0ther-token")

    assert released(result) != first
    assert "setting api_token" in result.stdout
    assert "an0ther-token" not in result.output


def test_if_changed_on_a_frozen_target_is_refused_like_any_deploy(fap_fleet, fap_run, tmp_path, git_repo):
    fap_fleet.write_deployfile(tmp_path, settings(git_repo))
    release = released(deploy(fap_run, tmp_path, "-q"))
    assert fap_run(["lock", "-s", "test", "-m", "incident 431"], cwd=tmp_path).exit_code == 0

    result = fap_run(["deploy", "-s", "test", "--if-changed"], cwd=tmp_path)

    assert result.exit_code == 5, result.output
    assert "incident 431" in result.output
    assert all(fap_fleet.releases(host) == [release] for host in HOSTS)
