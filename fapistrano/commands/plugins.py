"""``fap plugins``: installed plugins — distribution, version, hooks, settings — and whether deploy.yml enables them.

Works without a deploy file; never connects. :func:`plugin_infos` returns
:class:`PluginInfo` objects; :func:`render` prints them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import click

from fapistrano.commands.wiring import PLAIN, options_of
from fapistrano.config import CORE_PLUGIN, DeployFile
from fapistrano.errors import ConfigError, ExitCode, FapError
from fapistrano.flows import COMMANDS

#: The commands deploy.yml can give plugins of their own (``<command>_plugins``), in the registry's order.
_CHOOSING = [command.name for command in COMMANDS if command.chooses_plugins]


@dataclass
class PluginInfo:
    """A plugin as ``fap plugins`` lists it."""

    name: str
    distribution: str
    version: str
    module: str
    enabled: str = ""
    hooks: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    docs: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    error: str = ""


def describe_plugin(name: str, where: str, search_path: str | None = None) -> PluginInfo:
    """Load plugin ``name`` alone (a fresh manager) and read its hooks and settings."""
    from fapistrano.plugins import Plugins

    info = PluginInfo(name=name, distribution="-", version="-", module=name)
    plugins = Plugins()
    try:
        plugins.load([(name, where)], search_path=search_path)
        info.settings = dict(dict(plugins.defaults()).get(name) or {})
        info.docs = plugins.docs()
        info.secrets = plugins.secret_settings()
    except ConfigError as error:
        info.error = str(error).removeprefix(f"{where}: ")
        return info
    info.hooks = plugins.implemented_hooks(name)
    return info


def enabled_text(name: str, uses: Mapping[str, set[tuple[str, str, str]]], everywhere: set[tuple[str, str, str]]) -> str:
    """``yes``, ``no``, or where: ``yes (fap deploy, rollback; on production/web)``."""
    mine = uses.get(name, set())
    if not mine:
        return "no"
    if mine == everywhere:
        return "yes"
    parts = []
    commands = sorted({c for _, _, c in mine}, key=_CHOOSING.index)
    if len(commands) < len(_CHOOSING):
        parts.append("fap " + ", ".join(commands))
    targets = sorted({(s, r) for s, r, _ in mine})
    if len(targets) < len({(s, r) for s, r, _ in everywhere}):
        parts.append("on " + ", ".join(f"{s}/{r}" for s, r in targets))
    return f"yes ({'; '.join(parts)})"


def plugin_uses(deployfile: DeployFile) -> tuple[dict[str, set[tuple[str, str, str]]], set[tuple[str, str, str]], dict[str, str]]:
    """Which plugin deploy.yml enables for which (stage, role, command), and where each is listed."""
    uses: dict[str, set[tuple[str, str, str]]] = {}
    everywhere: set[tuple[str, str, str]] = set()
    listed: dict[str, str] = {}
    for stage, roles in deployfile.blocks.items():
        for role in roles:
            for command in _CHOOSING:
                everywhere.add((stage, role, command))
                for name, where in deployfile.plugins_for(stage, role, command):
                    uses.setdefault(name, set()).add((stage, role, command))
                    listed.setdefault(name, where)
    if not deployfile.blocks:
        # No targets yet: the top-level plugins: list still says what is enabled.
        for name, where in _top_plugins(deployfile):
            uses.setdefault(name, set()).add(("", "", "deploy"))
            listed.setdefault(name, where)
        everywhere = {("", "", "deploy")}
    return uses, everywhere, listed


def _top_plugins(deployfile: DeployFile) -> list[tuple[str, str]]:
    names = deployfile.data.get("plugins") or []
    if isinstance(names, str):
        names = [names]
    return [(n, deployfile.where(deployfile.data, "plugins")) for n in names if isinstance(n, str)]


def plugin_infos(deployfile: DeployFile | None) -> list[PluginInfo]:
    """Every installed plugin, then modules deploy.yml names that are not installed distributions."""
    from fapistrano.plugins import installed_plugins

    uses: dict[str, set[tuple[str, str, str]]] = {}
    everywhere: set[tuple[str, str, str]] = set()
    listed: dict[str, str] = {}
    search_path = None
    if deployfile is not None:
        uses, everywhere, listed = plugin_uses(deployfile)
        search_path = str(deployfile.path.parent.resolve())
    infos = []
    seen = set()
    for installed in installed_plugins():
        if installed.name in seen:
            continue
        seen.add(installed.name)
        info = describe_plugin(installed.name, f"entry point {installed.name} = {installed.value}")
        info.distribution, info.version, info.module = installed.distribution, installed.version, installed.value
        if deployfile is not None:
            info.enabled = enabled_text(installed.name, uses, everywhere)
        infos.append(info)
    for name, where in listed.items():
        if name in seen:
            continue
        seen.add(name)
        info = describe_plugin(name, where, search_path)
        info.distribution = f"module listed at {where}"
        info.enabled = enabled_text(name, uses, everywhere)
        infos.append(info)
    return infos


def builtin_plugins() -> list[tuple[str, list[str]]]:
    """The core's own hookimpls (always on), with the hooks each implements."""
    from fapistrano.plugins import BUILTIN_PLUGINS, Plugins

    plugins = Plugins()
    # core.steps (deploy.yml's hooks:) is registered first to be called last; it reads best listed last too,
    # and core.settings (no phase, only the core's settings) after it.
    names = sorted(BUILTIN_PLUGINS, key=lambda name: (name == CORE_PLUGIN, name == "core.steps"))
    return [(name, plugins.implemented_hooks(name)) for name in names]


def _complete_plugins(context: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    from fapistrano.completion import complete_plugins

    return complete_plugins(context, param, incomplete)


def render(infos: list[PluginInfo], with_deployfile: bool) -> bool:
    """Print each plugin's block, then the built-ins; return whether a plugin deploy.yml enables failed to load."""
    from rich.text import Text

    from fapistrano.commands.init import yaml_line
    from fapistrano.ui import make_console

    console = make_console()
    if not infos:
        console.print("no fapistrano plugins installed (e.g. pip install fapistrano-git)", markup=False, highlight=False)
    broken = False
    for info in infos:
        head = Text(info.name, style="bold")
        head.append(f"  {info.distribution}" + (f" {info.version}" if info.version != "-" else ""))
        if info.module != info.name:
            head.append(f"  (module {info.module})", style="dim")
        console.print(head, soft_wrap=True)
        if with_deployfile:
            console.print(f"  enabled:  {info.enabled}", markup=False, highlight=False, soft_wrap=True)
        if info.error:
            broken = broken or info.enabled.startswith("yes")
            console.print(f"  error:    {info.error}", style="red", markup=False, highlight=False, soft_wrap=True)
            continue
        console.print(f"  hooks:    {', '.join(info.hooks) or 'none'}", markup=False, highlight=False, soft_wrap=True)
        if not info.settings:
            console.print("  settings: none", markup=False, highlight=False)
        for index, (name, default) in enumerate(info.settings.items()):
            line = Text("  settings: " if index == 0 else "            ")
            line.append(yaml_line(name, default))
            note = " ".join(n for n in (info.docs.get(name, ""), "[secret]" if name in info.secrets else "") if n)
            if note:
                line.append(f"  # {note}", style="dim")
            console.print(line, soft_wrap=True)
    builtins = "; ".join(f"{name.rsplit('.', 1)[-1]} ({', '.join(hooks)})" for name, hooks in builtin_plugins())
    console.print(f"built-in plugins, always on: {builtins}", style="dim", markup=False, highlight=False, soft_wrap=True)
    return broken


@click.command("plugins", context_settings=PLAIN, short_help="List installed plugins, their hooks and settings.")
@click.option("-d", "--deployfile", metavar="FILE", help="The deploy file whose plugins: to compare (default: deploy.yml here or in a parent directory, if any).")
@click.pass_context
def command(context: click.Context, deployfile: str | None) -> None:
    """List installed plugins: distribution, version, entry point, enabled or not, hooks, settings.

    Works without a deploy file; with one, also says whether it enables each
    plugin and lists the modules it names that are not installed plugins.
    """
    from fapistrano.compose import deployfile_path

    explicit = deployfile or options_of(context).deployfile
    try:
        path = deployfile_path(explicit)
    except FapError:
        if explicit or os.environ.get("FAP_APP"):
            raise
        path = None  # works without a deploy file
    document = DeployFile.load(path) if path else None
    if render(plugin_infos(document), with_deployfile=document is not None):
        sys.exit(ExitCode.BAD_INPUT)  # a plugin deploy.yml enables cannot load: bad input, as 'fap deploy' would say
