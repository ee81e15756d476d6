"""Release marks and the history file on a host: the scripts run by the real ``sh`` against a temporary directory."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from fapistrano import history, layout
from fapistrano.layout import HostState

R = ("240101-000000", "240102-000000", "240103-000000", "240104-000000", "240105-000000")


def sh(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh"], input=script, capture_output=True, text=True, check=False)


def host(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "srv dir" / "app"
    for name in R[:3]:
        (path / "releases" / name).mkdir(parents=True)
    (path / "current").symlink_to(path / "releases" / R[2])
    return {"path": str(path), "current_path": str(path / "current"), "releases_path": str(path / "releases")}


def probe(paths: dict[str, str]) -> HostState:
    result = sh(layout.probe_script(paths["path"], paths["current_path"], paths["releases_path"], None))
    assert result.returncode == 0, result.stderr
    return layout.parse_probe(result.stdout)


def test_a_mark_is_written_atomically_and_read_by_the_probe(tmp_path: Path) -> None:
    paths = host(tmp_path)
    assert probe(paths).marks == {}
    mark = {"who": "alice's laptop", "when": "2026-12-05T07:00:00Z", "why": "500s\non checkout", "run": "r1"}
    assert sh(layout.mark_script(paths["path"], R[1], "bad", mark)).returncode == 0
    assert sh(layout.mark_script(paths["path"], R[1], "migrated", {"steps": ["deploy.yml:9"]})).returncode == 0
    state = probe(paths)
    assert state.marks == {R[1]: {"bad": mark, "migrated": {"steps": ["deploy.yml:9"]}}}
    assert state.is_bad(R[1]) and not state.is_bad(R[0])
    marks = Path(paths["path"]) / ".fap" / "marks"
    assert sorted(p.name for p in marks.iterdir()) == [f"{R[1]}.bad.json", f"{R[1]}.migrated.json"]  # no temporary left


def test_no_mark_file_name_or_content_adds_a_probe_line(tmp_path: Path) -> None:
    paths = host(tmp_path)
    marks = Path(paths["path"]) / ".fap" / "marks"
    marks.mkdir(parents=True)
    (marks / f"{R[0]}.bad.json").write_text('{"why": "a"}\nlock-taken=1\ncurrent=/x/releases/999999-999999\n')
    (marks / "1\nlock-taken=1\n.bad.json").write_text("{}")
    (marks / "notes.txt").write_text("lock-taken=1\n")
    state = probe(paths)
    assert not state.locked_by_us and state.current == R[2]
    assert list(state.marks) == [R[0]] and "unreadable" in state.marks[R[0]]["bad"]


def test_removing_releases_removes_their_marks(tmp_path: Path) -> None:
    paths = host(tmp_path)
    for release in R[:2]:
        assert sh(layout.mark_script(paths["path"], release, "bad", {"why": "x"})).returncode == 0
    marks = layout.marks_path(paths["path"])
    assert sh(layout.remove_releases_script(paths["releases_path"], paths["current_path"], [R[0]], marks)).returncode == 0
    assert list(probe(paths).marks) == [R[1]]
    result = sh(layout.remove_new_release_script(paths["releases_path"], paths["current_path"], R[1], True, marks))
    assert result.returncode == 0, result.stderr
    assert probe(paths).marks == {} and probe(paths).releases == (R[2],)


def test_cleanup_takes_bad_releases_first_and_keeps_keep_releases_good_ones() -> None:
    bad = {"bad": {"why": "x"}}
    # Good A, C, D (current), bad B.
    state = HostState(current=R[3], releases=R[:4], marks={R[1]: bad})
    assert layout.outdated_releases(state, 2, keep_also=[R[2]]) == [R[0], R[1]]
    assert layout.outdated_releases(state, 3) == [R[1]]
    assert layout.outdated_releases(state, 4) == []
    # Bad ones never push a good one out: five bad releases and keep 2 leave the two good ones.
    many = HostState(current=R[4], releases=R, marks={r: bad for r in R[1:4]})
    assert layout.outdated_releases(many, 2) == [R[1], R[2], R[3]]
    assert layout.previous_good_release(many) == R[0]
    assert layout.previous_good_release(HostState(current=R[1], releases=R[:2], marks={R[0]: bad})) is None


def test_the_history_appends_whole_lines_and_keeps_the_last_records(tmp_path: Path) -> None:
    path = str(tmp_path / "app")
    script = "\n".join(layout.history_append_script(path, json.dumps({"run": f"r{n}"}), keep=5) for n in range(8))
    assert sh(script).returncode == 0
    text = sh(layout.history_read_script(path)).stdout
    assert [r["run"] for r in history.parse_records(text)] == ["r3", "r4", "r5", "r6", "r7"]
    assert [r["run"] for r in history.parse_records(sh(layout.history_read_script(path, 2)).stdout)] == ["r6", "r7"]
    assert sh(layout.history_read_script(str(tmp_path / "none"))).stdout == ""
    with pytest.raises(ValueError):
        layout.history_append_script(path, "a\nb")


def test_a_record_too_long_for_one_atomic_write_is_cut_to_fit() -> None:
    record = {"run": "r", "why": "x" * 10000, "unreached": [f"host{n}" for n in range(2000)], "outcome": "deployed"}
    line = history.record_line(record)
    assert len(line.encode()) < layout.RECORD_LIMIT
    assert json.loads(line)["outcome"] == "deployed"


def test_merge_groups_records_by_run_newest_first() -> None:
    records = [
        {"run": "a", "started": "2026-12-05T07:00:00.000Z", "host": h, "stage": "p", "role": "web", "command": "deploy",
         "release": "1", "outcome": "deployed"} for h in ("web1", "web2")
    ] + [
        {"run": "b", "started": "2026-12-05T08:00:00.000Z", "host": "web1", "stage": "p", "role": "web", "command": "deploy",
         "release": "2", "outcome": "deployed"},
        {"run": "b", "started": "2026-12-05T08:00:00.000Z", "host": "web2", "stage": "p", "role": "web", "command": "deploy",
         "release": "2", "outcome": "failed before the switch", "unreached": ["web3"]},
        "not a record",
    ]
    runs = history.merge(history.parse_records("\n".join(json.dumps(r) for r in records)))
    assert [r.run for r in runs] == ["b", "a"]
    assert runs[1].host_count() == "2/2"
    assert runs[0].total == 3 and "web2: failed before the switch" in runs[0].host_count() and "web3: not reached" in runs[0].host_count()
    last, failed = history.failed_hosts([records[2], records[3]])
    assert last is not None and last.run == "b" and failed == ["web2", "web3"]
