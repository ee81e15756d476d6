"""Fixtures for the virtualenv plugin's fleet tests: real wheels, made here, with no network.

The fleet's hosts run commands as ``deploy`` and share this machine's
``/tmp`` (only ``/home/deploy/www`` is their own), so wheels and the app's
source go into world-readable directories under ``/tmp``; pytest's own
``tmp_path`` is private to root.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from virtualenv_wheels import greeting_wheel, wheel_from_installed, world_readable_dir, write_wheel

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def wheelhouse() -> Iterator[Path]:
    """A --find-links directory: fapdemo-words 1.0, fapdemo-greeting 1.0 and 2.0, and click."""
    directory = world_readable_dir("fap-venv-wheels-")
    write_wheel(directory, "fapdemo-words", "1.0", {"fapdemo_words/__init__.py": 'WORD = "Hello"\n'})
    greeting_wheel(directory, "1.0")
    greeting_wheel(directory, "2.0")
    wheel_from_installed(directory, "click")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def uv_binary() -> Iterator[str]:
    """A path to uv that the fleet's ``deploy`` user can run (uv from PyPI: ``pip install uv``).

    The fleet's hosts share this machine's ``/tmp``: the binary is copied into
    a world-readable directory there, as a host would have it installed.
    Without uv the tests that need it are skipped (fail under CI, which installs it).
    """
    found = shutil.which("uv")
    if found is None:
        try:
            import uv  # the PyPI package ships the binary

            found = uv.find_uv_bin()
        except (ImportError, FileNotFoundError):
            found = None
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("uv is not installed (pip install uv)")
        pytest.skip("uv is not installed (pip install uv)")
    directory = world_readable_dir("fap-venv-uv-")
    binary = directory / "uv"
    shutil.copy(found, binary)
    binary.chmod(0o755)
    yield str(binary)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def app_source() -> Iterator[Path]:
    """An empty, world-readable directory for the application's files."""
    directory = world_readable_dir("fap-venv-app-")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def write_app(app_source: Path) -> Any:
    """``write_app(requirements, **files)``: (re)write the application the next deploy copies."""

    def write(requirements: str | None, **files: str) -> Path:
        for child in app_source.iterdir():
            child.unlink()
        if requirements is not None:
            (app_source / "requirements.txt").write_text(requirements)
        for name, text in files.items():
            (app_source / name).write_text(text)
        for child in app_source.iterdir():
            child.chmod(0o644)
        return app_source

    return write


@pytest.fixture
def venv_deployfile(fap_fleet: Any, tmp_path: Path, app_source: Path, wheelhouse: Path) -> Any:
    """``venv_deployfile(settings, hosts=None)``: a fleet deploy.yml copying ``app_source`` and building its venv."""
    shutil.copy(HERE / "venv_app_source.py", tmp_path / "venv_app_source.py")

    def write(settings: Mapping[str, Any] | None = None, hosts: list[str] | None = None) -> Path:
        extra = {
            "plugins": ["venv_app_source", "fapistrano.virtualenv"],
            "venv_app_source": str(app_source),
            "virtualenv_pip_options": ["--no-index", "--find-links", str(wheelhouse)],
            **(settings or {}),
        }
        return fap_fleet.write_deployfile(tmp_path, extra, hosts=hosts)

    return write
