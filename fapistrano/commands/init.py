"""``fap init``: write a commented deploy.yml for a new project.

The file names the chosen plugins, lists every setting of the core and of
those plugins with its default and description (commented out, so the
defaults stay the plugins' to change), and declares the stages ``staging``
and ``production`` with empty host lists to fill in. The descriptions come
from the settings the core (``core.settings``) and each plugin declare:
nothing is typed twice.
"""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from fapistrano import __version__
from fapistrano.commands.wiring import PLAIN, options_of
from fapistrano.errors import ConfigError, FapError
from fapistrano.flows import COMMANDS
from fapistrano.settings import Setting

#: The commands deploy.yml can give plugins of their own, ``<command>_plugins``.
_CHOOSING = [command.name for command in COMMANDS if command.chooses_plugins]
#: Core settings the template writes itself (or that belong in a stage/role block).
_WRITTEN = {"app_name", "plugins", "hosts", "release_plugins", *(f"{command}_plugins" for command in _CHOOSING)}
_RULE = "# " + "-" * 76
#: Commented examples written under a core setting's default, where one value cannot show its use.
_EXAMPLES = {
    "batch_size": ["# batch_size: [1, 25%, 100%]   # a canary ramp: one host, then a quarter of them, then the rest"],
    "batch_pause": ["# batch_pause: 60             # a minute between two batches to watch the canary"],
}


def plugin_names(option: Iterable[str], installed: Iterable[str] = ()) -> list[str]:
    """``--plugins git,virtualenv`` -> ``['fapistrano.git', 'fapistrano.virtualenv']``.

    A short name (no dot) is a bundled plugin's entry point ``fapistrano.<name>``,
    unless an installed entry point has that very name (``hello``); a dotted
    name is used as written (another entry point, or a module path).
    """
    installed = set(installed)
    names: list[str] = []
    for chunk in option:
        for word in chunk.split(","):
            word = word.strip()
            if not word:
                continue
            name = word if "." in word or word in installed else f"fapistrano.{word}"
            if name not in names:
                names.append(name)
    return names


def default_app_name(directory: Path) -> str:
    """The project directory's name, reduced to what is safe in a path."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", directory.resolve().name).strip("-.")
    return name or "myapp"


def yaml_line(name: str, value: Any) -> str:
    """``name: value`` as YAML writes it (quoted where YAML needs it), on one line."""
    from io import StringIO

    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = True
    yaml.width = 4096
    stream = StringIO()
    yaml.dump({name: value}, stream)
    return stream.getvalue().strip()[1:-1]


def _comment(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(text, width=88 - len(indent), initial_indent=f"{indent}# ", subsequent_indent=f"{indent}# ") if text else []


def _setting_block(name: str, default: Any, doc: str, secret: bool = False) -> list[str]:
    lines = _comment(doc + (" Secret: masked in all output." if secret else ""))
    lines.append(f"# {yaml_line(name, default)}")
    return lines


def render(
    app_name: str,
    plugins: list[tuple[str, str, Mapping[str, Any]]],
    docs: Mapping[str, str],
    secrets: Iterable[str] = (),
    core: Sequence[Setting] | None = None,
) -> str:
    """The text of a new deploy.yml.

    :param core: the core's settings (default: as ``core.settings`` declares them).
    :param plugins: ``(name, label, {setting: default})`` of each chosen plugin, in order.
    :param docs: every plugin setting's description.
    :param secrets: the plugin settings declared secret.
    """
    if core is None:
        from fapistrano.plugins import core_settings

        core = core_settings()
    secret_names = set(secrets)
    out = [
        f"# deploy.yml for {app_name}: how fap ships it (written by 'fap init', fap {__version__}).",
        "#",
        "# Precedence, lowest first: core defaults, plugin defaults, the top level of this",
        "# file, a stage/role block under stage_role_configs, the command line",
        "# (fap deploy -s production --keep-releases 3). A value may use other settings as",
        "# %(name)s, and %(stage)s, %(role)s, %(host)s, %(release)s of the run.",
        "#",
        "#   fap config -s staging -r web   every resolved setting and where it came from",
        "#   fap check -s staging           what would make a deploy fail, host by host",
        "#   fap deploy -s staging          ship a release; fap rollback -s staging undoes it",
        "",
        yaml_line("app_name", app_name),
        "",
    ]
    if plugins:
        out += ["# Plugins, in the order their hooks run within a phase.", "plugins:"]
        out += [f"  - {name}" for name, _label, _defaults in plugins]
    else:
        out += [
            "# Plugins fetch code, build environments and restart processes; without one a",
            "# deploy only makes the release layout. 'fap plugins' lists the installed ones.",
            "plugins: []",
        ]
    out += ["", _RULE, "# Core settings (defaults shown; uncomment a line to change it)", _RULE, ""]
    for setting in core:
        if setting.name in _WRITTEN:
            continue
        out += [*_setting_block(setting.name, setting.default, setting.doc), *_EXAMPLES.get(setting.name, []), ""]
    commands = ", ".join(f"{command}_plugins" for command in _CHOOSING)
    out += [*_comment(f"A command can have its own plugin list, replacing plugins: {commands}."),
            "# restart_plugins: [fapistrano.supervisorctl]", ""]
    for _name, label, defaults in plugins:
        out += [_RULE, f"# {label}", _RULE, ""]
        if not defaults:
            out += ["# (this plugin declares no settings)", ""]
        for name, default in defaults.items():
            out += [*_setting_block(name, default, docs.get(name, ""), name in secret_names), ""]
    out += [
        _RULE,
        "# Steps of your own, in any phase (docs: deploy-hooks). run: runs on every host, in",
        "# the release; local: once, on this machine. once: true runs it on one host of the",
        "# stage; parallel: N on at most N hosts at a time; migrates: true says it changes",
        "# the database schema, so that fap rollback will not go back past it unless a",
        "# migrates_back: true step (in reverting) takes the schema back first.",
        _RULE,
        *_HOOKS_EXAMPLE,
        "",
        _RULE,
        "# Stages and roles. Each block lists its hosts, [user@]host[:port], and may",
        "# override any setting above for that stage/role only. A host written as a",
        "# mapping, {host: NAME, setting: value}, overrides settings for that host only.",
        "# Delete what you do not use.",
        _RULE,
        "stage_role_configs:",
        "  staging:",
        "    web:",
        "      hosts: []              # e.g. [staging.example.com]",
        "  production:",
        "    web:",
        "      hosts: []              # e.g. [web1.example.com, deploy@web2.example.com:2222]",
        "      # hosts:",
        "      #   - web1.example.com",
        "      #   - {host: web2.example.com, environment: {WORKERS: '8'}}   # merged over the role's",
        "      # keep_releases: 10",
        "    worker:",
        "      hosts: []              # e.g. [worker1.example.com]",
        "",
    ]
    return "\n".join(out)


#: The commented ``hooks:`` of the template: uncommented as a block, it loads.
_HOOKS_EXAMPLE = [
    "# hooks:",
    "#   updated:",
    "#     - run: venv/bin/python manage.py migrate --noinput",
    "#       once: true",
    "#       migrates: true",
    "#     - run: venv/bin/python manage.py collectstatic --noinput",
    "#       parallel: 4",
    "#   reverting:",
    "#     - run: venv/bin/python manage.py migrate app \"$DOWN_TO\"   # your down-migration",
    "#       migrates_back: true   # once, on one host, before the switch",
    "#   failed:",
    "#     - local: ./notify.sh \"deploy of $FAP_RELEASE failed\"",
]


def load_plugins(names: list[str], where: str = "--plugins") -> tuple[list[tuple[str, str, Mapping[str, Any]]], dict[str, str], list[str]]:
    """Load the chosen plugins; return ``(name, label, defaults)`` each, their docs and secrets.

    An unknown name fails with the installed ones listed (the loader's own error).
    """
    from fapistrano.plugins import Plugins, installed_plugins

    plugins = Plugins()
    plugins.load([(name, where) for name in names], search_path=os.getcwd())
    defaults = dict(plugins.defaults())
    installed = {p.name: p for p in installed_plugins()}
    chosen: list[tuple[str, str, Mapping[str, Any]]] = []
    for name in names:
        dist = installed.get(name)
        label = f"{name} ({dist.distribution} {dist.version})" if dist else f"{name} (module)"
        chosen.append((name, label, defaults.get(name) or {}))
    return chosen, plugins.docs(), plugins.secret_settings()


def write_new(path: Path, text: str) -> None:
    """Create ``path`` with ``text``; refuse, in one line, if it exists."""
    try:
        with open(path, "x", encoding="utf-8") as stream:
            stream.write(text)
    except FileExistsError:
        # Bad input (exit 2), like any other refusal of what the command line asked for.
        raise ConfigError(f"{path}: already exists; not overwriting it (move it away, or write elsewhere with -d FILE)") from None
    except OSError as error:
        raise FapError(f"{path}: cannot write: {error.strerror}") from None


def init(path: Path, plugin_option: Iterable[str], app_name: str | None) -> list[str]:
    """Write a commented deploy.yml at ``path`` with the chosen plugins; return their names. Refuses to overwrite."""
    from fapistrano.plugins import installed_plugins

    if path.exists():
        write_new(path, "")  # raises the one-line refusal before any plugin is loaded
    names = plugin_names(plugin_option, [p.name for p in installed_plugins()])
    chosen, docs, secrets = load_plugins(names)
    write_new(path, render(app_name or default_app_name(path.parent), chosen, docs, secrets))
    return names


def _complete_plugins(context: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    from fapistrano.completion import complete_plugins

    return complete_plugins(context, param, incomplete)


@click.command("init", context_settings=PLAIN, short_help="Write a commented deploy.yml.")
@click.option("-d", "--deployfile", metavar="FILE", help="Where to write it (default: ./deploy.yml).")
@click.option("-p", "--plugins", "plugin_option", multiple=True, metavar="NAMES", shell_complete=_complete_plugins,
              help="Comma-separated plugins, e.g. git,virtualenv,supervisorctl (short for fapistrano.<name>).")
@click.option("--app-name", metavar="NAME", help="The application's name (default: the directory's name).")
@click.pass_context
def command(context: click.Context, deployfile: str | None, plugin_option: tuple[str, ...], app_name: str | None) -> None:
    """Write a commented deploy.yml: stages, roles, every setting with its default.

    Refuses to overwrite an existing file.
    """
    path = Path(deployfile or options_of(context).deployfile or "deploy.yml")
    names = init(path, plugin_option, app_name)
    listed = ", ".join(names) or "none"
    click.echo(f"wrote {path} (plugins: {listed}); next: fill in hosts under stage_role_configs, then run 'fap check -s staging'")
