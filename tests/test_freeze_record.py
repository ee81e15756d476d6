"""The freeze's record, what a probe reads of it, and --wait-lock's durations (no host needed)."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fapistrano import freeze, layout
from fapistrano.errors import ConfigError


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("90", 90), ("5m", 300), ("1h", 3600), ("1m30s", 90), ("2h5m", 7500)])
def test_durations(text, seconds):
    assert freeze.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5 minutes", "-5s", "1.5m", "m", "5m5m"])
def test_a_bad_duration_is_one_line_of_bad_input(text):
    with pytest.raises(ConfigError, match="--wait-lock: expected a duration like 90s, 5m or 1h"):
        freeze.parse_duration(text)


def _probe(tmp_path, lock: bool) -> layout.HostState:
    script = layout.probe_script(str(tmp_path), str(tmp_path / "current"), str(tmp_path / "releases"),
                                 "me" if lock else None, "token")
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    return layout.parse_probe(result.stdout)


@given(st.text(max_size=freeze.MESSAGE_LIMIT))
def test_any_reason_is_one_ascii_line_that_reads_back_as_written(message):
    line = freeze.record("alice@laptop", "2026-12-04 18:40:00 +0000", message)
    assert "\n" not in line and "\r" not in line and line.isascii()
    assert freeze.parse(line) == freeze.Freeze("alice@laptop", "2026-12-04 18:40:00 +0000", message)
    assert "\n" not in freeze.parse(line).describe() and "\x1b" not in freeze.parse(line).describe()


def test_a_frozen_host_is_reported_and_not_locked(tmp_path):
    line = freeze.record("alice@laptop", "then", "incident\nlock-taken=1\nrelease=991231-235959")
    subprocess.run(["sh", "-c", freeze.freeze_script(str(tmp_path), line)], check=True, capture_output=True)

    state = _probe(tmp_path, lock=True)

    assert freeze.parse(state.freeze).message == "incident\nlock-taken=1\nrelease=991231-235959"
    assert not state.locked_by_us and state.releases == ()
    assert not (tmp_path / layout.LOCK_DIR).exists()
    assert freeze.parse(_probe(tmp_path, lock=False).freeze).by == "alice@laptop"


def test_a_freeze_file_made_by_hand_still_freezes_read_bounded_and_on_one_line(tmp_path):
    (tmp_path / layout.FREEZE_FILE).write_text("do not deploy\nlock-taken=1\n" + "x" * 100_000)

    state = _probe(tmp_path, lock=True)

    assert not state.locked_by_us and not (tmp_path / layout.LOCK_DIR).exists()
    assert state.freeze is not None and len(state.freeze) == layout.FREEZE_READ
    shown = freeze.parse(state.freeze)
    assert shown.by == "unknown" and shown.message.startswith("do not deploy lock-taken=1 xxx")


def test_the_second_freeze_keeps_the_first(tmp_path):
    first, second = (freeze.record("a", "t", reason) for reason in ("first", "second"))
    subprocess.run(["sh", "-c", freeze.freeze_script(str(tmp_path), first)], check=True, capture_output=True)
    again = subprocess.run(["sh", "-c", freeze.freeze_script(str(tmp_path), second)], check=True, capture_output=True, text=True)
    assert "frozen=1" not in again.stdout
    assert freeze.parse(layout.parse_probe(again.stdout).freeze).message == "first"
    subprocess.run(["sh", "-c", freeze.lift_script(str(tmp_path))], check=True)
    assert _probe(tmp_path, lock=False).freeze is None


@pytest.mark.parametrize("line", ["[" * layout.FREEZE_READ, "", "null", '{"by": 1}', "\x1b]0;owned\x07 stop"])
def test_a_freeze_that_is_not_fap_record_still_freezes_shown_as_it_reads(line):
    shown = freeze.parse(line)
    assert shown is not None and shown.by == "unknown"
    assert "\x1b" not in shown.describe()
