"""The plugin's declarations and its reading of supervisorctl, without a fleet."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest

from fapistrano import FapError

import fapistrano_supervisorctl
from fapistrano_supervisorctl import supervisorctl as sctl

README = Path(__file__).resolve().parents[1] / "README.md"

# What supervisorctl 4.2 printed in each case (captured from a real supervisord).
RUNNING_GROUP = """\
g:w1                             RUNNING   pid 4084, uptime 0:00:02
g:w2                             RUNNING   pid 4086, uptime 0:00:02
"""
FATAL = "app                              FATAL     Exited too quickly (process log may have details)\n"
STARTING = "app                              STARTING  \n"
NO_SUCH_GROUP = "app: ERROR (no such group)\n"
NO_SUCH_PROCESS = "g:nosuch: ERROR (no such process)\n"
NO_SOCKET = "unix:///tmp/nonexist no such file\n"
REFUSED = "unix:///var/run/supervisor.sock refused connection\n"
UPDATE_UNKNOWN = "ERROR: no such group: app\n"


def test_entry_point_is_fapistrano_supervisorctl():
    entry_points = {ep.name: ep for ep in metadata.entry_points(group="fapistrano")}
    assert entry_points["fapistrano.supervisorctl"].load() is fapistrano_supervisorctl


def test_every_setting_is_documented_with_its_default_in_readme_and_setting_docs():
    settings = fapistrano_supervisorctl.fap_settings()
    defaults = {s.name: s.default for s in settings}
    assert all(s.doc.strip() for s in settings)
    rows = dict(re.findall(r"^\| `(\w+)` \| (.+?) \|", README.read_text(), re.MULTILINE))
    assert set(rows) == set(defaults)
    for name, default in defaults.items():
        shown = str(default).lower() if isinstance(default, bool) else str(default)
        assert rows[name] == f"`{shown}`", name


def test_running_group_is_all_running_with_pids():
    status = sctl.parse_status(0, RUNNING_GROUP)
    assert status.answered and status.all_running and not status.unknown_program
    assert [(p.name, p.pid) for p in status.processes] == [("g:w1", 4084), ("g:w2", 4086)]


def test_fatal_process_is_settled_and_described_with_its_reason():
    status = sctl.parse_status(3, FATAL)
    assert not status.all_running
    assert [p.name for p in status.settled_not_running] == ["app"]
    assert status.describe() == "app FATAL Exited too quickly (process log may have details)"


def test_starting_process_is_waited_for():
    status = sctl.parse_status(0, STARTING)
    assert not status.all_running and not status.settled_not_running
    assert status.describe() == "app STARTING"


@pytest.mark.parametrize("output", [NO_SUCH_GROUP, NO_SUCH_PROCESS])
def test_unknown_program_is_an_answer(output):
    status = sctl.parse_status(4, output)
    assert status.unknown_program and status.answered


@pytest.mark.parametrize("output", [NO_SOCKET, REFUSED, "sh: 1: supervisorctl: not found\n", ""])
def test_missing_socket_refusal_or_no_supervisorctl_is_no_answer(output):
    status = sctl.parse_status(4, output)
    assert not status.answered
    assert status.describe() == (output.strip() or "no output (exit 4)")


def test_update_of_an_unknown_group_says_unknown():
    assert sctl.says_unknown(UPDATE_UNKNOWN)
    assert not sctl.says_unknown("app: ERROR (spawn error)\n")


def test_command_splits_the_setting_and_quotes_every_word():
    text = sctl.command("supervisorctl -c '/etc/my supervisor/supervisord.conf'", "restart", "web:*")
    assert text == "supervisorctl -c '/etc/my supervisor/supervisord.conf' restart 'web:*'"
    assert sctl.command("sudo -n supervisorctl", "status", "app; rm -rf /") == "sudo -n supervisorctl status 'app; rm -rf /'"


@pytest.mark.parametrize("setting", ["supervisorctl -c 'unclosed", "  "])
def test_unusable_supervisorctl_setting_is_a_clear_error(setting):
    with pytest.raises(FapError, match="^supervisorctl: "):
        sctl.command(setting, "status")


def test_reread_names_each_changed_group_and_pid_says_supervisord_answers():
    reread = "app: changed\nextra: available\nold: disappeared\nother: ERROR (no such group)\n"
    assert sctl.parse_reread(reread) == [("app", "changed"), ("extra", "available"), ("old", "disappeared")]
    assert sctl.parse_reread("No config updates to processes\n") == []
    assert sctl.says_error("ERROR: CANT_REREAD: File contains no section headers.\n")
    assert sctl.parse_pid(0, "4242\n").answered
    down = sctl.parse_pid(2, NO_SOCKET)
    assert not down.answered and down.asked == ("pid",) and down.describe() == NO_SOCKET.strip()


@pytest.mark.parametrize(("program", "group"), [("app", "app"), ("web:*", "web"), ("web:web_00", "web")])
def test_group_of_program(program, group):
    assert sctl.group_of(program) == group
