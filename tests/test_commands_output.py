"""What fap prints when its output is not a terminal, what --dry-run says, and what the summary claims."""

from __future__ import annotations

import os
import pwd
import re

from test_commands_support import install_demo_plugin

from fapistrano.sessions import lock_owner_text


def test_lock_holder_is_the_account_name_without_user_variables(monkeypatch):
    # Cron jobs, systemd units and `env -i` run without $USER: the lock still names an account, not a uid.
    monkeypatch.delenv("USER", raising=False)
    monkeypatch.delenv("LOGNAME", raising=False)

    owner = lock_owner_text("fap deploy")

    assert owner.startswith(pwd.getpwuid(os.getuid()).pw_name + "@"), owner


def _summary_records(path):
    import json

    return {r["host"]: r for r in map(json.loads, path.read_text().splitlines()) if r["kind"] == "summary"}


def test_failed_and_skipped_hosts_name_no_release_that_was_removed(fap_fleet, fap_run, tmp_path):
    env = install_demo_plugin(tmp_path / "site")
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["fapistrano.demo"], "demo_fail_host": "host2"})

    result = fap_run(["deploy", "-s", "test", "--log-json", str(tmp_path / "log.json")], cwd=tmp_path, env=env)

    assert result.exit_code == 1, result.output
    records = _summary_records(tmp_path / "log.json")
    assert {host: r["status"] for host, r in records.items()} == {"host1": "skipped", "host2": "failed", "host3": "skipped"}
    for host in fap_fleet.hosts:
        assert fap_fleet.releases(host) == []  # the failure path removed the new release everywhere
        assert records[host].get("release", "") == "", records[host]


def test_a_late_failure_names_the_release_current_points_to(fap_fleet, fap_run, tmp_path):
    # Failing after the switch leaves the release in place and current on it: the summary says which.
    site = tmp_path / "site"
    site.mkdir()
    (site / "late_failure.py").write_text(
        "from fapistrano import hookimpl\n\n@hookimpl\ndef fap_deploy_finishing(ctx):\n"
        "    if ctx.host == 'host3':\n        raise RuntimeError('notify failed')\n"
    )
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["late_failure"]})

    result = fap_run(["deploy", "-s", "test", "--log-json", str(tmp_path / "log.json")], cwd=tmp_path,
                     env={"PYTHONPATH": str(site)})

    assert result.exit_code == 1, result.output
    records = _summary_records(tmp_path / "log.json")
    assert records["host3"]["status"] == "failed"
    assert records["host3"]["release"] == fap_fleet.current("host3")


def _columns(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_piped_output_is_plain_lines_unwrapped_unpadded_ascii(fap_fleet, fap_run, tmp_path):
    env = {**install_demo_plugin(tmp_path / "site"), "COLUMNS": "80"}  # what a pipe gets when nothing says otherwise
    # A misspelt setting: its warning is 95 columns long.
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["fapistrano.demo"], "keep_releasesss": 3})

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path, env=env)

    assert result.exit_code == 0, result.output
    for line in (result.stdout + result.stderr).splitlines():
        assert line == line.rstrip(), f"padded: {line!r}"
    assert result.stdout.isascii(), result.stdout
    # The warning is one line, however long.
    assert any(line.startswith("fap: warning: ") and line.endswith("keep_releasesss is not a known setting (did you mean 'keep_releases'?)")
               for line in result.stderr.splitlines()), result.stderr
    lines = result.stdout.splitlines()
    title = lines.index("fap deploy: ok")
    assert _columns(lines[title + 1]) == ["host", "target", "result", "release", "time"]
    rows = [_columns(line) for line in lines[title + 2:title + 5]]
    assert [row[:3] for row in rows] == [[host, "test/web", "ok"] for host in fap_fleet.hosts]
    assert {row[3] for row in rows} == {fap_fleet.current(host) for host in fap_fleet.hosts}


def test_piped_summary_of_a_failed_run_keeps_the_error_whole_on_its_row(fap_fleet, fap_run, tmp_path):
    env = {**install_demo_plugin(tmp_path / "site"), "COLUMNS": "80"}
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["fapistrano.demo"], "demo_fail_host": "host2"})

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path, env=env)

    assert result.exit_code == 1, result.output
    assert result.stdout.isascii(), result.stdout
    lines = result.stdout.splitlines()
    title = lines.index("fap deploy: FAILED")
    assert _columns(lines[title + 1]) == ["host", "target", "result", "release", "current", "time", "error"]
    failed = _columns(next(line for line in lines[title + 2:] if line.startswith("host2 ")))
    # Cells with nothing to say hold '-', so the columns stay countable.
    assert failed[:5] == ["host2", "test/web", "failed", "-", "unchanged"]
    assert failed[6].startswith("fapistrano.demo: ") and "[Errno 28]" in failed[6]


def test_dry_run_says_per_phase_what_would_run_in_words_and_the_shell_only_with_v(fap_fleet, fap_run, tmp_path):
    env = install_demo_plugin(tmp_path / "site")
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["fapistrano.demo"], "linked_dirs": ["log"]})

    result = fap_run(["deploy", "-s", "test", "--dry-run"], cwd=tmp_path, env=env)

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    # One line per phase that would do something, the hosts grouped when they would do the same.
    updating = next(line for line in lines if " | updating | " in line)
    assert re.fullmatch(r"host1, host2, host3 \| updating \| would run: demo \(1 command\), shared \(\d+ commands?\)", updating)
    assert any(re.fullmatch(r"host1, host2, host3 \| starting \| would run: dirs \(\d+ commands?\)", line) for line in lines)
    assert any(re.fullmatch(r"host1, host2, host3 \| publishing \| would run: switch \(\d+ commands?\)", line) for line in lines)
    # No shell, nothing said in the past tense as if it had happened.
    assert "GREETING" not in result.stdout and "mkdir" not in result.stdout
    assert not any(line.startswith("deployed") for line in lines)
    assert lines[-1].startswith("dry run, nothing changed: would have deployed release ")
    for host in fap_fleet.hosts:
        assert fap_fleet.releases(host) == []

    verbose = fap_run(["deploy", "-s", "test", "--dry-run", "-v"], cwd=tmp_path, env=env)

    assert verbose.exit_code == 0, verbose.output
    # The same words, then the shell; the greeting names its host, so each host's shell is its own.
    assert updating.split(" | ")[1:] in [line.split(" | ")[1:] for line in verbose.stdout.splitlines()]
    for host in fap_fleet.hosts:
        assert any(line.startswith(f"{host} | updating |   $ ") and line.endswith(f"'hello from {host}' > GREETING")
                   for line in verbose.stdout.splitlines()), verbose.stdout
