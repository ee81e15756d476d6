"""Generate the reference pages' reStructuredText from the code itself.

The configuration reference, the CLI reference and the hook reference are
never typed by hand: they are built from the ``fap_settings`` of the core's
built-in plugin ``core.settings`` and of each bundled plugin, from the
click command tree in ``fapistrano.cli``, and from the hookspec docstrings in
``fapistrano.hookspecs``. This module imports no Sphinx, so the tests
(``tests/test_docs.py``) call the same functions the docs build calls.
"""

from __future__ import annotations

import configparser
import importlib
import inspect
import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The repository: docs/_ext/ is two levels below it.
REPO = Path(__file__).resolve().parents[2]
#: Where the bundled plugin distributions live, one directory each.
BUNDLED_DIR = REPO / "fapistrano_plugins"


# ---------------------------------------------------------------------------
# reStructuredText helpers
# ---------------------------------------------------------------------------

_INLINE_SPECIALS = re.compile(r"([\\*`|@])")
_TRAILING_UNDERSCORE = re.compile(r"_(?=\W|$)")


#: A word docutils would read as the start of an address: letters, then ':' and no space.
_SCHEME = re.compile(r"(?<![\w.\\/-])([A-Za-z][A-Za-z0-9+.-]*):(?=[^\s:])")


def escape(text: str) -> str:
    """Plain text -> reST that shows exactly that text (no markup, no references)."""
    text = _INLINE_SPECIALS.sub(r"\\\1", text)
    text = _TRAILING_UNDERSCORE.sub(r"\\_", text)
    # docutils links any word that looks like a scheme (file:line, file://, ssh://): an escaped colon is text.
    text = _SCHEME.sub(r"\1\\:", text)
    # A line starting with a list or comment marker would turn into one.
    lines = [("\\" + line) if line[:1] in "-+#.:" and line[:1] else line for line in text.splitlines()]
    return "\n".join(lines)


def literal(text: str) -> str:
    """``text`` as an inline literal, whatever characters it holds.

    reST literals cannot start or end with a space: such text (and the empty
    string) is shown double-quoted, as YAML would write it.
    """
    if not text or text != text.strip():
        text = json.dumps(text)
    if "`" not in text and "\\" not in text:
        return f"``{text}``"
    shown = text.replace("\\", "\\\\").replace("`", "\\`")
    return f":literal:`{shown}`"


def indent(text: str, prefix: str = "   ") -> str:
    return "\n".join(prefix + line if line.strip() else "" for line in text.splitlines())


def heading(title: str, char: str) -> str:
    return f"{title}\n{char * len(title)}\n"


def label(name: str) -> str:
    """A reST label from any text: lowercase, dashes."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


# ---------------------------------------------------------------------------
# Settings: the configuration reference
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One setting as the configuration reference shows it."""

    name: str
    default: Any
    doc: str
    owner: str  # "core" or the plugin's entry point name
    secret: bool = False
    kind: str = ""  # as fapistrano.settings.Setting.kind; empty: from the default
    optional: bool = False
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class BundledPlugin:
    """A plugin distribution under ``fapistrano_plugins/``."""

    name: str  # entry point name: what deploy.yml lists
    module: str  # the module the entry point names
    distribution: str
    directory: Path


@dataclass
class PluginSettings:
    """What one plugin declares: its settings (with docs) and its secrets."""

    plugin: BundledPlugin
    settings: list[Setting] = field(default_factory=list)


def bundled_plugins(root: Path = BUNDLED_DIR) -> list[BundledPlugin]:
    """Every ``fapistrano_plugins/fapistrano-*`` distribution and its ``fapistrano`` entry point."""
    found = []
    for directory in sorted(p for p in root.glob("fapistrano-*") if p.is_dir()):
        for name, module, distribution in _entry_points(directory):
            found.append(BundledPlugin(name, module, distribution, directory))
    return found


def _entry_points(directory: Path) -> list[tuple[str, str, str]]:
    """``(entry point name, module, distribution)`` from setup.cfg, else pyproject.toml."""
    setup_cfg = directory / "setup.cfg"
    if setup_cfg.is_file():
        parser = configparser.ConfigParser()
        parser.read(setup_cfg, encoding="utf-8")
        distribution = parser.get("metadata", "name", fallback=directory.name)
        group = parser.get("options.entry_points", "fapistrano", fallback="")
        pairs = [line.split("=", 1) for line in group.splitlines() if "=" in line]
        if pairs:
            return [(name.strip(), value.strip().split(":")[0], distribution) for name, value in pairs]
    pyproject = directory / "pyproject.toml"
    if pyproject.is_file() and sys.version_info >= (3, 11):
        import tomllib

        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        project = data.get("project", {})
        group = project.get("entry-points", {}).get("fapistrano", {})
        return [(name, value.split(":")[0], project.get("name", directory.name)) for name, value in group.items()]
    return []


def core_settings() -> list[Setting]:
    """The core's own settings, in the order the built-in plugin ``core.settings`` declares them."""
    from fapistrano.plugins import core_settings

    # As fap declares them: each with the kind its values are checked against (not an empty kind).
    return [Setting(s.name, s.default, s.doc, "core", s.secret, s.kind, s.optional and s.kind != "str", tuple(s.choices))
            for s in core_settings()]


def plugin_settings(plugins: Iterable[BundledPlugin] | None = None) -> list[PluginSettings]:
    """Load each plugin the way ``fap`` does and ask it for its settings.

    An installed plugin is loaded through its entry point; one that is not
    installed (a checkout without ``pip install``) is imported from its
    directory, so the reference can be built from a bare clone.
    """
    from fapistrano.config import CORE_PLUGIN
    from fapistrano.plugins import Plugins, installed_plugins

    installed = {entry.name for entry in installed_plugins()}
    results = []
    for plugin in plugins if plugins is not None else bundled_plugins():
        manager = Plugins()
        if plugin.name in installed:
            manager.load([(plugin.name, f"{plugin.distribution} (installed)")])
        else:
            source = plugin.directory / "src" if (plugin.directory / "src").is_dir() else plugin.directory
            if str(source) not in sys.path:
                sys.path.insert(0, str(source))
            importlib.invalidate_caches()
            manager.load([(plugin.module, str(plugin.directory))])
        settings = [
            Setting(s.name, s.default, s.doc, plugin.name, s.secret, s.kind, s.optional and s.kind != "str", tuple(s.choices))
            for owner, declared in manager.settings()
            if owner != CORE_PLUGIN  # the core's own are in core_settings()
            for s in declared
        ]
        results.append(PluginSettings(plugin, settings))
    return results


def _kind(setting: Setting) -> str:
    """The type a setting accepts, as ``fapistrano.config`` checks it (declared, else from its default)."""
    kind = setting.kind
    return {"dict": "mapping", "str": "string"}.get(kind, kind)


def format_default(value: Any) -> str:
    """A default as reST, written the way it would be written in deploy.yml."""
    if value is None:
        return "*not set*"
    if isinstance(value, bool):
        return literal("true" if value else "false")
    if isinstance(value, (list, tuple, Mapping)):
        return literal(json.dumps(list(value) if isinstance(value, tuple) else value))
    if value == "":
        return literal('""')
    return literal(str(value))


def setting_rst(setting: Setting) -> str:
    """One ``confval`` entry."""
    body = escape(setting.doc) if setting.doc else "*(no description)*"
    flag = "--" + setting.name.replace("_", "-")
    value = {"bool": "true|false", "int": "N", "float": "N", "list": "A,B", "mapping": "'{KEY: VALUE}'"}.get(
        _kind(setting), "VALUE"
    )
    if setting.choices:
        value = "|".join(setting.choices)
    kind = _kind(setting) + (" or null" if setting.optional else "")
    lines = [
        f".. confval:: {setting.name}",
        f"   :type: {literal(kind)}",
        f"   :default: {format_default(setting.default)}",
        "",
        indent(body),
        "",
        indent(command_line_text(setting, flag, value)),
    ]
    if setting.choices:
        lines += ["", f"   One of {', '.join(literal(c) for c in setting.choices)}."]
    if setting.secret:
        lines += ["", "   A secret: its value is shown as ``***`` in all output."]
    return "\n".join(lines) + "\n"


def command_line_text(setting: Setting, flag: str, value: str) -> str:
    """What ``fap COMMAND … --flag VALUE`` does with this setting, asked of the CLI and the config parser themselves."""
    from fapistrano.config import ConfigError, declared_settings, parse_cli_value
    from fapistrano.plugins import Plugins

    option, commands = _command_options().get(flag, (None, []))
    if option is not None:
        # A command's own option takes the flag before the overrides see it.
        metavar = option.metavar or "VALUE"
        named = ", ".join(f"``fap {name}``" for name in commands)
        return (f"On the command line {literal(flag + ' ' + metavar)} is not this setting: it is an option of"
                f" {named} (see :doc:`cli`): {_help_text(option.help)}")
    if setting.owner == "core":
        try:
            parse_cli_value(setting.name, "x", declared_settings(Plugins().settings())[setting.name])
        except ConfigError as error:
            if "cannot be chosen on the command line" in str(error):
                said = str(error).split(": ", 2)[-1]
                return f"Not on the command line: {literal(flag)} is refused ({escape(said)})."
    return f"On the command line: {literal(flag + ' ' + value)}."


def _command_options() -> dict[str, tuple[Any, list[str]]]:
    """Each ``--flag`` that an option of a command taking ``--SETTING VALUE`` overrides claims first:
    ``(the option, the commands that have it)``."""
    import click

    options: dict[str, tuple[Any, list[str]]] = {}
    for name, command in cli_commands().items():
        if not any(param.name == "overrides" for param in command.params):
            continue
        for param in command.params:
            if isinstance(param, click.Option):
                for flag in [*param.opts, *param.secondary_opts]:
                    options.setdefault(flag, (param, []))[1].append(name)
    return options


def settings_rst(core: list[Setting] | None = None, plugins: list[PluginSettings] | None = None) -> str:
    """The whole configuration reference body: core settings, then one section per plugin."""
    core = core_settings() if core is None else core
    plugins = plugin_settings() if plugins is None else plugins
    parts = [
        heading("Core settings", "-"),
        "Always available, whatever ``plugins:`` lists.\n",
    ]
    parts += [setting_rst(s) for s in core]
    for entry in plugins:
        plugin = entry.plugin
        parts.append(f".. _plugin-{label(plugin.name)}:\n")
        parts.append(heading(f"{plugin.name} ({plugin.distribution})", "-"))
        parts.append(
            f"Enabled by listing {literal(plugin.name)} under ``plugins:``; "
            f"installed with ``pip install {plugin.distribution}``.\n"
        )
        if not entry.settings:
            parts.append("This plugin declares no settings.\n")
        parts += [setting_rst(s) for s in entry.settings]
    return "\n".join(parts)


def undocumented_settings(core: list[Setting] | None = None, plugins: list[PluginSettings] | None = None) -> list[str]:
    """``owner: name`` of every setting declared without a description."""
    core = core_settings() if core is None else core
    plugins = plugin_settings() if plugins is None else plugins
    every = [*core, *(s for entry in plugins for s in entry.settings)]
    return [f"{s.owner}: {s.name}" for s in every if not s.doc.strip()]


# ---------------------------------------------------------------------------
# Hooks: the hook reference
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Hook:
    """A hook specification from ``fapistrano.hookspecs``."""

    name: str
    signature: str
    doc: str
    section: str
    line: int


def hookspecs() -> list[Hook]:
    """Every hookspec, in file order, with the banner section it sits under."""
    from fapistrano import hookspecs as module

    source_lines = inspect.getsource(module).splitlines()
    sections = _banners(source_lines)
    hooks = []
    for name, function in vars(module).items():
        if not inspect.isfunction(function) or not hasattr(function, "fapistrano_spec"):
            continue
        line = inspect.getsourcelines(function)[1]
        section = ""
        for start, title in sections:
            if start < line:
                section = title
        signature = str(inspect.signature(function)).replace("'", "")
        hooks.append(Hook(name, signature, inspect.getdoc(function) or "", section, line))
    return sorted(hooks, key=lambda hook: hook.line)


def _banners(lines: list[str]) -> list[tuple[int, str]]:
    """``(line, title)`` of each banner comment (1-based lines).

    A banner opens with a ``# ----`` line; its first comment line is the
    title; further comment lines (if any) run until the closing ``# ----``.
    """
    found = []
    inside = False
    for number, line in enumerate(lines, start=1):
        if line.startswith("# ---"):
            inside = not inside
            title_pending = inside
            continue
        if inside and title_pending and line.startswith("# ") and line[2:].strip():
            found.append((number, line[2:].strip()))
            title_pending = False
    return found


def _flows() -> list[Any]:
    from fapistrano import flows

    return [flows.RELEASE, flows.ROLLBACK, flows.RESTART]


def _core_impls() -> dict[str, list[str]]:
    """hook name -> the core modules implementing it (with tryfirst/trylast)."""
    from fapistrano.plugins import BUILTIN_PLUGINS, Plugins

    manager = Plugins().manager
    found: dict[str, list[str]] = {}
    for caller in manager.hook.__dict__.values():
        if not hasattr(caller, "get_hookimpls"):
            continue
        for impl in caller.get_hookimpls():
            if impl.plugin_name in BUILTIN_PLUGINS:
                where = literal(impl.plugin_name)
                if impl.tryfirst:
                    where += " (``tryfirst``)"
                if impl.trylast:
                    where += " (``trylast``)"
                found.setdefault(caller.name, []).append(where)
    return found


def flows_rst() -> str:
    """A table: each flow's phases in order, and the hook each phase calls."""
    lines = [
        ".. list-table:: The phases of each flow, in order",
        "   :header-rows: 1",
        "   :widths: 15 85",
        "",
        "   * - flow",
        "     - phases (each calls ``fap_deploy_<phase>`` on every host)",
    ]
    for flow in _flows():
        phases = ", ".join(f":py:func:`{flow.hook_name(p)}`" for p in flow.phases)
        lines += [f"   * - {flow.name}", f"     - {phases}"]
    lines += ["", "When a release or a rollback fails up to and including ``publishing``,"
              " :py:func:`fap_deploy_failed` runs on every host of the run (its entry says when else).", ""]
    return "\n".join(lines)


#: Advice to whoever reads the source file, which a page of the docs is not.
_SOURCE_ONLY = re.compile(r"Read this file top to bottom[^.]*\.\s*")
#: ``docs/NAME.rst`` in a docstring: on a page of the docs, a link to that page.
_DOC_PATH = re.compile(r"``?docs/([\w-]+)\.rst``?|\bdocs/([\w-]+)\.rst\b")


def docstring_for_page(text: str) -> str:
    """A docstring as a page shows it: no advice on reading the source file, ``docs/NAME.rst`` a link."""
    text = _SOURCE_ONLY.sub("", text)
    return _DOC_PATH.sub(lambda m: f":doc:`{m[1] or m[2]}`", text)


def hook_rst(hook: Hook, core: Mapping[str, list[str]] | None = None) -> str:
    """One hook: signature, its docstring, which flows call it, what the core does in it."""
    core = _core_impls() if core is None else core
    lines = [f".. py:function:: {hook.name}{hook.signature}", ""]
    lines.append(indent(docstring_for_page(hook.doc)) if hook.doc else "   *(undocumented)*")
    used = []
    for flow in _flows():
        for position, phase in enumerate(flow.phases, start=1):
            if flow.hook_name(phase) == hook.name:
                used.append(f"{flow.name} (phase {position} of {len(flow.phases)})")
    if used:
        lines += ["", f"   **Called in:** {', '.join(used)}."]
    if core.get(hook.name):
        lines += ["", f"   **Core hookimpls:** {', '.join(core[hook.name])}."]
    return "\n".join(lines) + "\n"


def hooks_rst(hooks: list[Hook] | None = None) -> str:
    """The hook reference body: the flows table, then every hook under its section."""
    hooks = hookspecs() if hooks is None else hooks
    core = _core_impls()
    parts = [".. py:currentmodule:: fapistrano.hookspecs\n", flows_rst()]
    section = None
    for hook in hooks:
        if hook.section != section:
            section = hook.section
            parts.append(heading(section or "Hooks", "-"))
        parts.append(hook_rst(hook, core))
    return "\n".join(parts)


# ---------------------------------------------------------------------------
# Commands: the CLI reference
# ---------------------------------------------------------------------------


def _help_text(text: str | None) -> str:
    """click help (paragraphs, ``\\b`` no-rewrap markers) -> escaped reST paragraphs."""
    if not text:
        return ""
    lines = [line for line in inspect.cleandoc(text).splitlines() if line.strip() != "\b"]
    return escape("\n".join(lines))


def _option_signature(param: Any, context: Any) -> str:
    """``-s STAGE, --stage STAGE`` as Sphinx's ``option`` directive reads it."""
    takes_value = not getattr(param, "is_flag", False) and not getattr(param, "count", False)
    metavar = ""
    if takes_value:
        try:
            metavar = param.make_metavar(context)
        except TypeError:  # click < 8.2 takes no context
            metavar = param.make_metavar()
    names = [*param.opts, *param.secondary_opts]
    return ", ".join(f"{name} {metavar}" if takes_value and metavar else name for name in names)


def _default_text(param: Any) -> str:
    import click.core

    default = param.default
    unset = getattr(click.core, "UNSET", None)  # click >= 8.3 marks "no default" with a sentinel
    if (unset is not None and default is unset) or default in (None, False, 0, (), []):
        return ""
    if callable(default) or getattr(param, "is_flag", False):
        return ""
    return f" Default: {literal(str(default))}."


def command_rst(command: Any, path: list[str], parent_context: Any) -> str:
    """One command (recursing into groups): usage, help, arguments and options."""
    import click

    name = " ".join(path)
    context = click.Context(command, info_name=path[-1], parent=parent_context)
    parts = [f".. _cli-{label(name)}:\n", heading(f"``{name}``", "-")]
    usage = command.get_usage(context)
    parts.append(".. code-block:: text\n\n" + indent(usage) + "\n")
    help_text = _help_text(command.help)
    if help_text:
        parts.append(help_text + "\n")
    aliases = getattr(command, "_fap_aliases", [])
    if aliases:
        parts.append(f"Alias: {', '.join(literal(a) for a in aliases)}.\n")
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    options = [p for p in command.params if isinstance(p, click.Option) and not p.hidden]
    # The run options every command repeats are documented once, under ``fap``.
    shared = [o for o in options if o.name in _run_option_names()]
    options = [o for o in options if o.name not in _run_option_names()]
    for argument in arguments:
        metavar = argument.metavar or argument.name.upper()
        if argument.type is click.UNPROCESSED and argument.nargs == -1:
            parts.append(
                f"{literal(metavar)}: any setting, as ``--name-with-dashes VALUE`` "
                "(see :doc:`configuration`); it wins over deploy.yml for this run.\n"
            )
        else:
            parts.append(f"{literal(metavar)}: {_help_text(getattr(argument, 'help', None)) or 'argument.'}\n")
    if shared:
        parts.append(
            "Also takes the :ref:`run options <cli-fap>`: "
            + ", ".join(literal(o.opts[-1]) for o in shared) + ".\n"
        )
    if options:
        parts.append(f".. program:: {name}\n")
        for option in options:
            body = _help_text(option.help) or "(no description)"
            parts.append(f".. option:: {_option_signature(option, context)}\n\n{indent(body + _default_text(option))}\n")
    if isinstance(command, click.Group):
        for sub_name in sorted(command.commands):
            sub = command.commands[sub_name]
            if not sub.hidden:
                parts.append(command_rst(sub, [*path, sub_name], context))
    return "\n".join(parts)


def _run_option_names() -> set[str]:
    """Names of the options ``fap`` itself takes, which every fleet command repeats."""
    from fapistrano.cli import cli

    return {p.name for p in cli.params if p.name not in ("version", "help")}


def cli_commands() -> dict[str, Any]:
    """The visible commands of ``fap``, by name (hidden aliases folded into their command)."""
    from fapistrano.cli import cli

    visible = {name: command for name, command in cli.commands.items() if not command.hidden}
    for name, command in cli.commands.items():
        if command.hidden:
            for other in visible.values():
                if other.callback is command.callback:
                    other._fap_aliases = sorted({*getattr(other, "_fap_aliases", []), name})
    return dict(sorted(visible.items()))


def cli_rst() -> str:
    """The CLI reference body: ``fap`` and its global options, then every command."""
    import click

    from fapistrano.cli import cli

    root = click.Context(cli, info_name="fap")
    parts = [".. _cli-fap:\n", heading("``fap``", "-"), ".. code-block:: text\n\n" + indent(cli.get_usage(root)) + "\n"]
    parts.append(_help_text(cli.help) + "\n")
    parts.append(
        "The run options below (``--deployfile`` … ``--live``) may also be given after the "
        "command name, where they win: ``fap deploy -s production --dry-run``.\n"
    )
    parts.append(".. program:: fap\n")
    for option in cli.params:
        if isinstance(option, click.Option) and not option.hidden:
            body = _help_text(option.help) or "(no description)"
            parts.append(f".. option:: {_option_signature(option, root)}\n\n{indent(body + _default_text(option))}\n")
    parts.append("**Commands:** " + ", ".join(f":ref:`{n} <cli-fap-{label(n)}>`" for n in cli_commands()) + ".\n")
    for name, command in cli_commands().items():
        parts.append(command_rst(command, ["fap", name], root))
    return "\n".join(parts)


# ---------------------------------------------------------------------------
# Examples: deploy.yml files shown in the guides
# ---------------------------------------------------------------------------


def example_text(path: str | None, fallback: str) -> tuple[str, str]:
    """``(text, shown path)``: ``path`` (relative to the repository) when present, else ``fallback``."""
    file = REPO / path if path else None
    if file is not None and file.is_file():
        return file.read_text(encoding="utf-8"), path
    return fallback, "deploy.yml"


_EXAMPLE = re.compile(r"^\.\. fap-example::(?: +(\S+))? *\n((?:[ \t]*\n|   .*\n)*)", re.MULTILINE)


def examples_in(rst_file: Path) -> list[tuple[str | None, str]]:
    """Every ``.. fap-example:: [PATH]`` in ``rst_file``: ``(PATH, the deploy.yml it shows)``."""
    text = rst_file.read_text(encoding="utf-8")
    found = []
    for match in _EXAMPLE.finditer(text + "\n"):
        body = [line[3:] if line.startswith("   ") else "" for line in match.group(2).splitlines()]
        # Options (":caption: ...") come first, then the fallback yaml.
        while body and (body[0].startswith(":") or not body[0].strip()):
            body.pop(0)
        fallback = "\n".join(body).strip("\n") + "\n"
        found.append((match.group(1), example_text(match.group(1), fallback)[0]))
    return found
