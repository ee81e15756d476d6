"""``ssh_persist``'s values and fap's private directory for the connections it keeps up."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fapistrano.connections import UnsafeDirectory, control_directory, parse_duration, private_directory


@pytest.fixture
def short() -> Iterator[Path]:
    """A directory with a short path: ssh's sockets go under it (a unix socket's path is short)."""
    directory = Path(tempfile.mkdtemp(prefix="fapc-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_a_runtime_directory_too_long_for_sockets_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / ("x" * 60)))
    with pytest.raises(UnsafeDirectory, match="too long a path for ssh's sockets"):
        private_directory()


@pytest.mark.parametrize(("value", "seconds"), [
    ("60s", 60), ("90", 90), (90, 90), ("5m", 300), ("1h", 3600), ("1.5s", 1.5), (0, 0), ("0", 0),
])
def test_ssh_persist_reads_seconds_minutes_and_hours(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["soon", "-1", "5 days", "", True, -3])
def test_ssh_persist_refuses_what_is_no_duration(value: object) -> None:
    with pytest.raises(ValueError, match="expected a duration such as 60s, 5m or 0"):
        parse_duration(value)


def test_the_private_directory_is_made_for_this_user_alone(short: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(short))
    made = private_directory()
    assert made == str(short / "fap")
    info = os.lstat(made)
    assert info.st_uid == os.getuid() and info.st_mode & 0o777 == 0o700
    assert control_directory(60) == (made, 60, "")  # kept: not a directory of the run's own


def test_a_symlink_in_place_of_the_private_directory_is_refused(short: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (short / "elsewhere").mkdir(mode=0o700)
    (short / "fap").symlink_to(short / "elsewhere")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(short))
    with pytest.raises(UnsafeDirectory, match="is not a directory"):
        private_directory()
    directory, persist, warning = control_directory(60)
    try:
        assert persist == 0 and directory != str(short / "fap")
        assert warning.startswith(f"ssh_persist: {short / 'fap'} is not a directory")
    finally:
        os.rmdir(directory)


def test_ssh_persist_0_uses_a_directory_of_the_runs_own(short: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(short))
    directory, persist, warning = control_directory(0)
    try:
        assert (persist, warning) == (0, "") and not (short / "fap").exists()
    finally:
        os.rmdir(directory)
