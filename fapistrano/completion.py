"""Shell completion: stage and role names from the deploy file, plugin names for ``fap init``.

Click's own completion (``_FAP_COMPLETE=bash_source fap``; see
docs/cli-completion.md) completes commands and options by itself; these
callbacks add the values of ``-s/--stage``, ``-r/--role`` and
``fap init --plugins``. They run on every Tab press, so they stay quiet:
any problem yields no candidates, never an error on the user's prompt.
"""

from __future__ import annotations

from typing import Any

from click.shell_completion import CompletionItem, FishComplete, add_completion_class

# click 8.4.0 and 8.4.1 emit a fish script that fish cannot parse (an unquoted "\n"
# becomes a line break inside `string split`; pallets/click#3502). Until the installed
# click is fixed, fish gets the script of click 8.1, which works on every fish >= 3.
_FISH_SOURCE = """\
function %(complete_func)s;
    set -l response (env %(complete_var)s=fish_complete COMP_WORDS=(commandline -cp) COMP_CWORD=(commandline -t) %(prog_name)s);

    for completion in $response;
        set -l metadata (string split -m 1 "," $completion);

        if test $metadata[1] = "dir";
            __fish_complete_directories $metadata[2];
        else if test $metadata[1] = "file";
            __fish_complete_path $metadata[2];
        else if test $metadata[1] = "plain";
            echo $metadata[2];
        end;
    end;
end;

complete --no-files --command %(prog_name)s --arguments "(%(complete_func)s)";
"""


class _FishComplete(FishComplete):
    """Fish completion with a script fish can read (see ``_FISH_SOURCE``)."""

    source_template = _FISH_SOURCE

    def format_completion(self, item: CompletionItem) -> str:
        value = item.value.replace("\n", " ")
        if item.help:
            return f"{item.type},{value}\t{item.help.splitlines()[0]}"
        return f"{item.type},{value}"


if "split \n" in FishComplete.source_template:
    add_completion_class(_FishComplete)


def _deployfile_option(context: Any) -> str | None:
    while context is not None:
        value = context.params.get("deployfile")
        if value:
            return str(value)
        context = context.parent
    return None


def _blocks(context: Any) -> dict[str, list[str]]:
    from fapistrano.config import DeployFile, find_deployfile

    try:
        deployfile = DeployFile.load(find_deployfile(_deployfile_option(context)))
        return {str(stage): [str(role) for role in roles] for stage, roles in deployfile.blocks.items()}
    except Exception:  # noqa: BLE001 - completion must never print an error into the prompt
        return {}


def complete_stage(context: Any, param: Any, incomplete: str) -> list[Any]:
    """Stages of the deploy file that start with ``incomplete``."""
    return [CompletionItem(stage) for stage in _blocks(context) if stage.startswith(incomplete)]


def complete_role(context: Any, param: Any, incomplete: str) -> list[Any]:
    """Roles (of the chosen ``--stage``, if any) that start with ``incomplete``."""
    blocks = _blocks(context)
    stage = context.params.get("stage")
    roles = blocks.get(stage, []) if stage in blocks else sorted({r for roles in blocks.values() for r in roles})
    return [CompletionItem(role) for role in roles if role.startswith(incomplete)]


def complete_plugins(context: Any, param: Any, incomplete: str) -> list[Any]:
    """Installed plugins for ``fap init --plugins a,b``: bundled ones by their short name."""
    from fapistrano.plugins import installed_plugins

    done, _, word = incomplete.rpartition(",")
    prefix = f"{done}," if done else ""
    chosen = set(done.split(",")) if done else set()
    names = [p.name.removeprefix("fapistrano.") for p in installed_plugins()]
    return [CompletionItem(prefix + name) for name in names if name.startswith(word) and name not in chosen]
