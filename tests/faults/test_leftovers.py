"""What a host that died mid-release leaves behind, and who may remove it."""

from __future__ import annotations

import json
import os
import signal
import tempfile
from pathlib import Path


def _die_while_updating(faulty) -> str:
    """Run a deploy, kill host2's sshd while it updates, bring host2 back: return the dead run's release."""
    process = faulty.popen("deploy", "-s", "test", *faulty.block_args("updating"))
    faulty.wait_blocked()
    faulty.fleet.kill_host("host2")
    faulty.unblock()
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stdout + stderr
    faulty.fleet.start_host("host2")
    faulty.fleet.wait_ready("host2")
    releases = faulty.fleet.app_dir("host2") / "releases"
    leftovers = [p.name for p in releases.iterdir() if p.name != faulty.good and not p.name.startswith(".")]
    assert len(leftovers) == 1, leftovers
    assert (releases / f".{leftovers[0]}.unfinished").exists()
    (signals := faulty.signals / "blocked").unlink()
    (faulty.signals / "go").unlink()
    assert not signals.exists()
    return leftovers[0]


def test_next_deploy_removes_the_unfinished_release_of_a_host_that_died(faulty):
    dead = _die_while_updating(faulty)
    # The dead run could not remove its lock on host2: it says so until someone checks and unlocks.
    assert faulty.fleet.locked("host2")
    assert faulty.fap("unlock", "-s", "test").exit_code == 0

    result = faulty.fap("deploy", "-s", "test")

    assert result.exit_code == 0, result.output
    assert f"removed unfinished release {dead}" in result.stdout
    new = faulty.fleet.current("host1")
    for host in faulty.fleet.names:
        assert faulty.fleet.current(host) == new
        assert faulty.fleet.releases(host) == [faulty.good, new], host
        faulty.assert_clean(host)


def test_a_failed_next_run_still_removes_the_leftover(faulty):
    dead = _die_while_updating(faulty)
    assert faulty.fap("unlock", "-s", "test").exit_code == 0

    result = faulty.fap("deploy", "-s", "test", "--fault-phase", "updated", "--fault-host", "host1")

    assert result.exit_code == 1
    assert f"removed unfinished release {dead}" in result.stdout
    faulty.assert_untouched()


def test_an_unfinished_release_is_left_alone_while_another_run_holds_the_lock(faulty):
    first = faulty.popen("deploy", "-s", "test", *faulty.block_args("updated"))
    try:
        faulty.wait_blocked()
        releases = faulty.fleet.app_dir("host1") / "releases"
        running = [p.name for p in releases.iterdir() if p.name != faulty.good and not p.name.startswith(".")]
        assert len(running) == 1 and (releases / f".{running[0]}.unfinished").exists()
        for command in (["deploy", "-s", "test"], ["rollback", "-s", "test"]):
            second = faulty.fap(*command)
            assert second.exit_code == 1 and "is locked by" in second.stderr
            for host in faulty.fleet.names:
                assert (faulty.fleet.app_dir(host) / "releases" / running[0] / "app.txt").exists(), host
    finally:
        faulty.unblock()
        stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stdout + stderr
    for host in faulty.fleet.names:
        assert faulty.fleet.current(host) == running[0]
        faulty.assert_clean(host)


READ_ONLY = {"hooks": {"updating": [{"run": "mkdir -p ro/sub && touch ro/sub/file && chmod 555 ro/sub ro"}]}}


def _with_read_only_dirs(faulty) -> None:
    faulty.fleet.write_deployfile(faulty.directory, {"plugins": ["faultplugin"], "linked_files": ["config/secret.yml"],
                                                     "keep_releases": 1, **READ_ONLY})


def test_a_failed_deploy_removes_its_release_with_read_only_directories(faulty):
    _with_read_only_dirs(faulty)

    result = faulty.fap("deploy", "-s", "test", "--fault-phase", "updated", "--fault-host", "host1")

    assert result.exit_code == 1, result.output
    assert "Permission denied" not in result.output
    assert "nothing changed: the new release was removed, current is unchanged on every host" in result.stderr
    faulty.assert_untouched()
    # And the next deploys go through, cleanup removing releases with read-only directories as keep_releases says.
    for _ in range(2):
        assert faulty.fap("deploy", "-s", "test").exit_code == 0
    first = faulty.fleet.current("host1")
    third = faulty.fap("deploy", "-s", "test")
    assert third.exit_code == 0, third.output
    assert f"removed 1 old release(s): {first}" not in third.stdout  # the one a rollback returns to stays
    fourth = faulty.fap("deploy", "-s", "test")
    assert fourth.exit_code == 0, fourth.output
    assert f"removed 1 old release(s): {first}" in fourth.stdout
    new = faulty.fleet.current("host1")
    for host in faulty.fleet.names:
        assert faulty.fleet.current(host) == new
        assert len(faulty.fleet.releases(host)) == 2, host  # keep_releases: 1, and the one a rollback returns to
        faulty.assert_clean(host)


def test_a_release_that_cannot_be_removed_is_not_reported_removed(faulty):
    process = faulty.popen("deploy", "-s", "test", *faulty.block_args("updated"), "--fault-phase", "updated", "--fault-host", "host1")
    faulty.wait_blocked()
    releases = faulty.fleet.app_dir("host2") / "releases"
    (new,) = [p.name for p in releases.iterdir() if p.name != faulty.good and not p.name.startswith(".")]
    # root's directory in host2's new release: the deploy user can neither empty it nor make it writable.
    (releases / new / "roots").mkdir()
    (releases / new / "roots" / "file").touch()
    faulty.unblock()
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 1, stdout + stderr
    assert "the new release was removed" not in stderr
    assert f"nothing changed: current is unchanged on every host; the new release {new} is left on host2" in stderr
    assert faulty.fleet.current("host2") == faulty.good
    # Left marked unfinished: the next run removes it once it can.
    assert (releases / f".{new}.unfinished").exists()
    faulty.assert_untouched(["host1", "host3"])


def _packed_copies() -> set[str]:
    return {str(p) for p in Path(tempfile.gettempdir()).glob("fap-upload-*")}


def test_the_packed_upload_left_by_a_killed_run_is_removed_by_the_next_run(faulty):
    faulty.fleet.write_deployfile(faulty.directory, {"plugins": ["faultplugin", "fapistrano.upload"],
                                                     "linked_files": ["config/secret.yml"], "upload_source": "faultplugin.py"})
    before = _packed_copies()
    process = faulty.popen("deploy", "-s", "test", *faulty.block_args("updating"))
    faulty.wait_blocked()
    left = _packed_copies() - before
    assert left, "the run packed nothing"
    process.send_signal(signal.SIGKILL)  # nothing of fap's cleanup runs
    process.communicate(timeout=30)
    faulty.unblock()
    assert all(os.path.exists(path) for path in left)
    assert faulty.fap("unlock", "-s", "test").exit_code == 0

    result = faulty.fap("deploy", "-s", "test")

    assert result.exit_code == 0, result.output
    assert [path for path in left if os.path.exists(path)] == []


def test_a_switched_back_release_that_cannot_be_removed_stays_marked_bad(faulty):
    check = 'if [ "$FAP_HOST" = host2 ]; then echo "503 from $FAP_HOST"; exit 1; fi'
    process = faulty.popen("deploy", "-s", "test", "--healthcheck", check, "--healthcheck-timeout", "1",
                           *faulty.block_args("published"))
    faulty.wait_blocked()
    releases = faulty.fleet.app_dir("host2") / "releases"
    (new,) = [p.name for p in releases.iterdir() if p.name != faulty.good and not p.name.startswith(".")]
    (releases / new / "roots").mkdir()  # root's: the deploy user cannot remove the release
    (releases / new / "roots" / "file").touch()
    faulty.unblock()
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 4, stdout + stderr
    assert faulty.currents() == {host: faulty.good for host in faulty.fleet.names}
    mark = json.loads((faulty.fleet.app_dir("host2") / ".fap" / "marks" / f"{new}.bad.json").read_text())
    assert mark["why"] == "switched back: health check failed"
    record = json.loads((faulty.fleet.app_dir("host2") / ".fap" / "history.jsonl").read_text().splitlines()[-1])
    assert record["outcome"] == "switched back" and "503 from host2" in record["why"]
    listing = faulty.fap("releases", "-s", "test")
    assert f"{new} is marked bad" in listing.stdout and "(on host2)" in listing.stdout
    faulty.assert_untouched(["host1", "host3"])
