"""Reading a supervisor conf and writing the one fap links: the programs it defines, ``environment`` added.

Nothing here runs anything. :mod:`fapistrano_supervisorctl` reads the
release's conf through ``ctx.run``, asks :func:`programs` what it defines
(so a ``supervisor_program`` it does not define is refused before the
switch) and writes :func:`with_environment`'s text beside it, which is what
supervisord includes: every value of deploy.yml's ``environment`` reaches
every program as supervisord's own ``environment=``, so a changed value
changes the conf, and the next deploy's ``reread``/``update`` applies it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from fapistrano import FapError

#: The conf fap writes in every release (the program's conf with ``environment`` added); supervisor_target links to it.
RENDERED = ".fap-supervisor.conf"

#: Sections that start processes; each takes an ``environment=``.
PROCESS_KINDS = ("program", "fcgi-program", "eventlistener")

_HEADER = re.compile(r"^\s*\[(?P<kind>[a-z-]+):(?P<name>[^\]]+)\]\s*$")
_ANY_HEADER = re.compile(r"^\s*\[[^\]]*\]\s*$")
_OPTION = re.compile(r"^(?P<key>[A-Za-z_][\w.-]*)\s*[=:]\s*(?P<value>.*)$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class Programs:
    """What a conf defines: its groups (``[group:g]`` and their ``programs=``) and its programs."""

    programs: list[str] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)

    @property
    def standalone(self) -> list[str]:
        """Programs in no ``[group:]``: each is its own group, named like the program."""
        grouped = {name for members in self.groups.values() for name in members}
        return [name for name in self.programs if name not in grouped]

    @property
    def group_names(self) -> list[str]:
        """Every group supervisord makes from this conf (what ``reread`` and ``update`` name)."""
        return [*self.groups, *self.standalone]

    def defines(self, namespec: str) -> bool:
        """Whether supervisorctl finds ``namespec`` (``name``, ``group:*``, ``group:name``) in this conf."""
        group, _, process = namespec.partition(":")
        if not _:
            return group in self.standalone
        if group in self.standalone:
            # A program's own group holds its processes (numprocs names them), so only 'name:*' is sure.
            return process in ("", "*", group)
        if group not in self.groups:
            return False
        return process in ("", "*") or process in self.groups[group]

    def describe(self) -> str:
        """The names a ``supervisor_program`` may take for this conf, e.g. ``web, app:* (app:a, app:b)``."""
        names = [*self.standalone]
        for group, members in self.groups.items():
            names.append(f"{group}:* ({', '.join(f'{group}:{m}' for m in members)})" if members else f"{group}:*")
        return ", ".join(names) or "no program"


def programs(text: str) -> Programs:
    """The programs and groups defined in supervisor conf ``text``."""
    found = Programs()
    section = None
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            kind, name = header["kind"], header["name"].strip()
            section = (kind, name)
            if kind in PROCESS_KINDS:
                found.programs.append(name)
            elif kind == "group":
                found.groups.setdefault(name, [])
            continue
        if _ANY_HEADER.match(line):
            section = None
            continue
        option = _OPTION.match(line)
        if section and section[0] == "group" and option and option["key"].lower() == "programs":
            found.groups[section[1]] = [name.strip() for name in option["value"].split(",") if name.strip()]
    return found


def with_environment(text: str, environment: Mapping[str, object]) -> str:
    """``text`` with ``environment`` added to every program's ``environment=``.

    The conf's own ``environment=`` keys come after fap's, so a key set in
    the conf wins for that program (supervisord keeps the last of a key).
    Comments, order and every other line stay as written.
    """
    if not environment:
        return text
    pairs = ",".join(f"{name}={_quoted(name, str(value))}" for name, value in environment.items())
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    in_process = False
    pending = False  # inside a process section whose environment= is not written yet
    for line in lines:
        header = _HEADER.match(line)
        if header or _ANY_HEADER.match(line):
            if pending:
                _insert_before_blank_tail(out, f"environment={pairs}\n")
            in_process = bool(header) and header["kind"] in PROCESS_KINDS
            pending = in_process
            out.append(line if line.endswith("\n") else line + "\n")
            continue
        option = _OPTION.match(line)
        if in_process and option and option["key"].lower() == "environment":
            value = option["value"].rstrip("\n")
            out.append(f"environment={pairs}{',' + value if value.strip() else ''}\n")
            pending = False
            continue
        out.append(line)
    if pending:
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        _insert_before_blank_tail(out, f"environment={pairs}\n")
    return "".join(out)


def _insert_before_blank_tail(out: list[str], line: str) -> None:
    """Append ``line`` to the section ending ``out``, before its trailing blank and comment lines."""
    at = len(out)
    while at > 0 and (not out[at - 1].strip() or out[at - 1].lstrip().startswith((";", "#"))):
        at -= 1
    out.insert(at, line)


def _quoted(name: str, value: str) -> str:
    """``value`` as supervisord's ``environment=`` reads it back exactly, or a one-line error naming the key.

    supervisord splits the option with a non-POSIX shlex (no escapes), strips
    quote characters from both ends of each value and expands ``%(...)s``.
    """
    if not _KEY.match(name):
        raise FapError(f"environment: {name!r} is not a variable name supervisord can set")
    problem = None
    if "\n" in value or "\r" in value:
        problem = "holds a line break"
    elif value and (value[0] in "'\"" or value[-1] in "'\""):
        problem = "starts or ends with a quote"
    elif '"' in value and "'" in value:
        problem = "holds both kinds of quote"
    elif " ;" in value or " #" in value or "\t;" in value or "\t#" in value:
        problem = "holds ' ;' or ' #' (an ini comment)"
    if problem:
        raise FapError(
            f"environment: the value of {name} {problem}, which supervisord's environment= cannot carry; "
            "change it, or set supervisor_environment: false and load .env in the program's command"
        )
    escaped = value.replace("%", "%%")
    return f"'{escaped}'" if '"' in value else f'"{escaped}"'
