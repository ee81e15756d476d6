"""A ``once: true`` step (a migration) runs on one host that goes live, or the run fails before the switch."""

from __future__ import annotations

import pytest

#: The migration: one line per run on the host that ran it, in shared/ (kept across releases).
MIGRATE = {"run": 'echo "MIGRATED $FAP_RELEASE" >> ../../shared/migrated.log', "once": True}
#: A step that fails on host1 only.
FAILS_ON_HOST1 = {"run": '[ "$FAP_HOST" != host1 ] || { echo "no disk" >&2; exit 1; }'}


def migrations(faulty) -> dict[str, list[str]]:
    """The lines of each host's migration log."""
    found = {}
    for host in faulty.fleet.names:
        log = faulty.fleet.app_dir(host) / "shared" / "migrated.log"
        found[host] = log.read_text().splitlines() if log.exists() else []
    return found


def with_hooks(faulty, hooks) -> None:
    faulty.fleet.write_deployfile(faulty.directory, {"plugins": ["faultplugin"], "linked_files": ["config/secret.yml"],
                                                     "hooks": hooks})


def test_a_once_step_moves_to_the_next_host_when_its_host_is_dropped_earlier(faulty):
    with_hooks(faulty, {"updating": [FAILS_ON_HOST1], "updated": [MIGRATE]})

    result = faulty.fap("deploy", "-s", "test", "--max-fail", "1")

    assert result.exit_code == 3, result.output
    new = faulty.fleet.current("host2")
    assert new != faulty.good and faulty.fleet.current("host3") == new
    assert faulty.fleet.current("host1") == faulty.good
    assert migrations(faulty) == {"host1": [], "host2": [f"MIGRATED {new}"], "host3": []}
    # The report says it moved, and where it ran.
    assert "host2 | updated | warning: once step deploy.yml:" in result.stdout, result.output
    assert "moves here from host1 (dropped)" in result.stdout, result.output
    assert "host2 | updated | once step deploy.yml:" in result.stdout
    assert "runs on this host only" in result.stdout


def test_a_once_step_moves_past_an_unreachable_host(faulty):
    with_hooks(faulty, {"updated": [MIGRATE]})
    faulty.fleet.kill_host("host1")

    result = faulty.fap("deploy", "-s", "test", "--max-fail", "1", "--ssh-connect-timeout", "3")

    assert result.exit_code == 3, result.output
    new = faulty.fleet.current("host2")
    assert new != faulty.good and faulty.fleet.current("host3") == new
    assert migrations(faulty)["host2"] == [f"MIGRATED {new}"]
    assert migrations(faulty)["host3"] == []
    assert "moves here from host1 (dropped)" in result.stdout, result.output


@pytest.mark.parametrize("steps", [
    pytest.param([FAILS_ON_HOST1, MIGRATE], id="its-host-fails-in-its-phase"),
    pytest.param([{**MIGRATE, "run": MIGRATE["run"] + '; [ "$FAP_HOST" != host1 ] || exit 1'}], id="the-step-fails"),
])
def test_a_host_that_carries_a_once_step_is_never_dropped(faulty, steps):
    # The step ran on host1, or may have: running it again elsewhere, or going live without it, is not safe.
    with_hooks(faulty, {"updated": steps})

    result = faulty.fap("deploy", "-s", "test", "--max-fail", "1")

    assert result.exit_code == 1, result.output
    assert "host1: updated:" in result.stderr
    assert "nothing changed: the new release was removed" in result.stderr
    assert "dropped from the run" not in result.output
    assert "host1 | updated | not dropped (--max-fail): it ran once step deploy.yml:" in result.stdout, result.output
    faulty.assert_untouched()
    assert migrations(faulty)["host2"] == migrations(faulty)["host3"] == []


def test_a_once_step_after_the_switch_moves_too(faulty):
    with_hooks(faulty, {"updating": [FAILS_ON_HOST1], "published": [MIGRATE]})

    result = faulty.fap("deploy", "-s", "test", "--max-fail", "1")

    assert result.exit_code == 3, result.output
    new = faulty.fleet.current("host2")
    assert migrations(faulty) == {"host1": [], "host2": [f"MIGRATED {new}"], "host3": []}
