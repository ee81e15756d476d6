"""The test kit, :mod:`fapistrano.testing`: opt-in, addressable, and able to watch a host while fap runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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


WAITER = '''\
import os
import time

from fapistrano import Setting, hookimpl


@hookimpl
def fap_settings():
    return [Setting("waiter_go", "", "Wait in updated until this file exists.")]


@hookimpl
def fap_deploy_updated(ctx):
    open(os.path.join(ctx.release_path, "BUILDING"), "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(ctx.config["waiter_go"]) and time.monotonic() < deadline:
        time.sleep(0.05)
'''


def test_fap_start_watches_a_host_while_fap_runs(fap_local: Any, fap_start: Any) -> None:
    go = fap_local.root / "go"
    (fap_local.root / "waiter.py").write_text(WAITER)
    fap_local.write_deployfile({"plugins": ["waiter"], "waiter_go": str(go)})

    fap = fap_start(["deploy", "-s", "test"], cwd=fap_local.root)
    releases = fap.wait_until(lambda: [r for r in fap_local.releases() if (fap_local.path / "releases" / r / "BUILDING").exists()],
                              what="a release being built")

    assert fap.running and fap_local.current() is None
    go.touch()
    result = fap.wait()
    assert result.exit_code == 0, result.output
    assert fap_local.current() == releases[0]
    assert f"deployed release {releases[0]}" in result.stdout


def test_wait_until_says_when_fap_exited_first(fap_local: Any, fap_start: Any) -> None:
    fap_local.write_deployfile({"plugins": ["no_such_plugin"]})
    fap = fap_start(["deploy", "-s", "test"], cwd=fap_local.root)

    with pytest.raises(AssertionError) as failure:
        fap.wait_until(lambda: fap_local.current(), what="a switch", timeout=60)

    assert "fap exited 2 before a switch" in str(failure.value)
    assert "unknown plugin 'no_such_plugin'" in str(failure.value)


def test_the_fleet_takes_the_addresses_it_is_given(fap_run: Any, tmp_path: Path) -> None:
    from fapistrano.testing import Fleet, FleetUnavailable

    try:
        Fleet.check_machine()
    except FleetUnavailable as reason:
        pytest.skip(str(reason))
    with Fleet(["solo", "duo"], addresses=["127.0.77.9", "127.0.77.10"]) as fleet:
        assert {name: host.address for name, host in fleet.hosts.items()} == {"solo": "127.0.77.9", "duo": "127.0.77.10"}
        fleet.write_deployfile(tmp_path)
        result = fap_run(["check", "-s", "test"], cwd=tmp_path)
        assert result.exit_code == 0, result.output
        listening = subprocess.run(["ss", "-Htln"], capture_output=True, text=True, check=False).stdout
        assert f"127.0.77.9:{fleet.port}" in listening and f"127.0.77.10:{fleet.port}" in listening


@pytest.mark.parametrize("addresses, problem", [
    (["127.0.77.9"], "1 given for 2 hosts"),
    (["10.0.0.1", "127.0.0.2"], "'10.0.0.1' is not an IPv4 address in 127.0.0.0/8"),
    ({"trio": "127.0.0.2"}, "'trio' is not a host of this fleet"),
    (["127.0.0.2", "127.0.0.2"], "each host needs its own address"),
])
def test_wrong_fleet_addresses_are_refused_before_anything_starts(addresses: Any, problem: str) -> None:
    from fapistrano.testing import Fleet

    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        Fleet(["solo", "duo"], addresses=addresses)


def test_a_suite_chooses_the_session_fleets_addresses_in_its_conftest(tmp_path: Path) -> None:
    from fapistrano.testing import Fleet, FleetUnavailable

    try:
        Fleet.check_machine()
    except FleetUnavailable as reason:
        pytest.skip(str(reason))
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p fapistrano.testing\n")
    (tmp_path / "conftest.py").write_text(
        "import pytest\n\n\n@pytest.fixture(scope='session')\ndef fap_fleet_addresses():\n"
        "    return {'host1': '127.0.78.1', 'host2': '127.0.78.2', 'host3': '127.0.78.3'}\n"
    )
    (tmp_path / "test_addresses.py").write_text(
        "def test_addresses(fap_fleet):\n"
        "    assert [h.address for h in fap_fleet.hosts.values()] == ['127.0.78.1', '127.0.78.2', '127.0.78.3']\n"
    )

    result = _pytest(tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
