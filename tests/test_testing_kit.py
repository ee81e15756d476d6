"""The test kit, :mod:`fapistrano.testing`: opt-in, addressable, and able to watch a host while fap runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

KIT_USER = '''\
import sys


def test_the_kit_is_here(fap_run):
    assert "fapistrano.testing" in sys.modules
    assert fap_run(["--version"]).exit_code == 0


def test_nothing_of_fap_is_loaded_otherwise(request):
    enabled = request.config.getoption("plugins") or []
    assert ("fapistrano.testing" in sys.modules) == ("fapistrano.testing" in enabled)
'''


def _pytest(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=directory,
                          capture_output=True, text=True, check=False, timeout=120)


def test_the_kit_is_not_loaded_into_a_pytest_session_that_does_not_ask_for_it(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_other_project.py").write_text(KIT_USER)

    result = _pytest(tmp_path, "test_other_project.py::test_nothing_of_fap_is_loaded_otherwise")
    assert result.returncode == 0, result.stdout + result.stderr

    result = _pytest(tmp_path, "test_other_project.py::test_the_kit_is_here")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "fixture 'fap_run' not found" in result.stdout


def test_a_suite_enables_the_kit_with_dash_p(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p fapistrano.testing\n")
    (tmp_path / "test_plugin.py").write_text(KIT_USER)

    result = _pytest(tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
