"""``fap config``: every resolved setting of a stage/role, its value (secrets masked) and where it came from.

Connects to nothing. :func:`setting_rows` and :func:`step_rows` return rows; :data:`command` prints them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import click

from fapistrano.commands.wiring import fleet_command
from fapistrano.config import RUN_NAMES, Step, Target
from fapistrano.masking import MASK, Masker
from fapistrano.options import Options


@dataclass(frozen=True)
class SettingRow:
    """One resolved setting as ``fap config`` shows it."""

    name: str
    value: str
    origin: str


def value_text(value: Any) -> str:
    """A setting's value as YAML flow would write it: ``null``, ``true``, ``[a, b]``, ``{K: v}``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else "''"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {value_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    return str(value)


def setting_rows(target: Target, secret_names: Iterable[str], masker: Masker) -> list[SettingRow]:
    """Every resolved setting of ``target``: value (secrets masked) and where it came from."""
    secrets = set(secret_names) | set(target.config.get("mask") or [])
    rows = []
    for name, value in target.config.items():
        if name in RUN_NAMES:
            continue
        if name in secrets and value not in (None, "", [], {}):
            shown = MASK
        else:
            shown = masker(value_text(value))
        rows.append(SettingRow(name, shown, str(target.origins.get(name, "core default"))))
    return rows


def step_rows(steps: Iterable[Step], masker: Masker) -> list[SettingRow]:
    """The steps of ``hooks:`` a target runs, in order: ``hooks.PHASE``, what runs where, and the step's ``file:line``."""
    rows = []
    for step in steps:
        kind = "local" if step.local else "run"
        once = " (once)" if step.once else ""
        once += " (migrates)" if step.migrates else " (migrates back)" if step.migrates_back else ""
        once += f" (parallel {step.parallel})" if step.parallel else ""
        rows.append(SettingRow(f"hooks.{step.phase}", masker(f"{kind}: {step.command}{once}"), f"deploy.yml ({step.where})"))
    return rows


@fleet_command("config", "Show every resolved setting of a stage/role, its value (secrets masked) and where it came from."
               " Connects to nothing.", short_help="Show resolved settings and where each came from.")
@click.option("--host", "host", metavar="NAME", help="Resolve for this host, by exact name (default: the first of each stage/role).")
def command(options: Options, stage: str | None, role: str | None, overrides: list[str], host: str | None) -> None:
    from rich.text import Text

    from fapistrano.compose import Composition, host_filter

    # As 'fap deploy' resolves them (its plugins); nothing connects.
    # A stage/role with hosts: [] shows its settings for a stand-in host: they are worth checking before servers exist.
    with Composition(options.plain(), stage, role, overrides, "deploy", hosts=host_filter(False), host=host,
                     connects=False, stand_in="no host yet") as fleet:
        secret_names = fleet.runner.plugins.secret_settings()
        for index, member in enumerate(fleet.members):
            rows = setting_rows(member.target, secret_names, fleet.masker) + step_rows(member.settings.steps, fleet.masker)
            if index:
                fleet.console.print()
            fleet.console.print(f"# {member.label} on {member.name}: the settings 'fap deploy' uses", style="bold",
                                markup=False, highlight=False, soft_wrap=True)
            name_width = max(len(r.name) for r in rows)
            value_width = min(max(len(r.value) for r in rows), 48)
            for row in rows:
                line = Text(row.name.ljust(name_width + 2))
                line.append(row.value.ljust(value_width) + "  ")
                line.append(row.origin, style="dim")
                fleet.console.print(line, soft_wrap=True)
        fleet.runner.close([])
        fleet.close()
