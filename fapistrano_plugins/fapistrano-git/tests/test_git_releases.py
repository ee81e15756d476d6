"""``fap releases`` with the git plugin: each release's sha comes from the plugin's ``fap_release_revision``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

HOSTS = ("host1", "host2", "host3")


def revision_of(output: str, release: str) -> str:
    """The revision column of ``release``'s row in the ``fap releases`` table."""
    (row,) = [line.split() for line in output.splitlines() if line.split()[:1] == [release]]
    return row[1]


def deploy(fap_run: Any, tmp_path: Path) -> str:
    result = fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    return re.search(r"deployed release (\S+)", result.stdout).group(1)


def test_releases_shows_the_sha_each_release_holds(fap_fleet, fap_run, tmp_path, git_repo):
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["fapistrano.git"], "repo": str(git_repo.path)})
    first_sha = git_repo.head()
    first = deploy(fap_run, tmp_path)
    second_sha = git_repo.commit({"app.py": "print('two')\n"})
    second = deploy(fap_run, tmp_path)

    result = fap_run(["releases", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert revision_of(result.stdout, second) == second_sha[:12]
    assert revision_of(result.stdout, first) == first_sha[:12]


def test_a_release_without_its_revision_file_is_found_in_the_revision_log(fap_fleet, fap_run, tmp_path, git_repo):
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["fapistrano.git"], "repo": str(git_repo.path)})
    sha = git_repo.head()
    release = deploy(fap_run, tmp_path)
    for host in HOSTS:
        (fap_fleet.app_dir(host) / "releases" / release / "REVISION").unlink()

    result = fap_run(["releases", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert revision_of(result.stdout, release) == sha[:12]


def test_a_release_the_plugin_did_not_make_has_no_revision(fap_fleet, fap_run, tmp_path, git_repo):
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["fapistrano.git"], "repo": str(git_repo.path),
                                          "revision_file": "", "git_revision_log": ""})
    release = deploy(fap_run, tmp_path)

    result = fap_run(["releases", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert revision_of(result.stdout, release) == "-"
