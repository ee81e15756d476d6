"""The ssh transport: one session per host, commands as lines on its shell's stdin.

Against the real fleet: each test builds a :class:`fapistrano.remote.Host` the
way the runner does and checks what a caller of ``run()`` sees.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fapistrano.errors import HostUnreachable
from fapistrano.remote import Host


@pytest.fixture
def host(fap_fleet: Any) -> Iterator[Host]:
    connection = Host("host1", fap_fleet.ssh_settings("host1"), control_dir=tempfile.mkdtemp(prefix="fap-t-"))
    connection.connect()
    yield connection
    connection.close()


def test_output_exit_codes_and_edges_of_lines(host: Host) -> None:
    lines: list[tuple[str, str]] = []
    result = host.run("printf 'a\\n\\nb\\n\\n'; printf 'no newline' >&2; exit 3", on_line=lambda stream, line: lines.append((stream, line)))
    assert (result.exit_code, result.stdout, result.stderr) == (3, "a\n\nb\n\n", "no newline")
    assert ("stdout", "") in lines and ("stderr", "no newline") in lines
    assert host.run("printf 'tail'").stdout == "tail"
    assert host.run("true").stdout == "" and host.run("echo").stdout == "\n"
    # The session is still in step after all of that.
    assert host.run("echo $((6 * 7))").stdout == "42\n"


def test_long_and_binary_output(host: Host) -> None:
    result = host.run("head -c 300000 /dev/zero | tr '\\0' x; echo; head -c 4096 /dev/urandom; echo; echo done")
    first = result.stdout.split("\n", 1)[0]
    assert first == "x" * 300000
    assert result.stdout.endswith("\ndone\n") and result.exit_code == 0
    assert host.run("echo after").stdout == "after\n"


def test_a_command_reading_stdin_gets_dev_null_not_the_session(host: Host) -> None:
    result = host.run("cat; echo read-done")
    assert result.stdout == "read-done\n"
    assert host.run("echo still-here").stdout == "still-here\n"


def test_stdin_text_is_fed_exactly_and_never_on_a_command_line(fap_fleet: Any, host: Host) -> None:
    secret = "user:s3cret-'\"$HOME`x`\nFAP-end\n\\ no final newline"
    seen: list[str] = []
    processes = Path(fap_fleet.hosts["host1"].path("/home/deploy/www/ps.txt"))
    received = Path(fap_fleet.hosts["host1"].path("/home/deploy/www/stdin.txt"))
    script = "ps -eo args > /home/deploy/www/ps.txt; cat > /home/deploy/www/stdin.txt; echo fed"
    result = host.run(script, on_line=lambda stream, line: seen.append(line), stdin=secret)
    assert received.read_text() == secret and result.exit_code == 0
    assert seen == ["fed"] and "s3cret" not in result.stdout + result.stderr
    # Every process while the command ran (the fleet shares this machine's pid namespace): the text is in no argv.
    table = processes.read_text()
    assert "ps -eo args" in table and "s3cret" not in table
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                assert b"s3cret" not in Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
    assert host.run("cat | wc -c", stdin="").stdout.strip() == "0"


def test_background_process_keeping_stdout_open_does_not_hang(host: Host) -> None:
    result = host.run("nohup sleep 30 & echo started")
    assert result.stdout.startswith("started") and result.exit_code == 0
    result = host.run("(sleep 0.2; printf 'late, no newline') & echo next")
    assert result.stdout.startswith("next")
    assert host.run("sleep 0.5; echo third").stdout.endswith("third\n")
    assert host.run("echo $((1 + 1))").stdout == "2\n"


def test_connect_errors_are_one_line(fap_fleet: Any) -> None:
    fap_fleet.kill_host("host2")
    try:
        with pytest.raises(HostUnreachable) as caught:
            Host("host2", fap_fleet.ssh_settings("host2")).connect()
        message = str(caught.value)
        assert message.startswith("host2: cannot connect: ") and "\n" not in message
        assert "Connection refused" in message
    finally:
        fap_fleet.start_host("host2")
        fap_fleet.wait_ready("host2")


def test_last_command_runs_before_the_session_ends(fap_fleet: Any) -> None:
    connection = Host("host3", fap_fleet.ssh_settings("host3"))
    connection.connect()
    connection.run("echo kept > /home/deploy/www/last.txt")
    result = connection.close(last="cat /home/deploy/www/last.txt; rm /home/deploy/www/last.txt; exit 3")
    assert result is not None and (result.exit_code, result.stdout) == (3, "kept\n")
    assert not Path(fap_fleet.hosts["host3"].path("/home/deploy/www/last.txt")).exists()
    with pytest.raises(HostUnreachable, match="not connected"):
        connection.run("true")


def test_lost_connection_mid_command(fap_fleet: Any) -> None:
    connection = Host("host2", fap_fleet.ssh_settings("host2"))
    connection.connect()
    try:
        killer = threading.Timer(1.0, fap_fleet.kill_host, args=("host2",))
        killer.start()
        with pytest.raises(HostUnreachable) as caught:
            connection.run("echo begun; sleep 60")
        killer.join()
        assert str(caught.value).startswith("host2: connection lost")
        with pytest.raises(HostUnreachable, match="connection lost"):
            connection.run("true")  # no reconnect after a real loss
    finally:
        connection.close()
        fap_fleet.start_host("host2")
        fap_fleet.wait_ready("host2")


def test_cancel_stops_the_command_and_the_next_run_reconnects(fap_fleet: Any, host: Host) -> None:
    started = threading.Event()
    outcome: dict[str, BaseException] = {}

    def long_command() -> None:
        try:
            host.run("echo begun; sleep 60; touch /home/deploy/www/not-cancelled",
                     on_line=lambda stream, line: started.set())
        except HostUnreachable as error:
            outcome["error"] = error

    worker = threading.Thread(target=long_command)
    worker.start()
    assert started.wait(30)
    host.cancel()
    worker.join(30)
    assert not worker.is_alive() and "killed" in str(outcome["error"])
    # The failure path can still clean up on this host, and plumbum's session follows the new connection.
    assert host.run("echo cleanup").stdout == "cleanup\n"
    assert host.machine["echo"]("plumbum") == "plumbum\n"
    assert not Path(fap_fleet.hosts["host1"].path("/home/deploy/www/not-cancelled")).exists()


def test_plumbum_machine_multiplexes_over_the_session(host: Host) -> None:
    assert host.machine["uname"]("-n").strip()
    assert host.run("echo side by side").stdout == "side by side\n"


def test_close_does_not_wait_for_a_background_process(fap_fleet: Any) -> None:
    connection = Host("host3", fap_fleet.ssh_settings("host3"))
    connection.connect()
    connection.run("nohup sleep 60 >/dev/null 2>&1 & sleep 100 &")
    session = connection._session
    assert session is not None
    connection.close()
    assert session.process.poll() is not None


# A script of ~300 KB: over Linux's 128 KiB cap on one argument (MAX_ARG_STRLEN).
BIG_SCRIPT = "".join(f"echo line-{n}-{'x' * 60} >/dev/null\n" for n in range(4000)) + "echo big-done; exit 5\n"


def test_a_script_over_the_argument_size_limit_runs_over_ssh(host: Host) -> None:
    assert len(BIG_SCRIPT) > 128 * 1024
    result = host.run(BIG_SCRIPT, stdin="fed\n")
    assert (result.exit_code, result.stdout, result.stderr) == (5, "big-done\n", "")
    result = host.run(BIG_SCRIPT.replace("echo big-done", "cat"), stdin="fed\n")
    assert (result.exit_code, result.stdout) == (5, "fed\n")
    assert host.run("echo after").stdout == "after\n"


def test_a_script_over_the_argument_size_limit_runs_locally(tmp_path: Path) -> None:
    local = Host("localhost", None)
    result = local.run(BIG_SCRIPT.replace("echo big-done", "cat; echo big-done"), stdin="fed\n")
    assert (result.exit_code, result.stdout, result.stderr) == (5, "fed\nbig-done\n", "")
    # A script that reads stdin without being given any gets end of file, as over ssh.
    assert local.run("cat; echo read-done").stdout == "read-done\n"
    # Lines that look like the end of a here-document are the script's own.
    result = local.run("cat <<'EOF'\nEOF-not\nEOF\necho $((6 * 7))")
    assert result.stdout == "EOF-not\n42\n"


def _ssh_config_with(fap_fleet: Any, tmp_path: Path, old: str, new: str) -> Any:
    """host1's ssh settings with one line of the fleet's ssh config changed."""
    import dataclasses

    text = Path(fap_fleet.ssh_config).read_text()
    assert old in text
    config = tmp_path / "ssh_config"
    config.write_text(text.replace(old, new))
    return dataclasses.replace(fap_fleet.ssh_settings("host1"), ssh_config=str(config))


def test_a_key_the_host_refuses_keeps_sshs_words_and_names_the_key_tried(fap_fleet: Any, tmp_path: Path) -> None:
    import subprocess

    wrong = tmp_path / "id_wrong"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    settings = _ssh_config_with(fap_fleet, tmp_path, f"IdentityFile {fap_fleet.key}", f"IdentityFile {wrong}")
    with pytest.raises(HostUnreachable) as caught:
        Host("host1", settings, control_dir=tempfile.mkdtemp(prefix="fap-t-")).connect()
    message = str(caught.value)
    assert message.startswith("host1: cannot connect: ") and "\n" not in message
    assert "Permission denied (publickey)" in message  # ssh's own words
    assert message.endswith(f"; ssh offered the key {wrong} as user deploy: add its public key ({wrong}.pub) to the host's"
                            " ~/.ssh/authorized_keys, or name the right key with IdentityFile in the ssh config"
                            " or ssh_options: [-i, KEY]"), message


def test_an_unknown_host_key_keeps_sshs_words_and_says_how_to_add_it(fap_fleet: Any, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    settings = _ssh_config_with(fap_fleet, tmp_path, f"UserKnownHostsFile {fap_fleet.dir / 'known_hosts'}",
                                f"UserKnownHostsFile {known}")
    with pytest.raises(HostUnreachable) as caught:
        Host("host1", settings, control_dir=tempfile.mkdtemp(prefix="fap-t-")).connect()
    message = str(caught.value)
    assert message.startswith("host1: cannot connect: ") and "\n" not in message
    assert "Host key verification failed" in message
    address, port = fap_fleet.hosts["host1"].address, fap_fleet.port
    assert message.endswith(f"; the host's key is not in {known}: check its fingerprint, then add it"
                            f" (ssh-keyscan -p {port} {address} >> {known}, each line's host name replaced by fap-fleet,"
                            " its HostKeyAlias),"
                            " or name a known_hosts file with ssh_options: [-o, UserKnownHostsFile=FILE]"), message


def test_a_changed_host_key_keeps_sshs_words_and_says_how_to_replace_it(fap_fleet: Any, tmp_path: Path) -> None:
    import subprocess

    other = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    known = tmp_path / "known_hosts"
    kind, key = Path(f"{other}.pub").read_text().split()[:2]
    known.write_text(f"fap-fleet {kind} {key}\n")
    settings = _ssh_config_with(fap_fleet, tmp_path, f"UserKnownHostsFile {fap_fleet.dir / 'known_hosts'}",
                                f"UserKnownHostsFile {known}")
    with pytest.raises(HostUnreachable) as caught:
        Host("host1", settings, control_dir=tempfile.mkdtemp(prefix="fap-t-")).connect()
    message = str(caught.value)
    assert "Host key verification failed" in message and "\n" not in message
    assert message.endswith(f"; the host's key is not the one {known} holds for fap-fleet: if the server was rebuilt"
                            f" or its key replaced, check the new fingerprint, then remove the old one"
                            f" (ssh-keygen -f {known} -R fap-fleet)"), message


def test_fap_deploy_with_a_refused_key_says_what_ssh_said_and_what_to_do(fap_fleet: Any, fap_run: Any, tmp_path: Path) -> None:
    import subprocess

    wrong = tmp_path / "id_wrong"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    settings = _ssh_config_with(fap_fleet, tmp_path, f"IdentityFile {fap_fleet.key}", f"IdentityFile {wrong}")
    fap_fleet.write_deployfile(tmp_path, {"ssh_config": settings.ssh_config}, hosts=["host1"])

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("fap: error:")]
    assert len(errors) == 1 and "Permission denied (publickey)" in errors[0], result.stderr
    assert errors[0].endswith(f"; ssh offered the key {wrong} as user deploy: add its public key ({wrong}.pub) to the"
                              " host's ~/.ssh/authorized_keys, or name the right key with IdentityFile in the ssh config"
                              " or ssh_options: [-i, KEY]"), result.stderr
    assert "Traceback" not in result.output and fap_fleet.current("host1") is None


def test_commands_sent_later_go_with_the_next_command_in_one_round_trip(host: Host) -> None:
    seen: list[tuple[int, str, str]] = []

    def record(result: Any) -> None:
        seen.append((result.exit_code, result.stdout, result.stderr))

    before = host.round_trips
    # Fast commands: their markers and the next one's output arrive in one read, and must still be told apart.
    host.run_later("echo one; echo err-one >&2", record)
    host.run_later("printf two", record)
    result = host.run("echo three")

    assert seen == [(0, "one\n", "err-one\n"), (0, "two", "")]
    assert (result.exit_code, result.stdout) == (0, "three\n")
    assert host.round_trips == before + 1
    assert host.run("echo $((6 * 7))").stdout == "42\n"  # still in step


def test_after_a_command_sent_later_fails_the_rest_do_not_run(fap_fleet: Any, host: Host) -> None:
    marker = "/home/deploy/www/not-run.txt"

    def fail(result: Any) -> None:
        raise RuntimeError(f"exit {result.exit_code}: {result.stderr.strip()}")

    host.run_later("echo broken >&2; exit 4", fail)
    host.run_later(f"touch {marker}", lambda result: None)
    with pytest.raises(RuntimeError, match="exit 4: broken"):
        host.run(f"touch {marker}")

    assert not Path(fap_fleet.hosts["host1"].path(marker)).exists()
    assert host.run("echo fine").stdout == "fine\n"


def test_commands_sent_later_go_with_the_last_command_which_runs_whatever_happened(fap_fleet: Any) -> None:
    def fail(result: Any) -> None:
        raise RuntimeError(f"exit {result.exit_code}")

    connection = Host("host2", fap_fleet.ssh_settings("host2"))
    connection.connect()
    connection.run_later("exit 5", fail)

    result = connection.close(last="echo unlocked")

    assert result is not None and result.stdout == "unlocked\n"
    assert isinstance(connection.failed_at_close, RuntimeError) and "exit 5" in str(connection.failed_at_close)
    assert connection.round_trips == 1


def test_a_session_holds_two_descriptors_so_hundreds_of_hosts_fit_the_usual_limit(fap_fleet: Any) -> None:
    before = len(os.listdir("/proc/self/fd"))
    connections = [Host(name, fap_fleet.ssh_settings(name), control_dir=tempfile.mkdtemp(prefix="fap-t-"))
                   for name in ("host1", "host2", "host3")]
    for connection in connections:
        connection.connect()
    try:
        assert all(c.run("echo up").stdout == "up\n" for c in connections)
        assert len(os.listdir("/proc/self/fd")) - before <= 2 * len(connections)
    finally:
        for connection in connections:
            connection.close()
    # Each session's reader closes its end once ssh has gone: soon after close(), not necessarily before it returns.
    deadline = time.monotonic() + 5
    while len(os.listdir("/proc/self/fd")) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(os.listdir("/proc/self/fd")) <= before
