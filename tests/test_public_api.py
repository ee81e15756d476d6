"""What a plugin imports comes from ``fapistrano`` itself, and the bundled plugins import nothing else of the core."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import fapistrano

REPO = Path(__file__).resolve().parents[1]
PLUGIN_SOURCES = sorted(
    path for path in (REPO / "fapistrano_plugins").glob("fapistrano-*/fapistrano_*/**/*.py")
)


def _core_imports(path: Path) -> list[tuple[str, str, int]]:
    """``(module, name, line)`` of every import from the ``fapistrano`` package in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and (node.module == "fapistrano" or node.module.startswith("fapistrano.")):
            found += [(node.module, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "", node.lineno) for alias in node.names if alias.name.startswith("fapistrano.")]
    return found


def test_config_error_and_the_run_types_are_public() -> None:
    from fapistrano import CommandFailed, ConfigError, FapError, RunOutcome, RunTarget

    assert issubclass(ConfigError, FapError) and ConfigError.exit_code == 2
    assert CommandFailed.exit_code == 1
    assert RunOutcome.OK == "ok" and RunTarget.__module__ == "fapistrano.run"
    assert {"ConfigError", "RunOutcome", "RunTarget"} <= set(fapistrano.__all__)


def test_the_bundled_plugins_are_found() -> None:
    assert {path.parent.name for path in PLUGIN_SOURCES} >= {
        "fapistrano_git", "fapistrano_curl", "fapistrano_virtualenv", "fapistrano_supervisorctl", "fapistrano_slack",
        "fapistrano_upload",
    }


@pytest.mark.parametrize("path", PLUGIN_SOURCES, ids=lambda p: str(p.relative_to(REPO / "fapistrano_plugins")))
def test_a_bundled_plugin_imports_only_the_public_api(path: Path) -> None:
    for module, name, line in _core_imports(path):
        where = f"{path.relative_to(REPO)}:{line}"
        assert module == "fapistrano", f"{where}: imports {module}; a plugin imports only from fapistrano"
        assert name in fapistrano.__all__, f"{where}: fapistrano.{name} is not in fapistrano.__all__"


@pytest.mark.parametrize("directory", sorted((REPO / "fapistrano_plugins").glob("fapistrano-*")), ids=lambda p: p.name)
def test_a_bundled_plugin_requires_the_core_whose_api_it_imports(directory: Path) -> None:
    import configparser

    parser = configparser.ConfigParser()
    parser.read(directory / "setup.cfg")
    requires = [line.strip() for line in parser.get("options", "install_requires").splitlines() if line.strip()]

    core = [r for r in requires if r.split(">")[0].split("=")[0].strip() == "fapistrano"]
    assert core == ["fapistrano>=1.1"], f"{directory.name}/setup.cfg: {requires}"
    assert fapistrano.__version__ == "1.1.0"


@pytest.mark.parametrize("directory", [REPO, *sorted((REPO / "fapistrano_plugins").glob("fapistrano-*"))],
                         ids=lambda p: p.name)
def test_a_distribution_that_says_mit_ships_the_mit_license(directory: Path) -> None:
    import configparser

    parser = configparser.ConfigParser()
    parser.read(directory / "setup.cfg")

    assert parser.get("metadata", "license") == "MIT"
    assert parser.get("metadata", "license_files") == "LICENSE"
    assert (directory / "LICENSE").read_text().startswith("MIT License\n")
