"""The ``fap`` command as users type it: --version, --help, the release alias, run options
before or after the command, overrides, and where the deploy file comes from.

These deploy to a local target (``connection: local``): no root and no SSH needed.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import fapistrano

RELEASE = re.compile(r"deployed release (\d{6}-\d{6}(?:-\d{2})?)")


def released(result: Any) -> str:
    match = RELEASE.search(result.stdout)
    assert match, result.output
    return match.group(1)


def test_version(fap_run: Any, tmp_path: Path) -> None:
    for flag in ("--version", "-V"):
        result = fap_run([flag], cwd=tmp_path)
        assert result.exit_code == 0
        assert result.stdout.strip() == f"fap {fapistrano.__version__}"


def test_help_lists_the_commands_and_run_options(fap_run: Any, tmp_path: Path) -> None:
    result = fap_run(["--help"], cwd=tmp_path)
    assert result.exit_code == 0
    for word in ("deploy", "rollback", "restart", "once", "shell", "--dry-run", "--verbose", "--quiet", "--parallel", "--deployfile"):
        assert word in result.stdout, word


def test_command_help_shows_target_options_and_overrides(fap_run: Any, tmp_path: Path) -> None:
    result = fap_run(["deploy", "--help"], cwd=tmp_path)
    assert result.exit_code == 0
    for word in ("--stage", "--role", "--dry-run", "[--SETTING VALUE]"):
        assert word in result.stdout, word
    result = fap_run(["rollback", "-h"], cwd=tmp_path)
    assert result.exit_code == 0 and "--to" in result.stdout


def test_deploy_to_a_local_target(fap_local: Any, fap_run: Any) -> None:
    fap_local.write_deployfile({"environment": {"GREETING": "hello %(stage)s"}, "linked_dirs": ["log"]})
    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)
    assert result.exit_code == 0, result.output
    name = released(result)
    assert fap_local.current() == name
    assert fap_local.releases() == [name]
    release = fap_local.path / "releases" / name
    assert (release / ".env").read_text() == "GREETING='hello test'\n"
    assert (release / "log").resolve() == (fap_local.path / "shared" / "log").resolve()
    assert not (fap_local.path / ".fap-lock").exists()


def test_release_is_an_alias_of_deploy(fap_local: Any, fap_run: Any) -> None:
    fap_local.write_deployfile()
    result = fap_run(["release", "-s", "test"], cwd=fap_local.root)
    assert result.exit_code == 0, result.output
    assert fap_local.current() == released(result)


def test_run_options_after_the_command(fap_local: Any, fap_run: Any) -> None:
    fap_local.write_deployfile()
    result = fap_run(["deploy", "-s", "test", "--dry-run", "-v"], cwd=fap_local.root)
    assert result.exit_code == 0, result.output
    assert "[dry run]" in result.stdout
    assert re.search(r"^localhost \| starting \|   \$ for dir in ", result.stdout, re.M), result.stdout
    assert re.search(r"^localhost \| starting \| ok \(", result.stdout, re.M), result.stdout  # -v: per-host phase lines
    assert "nothing changed" in result.stdout
    assert not fap_local.path.exists()


def test_run_options_before_the_command(fap_local: Any, fap_run: Any) -> None:
    fap_local.write_deployfile()
    result = fap_run(["--dry-run", "-v", "deploy", "-s", "test"], cwd=fap_local.root)
    assert result.exit_code == 0, result.output
    assert "would run" in result.stdout
    assert not fap_local.path.exists()


def test_quiet_shows_the_summary_but_no_progress(fap_local: Any, fap_run: Any) -> None:
    fap_local.write_deployfile()
    loud = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)
    quiet = fap_run(["deploy", "-s", "test", "-q"], cwd=fap_local.root)
    assert loud.exit_code == 0 and quiet.exit_code == 0, quiet.output
    assert "all hosts | publishing" in loud.stdout
    assert "| publishing" not in quiet.stdout
    assert "deploying app" not in quiet.stdout
    assert "fap deploy: ok" in quiet.stdout
    assert fap_local.current() == released(quiet)


def test_verbose_shows_each_command(fap_local: Any, fap_run: Any) -> None:
    fap_local.write_deployfile()
    result = fap_run(["deploy", "-s", "test", "-v", "--parallel", "1"], cwd=fap_local.root)
    assert result.exit_code == 0, result.output
    assert re.search(r"^localhost \| publishing \| \$ rm -f .*\.unfinished$", result.stdout, re.M), result.stdout


def test_overrides_after_the_command_reach_the_run(fap_local: Any, fap_run: Any) -> None:
    fap_local.write_deployfile({"keep_releases": 5})
    names = [released(fap_run(["deploy", "-s", "test", "-q"], cwd=fap_local.root)) for _ in range(3)]
    assert fap_local.releases() == names
    result = fap_run(["deploy", "-s", "test", "-q", "--keep-releases", "2"], cwd=fap_local.root)
    assert result.exit_code == 0, result.output
    assert fap_local.releases() == [names[-1], released(result)]


def test_override_with_equals_and_interpolation(fap_local: Any, fap_run: Any) -> None:
    fap_local.write_deployfile()
    result = fap_run(["deploy", "-s", "test", "-q", "--environment={WHO: '%(role)s on %(host)s'}"], cwd=fap_local.root)
    assert result.exit_code == 0, result.output
    assert (fap_local.path / "current" / ".env").read_text() == "WHO='web on localhost'\n"


def test_deployfile_option_from_another_directory(fap_local: Any, fap_run: Any, tmp_path_factory: Any) -> None:
    deployfile = fap_local.write_deployfile()
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    result = fap_run(["deploy", "-d", str(deployfile), "-s", "test", "-q"], cwd=elsewhere)
    assert result.exit_code == 0, result.output
    assert fap_local.current() == released(result)


def test_fap_app_picks_the_deploy_file_over_dash_d(fap_local: Any, fap_run: Any, tmp_path_factory: Any) -> None:
    deployfile = fap_local.write_deployfile()
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "decoy.yml").write_text("this: [is not read\n")
    result = fap_run(["deploy", "-s", "test", "-q", "-d", str(elsewhere / "decoy.yml")], cwd=elsewhere,
                     env={"FAP_APP": "shop", "SHOP_DEPLOYFILE": str(deployfile)})
    assert result.exit_code == 0, result.output
    assert fap_local.current() == released(result)


def test_a_plugin_beside_deploy_yml_is_imported_by_name(fap_local: Any, fap_run: Any, recorder: Any) -> None:
    # The recorder fixture writes its module into tmp_path, fap_local's root.
    fap_local.write_deployfile(recorder.settings())
    result = fap_run(["deploy", "-s", "test", "-q"], cwd=fap_local.root)
    assert result.exit_code == 0, result.output
    assert recorder.hooks() == [
        "fap_deploy_starting", "fap_deploy_started", "fap_deploy_updating", "fap_deploy_updated",
        "fap_deploy_publishing", "fap_deploy_published", "fap_deploy_finishing", "fap_deploy_finished",
    ]


def test_a_setting_one_letter_off_in_deploy_yml_is_refused(fap_local: Any, fap_run: Any) -> None:
    fap_local.write_deployfile({"keep_release": 2})
    result = fap_run(["deploy", "-s", "test", "-q"], cwd=fap_local.root)
    assert result.exit_code == 2, result.output
    assert re.search(r"^fap: error: .*deploy.yml:\d+: keep_release is not a known setting \(did you mean 'keep_releases'\?\);"
                     r" if it is a setting of your own, list it in custom_settings: \[keep_release\]$", result.stderr, re.MULTILINE), result.stderr
    assert not fap_local.path.exists()


def test_a_misspelt_setting_two_letters_off_in_deploy_yml_warns(fap_local: Any, fap_run: Any) -> None:
    fap_local.write_deployfile({"keep_relses": 2})
    result = fap_run(["deploy", "-s", "test", "-q"], cwd=fap_local.root)
    assert result.exit_code == 0, result.output
    assert re.search(r"fap: warning: deploy.yml:\d+: keep_relses is not a known setting \(did you mean 'keep_releases'\?\)", result.stderr)


def test_an_environment_variable_dedented_out_of_environment_warns(fap_local: Any, fap_run: Any) -> None:
    path = fap_local.root / "deploy.yml"
    fap_local.write_deployfile({})
    path.write_text(path.read_text() + "environment:\nGREETING: hi\n")
    result = fap_run(["deploy", "-s", "test", "-q"], cwd=fap_local.root)
    assert result.exit_code == 0, result.output
    assert re.search(r"^fap: warning: deploy.yml:\d+: GREETING is upper-case beside an empty environment: \(line \d+\):"
                     r" indent it under environment: to set it in the app's environment$", result.stderr, re.MULTILINE), result.stderr


def test_fap_run_in_a_subdirectory_uses_the_nearest_deploy_file_and_says_so(fap_local: Any, fap_run: Any) -> None:
    fap_local.write_deployfile({"plugins": ["fap_marker"]})
    # A dotted plugin beside deploy.yml: found from the subdirectory too.
    (fap_local.root / "fap_marker.py").write_text(
        "from fapistrano import hookimpl\n\n\n@hookimpl\ndef fap_deploy_updated(ctx):\n"
        "    ctx.run('echo marked > marker', cwd=ctx.release_path)\n"
    )
    subdirectory = fap_local.root / "config" / "deep"
    subdirectory.mkdir(parents=True)
    result = fap_run(["deploy", "-s", "test"], cwd=subdirectory)
    assert result.exit_code == 0, result.output
    assert f"fap: using {fap_local.root / 'deploy.yml'}" in result.stderr
    assert (fap_local.path / "current" / "marker").read_text() == "marked\n"
    assert list(subdirectory.iterdir()) == []
    plugins = fap_run(["plugins"], cwd=subdirectory)
    assert f"fap: using {fap_local.root / 'deploy.yml'}" in plugins.stderr


def test_fap_in_the_deploy_file_directory_says_nothing_about_which_file(fap_local: Any, fap_run: Any) -> None:
    fap_local.write_deployfile()
    result = fap_run(["config", "-s", "test"], cwd=fap_local.root)
    assert result.exit_code == 0, result.output
    assert "fap: using" not in result.stderr


def test_shell_sees_the_release_env(fap_local: Any, fap_run: Any) -> None:
    fap_local.write_deployfile({"environment": {"GREETING": "hello %(stage)s"}, "shell_command": "sh"})
    assert fap_run(["deploy", "-s", "test"], cwd=fap_local.root).exit_code == 0
    result = fap_run(["shell", "-s", "test"], cwd=fap_local.root, input='echo "got $GREETING in $(pwd -P)"\n')
    assert result.exit_code == 0, result.output
    release = (fap_local.path / "current").resolve()
    assert f"got hello test in {release}\n" in result.stdout


def test_a_release_nothing_put_code_into_is_deployed_with_a_warning(fap_local: Any, fap_run: Any) -> None:
    # Only what fap itself writes: .env and the shared links.
    fap_local.write_deployfile({"environment": {"A": "1"}, "linked_dirs": ["log"], "linked_files": ["config/app.ini"]})
    (fap_local.path / "shared" / "config").mkdir(parents=True)
    (fap_local.path / "shared" / "config" / "app.ini").write_text("")
    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)
    assert result.exit_code == 0, result.output
    release = released(result)
    assert f"warning: release {release} is empty: no plugin put code into it" in result.stdout
    assert "plugins: [fapistrano.git]" in result.stdout


def test_a_release_with_code_in_it_gets_no_empty_warning(fap_local: Any, fap_run: Any) -> None:
    fap_local.write_deployfile({"plugins": ["fap_code"], "linked_dirs": ["log"]})
    (fap_local.root / "fap_code.py").write_text(
        "from fapistrano import hookimpl\n\n\n@hookimpl\ndef fap_deploy_updating(ctx):\n"
        "    ctx.run('echo code > app.py', cwd=ctx.release_path)\n"
    )
    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)
    assert result.exit_code == 0, result.output
    assert "is empty" not in result.output
    assert (fap_local.path / "current" / "app.py").read_text() == "code\n"


def test_a_warning_about_the_top_of_deploy_yml_is_said_once_whatever_the_roles(fap_local: Any, fap_run: Any) -> None:
    # Two roles (each with a directory of its own) read the same misspelt top-level key.
    fap_local.write_deployfile({"keep_releasesss": 3, "path": f"{fap_local.path}/%(role)s",
                                "stage_role_configs": {"test": {"worker": {"hosts": ["localhost"]}}}})

    for args in (["config", "-s", "test"], ["deploy", "-s", "test"]):
        result = fap_run(args, cwd=fap_local.root)

        assert result.exit_code == 0, result.output
        warnings = [line for line in result.stderr.splitlines() if "keep_releasesss is not a known setting" in line]
        assert len(warnings) == 1, result.stderr


def test_a_step_that_leaves_a_process_in_the_background_does_not_hold_the_run(fap_local: Any, fap_run: Any) -> None:
    # A server started with '&' keeps the step's output pipes open for as long as it runs: fap must not wait for it.
    fap_local.write_deployfile({"hooks": {"updated": [{"run": "echo starting; sleep 601 &"},
                                                      {"local": "echo building; sleep 602 &"}]}})
    try:
        result = fap_run(["deploy", "-s", "test", "-v"], cwd=fap_local.root, timeout=120)

        assert result.exit_code == 0, result.output
        assert "deployed release" in result.stdout
        assert "starting" in result.stdout and "building" in result.stdout
    finally:
        subprocess.run(["pkill", "-f", "sleep 60[12]"], check=False)
