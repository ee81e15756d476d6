"""``fap promote -s production --from staging``: deploy to production exactly the revision staging's ``current`` runs.

Three steps, and nothing changes before the last one:

1. read staging: one probe per selected host and the revision of its
   ``current`` (:func:`~fapistrano.hookspecs.fap_release_revision`); every
   host must run the same one, or the command stops (exit 2) naming who runs
   what;
2. ask production's source plugin which settings ship exactly that revision
   (:func:`~fapistrano.hookspecs.fap_source_promote`; git: ``branch`` set to
   the commit); a plugin that cannot (curl, upload) stops the command (exit 2);
3. an ordinary ``fap deploy`` of production with those settings, its lock,
   freeze, phases and exit codes, recorded as promoted from staging
   (``run.promoted_from``).
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import TYPE_CHECKING, Any

import click

from fapistrano.commands.wiring import exit_with, fleet_command, wait_lock_option
from fapistrano.completion import complete_stage
from fapistrano.errors import ConfigError, FapError
from fapistrano.flows import FlowName
from fapistrano.hosts import Member, key
from fapistrano.options import Options

if TYPE_CHECKING:  # imported where the command runs: fap --help stays light
    from fapistrano.compose import Composition


def check_stages(options: Options, stage: str | None, source: str) -> None:
    """``-s`` and ``--from`` name two different stages of deploy.yml; else one line, exit 2."""
    from fapistrano import config as cfg
    from fapistrano.compose import deployfile_path

    if not stage:
        raise ConfigError("fap promote: choose the stage to deploy to with -s (e.g. -s production --from staging)")
    blocks = cfg.DeployFile.load(deployfile_path(options.deployfile)).blocks
    for flag, name in (("-s", stage), ("--from", source)):
        if name not in blocks:
            close = difflib.get_close_matches(name, list(blocks), n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"fap promote: {flag} {name}: unknown stage{hint}; stages: {', '.join(blocks)}")
    if stage == source:
        raise ConfigError(f"fap promote: -s and --from both name {stage}: promote ships one stage's revision to another")


def source_revision(options: Options, source: str, role: str | None) -> tuple[str, str]:
    """``(revision, release)`` that every selected host of stage ``source`` runs; else a :class:`ConfigError` (exit 2).

    Read only, without the lock. ``--hosts`` is production's filter, not
    applied here: promote speaks for the whole of staging (or its role).
    """
    from fapistrano.compose import Composition
    from fapistrano.plugins import describe

    read = dataclasses.replace(options.plain(), hosts=None, dry_run=False)
    from fapistrano.commands.pending import every_host

    # A deploy's plugins say which revision a release holds (deploy_plugins: included).
    with Composition(read, source, role, [], "deploy", hosts=every_host) as fleet:
        runner, members = fleet.runner, fleet.members
        found: dict[str, tuple[str | None, str | None]] = {}
        try:
            failures = runner.connect(members, probe=True)
            answered = [m for m in members if key(m) not in failures]
            runner.make_contexts(answered, lambda member: (None, None), FlowName.RELEASES)

            def ask(member: Member) -> None:
                assert member.ctx is not None and member.state is not None
                member.ctx.phase = "promote"
                current = member.state.current
                found[key(member)] = (current, member.ctx.revision(current) if current else None)

            failures.update(runner.on_each(answered, ask))
        finally:
            runner.close(members)
        fleet.close()
    if failures:
        lines = "; ".join(f"{m.name}: {describe(failures[key(m)], m.name)}" for m in members if key(m) in failures)
        raise FapError(f"fap promote: cannot read what {source} runs: {lines}")
    return agreed_revision(source, [(m.name, *found[key(m)]) for m in members])


def agreed_revision(source: str, hosts: list[tuple[str, str | None, str | None]]) -> tuple[str, str]:
    """The one ``(revision, release)`` of ``(host, release, revision)`` rows; else why not, naming hosts."""
    if not hosts:
        raise ConfigError(f"fap promote: --from {source}: no host selected")
    empty = [name for name, release, _ in hosts if not release]
    if empty:
        raise ConfigError(f"fap promote: {source} has no live release on {', '.join(empty)}: nothing to promote")
    unknown = [f"{name} ({release})" for name, release, revision in hosts if not revision]
    if unknown:
        raise ConfigError(f"fap promote: cannot tell which revision {source} runs on {', '.join(unknown)}:"
                          " the release holds no revision its source plugin can read")
    by_revision: dict[str, list[str]] = {}
    for name, release, revision in hosts:
        by_revision.setdefault(f"{revision} (release {release})", []).append(name)
    if len({revision for _, _, revision in hosts}) > 1:
        who = "; ".join(f"{', '.join(names)} run{'s' if len(names) == 1 else ''} {what}" for what, names in by_revision.items())
        raise ConfigError(f"fap promote: the hosts of {source} disagree: {who}; deploy {source} first, or choose a role with -r")
    _, release, revision = hosts[0]
    assert release is not None and revision is not None
    return revision, release


def pinning_overrides(options: Options, stage: str, role: str | None, overrides: list[str], revision: str,
                      source: str) -> list[str]:
    """``--setting=value`` arguments that make production's deploy ship ``revision`` (the source plugin's answer).

    Asked before anything connects: a plugin that cannot promote stops here.
    """
    from fapistrano.compose import Composition

    pinned: dict[str, Any] = {}
    with Composition(options.plain(), stage, role, overrides, "deploy", connects=False) as fleet:
        for label, members in _by_target(fleet.members).items():
            target = members[0].target
            caller = fleet.runner.plugins.caller("fap_source_promote", target.plugins)
            try:
                answer = caller(revision=revision, stage=target.stage, role=target.role, config=target.config)
            except FapError as error:
                cause = getattr(error, "error", error)
                raise ConfigError(str(cause)) from None
            if answer is None:
                plugins = ", ".join(target.plugins) or "none"
                raise ConfigError(f"fap promote: {label}: no plugin can ship a given revision (plugins: {plugins});"
                                  " the git plugin can")
            for name, value in dict(answer).items():
                if name in pinned and pinned[name] != value:
                    raise ConfigError(f"fap promote: the targets of {stage} pin {name} to {pinned[name]!r} and {value!r}")
                pinned[name] = value
        fleet.runner.close([])
    return [*overrides, *(f"--{name}={value}" for name, value in pinned.items())]


def _by_target(members: list[Member]) -> dict[str, list[Member]]:
    targets: dict[str, list[Member]] = {}
    for member in members:
        targets.setdefault(member.label, []).append(member)
    return targets


def promote(fleet: Composition, source: str, revision: str, release: str) -> Any:
    """The deploy of production, recorded as promoted from ``source``."""
    from fapistrano.commands.deploy import deploy

    fleet.announce(f"promoting {revision} (release {release} of {source})")
    return deploy(fleet, promoted_from=source)


@fleet_command("promote", "Deploy to the stage of -s exactly the revision the stage of --from runs (its current).",
               short_help="Deploy the revision another stage runs.")
@click.option("--from", "source", required=True, metavar="STAGE", shell_complete=complete_stage,
              help="The stage whose current revision to ship, e.g. staging.")
@wait_lock_option
def command(options: Options, stage: str | None, role: str | None, overrides: list[str], source: str) -> None:
    from fapistrano.commands.changing import render
    from fapistrano.compose import Composition

    check_stages(options, stage, source)
    revision, release = source_revision(options, source, role)
    pinned = pinning_overrides(options, stage or "", role, overrides, revision, source)
    with Composition(options, stage, role, pinned, "deploy") as fleet:
        outcome = promote(fleet, source, revision, release)
        exit_with(render(fleet, outcome, success=f"promoted {revision[:12]} from {source}: deployed release {outcome.release}"))
