"""The live view as the operator sees it: fap runs in a real tmux pane, read with capture-pane.

Three hosts, one slow: its build waits for a file the test creates, so the test
reads the pane while the slow host is mid-phase, for as long as it needs.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_commands_support import install_demo_plugin

SPINNER = re.compile("[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]")

SLOW_BUILD = '''\
"""Builds assets; the host named in slow_host waits for the file 'go' in the app's directory first."""

import shlex

from fapistrano import hookimpl


@hookimpl
def fap_deploy_updated(ctx):
    if ctx.host == ctx.config["slow_host"]:
        go = shlex.quote(ctx.config["path"] + "/go")
        ctx.run("echo building assets; while [ ! -e " + go + " ]; do sleep 0.05; done")
    ctx.run("echo assets built into " + shlex.quote(ctx.release_path))
'''


class Pane:
    """A tmux server of our own (its own socket) with one pane running one command."""

    def __init__(self, socket: Path, command: str, cwd: Path, env: dict[str, str], width: int = 150) -> None:
        if shutil.which("tmux") is None:
            if os.environ.get("CI") == "true":
                pytest.fail("CI=true but tmux is not installed")
            pytest.skip("tmux is not installed")
        self.socket = socket
        self.done = cwd / "exit-code"
        exports = " ".join(f"{name}={shlex.quote(value)}" for name, value in env.items())
        script = f"cd {shlex.quote(str(cwd))} && env -u COLUMNS -u LINES {exports} {command}; echo $? > {shlex.quote(str(self.done))}; sleep 600"
        self._tmux("new-session", "-d", "-x", str(width), "-y", "50", script)

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", str(self.socket), *args], capture_output=True, text=True, check=True).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-J")

    def wait_for(self, pattern: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if re.search(pattern, screen, re.MULTILINE):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} never showed; the pane:\n{self.screen()}")

    def exit_code(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.done.exists() and self.done.read_text().strip():
                return int(self.done.read_text())
            time.sleep(0.1)
        raise AssertionError(f"fap did not finish; the pane:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "-S", str(self.socket), "kill-server"], capture_output=True, check=False)


@pytest.fixture
def pane(tmp_path):
    panes: list[Pane] = []

    def start(cwd: Path, args: list[str], env: dict[str, str], width: int = 150) -> Pane:
        command = " ".join(shlex.quote(a) for a in (sys.executable, "-m", "fapistrano", *args))
        panes.append(Pane(tmp_path / "tmux.sock", command, cwd, env, width))
        return panes[-1]

    yield start
    for each in panes:
        each.close()


def _live_row(screen: str, host: str) -> list[str]:
    """The live view's row for ``host``: mark, phase, elapsed, last output."""
    for line in screen.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] == host and len(cells) >= 4 and re.fullmatch(r"\d+\.\ds", cells[3]):
            return cells[1:]
    raise AssertionError(f"no live row for {host} in:\n{screen}")


def test_a_slow_host_stands_out_among_hosts_that_are_done(fap_fleet, pane, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "slow_build.py").write_text(SLOW_BUILD)
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["slow_build"], "slow_host": "host2"})

    view = pane(tmp_path, ["deploy", "-s", "test"], {"PYTHONPATH": str(site)})
    view.wait_for(r"^\s*host3 .*waiting for host2")
    first = view.screen()
    time.sleep(0.5)
    later = view.screen()

    # The slow host: still spinning, in 'updated', with the plugin that is working and its last output.
    slow, slow_later = _live_row(first, "host2"), _live_row(later, "host2")
    assert SPINNER.fullmatch(slow[0]) and slow[1] == "updated: slow_build"
    assert slow[3] == "building assets"
    assert float(slow_later[2][:-1]) > float(slow[2][:-1])  # its clock runs
    for host in ("host1", "host3"):
        done, done_later = _live_row(first, host), _live_row(later, host)
        assert done[:2] == ["✓", "updated"] and done[3] == "done, waiting for host2"
        assert done_later[2] == done[2]  # its clock stopped when it finished the phase
    (fap_fleet.app_dir("host2") / "go").touch()

    assert view.exit_code() == 0, view.screen()
    end = view.screen()
    assert not SPINNER.search(end)
    # One table at the end: the summary; the live view is gone.
    assert "elapsed" not in end and "last output" not in end
    assert len(re.findall(r"┃ host ", end)) == 1
    for host in fap_fleet.hosts:
        assert re.search(rf"^│ {host} +│ test/web │ ok +│ {fap_fleet.current(host)} │", end, re.MULTILINE), end


LONG_LINE = '''\
import shlex

from fapistrano import hookimpl


@hookimpl
def fap_deploy_updated(ctx):
    go = shlex.quote(ctx.config["path"] + "/go")
    ctx.run("echo assets built into " + shlex.quote(ctx.release_path) + "; while [ ! -e " + go + " ]; do sleep 0.05; done")
'''


def test_last_output_keeps_the_end_of_a_long_line(fap_fleet, pane, tmp_path):
    # The release directory ends the line: a narrow column keeps it, not the path's start.
    site = tmp_path / "site"
    site.mkdir()
    (site / "long_line.py").write_text(LONG_LINE)
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["long_line"]})

    view = pane(tmp_path, ["deploy", "-s", "test"], {"PYTHONPATH": str(site)}, width=72)
    screen = view.wait_for(r"^host3 .*\d{6}-\d{6}\s*$")
    for host in fap_fleet.hosts:
        (fap_fleet.app_dir(host) / "go").touch()
    assert view.exit_code() == 0, view.screen()

    release = fap_fleet.current("host1")
    for host in fap_fleet.hosts:
        row = next(line for line in screen.splitlines() if line.startswith(host + " ")).rstrip()
        assert len(row) <= 72 and row.endswith(f"/releases/{release}"), row
        assert "…" in row and "assets built into /home" not in row  # cut from the left


def test_failed_run_shows_which_host_failed_and_one_table(fap_fleet, pane, tmp_path):
    env = install_demo_plugin(tmp_path / "site")
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["fapistrano.demo"], "demo_fail_host": "host2"})

    view = pane(tmp_path, ["deploy", "-s", "test"], env)

    assert view.exit_code() == 1, view.screen()
    end = view.screen()
    assert not SPINNER.search(end)
    assert "host2 | updating | fapistrano.demo: no space left on device [Errno 28]" in end
    assert "last output" not in end and len(re.findall(r"┃ host ", end)) == 1
    assert re.search(r"^│ host2 +│ test/web │ failed +│ +│ unchanged │", end, re.MULTILINE), end
    for host in ("host1", "host3"):
        assert re.search(rf"^│ {host} +│ test/web │ skipped +│", end, re.MULTILINE), end


def test_the_health_check_has_its_own_row_with_the_attempt_and_its_last_output(fap_fleet, pane, tmp_path):
    # The check fails until the test creates 'go': the view must show it at work, not '✓ published … done'.
    check = "if [ -e ../../go ]; then echo up; else echo not answering yet; exit 1; fi"  # run in current: the app's directory
    fap_fleet.write_deployfile(tmp_path, {"healthcheck": check, "healthcheck_interval": 0.2, "healthcheck_timeout": 60})

    view = pane(tmp_path, ["deploy", "-s", "test"], {})
    screen = view.wait_for(r"^\s*host2 .*healthcheck: attempt [3-9]")
    row = _live_row(screen, "host2")
    assert SPINNER.fullmatch(row[0]) and re.fullmatch(r"healthcheck: attempt \d+", row[1]), screen
    assert row[3] == "not answering yet", screen
    later = _live_row(view.wait_for(r"^\s*host2 .*healthcheck: attempt (\d\d|[5-9])"), "host2")
    assert int(later[1].split()[-1]) > int(row[1].split()[-1])  # the count goes up with each attempt
    for host in fap_fleet.hosts:
        (fap_fleet.app_dir(host) / "go").touch()

    assert view.exit_code() == 0, view.screen()
    end = view.screen()
    assert "healthy" in end and not SPINNER.search(end)


def test_the_summary_time_is_the_whole_run_with_a_failed_health_check(fap_fleet, fap_run, pane, tmp_path):
    # The check fails for ~3 s and the fleet is switched back: each host's time covers it, not only the phases before it.
    # A release to go back to first: a first deploy whose check fails has nothing to switch back to (exit 1).
    fap_fleet.write_deployfile(tmp_path)
    assert fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path).exit_code == 0
    fap_fleet.write_deployfile(tmp_path, {"healthcheck": "echo down; exit 1", "healthcheck_interval": 0.5,
                                          "healthcheck_timeout": 3})
    started = time.monotonic()
    view = pane(tmp_path, ["deploy", "-s", "test"], {})
    assert view.exit_code() == 4, view.screen()
    took = time.monotonic() - started
    end = view.screen()
    times = [float(t) for t in re.findall(r"│ (\d+\.\d)s +│", end)]
    assert len(times) == 3, end
    # The check alone takes its 3 s timeout (give or take the rows' rounding); the phases before it take well under 1 s.
    assert all(2.0 <= t <= took for t in times), (times, took, end)


REFUSER = '''\
from fapistrano import FapError, hookimpl


@hookimpl
def fap_run_starting(run):
    raise FapError("deploys are frozen for the release party")
'''


def test_a_run_refused_before_it_starts_shows_no_host_as_ok(fap_fleet, pane, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "refuser.py").write_text(REFUSER)
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["refuser"]})

    view = pane(tmp_path, ["deploy", "-s", "test"], {"PYTHONPATH": str(site)})

    assert view.exit_code() == 1, view.screen()
    end = view.screen()
    assert "deploys are frozen for the release party" in end
    assert "fap deploy: FAILED" in end
    for host in fap_fleet.hosts:
        assert re.search(rf"^│ {host} +│ test/web │ skipped +│ +│ unchanged │", end, re.MULTILINE), end
    assert not re.search(r"│ ok ", end), end
    assert all(fap_fleet.current(host) is None for host in fap_fleet.hosts)


FETCH_AND_BUILD = '''\
"""Two plugins' work in one module's shape: fetch runs in updating, build (a long install) in updated."""

import shlex

from fapistrano import hookimpl


@hookimpl
def fap_deploy_updating(ctx):
    ctx.run("echo fetched the code")
'''

BUILD = '''\
import shlex

from fapistrano import hookimpl


@hookimpl
def fap_deploy_updated(ctx):
    go = shlex.quote(ctx.config["path"] + "/go")
    ctx.run("echo Collecting flask\\nwhile [ ! -e " + go + " ]; do sleep 0.05; done", cwd=ctx.release_path,
            env={"PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
'''


def test_ctrl_c_during_a_plugins_command_is_one_line_naming_that_plugin(fap_fleet, pane, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "fetch.py").write_text(FETCH_AND_BUILD)
    (site / "build.py").write_text(BUILD)
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["fetch", "build"]})

    view = pane(tmp_path, ["deploy", "-s", "test"], {"PYTHONPATH": str(site)})
    screen = view.wait_for(r"^host3 .*Collecting flask")
    for host in fap_fleet.hosts:
        assert _live_row(screen, host)[1] == "updated: build", screen  # the plugin at work, not the one before it
    view._tmux("send-keys", "C-c")

    assert view.exit_code() == 130, view.screen()
    end = view.screen()
    assert "while [" not in end and "PIP_NO_INPUT" not in end and "sleep 0.05" not in end, end  # no shell script
    assert "fetch" not in end.replace("fetched", ""), end
    for host in fap_fleet.hosts:  # one line per host, naming the plugin whose command was stopped
        said = [line for line in end.splitlines() if line.startswith(f"{host} | ")]
        assert said == [f"{host} | updated | interrupted: build: command killed (signal 9)"], end
    # The last word names it too, once.
    assert [line for line in end.splitlines() if line.startswith("fap: error:")] == [
        "fap: error: interrupted in updated while build was running"], end
    assert all(fap_fleet.current(host) is None for host in fap_fleet.hosts)


def test_a_pause_between_batches_is_counted_down_under_the_rows(fap_fleet, pane, tmp_path):
    fap_fleet.write_deployfile(tmp_path, {"batch_size": [1, "100%"], "batch_pause": 30})

    view = pane(tmp_path, ["deploy", "-s", "test"], {})
    first = view.wait_for(r"next batch in \d+s", timeout=90)
    seconds = int(re.search(r"next batch in (\d+)s", first).group(1))
    later = view.wait_for(rf"next batch in (?!{seconds}s)\d+s")
    assert int(re.search(r"next batch in (\d+)s", later).group(1)) < seconds, later  # it counts down
    assert "(Ctrl-C stops the run)" in later
    view._tmux("send-keys", "C-c")

    assert view.exit_code() == 130, view.screen()
    end = view.screen()
    assert "next batch in" not in end, end  # the live view is gone with the run
    assert fap_fleet.current("host1") and not fap_fleet.current("host2")
