"""The Capistrano layout: release names, which releases go, and the scripts that change a host.

Pure functions are checked directly; the shell scripts they build are run
with the real ``sh`` against a temporary directory, as a host would run them.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fapistrano import flows, layout
from fapistrano.errors import FapError
from fapistrano.layout import HostState

NOON = dt.datetime(2024, 5, 17, 12, 0, 0)


def sh(script: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]


# ---------------------------------------------------------------------------
# Release names
# ---------------------------------------------------------------------------


def test_release_name_is_the_time_as_fapistrano_09_wrote_it() -> None:
    assert layout.release_name(NOON) == "240517-120000"
    assert layout.is_release_name("240517-120000")


def test_second_release_in_the_same_second_gets_a_suffix() -> None:
    first = layout.release_name(NOON)
    second = layout.release_name(NOON, [first])
    third = layout.release_name(NOON, [first, second])
    assert (first, second, third) == ("240517-120000", "240517-120000-01", "240517-120000-02")
    assert sorted([third, first, second]) == [first, second, third]


def test_release_name_sorts_after_a_later_name_left_by_a_clock_step_back() -> None:
    taken = ["240517-120500"]
    name = layout.release_name(NOON, taken)
    assert name not in taken
    assert name > "240517-120500"


def test_names_that_are_not_releases_do_not_count() -> None:
    assert layout.release_name(NOON, ["current", "shared", "999999-999999.bak"]) == "240517-120000"
    for name in ("current", "240517-12000", "240517-120000-1", "240517-120000-001", "x240517-120000", ".240517-120000"):
        assert not layout.is_release_name(name), name


def test_release_names_after_a_name_from_the_future_count_on_past_99() -> None:
    # A release copied from elsewhere, or made while the clock was ahead, sorts after "now" for ever.
    taken = ["240517-120000", "991231-235959-99"]
    name = layout.release_name(NOON, taken)
    assert name == "991231-235959-100" and layout.is_release_name(name)
    after = layout.release_name(NOON, [*taken, name])
    assert after == "991231-235959-101"
    assert layout.sort_releases([after, "991231-235959-99", name, "240517-120000"]) == [
        "240517-120000", "991231-235959-99", name, after]


def test_releases_are_listed_rolled_back_and_cleaned_by_their_counter_not_as_strings() -> None:
    probe = "current=/srv/app/releases/991231-235959-100\n" + "".join(
        f"release={name}\n" for name in ("991231-235959-100", "991231-235959-99", "991231-235959-101", "240517-120000"))
    state = layout.parse_probe(probe)
    assert state.releases == ("240517-120000", "991231-235959-99", "991231-235959-100", "991231-235959-101")
    assert layout.previous_release(state) == "991231-235959-99"
    assert layout.outdated_releases(state, keep=2) == ["240517-120000", "991231-235959-99"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["991231-235959", "991231-235959-98", "991231-235959-99", "240517-120000-05"]), max_size=3),
       st.integers(min_value=1, max_value=130))
def test_release_names_stay_valid_new_and_last_whatever_is_on_the_host(found: list[str], runs: int) -> None:
    taken = list(found)
    for _ in range(runs):
        name = layout.release_name(NOON, taken)
        assert layout.is_release_name(name) and name not in taken, name
        assert layout.sort_releases([*taken, name])[-1] == name
        taken.append(name)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=-3, max_value=3), min_size=1, max_size=40))
def test_release_names_stay_unique_and_ordered_whatever_the_clock_does(steps: list[int]) -> None:
    # Each step moves the clock by -3..3 seconds: repeats and steps back included.
    now = NOON
    taken: list[str] = []
    for step in steps:
        now += dt.timedelta(seconds=step)
        name = layout.release_name(now, taken)
        assert layout.is_release_name(name), name
        assert all(layout.release_key(name) > layout.release_key(earlier) for earlier in taken), (name, taken)
        taken.append(name)


def test_one_release_name_for_the_run_is_free_on_every_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layout, "now", lambda: NOON)
    states = [
        HostState(current="240517-120000", releases=("240517-120000",)),
        HostState(releases=(), unfinished=("240517-120000-01",)),
        HostState(),
    ]
    assert flows.release_for_run(states) == "240517-120000-02"


# ---------------------------------------------------------------------------
# Which releases go, which one a rollback returns to
# ---------------------------------------------------------------------------

RELEASES = ("240101-000000", "240102-000000", "240103-000000", "240104-000000", "240105-000000")


def test_cleanup_keeps_the_newest_keep_releases() -> None:
    state = HostState(current=RELEASES[-1], releases=RELEASES)
    assert layout.outdated_releases(state, 3) == list(RELEASES[:2])
    assert layout.outdated_releases(state, 5) == []
    assert layout.outdated_releases(state, 9) == []
    assert layout.outdated_releases(state, 1) == list(RELEASES[:4])


def test_cleanup_never_removes_current_even_when_it_is_old() -> None:
    # After a rollback to the oldest release, current is outside the newest keep_releases.
    state = HostState(current=RELEASES[0], releases=RELEASES)
    outdated = layout.outdated_releases(state, 2)
    assert RELEASES[0] not in outdated
    assert outdated == list(RELEASES[1:3])


def test_cleanup_keeps_what_it_is_told_to_keep_also() -> None:
    state = HostState(current=RELEASES[-1], releases=RELEASES)
    assert layout.outdated_releases(state, 1, keep_also=[RELEASES[1]]) == [RELEASES[0], RELEASES[2], RELEASES[3]]


@settings(max_examples=100, deadline=None)
@given(st.sets(st.sampled_from(RELEASES), min_size=1), st.integers(min_value=1, max_value=7), st.data())
def test_cleanup_leaves_at_least_keep_releases_and_always_current(chosen: set[str], keep: int, data: st.DataObject) -> None:
    releases = tuple(sorted(chosen))
    current = data.draw(st.sampled_from(releases))
    outdated = layout.outdated_releases(HostState(current=current, releases=releases), keep)
    left = [r for r in releases if r not in outdated]
    assert current in left
    assert len(left) >= min(keep, len(releases))
    assert set(releases[-keep:]) <= set(left)


def test_previous_release_is_the_one_before_current() -> None:
    assert layout.previous_release(HostState(current=RELEASES[2], releases=RELEASES)) == RELEASES[1]
    assert layout.previous_release(HostState(current=RELEASES[-1], releases=RELEASES)) == RELEASES[-2]


def test_no_previous_release_before_the_first_one() -> None:
    assert layout.previous_release(HostState(current=RELEASES[0], releases=RELEASES)) is None
    assert layout.previous_release(HostState(current=RELEASES[0], releases=RELEASES[:1])) is None


def test_previous_release_when_current_points_at_a_removed_release() -> None:
    state = HostState(current="240103-120000", releases=RELEASES)
    assert layout.previous_release(state) == RELEASES[2]


def test_rollback_refuses_clearly_when_there_is_nothing_to_return_to() -> None:
    with pytest.raises(FapError, match=r"web1: nothing to roll back to: 240101-000000 is the only"):
        flows.rollback_choice("web1", HostState(current=RELEASES[0], releases=RELEASES[:1]), None)
    with pytest.raises(FapError, match=r"web1: nothing to roll back: no current release"):
        flows.rollback_choice("web1", HostState(), None)


def test_rollback_to_a_named_release() -> None:
    state = HostState(current=RELEASES[-1], releases=RELEASES)
    assert flows.rollback_choice("web1", state, RELEASES[0]) == (RELEASES[0], RELEASES[-1])
    assert flows.rollback_choice("web1", state, None) == (RELEASES[-2], RELEASES[-1])
    with pytest.raises(FapError, match=r"web1: cannot roll back to 231231-000000: no such finished release"):
        flows.rollback_choice("web1", state, "231231-000000")
    with pytest.raises(FapError, match=r"already current"):
        flows.rollback_choice("web1", state, RELEASES[-1])


# ---------------------------------------------------------------------------
# Reading a host: parse_probe, and the probe script run for real
# ---------------------------------------------------------------------------


def test_parse_probe_reads_current_releases_unfinished_and_lock() -> None:
    output = "\n".join(
        [
            "lock=deploy@ci pid 12 'fap deploy' since 2024-05-17 ",
            "current=/srv/app/releases/240102-000000",
            "release=240101-000000",
            "release=240102-000000",
            "release=240103-000000",
            "release=not-a-release",
            "release=*",
            "unfinished=.240103-000000.unfinished",
            "noise without equals",
            "",
        ]
    )
    state = layout.parse_probe(output)
    assert state.current == "240102-000000"
    assert state.releases == ("240101-000000", "240102-000000")
    assert state.unfinished == ("240103-000000",)
    assert state.lock_owner == "deploy@ci pid 12 'fap deploy' since 2024-05-17"
    assert not state.locked_by_us
    assert state.path_exists


def test_parse_probe_of_an_empty_host() -> None:
    state = layout.parse_probe("nopath=1\ncurrent=\n")
    assert state == HostState(path_exists=False)
    assert layout.parse_probe("lock-taken=1\ncurrent=\n").locked_by_us
    assert not layout.parse_probe("lock=ours\ncurrent=\n").locked_by_us  # an owner file reading "ours"


def test_parse_probe_current_with_trailing_slash() -> None:
    assert layout.parse_probe("current=/srv/app/releases/240102-000000/\n").current == "240102-000000"


def _make_host(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "srv dir" / "app"  # a space: every path must be quoted
    releases = path / "releases"
    for name in RELEASES[:3]:
        (releases / name).mkdir(parents=True)
    (releases / f".{RELEASES[2]}.unfinished").touch()
    (path / "current").symlink_to(releases / RELEASES[1])
    return {"path": str(path), "current_path": str(path / "current"), "releases_path": str(releases)}


def test_probe_script_run_by_sh_reports_the_directory(tmp_path: Path) -> None:
    paths = _make_host(tmp_path)
    result = sh(layout.probe_script(paths["path"], paths["current_path"], paths["releases_path"], None))
    assert result.returncode == 0, result.stderr
    state = layout.parse_probe(result.stdout)
    assert state.current == RELEASES[1]
    assert state.releases == RELEASES[:2]
    assert state.unfinished == (RELEASES[2],)
    assert state.lock_owner is None and not state.locked_by_us


def test_probe_script_takes_the_lock_once(tmp_path: Path) -> None:
    paths = _make_host(tmp_path)
    first = layout.parse_probe(sh(layout.probe_script(paths["path"], paths["current_path"], paths["releases_path"], "run one")).stdout)
    second = layout.parse_probe(sh(layout.probe_script(paths["path"], paths["current_path"], paths["releases_path"], "run two")).stdout)
    assert first.locked_by_us and first.lock_owner is None
    assert not second.locked_by_us and second.lock_owner == "run one"
    assert sh(layout.unlock_script(paths["path"])).returncode == 0
    third = layout.parse_probe(sh(layout.probe_script(paths["path"], paths["current_path"], paths["releases_path"], "run three")).stdout)
    assert third.locked_by_us


def test_probe_of_a_path_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "nothing"
    result = sh(layout.probe_script(str(path), str(path / "current"), str(path / "releases"), None))
    assert layout.parse_probe(result.stdout) == HostState(path_exists=False)
    assert not path.exists()


# ---------------------------------------------------------------------------
# Scripts that change a host, run by sh
# ---------------------------------------------------------------------------


def test_switch_replaces_current_with_a_rename(tmp_path: Path) -> None:
    paths = _make_host(tmp_path)
    target = f"{paths['releases_path']}/{RELEASES[0]}"
    result = sh(layout.switch_script(paths["current_path"], target, tag="t1"))
    assert result.returncode == 0, result.stderr
    assert os.readlink(paths["current_path"]) == target
    assert sorted(os.listdir(paths["path"])) == ["current", "releases"]  # no temporary link left


# ``ln -f`` as POSIX words it and busybox does it: remove the destination, then link. GNU ln
# happens to replace a link with a rename; a host's ln need not, so the switch must not rely on it.
POSIX_LN = """#!/bin/sh
for destination; do :; done
case " $* " in *" -"*f*) rm -f "$destination" ;; esac
exec {ln} "$@"
"""


@pytest.mark.parametrize("ln", ["system", "posix"])
def test_a_reader_never_sees_current_missing_while_it_switches(tmp_path: Path, ln: str) -> None:
    paths = _make_host(tmp_path)
    current = paths["current_path"]
    targets = [f"{paths['releases_path']}/{name}" for name in RELEASES[:2]]
    environment = dict(os.environ)
    if ln == "posix":
        (tmp_path / "bin").mkdir()
        (tmp_path / "bin" / "ln").write_text(POSIX_LN.format(ln=shutil.which("ln")))
        (tmp_path / "bin" / "ln").chmod(0o755)
        environment["PATH"] = f"{tmp_path / 'bin'}:{environment['PATH']}"
    seen: set[str] = set()
    reads = {"all": 0, "missing": 0}
    done = threading.Event()

    def read_current() -> None:
        while not done.is_set():
            reads["all"] += 1
            try:
                seen.add(os.readlink(current))
            except FileNotFoundError:
                reads["missing"] += 1

    reader = threading.Thread(target=read_current)
    reader.start()
    try:
        # 50 switches each way: a gap between removing and relinking current is a process
        # start long, and the reader reads current hundreds of times per switch.
        switches = "\n".join(layout.switch_script(current, target, tag="t3") for target in targets)
        result = sh(f"for i in $(seq 50); do\n{switches}\ndone", env=environment)
    finally:
        done.set()
        reader.join()
    assert result.returncode == 0, result.stderr
    assert reads["missing"] == 0, f"current was missing in {reads['missing']} of {reads['all']} reads"
    assert seen == {*targets}


def test_switch_to_a_missing_release_fails_and_leaves_current(tmp_path: Path) -> None:
    paths = _make_host(tmp_path)
    before = os.readlink(paths["current_path"])
    result = sh(layout.switch_script(paths["current_path"], f"{paths['releases_path']}/991231-000000", tag="t2"))
    assert result.returncode != 0
    assert "991231-000000 is not there" in result.stderr
    assert os.readlink(paths["current_path"]) == before


def test_starting_script_names_every_missing_linked_file(tmp_path: Path) -> None:
    base = tmp_path / "app"
    (base / "shared" / "config").mkdir(parents=True)
    (base / "shared" / "config" / "present.ini").touch()
    script = layout.starting_script(
        path=str(base),
        releases_path=str(base / "releases"),
        shared_path=str(base / "shared"),
        linked_files=["config/present.ini", "config/absent.ini", ".env.local"],
        linked_dirs=["log"],
        release_path=str(base / "releases" / RELEASES[0]),
        release_marker=layout.marker(str(base / "releases"), RELEASES[0]),
    )
    result = sh(script)
    assert result.returncode == 1
    assert f"missing linked file: {base}/shared/config/absent.ini" in result.stderr
    assert f"missing linked file: {base}/shared/.env.local" in result.stderr
    assert "present.ini" not in result.stderr
    assert not (base / "releases" / RELEASES[0]).exists()


def test_remove_releases_script_removes_releases_and_markers(tmp_path: Path) -> None:
    paths = _make_host(tmp_path)
    result = sh(layout.remove_releases_script(paths["releases_path"], paths["current_path"], [RELEASES[0], RELEASES[2]]))
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(paths["releases_path"])) == [RELEASES[1]]


def test_remove_releases_script_refuses_to_remove_what_current_points_to(tmp_path: Path) -> None:
    paths = _make_host(tmp_path)
    live = RELEASES[1]
    for asked in ([live], [RELEASES[0], live]):
        result = sh(layout.remove_releases_script(paths["releases_path"], paths["current_path"], asked))
        assert result.returncode == 1
        assert f"refusing to remove {paths['releases_path']}/{live}: current points to it" in result.stderr
        assert sorted(os.listdir(paths["releases_path"])) == sorted([*RELEASES[:3], f".{RELEASES[2]}.unfinished"])
    assert os.readlink(paths["current_path"]).endswith(live)


def test_remove_releases_script_refuses_current_reached_through_a_symlink(tmp_path: Path) -> None:
    paths = _make_host(tmp_path)
    releases = Path(paths["releases_path"])
    # current -> releases/<alias> -> releases/<RELEASES[0]>: neither the alias nor its target may go.
    alias = "991231-235959-99"
    (releases / alias).symlink_to(releases / RELEASES[0])
    os.unlink(paths["current_path"])
    os.symlink(releases / alias, paths["current_path"])
    for asked in ([RELEASES[0]], [alias]):
        result = sh(layout.remove_releases_script(paths["releases_path"], paths["current_path"], asked))
        assert result.returncode == 1 and "current points to it" in result.stderr, asked
    assert (Path(paths["current_path"]) / ".").is_dir()


def test_remove_new_release_script_removes_only_what_the_run_made_and_never_current(tmp_path: Path) -> None:
    paths = _make_host(tmp_path)
    releases = Path(paths["releases_path"])
    unmarked = sh(layout.remove_new_release_script(paths["releases_path"], paths["current_path"], RELEASES[0], created=False))
    assert unmarked.returncode == 0 and (releases / RELEASES[0]).is_dir()
    for created in (False, True):
        (releases / f".{RELEASES[1]}.unfinished").touch()
        live = sh(layout.remove_new_release_script(paths["releases_path"], paths["current_path"], RELEASES[1], created))
        assert live.returncode == 1 and "current points to it" in live.stderr and (releases / RELEASES[1]).is_dir()
    marked = sh(layout.remove_new_release_script(paths["releases_path"], paths["current_path"], RELEASES[2], created=False))
    assert marked.returncode == 0, marked.stderr
    assert not (releases / RELEASES[2]).exists() and not (releases / f".{RELEASES[2]}.unfinished").exists()
    made = sh(layout.remove_new_release_script(paths["releases_path"], paths["current_path"], RELEASES[0], created=True))
    assert made.returncode == 0, made.stderr
    assert sorted(os.listdir(releases)) == sorted([RELEASES[1], f".{RELEASES[1]}.unfinished"])


def test_starting_script_never_marks_a_directory_that_is_already_there(tmp_path: Path) -> None:
    paths = _make_host(tmp_path)
    existing = Path(paths["releases_path"]) / RELEASES[0]
    marker = layout.marker(paths["releases_path"], RELEASES[0])
    result = sh(layout.starting_script(paths["path"], paths["releases_path"], str(tmp_path / "shared"), [], [], str(existing), marker))
    assert result.returncode == 1 and "already exists" in result.stderr
    assert not os.path.exists(marker)


def test_link_script_links_shared_paths_over_what_the_code_shipped(tmp_path: Path) -> None:
    release = tmp_path / "releases" / RELEASES[0]
    shared = tmp_path / "shared"
    (release / "log").mkdir(parents=True)
    (release / "log" / "shipped.log").touch()
    (shared / "log").mkdir(parents=True)
    (shared / "config").mkdir()
    (shared / "config" / "settings.ini").write_text("[app]\n")
    script = layout.link_script(str(release), str(shared), ["config/settings.ini"], ["log"], {"GREETING": "hi"})
    result = sh(script)
    assert result.returncode == 0, result.stderr
    assert os.readlink(release / "log") == str(shared / "log")
    assert os.readlink(release / "config" / "settings.ini") == str(shared / "config" / "settings.ini")
    assert (release / ".env").read_text() == "GREETING=hi\n"


HOSTILE = [
    "$(touch {marker})",
    "`touch {marker}`",
    "'; touch {marker}; echo '",
    '"; touch {marker}; echo "',
    "a;touch {marker}",
    "x\nFAP_ENV_EOF\ntouch {marker} #",
    "100% sure %(app_name)s \\n $HOME",
]


@pytest.mark.parametrize("template", HOSTILE)
def test_env_file_written_and_sourced_runs_nothing(tmp_path: Path, template: str) -> None:
    marker = tmp_path / "injected"
    value = template.format(marker=marker)
    release = tmp_path / "release"
    release.mkdir()
    written = sh(layout.link_script(str(release), str(tmp_path / "shared"), [], [], {"VALUE": value, "OTHER": "2"}))
    assert written.returncode == 0, written.stderr
    sourced = sh("set -a; . ./.env; set +a; printf '%s' \"$VALUE\"", cwd=release)
    assert sourced.returncode == 0, sourced.stderr
    assert sourced.stdout == value
    assert not marker.exists()


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(
    st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30),
    max_size=4,
))
def test_dotenv_round_trips_any_value_through_sh(environment: dict[str, str]) -> None:
    text = layout.dotenv(environment)
    names = " ".join(f'"${name}"' for name in environment) or ""
    script = text + "for value in " + names + "; do printf '%s\\0' \"$value\"; done"
    result = subprocess.run(["sh", "-c", script], capture_output=True, check=False)
    assert result.returncode == 0, result.stderr
    values = result.stdout.decode("utf-8", "surrogateescape").split("\0")[:-1] if environment else []
    assert values == list(environment.values())


def test_unlock_script_releases_only_the_runs_own_lock(tmp_path: Path) -> None:
    paths = _make_host(tmp_path)
    lock = Path(paths["path"]) / layout.LOCK_DIR
    assert layout.parse_probe(sh(layout.probe_script(paths["path"], paths["current_path"], paths["releases_path"],
                                                     "run A", "token-a")).stdout).locked_by_us
    shutil.rmtree(lock)  # fap unlock
    assert layout.parse_probe(sh(layout.probe_script(paths["path"], paths["current_path"], paths["releases_path"],
                                                     "run B", "token-b")).stdout).locked_by_us
    refused = sh(layout.unlock_script(paths["path"], "token-a"))
    assert refused.returncode == layout.LOCK_NOT_OURS and refused.stderr.strip() == "run B"
    assert (lock / "owner").read_text() == "run B\n"
    assert sh(layout.unlock_script(paths["path"], "token-b")).returncode == 0
    assert not lock.exists()
    assert sh(layout.unlock_script(paths["path"], "token-b")).returncode == 0  # nothing left to release


def test_probe_lists_no_line_a_name_on_the_host_makes_up(tmp_path: Path) -> None:
    paths = _make_host(tmp_path)
    releases = Path(paths["releases_path"])
    (releases / f".x\nunfinished=.{RELEASES[0]}.unfinished").touch()
    (releases / "zz\nlock-taken=1").mkdir()
    (releases / "zz\nlock=ours").mkdir()
    state = layout.parse_probe(sh(layout.probe_script(paths["path"], paths["current_path"], paths["releases_path"], None)).stdout)
    assert state.releases == RELEASES[:2]
    assert state.unfinished == (RELEASES[2],)
    assert state.lock_owner is None and not state.locked_by_us
