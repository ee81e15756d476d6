"""fapistrano.git on the real SSH fleet, with real repositories: what a user would check after each run."""

from __future__ import annotations

import getpass
import subprocess
from pathlib import Path
from typing import Any

HOSTS = ("host1", "host2", "host3")


def deploy(fap_fleet: Any, fap_run: Any, tmp_path: Path, settings: dict[str, Any], *args: str, command: str = "deploy") -> Any:
    """Write a deploy.yml enabling the git plugin with ``settings`` and run ``fap COMMAND -s test ARGS``."""
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["fapistrano.git"], **settings})
    return fap_run([command, "-s", "test", *args], cwd=tmp_path)


def release_files(fap_fleet: Any, host: str) -> set[str]:
    """Every file of the host's current release, relative to it."""
    root = fap_fleet.current_dir(host)
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def revision_log(fap_fleet: Any, host: str) -> list[str]:
    log = fap_fleet.app_dir(host) / "revisions.log"
    return log.read_text().splitlines() if log.exists() else []


def mirror_git(fap_fleet: Any, host: str, *args: str) -> str:
    """Run git as deploy in the host's mirror (``%(path)s/repo``)."""
    mirror = fap_fleet.app_dir(host) / "repo"
    completed = subprocess.run(["runuser", "-u", "deploy", "--", "git", "--git-dir", str(mirror), *args],
                               capture_output=True, text=True, check=True)
    return completed.stdout.strip()


def assert_deployed(fap_fleet: Any, repo: Any, sha: str, tree: str = "") -> None:
    """Every host's current release holds ``sha``'s files (of ``tree``) and a REVISION naming it."""
    for host in HOSTS:
        assert release_files(fap_fleet, host) == repo.files(sha, tree) | {"REVISION"}, host
        assert (fap_fleet.current_dir(host) / "REVISION").read_text() == sha + "\n", host


# ---------------------------------------------------------------------------
# Deploys
# ---------------------------------------------------------------------------


def test_deploy_archives_the_branch_into_a_new_release_on_every_host(fap_fleet, fap_run, tmp_path, git_repo):
    sha = git_repo.head()

    result = deploy(fap_fleet, fap_run, tmp_path, {"repo": str(git_repo.path)})

    assert result.exit_code == 0, result.output
    assert_deployed(fap_fleet, git_repo, sha)
    for host in HOSTS:
        release = fap_fleet.current(host)
        assert fap_fleet.releases(host) == [release]
        assert (fap_fleet.current_dir(host) / "web" / "index.html").read_text() == "<h1>web</h1>\n"
        (line,) = revision_log(fap_fleet, host)
        assert f" release={release} sha={sha} branch=master deployer={getpass.getuser()}@" in line
        assert line[:4].isdigit() and line[19] == "Z", line  # starts with a UTC timestamp
        # The default mirror is shallow: only the deployed commit was fetched.
        assert (fap_fleet.app_dir(host) / "repo" / "shallow").is_file()
        assert mirror_git(fap_fleet, host, "rev-list", "--count", "refs/fap/deploy") == "1"
    assert f"master is {sha}" in result.output


def test_second_deploy_fetches_the_new_commit_with_one_fetch_per_host(fap_fleet, fap_run, tmp_path, git_server, git_repo):
    # Over ssh through a wrapper that logs every connection git opens to the git server (host1).
    settings = {
        "repo": f"ssh://deploy@host1{git_repo.path}",
        "git_ssh_command": git_server.ssh_command(fap_fleet.ssh_config, counting=True),
    }
    first = deploy(fap_fleet, fap_run, tmp_path, settings)
    assert first.exit_code == 0, first.output
    first_release = fap_fleet.current("host1")
    new_sha = git_repo.commit({"app.py": "print('hello again')\n", "CHANGES": "v2\n"}, "second")
    git_server.ssh_log.unlink()

    second = deploy(fap_fleet, fap_run, tmp_path, settings)

    assert second.exit_code == 0, second.output
    assert_deployed(fap_fleet, git_repo, new_sha)
    for host in HOSTS:
        assert (fap_fleet.current_dir(host) / "app.py").read_text() == "print('hello again')\n"
        assert fap_fleet.current(host) != first_release
        assert len(fap_fleet.releases(host)) == 2
        lines = revision_log(fap_fleet, host)
        assert len(lines) == 2 and f"sha={new_sha}" in lines[1]
    # One connection to the git server per host, each a single fetch (upload-pack), nothing else.
    connections = git_server.ssh_connections()
    assert len(connections) == len(HOSTS), connections
    assert all("git-upload-pack" in line for line in connections), connections


def test_deploys_a_tag_a_branch_a_full_sha_and_an_abbreviated_sha(fap_fleet, fap_run, tmp_path, git_repo):
    first = git_repo.head()
    git_repo.tag("v1.0")
    second = git_repo.commit({"feature.py": "FEATURE = True\n"}, "feature")
    git_repo.branch("feature")
    git_repo.git("reset", "-q", "--hard", first)
    third = git_repo.commit({"app.py": "print('master moved on')\n"}, "master moves on")
    git_repo.commit({"app.py": "print('tip')\n"}, "tip")
    repo = str(git_repo.path)

    tag = deploy(fap_fleet, fap_run, tmp_path, {"repo": repo, "branch": "v1.0"})
    assert tag.exit_code == 0, tag.output
    assert_deployed(fap_fleet, git_repo, first)  # an annotated tag deploys the commit it names

    branch = deploy(fap_fleet, fap_run, tmp_path, {"repo": repo}, "--branch", "feature")
    assert branch.exit_code == 0, branch.output
    assert_deployed(fap_fleet, git_repo, second)
    assert (fap_fleet.current_dir("host2") / "feature.py").is_file()

    # A commit that no branch or tag points to, fetched by its sha into the shallow mirror.
    full_sha = deploy(fap_fleet, fap_run, tmp_path, {"repo": repo, "branch": third})
    assert full_sha.exit_code == 0, full_sha.output
    assert_deployed(fap_fleet, git_repo, third)
    assert "feature.py" not in release_files(fap_fleet, "host1")

    short = deploy(fap_fleet, fap_run, tmp_path, {"repo": repo, "branch": second[:10], "git_shallow_clone": 0})
    assert short.exit_code == 0, short.output
    assert_deployed(fap_fleet, git_repo, second)
    assert [line.split(" branch=")[1].split()[0] for line in revision_log(fap_fleet, "host3")] == [
        "v1.0", "feature", third, second[:10],
    ]


def test_full_history_mirror_and_deepening_a_shallow_one(fap_fleet, fap_run, tmp_path, git_repo):
    for number in range(2, 5):
        git_repo.commit({"app.py": f"print({number})\n"}, f"commit {number}")
    repo = str(git_repo.path)

    shallow = deploy(fap_fleet, fap_run, tmp_path, {"repo": repo, "git_shallow_clone": 2})
    assert shallow.exit_code == 0, shallow.output
    assert mirror_git(fap_fleet, "host1", "rev-list", "--count", "refs/fap/deploy") == "2"

    full = deploy(fap_fleet, fap_run, tmp_path, {"repo": repo, "git_shallow_clone": 0})

    assert full.exit_code == 0, full.output
    assert_deployed(fap_fleet, git_repo, git_repo.head())
    for host in HOSTS:
        assert mirror_git(fap_fleet, host, "rev-list", "--count", "refs/fap/deploy") == "4"
        assert not (fap_fleet.app_dir(host) / "repo" / "shallow").exists()


def test_git_archive_tree_deploys_only_that_directory_as_the_release_root(fap_fleet, fap_run, tmp_path, git_repo):
    sha = git_repo.head()

    result = deploy(fap_fleet, fap_run, tmp_path, {"repo": str(git_repo.path), "git_archive_tree": "web/"})

    assert result.exit_code == 0, result.output
    assert_deployed(fap_fleet, git_repo, sha, tree="web")
    for host in HOSTS:
        assert release_files(fap_fleet, host) == {"index.html", "static/site.css", "REVISION"}


def test_ssh_repositories_as_url_and_as_scp_style_path(fap_fleet, fap_run, tmp_path, git_server, git_repo):
    ssh = git_server.ssh_command(fap_fleet.ssh_config)
    sha = git_repo.head()

    url = deploy(fap_fleet, fap_run, tmp_path, {"repo": f"ssh://deploy@host2{git_repo.path}", "git_ssh_command": ssh})
    assert url.exit_code == 0, url.output
    assert_deployed(fap_fleet, git_repo, sha)

    newer = git_repo.commit({"app.py": "print('over scp-style ssh')\n"})
    scp = deploy(fap_fleet, fap_run, tmp_path, {"repo": f"deploy@host3:{git_repo.path}", "git_ssh_command": ssh})
    assert scp.exit_code == 0, scp.output
    assert_deployed(fap_fleet, git_repo, newer)


def test_file_url_repository(fap_fleet, fap_run, tmp_path, git_repo):
    result = deploy(fap_fleet, fap_run, tmp_path, {"repo": f"file://{git_repo.path}"})

    assert result.exit_code == 0, result.output
    assert_deployed(fap_fleet, git_repo, git_repo.head())


def test_configured_values_reach_git_quoted(fap_fleet, fap_run, tmp_path, git_server):
    # Shell syntax in the repository path, the branch and the archived directory must stay data.
    hostile = "we ird;$(touch PWNED)`touch PWNED`'"
    repo = git_server.new_repo(files={f"{hostile}/page.txt": "ok\n", "other.txt": "no\n"})
    branch = "fix;$(touch${IFS}PWNED)'q"
    git_repo_path = repo.path.parent / hostile
    repo.path.rename(git_repo_path)
    repo.path = git_repo_path
    repo.branch(branch)

    result = deploy(fap_fleet, fap_run, tmp_path, {"repo": str(repo.path), "branch": branch, "git_archive_tree": hostile})

    assert result.exit_code == 0, result.output
    for host in HOSTS:
        assert release_files(fap_fleet, host) == {"page.txt", "REVISION"}
        found = fap_fleet.in_host(host, ["find", "/home/deploy", str(git_server.root), "-name", "PWNED"])
        assert found.returncode == 0 and found.stdout == "", found


def test_dry_run_changes_nothing(fap_fleet, fap_run, tmp_path, git_repo):
    result = deploy(fap_fleet, fap_run, tmp_path, {"repo": str(git_repo.path)}, "--dry-run")

    assert result.exit_code == 0, result.output
    for host in HOSTS:
        assert fap_fleet.current(host) is None
        assert not (fap_fleet.app_dir(host) / "repo").exists()


# ---------------------------------------------------------------------------
# Failures: a clear line, non-zero exit, current untouched, no release left
# ---------------------------------------------------------------------------


def _deploy_good_release(fap_fleet: Any, fap_run: Any, tmp_path: Path, repo: Any) -> dict[str, str]:
    result = deploy(fap_fleet, fap_run, tmp_path, {"repo": str(repo.path)})
    assert result.exit_code == 0, result.output
    return {host: fap_fleet.current(host) for host in HOSTS}


def _assert_untouched(fap_fleet: Any, before: dict[str, str]) -> None:
    for host in HOSTS:
        assert fap_fleet.current(host) == before[host]
        assert fap_fleet.releases(host) == [before[host]]
        assert len(revision_log(fap_fleet, host)) == 1
        assert not fap_fleet.locked(host)


def test_unreachable_repository_fails_naming_repo_and_host(fap_fleet, fap_run, tmp_path, git_server, git_repo):
    before = _deploy_good_release(fap_fleet, fap_run, tmp_path, git_repo)
    missing = git_repo.path.parent / "missing.git"

    result = deploy(fap_fleet, fap_run, tmp_path, {"repo": str(missing)})

    assert result.exit_code != 0
    assert "Traceback" not in result.output
    for host in HOSTS:
        assert f"{host}: started: fapistrano.git: repo {missing} is not reachable from {host}" in result.output
    _assert_untouched(fap_fleet, before)

    # Over ssh to a port nobody listens on: the same, with ssh's reason.
    ssh = git_server.ssh_command(fap_fleet.ssh_config)
    refused = deploy(fap_fleet, fap_run, tmp_path, {"repo": "ssh://deploy@127.0.0.1:1/srv/app.git", "git_ssh_command": ssh})
    assert refused.exit_code != 0
    assert "repo ssh://deploy@127.0.0.1:1/srv/app.git is not reachable from host1" in refused.output
    assert "Connection refused" in refused.output
    _assert_untouched(fap_fleet, before)


def test_credentials_in_the_repo_url_never_show(fap_fleet, fap_run, tmp_path):
    repo = "https://deployer:s3cr3t-t0ken@127.0.0.1:1/shop.git"

    result = deploy(fap_fleet, fap_run, tmp_path, {"repo": repo}, "-v")

    assert result.exit_code != 0
    assert "s3cr3t-t0ken" not in result.output
    assert "repo https://deployer:***@127.0.0.1:1/shop.git is not reachable from host1" in result.output


def test_unknown_branch_or_archive_tree_fails_before_anything_changes(fap_fleet, fap_run, tmp_path, git_repo):
    before = _deploy_good_release(fap_fleet, fap_run, tmp_path, git_repo)
    repo = str(git_repo.path)

    branch = deploy(fap_fleet, fap_run, tmp_path, {"repo": repo, "branch": "no-such-branch"})
    assert branch.exit_code != 0
    assert f"host1, host2, host3: started: fapistrano.git: branch 'no-such-branch' is no branch, tag or commit of repo {repo}" in branch.output
    _assert_untouched(fap_fleet, before)

    tree = deploy(fap_fleet, fap_run, tmp_path, {"repo": repo, "git_archive_tree": "nope"})
    assert tree.exit_code != 0
    assert f"host1, host2, host3: started: fapistrano.git: git_archive_tree 'nope' is not a directory in master of repo {repo}" in tree.output
    _assert_untouched(fap_fleet, before)

    # The abbreviated sha of a commit never fetched, and no branch tip, is out of reach of a
    # depth-1 mirror: the error says what to do.
    middle = git_repo.commit({"app.py": "print(2)\n"})
    git_repo.commit({"app.py": "print(3)\n"})
    short = deploy(fap_fleet, fap_run, tmp_path, {"repo": repo, "branch": middle[:8]})
    assert short.exit_code != 0
    assert "give the full sha" in short.output
    _assert_untouched(fap_fleet, before)


def test_repo_not_set_is_a_clear_error(fap_fleet, fap_run, tmp_path):
    result = deploy(fap_fleet, fap_run, tmp_path, {})

    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert "host1, host2, host3: starting: fapistrano.git: repo is not set" in result.output
    for host in HOSTS:
        assert fap_fleet.current(host) is None
        assert fap_fleet.releases(host) == []


def test_repo_path_that_is_not_a_repository_is_refused(fap_fleet, fap_run, tmp_path, git_repo):
    before = _deploy_good_release(fap_fleet, fap_run, tmp_path, git_repo)
    precious = fap_fleet.app_dir("host1") / "shared"

    result = deploy(fap_fleet, fap_run, tmp_path, {"repo": str(git_repo.path), "repo_path": "%(path)s/shared"})

    assert result.exit_code != 0
    assert "repo_path /home/deploy/www/app/shared exists but is not a git repository" in result.output
    assert precious.is_dir() and not (precious / "HEAD").exists()
    _assert_untouched(fap_fleet, before)


# ---------------------------------------------------------------------------
# Rollback
# ---------------------------------------------------------------------------


def test_rollback_says_which_revision_it_leaves_and_returns_to(fap_fleet, fap_run, tmp_path, git_repo):
    first_sha = git_repo.head()
    settings = {"repo": str(git_repo.path)}
    assert deploy(fap_fleet, fap_run, tmp_path, settings).exit_code == 0
    first = fap_fleet.current("host1")
    second_sha = git_repo.commit({"app.py": "print('broken')\n"})
    assert deploy(fap_fleet, fap_run, tmp_path, settings).exit_code == 0
    second = fap_fleet.current("host1")

    result = deploy(fap_fleet, fap_run, tmp_path, settings, command="rollback")

    assert result.exit_code == 0, result.output
    for host in HOSTS:
        assert fap_fleet.current(host) == first
        assert (fap_fleet.current_dir(host) / "REVISION").read_text() == first_sha + "\n"
        assert (f"{host} | reverting | leaving release {second} at revision {second_sha}, "
                f"returning to release {first} at revision {first_sha}") in result.output
        last = revision_log(fap_fleet, host)[-1]
        assert f" release={first} sha={first_sha} rolled_back_from={second} deployer=" in last


# ---------------------------------------------------------------------------
# fap check
# ---------------------------------------------------------------------------


def test_check_reports_an_unreachable_repository_and_an_unknown_branch(fap_fleet, fap_run, tmp_path, git_repo):
    good = deploy(fap_fleet, fap_run, tmp_path, {"repo": str(git_repo.path)}, command="check")
    assert good.exit_code == 0, good.output

    missing = git_repo.path.parent / "missing.git"
    unreachable = deploy(fap_fleet, fap_run, tmp_path, {"repo": str(missing)}, command="check")
    assert unreachable.exit_code != 0
    assert f"repo {missing} is not reachable from host1" in unreachable.output

    branch = deploy(fap_fleet, fap_run, tmp_path, {"repo": str(git_repo.path), "branch": "nope"}, command="check")
    assert branch.exit_code != 0
    assert f"branch 'nope': no such branch or tag in {git_repo.path}" in branch.output
    for host in HOSTS:  # a check changes nothing
        assert not (fap_fleet.app_dir(host) / "repo").exists()


def test_check_reports_a_git_archive_tree_the_branch_does_not_have(fap_fleet, fap_run, tmp_path, git_repo):
    good = deploy(fap_fleet, fap_run, tmp_path, {"repo": str(git_repo.path), "git_archive_tree": "web"}, command="check")
    assert good.exit_code == 0, good.output

    missing = deploy(fap_fleet, fap_run, tmp_path, {"repo": str(git_repo.path), "git_archive_tree": "nope/"}, command="check")
    assert missing.exit_code == 1, missing.output
    assert f"git_archive_tree 'nope' is not a directory in master of repo {git_repo.path}" in missing.output
    assert "ok" not in missing.stdout.splitlines()[-1]
    for host in HOSTS:  # a check changes nothing
        assert not fap_fleet.app_dir(host).exists()


def test_symlinks_the_repository_ships_never_redirect_writes(fap_fleet, fap_run, tmp_path, git_repo):
    # A repository whose .env, REVISION and conf/ are links out of the release.
    for host in HOSTS:
        outside = fap_fleet.hosts[host].path("/home/deploy/www/outside")
        (outside / "conf").mkdir(parents=True, exist_ok=True)
        for name in ("env", "revision", "conf/app.yml"):
            (outside / name).write_text(f"original {name}\n")
        subprocess.run(["chown", "-R", "deploy:deploy", str(outside)], check=True)
    for name, target in ((".env", "env"), ("REVISION", "revision"), ("conf", "conf")):
        (git_repo.path / name).symlink_to(f"/home/deploy/www/outside/{target}")
    git_repo.git("add", "-A")
    git_repo.git("commit", "-q", "-m", "links out of the release")
    for host in HOSTS:
        shared = fap_fleet.app_dir(host) / "shared" / "conf"
        shared.mkdir(parents=True, exist_ok=True)
        (shared / "app.yml").write_text("shared\n")
        subprocess.run(["chown", "-R", "deploy:deploy", str(fap_fleet.app_dir(host))], check=True)

    def untouched() -> None:
        for host in HOSTS:
            outside = fap_fleet.hosts[host].path("/home/deploy/www/outside")
            for name in ("env", "revision", "conf/app.yml"):
                assert (outside / name).read_text() == f"original {name}\n", (host, name)

    failed = deploy(fap_fleet, fap_run, tmp_path, {"repo": str(git_repo.path), "environment": {"GREETING": "hello"},
                                                   "linked_files": ["conf/app.yml"]})

    assert failed.exit_code == 1, failed.output
    assert "conf in the release is a symlink; fap does not write through links the code ships" in failed.stderr
    assert all(fap_fleet.current(host) is None for host in HOSTS)
    untouched()

    result = deploy(fap_fleet, fap_run, tmp_path, {"repo": str(git_repo.path), "environment": {"GREETING": "hello"}})

    assert result.exit_code == 0, result.output
    untouched()
    for host in HOSTS:
        release = fap_fleet.current_dir(host)
        assert (release / ".env").read_text() == "GREETING=hello\n" and not (release / ".env").is_symlink()
        assert (release / "REVISION").read_text() == git_repo.head() + "\n" and not (release / "REVISION").is_symlink()
        assert (release / "conf").is_symlink()  # the code's own link, left as shipped
