"""Shell completion of stage and role names, read from the deploy file.

Click's own completion (``_FAP_COMPLETE=bash_source fap``; see
docs/cli-completion.md) completes commands and options by itself; these
callbacks add the values of ``-s/--stage`` and ``-r/--role``. They run on
every Tab press, so they stay quiet: any problem yields no candidates,
never an error on the user's prompt.
"""

from __future__ import annotations

from typing import Any


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
    from click.shell_completion import CompletionItem

    return [CompletionItem(stage) for stage in _blocks(context) if stage.startswith(incomplete)]


def complete_role(context: Any, param: Any, incomplete: str) -> list[Any]:
    """Roles (of the chosen ``--stage``, if any) that start with ``incomplete``."""
    from click.shell_completion import CompletionItem

    blocks = _blocks(context)
    stage = context.params.get("stage")
    roles = blocks.get(stage, []) if stage in blocks else sorted({r for roles in blocks.values() for r in roles})
    return [CompletionItem(role) for role in roles if role.startswith(incomplete)]
