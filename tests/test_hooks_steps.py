"""``hooks:`` in deploy.yml on a local target (``connection: local``): run: and local: steps, their order,
directory, variables and quoting, their failures, --dry-run, fap config and the config errors.

The fleet cases (once per stage, every host, the Django example) are in test_fleet_hooks_steps.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

#: A plugin beside deploy.yml whose fap_deploy_updated leaves a mark the steps look for.
MARKER_PLUGIN = '''\
from fapistrano import hookimpl


@hookimpl
def fap_deploy_updated(ctx):
    ctx.run("echo plugin >> " + ctx.config["trace"])
'''


def write(fap_local: Any, hooks: str, blocks: str = "", extra: str = "") -> Path:
    """deploy.yml with ``hooks`` (YAML text at the top level) and, in the test/web block, ``blocks``."""
    root = fap_local.root
    (root / "fap_marker.py").write_text(MARKER_PLUGIN)
    text = (
        f"app_name: app\nconnection: local\npath: {fap_local.path}\ntrace: {root / 'trace'}\n"
        "plugins: [fap_marker]\nenvironment: {GREETING: hello from .env}\n"
        f"{extra}{hooks}"
        "stage_role_configs:\n  test:\n    web:\n      hosts: [localhost]\n"
        + "".join(f"      {line}\n" for line in blocks.splitlines())
    )
    path = root / "deploy.yml"
    path.write_text(text)
    return path


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), start=1) if text in line)


def trace(fap_local: Any) -> list[str]:
    path = fap_local.root / "trace"
    return path.read_text().splitlines() if path.exists() else []


def test_run_steps_follow_the_plugins_in_the_order_written_in_the_release_with_env_and_variables(
        fap_local: Any, fap_run: Any) -> None:
    write(fap_local, (
        "hooks:\n"
        "  updated:\n"
        "    - run: echo \"step1 $(pwd) $GREETING\" >> %(trace)s\n"
        "    - run: echo \"step2 $FAP_APP_NAME $FAP_COMMAND $FAP_STAGE $FAP_ROLE $FAP_HOST $FAP_RELEASE\" >> %(trace)s\n"
        "    - run: echo \"step3 $FAP_RELEASE_PATH $FAP_CURRENT_PATH $FAP_SHARED_PATH prev=$FAP_PREVIOUS_RELEASE\" >> %(trace)s\n"
    ), blocks="hooks:\n  updated:\n    - run: echo block >> %(trace)s")

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    release = fap_local.current()
    app = fap_local.path
    assert trace(fap_local) == [
        "plugin",  # the plugins' hookimpls of the phase first
        f"step1 {app}/releases/{release} hello from .env",
        f"step2 app deploy test web localhost {release}",
        f"step3 {app}/releases/{release} {app}/current {app}/shared prev=",
        "block",  # a block's steps after the top level's
    ]
    (fap_local.root / "trace").unlink()

    again = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert again.exit_code == 0, again.output
    assert trace(fap_local)[3].endswith(f"prev={release}")


def test_local_steps_run_here_before_any_host_starts_and_after_every_host_finished(fap_local: Any, fap_run: Any) -> None:
    write(fap_local, (
        "hooks:\n"
        "  starting:\n"
        "    - local: echo \"starting $FAP_COMMAND $FAP_STAGE $FAP_ROLES $FAP_HOSTS $FAP_APP_NAME\""
        " $(test -d srv/app/releases/$FAP_RELEASE && echo made || echo none) >> trace\n"
        "  updated:\n"
        "    - local: echo \"updated $(test -d srv/app/releases/$FAP_RELEASE && echo made)\" >> trace\n"
        "  finished:\n"
        "    - local: echo \"finished ok=$FAP_OK $(readlink srv/app/current | xargs basename)\" >> trace\n"
    ))

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    release = fap_local.current()
    assert trace(fap_local) == [
        "starting deploy test web localhost app none",  # in deploy.yml's directory, before the release dir exists
        "plugin",
        "updated made",
        f"finished ok=true {release}",
    ]


def test_phases_shared_by_flows_fire_in_each_and_restart_runs_in_current(fap_local: Any, fap_run: Any) -> None:
    write(fap_local, (
        "hooks:\n"
        "  finished:\n"
        "    - run: echo \"$FAP_COMMAND finished in $(pwd)\" >> %(trace)s\n"
        "  restarted:\n"
        "    - run: echo \"restarted in $(pwd) $GREETING\" >> %(trace)s\n"
    ))
    for _ in range(2):
        assert fap_run(["deploy", "-s", "test", "-q"], cwd=fap_local.root).exit_code == 0
    first, second = fap_local.releases()
    assert fap_run(["rollback", "-s", "test", "-q"], cwd=fap_local.root).exit_code == 0

    restarted = fap_run(["restart", "-s", "test", "-q"], cwd=fap_local.root)

    assert restarted.exit_code == 0, restarted.output
    app = fap_local.path
    assert [line for line in trace(fap_local) if line != "plugin"] == [
        f"deploy finished in {app}/releases/{first}",
        f"deploy finished in {app}/releases/{second}",
        f"rollback finished in {app}/releases/{first}",
        f"restarted in {app}/current hello from .env",
    ]


def test_a_setting_goes_into_a_step_shell_quoted(fap_local: Any, fap_run: Any) -> None:
    write(fap_local, (
        "hooks:\n"
        "  updated:\n"
        "    - run: printf '%%s\\n' %(label)s >> %(trace)s\n"
    ), extra="label: 'x; touch injected'\n")

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    assert trace(fap_local) == ["plugin", "x; touch injected"]
    assert not list(fap_local.root.rglob("injected"))


def test_a_failing_run_step_fails_the_phase_names_the_step_and_runs_the_failed_steps(fap_local: Any, fap_run: Any) -> None:
    path = write(fap_local, (
        "hooks:\n"
        "  updated:\n"
        "    - run: echo migrating; echo 'relation users does not exist' >&2; exit 3\n"
        "    - run: echo never >> %(trace)s\n"
        "  failed:\n"
        "    - run: echo 'cannot clean up' >&2; exit 4\n"
        "    - run: echo \"failed in $(pwd)\" >> %(trace)s\n"
        "    - local: exit 6\n"
        "    - local: echo \"paged ok=$FAP_OK\" >> trace\n"
    ))
    assert fap_run(["deploy", "-s", "test", "-q"], cwd=fap_local.root).exit_code == 1
    assert fap_local.releases() == [] and fap_local.current() is None
    (fap_local.root / "trace").unlink()

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 1
    step = line_of(path, "exit 3")
    assert f"updated: core.steps: step deploy.yml:{step}" in result.stderr, result.output
    assert "exited 3: relation users does not exist" in result.stderr
    assert "nothing changed: the new release was removed" in result.stderr
    assert fap_local.releases() == [] and fap_local.current() is None
    assert trace(fap_local) == ["plugin", f"failed in {fap_local.path}", "paged ok=false"]
    # A failing failed step is a warning naming it; the next ones still run.
    assert f"step deploy.yml:{line_of(path, 'exit 4')} (echo 'cannot clean up' >&2; exit 4) exited 4: cannot clean up" in result.stdout
    assert f"step deploy.yml:{line_of(path, 'exit 6')} (exit 6) exited 6" in result.stdout


def test_a_failing_local_starting_step_stops_the_run_before_any_host_changed(fap_local: Any, fap_run: Any) -> None:
    path = write(fap_local, (
        "hooks:\n"
        "  starting:\n"
        "    - local: echo 'CI has not passed' >&2; exit 1\n"
        "  failed:\n"
        "    - local: echo \"paged ok=$FAP_OK\" >> trace\n"
    ))

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 1
    assert f"step deploy.yml:{line_of(path, 'CI has not')} (echo 'CI has not passed'" in result.stderr, result.output
    assert "exited 1: CI has not passed" in result.stderr
    assert not (fap_local.path / "releases").exists() or fap_local.releases() == []
    assert trace(fap_local) == ["paged ok=false"]


def test_a_failing_local_step_after_the_switch_switches_back(fap_local: Any, fap_run: Any) -> None:
    write(fap_local, "")
    assert fap_run(["deploy", "-s", "test", "-q"], cwd=fap_local.root).exit_code == 0
    good = fap_local.current()
    write(fap_local, "hooks:\n  publishing:\n    - local: exit 5\n")

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 1, result.output
    assert "exited 5" in result.stderr
    assert fap_local.current() == good


def test_dry_run_shows_the_steps_and_runs_none(fap_local: Any, fap_run: Any) -> None:
    write(fap_local, (
        "hooks:\n"
        "  starting:\n"
        "    - local: echo local >> trace\n"
        "  updated:\n"
        "    - run: echo remote >> %(trace)s\n"
    ))

    result = fap_run(["deploy", "-s", "test", "--dry-run", "-v"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    assert f"starting | would run (cd {fap_local.root}) echo local >> trace" in result.stdout
    assert "echo remote >>" in result.stdout
    assert trace(fap_local) == []


def test_fap_config_lists_the_steps_with_their_lines(fap_local: Any, fap_run: Any) -> None:
    path = write(fap_local, "hooks:\n  updated:\n    - run: ./migrate\n      once: true\n",
                 blocks="hooks:\n  finished:\n    - local: ./notify.sh")

    result = fap_run(["config", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("hooks.")]
    assert rows == [
        ["hooks.updated", "run:", "./migrate", "(once)", "deploy.yml", f"(deploy.yml:{line_of(path, './migrate')})"],
        ["hooks.finished", "local:", "./notify.sh", "deploy.yml", f"(deploy.yml:{line_of(path, './notify.sh')})"],
    ]


@pytest.mark.parametrize(("hooks", "bad", "fragments"), [
    ("hooks:\n  updatd:\n    - run: true\n", "updatd", ["unknown phase 'updatd'", "did you mean 'updated'"]),
    ("hooks:\n  updated:\n    - run: true\n      onse: true\n", "onse", ["unknown step key 'onse'", "did you mean 'once'"]),
    ("hooks:\n  updated:\n    - ./migrate\n", "./migrate", ["a step must be a mapping"]),
    ("hooks:\n  finished:\n    - local: ./notify.sh\n      once: true\n", "./notify.sh", ["once: is for run: steps"]),
    ("hooks:\n  updated:\n    - run: ./a\n      local: ./b\n", "./a", ["both run: and local:"]),
    ("hooks:\n  updated:\n    - run: echo %(no_such)s\n", "no_such", ["unknown name %(no_such)s"]),
])
@pytest.mark.parametrize("command", ["deploy", "check", "config"])
def test_a_mistake_in_hooks_is_a_one_line_error_naming_the_line_and_changes_nothing(
        fap_local: Any, fap_run: Any, assert_error: Any, hooks: str, bad: str, fragments: list[str], command: str) -> None:
    path = write(fap_local, hooks)

    result = fap_run([command, "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 2, result.output
    assert_error(result, f"deploy.yml:{line_of(path, bad)}: hooks:", *fragments)
    assert not fap_local.path.exists()


def test_a_mistake_in_a_block_hooks_is_an_error_too(fap_local: Any, fap_run: Any, assert_error: Any) -> None:
    path = write(fap_local, "", blocks="hooks:\n  finsihed:\n    - local: ./notify.sh")

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 2
    assert_error(result, f"deploy.yml:{line_of(path, 'finsihed')}: hooks: unknown phase 'finsihed'", "did you mean 'finished'")


def test_a_step_output_streams_under_its_host_and_phase(fap_local: Any, fap_run: Any) -> None:
    write(fap_local, "hooks:\n  updated:\n    - run: echo collected 12 files\n  finished:\n    - local: echo sent to chat\n")

    result = fap_run(["deploy", "-s", "test", "-v"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    assert "localhost | updated |   collected 12 files" in result.stdout
    assert "finished |   sent to chat" in result.stdout


def test_the_live_view_prints_a_local_step_under_its_phase_without_a_host() -> None:
    import io

    from rich.console import Console

    from fapistrano.ui import VERBOSE, Event, LiveReporter

    stream = io.StringIO()
    reporter = LiveReporter(Console(file=stream, width=200, force_terminal=False), VERBOSE)
    reporter.handle(Event("command", phase="finished", message="./notify.sh"))
    reporter.handle(Event("output", phase="finished", message="sent to chat"))
    reporter.close()

    shown = stream.getvalue()
    assert "finished | $ ./notify.sh" in shown and "finished |   sent to chat" in shown
    assert "None" not in shown


def test_max_fail_drops_no_host_for_a_failing_local_step(fap_local: Any, fap_run: Any) -> None:
    write(fap_local, "hooks:\n  updated:\n    - local: echo 'assets build failed' >&2; exit 1\n", extra="max_fail: 100%\n")

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 1, result.output
    assert "dropped" not in result.output
    assert "nothing changed: the new release was removed" in result.stderr
    assert fap_local.releases() == []


def test_a_local_step_reads_the_release_the_run_named(fap_local: Any, fap_run: Any) -> None:
    write(fap_local, "hooks:\n  published:\n    - local: echo %(release)s %(release_path)s >> trace\n")

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    release = fap_local.current()
    assert trace(fap_local) == ["plugin", f"{release} {fap_local.path}/releases/{release}"]


#: A plugin that puts "code" in the release and says which revision it holds, as the git plugin does.
REVISION_PLUGIN = '''\
from fapistrano import hookimpl


@hookimpl
def fap_deploy_updating(ctx):
    ctx.run("echo cafe1234 > REVISION", cwd=ctx.release_path)


@hookimpl
def fap_release_revision(ctx, release):
    found = ctx.run("cat REVISION 2>/dev/null || true", cwd=ctx.config["releases_path"] + "/" + release, readonly=True)
    return found or None
'''


def test_a_run_step_reads_the_revision_the_plugin_that_put_the_code_there_knows(fap_local: Any, fap_run: Any) -> None:
    (fap_local.root / "fap_revision.py").write_text(REVISION_PLUGIN)
    write(fap_local, (
        "hooks:\n"
        "  started:\n"
        "    - run: echo \"started ${FAP_REVISION-unset}\" >> %(trace)s\n"
        "  updated:\n"
        "    - run: echo \"updated $FAP_REVISION\" >> %(trace)s\n"
    ))
    deployfile = fap_local.root / "deploy.yml"
    deployfile.write_text(deployfile.read_text().replace("plugins: [fap_marker]", "plugins: [fap_marker, fap_revision]"))

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    # Before updating the new release holds no code yet: no revision; after it, the plugin's answer.
    assert trace(fap_local) == ["started unset", "plugin", "updated cafe1234"]
