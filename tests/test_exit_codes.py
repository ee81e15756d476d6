"""Every exit code fap ends with comes from one enum, :class:`fapistrano.errors.ExitCode`.

The scan reads the package's source: a number written where an exit code is
decided (``sys.exit(2)``, ``return 1`` from a command, ``exit_code = 4``) fails
here, naming file and line, so the table in docs/cli.rst stays the whole truth.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from fapistrano.errors import ConfigError, ExitCode, FapError, HealthCheckFailed, Interrupted

PACKAGE = Path(__file__).resolve().parents[1] / "fapistrano"
#: Modules whose functions return fap's exit code (a command's ``return 1`` is one).
RETURNS_EXIT_CODES = ("commands/", "cli.py", "compose.py", "freeze.py")
#: Runs before the package is imported (its point is to be fast): it cannot import the enum.
BEFORE_IMPORT = ("launch.py",)
EXIT_CALLS = {"exit", "_exit"}


def _int_literals(node: ast.AST) -> Iterator[ast.Constant]:
    """The numbers that would be the code itself: ``1``, ``1 if x else 0``, ``(1, lines)``, ``CODES.get(s, 130)``.

    A number inside arithmetic or a comparison (``count != 1``) is not an exit code.
    """
    if isinstance(node, ast.Constant) and type(node.value) is int:
        yield node
    elif isinstance(node, ast.IfExp):
        yield from _int_literals(node.body)
        yield from _int_literals(node.orelse)
    elif isinstance(node, ast.BoolOp):
        for value in node.values:
            yield from _int_literals(value)
    elif isinstance(node, ast.Tuple) and node.elts:
        yield from _int_literals(node.elts[0])
    elif isinstance(node, ast.Dict):
        for value in node.values:
            yield from _int_literals(value)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" and len(node.args) > 1:
        yield from _int_literals(node.args[1])
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" and len(node.args) > 2:
        yield from _int_literals(node.args[2])


def _names(target: ast.AST) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Attribute):
        return [target.attr]
    return []


def literal_exit_codes(path: Path) -> list[str]:
    """``file:line: what`` for every exit code written as a number in ``path``."""
    relative = path.relative_to(PACKAGE).as_posix()
    tree = ast.parse(path.read_text(), str(path))
    found: dict[tuple[int, int], str] = {}
    for node in ast.walk(tree):
        suspects: list[ast.AST] = []
        if isinstance(node, ast.Call):
            function = node.func
            name = function.attr if isinstance(function, ast.Attribute) else function.id if isinstance(function, ast.Name) else ""
            if name in EXIT_CALLS:
                suspects += node.args
            suspects += [keyword.value for keyword in node.keywords if keyword.arg and "exit" in keyword.arg.lower()]
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if node.value is not None and any("exit" in name.lower() for t in targets for name in _names(t)):
                suspects.append(node.value)
        elif isinstance(node, ast.Return) and node.value is not None and relative.startswith(RETURNS_EXIT_CODES):
            suspects.append(node.value)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" and \
                len(node.args) > 2 and isinstance(node.args[1], ast.Constant) and node.args[1].value == "exit_code":
            suspects.append(node.args[2])
        for suspect in suspects:
            for literal in _int_literals(suspect):
                found[(literal.lineno, literal.col_offset)] = f"{relative}:{literal.lineno}: {literal.value}"
    return [found[place] for place in sorted(found)]


def _sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).as_posix() not in BEFORE_IMPORT)


def test_no_exit_code_is_written_as_a_number() -> None:
    found = [line for path in _sources() for line in literal_exit_codes(path)]
    assert not found, "exit codes written as numbers (use fapistrano.errors.ExitCode):\n" + "\n".join(found)


def test_the_scan_finds_a_number_where_an_exit_code_is_decided() -> None:
    commands = PACKAGE / "commands"
    sample = commands / "_exit_code_sample.py"
    sample.write_text("import sys\n\ndef run(ok, error):\n    if ok:\n        sys.exit(2)\n    exit_code = 4\n"
                      "    return 1 if ok else getattr(error, 'exit_code', 0)\n")
    try:
        found = literal_exit_codes(sample)
    finally:
        sample.unlink()
    assert sorted(found) == ["commands/_exit_code_sample.py:5: 2", "commands/_exit_code_sample.py:6: 4",
                             "commands/_exit_code_sample.py:7: 0", "commands/_exit_code_sample.py:7: 1"]


def test_the_errors_carry_the_codes_of_the_enum() -> None:
    assert FapError.exit_code is ExitCode.FAILED
    assert ConfigError.exit_code is ExitCode.BAD_INPUT
    assert HealthCheckFailed.exit_code is ExitCode.SWITCHED_BACK
    assert Interrupted.exit_code is ExitCode.INTERRUPTED


@pytest.mark.parametrize("code", list(ExitCode), ids=lambda c: c.name)
def test_every_exit_code_is_in_the_documented_table(code: ExitCode) -> None:
    table = (PACKAGE.parent / "docs" / "cli.rst").read_text()
    assert re.search(rf"^``{int(code)}``\s+\S", table, re.MULTILINE), f"docs/cli.rst: exit code {int(code)} ({code.name}) is not in the table"
