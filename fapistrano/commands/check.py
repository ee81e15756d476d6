"""``fap check``: connect, probe, call ``fap_check`` on every host (the core's checks are a built-in one).

Nothing here changes a host: one probe per host, plus whatever the
``fap_check`` hookimpls run (read-only, by contract).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fapistrano.commands.wiring import exit_with, fleet_command
from fapistrano.errors import ExitCode, FapError
from fapistrano.flows import FlowName
from fapistrano.hosts import Member, key
from fapistrano.options import Options

if TYPE_CHECKING:  # what they name is imported when the command runs: fap --help stays fast
    from fapistrano.compose import Composition


@dataclass
class HostCheck:
    """What ``fap check`` found on one host: problems (empty when fine) and facts."""

    host: str
    target: str
    problems: list[str] = field(default_factory=list)
    current: str | None = None
    releases: int = 0
    reachable: bool = True

    @property
    def ok(self) -> bool:
        return not self.problems


def plugin_problems(checks: Iterable[tuple[str, Any]], ctx: Any, unprefixed: Iterable[str] | None = None,
                    argument: str = "ctx") -> list[str]:
    """Call each plugin's ``fap_check`` (from :meth:`Plugins.one_by_one`) with ``ctx``; each problem names its plugin.

    ``argument`` is the hook's argument's name: ``run`` for ``fap_check_run``.

    The plugins are asked one by one so that a problem, or a crash, is
    attributed to the plugin that reported it, and one crashing check does
    not hide the others. The core's own checks (``unprefixed``: the
    built-in plugins) speak for the host itself.
    """
    from fapistrano.plugins import BUILTIN_PLUGINS, PluginFailure

    unprefixed = set(BUILTIN_PLUGINS if unprefixed is None else unprefixed)
    problems: list[str] = []
    for name, check in checks:
        label = "" if name in unprefixed else f"{name}: "
        try:
            (found,) = check(**{argument: ctx}) or [None]
        except PluginFailure as failure:
            detail = str(failure) if isinstance(failure.error, FapError) else f"{type(failure.error).__name__}: {failure.error}"
            problems.append(f"{label}check failed: {detail}")
            continue
        if found is None:
            continue
        if isinstance(found, str) or not isinstance(found, Iterable):
            found = [found]
        for problem in found:
            text = " ".join(str(problem).split())
            if text:
                problems.append(text if not label or text.startswith(label) else f"{label}{text}")
    return problems


def run_problems(fleet: Composition) -> list[str]:
    """``fap_check_run``: what the enabled plugins find wrong with the run as a whole, asked once on this machine."""
    from fapistrano.run import Run, RunTarget

    members = fleet.members
    groups: dict[str, list[Member]] = {}
    for member in members:
        groups.setdefault(member.label, []).append(member)
    run = Run(
        "check",
        hosts=tuple(dict.fromkeys(m.name for m in members)),
        targets=tuple(RunTarget(g[0].settings.stage, g[0].settings.role, tuple(m.name for m in g), g[0].target.config)
                      for g in groups.values()),
        config=fleet.run_config(),
        reporter=fleet.reporter,
        masker=fleet.masker,
        project_dir=fleet.runner.project_dir,
    )
    run.hook = "fap_check_run"  # where its run.log lines show
    active = list(dict.fromkeys(name for m in members for name in m.settings.plugins))
    checks = fleet.runner.plugins.one_by_one("fap_check_run", active)
    return [fleet.masker(p) for p in plugin_problems(checks, run, argument="run")]


def check(fleet: Composition) -> list[HostCheck]:
    """Check every host of ``fleet``: an unreachable host is a problem of that host; the others are still checked."""
    from fapistrano.freeze import notes
    from fapistrano.plugins import describe

    runner, members = fleet.runner, fleet.members
    results = {key(m): HostCheck(m.name, m.label) for m in members}
    with fleet.connected(FlowName.CHECK) as hosts:
        for member in members:
            if key(member) in hosts.failures:
                result = results[key(member)]
                result.reachable = False
                result.problems.append(runner.masker(describe(hosts.failures[key(member)], member.name)))

        def work(member: Member) -> None:
            assert member.ctx is not None and member.state is not None
            member.ctx.phase = "check"
            result = results[key(member)]
            result.current, result.releases = member.state.current, len(member.state.releases)
            checks = runner.plugins.one_by_one("fap_check", member.target.plugins)
            result.problems = [runner.masker(p) for p in plugin_problems(checks, member.ctx)]
            # A frozen target refuses every deploy: that is what check is for (fap unlock lifts it).
            result.problems += [runner.masker(note.split(": ", 1)[1]) for note in notes([(member.name, member.state)])]

        errors = hosts.on_each(work)
        for member in members:
            if key(member) in errors:
                results[key(member)].problems.append(runner.masker(describe(errors[key(member)], member.name)))
    return [results[key(m)] for m in members]


def summary(checks: Sequence[HostCheck], run_problems: Sequence[str] = ()) -> str:
    """The closing line of ``fap check``: the problems of the run as a whole (``fap_check_run``), then the hosts."""
    good = sum(1 for c in checks if c.ok)
    verdict = "ok" if good == len(checks) and not run_problems else "FAILED"
    count = len(run_problems)
    local = f"{count} problem{'s' if count != 1 else ''} on this machine; " if count else ""
    return f"fap check: {verdict}: {local}{good} of {len(checks)} host{'s' if len(checks) != 1 else ''} ready to deploy"


def ok_line(result: HostCheck) -> str:
    """What ``fap check`` says about a host that passed."""
    current = result.current or "none yet"
    return f"ok (current {current}, {result.releases} release{'s' if result.releases != 1 else ''}, not locked)"


@fleet_command("check", "Connect to every selected host and report what would make a deploy fail.",
               short_help="Report, per host, what would make a deploy fail.")
def command(options: Options, stage: str | None, role: str | None, overrides: list[str]) -> None:
    from fapistrano.compose import Composition

    with Composition(options.plain(), stage, role, overrides, "check") as fleet:
        fleet.announce(f"checking {fleet.app} on {fleet.describe()}")
        problems = run_problems(fleet)
        for problem in problems:
            fleet.runner.emit("error", problem, phase="local")
        checks = check(fleet)
        for result in checks:
            if result.ok:
                fleet.runner.emit("log", ok_line(result), host=result.host, phase=result.target)
            for problem in result.problems:
                fleet.runner.emit("error", problem, host=result.host, phase=result.target)
        fleet.close()
    ok = not problems and all(c.ok for c in checks)
    fleet.console.print(summary(checks, problems), style="green" if ok else "bold red", markup=False, highlight=False)
    exit_with(ExitCode.OK if ok else ExitCode.FAILED)
