"""The package's shape: what each module may know, checked by reading the source."""

from __future__ import annotations

import ast
from pathlib import Path

import fapistrano
from fapistrano import flows

PACKAGE = Path(fapistrano.__file__).parent
PHASE_NAMES = {str(phase) for phase in flows.Phase}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _phase_lists(tree: ast.AST) -> list[tuple[int, list[str]]]:
    """Every literal tuple, list, set or dict (its keys) of ``tree`` holding two strings or more, each a phase's name.

    (A list of host statuses shares two words with the phases, ``failed`` and
    ``reverted``, beside words of its own: it is not a list of phases.)
    """
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            items = node.elts
        elif isinstance(node, ast.Dict):
            items = [key for key in node.keys if key is not None]
        else:
            continue
        names = [item.value for item in items if isinstance(item, ast.Constant) and isinstance(item.value, str)]
        if len(names) >= 2 and set(names) <= PHASE_NAMES:
            found.append((node.lineno, names))
    return found


def test_no_module_but_flows_spells_a_list_of_phases() -> None:
    spelled = {
        f"{path.relative_to(PACKAGE.parent)}:{line}": names
        for path in _modules() if path != PACKAGE / "flows.py"
        for line, names in _phase_lists(ast.parse(path.read_text(encoding="utf-8")))
    }
    assert not spelled, f"read the phases from fapistrano.flows instead: {spelled}"


def test_the_phase_table_is_what_hooks_validation_steps_hookspecs_and_live_view_read() -> None:
    from fapistrano import config, hookspecs, ui
    from fapistrano.plugins import Plugins

    assert config.HOOK_PHASES == tuple(str(phase) for phase in flows.Phase)
    spec_hooks = {name for name, value in vars(hookspecs).items() if hasattr(value, "fapistrano_spec")}
    assert {flows.hook_name(phase) for phase in flows.Phase} <= spec_hooks
    assert set(Plugins().implemented_hooks("core.steps")) == {flows.hook_name(phase) for phase in flows.Phase}
    assert ui.LAST_PHASES == {flow.phases[-1] for flow in flows.FLOWS} == {"finished", "restarted"}
