"""A third-party plugin in its own distribution (tests/thirdparty/fapistrano-thirdparty), written only
from the public contract, installed with pip and found through its ``fapistrano`` entry point."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

HOSTS = ("host1", "host2", "host3")
SOURCE = Path(__file__).parent / "thirdparty" / "fapistrano-thirdparty"
DISTRIBUTION = "fapistrano-thirdparty"


def _can_build_without_isolation() -> bool:
    """setuptools builds wheels by itself from 70.1 on; before that it needs the wheel package."""
    try:
        version = tuple(int(part) for part in metadata.version("setuptools").split(".")[:2])
    except metadata.PackageNotFoundError:
        return False
    return version >= (70, 1) or importlib.util.find_spec("wheel") is not None


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args],
                          capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def thirdparty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The plugin pip-installed into this environment for the module; uninstalled afterwards."""
    if not _can_build_without_isolation():
        reason = "installing without build isolation needs setuptools>=70.1 or the wheel package"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    # Build from a copy: the build leaves build/ and *.egg-info next to the sources.
    source = tmp_path_factory.mktemp("thirdparty") / SOURCE.name
    shutil.copytree(SOURCE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    # --force-reinstall: a run killed before its teardown may have left it installed.
    installed = _pip("install", "--no-deps", "--no-build-isolation", "--force-reinstall", "--quiet", str(source))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    try:
        yield "thirdparty"
    finally:
        removed = _pip("uninstall", "--yes", "--quiet", DISTRIBUTION)
        assert removed.returncode == 0, removed.stdout + removed.stderr


def greeting(fleet: Any, host: str) -> str:
    return (fleet.current_dir(host) / "GREETING.txt").read_text()


def test_its_entry_point_is_installed(thirdparty: str, fap_run: Any, tmp_path: Path) -> None:
    # Asked in a fresh interpreter, as fap would see it.
    found = subprocess.run(
        [sys.executable, "-c", "from importlib import metadata; print([e.value for e in metadata.entry_points(group='fapistrano') if e.name == 'thirdparty'])"],
        capture_output=True, text=True, check=True,
    )
    assert found.stdout.strip() == "['fapistrano_thirdparty']"


def test_its_hooks_run_on_every_host(fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path, thirdparty: str) -> None:
    fap_fleet.write_deployfile(tmp_path, {"plugins": [thirdparty]})
    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    name = released(result)
    for host in HOSTS:
        assert greeting(fap_fleet, host) == f"hello from {host} in test\n"
        log = fap_fleet.app_dir(host) / "shared" / "thirdparty.log"
        assert log.read_text() == f"published {name} on {host}\n"
        assert f"{host} | updated | greeted {name}" in result.stdout


def test_its_setting_is_overridden_from_deploy_yml(fap_fleet: Any, fap_run: Any, tmp_path: Path, thirdparty: str) -> None:
    fap_fleet.write_deployfile(tmp_path, {
        "plugins": [thirdparty],
        "thirdparty_greeting": "from deploy.yml, %(role)s on %(host)s",
        "stage_role_configs": {"test": {"web": {"thirdparty_file": "HELLO"}}},
    })
    result = fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    for host in HOSTS:
        assert (fap_fleet.current_dir(host) / "HELLO").read_text() == f"from deploy.yml, web on {host}\n"


def test_its_setting_is_overridden_from_the_command_line(fap_fleet: Any, fap_run: Any, tmp_path: Path, thirdparty: str) -> None:
    fap_fleet.write_deployfile(tmp_path, {"plugins": [thirdparty], "thirdparty_greeting": "from deploy.yml"})
    result = fap_run(["deploy", "-s", "test", "-q", "--thirdparty-greeting", "from the command line; $(not run)"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    for host in HOSTS:
        assert greeting(fap_fleet, host) == "from the command line; $(not run)\n"


def test_its_1_0_settings_show_in_fap_config_with_origin_and_the_secret_masked(
        fap_fleet: Any, fap_run: Any, tmp_path: Path, thirdparty: str) -> None:
    fap_fleet.write_deployfile(tmp_path, {"plugins": [thirdparty]})
    result = fap_run(["config", "-s", "test", "--thirdparty-token", "s3cr3t-token"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split(None, 1)[1] for line in result.stdout.splitlines() if line.startswith("thirdparty_")}
    assert rows["thirdparty_file"].split() == ["GREETING.txt", "plugin", "default", "(thirdparty)"]
    assert rows["thirdparty_token"].split() == ["***", "command", "line"]
    assert "s3cr3t-token" not in result.output


def test_its_1_0_docs_and_secrets_show_in_fap_plugins(fap_fleet: Any, fap_run: Any, tmp_path: Path, thirdparty: str) -> None:
    fap_fleet.write_deployfile(tmp_path, {"plugins": [thirdparty]})
    result = fap_run(["plugins"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert "thirdparty_file: GREETING.txt  # The file, in the release, that gets the greeting." in result.stdout
    assert "thirdparty_token: ''  # Token of the greeting service. [secret]" in result.stdout


def test_its_secret_is_masked_in_a_deploy(fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path, thirdparty: str) -> None:
    fap_fleet.write_deployfile(tmp_path, {"plugins": [thirdparty]})
    result = fap_run(["deploy", "-s", "test", "--thirdparty-token", "s3cr3t-token"], cwd=tmp_path)
    released(result)
    assert "greeting service token: ***" in result.stdout
    assert "s3cr3t-token" not in result.output


def test_a_misspelt_plugin_setting_suggests_the_right_one(fap_fleet: Any, fap_run: Any, assert_error: Any, tmp_path: Path, thirdparty: str) -> None:
    fap_fleet.write_deployfile(tmp_path, {"plugins": [thirdparty]})
    result = fap_run(["deploy", "-s", "test", "--thirdparty-greting", "x"], cwd=tmp_path)
    assert_error(result, "unknown setting --thirdparty-greting", "did you mean '--thirdparty-greeting'")
    for host in HOSTS:
        assert fap_fleet.current(host) is None


def test_its_failed_hook_runs_on_every_host(fap_fleet: Any, fap_run: Any, tmp_path: Path, thirdparty: str, recorder: Any) -> None:
    fap_fleet.write_deployfile(tmp_path, recorder.settings(plugins=[thirdparty, recorder.name]))
    result = fap_run(["deploy", "-s", "test", "--recorder-fail-phase", "updated", "--recorder-fail-host", "host2"], cwd=tmp_path)
    assert result.exit_code == 1
    for host in HOSTS:
        log = (fap_fleet.app_dir(host) / "shared" / "thirdparty.log").read_text()
        assert log.startswith("failed ") and log.endswith(f" on {host}\n")
        assert fap_fleet.current(host) is None


def test_it_does_nothing_unless_deploy_yml_lists_it(fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path, thirdparty: str) -> None:
    fap_fleet.write_deployfile(tmp_path)
    released(fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path))
    for host in HOSTS:
        assert not (fap_fleet.current_dir(host) / "GREETING.txt").exists()
        assert not (fap_fleet.app_dir(host) / "shared" / "thirdparty.log").exists()
