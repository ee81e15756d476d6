"""What fap prints and exits with when it is signalled early, cannot write its event log,
a command fails (``CommandFailed``), or ``fap once``'s command fails.

These run against a local target (``connection: local``): no root and no SSH needed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

#: Delivers ``signal`` to fap itself the moment it imports ``module``: at a known point of its start, every time.
SIGNAL_ON_IMPORT = '''
import importlib.abc, os, signal, sys

class _SignalOnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == os.environ["FAPTEST_MODULE"] and not getattr(self, "sent", False):
            self.sent = True
            os.kill(os.getpid(), getattr(signal, os.environ["FAPTEST_SIGNAL"]))
        return None

sys.meta_path.insert(0, _SignalOnImport())
'''


def fap_signalled(directory: Path, module: str, sent: str, *args: str) -> subprocess.CompletedProcess[str]:
    hook = directory / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(SIGNAL_ON_IMPORT)
    environment = {**os.environ, "PYTHONPATH": str(hook), "FAPTEST_MODULE": module, "FAPTEST_SIGNAL": sent}
    return subprocess.run([sys.executable, "-m", "fapistrano", *args], cwd=directory, env=environment,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(("sent", "code", "said"), [("SIGINT", 130, "fap: interrupted"), ("SIGTERM", 143, "fap: terminated")])
def test_a_signal_while_fap_is_still_importing_exits_quietly(fap_local: Any, sent: str, code: int, said: str) -> None:
    fap_local.write_deployfile()
    result = fap_signalled(fap_local.root, "click", sent, "deploy", "-s", "test")

    assert result.returncode == code, result.stdout + result.stderr
    assert result.stderr.strip() == said
    assert fap_local.current() is None


@pytest.mark.parametrize(("sent", "code", "said"), [("SIGINT", 130, "fap: aborted"), ("SIGTERM", 143, "fap: terminated")])
def test_a_signal_while_fap_reads_deploy_yml_exits_quietly(fap_local: Any, sent: str, code: int, said: str) -> None:
    fap_local.write_deployfile()
    result = fap_signalled(fap_local.root, "ruamel.yaml", sent, "deploy", "-s", "test")

    assert result.returncode == code, result.stdout + result.stderr
    assert result.stderr.strip() == said
    assert fap_local.current() is None


def test_an_event_log_on_a_full_disk_is_a_warning_and_the_deploy_goes_on(fap_local: Any, fap_run: Any) -> None:
    fap_local.write_deployfile()
    result = fap_run(["deploy", "-s", "test", "--log-json", "/dev/full"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    assert "fap: warning: --log-json /dev/full: cannot write: No space left on device; the run goes on without the event log" \
        in result.stderr
    assert result.stderr.count("--log-json") == 1
    assert "Traceback" not in result.output
    assert fap_local.current() is not None
    assert not (fap_local.path / ".fap-lock").exists()


def test_an_event_log_whose_reader_left_is_a_warning_and_the_deploy_goes_on(fap_local: Any, fap_run: Any, tmp_path: Path) -> None:
    fap_local.write_deployfile()
    fifo = tmp_path / "events"
    os.mkfifo(fifo)
    # Reads the first line, then leaves: the next write finds no reader.
    reader = subprocess.Popen(["head", "-n", "1", str(fifo)], stdout=subprocess.PIPE, text=True)
    result = fap_run(["deploy", "-s", "test", "--log-json", str(fifo)], cwd=fap_local.root)
    first = reader.communicate(timeout=30)[0]

    assert result.exit_code == 0, result.output
    assert json.loads(first)["kind"] == "run"
    assert f"fap: warning: --log-json {fifo}: cannot write: Broken pipe" in result.stderr
    assert "Traceback" not in result.output
    assert fap_local.current() is not None
    assert not (fap_local.path / ".fap-lock").exists()


def test_an_event_log_that_is_a_directory_is_bad_input_in_one_line(fap_local: Any, fap_run: Any, tmp_path: Path) -> None:
    fap_local.write_deployfile()
    result = fap_run(["deploy", "-s", "test", "--log-json", str(tmp_path)], cwd=fap_local.root)

    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [f"fap: error: --log-json {tmp_path}: Is a directory"]
    assert fap_local.releases() == [] and not (fap_local.path / ".fap-lock").exists()


def test_an_event_log_fifo_with_no_reader_is_bad_input_and_does_not_hang(fap_local: Any, fap_run: Any, tmp_path: Path) -> None:
    fap_local.write_deployfile()
    fifo = tmp_path / "events"
    os.mkfifo(fifo)

    result = fap_run(["deploy", "-s", "test", "--log-json", str(fifo)], cwd=fap_local.root, timeout=20)

    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [
        f"fap: error: --log-json {fifo}: a FIFO that no process reads; start its reader first"]
    assert result.duration < 10, result.duration
    assert fap_local.releases() == [] and not (fap_local.path / ".fap-lock").exists()


PLUGIN = '''
import json

from fapistrano import CommandFailed, hookimpl


@hookimpl
def fap_deploy_updated(ctx):
    try:
        ctx.run("echo compiling; echo 'error: module shop.models not found'; echo 'a warning' >&2; exit 2")
    except CommandFailed as failure:
        seen = {"status": failure.status, "returncode": failure.returncode, "exit_code": failure.exit_code,
                "stdout": failure.stdout, "stderr": failure.stderr, "command": failure.command, "message": str(failure)}
        with open(ctx.config["seen_file"], "w") as out:
            json.dump(seen, out)
        raise
'''


STEP = '''
from fapistrano import hookimpl


@hookimpl
def fap_defaults():
    return {"step_command": ""}


@hookimpl
def fap_deploy_updated(ctx):
    ctx.run(ctx.config["step_command"])
'''


def with_failing_step(fap_local: Any, command: str) -> None:
    (fap_local.root / "step.py").write_text(STEP)
    fap_local.write_deployfile({"plugins": ["step"], "step_command": command})


def test_command_failed_carries_the_status_both_streams_and_leads_with_the_cause(fap_local: Any, fap_run: Any) -> None:
    (fap_local.root / "catching.py").write_text(PLUGIN)
    seen_file = fap_local.root / "seen.json"
    fap_local.write_deployfile({"plugins": ["catching"], "seen_file": str(seen_file)})
    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 1, result.output
    seen = json.loads(seen_file.read_text())
    assert seen["status"] == seen["returncode"] == 2
    assert seen["exit_code"] == 1  # fap's own exit status, as for every FapError
    assert seen["stdout"] == "compiling\nerror: module shop.models not found\n"
    assert seen["stderr"] == "a warning\n"
    assert seen["command"].startswith("echo compiling;")
    assert seen["message"] == "localhost: a warning (command exited 2)"


def test_command_failed_without_stderr_leads_with_stdout_and_keeps_the_last_lines(fap_local: Any, fap_run: Any) -> None:
    lines = "".join(f"echo line{n}; " for n in range(80))
    with_failing_step(fap_local, lines + "echo 'error: no such file: settings.py'; exit 3")
    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 1, result.output
    assert "localhost: updated: step: line78 | line79 | error: no such file: settings.py (command exited 3)" in result.stderr
    from fapistrano import CommandFailed  # exported by the package, for plugins

    failure = CommandFailed("web1", "make", 3, "", "".join(f"line{n}\n" for n in range(80)))
    assert failure.stdout.splitlines() == [f"line{n}" for n in range(30, 80)]
    assert failure.stderr == failure.stdout  # as in 1.0: the output is in .stderr when stderr was empty


def test_once_exits_1_when_the_command_fails_and_prints_each_hosts_status(fap_local: Any, fap_run: Any) -> None:
    fap_local.write_deployfile()
    assert fap_run(["deploy", "-s", "test"], cwd=fap_local.root).exit_code == 0

    for status in (2, 3, 130):
        failed = fap_run(["once", "-s", "test", "-c", f"exit {status}"], cwd=fap_local.root)
        assert failed.exit_code == 1, failed.output
        assert f"localhost | once | command exited {status}" in failed.stdout

    ok = fap_run(["once", "-s", "test", "-c", "true"], cwd=fap_local.root)
    assert ok.exit_code == 0, ok.output
    assert "localhost | once | command exited 0" in ok.stdout


def test_the_summary_says_current_is_unchanged_after_a_failure_before_the_switch(fap_local: Any, fap_run: Any) -> None:
    fap_local.write_deployfile()
    assert fap_run(["deploy", "-s", "test"], cwd=fap_local.root).exit_code == 0
    good = fap_local.current()
    with_failing_step(fap_local, "echo 'pip: no matching distribution' >&2; exit 1")
    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 1
    assert fap_local.current() == good
    assert textwrap.dedent("""\
        fap: error: localhost: updated: step: pip: no matching distribution (command exited 1)
        fap: nothing changed: the new release was removed, current is unchanged on every host
        """) == result.stderr
    assert re.search(r"^localhost +test/web +failed +- +unchanged ", result.stdout, re.MULTILINE), result.stdout


def test_sigterm_during_fap_once_kills_the_command_and_exits_143(fap_local: Any, fap_run: Any, tmp_path: Path) -> None:
    fap_local.write_deployfile()
    assert fap_run(["deploy", "-s", "test"], cwd=fap_local.root).exit_code == 0
    started = tmp_path / "started"
    command = f"touch {started}; sleep 37.5"
    process = subprocess.Popen([sys.executable, "-m", "fapistrano", "once", "-s", "test", "-c", command], cwd=fap_local.root,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not started.exists():
        assert time.monotonic() < deadline and process.poll() is None, "the command never started"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=30)

    assert process.returncode == 143, stdout + stderr
    assert "terminated (SIGTERM)" in stdout
    assert "Traceback" not in stdout + stderr
    assert subprocess.run(["pgrep", "-f", "sleep 37.5"], capture_output=True, check=False).returncode == 1
