"""Release names stay valid and ordered whatever a host holds, and no failure removes what ``current`` points to."""

from __future__ import annotations

import datetime
import os
from typing import Any

from fapistrano import layout


def test_deploys_after_a_release_named_in_the_future_stay_valid_ordered_and_live(
    fap_local: Any, fap_run: Any, released: Any
) -> None:
    fap_local.write_deployfile({"keep_releases": 10})
    first = released(fap_run(["deploy", "-s", "test"], cwd=fap_local.root))
    # A release whose name sorts after "now": a clock that was ahead, or a release copied from elsewhere.
    future = fap_local.path / "releases" / "991231-235959-99"
    future.mkdir()
    os.unlink(fap_local.path / "current")
    os.symlink(future, fap_local.path / "current")

    hundredth = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)
    assert hundredth.exit_code == 0, hundredth.output
    assert released(hundredth) == "991231-235959-100"
    listing = fap_run(["releases", "-s", "test"], cwd=fap_local.root)
    assert listing.exit_code == 0, listing.output
    assert "not there" not in listing.output and "991231-235959-100" in listing.stdout

    after = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)
    assert after.exit_code == 0, after.output
    assert released(after) == "991231-235959-101"
    assert fap_local.current() == "991231-235959-101"
    assert fap_local.releases() == [first, "991231-235959-100", "991231-235959-101", "991231-235959-99"]

    # Rollback goes back by the counter (100 before 101), then to 99, not to the string order.
    back = fap_run(["rollback", "-s", "test"], cwd=fap_local.root)
    assert back.exit_code == 0, back.output
    assert fap_local.current() == "991231-235959-100"
    back = fap_run(["rollback", "-s", "test"], cwd=fap_local.root)
    assert back.exit_code == 0, back.output
    assert fap_local.current() == "991231-235959-99"


def test_cleanup_removes_the_oldest_by_counter(fap_local: Any, fap_run: Any, released: Any) -> None:
    fap_local.write_deployfile({"keep_releases": 2})
    releases = fap_local.path / "releases"
    releases.mkdir(parents=True)
    for name in ("991231-235959-98", "991231-235959-99"):
        (releases / name).mkdir()
    for _ in range(2):
        assert fap_run(["deploy", "-s", "test"], cwd=fap_local.root).exit_code == 0
    # 98 and 99 were the oldest: as strings they sort after 100 and 101 and would have been kept.
    assert fap_local.releases() == ["991231-235959-100", "991231-235959-101"]
    assert fap_local.current() == "991231-235959-101"


def test_a_failed_deploy_never_removes_the_release_current_points_to(fap_local: Any, fap_run: Any, released: Any) -> None:
    # Something outside the run (another tool, a person) points current at the new release, then the run fails:
    # the failure path must leave the live release alone, checked on the host, not in fap's view of it.
    (fap_local.root / "hijack.py").write_text(
        "from fapistrano import hookimpl\n"
        "@hookimpl\n"
        "def fap_deploy_updated(ctx):\n"
        "    if ctx.config.get('hijack'):\n"
        "        ctx.run(f\"ln -sfn {ctx.release_path} {ctx.config['current_path']} && exit 7\")\n"
        "@hookimpl\n"
        "def fap_defaults():\n"
        "    return {'hijack': ''}\n"
    )
    fap_local.write_deployfile({"plugins": ["hijack"]})
    released(fap_run(["deploy", "-s", "test"], cwd=fap_local.root))

    result = fap_run(["deploy", "-s", "test", "--hijack", "1"], cwd=fap_local.root)

    assert result.exit_code == 1
    live = fap_local.current()
    assert live is not None and (fap_local.path / "releases" / live).is_dir()
    assert f"could not remove unfinished release {live}: refusing to remove" in result.output
    assert "current points to it" in result.output


def test_a_run_never_takes_the_name_of_a_release_removed_by_hand_whose_marks_remain(monkeypatch) -> None:
    from fapistrano import flows

    now = datetime.datetime(2026, 12, 5, 8, 34, 17)
    monkeypatch.setattr(layout, "now", lambda: now)
    gone = layout.release_name(now)  # removed by hand in this very second, its bad mark still there
    state = layout.HostState(current="261205-083416", releases=("261205-083416",),
                             marks={gone: {"bad": {"who": "alice@laptop"}}})

    name = flows.release_for_run([state])

    assert name != gone and not state.marks.get(name)
