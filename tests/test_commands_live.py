"""The live view's last frame and the summary table, as they stay on the operator's screen.

``--live`` into a pipe makes rich print only the live view's final frame, which
is exactly what remains on a terminal when the run ends.
"""

from __future__ import annotations

import re

from test_commands_support import install_demo_plugin

SPINNER = re.compile("[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]")


def _frame_row(output: str, host: str) -> list[str]:
    """The live view's row for ``host``: mark, phase, elapsed, last output."""
    for line in output.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] == host and len(cells) >= 4 and cells[1] != "test/web":
            return cells[1:]
    raise AssertionError(f"no live row for {host} in:\n{output}")


def _summary_row(output: str, host: str) -> list[str]:
    for line in output.splitlines():
        if line.startswith(f"│ {host} "):
            return [cell.strip() for cell in line.strip("│").split("│")]
    raise AssertionError(f"no summary row for {host} in:\n{output}")


def test_live_view_ends_with_every_host_settled(fap_fleet, fap_run, tmp_path):
    env = install_demo_plugin(tmp_path / "site")
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["fapistrano.demo"]})

    result = fap_run(["deploy", "-s", "test", "--live"], cwd=tmp_path, env=env)

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("deploying app to test/web (3 hosts)\n")
    assert not SPINNER.search(result.stdout)  # no host left "running" in the frame that stays on screen
    for host in fap_fleet.hosts:
        mark, phase, elapsed = _frame_row(result.stdout, host)[:3]
        assert (mark, phase) == ("✓", "done")
        assert re.fullmatch(r"\d+\.\ds", elapsed)
        assert _summary_row(result.stdout, host)[:3] == [host, "test/web", "ok"]
    # The final frame ends its line: the summary's title starts a line of its own.
    assert "\nfap deploy: ok" in result.stdout


def test_failed_run_shows_which_host_failed_and_keeps_rows_on_one_line(fap_fleet, fap_run, tmp_path):
    env = {**install_demo_plugin(tmp_path / "site"), "COLUMNS": "100"}
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["fapistrano.demo"], "demo_fail_host": "host2"})

    result = fap_run(["deploy", "-s", "test", "--live"], cwd=tmp_path, env=env)

    assert result.exit_code == 1, result.output
    assert not SPINNER.search(result.stdout)
    assert _frame_row(result.stdout, "host2")[:2] == ["✗", "updating"]
    for host in ("host1", "host3"):
        assert _frame_row(result.stdout, host)[:2] == ["-", "skipped"]
        assert _summary_row(result.stdout, host)[2] == "skipped"
    failed = _summary_row(result.stdout, "host2")
    assert failed[2] == "failed"
    # The error (with its brackets, not eaten as markup) is cut to one line; stderr has it whole.
    assert failed[4] == "unchanged"  # where current is, after a failed run
    assert failed[6].startswith("fapistrano.demo: ") and failed[6].endswith("…")
    assert all(len(line) <= 100 for line in result.stdout.splitlines() if line.startswith("│"))
    assert "no space left on device [Errno 28]" in result.stderr
