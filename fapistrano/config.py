"""deploy.yml -> resolved, validated settings for every (stage, role, host).

Precedence, lowest first: core defaults (declared by the built-in plugin
``core.settings``, :mod:`fapistrano.builtin.core`), plugin settings, the top of
deploy.yml, the ``stage_role_configs`` block, the host's own item of ``hosts:``
("Per-host settings" below), the command line. Values may
reference other settings as ``%(name)s``; they are interpolated per host,
after merging, so ``%(release_path)s`` and ``%(host)s`` mean that host's.
Every error names the file and line (or the command line) and the key.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

from fapistrano import ramps
from fapistrano.errors import ConfigError
from fapistrano.flows import STEP_PHASES
from fapistrano.masking import MIN_SECRET, Masker, collect_secrets
from fapistrano.settings import KIND_WORDS, Setting

#: The plugin whose ``fap_settings`` declares the core's own settings (:mod:`fapistrano.builtin.core`):
#: their origin is "core default".
CORE_PLUGIN = "core.settings"

#: Names that interpolation knows besides settings; set per host and run.
RUN_NAMES = ("stage", "role", "host", "release")

# %(name)s, %(env:NAME)s or %(env:NAME:-default)s, %%; an %(env:...)s that is none of these is an error.
_REF = re.compile(r"%\((\w+)\)s|%\(env:([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\)s|(%\(env:.*?\)s)|%%")


@dataclass(frozen=True)
class Origin:
    """Where a setting's value came from, for ``fap config`` and errors."""

    kind: str  # "core", "plugin", "file", "block", "host", "cli"
    where: str = ""  # plugin name, or "deploy.yml:12"
    #: The variables of fap's environment the value read through ``%(env:NAME)s``.
    environment: tuple[str, ...] = ()
    #: The host whose item of ``hosts:`` set the value (kind "host").
    host: str = ""

    def __str__(self) -> str:
        if self.environment:
            variables = ", ".join(f"${name}" for name in self.environment)
            return f"environment {variables} (read by {self.where or 'the command line'})"
        labels = {
            "core": "core default",
            "plugin": f"plugin default ({self.where})",
            "file": f"deploy.yml ({self.where})",
            "block": f"stage/role block ({self.where})",
            "host": f"{self.where} (host {self.host})",
            "cli": "command line",
        }
        return labels[self.kind]

    def prefix(self) -> str:
        """The location to start an error message with."""
        return f"{self.where}: " if self.kind in ("file", "block", "host") else (
            "command line: " if self.kind == "cli" else f"{self}: "
        )


@dataclass(frozen=True)
class HostSpec:
    """A host as written in deploy.yml: ``[user@]host[:port]``."""

    name: str
    user: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str, origin: Origin) -> HostSpec:
        match = re.fullmatch(r"(?:([^@\s]+)@)?([^@:\s]+|\[[0-9a-fA-F:]+\])(?::(\d+))?", text)
        if not match:
            raise ConfigError(f"{origin.prefix()}hosts: cannot read host {text!r}; write [user@]host[:port]")
        user, name, port = match.groups()
        if name.startswith("-") or (user or "").startswith("-"):
            # ssh would read it as an option (-oProxyCommand=... runs a command on this machine).
            raise ConfigError(f"{origin.prefix()}hosts: host {text!r}: a host or user name must not start with '-'")
        return cls(name=name.strip("[]"), user=user, port=int(port) if port else None)

    def __str__(self) -> str:
        return self.name if self.port is None else f"{self.name}:{self.port}"


@dataclass(frozen=True)
class Target:
    """Everything one host of one stage/role needs for a run; frozen."""

    stage: str
    role: str
    host: HostSpec
    release: str | None
    config: Mapping[str, Any]
    origins: Mapping[str, Origin]
    plugins: tuple[str, ...]
    secrets: tuple[str, ...] = ()
    #: The values read from fap's environment through ``%(env:NAME)s``: secrets, masked in all output.
    environment_secrets: tuple[str, ...] = ()
    #: The ``run:`` steps of ``hooks:`` this host runs (a ``once`` step only on the host chosen for it).
    steps: tuple[Step, ...] = ()


# ---------------------------------------------------------------------------
# Steps of hooks: in deploy.yml
# ---------------------------------------------------------------------------

#: What ``hooks:`` may name: the phases of :mod:`fapistrano.flows`, as the strings deploy.yml writes.
HOOK_PHASES: tuple[str, ...] = tuple(str(phase) for phase in STEP_PHASES)
_STEP_KEYS = ("run", "local", "once", "parallel", "migrates", "migrates_back")


@dataclass(frozen=True)
class Step:
    """One step of ``hooks:``: a shell command run in a phase, on the hosts (``run:``) or on this machine (``local:``)."""

    phase: str
    command: str
    #: ``file:line`` of the step in deploy.yml.
    where: str
    #: ``True`` for ``local:``: once per run, on the deployer's machine.
    local: bool = False
    #: ``once: true``: on one host per stage (per target when written in a stage/role block).
    once: bool = False
    #: The stage/role block the step is written in; ``None`` at the top level.
    stage: str | None = None
    role: str | None = None
    #: ``parallel: N``: at most N hosts run the step at the same time (the rest of the phase is not held back).
    parallel: int | None = None
    #: ``migrates: true``: the step changes the database schema; the release is marked migrated when it succeeds.
    migrates: bool = False
    #: ``migrates_back: true``: the down-migration a rollback across a migration runs first (see fapistrano.migrations).
    migrates_back: bool = False

    @classmethod
    def parse(cls, item: Any, phase: str, where: str, stage: str | None, role: str | None) -> Step:
        """A step as written: a mapping with ``run:`` or ``local:`` (a string), and ``once:`` (a bool) with ``run:``."""
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where}: hooks: {phase}: a step must be a mapping like '- run: COMMAND' or '- local: COMMAND',"
                              f" got {_describe(item)}")
        for key in item:
            if key not in _STEP_KEYS:
                try:  # the line of the key itself, when the step spans several
                    where = f"{where.rsplit(':', 1)[0]}:{cast(Any, item).lc.key(key)[0] + 1}"  # ruamel's line info
                except (AttributeError, KeyError, TypeError):
                    pass
                raise ConfigError(f"{where}: hooks: {phase}: unknown step key {key!r}{_suggest(str(key), _STEP_KEYS)};"
                                  f" keys: {', '.join(_STEP_KEYS)}")
        if "run" in item and "local" in item:
            raise ConfigError(f"{where}: hooks: {phase}: a step has both run: and local:; write two steps")
        kind = "run" if "run" in item else "local" if "local" in item else None
        if kind is None:
            raise ConfigError(f"{where}: hooks: {phase}: a step needs run: (on the hosts) or local: (on this machine)")
        command = item[kind]
        if not isinstance(command, str) or not command.strip():
            raise ConfigError(f"{where}: hooks: {phase}: {kind}: expected a shell command (a string), got {_describe(command)}")
        once = item.get("once", False)
        if not isinstance(once, bool):
            raise ConfigError(f"{where}: hooks: {phase}: once: expected true or false, got {_describe(once)}")
        if once and kind == "local":
            raise ConfigError(f"{where}: hooks: {phase}: once: is for run: steps; a local: step runs once per run already")
        parallel = item.get("parallel")
        if parallel is not None and (not isinstance(parallel, int) or isinstance(parallel, bool) or parallel < 1):
            raise ConfigError(f"{where}: hooks: {phase}: parallel: expected a number of hosts, 1 or more, got {_describe(parallel)}")
        if parallel is not None and kind == "local":
            raise ConfigError(f"{where}: hooks: {phase}: parallel: is for run: steps; a local: step runs once per run already")
        migrates, migrates_back = _migration_keys(item, phase, where, kind)
        once = once or migrates_back  # a down-migration runs on one host
        return cls(phase, command, where, local=kind == "local", once=once, stage=stage, role=role, parallel=parallel,
                   migrates=migrates, migrates_back=migrates_back)

    def expand(self, values: Mapping[str, Any]) -> str:
        """The command with each ``%(name)s`` replaced by ``values[name]``, shell-quoted: a value can never inject a command."""

        def one(match: re.Match[str]) -> str:
            ref, variable, _default, malformed = match.groups()
            if variable is not None or malformed is not None:
                raise ConfigError(f"{self.where}: hooks: {self.phase}: %(env:...)s is not read in a step;"
                                  " the step runs with fap's environment: write $NAME")
            if ref is None:
                return "%"
            if ref not in values:
                raise ConfigError(f"{self.where}: hooks: {self.phase}: unknown name %({ref})s{_suggest(ref, values)}")
            return shlex.quote(_stringify(values[ref]))

        problem = unquoted_references_only(self.command)
        if problem:
            raise ConfigError(f"{self.where}: hooks: {self.phase}: {problem}")
        return _REF.sub(one, self.command)

    def __str__(self) -> str:
        once = " (once)" if self.once else ""
        parallel = f" (parallel {self.parallel})" if self.parallel else ""
        migrates = " (migrates)" if self.migrates else " (migrates back)" if self.migrates_back else ""
        return f"{self.phase}: {'local' if self.local else 'run'}: {self.command}{once}{parallel}{migrates}"


def _migration_keys(item: Mapping[str, Any], phase: str, where: str, kind: str) -> tuple[bool, bool]:
    """``migrates:`` and ``migrates_back:`` of a step: booleans, each in the phases where it means something."""
    from fapistrano.migrations import MIGRATING_BACK_PHASES, MIGRATING_PHASES

    values = []
    for key in ("migrates", "migrates_back"):
        value = item.get(key, False)
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: hooks: {phase}: {key}: expected true or false, got {_describe(value)}")
        values.append(value)
    migrates, migrates_back = values
    if migrates and migrates_back:
        raise ConfigError(f"{where}: hooks: {phase}: a step has both migrates: and migrates_back:; write two steps")
    if migrates and phase not in MIGRATING_PHASES:
        raise ConfigError(f"{where}: hooks: {phase}: migrates: marks the release a deploy makes; write the step in one of"
                          f" {', '.join(MIGRATING_PHASES)} (updated, before the switch, is the usual place)")
    if migrates_back and phase not in MIGRATING_BACK_PHASES:
        raise ConfigError(f"{where}: hooks: {phase}: migrates_back: is the down-migration of a rollback, before the switch;"
                          f" write the step in {' or '.join(MIGRATING_BACK_PHASES)}")
    if migrates_back and kind == "local":
        raise ConfigError(f"{where}: hooks: {phase}: migrates_back: is for run: steps: it runs on one host, in the release"
                          " that migrated (where its down-migrations are)")
    if migrates_back and item.get("once") is False:
        raise ConfigError(f"{where}: hooks: {phase}: migrates_back: runs on one host only; remove once: false")
    if migrates_back and item.get("parallel") is not None:
        raise ConfigError(f"{where}: hooks: {phase}: migrates_back: runs on one host only; remove parallel:")
    return migrates, migrates_back


#: Where in shell text a shell-quoted value is still code, and what to write instead of a ``%(name)s`` there.
_QUOTED_PLACES = {
    '"': ("double quotes", 'close the quotes around it: "deployed "%(name)s" today"'),
    "'": ("single quotes", "close the quotes around it: 'deployed '%(name)s' today'"),
    "$'": ("$'...' quotes", "close the quotes around it: $'deployed '%(name)s$' today'"),
    "`": ("backquotes", "write $(...) instead of backquotes"),
    "#": ("a comment", "take it out of the comment"),
    "<<": ("a here-document", "write it outside the here-document, or use a FAP_* variable inside"),
}
_HEREDOC = re.compile(r"<<-?[ \t]*(?:'([^'\n]*)'|\"([^\"\n]*)\"|\\?([^\s;&|<>()]+))")


def unquoted_references_only(command: str) -> str | None:
    """Why a ``%(name)s`` of ``command`` cannot be filled in safely, or ``None`` when each stands outside quotes.

    A value goes in shell-quoted, as one word; that keeps it data only where
    the shell reads quotes: outside any quotes, and inside ``$(...)``. Inside
    double quotes ``'$(id)'`` still runs ``id``; inside single quotes the
    quoting closes them; in a here-document, a comment or backquotes quotes
    are text again. There a reference is refused, never filled in.
    """
    place = _shell_places(command)
    for match in _REF.finditer(command):
        if match.group(0) == "%%":
            continue
        where = place(match.start())
        if where is not None:
            name = match.group(0)
            quoting, instead = _QUOTED_PLACES[where]
            return f"{name} is inside {quoting}, where the shell would read its value as code; {instead.replace('%(name)s', name)}"
    return None


def _shell_places(command: str) -> Callable[[int], str | None]:
    """A function telling, for an offset of ``command``, the quoting around it (``None``: plain shell words).

    A small POSIX ``sh`` reader: quotes, backslashes, ``$(...)`` (plain again,
    even inside double quotes), backquotes, comments and here-documents. It
    errs on the side of "quoted": a reference it cannot place is refused.
    """
    spans: list[list[Any]] = []  # [start, end, kind]
    stack: list[str] = []  # the open contexts, innermost last: '"' or '$(' (plain words again)
    heredocs: list[tuple[str, bool]] = []
    i, n = 0, len(command)
    word_start = True
    while i < n:
        char = command[i]
        if stack and stack[-1] == '"':
            if char == "\\":
                i += 2
            elif char == '"':
                stack.pop()
                spans[-1][1] = i
                i += 1
            elif command.startswith("$(", i):
                spans[-1][1] = i
                stack.append("$(")
                i += 2
                word_start = True
            elif char == "`":
                spans[-1][1] = i
                end = _closing_backquote(command, i)
                spans.append([i, end + 1, "`"])
                spans.append([end + 1, n, '"'])
                i = end + 1
            else:
                i += 1
            continue
        # plain words: the top level, or inside $(...)
        if char == "\\":
            i += 2
            word_start = False
        elif char == "'" or command.startswith("$'", i):
            start = i
            i += 2 if char == "$" else 1
            while i < n and command[i] != "'":
                i += 2 if char == "$" and command[i] == "\\" else 1
            spans.append([start, i + 1, "$'" if char == "$" else "'"])
            i += 1
            word_start = False
        elif char == '"':
            spans.append([i, n, '"'])  # its end is set when the quote closes
            stack.append('"')
            i += 1
            word_start = False
        elif char == "`":
            end = _closing_backquote(command, i)
            spans.append([i, end + 1, "`"])
            i = end + 1
            word_start = False
        elif command.startswith("$(", i):
            stack.append("$(")
            i += 2
            word_start = True
        elif char == ")" and stack:
            stack.pop()
            if stack and stack[-1] == '"':
                spans.append([i + 1, n, '"'])  # the double quotes go on after the $(...)
            i += 1
            word_start = False
        elif char == "#" and word_start:
            end = command.find("\n", i)
            end = n if end < 0 else end
            spans.append([i, end, "#"])
            i = end
        elif command.startswith("<<", i) and (heredoc := _HEREDOC.match(command, i)):
            delimiter = next(group for group in heredoc.groups() if group is not None)
            heredocs.append((delimiter, heredoc.group(0).startswith("<<-")))
            i = heredoc.end()
            word_start = False
        elif char == "\n" and heredocs:
            # The bodies of the here-documents opened on this line follow it, each up to its delimiter line.
            start = i + 1
            for delimiter, tabs in heredocs:
                while start < n:
                    end = command.find("\n", start)
                    end = n if end < 0 else end
                    line = command[start:end]
                    start = end + 1
                    if (line.lstrip("\t") if tabs else line) == delimiter:
                        break
            spans.append([i + 1, start, "<<"])
            heredocs = []
            i = start
            word_start = True
        else:
            word_start = char in " \t\n;&|()<>"
            i += 1

    def place(offset: int) -> str | None:
        for start, end, kind in spans:
            if start <= offset < end:
                return kind
        return None

    return place


def _closing_backquote(command: str, start: int) -> int:
    i = start + 1
    while i < len(command) and command[i] != "`":
        i += 2 if command[i] == "\\" else 1
    return min(i, len(command))


# ---------------------------------------------------------------------------
# Loading deploy.yml
# ---------------------------------------------------------------------------


def find_deployfile(option: str | None, environ: Mapping[str, str] = os.environ, here: Path | None = None) -> Path:
    """Locate deploy.yml.

    ``$FAP_APP`` names an app whose file is ``$<FAP_APP>_DEPLOYFILE``; else
    ``-d/--deployfile``; else ``deploy.yml`` in the working directory or the
    nearest parent directory that has one (as Capistrano finds its Capfile).
    """
    app = environ.get("FAP_APP")
    if app:
        variable = f"{app.upper()}_DEPLOYFILE"
        value = environ.get(variable)
        if not value:
            raise ConfigError(f"FAP_APP={app} but ${variable} is not set")
        path = Path(value)
    elif option:
        path = Path(option)
    else:
        path = Path("deploy.yml")
        start = (here or Path.cwd()).resolve()
        for directory in (start, *start.parents):
            if (directory / "deploy.yml").is_file():
                # In the working directory it keeps the short name the user knows.
                path = path if directory == start and here is None else directory / "deploy.yml"
                break
    if not path.is_file():
        where = "here" if app or option else "here or in any parent directory"
        raise ConfigError(f"{path}: no deploy file {where} (use -d FILE, or run 'fap init')")
    return path


#: The most values (scalars, lists and mappings, each alias counted again where it is used)
#: one setting may hold. YAML aliases nest: nine levels of nine aliases hold 9**9 values
#: in a few lines; far past this limit, fap refuses the file at once instead of expanding it.
MAX_SETTING_VALUES = 100_000


def load_yaml(text: str) -> Any:
    """Parse YAML as deploy.yml is read: round-trip (positions kept), dates left as text.

    A value that cannot be built (``!!int x``, ``!!timestamp 2020-13-45``) raises a
    ``MarkedYAMLError`` whose mark is the value's line, like a syntax error.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor

    class Constructor(RoundTripConstructor):
        def construct_object(self, node: Any, deep: bool = False) -> Any:
            try:
                return super().construct_object(node, deep=deep)
            except (ValueError, TypeError, OverflowError, LookupError, AttributeError) as error:
                raise ConstructorError(None, None, f"cannot read {node.value!r} as {node.tag}: {error}",
                                       node.start_mark) from None

        def construct_text(self, node: Any) -> Any:
            return self.construct_scalar(node)

        def construct_unknown(self, node: Any) -> Any:
            raise ConstructorError(None, None, f"unknown YAML tag {node.tag}", node.start_mark)

    # A date-like value (2020-01-01) stays the text it is: no setting is a date, and
    # an impossible one (2020-13-45) is then a typed error on its line, not a crash.
    Constructor.add_constructor("tag:yaml.org,2002:timestamp", Constructor.construct_text)
    Constructor.add_constructor(None, Constructor.construct_unknown)
    yaml = YAML(typ="rt")
    yaml.Constructor = Constructor
    return yaml.load(text)


def oversized(value: Any, limit: int = MAX_SETTING_VALUES) -> str | None:
    """Why ``value`` is too big to expand (aliases counted where used, or one containing itself), else None.

    Linear in the distinct nodes: a node reached again through an alias is counted
    from memory, never walked twice.
    """
    sizes: dict[int, int] = {}
    walking: set[int] = set()

    class TooBig(Exception):
        pass

    def size(node: Any) -> int:
        if not isinstance(node, (Mapping, list, tuple)):
            return 1
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in walking:
            raise TooBig("a value contains itself (a YAML alias to an enclosing node)")
        walking.add(key)
        total = 1
        for child in (node.values() if isinstance(node, Mapping) else node):
            total += size(child)
            if total > limit:
                raise TooBig(f"expands to more than {limit} values (YAML aliases inside aliases?)")
        walking.discard(key)
        sizes[key] = total
        return total

    try:
        size(value)
    except TooBig as problem:
        return str(problem)
    except RecursionError:
        return "nested too deeply"
    return None


@dataclass(frozen=True)
class DeployFile:
    """A parsed deploy.yml with the position of every key."""

    path: Path
    data: Any  # ruamel CommentedMap

    @classmethod
    def load(cls, path: Path) -> DeployFile:
        """Read and parse ``path``; YAML errors name the file and line."""
        from ruamel.yaml.constructor import ConstructorError, DuplicateKeyError
        from ruamel.yaml.error import MarkedYAMLError, YAMLError

        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"{path}: cannot read: {error}") from None
        try:
            data = load_yaml(text)
        except DuplicateKeyError as error:
            # ruamel quotes both values; a key's value may be a secret, so name the key and line only.
            key = re.match(r'found duplicate key "(.*?)" with value', error.problem or "")
            line = f":{error.problem_mark.line + 1}" if error.problem_mark else ""
            raise ConfigError(f"{path}{line}: duplicate key{' ' + repr(key.group(1)) if key else ''}") from None
        except MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            line = f":{mark.line + 1}" if mark else ""
            problem = error.problem or error.context or "invalid YAML"
            kind = "YAML value error" if isinstance(error, ConstructorError) else "YAML syntax error"
            hint = _colon_hint(text, mark.line) if mark and problem == "mapping values are not allowed here" else ""
            raise ConfigError(f"{path}{line}: {kind}: {problem}{hint}") from None
        except (YAMLError, ValueError, TypeError, RecursionError) as error:
            raise ConfigError(f"{path}: YAML error: {str(error).splitlines()[0]}") from None
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}:1: the top level must be a mapping of settings")
        for key, value in data.items():
            problem = oversized(value)
            if problem:
                raise ConfigError(f"{cls._where(path, data, key)}: {key}: {problem}")
        for key in data:
            if not isinstance(key, str):
                raise ConfigError(f"{cls._where(path, data, key)}: setting names must be strings, got {key!r}")
        blocks = data.get("stage_role_configs", {})
        if blocks is None:
            blocks = {}
        if not isinstance(blocks, Mapping):
            raise ConfigError(f"{cls._where(path, data, 'stage_role_configs')}: stage_role_configs must be a mapping of stage -> role -> settings")
        for stage, roles in blocks.items():
            if not isinstance(stage, str) or not isinstance(roles, Mapping):
                raise ConfigError(f"{cls._where(path, blocks, stage)}: stage {stage!r} must map role names to settings")
            if _bad_name(stage):
                raise ConfigError(f"{cls._where(path, blocks, stage)}: stage {stage!r}: a stage name is one word"
                                  " (no space, control character or '/'), as typed after -s")
            for role, block in roles.items():
                if not isinstance(role, str) or not (block is None or isinstance(block, Mapping)):
                    raise ConfigError(f"{cls._where(path, roles, role)}: role {role!r} of stage {stage!r} must be a mapping of settings")
                if _bad_name(role):
                    raise ConfigError(f"{cls._where(path, roles, role)}: role {role!r} of stage {stage!r}: a role name is one word"
                                      " (no space, control character or '/'), as typed after -r")
                for key in block or {}:
                    if not isinstance(key, str):
                        raise ConfigError(f"{cls._where(path, block, key)}: setting names must be strings, got {key!r}")
        custom = data.get("custom_settings", [])
        if not isinstance(custom, list) or not all(isinstance(name, str) for name in custom):
            raise ConfigError(f"{cls._where(path, data, 'custom_settings')}: custom_settings: expected a list of setting names,"
                              f" got {_describe(custom)}")
        deployfile = cls(path=path, data=data)
        # Every block's steps are read now: a mistake in any of them stops every command, before any host.
        deployfile.hook_steps(None, None)
        for stage, roles in blocks.items():
            for role in roles:
                deployfile.hook_steps(stage, role)
        return deployfile

    @staticmethod
    def _where(path: Path, mapping: Any, key: Any) -> str:
        try:
            line = mapping.lc.key(key)[0] + 1
        except (AttributeError, KeyError, TypeError):
            return str(path)
        return f"{path}:{line}"

    @property
    def custom_settings(self) -> frozenset[str]:
        """The names ``custom_settings:`` lists: the user's own, even one edit away from a known setting."""
        return frozenset(self.data.get("custom_settings") or ())

    def where(self, mapping: Any, key: Any) -> str:
        """``file:line`` of ``key`` in ``mapping`` (a node of this file)."""
        return self._where(self.path, mapping, key)

    @property
    def blocks(self) -> Mapping[str, Mapping[str, Any]]:
        return self.data.get("stage_role_configs") or {}

    def block(self, stage: str, role: str) -> Mapping[str, Any]:
        return self.blocks[stage][role] or {}

    def select(self, stage: str | None, role: str | None) -> list[tuple[str, str]]:
        """The (stage, role) pairs that ``-s``/``-r`` choose, in file order."""
        blocks = self.blocks
        if not blocks:
            raise ConfigError(f"{self.path}: no stage_role_configs: nothing to deploy to")
        if stage is None and role is None:
            raise ConfigError(f"choose a target with --stage and/or --role; stages in {self.path}: {', '.join(blocks)}")
        roles_everywhere = sorted({r for roles in blocks.values() for r in roles})
        if stage is not None and stage not in blocks:
            raise ConfigError(f"{self.path}: unknown stage {stage!r}{_suggest(stage, blocks)}; stages: {', '.join(blocks)}")
        if role is not None and role not in roles_everywhere:
            raise ConfigError(f"{self.path}: unknown role {role!r}{_suggest(role, roles_everywhere)}; roles: {', '.join(roles_everywhere)}")
        pairs = [
            (s, r)
            for s, roles in blocks.items()
            for r in roles
            if (stage is None or s == stage) and (role is None or r == role)
        ]
        if not pairs:
            assert stage is not None  # a known role matched nowhere: only within the one stage asked for
            raise ConfigError(f"{self.path}: stage {stage!r} has no role {role!r}; its roles: {', '.join(blocks[stage])}")
        return pairs

    def hook_steps(self, stage: str | None, role: str | None) -> tuple[Step, ...]:
        """The steps of ``hooks:`` written at the top level (``stage`` and ``role`` None) or in one block, validated."""
        layer = self.data if stage is None or role is None else self.block(stage, role)
        if "hooks" not in layer or layer["hooks"] is None:
            return ()
        hooks = layer["hooks"]
        if not isinstance(hooks, Mapping):
            raise ConfigError(f"{self.where(layer, 'hooks')}: hooks: expected a mapping of phase -> list of steps")
        steps = []
        for phase, items in hooks.items():
            if phase not in HOOK_PHASES:
                raise ConfigError(f"{self.where(hooks, phase)}: hooks: unknown phase {phase!r}{_suggest(str(phase), HOOK_PHASES)};"
                                  f" phases: {', '.join(HOOK_PHASES)}")
            if items is None:
                continue
            if not isinstance(items, list):
                raise ConfigError(f"{self.where(hooks, phase)}: hooks: {phase}: expected a list of steps (- run: ... or - local: ...)")
            for index, item in enumerate(items):
                try:
                    where = f"{self.path}:{cast(Any, items).lc.item(index)[0] + 1}"  # ruamel's line info
                except (AttributeError, KeyError, TypeError):
                    where = self.where(hooks, phase)
                steps.append(Step.parse(item, phase, where, stage, role))
        return tuple(steps)

    def plugins_for(self, stage: str, role: str, command: str) -> list[tuple[str, str]]:
        """Plugin names enabled for this target and command, each with its ``file:line``."""
        chosen: tuple[Any, Any, str] | None = None
        for layer in (self.data, self.block(stage, role)):
            keys = ("plugins", "release_plugins", "deploy_plugins") if command == "deploy" else ("plugins", f"{command}_plugins")
            for key in keys:
                if key in layer and layer[key] is not None:
                    if chosen is None or key != "plugins" or chosen[2] == "plugins":
                        chosen = (layer, layer[key], key)
        if chosen is None:
            return []
        layer, names, key = chosen
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{self.where(layer, key)}: {key}: expected a list of plugin names")
        out = []
        for index, name in enumerate(names):
            try:
                line = cast(Any, names).lc.item(index)[0] + 1  # ruamel's line info
                where = f"{self.path}:{line}"
            except (AttributeError, KeyError, TypeError):
                where = self.where(layer, key)
            out.append((name, where))
        return out


# ---------------------------------------------------------------------------
# Settings: declaration, layering, type checks
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Declared:
    """A declared setting: the :class:`~fapistrano.settings.Setting` and who declared it."""

    setting: Setting
    origin: Origin

    @property
    def default(self) -> Any:
        return self.setting.default

    @property
    def doc(self) -> str:
        return self.setting.doc


def declared_settings(plugin_settings: Iterable[tuple[str, Iterable[Setting]]]) -> dict[str, Declared]:
    """Every declared setting by name, from each plugin's :class:`Setting` list; a name declared twice is an error.

    ``plugin_settings`` pairs a plugin's name with what it declares, as
    :meth:`fapistrano.plugins.Plugins.settings` gives them: the core's own
    (plugin :data:`CORE_PLUGIN`) first, then each loaded plugin's.
    """
    declared: dict[str, Declared] = {}
    for plugin, settings in plugin_settings:
        origin = Origin("core") if plugin == CORE_PLUGIN else Origin("plugin", plugin)
        for setting in settings:
            if setting.name in declared:
                raise ConfigError(f"plugin {plugin}: setting {setting.name!r} is already declared by {declared[setting.name].origin}")
            declared[setting.name] = Declared(setting, origin)
    return declared


def _plain(value: Any) -> Any:
    """ruamel's commented containers -> plain dicts/lists, recursively."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _declared(name: str, spec: Declared | Any) -> Setting:
    """The setting ``spec`` declares; a bare default (a setting deploy.yml invents) says its own kind."""
    return spec.setting if isinstance(spec, Declared) else Setting(name, spec, where="deploy.yml")


def check_type(name: str, value: Any, spec: Declared | Any, origin: Origin) -> Any:
    """Return ``value`` converted to the setting's declared kind, or raise naming where it came from.

    ``spec`` is the :class:`Declared` setting, or a default whose type is the kind.
    """
    setting = _declared(name, spec)
    kind = setting.kind
    value = _plain(value)
    if name in ramps.CHECKS and value is not None:
        return ramps.CHECKS[name](value, f"{origin.prefix()}{name}: ")
    if value is None:
        return None if kind == "str" or setting.optional else setting.default
    ok = {
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "list": isinstance(value, list) and all(_scalar(v) for v in value),
        "dict": isinstance(value, dict) and all(isinstance(k, str) and (_scalar(v) or v is None) for k, v in value.items()),
        "str": _scalar(value),
    }[kind]
    if kind == "list" and isinstance(value, str):
        return [value]
    if not ok:
        raise ConfigError(f"{origin.prefix()}{name}: expected {KIND_WORDS[kind]}, got {_describe(value)}")
    if kind == "str":
        text = _text(value)
        if setting.choices and text not in setting.choices and "%(" not in text:
            raise ConfigError(f"{origin.prefix()}{name}: expected one of {', '.join(setting.choices)}, got {text!r}")
        return text
    if kind == "list":
        return [_text(v) for v in value]
    if kind == "dict":
        return {k: "" if v is None else _text(v) for k, v in value.items()}
    return value


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float)) or value is None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        wrong_keys = [k for k in value if not isinstance(k, str)]
        if wrong_keys:
            return f"a mapping with a name that is not a string ({wrong_keys[0]!r}; quote it)"
        return "a mapping" if all(_scalar(v) or v is None for v in value.values()) else "a mapping with non-scalar values"
    if isinstance(value, list):
        return "a list" if all(_scalar(v) for v in value) else "a list of non-scalar items"
    return repr(value)


def parse_cli_value(name: str, text: str, spec: Declared | Any) -> Any:
    """Convert a ``--key value`` string to the setting's kind."""
    setting = _declared(name, spec)
    kind = setting.kind
    origin = Origin("cli")
    if name == "batch_size":
        return ramps.parse_cli_batch_size(text)
    if kind == "str":
        return check_type(name, text, spec, origin)
    if isinstance(spec, Declared) and spec.origin.kind == "core" and (name == "plugins" or name.endswith("_plugins")):
        # Plugins are loaded, and their settings declared, before the command line is read.
        raise ConfigError(f"command line: --{_flag(name)}: plugins cannot be chosen on the command line;"
                          f" list them in deploy.yml ({name}: [...])")
    if not text.strip() and kind != "list":
        raise ConfigError(f"command line: --{_flag(name)}: expected {KIND_WORDS[kind]}, got an empty value")
    if kind == "list":
        text = text.strip()
        if text.startswith("["):
            return check_type(name, _yaml_scalar(name, text), spec, origin)
        return [item.strip() for item in text.split(",") if item.strip()]
    if kind == "bool":
        lowered = text.strip().lower()
        if lowered in ("true", "yes", "on", "1"):
            return True
        if lowered in ("false", "no", "off", "0"):
            return False
        raise ConfigError(f"command line: --{_flag(name)}: expected true or false, got {text!r}")
    return check_type(name, _yaml_scalar(name, text), spec, origin)


def _yaml_scalar(name: str, text: str) -> Any:
    from ruamel.yaml.constructor import ConstructorError
    from ruamel.yaml.error import YAMLError

    try:
        value = load_yaml(text)
    except ConstructorError as error:  # well-formed, but a value that cannot be built (a tag, a date)
        raise ConfigError(f"command line: --{_flag(name)}: cannot read {text!r}: {error.problem}") from None
    except (YAMLError, ValueError, TypeError, RecursionError):
        raise ConfigError(f"command line: --{_flag(name)}: cannot read {text!r}") from None
    problem = oversized(value)
    if problem:
        raise ConfigError(f"command line: --{_flag(name)}: {problem}")
    return value


def _flag(name: str) -> str:
    return name.replace("_", "-")


def unknown_setting_hint(key: str, declared: Iterable[str], where: str) -> str:
    """For a name no plugin declares: a ConfigError when it is one edit from a known setting, else the warning's hint.

    One letter off a known setting is a typo, not a name of one's own: the
    deploy would go on with the default. The hint is "" when no known name is near.
    """
    near = [name for name in declared if _one_edit(key, name)]
    if near:
        raise ConfigError(f"{where}: {key} is not a known setting (did you mean {near[0]!r}?);"
                          f" if it is a setting of your own, list it in custom_settings: [{key}]")
    return _suggest(key, declared)


def _suggest(word: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    # An abbreviation ('prod' for 'production') is too short for difflib's ratio: a unique prefix is the answer.
    prefixed = [choice for choice in choices if word and choice.startswith(word)]
    close = prefixed if len(prefixed) == 1 else difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _one_edit(word: str, name: str) -> bool:
    """Whether ``word`` is ``name`` with one letter added, dropped, changed, or two neighbours swapped."""
    if word == name or abs(len(word) - len(name)) > 1:
        return False
    if len(word) == len(name):
        diffs = [i for i, (a, b) in enumerate(zip(word, name, strict=True)) if a != b]
        return len(diffs) == 1 or (len(diffs) == 2 and diffs[1] == diffs[0] + 1
                                   and word[diffs[0]] == name[diffs[1]] and word[diffs[1]] == name[diffs[0]])
    short, long = sorted((word, name), key=len)
    return any(long[:i] + long[i + 1:] == short for i in range(len(long)))


def _upper_case_warning(deployfile: DeployFile, layer: Any, key: str, where: str) -> str:
    """An upper-case key among settings is most likely an environment variable outside ``environment:``."""
    if "environment" in layer and not layer["environment"]:
        line = deployfile.where(layer, "environment").rsplit(":", 1)[-1]
        return (f"{where}: {key} is upper-case beside an empty environment: (line {line}):"
                f" indent it under environment: to set it in the app's environment")
    return (f"{where}: {key} is an upper-case setting, not an environment variable:"
            f" to set it in the app's environment, put it under environment:")


def _colon_hint(text: str, line: int) -> str:
    """For YAML's 'mapping values are not allowed here': the line's value holds ': ', and must be quoted.

    A hook's command is shown quoted; any other value is not shown (it may be a secret).
    """
    lines = text.splitlines()
    match = re.match(r"\s*(?:-\s+)?([^\s:#'\"][^:]*?):\s+(.*?)\s*$", lines[line] if line < len(lines) else "")
    if match is None:
        return ""
    key, value = match.groups()
    if key not in ("run", "local"):
        return f"; a value holding ': ' must be quoted: {key}: \"…\""
    quoted = f'"{value}"' if '"' not in value and "\\" not in value else "'" + value.replace("'", "''") + "'"
    return f"; a command holding ': ' must be quoted: {key}: {quoted}"


def parse_overrides(args: Iterable[str], declared: Mapping[str, Declared]) -> dict[str, Any]:
    """``['--keep-releases', '3', '--curl-url=U']`` -> ``{'keep_releases': 3, 'curl_url': 'U'}``."""
    args = list(args)
    overrides: dict[str, Any] = {}
    index = 0
    while index < len(args):
        arg = args[index]
        if not arg.startswith("--") or arg == "--":
            raise ConfigError(f"command line: unexpected argument {arg!r}")
        flag, has_value, value = arg[2:].partition("=")
        name = flag.replace("-", "_")
        if name not in declared:
            flags = [f"--{_flag(n)}" for n in declared]
            hint = _suggest(f"--{flag}", flags)
            raise ConfigError(f"command line: unknown setting --{flag}{hint}")
        if not has_value:
            index += 1
            if index >= len(args):
                raise ConfigError(f"command line: --{flag} needs a value")
            value = args[index]
        overrides[name] = parse_cli_value(name, value, declared[name])
        index += 1
    return overrides


def with_user_settings(deployfile: DeployFile, declared: Mapping[str, Declared]) -> dict[str, Declared]:
    """``declared`` plus the settings deploy.yml invents for its own ``%(name)s`` references.

    They can then be overridden on the command line like any other.
    """
    extended = dict(declared)
    layers = [deployfile.data, *(block or {} for roles in deployfile.blocks.values() for block in roles.values())]
    for layer in layers:
        for key, value in layer.items():
            if key not in extended and key not in _RESERVED and key not in RUN_NAMES and isinstance(key, str):
                default = "" if _scalar(_plain(value)) else _plain(value)
                where = deployfile.where(layer, key)
                extended[key] = Declared(Setting(key, default, "Set in deploy.yml.", where=where), Origin("file", where))
    return extended


@dataclass(frozen=True)
class RoleSettings:
    """The merged, type-checked but not yet interpolated settings of one stage/role."""

    stage: str
    role: str
    values: Mapping[str, Any]
    origins: Mapping[str, Origin]
    plugins: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    #: The steps of ``hooks:``: the top level's, then the block's.
    steps: tuple[Step, ...] = ()
    #: The settings that are shell text (declared ``Setting(shell=True)``).
    shell: frozenset[str] = frozenset()
    #: The settings of each host written as a mapping in ``hosts:`` (see "Per-host settings" below).
    host_settings: Mapping[HostSpec, Any] = field(default_factory=lambda: MappingProxyType({}))
    #: The declared settings whose values are checked once interpolated, for each host: a ``check`` or ``choices``.
    checked: Mapping[str, Setting] = field(default_factory=lambda: MappingProxyType({}))


#: Top-level keys that are no settings: the targets, the steps of ``hooks:``, and the names of the user's own settings.
_RESERVED = {"stage_role_configs", "hooks", "custom_settings"}


def _bad_name(name: str) -> bool:
    """Whether a stage or role name could not be typed as one word after -s/-r, or would garble a report line."""
    return not name or "/" in name or any(character.isspace() or not character.isprintable() for character in name)


def merge(
    deployfile: DeployFile,
    stage: str,
    role: str,
    declared: Mapping[str, Declared],
    overrides: Mapping[str, Any],
    plugins: Iterable[str],
) -> RoleSettings:
    """Layer core/plugin defaults, deploy.yml, the stage/role block and the command line."""
    values: dict[str, Any] = {name: _plain(d.default) for name, d in declared.items()}
    origins: dict[str, Origin] = {name: d.origin for name, d in declared.items()}
    warnings: list[str] = []
    host_settings: Mapping[HostSpec, Any] = {}
    block = deployfile.block(stage, role)
    for layer, kind in ((deployfile.data, "file"), (block, "block")):
        for key, value in layer.items():
            if key in _RESERVED:
                continue
            if key in RUN_NAMES:
                raise ConfigError(f"{deployfile.where(layer, key)}: {key!r} is set by fap for each run and cannot be configured")
            origin = Origin(kind, deployfile.where(layer, key))
            if key == "hosts":

                value, host_settings = read_hosts(deployfile, layer, declared, warnings)
            if key in declared:
                values[key] = check_type(key, value, declared[key], origin)
            else:
                # Undeclared names are the user's own, for %(name)s references.
                values[key] = check_type(key, value, "" if _scalar(_plain(value)) else value, origin)
                if key in deployfile.custom_settings:
                    origins[key] = origin
                    continue
                hint = unknown_setting_hint(key, declared, origin.where)
                if hint:
                    warnings.append(f"{origin.where}: {key} is not a known setting{hint}")
                elif key.isupper():
                    warnings.append(_upper_case_warning(deployfile, layer, key, origin.where))
            origins[key] = origin
    for key, value in overrides.items():
        values[key] = value
        origins[key] = Origin("cli")
    steps = (*deployfile.hook_steps(None, None), *deployfile.hook_steps(stage, role))
    shell = {name for name, d in declared.items() if d.setting.shell}
    checked = {name: d.setting for name, d in declared.items() if d.setting.check is not None or d.setting.choices}
    return RoleSettings(stage, role, MappingProxyType(values), MappingProxyType(origins), tuple(plugins), tuple(warnings),
                        steps, frozenset(shell), MappingProxyType(dict(host_settings)), MappingProxyType(checked))


def top_level_settings(deployfile: DeployFile, declared: Mapping[str, Declared], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The run's own settings (``run.config``): defaults, deploy.yml's top level, the command line; interpolated.

    Layered as :func:`merge` layers a target's, without a stage/role block
    (what a block sets belongs to its target) and without a host: a reference
    to a per-host name (``%(host)s``, ``%(release)s``...) is left as written,
    and so is one to a name only a block defines.
    """
    values: dict[str, Any] = {name: _plain(d.default) for name, d in declared.items()}
    origins: dict[str, Origin] = {name: d.origin for name, d in declared.items()}
    for key, value in deployfile.data.items():
        if key in _RESERVED or key in RUN_NAMES:
            continue
        origin = Origin("file", deployfile.where(deployfile.data, key))
        spec = declared[key] if key in declared else ("" if not isinstance(value, (list, dict)) else value)
        values[key] = check_type(key, value, spec, origin)
        origins[key] = origin
    for key, value in overrides.items():
        values[key] = value
        origins[key] = Origin("cli")
    # "%%" is interpolation's escape for "%": a per-host name stays "%(host)s".
    for name in RUN_NAMES:
        values[name] = f"%%({name})s"
        origins.setdefault(name, Origin("core"))
    resolved = {}
    for name in values:
        if name in RUN_NAMES:
            continue
        try:
            resolved[name] = interpolate(values, origins, only=[name])[name]
        except ConfigError:
            # A name only a stage/role block defines: the targets resolve it; the run keeps it as written.
            resolved[name] = values[name]
    return resolved


# ---------------------------------------------------------------------------
# Interpolation, per host
# ---------------------------------------------------------------------------


#: How deep ``%(name)s`` references may chain (a -> b -> c ... counts one per arrow).
MAX_REFERENCE_DEPTH = 50
#: The longest text (in characters) a value may grow to by interpolation.
MAX_INTERPOLATED_CHARS = 1_000_000


def interpolate(
    values: Mapping[str, Any],
    origins: Mapping[str, Origin],
    only: Iterable[str] | None = None,
    environ: Mapping[str, str] | None = None,
    reads: dict[str, dict[str, str]] | None = None,
    shell: Iterable[str] = (),
) -> dict[str, Any]:
    """Resolve every ``%(name)s`` and ``%(env:NAME)s``; unknown names, cycles and runaway values name the key and its origin.

    With ``only``, resolve just those names (and what they reference). ``%(env:NAME)s``
    reads ``environ`` (fap's own environment by default); when ``reads`` is given, it
    receives, per setting, each variable read and its value (the secrets of the run).
    In the settings named in ``shell`` (shell text) a value goes in shell-quoted.
    """
    environ = os.environ if environ is None else environ
    resolved: dict[str, Any] = {}
    resolving: list[str] = []
    shell = frozenset(shell)

    def text(value: str, key: str) -> str:
        pieces: list[str] = []
        length = 0
        start = 0
        quoted = key in shell
        problem = quoted and unquoted_references_only(value)
        if problem:
            raise ConfigError(f"{origins[key].prefix()}{key}: {problem}")
        for match in _REF.finditer(value):
            ref, variable, default, malformed = match.groups()
            if malformed is not None:
                raise ConfigError(f"{origins[key].prefix()}{key}: cannot read {malformed}; write %(env:NAME)s or"
                                  " %(env:NAME:-default)s with NAME a variable name")
            if variable is not None:
                piece = from_environment(variable, default, key)
            else:
                piece = "%" if ref is None else _stringify(resolve(ref, key))
            if quoted and match.group(0) != "%%":
                piece = shlex.quote(piece)  # shell text: a value is one word, never a command
            pieces += (value[start:match.start()], piece)
            length += match.start() - start + len(piece)
            start = match.end()
            # Checked as the text grows: values that each double the one before would
            # otherwise take all memory within a few levels.
            if length > MAX_INTERPOLATED_CHARS:
                raise ConfigError(f"{origins[key].prefix()}{key}: grows past {MAX_INTERPOLATED_CHARS} characters"
                                  " once its %(name)s references are filled in")
        pieces.append(value[start:])
        return "".join(pieces)

    def from_environment(variable: str, default: str | None, key: str) -> str:
        # As the shell's ${NAME:-default}: an empty variable counts as unset (a CI system
        # hands a secret it does not have as an empty variable).
        value = environ.get(variable, "")
        if not value:
            if default is not None:
                return default  # written in deploy.yml: not a secret
            raise ConfigError(f"{origins[key].prefix()}{key}: environment variable ${variable} is not set"
                              f"{' (it is empty)' if variable in environ else ''}; set it, or give a default"
                              f" with %(env:{variable}:-default)s")
        if len(value) < MIN_SECRET:
            raise ConfigError(f"{origins[key].prefix()}{key}: environment variable ${variable} holds fewer than"
                              f" {MIN_SECRET} characters; a value read from the environment is a secret, and one this"
                              " short cannot be hidden in output: use a longer value")
        if reads is not None:
            reads.setdefault(key, {})[variable] = value
        return value

    def resolve(name: str, referrer: str | None) -> Any:
        if name in resolved:
            return resolved[name]
        if name not in values:
            origin = origins.get(referrer or "", Origin("core"))
            hint = _suggest(name, values)
            raise ConfigError(f"{origin.prefix()}{referrer}: unknown name %({name})s{hint}")
        if name in resolving:
            cycle = " -> ".join(resolving[resolving.index(name):] + [name])
            raise ConfigError(f"{origins[name].prefix()}{name}: %(name)s references form a cycle: {cycle}")
        if len(resolving) >= MAX_REFERENCE_DEPTH:
            chain = " -> ".join([*resolving[:3], "...", name])
            raise ConfigError(f"{origins[resolving[0]].prefix()}{resolving[0]}: %(name)s references nest deeper than"
                              f" {MAX_REFERENCE_DEPTH} levels: {chain}")
        resolving.append(name)
        value = values[name]
        if isinstance(value, str):
            value = text(value, name)
        elif isinstance(value, list):
            value = [text(v, name) if isinstance(v, str) else v for v in value]
        elif isinstance(value, Mapping):
            value = {k: text(v, name) if isinstance(v, str) else v for k, v in value.items()}
        resolving.pop()
        resolved[name] = value
        return value

    for name in values if only is None else only:
        resolve(name, None)
    return resolved


def _stringify(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(_text(v) for v in value)
    return _text(value)


def target_for_host(
    settings: RoleSettings,
    host: HostSpec,
    release: str | None,
) -> Target:
    """Interpolate ``settings`` for one host and one release name; an error never quotes a secret."""
    if settings.host_settings:

        settings = for_host(settings, host)
    try:
        return _target_for_host(settings, host, release)
    except ConfigError as error:
        # A masked value interpolated into a checked setting (connection, max_fail...) would be quoted.
        values = {**settings.values, "stage": settings.stage, "role": settings.role, "host": host.name, "release": release or ""}
        reads: dict[str, dict[str, str]] = {}
        try:
            values = interpolate(values, settings.origins, reads=reads, shell=settings.shell)
        except ConfigError:
            pass
        listed = values.get("mask")
        mask = listed if isinstance(listed, list) else []
        environment = [value for variables in reads.values() for value in variables.values()]
        masker = Masker([*collect_secrets(values, mask, _prefixes(settings.origins)), *environment])
        raise ConfigError(masker(str(error))) from None


def _prefixes(origins: Mapping[str, Origin]) -> dict[str, str]:
    return {name: origin.prefix() for name, origin in origins.items()}


def _target_for_host(settings: RoleSettings, host: HostSpec, release: str | None) -> Target:
    values = dict(settings.values)
    origins = dict(settings.origins)
    if host.user:
        values["user"] = host.user
        origins["user"] = settings.origins["hosts"]
    values.update(stage=settings.stage, role=settings.role, host=host.name, release=release or "")
    for name in RUN_NAMES:
        origins[name] = Origin("core")
    if release is None:
        # Resolve the configured release_path once anyway: a bad reference in it must stop
        # the run here, before any host is touched, not when the release is named.
        configured_release_path = interpolate(values, origins, shell=settings.shell)["release_path"]
        values["release_path"] = "%(current_path)s"
    else:
        configured_release_path = None
    reads: dict[str, dict[str, str]] = {}
    config = interpolate(values, origins, reads=reads, shell=settings.shell)
    for name, variables in reads.items():
        origins[name] = replace(origins[name], environment=tuple(variables))
    collect_secrets(config, config["mask"], _prefixes(origins))  # a masked value too short to hide is an error
    if not config.get("app_name") and "%(app_name)s" in str(settings.values.get("path")):
        raise ConfigError(f"{_origin_text(settings, 'app_name')}app_name is not set (path uses it)")
    # A bad reference in the configured release_path must stop the run here too, before the release is named.
    checked = {**config, "release_path": configured_release_path} if configured_release_path is not None else config
    for name, setting in settings.checked.items():
        check_value(setting, checked[name], _origin_text(settings, name))
    secrets = tuple(s for s in config["mask"] if s in config)
    return Target(
        stage=settings.stage,
        role=settings.role,
        host=host,
        release=release,
        config=MappingProxyType(config),
        origins=MappingProxyType(origins),
        plugins=settings.plugins,
        secrets=secrets,
        environment_secrets=tuple(dict.fromkeys(v for variables in reads.values() for v in variables.values())),
    )


def _origin_text(settings: RoleSettings, name: str) -> str:
    origin = settings.origins.get(name)
    return origin.prefix() if origin and origin.kind in ("file", "block", "host", "cli") else f"{settings.stage}/{settings.role}: "


def check_value(setting: Setting, value: Any, where: str) -> None:
    """Refuse ``value`` (interpolated, for one host) when it is not one of ``setting.choices`` or its ``check`` raises.

    ``where`` starts the error line (``deploy.yml:12: `` or ``command line: ``);
    the setting's name follows, then what the check said. ``None`` is left
    alone in an optional setting (unset); elsewhere (``path: null``) the check says.
    """
    if value is None and setting.optional:
        return
    if setting.choices and value is not None and value not in setting.choices:
        raise ConfigError(f"{where}{setting.name}: expected one of {', '.join(setting.choices)}, got {value!r}")
    if setting.check is None:
        return
    try:
        setting.check(value)
    except ValueError as problem:
        raise ConfigError(f"{where}{setting.name}: {problem}") from None
    except Exception as error:  # noqa: BLE001 - a check that crashes is the declaring plugin's bug: one line, no traceback
        raise ConfigError(f"{where}{setting.name}: its check ({setting.where}) failed: {type(error).__name__}: {error}") from None


def hosts_of(settings: RoleSettings) -> list[HostSpec]:
    """The hosts of a stage/role, parsed; an empty list is an error."""
    origin = settings.origins["hosts"]
    hosts = [HostSpec.parse(text, origin) for text in settings.values["hosts"]]
    if not hosts:
        raise ConfigError(f"{settings.stage}/{settings.role}: no hosts (set hosts: in its stage_role_configs block)")
    return hosts


# -- Per-host settings ------------------------------------------------------------
#
# Per-host settings: an item of ``hosts:`` written as a mapping, ``{host: NAME, setting: value, ...}``.
#
# Such an item overrides its stage/role's values for that host only. Precedence,
# lowest first: core defaults, plugin settings, the top of deploy.yml, the
# stage/role block, the host item, the command line. ``environment:`` in a host
# item merges over the role's (a variable it names wins, the others stay). A
# host listed in two roles keeps each role's own values: the items belong to
# the ``hosts:`` list they are written in.


#: Keys a host item cannot set: they choose the hosts (and their plugins), or fap sets them per run.
NOT_PER_HOST = frozenset({"hosts", "plugins", *RUN_NAMES, *_RESERVED})
#: Settings of the run as a whole (how many hosts at once, in which batches, how many may fail): one value per run.
RUN_WIDE = frozenset({"max_parallel", "batch_size", "max_fail"})


@dataclass(frozen=True)
class HostLayer:
    """The settings one host item sets, type-checked, each with its origin (``deploy.yml:14 (host NAME)``)."""

    values: Mapping[str, Any]
    origins: Mapping[str, Origin]


def read_hosts(deployfile: DeployFile, layer: Any, declared: Mapping[str, Declared],
               warnings: list[str]) -> tuple[list[Any], dict[HostSpec, HostLayer]]:
    """``layer``'s ``hosts:`` as plain host texts, and the settings of each item written as a mapping.

    Keys are checked as deploy.yml's own are: a declared setting is
    type-checked, a key one edit from a known setting is an error (unless
    ``custom_settings`` lists it), another unknown key is a setting of the
    user's own (a warning when a known name is close).
    """
    items = layer["hosts"]
    if not isinstance(items, list) or not any(isinstance(item, (Mapping, list)) for item in items):
        return items, {}  # the usual type check says what is wrong with anything else
    texts: list[Any] = []
    layers: dict[HostSpec, HostLayer] = {}
    for index, item in enumerate(items):
        where = _item_line(deployfile, layer, items, index)
        if isinstance(item, list):
            raise ConfigError(f"{where}: hosts: expected a host ([user@]host[:port]) or a mapping with host:, got a list")
        if not isinstance(item, Mapping):
            texts.append(item)
            continue
        if "host" not in item:
            near = next((f"; {key}{hint}" for key in item if (hint := _suggest(str(key), ["host"]))), "")
            raise ConfigError(f"{where}: hosts: a host written as a mapping needs host: NAME,"
                              f" e.g. {{host: web2, setting: value}}{near}")
        name = item["host"]
        if not isinstance(name, str):
            raise ConfigError(f"{where}: hosts: host: expected a host name [user@]host[:port], got {_describe(_plain(name))}")
        spec = HostSpec.parse(name, Origin("file", where))
        texts.append(name)
        layers[spec] = _host_layer(deployfile, item, spec, where, declared, warnings)
    return texts, layers


def _host_layer(deployfile: DeployFile, item: Mapping[str, Any], spec: HostSpec, where: str,
                declared: Mapping[str, Declared], warnings: list[str]) -> HostLayer:
    values: dict[str, Any] = {}
    origins: dict[str, Origin] = {}
    for key, value in item.items():
        if key == "host":
            continue
        line = _key_line(deployfile, item, key, where)
        prefix = f"{line}: hosts: host {spec.name}:"
        if not isinstance(key, str):
            raise ConfigError(f"{prefix} setting names must be strings, got {key!r}")
        if key in NOT_PER_HOST or key.endswith("_plugins"):
            raise ConfigError(f"{prefix} {key} cannot be set per host (it chooses hosts or plugins, or fap sets it);"
                              " set it in the stage/role block")
        if key in RUN_WIDE:
            raise ConfigError(f"{prefix} {key} applies to the whole run, not to one host;"
                              " set it at the top level, in the stage/role block or on the command line")
        origin = Origin("host", line, host=spec.name)
        if key in declared:
            values[key] = check_type(key, value, declared[key], _named(origin, spec))
        else:
            values[key] = check_type(key, value, "" if _scalar(_plain(value)) else value, _named(origin, spec))
            if key not in deployfile.custom_settings:
                hint = unknown_setting_hint(key, declared, prefix.removesuffix(":"))
                if hint:
                    warnings.append(f"{line}: hosts: host {spec.name}: {key} is not a known setting{hint}")
        origins[key] = origin
    return HostLayer(MappingProxyType(values), MappingProxyType(origins))


def _named(origin: Origin, spec: HostSpec) -> Origin:
    """The origin type errors start with: ``deploy.yml:14: hosts: host NAME: key: ...``."""
    return Origin("file", f"{origin.where}: hosts: host {spec.name}")


def for_host(settings: RoleSettings, host: HostSpec) -> RoleSettings:
    """``settings`` with ``host``'s item laid over them: below the command line, ``environment`` merged."""
    layer = _layer_of(settings.host_settings, host)
    if layer is None:
        return settings
    values = dict(settings.values)
    origins = dict(settings.origins)
    for key, value in layer.values.items():
        if origins.get(key, Origin("core")).kind == "cli":
            continue
        if key == "environment" and isinstance(values.get(key), Mapping) and isinstance(value, Mapping):
            value = {**values[key], **value}
        values[key] = value
        origins[key] = layer.origins[key]
    return replace(settings, values=MappingProxyType(values), origins=MappingProxyType(origins))


def _layer_of(layers: Mapping[HostSpec, HostLayer], host: HostSpec) -> HostLayer | None:
    if host in layers:
        return layers[host]
    # ``--hosts`` on the command line names hosts without the user@ or port deploy.yml wrote.
    same = [layer for spec, layer in layers.items() if spec.name == host.name and (host.port is None or spec.port == host.port)]
    return same[0] if len(same) == 1 else None


def _item_line(deployfile: DeployFile, layer: Any, items: Any, index: int) -> str:
    try:
        return f"{deployfile.path}:{cast(Any, items).lc.item(index)[0] + 1}"  # ruamel's line info
    except (AttributeError, KeyError, TypeError):
        return deployfile.where(layer, "hosts")


def _key_line(deployfile: DeployFile, item: Any, key: Any, where: str) -> str:
    try:
        return f"{deployfile.path}:{cast(Any, item).lc.key(key)[0] + 1}"  # ruamel's line info
    except (AttributeError, KeyError, TypeError):
        return where
