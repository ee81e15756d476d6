"""fapistrano.virtualenv on the real SSH fleet: real venvs, real pip, wheels made by the tests."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from virtualenv_wheels import wheel_from_installed, world_readable_dir

import fapistrano_virtualenv

pytestmark = pytest.mark.fleet

REPO = Path(__file__).resolve().parents[3]
APP = "/home/deploy/www/app"

APP_PY = """\
import fapdemo_greeting

print(fapdemo_greeting.greet("fleet"))
"""


def release_venv(release: str, app: str = APP, venv: str = "venv") -> str:
    return f"{app}/releases/{release}/{venv}"


def run_in_venv(fleet: Any, host: str, venv: str, *argv: str) -> Any:
    """Run the venv's python on ``host`` as ``deploy``."""
    return fleet.in_host(host, [f"{venv}/bin/python", *argv], user="deploy")


def greeting_version(fleet: Any, host: str, venv: str) -> str:
    result = run_in_venv(fleet, host, venv, "-c", "import fapdemo_greeting; print(fapdemo_greeting.VERSION)")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


# ---------------------------------------------------------------------------
# Deploys that work
# ---------------------------------------------------------------------------


def test_each_release_gets_its_own_venv_with_its_requirements(fap_fleet, fap_run, venv_deployfile, write_app, tmp_path):
    write_app("fapdemo-greeting==1.0\n", **{"app.py": APP_PY})
    venv_deployfile()

    first = fap_run(["deploy", "-s", "test", "-v"], cwd=tmp_path)

    assert first.exit_code == 0, first.output
    for host in fap_fleet.hosts:
        # pip's own lines reached the output, per host, as it printed them.
        assert re.search(rf"^{host} \| updated \| +Successfully installed fapdemo-greeting-1\.0 fapdemo-words-1\.0$", first.stdout, re.M), first.output
        release = fap_fleet.current(host)
        venv = release_venv(release)
        assert (fap_fleet.current_dir(host) / "venv" / "pyvenv.cfg").is_file()
        assert greeting_version(fap_fleet, host, venv) == "1.0"
        # The code is there and runs with the release's own venv.
        app = run_in_venv(fap_fleet, host, venv, f"{APP}/current/app.py")
        assert app.stdout == "Hello, fleet (greeting 1.0)\n", app.stderr

    # The next release, on one host (a venv costs seconds of CPU), asks for 2.0.
    first_release = fap_fleet.current("host1")
    write_app("fapdemo-greeting==2.0\n", **{"app.py": APP_PY})
    venv_deployfile(hosts=["host1"])

    second = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert second.exit_code == 0, second.output
    release = fap_fleet.current("host1")
    assert release != first_release
    assert greeting_version(fap_fleet, "host1", release_venv(release)) == "2.0"
    # The previous release kept its own venv, untouched: a rollback finds it as it was.
    assert greeting_version(fap_fleet, "host1", release_venv(first_release)) == "1.0"


def test_custom_executive_venv_path_with_a_space_and_options_as_a_string(fap_fleet, fap_run, venv_deployfile, write_app, tmp_path, wheelhouse):
    write_app("fapdemo-greeting==1.0\n")
    venv_deployfile(
        {
            "virtualenv_executive": "/usr/bin/python3 -m venv --copies",
            "virtualenv_venv_path": "%(release_path)s/python env",
            "virtualenv_pip_options": f"--no-index --find-links {wheelhouse}",
        },
        hosts=["host1"],
    )

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    venv = fap_fleet.current_dir("host1") / "python env"
    assert not (fap_fleet.current_dir("host1") / "venv").exists()
    # --copies reached python -m venv as its own word: the interpreter is a file, not a link.
    assert (venv / "bin" / "python").is_file() and not (venv / "bin" / "python").is_symlink()
    assert greeting_version(fap_fleet, "host1", release_venv(fap_fleet.current("host1"), venv="python env")) == "1.0"


def test_empty_requirements_setting_creates_only_the_venv(fap_fleet, fap_run, venv_deployfile, write_app, tmp_path):
    write_app(None, **{"app.py": APP_PY})
    venv_deployfile({"virtualenv_requirements": ""}, hosts=["host1"])

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert "no requirements installed" in result.stdout
    venv = release_venv(fap_fleet.current("host1"))
    assert run_in_venv(fap_fleet, "host1", venv, "-m", "pip", "--version").returncode == 0
    assert run_in_venv(fap_fleet, "host1", venv, "-c", "import fapdemo_greeting").returncode != 0


def test_pip_upgrade_installs_the_newest_pip_the_options_offer(fap_fleet, fap_run, venv_deployfile, write_app, tmp_path):
    fresh = fap_fleet.in_host("host1", ["sh", "-c", "ls /usr/share/python-wheels/ | sed -n 's/^pip-\\(.*\\)-py3-none-any.whl$/\\1/p'"])
    ours = importlib.metadata.version("pip")
    if not fresh.stdout.strip() or _version(ours) <= _version(fresh.stdout.strip()):
        pytest.skip(f"this machine's pip {ours} is not newer than the one a new venv gets ({fresh.stdout.strip() or '?'})")
    wheels = world_readable_dir("fap-venv-pip-")
    try:
        wheel_from_installed(wheels, "pip")
        write_app("")
        venv_deployfile({"virtualenv_pip_upgrade": True, "virtualenv_pip_options": ["--no-index", "--find-links", str(wheels)]}, hosts=["host1"])

        result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    finally:
        shutil.rmtree(wheels, ignore_errors=True)

    assert result.exit_code == 0, result.output
    version = run_in_venv(fap_fleet, "host1", release_venv(fap_fleet.current("host1")), "-m", "pip", "--version")
    assert version.stdout.startswith(f"pip {ours} "), version.stdout + version.stderr


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


# ---------------------------------------------------------------------------
# Deploys that fail
# ---------------------------------------------------------------------------


def test_missing_requirement_fails_the_deploy_and_keeps_current_everywhere(fap_fleet, fap_run, venv_deployfile, write_app, tmp_path):
    # A live release to keep (deployed without the plugin: its venv is not the point here).
    write_app("fapdemo-greeting==1.0\n")
    venv_deployfile({"plugins": ["venv_app_source"]})
    assert fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path).exit_code == 0
    venv_deployfile()
    before = {host: (fap_fleet.current(host), fap_fleet.releases(host)) for host in fap_fleet.hosts}
    write_app("fapdemo-greeting==1.0\nfapdemo-missing==1.0\n")

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code != 0
    assert "Traceback" not in result.output
    for host in fap_fleet.hosts:
        # pip's diagnosis, not a generic "command failed", names what is missing.
        assert re.search(rf"^{host} \| .*fapistrano\.virtualenv: pip install -r requirements\.txt failed \(exit 1\): ERROR: .*No matching distribution found for fapdemo-missing==1\.0$", result.stdout, re.M), result.output
        assert (fap_fleet.current(host), fap_fleet.releases(host)) == before[host]
        assert not fap_fleet.locked(host)


def test_missing_requirements_file_fails_before_building_a_venv(fap_fleet, fap_run, venv_deployfile, write_app, tmp_path):
    write_app(None, **{"app.py": APP_PY})
    venv_deployfile()

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code != 0
    for host in fap_fleet.hosts:
        assert f"virtualenv_requirements: {APP}/releases/" in result.stdout
        assert re.search(rf"^{host} \| .*/requirements\.txt does not exist in the release", result.stdout, re.M), result.output
        assert fap_fleet.current(host) is None
        assert fap_fleet.releases(host) == []
    assert "creating virtualenv" not in result.output


def test_broken_executive_fails_the_deploy_naming_the_command(fap_fleet, fap_run, venv_deployfile, write_app, tmp_path):
    write_app("fapdemo-greeting==1.0\n")
    venv_deployfile({"virtualenv_executive": "no-such-virtualenv --flag"}, hosts=["host1"])

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code != 0
    assert re.search(r"^host1 \| .*no-such-virtualenv.*not found \(command exited 127\)$", result.stdout, re.M), result.output
    assert fap_fleet.releases("host1") == []


# ---------------------------------------------------------------------------
# fap check, --dry-run
# ---------------------------------------------------------------------------


def test_check_reports_a_virtualenv_command_the_host_does_not_have(fap_fleet, fap_run, venv_deployfile, tmp_path):
    venv_deployfile({"virtualenv_executive": "no-such-virtualenv -p python3"}, hosts=["host1"])

    result = fap_run(["check", "-s", "test"], cwd=tmp_path)

    assert result.exit_code != 0
    assert "virtualenv_executive: 'no-such-virtualenv' is not found on the host's PATH" in result.output


def test_check_passes_with_the_default_executive(fap_fleet, fap_run, venv_deployfile, tmp_path):
    venv_deployfile(hosts=["host1"])

    result = fap_run(["check", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output


def test_dry_run_shows_the_commands_and_builds_nothing(fap_fleet, fap_run, venv_deployfile, write_app, tmp_path, wheelhouse):
    write_app("fapdemo-greeting==1.0\n")
    venv_deployfile({"virtualenv_venvs_path": ""}, hosts=["host1"])

    result = fap_run(["deploy", "-s", "test", "--dry-run", "-v"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert "host1 | updated | would run: virtualenv (2 commands)" in result.stdout
    assert re.search(r"\$ \(cd \S+\) python3 -m venv /home/deploy/www/app/releases/\S+/venv$", result.stdout, re.M), result.output
    assert re.search(rf"  .*/venv/bin/python -m pip install --no-index --find-links {wheelhouse} -r /home/deploy/www/app/releases/\S+/requirements\.txt", result.stdout), result.output
    assert fap_fleet.releases("host1") == []


def test_dry_run_with_stored_venvs_shows_the_look_up_and_builds_nothing(fap_fleet, fap_run, venv_deployfile, write_app, tmp_path):
    write_app("fapdemo-greeting==1.0\n")
    venv_deployfile(hosts=["host1"])

    result = fap_run(["deploy", "-s", "test", "--dry-run", "-v"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert "host1 | updated | would run: virtualenv (1 command)" in result.stdout, result.output
    assert f"host1 | updated | would reuse the venv in {APP}/shared/venvs made for these requirements, or build it" in result.stdout
    assert fap_fleet.releases("host1") == []
    assert not (fap_fleet.app_dir("host1") / "shared" / "venvs").exists()


# ---------------------------------------------------------------------------
# The example
# ---------------------------------------------------------------------------


def test_dependencies_example_deploys_a_venv_per_release_on_the_fleet(fap_fleet, fap_run, wheelhouse):
    example = REPO / "examples" / "dependencies"
    # The seed's setting, as written.
    assert "virtualenv_requirements: '%(release_path)s/production-requirements.txt'\n" in (example / "deploy.yml").read_text()
    copy = world_readable_dir("fap-venv-example-")
    try:
        # A copy the fleet's deploy user can read (the example's plugin copies app/ on the host).
        shutil.copytree(example, copy, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        # Only where it deploys changes: the fleet's hosts instead of this machine (a role's hosts are deploy.yml's
        # alone: --hosts filters them), and wheels instead of PyPI.
        deployfile = copy / "deploy.yml"
        deployfile.write_text(deployfile.read_text().replace("hosts: [localhost]", f"hosts: [{', '.join(fap_fleet.hosts)}]"))
        for path in [copy, *copy.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        result = fap_run(
            [
                "deploy", "-s", "demo",
                "--connection", "ssh",
                "--path", "/home/deploy/www/%(app_name)s",
                "--ssh-config", str(fap_fleet.ssh_config),
                "--virtualenv-pip-options", f"--no-index --find-links {wheelhouse}",
            ],
            cwd=copy,
        )
    finally:
        shutil.rmtree(copy, ignore_errors=True)

    assert result.exit_code == 0, result.output
    click_version = importlib.metadata.version("click")
    for host in fap_fleet.hosts:
        release = fap_fleet.current(host, "dependencies")
        venv = release_venv(release, app="/home/deploy/www/dependencies")
        app = run_in_venv(fap_fleet, host, venv, "/home/deploy/www/dependencies/current/app.py", "--name", host)
        assert app.stdout == f"Hello, {host}! (click {click_version})\n", app.stderr


def test_plugin_declares_and_documents_every_setting():
    settings = fapistrano_virtualenv.fap_settings()
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert all(s.doc.strip() for s in settings)
    for name in (s.name for s in settings):
        assert f"`{name}`" in readme, name


def test_pip_options_split_the_same_from_a_string_or_a_list():
    expected = ["--no-index", "--find-links", "/srv/my wheels"]
    assert fapistrano_virtualenv.pip_options_argv("--no-index --find-links '/srv/my wheels'") == expected
    assert fapistrano_virtualenv.pip_options_argv(["--no-index", "--find-links '/srv/my wheels'"]) == expected
    assert fapistrano_virtualenv.pip_options_argv([]) == []


def test_failed_build_reports_the_build_output_not_pip_closing_notes():
    output = """\
Processing ./vendor/broken
  error: subprocess-exited-with-error

  × python setup.py egg_info did not run successfully.
  │ exit code: 1
  ╰─> [1 lines of output]
      ModuleNotFoundError: No module named 'numpy'
      [end of output]

  note: This error originates from a subprocess, and is likely not a problem with pip.
error: metadata-generation-failed

× Encountered error while generating package metadata.
╰─> See above for output.

note: This is an issue with the package mentioned above, not pip.
hint: See above for details.
"""
    assert fapistrano_virtualenv.pip_error_lines(output) == (
        "python setup.py egg_info did not run successfully. | ModuleNotFoundError: No module named 'numpy'"
    )
    assert fapistrano_virtualenv.pip_error_lines("Collecting x\nERROR: No matching distribution found for x\n") == (
        "ERROR: No matching distribution found for x"
    )
    assert fapistrano_virtualenv.pip_error_lines("one\ntwo\nthree\n", count=2) == "two | three"
