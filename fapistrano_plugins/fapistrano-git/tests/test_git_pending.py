"""``fap pending`` with the git plugin: what runs, what a deploy would ship now, the commits between."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

HOSTS = ("host1", "host2", "host3")


def deploy(fap_run: Any, tmp_path: Path, *args: str) -> str:
    result = fap_run(["deploy", "-s", "test", "-q", *args], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    return re.search(r"deployed release (\S+)", result.stdout).group(1)


def test_pending_lists_the_commits_a_deploy_would_ship_newest_first(fap_fleet, fap_run, tmp_path, git_repo):
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["fapistrano.git"], "repo": str(git_repo.path)})
    live = git_repo.head()
    release = deploy(fap_run, tmp_path)
    for number in (1, 2, 3):
        git_repo.commit({"app.py": f"print({number})\n"}, f"change number {number}" + (" :tada: [b]" if number == 3 else ""))
    head = git_repo.head()

    result = fap_run(["pending", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"test/web (3 hosts): 3 commits to ship: live {live[:12]} (release {release}) -> {head[:12]}"
    assert [line.split(" ", 3)[-1] for line in lines[1:4]] == ["change number 3 :tada: [b]", "change number 2", "change number 1"]
    assert lines[1].split()[0] == head[:7]
    # Read only: nothing changed on the hosts, and no lock was taken.
    assert all(fap_fleet.current(host) == release for host in HOSTS)
    assert fap_fleet.releases("host1") == [release]

    as_json = fap_run(["pending", "-s", "test", "--json"], cwd=tmp_path)
    assert as_json.exit_code == 0, as_json.output
    (record,) = [json.loads(line) for line in as_json.stdout.splitlines()]
    (group,) = record["groups"]
    assert (record["stage"], record["role"], group["hosts"], group["status"]) == ("test", "web", list(HOSTS), "pending")
    assert (group["live"], group["ship"], group["count"], len(group["commits"])) == (live, head, 3, 3)
    assert group["commits"][0].endswith("change number 3 :tada: [b]")


def test_pending_says_up_to_date_when_the_branch_has_not_moved(fap_fleet, fap_run, tmp_path, git_repo):
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["fapistrano.git"], "repo": str(git_repo.path)})
    release = deploy(fap_run, tmp_path)

    result = fap_run(["pending", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"test/web (3 hosts): up to date: {git_repo.head()[:12]} (release {release}) is what a deploy would ship"]


def test_pending_shows_each_group_when_hosts_disagree(fap_fleet, fap_run, tmp_path, git_repo):
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["fapistrano.git"], "repo": str(git_repo.path)})
    first_sha = git_repo.head()
    first = deploy(fap_run, tmp_path)
    git_repo.commit({"app.py": "print('two')\n"}, "second change")
    second = deploy(fap_run, tmp_path, "--hosts", "host3")

    result = fap_run(["pending", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "test/web (3 hosts): hosts disagree"
    assert lines[1] == f"  host1, host2: 1 commit to ship: live {first_sha[:12]} (release {first}) -> {git_repo.head()[:12]}"
    assert lines[2].endswith(" second change")
    assert lines[3] == f"  host3: up to date: {git_repo.head()[:12]} (release {second}) is what a deploy would ship"


def test_pending_says_when_the_repository_does_not_have_the_live_revision(fap_fleet, fap_run, tmp_path, git_repo):
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["fapistrano.git"], "repo": str(git_repo.path)})
    release = deploy(fap_run, tmp_path)
    unknown = "0123456789abcdef0123456789abcdef01234567"
    for host in HOSTS:
        (fap_fleet.app_dir(host) / "releases" / release / "REVISION").write_text(unknown + "\n")

    result = fap_run(["pending", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"test/web (3 hosts): live {unknown[:12]} (release {release}): fapistrano.git: the repository does not have revision {unknown}"
        " (history rewritten, or another repo)"]


def test_pending_says_when_the_live_release_holds_no_revision(fap_fleet, fap_run, tmp_path, git_repo):
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["fapistrano.git"], "repo": str(git_repo.path),
                                          "revision_file": "", "git_revision_log": ""})
    release = deploy(fap_run, tmp_path)

    result = fap_run(["pending", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert f"live release {release}: cannot tell what changed: release {release} holds no revision" in result.stdout


def test_pending_before_any_deploy_says_what_a_deploy_would_ship(fap_fleet, fap_run, tmp_path, git_repo):
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["fapistrano.git"], "repo": str(git_repo.path)})

    result = fap_run(["pending", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"test/web (3 hosts): nothing deployed yet; a deploy would ship {git_repo.head()[:12]}"]


def test_pending_says_when_a_freeze_holds_the_changes_back(fap_fleet, fap_run, tmp_path, git_repo):
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["fapistrano.git"], "repo": str(git_repo.path)})
    deploy(fap_run, tmp_path)
    git_repo.commit({"app.py": "print('two')\n"}, "two")
    assert fap_run(["lock", "-s", "test", "-m", "incident 431"], cwd=tmp_path).exit_code == 0

    result = fap_run(["pending", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("test/web (3 hosts): 1 commit to ship: live ")
    assert result.stdout.splitlines()[-1].startswith("warning: host1, host2, host3: frozen ")
    assert "incident 431" in result.stdout.splitlines()[-1]


def test_pending_json_masks_a_secret_however_json_would_spell_it(fap_fleet, fap_run, tmp_path, git_repo):
    secret = 'Zq9-pä"ss\\wörd'  # JSON escapes the quote and the backslash, and may escape the letters
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["fapistrano.git"], "repo": str(git_repo.path),
                                          "mask": ["db_password"], "db_password": secret})
    deploy(fap_run, tmp_path)
    git_repo.commit({"app.py": "print('rotated')\n"}, f"rotate the password to {secret} by mistake")

    shown = fap_run(["pending", "-s", "test", "--json"], cwd=tmp_path)
    plain = fap_run(["pending", "-s", "test"], cwd=tmp_path)

    assert shown.exit_code == 0, shown.output
    (record,) = [json.loads(line) for line in shown.stdout.splitlines()]
    assert record["groups"][0]["commits"][0].endswith("rotate the password to *** by mistake")
    assert "Zq9" not in shown.output
    assert "rotate the password to *** by mistake" in plain.stdout and "Zq9" not in plain.output
