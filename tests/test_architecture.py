"""The package's shape, read from its source: what each module may know.

No import cycle, an engine that knows no built-in and no command, one table of
phases.

DESIGN.md's layout: data flows cli -> commands -> compose -> engine -> remote
-> ui, never back. The imports are read with :mod:`ast` (nothing is
imported); an import under ``if TYPE_CHECKING:`` is a type's name, not a
dependency, and is left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from fapistrano import flows

PACKAGE = Path(__file__).resolve().parents[1] / "fapistrano"
PHASE_NAMES = {str(phase) for phase in flows.Phase}
#: The engine: phases, barriers, hosts, outcomes, signals.
ENGINE = "fapistrano.runner"
#: Lines the engine may have: it grew to 934 once, with everything around it inside.
ENGINE_LINE_LIMIT = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: Path, *, lazy: bool) -> set[str]:
    """The ``fapistrano`` modules ``path`` imports: at its top level, and inside functions too with ``lazy``."""
    tree = ast.parse(path.read_text(), str(path))
    known = modules()
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import) and (lazy or not in_function):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and (lazy or not in_function):
                base = child.module or ""
                if child.level:
                    base = ".".join([*package.split(".")[:len(package.split(".")) - child.level + 1], *([base] if base else [])])
                # ``from fapistrano import flows`` depends on the module flows; ``from fapistrano import hookimpl``
                # on the package's __init__.
                submodules = {f"{base}.{alias.name}" for alias in child.names} & set(known)
                found.update(submodules)
                if len(submodules) < len(child.names):
                    found.add(base)
            visit(child, inside)

    visit(tree, False)
    return {name for name in found if name in known and name != this}


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def graph(*, lazy: bool) -> dict[str, set[str]]:
    return {name: imports_of(path, lazy=lazy) for name, path in modules().items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of modules (Tarjan), each as a path that returns to its start."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(edges.get(node, ())):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return [_path_through(group, edges) for group in groups]


def _path_through(group: list[str], edges: dict[str, set[str]]) -> list[str]:
    """A cycle inside ``group``, from its first module back to it, for the failure message."""
    start = group[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for other in sorted(edges[node] & set(group)):
            if other == start:
                return [*paths[node], start]
            if other not in paths:
                paths[other] = [*paths[node], other]
                queue.append(other)
    return group


def reachable(start: str, edges: dict[str, set[str]]) -> set[str]:
    seen, queue = {start}, [start]
    while queue:
        for other in edges[queue.pop()]:
            if other not in seen:
                seen.add(other)
                queue.append(other)
    return seen - {start}


def test_no_import_cycle_in_the_package() -> None:
    found = cycles(graph(lazy=False))
    assert not found, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in found)


def test_the_engine_imports_no_built_in_and_no_command() -> None:
    # Lazy imports count: a function of the engine importing a command is the engine knowing it.
    edges = graph(lazy=True)
    reached = reachable(ENGINE, edges)
    wrong = sorted(name for name in reached if name.startswith(("fapistrano.builtin", "fapistrano.commands", "fapistrano.cli",
                                                                 "fapistrano.compose")))
    assert not wrong, f"{ENGINE} reaches {', '.join(wrong)}"


def test_composition_reaches_no_command() -> None:
    # Commands call compose, then the engine; never the other way round.
    reached = reachable("fapistrano.compose", graph(lazy=True))
    wrong = sorted(name for name in reached if name.startswith(("fapistrano.commands", "fapistrano.cli")))
    assert not wrong, f"fapistrano.compose reaches {', '.join(wrong)}"


def test_the_engine_stays_small() -> None:
    lines = len(modules()[ENGINE].read_text().splitlines())
    assert lines < ENGINE_LINE_LIMIT, f"{ENGINE} has {lines} lines (limit {ENGINE_LINE_LIMIT}): move what is not the engine out"


def test_the_contributors_page_names_every_module_of_the_package() -> None:
    page = (PACKAGE.parent / "docs" / "contributing.rst").read_text()
    missing = [path.name for path in sorted(PACKAGE.glob("*.py"))
               if f"``{path.name}``" not in page and f"``fapistrano/{path.name}``" not in page]
    assert not missing, f"docs/contributing.rst does not say what {', '.join(missing)} is for"


@pytest.mark.parametrize("source, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c", "a"]]),
    ({"a": {"b"}, "b": set()}, []),
])
def test_the_cycle_finder_finds_a_cycle_and_only_one(source: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert cycles(source) == expected


def test_a_type_checking_import_is_not_a_dependency(tmp_path: Path) -> None:
    sample = PACKAGE / "_architecture_sample.py"
    sample.write_text("from typing import TYPE_CHECKING\nfrom fapistrano import errors\n\nif TYPE_CHECKING:\n"
                      "    from fapistrano.runner import Runner\n\ndef later():\n    from fapistrano import cli\n")
    try:
        assert imports_of(sample, lazy=False) == {"fapistrano.errors"}
        assert imports_of(sample, lazy=True) == {"fapistrano.errors", "fapistrano.cli"}
    finally:
        sample.unlink()


# -- one table of phases


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


def test_every_command_fap_has_is_in_the_one_registry_of_commands() -> None:
    from fapistrano.cli import cli

    visible = {name for name, command in cli.commands.items() if not command.hidden}
    assert visible == {command.name for command in flows.COMMANDS}
    assert {name for name, command in cli.commands.items() if command.hidden} == {"release"}  # 0.9's name of deploy


def test_each_command_module_holds_its_own_click_command_and_cli_py_only_registers_them() -> None:
    from fapistrano.cli import cli

    tree = ast.parse((PACKAGE / "cli.py").read_text(encoding="utf-8"))
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert functions == {"cli", "main", "_unwind_on_signals"}  # the group, the entry point, its signal handlers

    for name, command in cli.commands.items():
        if command.hidden:
            continue
        assert command.callback is not None
        assert command.callback.__module__ == f"fapistrano.commands.{name}", name


def test_fap_help_loads_every_command_module_but_not_the_engine_the_composition_or_pluggy() -> None:
    import subprocess
    import sys

    code = "import sys, fapistrano.cli; print(' '.join(sorted(sys.modules)))"
    loaded = set(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split())
    assert {f"fapistrano.commands.{command.name}" for command in flows.COMMANDS} <= loaded
    heavy = {"fapistrano.runner", "fapistrano.compose", "fapistrano.plugins", "fapistrano.commands.changing",
             "fapistrano.sessions", "importlib.metadata", "rich", "ruamel"}
    assert not heavy & loaded, f"fap --help would import {sorted(heavy & loaded)}: import them where the command runs"
