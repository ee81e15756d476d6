"""A command's output as fap keeps it: exact while small, its tail and a count when heavy, lines as printed."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from fapistrano.remote import KEEP_CHARS, Host


@pytest.fixture(params=["ssh", "local"])
def host(request: Any) -> Iterator[Host]:
    if request.param == "ssh":
        fleet = request.getfixturevalue("fap_fleet")
        connection = Host("host1", fleet.ssh_settings("host1"), control_dir=tempfile.mkdtemp(prefix="fap-t-"))
    else:
        connection = Host("local", None)
    connection.connect()
    yield connection
    connection.close()


def test_heavy_output_keeps_its_tail_and_counts_the_lines_before_it(host: Host) -> None:
    result = host.run("seq 1 3000000; seq 1 10 >&2")

    assert result.exit_code == 0
    assert len(result.stdout) <= KEEP_CHARS
    kept = result.stdout.splitlines()
    assert kept[-1] == "3000000" and int(kept[0]) == result.stdout_dropped + 1  # from a line's start
    assert result.stdout_dropped + len(kept) == 3000000
    assert (result.stderr, result.stderr_dropped) == ("".join(f"{n}\n" for n in range(1, 11)), 0)
    assert host.run("echo after").stdout == "after\n"  # still in step


@pytest.mark.parametrize("output", ["", "a", "a\n", "a\n\nb\n\n", "\n", "\n\n", "x" * 200_000 + "\nend"])
def test_each_line_reaches_on_line_once_as_printed(host: Host, output: str) -> None:
    lines: list[str] = []
    result = host.run(f"printf '%s' '{output}'", on_line=lambda stream, line: lines.append(line))

    assert result.stdout == output
    assert lines == (output.split("\n")[:-1] if output.endswith("\n") else output.split("\n") if output else [])


def test_a_latest_only_reader_gets_the_last_line_not_every_line(host: Host) -> None:
    lines: list[str] = []

    def latest(stream: str, line: str) -> None:
        lines.append(line)

    latest.latest_only = True  # type: ignore[attr-defined]
    result = host.run("seq 1 200000; printf 'last'", on_line=latest)

    assert result.stdout.endswith("200000\nlast")
    assert lines[-1] == "last" and len(lines) < 1000


def test_the_json_log_bounds_each_text_and_says_how_much_more_there_was() -> None:
    import io
    import json

    from fapistrano.ui import JSON_TEXT_CHARS, Event, HostResult, JsonLog

    stream = io.StringIO()
    log = JsonLog(stream)
    log.handle(Event("command", host="web1", message="x" * 300_000, data={"step": "y" * 300_000}))
    log.handle(Event("output", host="web1", message="a line"))  # output lines are not logged
    log.summary("fap deploy: FAILED", [HostResult("web1", "test/web", "failed", error="z" * 300_000)], False)

    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [event["kind"] for event in events] == ["command", "summary", "end"]
    assert events[0]["message"] == "x" * JSON_TEXT_CHARS + f"… ({300_000 - JSON_TEXT_CHARS} more characters)"
    assert len(events[0]["data"]["step"]) < JSON_TEXT_CHARS + 100 and len(events[1]["error"]) < JSON_TEXT_CHARS + 100


class Recorder:
    """A reporter that reads as much output as it says, and keeps every event it gets."""

    def __init__(self, wanted: str) -> None:
        self.wanted = wanted
        self.events: list[Any] = []

    def output_wanted(self) -> str:
        return self.wanted

    def handle(self, event: Any) -> None:
        self.events.append(event)


def test_a_local_command_with_heavy_output_keeps_its_tail_and_sends_no_line_nobody_reads() -> None:
    from fapistrano.errors import CommandFailed
    from fapistrano.run import Run

    nobody, everyone = Recorder("none"), Recorder("all")
    heavy = f"yes 'a line of output' | head -n {KEEP_CHARS // 10}; echo last words >&2; exit 3"
    for reporter in (nobody, everyone):
        run = Run("deploy", ("local",), (), {}, reporter=reporter)
        with pytest.raises(CommandFailed) as failed:
            run.local(heavy)
        assert failed.value.status == 3 and "last words" in failed.value.stderr
        assert len(failed.value.stdout) <= KEEP_CHARS + 1
    assert not [event for event in nobody.events if event.kind == "output"]
    assert len([event for event in everyone.events if event.kind == "output"]) == KEEP_CHARS // 10 + 1


def test_a_local_commands_output_is_returned_whole_while_small() -> None:
    from fapistrano.run import Run

    run = Run("deploy", ("local",), (), {}, reporter=Recorder("latest"))
    assert run.local("printf 'one\\ntwo\\n'; printf 'x' >&2") == "one\ntwo"
