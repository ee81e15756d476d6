"""The event kinds --log-json readers are told about are exactly the kinds fap emits."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fapistrano.ui import EVENT_KINDS, Event

ROOT = Path(__file__).resolve().parents[1]
#: Lines of the JSON log that are not events: the summary's rows and the last line.
LOG_ONLY = {"summary", "end"}


def documented_kinds() -> set[str]:
    text = (ROOT / "docs" / "failures.rst").read_text()
    table = text[text.index("Each line has a ``kind``"):]
    table = table[:table.index("\n\n\n")]
    return set(re.findall(r"^   \* - ``(\w+)``$", table, re.M))


def emitted_kinds() -> set[str]:
    """Every kind a source file of the core passes to Event(...), emit(...) or _emit(...)."""
    found: set[str] = set()
    for path in (ROOT / "fapistrano").rglob("*.py"):
        found |= set(re.findall(r"""(?:\bEvent\(|\bemit\(|\b_emit\()(?:kind=)?["'](\w+)["']""", path.read_text()))
    return found


def test_the_docs_list_exactly_the_event_kinds_and_the_log_only_lines() -> None:
    assert documented_kinds() == set(EVENT_KINDS) | LOG_ONLY


def test_every_event_kind_is_emitted_and_nothing_else_is() -> None:
    assert emitted_kinds() == set(EVENT_KINDS)


def test_an_unknown_kind_is_refused_where_it_is_made() -> None:
    with pytest.raises(ValueError, match="unknown event kind 'phase_end'"):
        Event("phase_end")


def test_a_deploys_json_log_holds_only_documented_kinds(fap_local, fap_run, tmp_path) -> None:
    fap_local.write_deployfile()
    log = tmp_path / "events.jsonl"

    result = fap_run(["deploy", "-s", "test", "--log-json", str(log)], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    kinds = {json.loads(line)["kind"] for line in log.read_text().splitlines()}
    assert kinds <= documented_kinds() - {"output"}
    assert {"run", "phase", "phase_done", "command", "summary", "end"} <= kinds
