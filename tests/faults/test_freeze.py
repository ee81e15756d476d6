"""A freeze with a reason (``fap lock``/``fap unlock``), and ``--wait-lock`` for a run that is still going."""

from __future__ import annotations

import signal
import time

import pytest

REASON = "incident 431: db failover"


def _frozen_file(faulty, host: str):
    return faulty.fleet.app_dir(host) / ".fap-freeze"


@pytest.mark.parametrize("command", ["deploy", "rollback", "restart"])
def test_a_frozen_target_refuses_every_changing_command_with_who_when_and_why(faulty, command):
    if command == "rollback":  # a release to return to, so that nothing but the freeze can refuse it
        assert faulty.fap("deploy", "-s", "test").exit_code == 0
    before = faulty.currents(), faulty.releases()
    frozen = faulty.fap("lock", "-s", "test", "-m", REASON)
    assert frozen.exit_code == 0, frozen.output
    for host in faulty.fleet.names:
        assert f"{host} | lock | frozen: {REASON}" in frozen.stdout
        assert _frozen_file(faulty, host).exists()

    refused = faulty.fap(command, "-s", "test")

    assert refused.exit_code == 5, refused.output
    assert "is frozen by" in refused.stderr and REASON in refused.stderr and " since " in refused.stderr
    assert "until fap unlock -s test" in refused.stderr
    assert (faulty.currents(), faulty.releases()) == before
    for host in faulty.fleet.names:
        faulty.assert_clean(host)  # no run lock left behind, nothing marked
        assert _frozen_file(faulty, host).exists()


def test_read_only_commands_show_the_freeze_and_unlock_lifts_it(faulty):
    assert faulty.fap("lock", "-s", "test", "-m", REASON).exit_code == 0

    releases = faulty.fap("releases", "-s", "test")
    assert releases.exit_code == 0, releases.output
    assert "frozen by" in releases.stdout and REASON in releases.stdout
    check = faulty.fap("check", "-s", "test")
    assert check.exit_code == 1, check.output
    assert "frozen by" in check.output and REASON in check.output

    shown = faulty.fap("unlock", "-s", "test", "--dry-run")
    assert shown.exit_code == 0, shown.output
    assert "would lift the freeze by " in shown.stdout and REASON in shown.stdout
    assert all(_frozen_file(faulty, host).exists() for host in faulty.fleet.names), "a dry run lifted the freeze"

    unlocked = faulty.fap("unlock", "-s", "test")
    assert unlocked.exit_code == 0, unlocked.output
    for host in faulty.fleet.names:
        assert f"{host} | unlock | lifting the freeze by " in unlocked.stdout
        assert not _frozen_file(faulty, host).exists()
    assert REASON in unlocked.stdout

    deployed = faulty.fap("deploy", "-s", "test")
    assert deployed.exit_code == 0, deployed.output
    assert faulty.fleet.current("host1") != faulty.good
    assert "frozen" not in faulty.fap("releases", "-s", "test").output


def test_the_message_is_stored_and_shown_safely_and_secrets_never_reach_it(faulty):
    faulty.fleet.write_deployfile(faulty.directory, {"plugins": ["faultplugin"], "linked_files": ["config/secret.yml"],
                                                     "mask": ["api_token"], "api_token": "s3cr3t-t0ken"})
    canary = "/tmp/fap-freeze-pwned"
    message = f"it's \"down\"\nsecond line $(touch {canary}) `touch {canary}`; token s3cr3t-t0ken \x1b]0;owned\x07 end"
    frozen = faulty.fap("lock", "-s", "test", "-m", message)
    assert frozen.exit_code == 0, frozen.output

    stored = _frozen_file(faulty, "host1").read_text()
    assert "s3cr3t-t0ken" not in stored and "\x1b" not in stored
    assert stored.count("\n") == 1  # one record, one line
    refused = faulty.fap("deploy", "-s", "test")
    assert refused.exit_code == 5
    for output in (frozen.output, refused.output, faulty.fap("releases", "-s", "test").output):
        assert "s3cr3t-t0ken" not in output
        assert "\x1b" not in output  # the escape is shown escaped, never acted on
        assert "\\x1b]0;owned\\x07" in output
        assert "it's \"down\"\\nsecond line $(touch" in output
    assert not faulty.fleet.in_host("host1", ["ls", canary]).returncode == 0


def test_a_huge_message_is_refused_before_any_host_is_frozen(faulty):
    refused = faulty.fap("lock", "-s", "test", "-m", "x" * 100_000)
    assert refused.exit_code == 2, refused.output
    assert "fap: error: fap lock: -m: the message is 100000 characters; at most 500" in refused.stderr
    for host in faulty.fleet.names:
        assert not _frozen_file(faulty, host).exists()


@pytest.mark.parametrize("args, hint", [
    (["lock", "-s", "test", "-m"], "-m needs the reason for the freeze, e.g. fap lock -s test -m 'incident 431: db failover'"),
    (["lock", "-s", "test"], "-m needs the reason for the freeze, e.g. fap lock -s test -m 'incident 431: db failover'"),
    (["lock", "-m", REASON], "fap lock: which target? name its stage, e.g. fap lock -s STAGE -m 'incident 431: db failover'"),
    (["lock", "-s", "test", "-m", "   "], "-m needs the reason for the freeze"),
    (["deploy", "-s", "test", "--wait-lock", "soon"], "--wait-lock: expected a duration like 90s, 5m or 1h, got 'soon'"),
])
def test_likely_mistakes_are_one_line_with_what_to_type(faulty, args, hint):
    result = faulty.fap(*args)
    assert result.exit_code == 2, result.output
    assert hint in result.stderr
    assert "Traceback" not in result.output
    for host in faulty.fleet.names:
        assert not _frozen_file(faulty, host).exists()
    faulty.assert_untouched()


def test_a_second_freeze_keeps_the_first_and_says_whose_it_is(faulty):
    assert faulty.fap("lock", "-s", "test", "-m", REASON).exit_code == 0
    again = faulty.fap("lock", "-s", "test", "-m", "another reason")
    assert again.exit_code == 0, again.output
    assert "already frozen by" in again.stdout and REASON in again.stdout
    assert "another reason" not in _frozen_file(faulty, "host1").read_text()


def test_wait_lock_waits_for_a_running_deploy_then_deploys(faulty):
    first = faulty.popen("deploy", "-s", "test", *faulty.block_args("updating"))
    try:
        faulty.wait_blocked()
        second = faulty.popen("deploy", "-s", "test", "--wait-lock", "2m")
        faulty.wait_reported(second, "waiting up to 2m")
        time.sleep(1)
        assert second.poll() is None, "the second deploy did not wait"
        faulty.unblock()
        out, err = first.communicate(timeout=120)
        assert first.returncode == 0, out + err
        first_release = faulty.fleet.current("host1")
        out, err = second.communicate(timeout=120)
    finally:
        faulty.unblock()
        first.kill()
    assert second.returncode == 0, out + err
    assert "lock is free" in out
    for host in faulty.fleet.names:
        assert faulty.fleet.current(host) not in (faulty.good, first_release)
        assert faulty.fleet.releases(host) == [faulty.good, first_release, faulty.fleet.current(host)]
        faulty.assert_clean(host)


def test_wait_lock_gives_up_after_its_duration_with_the_locked_error(faulty):
    first = faulty.popen("deploy", "-s", "test", *faulty.block_args("updating"))
    try:
        faulty.wait_blocked()
        started = time.monotonic()
        second = faulty.fap("deploy", "-s", "test", "--wait-lock", "3s")
        waited = time.monotonic() - started
        assert first.poll() is None
    finally:
        faulty.unblock()
        first.communicate(timeout=120)
    assert second.exit_code == 1, second.output
    assert "is locked by" in second.stderr and "'fap deploy'" in second.stderr
    assert "gave up waiting after 3s" in second.stdout
    assert waited >= 3
    assert first.returncode == 0


def test_wait_lock_never_waits_out_a_freeze(faulty):
    assert faulty.fap("lock", "-s", "test", "-m", REASON).exit_code == 0
    started = time.monotonic()
    refused = faulty.fap("deploy", "-s", "test", "--wait-lock", "5m")
    assert refused.exit_code == 5, refused.output
    assert REASON in refused.stderr
    assert time.monotonic() - started < 30
    faulty.assert_untouched()


def test_ctrl_c_while_waiting_stops_at_once_and_leaves_the_running_run_alone(faulty):
    first = faulty.popen("deploy", "-s", "test", *faulty.block_args("updating"))
    try:
        faulty.wait_blocked()
        second = faulty.popen("deploy", "-s", "test", "--wait-lock", "5m")
        faulty.wait_reported(second, "waiting up to 5m")
        started = time.monotonic()
        second.send_signal(signal.SIGINT)
        out, err = second.communicate(timeout=60)
        assert second.returncode == 130, out + err
        assert time.monotonic() - started < 20
        assert "interrupted while waiting for the lock" in err
        for host in faulty.fleet.names:
            assert faulty.fleet.locked(host), f"the interrupted wait removed the running run's lock on {host}"
        faulty.unblock()
        out, err = first.communicate(timeout=120)
    finally:
        faulty.unblock()
        first.kill()
    assert first.returncode == 0, out + err


def test_a_frozen_target_without_releases_shows_its_freeze_too(faulty):
    fresh = ["--path", "/home/deploy/www/fresh"]
    assert faulty.fap("lock", "-s", "test", "-m", REASON, *fresh).exit_code == 0

    releases = faulty.fap("releases", "-s", "test", *fresh)

    assert releases.exit_code == 0, releases.output
    assert "no releases yet" in releases.stdout
    assert "host1, host2, host3: frozen by" in releases.stdout and REASON in releases.stdout
    assert faulty.fap("deploy", "-s", "test", *fresh).exit_code == 5
    assert not faulty.fleet.in_host("host1", ["ls", "/home/deploy/www/fresh/releases"]).returncode == 0
