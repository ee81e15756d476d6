"""A three-host fleet with a good release live, and what each fault case checks afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fapistrano.testing import FapResult, Fleet, run_fap

HERE = Path(__file__).parent
SECRET = "database: production\n"


@dataclass
class Faulty:
    """The fleet, the deploy directory, and the release that was live before the fault."""

    fleet: Fleet
    directory: Path
    signals: Path  # a directory both fap and the hosts can see
    good: str

    def fap(self, *args: str, **kwargs: Any) -> FapResult:
        return run_fap(list(args), cwd=self.directory, **kwargs)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        environment = {**os.environ, "COLUMNS": "200"}
        return subprocess.Popen([sys.executable, "-m", "fapistrano", *args], cwd=self.directory, env=environment,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def block_args(self, phase: str) -> list[str]:
        """Settings that make every host wait in ``phase`` until :meth:`unblock`."""
        return ["--fault-block-phase", phase, "--fault-block-file", str(self.signals / "blocked"),
                "--fault-release-file", str(self.signals / "go")]

    def wait_blocked(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not (self.signals / "blocked").exists():
            assert time.monotonic() < deadline, "the run never reached the blocking phase"
            time.sleep(0.05)

    def wait_reported(self, process: subprocess.Popen[str], word: str, timeout: float = 30) -> None:
        """Read ``process``'s output until a line holding ``word``: the first signal has been handled."""
        deadline = time.monotonic() + timeout
        assert process.stdout is not None
        for line in process.stdout:
            if word in line:
                return
            assert time.monotonic() < deadline, f"fap never said {word!r}"
        raise AssertionError(f"fap ended without saying {word!r}")

    def unblock(self) -> None:
        (self.signals / "go").touch()

    def currents(self) -> dict[str, str | None]:
        return {host: self.fleet.current(host) for host in self.fleet.names}

    def releases(self) -> dict[str, list[str]]:
        return {host: self.fleet.releases(host) for host in self.fleet.names}

    def assert_untouched(self, hosts: list[str] | None = None) -> None:
        """``current`` on the good release, only it on disk, no lock, shared/ intact, no marker left."""
        for host in hosts or self.fleet.names:
            assert self.fleet.current(host) == self.good, host
            assert self.fleet.releases(host) == [self.good], host
            self.assert_clean(host)

    def assert_clean(self, host: str) -> None:
        app = self.fleet.app_dir(host)
        assert not self.fleet.locked(host), f"{host} still locked"
        assert (app / "shared" / "config" / "secret.yml").read_text() == SECRET, host
        assert not list((app / "releases").glob(".*.unfinished")), f"{host} has an unfinished marker"


@pytest.fixture
def faulty(fap_fleet: Fleet, tmp_path: Path) -> Faulty:
    shutil.copy(HERE / "faultplugin.py", tmp_path / "faultplugin.py")
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["faultplugin"], "linked_files": ["config/secret.yml"]})
    for host in fap_fleet.names:
        shared = fap_fleet.app_dir(host) / "shared" / "config"
        shared.mkdir(parents=True)
        (shared / "secret.yml").write_text(SECRET)
        subprocess.run(["chown", "-R", "deploy:deploy", str(fap_fleet.app_dir(host))], check=True)
    signals = Path(tempfile.mkdtemp(prefix="fap-signals-"))
    signals.chmod(0o777)
    result = run_fap(["deploy", "-s", "test"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    good = fap_fleet.current("host1")
    assert good and all(fap_fleet.current(h) == good for h in fap_fleet.names)
    yield Faulty(fap_fleet, tmp_path, signals, good)
    shutil.rmtree(signals, ignore_errors=True)
