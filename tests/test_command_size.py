"""No command fap runs has a size limit: Linux caps one argument at 128 KiB, fap never passes a script as one."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fapistrano.testing import LocalTarget

# Over the 128 KiB a single argument may hold.
BIG_VALUE = "v" * 300_000


@pytest.fixture
def memory_target() -> Iterator[LocalTarget]:
    """A local target in memory when the machine has /dev/shm: the time measured is fap's, not the disk's."""
    root = Path(tempfile.mkdtemp(prefix="fap-5000-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    yield LocalTarget(root)
    shutil.rmtree(root, ignore_errors=True)


def test_cleanup_of_5000_old_releases_switches_and_finishes(memory_target: LocalTarget, fap_run: Any, released: Any) -> None:
    # Capistrano's "Cleanup when there are more releases than arguments can handle".
    fap_local = memory_target
    fap_local.write_deployfile({"keep_releases": 3})
    releases = fap_local.path / "releases"
    releases.mkdir(parents=True)
    old = [f"200101-{n // 3600:02d}{n // 60 % 60:02d}{n % 60:02d}" for n in range(5000)]
    for name in old:
        (releases / name).mkdir()
    started = time.monotonic()
    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)
    took = time.monotonic() - started
    assert result.exit_code == 0, result.output
    name = released(result)
    assert fap_local.current() == name
    assert fap_local.releases() == [*old[-2:], name]
    assert "removed 4998 old release(s)" in result.stdout
    # Removing 4998 directories takes a fraction of a second in memory; a process per release would take many.
    assert took < 10, took


def test_environment_value_of_300_kb_is_written_over_ssh(fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path) -> None:
    fap_fleet.write_deployfile(tmp_path, {"environment": {"BIG": BIG_VALUE, "SMALL": "s"}})
    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    name = released(result)
    for host in fap_fleet.names:
        assert fap_fleet.current(host) == name
        dotenv = (fap_fleet.app_dir(host) / "releases" / name / ".env").read_text()
        assert dotenv == f"BIG={BIG_VALUE}\nSMALL=s\n"


def test_long_linked_files_list_over_ssh(fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path) -> None:
    files = [f"config/{'f' * 100}-{n}.yml" for n in range(1500)]  # ~240 KB of paths, each checked and linked
    for host in fap_fleet.names:
        shared = fap_fleet.app_dir(host) / "shared"
        (shared / "config").mkdir(parents=True)
        for name in files:
            (shared / name).touch()
        subprocess.run(["chown", "-R", "deploy:deploy", str(fap_fleet.app_dir(host))], check=True)
    fap_fleet.write_deployfile(tmp_path, {"linked_files": files})
    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    name = released(result)
    release = fap_fleet.app_dir("host2") / "releases" / name
    assert (release / files[-1]).is_symlink()
    assert len(list((release / "config").iterdir())) == len(files)
