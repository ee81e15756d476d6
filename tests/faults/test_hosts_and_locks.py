"""Dead hosts, full disks, concurrent runs, stale locks, Ctrl-C, batches and tolerated failures."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest


def test_host_down_before_the_run_fails_fast_and_changes_nothing(faulty):
    faulty.fleet.kill_host("host2")

    result = faulty.fap("deploy", "-s", "test", "--ssh-connect-timeout", "3")

    assert result.exit_code == 1
    assert "host2: cannot connect" in result.stderr
    assert result.duration < 60
    faulty.assert_untouched(["host1", "host3"])
    assert faulty.fleet.current("host2") == faulty.good


def test_host_dies_while_updating_leaves_every_host_on_the_old_release(faulty):
    process = faulty.popen("deploy", "-s", "test", *faulty.block_args("updating"))
    faulty.wait_blocked()
    faulty.fleet.kill_host("host2")
    faulty.unblock()
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 1, stdout + stderr
    assert "host2: updating:" in stderr
    faulty.assert_untouched(["host1", "host3"])
    # host2's own files are as the dead run left them, but current never moved.
    assert faulty.fleet.current("host2") == faulty.good


def test_disk_full_while_updating_fails_naming_the_host(faulty):
    fleet = faulty.fleet
    releases = "/home/deploy/www/app/releases"
    # A tiny filesystem over host3's releases/, holding a copy of what was there.
    fleet.in_host("host3", ["sh", "-c", f"cp -a {releases} /tmp/releases-copy-host3 && mount -t tmpfs -o size=1m,mode=0755 tmpfs {releases} "
                            f"&& cp -a /tmp/releases-copy-host3/. {releases}/ && chown deploy:deploy {releases} && rm -rf /tmp/releases-copy-host3"])
    try:
        result = faulty.fap("deploy", "-s", "test", "--fault-write-mb", "4")

        assert result.exit_code == 1
        # The cause leads, the command's own status follows.
        assert "host3: updating: faultplugin: head: error writing 'standard output': No space left on device (command exited 1)" \
            in result.stderr
        for host in fleet.names:
            assert fleet.current(host) == faulty.good
        faulty.assert_untouched(["host1", "host2"])
        # host3's releases/ is the tmpfs only host3 sees: -A for a marker left behind.
        assert fleet.in_host("host3", ["ls", "-A", releases]).stdout.split() == [faulty.good]
        faulty.assert_clean("host3")  # lock released, shared/ intact
    finally:
        fleet.in_host("host3", ["umount", releases])


def test_second_run_on_the_same_target_fails_fast_naming_the_lock_holder(faulty):
    first = faulty.popen("deploy", "-s", "test", *faulty.block_args("updating"))
    try:
        faulty.wait_blocked()
        second = faulty.fap("deploy", "-s", "test")
        # The refused run leaves the first run's locks alone: every host is still held by it.
        for host in faulty.fleet.names:
            assert faulty.fleet.locked(host), f"the refused run removed {host}'s lock"
            owner = faulty.fleet.app_dir(host) / ".fap-lock" / "owner"
            assert f" pid {first.pid} 'fap deploy' since " in owner.read_text(), host
    finally:
        faulty.unblock()
        stdout, stderr = first.communicate(timeout=120)

    assert second.exit_code == 1
    assert "is locked by" in second.stderr and "fap deploy" in second.stderr and "since" in second.stderr
    assert first.returncode == 0, stdout + stderr
    new = faulty.fleet.current("host1")
    assert new != faulty.good
    for host in faulty.fleet.names:
        assert faulty.fleet.current(host) == new
        assert faulty.fleet.releases(host) == [faulty.good, new]
        faulty.assert_clean(host)


def test_stale_lock_refuses_deploys_until_fap_unlock(faulty):
    lock = faulty.fleet.app_dir("host2") / ".fap-lock"
    lock.mkdir()
    (lock / "owner").write_text("alice@laptop pid 4242 'fap deploy' since 2026-01-01 10:00:00\n")
    subprocess.run(["chown", "-R", "deploy:deploy", str(lock)], check=True)

    refused = faulty.fap("deploy", "-s", "test")
    assert refused.exit_code == 1
    assert "host2: /home/deploy/www/app is locked by alice@laptop pid 4242 'fap deploy' since 2026-01-01" in refused.stderr
    assert faulty.currents() == {h: faulty.good for h in faulty.fleet.names}
    faulty.assert_untouched(["host1", "host3"])
    # host2: the stale lock is still alice's, nothing else moved.
    assert (lock / "owner").read_text().startswith("alice@laptop pid 4242 ")
    assert faulty.fleet.releases("host2") == [faulty.good]
    secret = "shared/config/secret.yml"  # host1's was checked above
    assert (faulty.fleet.app_dir("host2") / secret).read_text() == (faulty.fleet.app_dir("host1") / secret).read_text()

    unlocked = faulty.fap("unlock", "-s", "test")
    assert unlocked.exit_code == 0, unlocked.output
    assert "host2 | unlock | removing lock held by alice@laptop pid 4242" in unlocked.stdout
    assert not lock.exists()

    assert faulty.fap("deploy", "-s", "test").exit_code == 0
    new = faulty.fleet.current("host2")
    assert new != faulty.good
    for host in faulty.fleet.names:
        assert faulty.fleet.current(host) == new
        assert faulty.fleet.releases(host) == [faulty.good, new]
        faulty.assert_clean(host)


def test_ctrl_c_while_updating_cleans_up_and_exits_130(faulty):
    process = faulty.popen("deploy", "-s", "test", *faulty.block_args("updating"))
    faulty.wait_blocked()
    process.send_signal(signal.SIGINT)
    faulty.unblock()
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 130, stdout + stderr
    assert "interrupted" in stderr
    assert "Traceback" not in stdout + stderr
    faulty.assert_untouched()


def test_second_ctrl_c_exits_at_once(faulty):
    process = faulty.popen("deploy", "-s", "test", *faulty.block_args("updating"))
    faulty.wait_blocked()
    process.send_signal(signal.SIGINT)
    time.sleep(0.5)  # two signals sent at once arrive as one
    process.send_signal(signal.SIGINT)
    try:
        process.communicate(timeout=20)
    finally:
        faulty.unblock()
    assert process.returncode == 130
    for host in faulty.fleet.names:
        assert faulty.fleet.current(host) == faulty.good


def test_batches_stop_at_the_first_failed_batch(faulty):
    result = faulty.fap("deploy", "-s", "test", "--batch-size", "1", "--fault-phase", "updating", "--fault-host", "host2")

    assert result.exit_code == 1
    assert "host2: updating: faultplugin" in result.stderr
    new = faulty.fleet.current("host1")
    assert new != faulty.good
    assert faulty.fleet.releases("host1") == [faulty.good, new]
    faulty.assert_untouched(["host2", "host3"])
    faulty.assert_clean("host1")


def test_max_fail_drops_a_dead_host_and_deploys_the_rest(faulty):
    faulty.fleet.kill_host("host3")

    result = faulty.fap("deploy", "-s", "test", "--max-fail", "1", "--ssh-connect-timeout", "3")

    assert result.exit_code == 3, result.output
    assert "dropped" in result.stdout
    assert "host3" in result.stderr
    new = faulty.fleet.current("host1")
    assert new != faulty.good and faulty.fleet.current("host2") == new
    assert faulty.fleet.current("host3") == faulty.good
    for host in ("host1", "host2"):
        faulty.assert_clean(host)


@pytest.mark.parametrize("max_fail", ["1", "34%"])  # 34% of three hosts is one host
def test_max_fail_drops_a_host_whose_hook_fails_and_deploys_the_rest(faulty, max_fail):
    result = faulty.fap("deploy", "-s", "test", "--max-fail", max_fail, "--fault-phase", "updated", "--fault-host", "host2")

    assert result.exit_code == 3, result.output
    assert "host2 | updated | warning: dropped from the run (--max-fail): faultplugin" in result.stdout
    assert "host2: updated: faultplugin: boom (command exited 7)" in result.stderr
    new = faulty.fleet.current("host1")
    assert new != faulty.good
    for host in ("host1", "host3"):
        assert faulty.fleet.current(host) == new
        assert faulty.fleet.releases(host) == [faulty.good, new]
        faulty.assert_clean(host)
    faulty.assert_untouched(["host2"])  # its new release removed, its lock released


@pytest.mark.parametrize("max_fail", ["0", "33%"])  # 33% of three hosts rounds down to none
def test_max_fail_exceeded_is_all_or_nothing(faulty, max_fail):
    result = faulty.fap("deploy", "-s", "test", "--max-fail", max_fail, "--fault-phase", "updated", "--fault-host", "host1")
    assert result.exit_code == 1
    faulty.assert_untouched()


def test_rollback_when_the_previous_release_was_removed_by_hand(faulty):
    fleet = faulty.fleet
    assert faulty.fap("deploy", "-s", "test").exit_code == 0
    assert faulty.fap("deploy", "-s", "test").exit_code == 0
    releases = fleet.releases("host1")
    assert len(releases) == 3
    for host in fleet.names:
        subprocess.run(["rm", "-rf", str(fleet.app_dir(host) / "releases" / releases[1])], check=True)

    result = faulty.fap("rollback", "-s", "test")

    assert result.exit_code == 0, result.output
    assert faulty.currents() == {h: releases[0] for h in fleet.names}
    # The release rolled back from stays, marked bad; nothing older is left to go back to.
    again = faulty.fap("rollback", "-s", "test")
    assert again.exit_code == 2
    assert "nothing to roll back to" in again.stderr


def test_a_name_with_a_newline_in_releases_cannot_mark_a_finished_release_unfinished(faulty):
    assert faulty.fap("deploy", "-s", "test").exit_code == 0
    previous = faulty.good  # finished, no longer current
    releases = faulty.fleet.app_dir("host1") / "releases"
    (releases / f".x\nunfinished=.{previous}.unfinished").touch()

    result = faulty.fap("deploy", "-s", "test")

    assert result.exit_code == 0, result.output
    assert "removed unfinished release" not in result.stdout
    assert previous in faulty.fleet.releases("host1")
    assert (releases / previous / "app.txt").exists()


def test_a_name_with_a_newline_in_releases_cannot_take_another_runs_lock(faulty):
    lock = faulty.fleet.app_dir("host2") / ".fap-lock"
    lock.mkdir()
    (lock / "owner").write_text("alice@laptop pid 4242 'fap deploy' since 2026-01-01 10:00:00\n")
    (faulty.fleet.app_dir("host2") / "releases" / "zz\nlock=ours").mkdir()
    subprocess.run(["chown", "-R", "deploy:deploy", str(faulty.fleet.app_dir("host2"))], check=True)

    result = faulty.fap("deploy", "-s", "test")

    assert result.exit_code == 1, result.output
    assert "host2: /home/deploy/www/app is locked by alice@laptop pid 4242" in result.stderr
    assert (lock / "owner").read_text().startswith("alice@laptop pid 4242 ")
    assert faulty.currents() == {h: faulty.good for h in faulty.fleet.names}


def test_a_run_leaves_alone_a_lock_taken_by_another_run_after_fap_unlock(faulty):
    first = faulty.popen("deploy", "-s", "test", *faulty.block_args("updating"))
    try:
        faulty.wait_blocked()
        assert faulty.fap("unlock", "-s", "test").exit_code == 0
        # Another run takes the lock (as run B's probe would), and holds it.
        for host in faulty.fleet.names:
            lock = faulty.fleet.app_dir(host) / ".fap-lock"
            lock.mkdir()
            (lock / "owner").write_text("bob@ci pid 777 'fap deploy' since 2026-01-01 10:00:00\n")
    finally:
        faulty.unblock()
        stdout, stderr = first.communicate(timeout=120)

    assert first.returncode == 0, stdout + stderr
    for host in faulty.fleet.names:
        owner = faulty.fleet.app_dir(host) / ".fap-lock" / "owner"
        assert owner.exists() and owner.read_text().startswith("bob@ci pid 777 "), f"run A removed run B's lock on {host}"
    assert "warning: the lock is no longer this run's (removed by 'fap unlock'; now held by bob@ci pid 777" in stdout
    refused = faulty.fap("deploy", "-s", "test")
    assert refused.exit_code == 1 and "is locked by bob@ci pid 777" in refused.stderr
