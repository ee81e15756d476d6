"""The hosts of a run: one :class:`Member` per (stage, role, host), and what the run learns about each.

Composition (:mod:`fapistrano.compose`) builds them from the selected
targets; the engine (:mod:`fapistrano.runner`) and the failure path
(:mod:`fapistrano.recovery`) write what happened to each; the commands read
them to say how the run ended.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from fapistrano import layout
from fapistrano.config import HostSpec, RoleSettings, Step, Target, hosts_of, target_for_host
from fapistrano.errors import FapError
from fapistrano.remote import Host, ssh_settings_from

if TYPE_CHECKING:
    from fapistrano.context import Context

#: How a member ended, beyond failed or not: "" while running, "ok"/"failed" in fap once,
#: "dropped" (taken out under --max-fail), "reverted" (switched back after a failed switch or health check),
#: "unhealthy" (its health check failed, within --max-fail: left on the new release).
MemberStatus = Literal["", "ok", "failed", "dropped", "reverted", "unhealthy"]


@dataclass
class HealthResult:
    """How one host's health check ended (what ``fap_health_check`` returns).

    ``passed``: the check passed; ``attempts`` and ``seconds``: how many tries
    and how long it took; ``output``: the last lines of the last failed try;
    ``interrupted``: a stop (Ctrl-C, SIGTERM) ended the retries.
    """

    passed: bool
    attempts: int
    seconds: float
    output: str = ""
    interrupted: bool = False


@dataclass
class Member:
    """One (stage, role, host) of the run and everything the run learns about it."""

    settings: RoleSettings
    spec: HostSpec
    target: Target
    connection: Host
    state: layout.HostState | None = None
    ctx: Context | None = None
    locked: bool = False
    switched: bool = False
    made_release: bool = False  # its first phase made this run's release directory
    release_left: bool = False  # the run's new release could not be removed after a failure: still on the host
    failed: BaseException | None = None
    failed_phase: str = ""
    status: MemberStatus = ""
    health: HealthResult | None = None  # how its health check ended, when one ran
    started: float = field(default_factory=time.monotonic)
    last_active: float | None = None  # when its last phase ended: its time in the summary
    steps: tuple[Step, ...] = ()  # the run: steps of hooks: this host runs (see fapistrano.steps.assign_steps)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def label(self) -> str:
        return f"{self.settings.stage}/{self.settings.role}"

    @property
    def current_moved(self) -> bool:
        """Whether this run moved the host's ``current`` and left it moved (switched, not switched back)."""
        return self.switched and self.status != "reverted"


def key(member: Member) -> str:
    """A member's identity in this run: stage, role and host."""
    return f"{member.settings.stage}/{member.settings.role}/{member.spec.name}:{member.spec.port or ''}"


def build_members(roles: Sequence[RoleSettings], control_dir: str, stand_in: str | None = None) -> list[Member]:
    """A :class:`Member` per host of every selected stage/role (no release chosen yet).

    ``stand_in`` names a host that connects nowhere for a stage/role with ``hosts: []``
    (``fap config`` shows its settings before any server exists); without it that is an error.
    """
    members = []
    for settings in roles:
        specs = [HostSpec(stand_in)] if stand_in and not settings.values["hosts"] else hosts_of(settings)
        for spec in specs:
            target = target_for_host(settings, spec, None)
            config = target.config
            ssh = None
            if config["connection"] != "local":
                ssh = ssh_settings_from(config, spec.name, spec.port, config["user"])
            sudo_user = config["sudo_user"] if config["sudo_user"] and config["sudo_user"] != config["user"] else None
            connection = Host(spec.name, ssh, sudo_user=sudo_user, control_dir=control_dir)
            members.append(Member(settings, spec, target, connection))
    return members


def check_distinct_paths(members: Sequence[Member]) -> None:
    """Refuse two targets of one run that would deploy into the same directory of the same host.

    Each (stage, role) has its own settings and plugins, so two of them sharing
    ``path`` on one host would create two releases and fight over ``current``
    and the lock. Give each role its own ``path`` (e.g. with ``%(role)s``), or
    select one role with ``-r``.
    """
    seen: dict[tuple[str, int | None, str], Member] = {}
    for member in members:
        place = (member.spec.name, member.spec.port, member.target.config["path"])
        other = seen.setdefault(place, member)
        if other is not member:
            raise FapError(
                f"{member.name}: {other.label} and {member.label} both deploy to {place[2]} on this host in one run;"
                " give each role its own path (e.g. path: /home/%(user)s/www/%(app_name)s-%(role)s) or select one role with -r"
            )
