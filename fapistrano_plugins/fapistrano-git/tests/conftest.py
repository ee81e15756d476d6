"""Real git repositories for the git plugin's tests, served as local paths and over ssh by a fleet host.

The fleet's hosts share this machine's ``/tmp`` (only ``/home/deploy/www`` is
their own), so a repository under a world-readable directory in ``/tmp`` is
a local path for every host, and ``ssh://deploy@host1/<that path>`` is the
same repository served by host1's sshd. Repositories belong to ``deploy``
(git refuses to serve a repository owned by someone else); the tests commit
to them as root with ``safe.directory`` set for those commands only.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

DEPLOY = "deploy"

# Commit as root in deploy's repositories without touching any global git config.
_GIT_ENV = {
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "safe.directory",
    "GIT_CONFIG_VALUE_0": "*",
    "GIT_AUTHOR_NAME": "Dev",
    "GIT_AUTHOR_EMAIL": "dev@example.com",
    "GIT_COMMITTER_NAME": "Dev",
    "GIT_COMMITTER_EMAIL": "dev@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def _chown_tree(path: Path) -> None:
    entry = pwd.getpwnam(DEPLOY)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


class GitRepo:
    """A repository (with a work tree) that the fleet's hosts can fetch from."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def git(self, *args: str) -> str:
        completed = subprocess.run(
            ["git", "-C", str(self.path), *args],
            env={**os.environ, **_GIT_ENV}, capture_output=True, text=True, check=False,
        )
        if completed.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {completed.stderr}")
        return completed.stdout.strip()

    def commit(self, files: Mapping[str, str], message: str = "change") -> str:
        """Write ``files`` (path -> text), commit them all; return the new sha."""
        for name, text in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        _chown_tree(self.path)
        return self.head()

    def head(self, rev: str = "HEAD") -> str:
        return self.git("rev-parse", f"{rev}^{{commit}}")

    def tag(self, name: str, rev: str = "HEAD") -> None:
        self.git("tag", "-a", name, "-m", f"release {name}", rev)
        _chown_tree(self.path)

    def branch(self, name: str, rev: str = "HEAD") -> None:
        self.git("branch", name, rev)
        _chown_tree(self.path)

    def files(self, rev: str = "HEAD", tree: str = "") -> set[str]:
        """Paths of the files in ``rev`` (under ``tree``, relative to it)."""
        spec = f"{rev}:{tree}" if tree else rev
        return set(self.git("ls-tree", "-r", "--name-only", spec).splitlines())


class GitServer:
    """A deploy-owned directory in /tmp holding repositories, and ssh access to them from the hosts."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ssh_dir = root / "ssh"
        self.count = 0

    def new_repo(self, name: str = "app", files: Mapping[str, str] | None = None) -> GitRepo:
        """A fresh repository with one commit on master."""
        self.count += 1
        path = self.root / f"{self.count:03d}" / name
        path.mkdir(parents=True)
        subprocess.run(["git", "init", "-q", "-b", "master", str(path)], check=True, env={**os.environ, **_GIT_ENV})
        repo = GitRepo(path)
        repo.commit(dict(files if files is not None else DEFAULT_FILES), "first")
        _chown_tree(self.root / f"{self.count:03d}")
        return repo

    def ssh_command(self, fleet_ssh_config: Path, counting: bool = False, aliases: Mapping[str, str] | None = None) -> str:
        """A ``git_ssh_command`` that reaches the fleet's hosts as deploy, from any host.

        The fleet's own ssh config (plus ``aliases``, see :func:`alias_ssh_config`),
        with its key copied where deploy can read it. With ``counting``, every
        ssh connection git opens is also logged to :attr:`ssh_log` (one line
        per connection: what git ran remotely).
        """
        self.ssh_dir.mkdir(exist_ok=True)
        text = fleet_ssh_config.read_text() + alias_ssh_config(fleet_ssh_config, aliases or {})
        keys = set(re.findall(r"^\s*IdentityFile\s+(\S+)", text, flags=re.M))
        for index, key in enumerate(sorted(keys)):
            copy = self.ssh_dir / f"id_{index}"
            shutil.copyfile(key, copy)
            copy.chmod(0o600)
            text = text.replace(key, str(copy))
        config = self.ssh_dir / "config"
        config.write_text(text + "\nHost *\n  BatchMode yes\n  ConnectTimeout 5\n")
        # Named ssh so that git knows it for OpenSSH (and does not probe it with -G).
        (self.ssh_dir / "counting").mkdir(exist_ok=True)
        wrapper = self.ssh_dir / "counting" / "ssh"
        wrapper.write_text(f'#!/bin/sh\necho "$*" >> {self.ssh_log}\nexec ssh "$@"\n')
        wrapper.chmod(0o755)
        _chown_tree(self.ssh_dir)
        program = str(wrapper) if counting else "ssh"
        return f"{program} -F {config}"

    def alias_ssh_config(self, fleet_ssh_config: Path, aliases: Mapping[str, str]) -> str:
        """Fleet hosts under other names, for fap's own ``ssh_config`` (see :func:`alias_ssh_config`)."""
        return alias_ssh_config(fleet_ssh_config, aliases)

    @property
    def ssh_log(self) -> Path:
        return self.ssh_dir / "connections.log"

    def ssh_connections(self) -> list[str]:
        return self.ssh_log.read_text().splitlines() if self.ssh_log.exists() else []


def alias_ssh_config(fleet_ssh_config: Path, aliases: Mapping[str, str]) -> str:
    """ssh config text naming fleet hosts by other names: ``{"web1.example.com": "host2"}``.

    Each alias gets a copy of its fleet host's block, so a deploy.yml written
    for real machine names reaches the fleet unchanged.
    """
    blocks: dict[str, str] = {}
    for block in re.split(r"^(?=Host )", fleet_ssh_config.read_text(), flags=re.M):
        if block.startswith("Host "):
            name, _, body = block.partition("\n")
            blocks[name.split()[1]] = body
    return "".join(f"\nHost {alias}\n{blocks[host]}" for alias, host in aliases.items())


DEFAULT_FILES = {
    "app.py": "print('hello')\n",
    "README.md": "# app\n",
    "web/index.html": "<h1>web</h1>\n",
    "web/static/site.css": "body {}\n",
    "worker/tasks.py": "TASKS = []\n",
}


@pytest.fixture(scope="session")
def git_server_session() -> Iterator[GitServer]:
    root = Path(tempfile.mkdtemp(prefix="fap-git-", dir="/tmp"))
    root.chmod(0o755)
    try:
        pwd.getpwnam(DEPLOY)
    except KeyError:
        from fapistrano.testing import ensure_deploy_user

        ensure_deploy_user()
    _chown_tree(root)
    yield GitServer(root)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def git_server(git_server_session: GitServer) -> GitServer:
    """Where tests make repositories; the ssh connection log starts empty."""
    git_server_session.ssh_log.unlink(missing_ok=True)
    return git_server_session


@pytest.fixture
def git_repo(git_server: GitServer) -> GitRepo:
    """A fresh repository with :data:`DEFAULT_FILES` committed on master."""
    return git_server.new_repo()
