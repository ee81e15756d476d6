"""Binary stdin of any size: ``ctx.run(command, stdin=<file or bytes>)`` streamed through the run's one connection.

Against the real fleet (and ``connection: local``): the bytes arrive exactly,
fap's memory stays flat whatever the size, the command's exit status counts,
and the session is in step afterwards.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fapistrano.remote import Host


@pytest.fixture
def host(fap_fleet: Any) -> Iterator[Host]:
    connection = Host("host1", fap_fleet.ssh_settings("host1"), control_dir=tempfile.mkdtemp(prefix="fap-t-"))
    connection.connect()
    yield connection
    connection.close()


@pytest.mark.fleet
def test_twenty_megabytes_from_a_file_arrive_byte_exact_over_ssh(host: Host, tmp_path: Path) -> None:
    data = os.urandom(20 * 1024 * 1024 + 13)
    (tmp_path / "blob").write_bytes(data)
    with open(tmp_path / "blob", "rb") as stream:
        result = host.run("sha256sum | cut -d' ' -f1; wc -c </dev/null", stdin=stream)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split("\n")[0] == hashlib.sha256(data).hexdigest()
    # In step afterwards: no byte of the stream is read as a command.
    assert host.run("echo $((6 * 7))").stdout == "42\n"


@pytest.mark.fleet
def test_iterables_and_bytes_empty_streams_and_exit_status(host: Host) -> None:
    assert host.run("od -An -c | tr -d ' \\n'", stdin=iter([b"a", b"", b"b\0c"])).stdout == "ab\\0c"
    assert host.run("wc -c", stdin=b"").stdout.strip() == "0"
    # A script that exits before reading everything: its status is what counts.
    result = host.run("head -c 5; echo; exit 7", stdin=b"x" * (3 * 1024 * 1024))
    assert (result.exit_code, result.stdout) == (7, "xxxxx\n")
    assert host.run("echo after").stdout == "after\n"
    # The FIFO's private directory is gone.
    assert host.run("ls -d ${TMPDIR:-/tmp}/fap-stdin.* 2>/dev/null | wc -l").stdout.strip() == "0"


@pytest.mark.fleet
def test_a_script_over_the_argument_size_limit_with_a_binary_stdin(host: Host) -> None:
    script = "".join(f": {'x' * 70}\n" for _ in range(3000)) + "wc -c; exit 4\n"
    result = host.run(script, stdin=b"\xff" * 100_000)
    assert (result.exit_code, result.stdout.strip()) == (4, "100000")


def test_a_binary_stdin_over_connection_local(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 1)
    local = Host("localhost", None)
    result = local.run(f"cat > {tmp_path / 'out'}; exit 2", stdin=io.BytesIO(data))
    assert result.exit_code == 2
    assert (tmp_path / "out").read_bytes() == data


MEMORY_PROBE = textwrap.dedent("""
    import resource, sys
    from fapistrano.remote import Host, SshSettings
    ssh = SshSettings(host="host1", user="deploy", port=None, ssh_config=sys.argv[1], ssh_options=(), connect_timeout=10)
    host = Host("host1", ssh, control_dir=sys.argv[2])
    host.connect()
    host.run("true", stdin=b"warm up" * 100_000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    pieces = (bytes([i % 251]) * 65536 for i in range(int(sys.argv[3]) * 16))
    result = host.run("wc -c", stdin=pieces)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    host.close()
    print(result.stdout.strip(), before, after)
""")


@pytest.mark.fleet
def test_memory_stays_flat_whatever_the_size(fap_fleet: Any) -> None:
    megabytes = 120
    probe = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(fap_fleet.ssh_config), tempfile.mkdtemp(prefix="fap-t-"),
                            str(megabytes)], capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr
    size, before, after = (int(word) for word in probe.stdout.split())
    assert size == megabytes * 1024 * 1024
    # ru_maxrss is in KiB: the stream may hold a few pieces of 1 MiB, never the 120 MiB.
    assert after - before < 16 * 1024, (before, after)


@pytest.mark.fleet
def test_a_binary_stdin_travels_on_the_run_s_connection_not_a_new_one(fap_fleet: Any, host: Host) -> None:
    # The host's sshd stops listening: only the connection the run holds can still carry a command.
    listener = fap_fleet.hosts["host1"].process
    listener.terminate()
    listener.wait(timeout=10)

    result = host.run("wc -c; id -un", stdin=b"\0" * 300_000)

    assert (result.exit_code, result.stdout.split()) == (0, ["300000", "deploy"]), result.stderr


@pytest.mark.fleet
def test_a_cancelled_binary_stdin_command_is_killed_on_the_host(fap_fleet: Any, host: Host, tmp_path: Path) -> None:
    import threading
    import time

    marker = "fap-cancel-" + os.urandom(4).hex()
    started = threading.Event()
    outcome: list[BaseException | object] = []

    def run() -> None:
        try:
            outcome.append(host.run(f"echo started; exec sh -c 'sleep 300; :' {marker}",
                                    on_line=lambda _stream, _line: started.set(), stdin=b"x" * 1000))
        except BaseException as error:  # noqa: BLE001 - the test reads it below
            outcome.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    assert started.wait(20)
    host.cancel()
    worker.join(20)

    assert outcome and isinstance(outcome[0], BaseException), outcome
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        listed = fap_fleet.in_host("host1", ["pgrep", "-f", marker])
        if listed.returncode != 0:
            break
        time.sleep(0.1)
    assert listed.returncode != 0, "the command still runs on the host"
    assert host.run("echo still here").stdout == "still here\n"
