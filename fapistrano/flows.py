"""The one table of flows and phases: which phases each flow runs, in which order, and how each picks its release.

Everything that names phases reads them here: the hookspecs (a
``fap_deploy_<phase>`` hook for each :class:`Phase`, checked when
:mod:`fapistrano.hookspecs` is imported), the ``hooks:`` validation of
deploy.yml (:data:`STEP_PHASES`), the steps built-in (one hookimpl per phase)
and the live view (:data:`LAST_PHASES`). A new phase is one member of
:class:`Phase`, its place in a :class:`Flow`, and its hookspec.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from fapistrano import layout
from fapistrano.errors import ConfigError, FapError


class FlowName(str, Enum):
    """What ``ctx.flow`` says: which flow the hook runs in. A string: ``ctx.flow == "release"`` works.

    A flow is named for what it does to the hosts; the command that runs it
    (``fap deploy`` runs the ``release`` flow) is ``ctx.command``: see :data:`COMMANDS`.
    """

    RELEASE = "release"
    ROLLBACK = "rollback"
    RESTART = "restart"
    CHECK = "check"
    ONCE = "once"
    RELEASES = "releases"
    PENDING = "pending"

    def __str__(self) -> str:
        return self.value


class Phase(str, Enum):
    """The phases of the flows, as ``ctx.phase`` names them (a string, like :class:`FlowName`)."""

    STARTING = "starting"
    STARTED = "started"
    UPDATING = "updating"
    UPDATED = "updated"
    REVERTING = "reverting"
    REVERTED = "reverted"
    PUBLISHING = "publishing"
    PUBLISHED = "published"
    FINISHING = "finishing"
    FINISHING_ROLLBACK = "finishing_rollback"
    FINISHED = "finished"
    RESTARTING = "restarting"
    RESTARTED = "restarted"
    #: Not in any flow's order: ``fap_deploy_failed`` runs on every host when a run fails, in any flow.
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


def hook_name(phase: str) -> str:
    """The hook a phase calls: ``fap_deploy_<phase>`` (``fap_deploy_failed`` for ``failed``)."""
    return f"fap_deploy_{phase}"


@dataclass(frozen=True)
class Flow:
    """A command's phases. Phases before ``publish_phase`` are all-or-nothing."""

    name: FlowName
    phases: tuple[Phase, ...]
    publish_phase: Phase | None
    creates_release: bool

    def hook_name(self, phase: str) -> str:
        """The hook ``phase`` calls (see :func:`hook_name`)."""
        return hook_name(phase)

    def before_publishing(self, phase: str) -> bool:
        """Whether a failure in ``phase`` must leave every host as it was."""
        if self.publish_phase is None:
            return False
        return self.phases.index(phase) < self.phases.index(self.publish_phase)


P = Phase
RELEASE = Flow(
    FlowName.RELEASE,
    (P.STARTING, P.STARTED, P.UPDATING, P.UPDATED, P.PUBLISHING, P.PUBLISHED, P.FINISHING, P.FINISHED),
    publish_phase=P.PUBLISHING,
    creates_release=True,
)
ROLLBACK = Flow(
    FlowName.ROLLBACK,
    (P.STARTING, P.STARTED, P.REVERTING, P.REVERTED, P.PUBLISHING, P.PUBLISHED, P.FINISHING_ROLLBACK, P.FINISHED),
    publish_phase=P.PUBLISHING,
    creates_release=False,
)
RESTART = Flow(FlowName.RESTART, (P.RESTARTING, P.RESTARTED), publish_phase=None, creates_release=False)
del P

#: The flows that run phases on the hosts.
FLOWS: tuple[Flow, ...] = (RELEASE, ROLLBACK, RESTART)
#: What ``hooks:`` in deploy.yml may name: every phase of every flow, and ``failed`` (the run failed).
STEP_PHASES: tuple[Phase, ...] = tuple(Phase)
#: The phase each flow ends with: a host done with it is done with its run.
LAST_PHASES: frozenset[Phase] = frozenset(flow.phases[-1] for flow in FLOWS)


@dataclass(frozen=True)
class Command:
    """A command the user types (``fap deploy``), as the parts of fap that are not its module need to know it."""

    name: str
    #: What ``ctx.flow`` says in the hooks it calls; ``None``: it calls no hook with a ``ctx``.
    flow: FlowName | None = None
    #: deploy.yml may give it a plugin list of its own, ``<name>_plugins`` (a core setting).
    chooses_plugins: bool = False
    #: It only reads the hosts: two stage/roles may share a directory on one host.
    reads_only: bool = False


#: Every command, in the order help, ``fap init`` and ``fap plugins`` list them: the one registry of their names.
COMMANDS: tuple[Command, ...] = (
    Command("deploy", FlowName.RELEASE, chooses_plugins=True),
    Command("rollback", FlowName.ROLLBACK, chooses_plugins=True),
    Command("restart", FlowName.RESTART, chooses_plugins=True),
    Command("once", FlowName.ONCE, chooses_plugins=True),
    Command("check", FlowName.CHECK, chooses_plugins=True, reads_only=True),
    Command("shell", chooses_plugins=True),
    Command("releases", FlowName.RELEASES, chooses_plugins=True, reads_only=True),
    # Both ask a deploy's plugins (deploy_plugins: too): what a deploy would ship, which revision it can be told to.
    Command("pending", FlowName.PENDING, reads_only=True),
    Command("promote", FlowName.RELEASE),
    Command("history", reads_only=True),
    Command("unlock", chooses_plugins=True, reads_only=True),
    Command("lock"),
    Command("config", reads_only=True),
    Command("plugins"),
    Command("init"),
    Command("disconnect"),
)


def command(name: str) -> Command:
    """The command ``name`` (a :class:`KeyError` for a name that is none)."""
    for known in COMMANDS:
        if known.name == name:
            return known
    raise KeyError(name)


def command_of_flow(flow: str) -> str:
    """The command whose hooks see ``ctx.flow == flow``: ``deploy`` for ``release``; a flow no command runs names itself."""
    return next((known.name for known in COMMANDS if known.flow is not None and known.flow == flow), str(flow))


def release_for_run(states: list[layout.HostState]) -> str:
    """One new release name for every host of the run, unique on each of them.

    A name some host still holds marks of (its release removed by hand) is
    taken too: a new release must not inherit an old one's ``bad`` mark.
    """
    taken = {name for state in states for name in (*state.releases, *state.unfinished, *state.marks)}
    return layout.release_name(layout.now(), taken)


def rollback_choice(host: str, state: layout.HostState, to: str | None) -> tuple[str, str]:
    """``(release to return to, release being left)`` for one host, or a clear refusal.

    Without ``to``: the newest release before ``current`` not marked bad; none
    is a refusal saying why (exit 2, no host touched).
    ``to`` may name a bad release (the caller warns).
    """
    if state.current is None:
        raise ConfigError(f"{host}: nothing to roll back: no current release")
    if to is not None:
        if to not in state.releases:
            known = ", ".join(state.releases) or "none"
            raise ConfigError(f"{host}: cannot roll back to {to}: no such finished release (releases: {known})")
        if to == state.current:
            raise ConfigError(f"{host}: {to} is already current")
        return to, state.current
    previous = layout.previous_good_release(state)
    if previous is None:
        older = [r for r in state.releases if layout.release_key(r) < layout.release_key(state.current)]
        if older:
            raise ConfigError(f"{host}: nothing to roll back to: every release before {state.current} is marked bad"
                              f" ({', '.join(older)}); pick one with --to RELEASE")
        newer = [r for r in state.releases if layout.release_key(r) > layout.release_key(state.current)]
        if newer:  # current is the oldest, e.g. after a rollback --to: going forward is a deliberate --to
            raise ConfigError(f"{host}: nothing to roll back to: no release older than {state.current}"
                              f" (newer: {', '.join(newer)}); pick one with --to RELEASE")
        raise ConfigError(f"{host}: nothing to roll back to: {state.current} is the only finished release")
    return previous, state.current


def restart_choice(host: str, state: layout.HostState) -> str:
    """The current release, which a restart works on."""
    if state.current is None:
        raise FapError(f"{host}: nothing deployed yet: no current release to restart")
    return state.current
