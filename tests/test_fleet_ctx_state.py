"""What a plugin reads about its host from ``ctx``: current, finished releases, the previous release, the lock.

The plugin here is written the way a third party would write one, from the
documented ``ctx`` attributes only; the core's own steps read the same ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

HOSTS = ("host1", "host2", "host3")

#: Logs, in each phase it implements, what ctx says about the host (one JSON line per phase).
STATE_PLUGIN = '''\
import json

from fapistrano import hookimpl


def _show(ctx):
    ctx.log("state " + json.dumps({
        "phase": ctx.phase,
        "current": ctx.current_release,
        "releases": list(ctx.releases),
        "previous": ctx.previous_release,
        "unfinished": list(ctx.unfinished_releases),
        "locked": ctx.locked,
    }))


@hookimpl
def fap_deploy_starting(ctx):
    _show(ctx)


@hookimpl
def fap_deploy_published(ctx):
    _show(ctx)


@hookimpl
def fap_deploy_finished(ctx):
    _show(ctx)


@hookimpl
def fap_deploy_failed(ctx, error):
    _show(ctx)
'''

#: Fails on host2 in publishing, after the core's switch there (trylast).
LATE_FAILURE = '''\
from fapistrano import FapError, hookimpl


@hookimpl(trylast=True)
def fap_deploy_publishing(ctx):
    if ctx.host == "host2":
        raise FapError("the load balancer said no")
'''


def states(output: str, host: str) -> dict[str, dict[str, Any]]:
    """What the plugin logged on ``host``, by phase."""
    found = {}
    for line in output.splitlines():
        if line.startswith(f"{host} | ") and " | state " in line:
            state = json.loads(line.split(" | state ", 1)[1])
            found[state.pop("phase")] = state
    return found


@pytest.fixture
def deployfile(fap_fleet: Any, tmp_path: Path) -> Path:
    (tmp_path / "state_plugin.py").write_text(STATE_PLUGIN)
    return fap_fleet.write_deployfile(tmp_path, {"plugins": ["state_plugin"]})


def test_a_plugin_reads_the_hosts_releases_in_a_deploy(
    fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path, deployfile: Path
) -> None:
    first = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert first.exit_code == 0, first.output
    one = released(first)
    assert states(first.stdout, "host1") == {
        "starting": {"current": None, "releases": [], "previous": None, "unfinished": [], "locked": True},
        "published": {"current": one, "releases": [], "previous": None, "unfinished": [], "locked": True},
        "finished": {"current": one, "releases": [], "previous": None, "unfinished": [], "locked": True},
    }

    second = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert second.exit_code == 0, second.output
    two = released(second)
    for host in HOSTS:
        seen = states(second.stdout, host)
        assert seen["starting"] == {"current": one, "releases": [one], "previous": one, "unfinished": [], "locked": True}
        # The switch moved current; the releases are as the run found them, previous stays.
        assert seen["finished"] == {"current": two, "releases": [one], "previous": one, "unfinished": [], "locked": True}
        assert fap_fleet.current(host) == two


def test_a_plugin_reads_the_hosts_releases_in_a_rollback(
    fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path, deployfile: Path
) -> None:
    names = []
    for _ in range(2):
        result = fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path)
        assert result.exit_code == 0, result.output
        names.append(released(result))
    one, two = names

    result = fap_run(["rollback", "-s", "test"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    for host in HOSTS:
        seen = states(result.stdout, host)
        assert seen["starting"] == {"current": two, "releases": [one, two], "previous": two, "unfinished": [], "locked": True}
        assert seen["finished"] == {"current": one, "releases": [one, two], "previous": two, "unfinished": [], "locked": True}
        assert fap_fleet.current(host) == one


def test_a_dry_run_holds_no_lock_and_moves_nothing(
    fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path, deployfile: Path
) -> None:
    first = fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path)
    assert first.exit_code == 0, first.output
    one = released(first)

    # -v: a dry run shows plugins' log lines only when asked (they tell of work not done).
    result = fap_run(["deploy", "-s", "test", "--dry-run", "-v"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    seen = states(result.stdout, "host2")
    assert seen["starting"]["locked"] is False
    assert seen["finished"]["current"] == one
    assert fap_fleet.current("host2") == one


def test_after_a_switch_back_fap_deploy_failed_reads_where_current_is(
    fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path, deployfile: Path
) -> None:
    first = fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path)
    assert first.exit_code == 0, first.output
    one = released(first)
    (tmp_path / "late_failure.py").write_text(LATE_FAILURE)
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["state_plugin", "late_failure"]})

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert result.exit_code == 1, result.output
    for host in HOSTS:
        # Every host had switched; each was switched back before fap_deploy_failed ran.
        assert states(result.stdout, host)["failed"] == {
            "current": one, "releases": [one], "previous": one, "unfinished": [], "locked": True,
        }
        assert fap_fleet.current(host) == one
