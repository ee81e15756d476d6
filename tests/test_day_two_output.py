"""``fap history`` and ``fap releases`` print what the hosts' records say as text: never markup, never a terminal
escape, never cut to fit 80 columns in a pipe. On a local target (``connection: local``): no root and no SSH needed."""

from __future__ import annotations

import json
from typing import Any

#: A deployer name from CI, a rich closing tag and an escape sequence: each shown as written, the escape as \x1b.
WHO = "dependabot[bot] [/oops] \x1b[31m@ci"
SHOWN = "dependabot[bot] [/oops] \\x1b[31m@ci"


def test_history_shows_who_as_written_and_whole(fap_local: Any, fap_run: Any) -> None:
    fap_local.write_deployfile()
    deployed = fap_run(["deploy", "-s", "test"], cwd=fap_local.root, env={"FAP_WHO": WHO})
    assert deployed.exit_code == 0, deployed.output

    shown = fap_run(["history", "-s", "test"], cwd=fap_local.root)

    assert shown.exit_code == 0, shown.output
    assert SHOWN in shown.stdout, shown.stdout
    assert "\x1b" not in shown.output
    assert "hosts" in shown.stdout.splitlines()[1]  # the header, whole at COLUMNS=80 in a pipe
    as_json = fap_run(["history", "-s", "test", "--json"], cwd=fap_local.root)
    assert json.loads(as_json.stdout)["who"] == WHO  # JSON carries it exactly (escaped as JSON escapes it)


def test_releases_shows_a_mark_edited_by_hand_as_text(fap_local: Any, fap_run: Any) -> None:
    fap_local.write_deployfile()
    assert fap_run(["deploy", "-s", "test"], cwd=fap_local.root).exit_code == 0
    assert fap_run(["deploy", "-s", "test"], cwd=fap_local.root, env={"FAP_WHO": WHO}).exit_code == 0
    assert fap_run(["rollback", "-s", "test"], cwd=fap_local.root, env={"FAP_WHO": WHO}).exit_code == 0

    shown = fap_run(["releases", "-s", "test"], cwd=fap_local.root)

    assert shown.exit_code == 0, shown.output
    assert f"is marked bad by {SHOWN} at" in shown.stdout, shown.stdout
    assert "\x1b" not in shown.output


#: An 8-bit escape (CSI, U+009B), which JSON may carry raw but a terminal acts on; and a name JSON need not escape.
WHO_8BIT = "José \x9b31m@ci\x7f"


def test_history_json_escapes_every_control_character(fap_local: Any, fap_run: Any) -> None:
    fap_local.write_deployfile()
    assert fap_run(["deploy", "-s", "test"], cwd=fap_local.root, env={"FAP_WHO": WHO_8BIT}).exit_code == 0

    shown = fap_run(["history", "-s", "test", "--json"], cwd=fap_local.root)

    assert shown.exit_code == 0, shown.output
    assert "\x9b" not in shown.output and "\x7f" not in shown.output
    assert "José \\u009b31m@ci\\u007f" in shown.stdout  # UTF-8 stays readable; the controls are JSON escapes
    assert json.loads(shown.stdout)["who"] == WHO_8BIT


def test_json_line_is_valid_json_with_no_control_character_raw() -> None:
    from fapistrano.ui import json_line

    value = {"revision": "\x9b2J\x1b[2J\x00\x7f", "name": "Zoë ✓", "list": ["\x85"]}

    line = json_line(value)

    assert json.loads(line) == value
    assert line.isprintable()


#: A secret JSON would spell otherwise than it is written: a quote, a backslash and letters beyond ASCII.
SECRET = 'Zq9-pä"ss\\wörd'


def test_history_json_masks_a_secret_in_every_value(fap_local: Any, fap_run: Any) -> None:
    fap_local.write_deployfile({"mask": ["db_password"], "db_password": SECRET})
    deployed = fap_run(["deploy", "-s", "test"], cwd=fap_local.root, env={"FAP_WHO": f"ci {SECRET}"})
    assert deployed.exit_code == 0, deployed.output

    shown = fap_run(["history", "-s", "test", "--json"], cwd=fap_local.root)

    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["who"] == "ci ***"
    assert "Zq9" not in shown.output and "ss" not in shown.output


def test_the_hosts_records_hold_no_secret(fap_local: Any, fap_run: Any) -> None:
    fap_local.write_deployfile({"mask": ["db_password"], "db_password": SECRET})
    assert fap_run(["deploy", "-s", "test"], cwd=fap_local.root).exit_code == 0
    assert fap_run(["deploy", "-s", "test"], cwd=fap_local.root).exit_code == 0
    rolled = fap_run(["rollback", "-s", "test"], cwd=fap_local.root, env={"FAP_WHO": f"ci {SECRET}"})
    assert rolled.exit_code == 0, rolled.output

    written = {path: path.read_text() for path in (fap_local.path / ".fap").rglob("*") if path.is_file()}

    assert any(p.name == "history.jsonl" for p in written) and any(p.name.endswith(".bad.json") for p in written)
    assert all("ci ***" in text for p, text in written.items() if p.name.endswith(".bad.json"))
    assert not [p for p, text in written.items() if "Zq9" in text]


def test_a_migration_mark_holds_no_secret(fap_local: Any, fap_run: Any) -> None:
    fap_local.write_deployfile({"mask": ["db_password"], "db_password": SECRET,
                                "hooks": {"updated": [{"run": "echo migrating with %(db_password)s", "migrates": True}]}})
    deployed = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)
    assert deployed.exit_code == 0, deployed.output

    marks = list((fap_local.path / ".fap" / "marks").glob("*.migrated.json"))
    shown = fap_run(["releases", "-s", "test"], cwd=fap_local.root)

    assert len(marks) == 1 and "echo migrating with" in marks[0].read_text()
    assert "Zq9" not in marks[0].read_text()
    assert "migrated" in shown.stdout and "Zq9" not in shown.output
