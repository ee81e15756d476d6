"""Content-addressed venvs under shared/venvs on the real fleet: reused, rebuilt, rolled back to, pruned; uv and pip."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from virtualenv_wheels import write_wheel

pytestmark = pytest.mark.fleet

APP = "/home/deploy/www/app"

APP_PY = """\
import fapdemo_greeting

print(fapdemo_greeting.greet("fleet"))
"""


def venv_dir(fleet: Any, host: str, release: str | None = None) -> Path:
    """This machine's path of the directory a release's ``venv`` link resolves to."""
    release = release or fleet.current(host)
    link = fleet.app_dir(host) / "releases" / release / "venv"
    assert link.is_symlink(), f"{link} is not a link into the store"
    return Path(os.path.realpath(link))


def store(fleet: Any, host: str) -> dict[str, str]:
    """The store's entries on ``host``: name -> 'dir' or the link's target."""
    root = fleet.app_dir(host) / "shared" / "venvs"
    if not root.is_dir():
        return {}
    return {p.name: (os.readlink(p) if p.is_symlink() else "dir") for p in root.iterdir()}


def current_python(fleet: Any, host: str, code: str) -> Any:
    """Run ``current/venv/bin/python -c code`` on ``host`` as ``deploy``: the path a process manager uses."""
    return fleet.in_host(host, [f"{APP}/current/venv/bin/python", "-c", code], user="deploy")


def greeting(fleet: Any, host: str) -> str:
    result = current_python(fleet, host, "import fapdemo_greeting; print(fapdemo_greeting.VERSION)")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_unchanged_requirements_reuse_the_venv_and_a_change_builds_a_new_one(fap_fleet, fap_run, venv_deployfile, write_app, tmp_path):
    hosts = ["host1", "host2"]
    write_app("fapdemo-greeting==1.0\n", **{"app.py": APP_PY})
    venv_deployfile({"virtualenv_installer": "pip"}, hosts=hosts)
    assert fap_run(["deploy", "-s", "test"], cwd=tmp_path).exit_code == 0
    first = {host: venv_dir(fap_fleet, host) for host in hosts}
    inode = {host: (first[host] / "bin" / "python").lstat().st_ino for host in hosts}
    # The release's venv is the store's: a script's #! names the store's directory, which never moves.
    for host in hosts:
        assert first[host].parent == fap_fleet.app_dir(host) / "shared" / "venvs"
        pip_script = (fap_fleet.current_dir(host) / "venv" / "bin" / "pip").read_text().splitlines()[0]
        assert re.fullmatch(rf"#!{APP}/shared/venvs/{re.escape(first[host].name)}/bin/python3?", pip_script), pip_script

    second = fap_run(["deploy", "-s", "test", "-v"], cwd=tmp_path)

    assert second.exit_code == 0, second.output
    for host in hosts:
        assert venv_dir(fap_fleet, host) == first[host]
        assert (first[host] / "bin" / "python").lstat().st_ino == inode[host]
        assert re.search(rf"^{host} \| updated \| reusing virtualenv {APP}/shared/venvs/{first[host].name} \(requirements unchanged\)$",
                         second.stdout, re.M), second.output
        assert greeting(fap_fleet, host) == "1.0"
    # No venv made, no pip run: only the look-up.
    ran = re.findall(r"^\S+ \| updated \| \$ (.*)$", second.stdout, re.M)
    assert len(ran) == len(hosts) and all(line.startswith("venvs=") for line in ran), ran

    write_app("fapdemo-greeting==2.0\n", **{"app.py": APP_PY})
    third = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert third.exit_code == 0, third.output
    for host in hosts:
        rebuilt = venv_dir(fap_fleet, host)
        assert rebuilt != first[host]
        assert greeting(fap_fleet, host) == "2.0"
        # The venv the previous releases run was not touched.
        assert (first[host] / "bin" / "python").lstat().st_ino == inode[host]
        app = fap_fleet.in_host(host, [f"{APP}/current/venv/bin/python", f"{APP}/current/app.py"], user="deploy")
        assert app.stdout == "Hello, fleet (greeting 2.0)\n", app.stderr


def test_failed_install_leaves_no_venv_a_later_deploy_would_reuse(fap_fleet, fap_run, venv_deployfile, write_app, tmp_path, wheelhouse):
    shared_wheels = Path("/tmp") / f"fap-venv-late-{os.getpid()}-{tmp_path.name}"
    shutil.copytree(wheelhouse, shared_wheels)
    shared_wheels.chmod(0o755)
    try:
        write_app("fapdemo-greeting==1.0\nfapdemo-late==1.0\n", **{"app.py": APP_PY})
        venv_deployfile({"virtualenv_installer": "pip", "virtualenv_pip_options": ["--no-index", "--find-links", str(shared_wheels)]},
                        hosts=["host1"])

        failed = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

        assert failed.exit_code == 1, failed.output
        assert "No matching distribution found for fapdemo-late==1.0" in failed.stdout, failed.output
        # pip had installed fapdemo-greeting before it gave up: that venv is gone, and no address names it.
        assert store(fap_fleet, "host1") == {}
        assert fap_fleet.releases("host1") == []

        # The same requirements, now installable: the venv is built anew, with both packages.
        write_wheel(shared_wheels, "fapdemo-late", "1.0", {"fapdemo_late.py": "LATE = True\n"})
        again = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    finally:
        shutil.rmtree(shared_wheels, ignore_errors=True)

    assert again.exit_code == 0, again.output
    assert "reusing virtualenv" not in again.stdout
    assert current_python(fap_fleet, "host1", "import fapdemo_late, fapdemo_greeting").returncode == 0


def test_a_venv_without_its_address_is_not_reused_and_cleanup_removes_orphans(fap_fleet, fap_run, venv_deployfile, write_app, tmp_path):
    """What a run killed mid-build leaves: a directory without its address. It is never looked up."""
    write_app("fapdemo-greeting==1.0\n")
    venv_deployfile({"virtualenv_installer": "pip"}, hosts=["host1"])
    assert fap_run(["deploy", "-s", "test"], cwd=tmp_path).exit_code == 0
    built = venv_dir(fap_fleet, "host1")
    venvs = fap_fleet.app_dir("host1") / "shared" / "venvs"
    # The address goes, the directory loses half its files, as if pip had been killed in it.
    (venvs / built.name.split(".")[0]).unlink()
    shutil.rmtree(next((built / "lib").glob("python3*")) / "site-packages" / "fapdemo_greeting")
    # A directory no release links to, as a build killed before its release was published leaves.
    orphan = "0123456789abcdef.20000101T000000"
    fap_fleet.in_host("host1", ["mkdir", "-p", f"{APP}/shared/venvs/{orphan}/bin"], user="deploy")

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert "reusing virtualenv" not in result.stdout
    assert venv_dir(fap_fleet, "host1") != built
    assert greeting(fap_fleet, "host1") == "1.0"
    assert re.search(rf"^host1 \| finishing \| removed 1 virtualenv\(s\) no kept release uses: {orphan}$", result.stdout, re.M), result.output
    assert orphan not in store(fap_fleet, "host1")
    # The first release still links to its (damaged) venv: kept, as every venv a kept release links to.
    assert built.name in store(fap_fleet, "host1")


def test_rollback_to_a_release_with_other_requirements_runs_its_old_venv(fap_fleet, fap_run, venv_deployfile, write_app, tmp_path):
    hosts = ["host1", "host2"]
    write_app("fapdemo-greeting==1.0\n", **{"app.py": APP_PY})
    venv_deployfile({"virtualenv_installer": "pip"}, hosts=hosts)
    assert fap_run(["deploy", "-s", "test"], cwd=tmp_path).exit_code == 0
    old = {host: venv_dir(fap_fleet, host) for host in hosts}
    write_app("fapdemo-greeting==2.0\n", **{"app.py": APP_PY})
    assert fap_run(["deploy", "-s", "test"], cwd=tmp_path).exit_code == 0
    assert {greeting(fap_fleet, host) for host in hosts} == {"2.0"}

    result = fap_run(["rollback", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    for host in hosts:
        assert venv_dir(fap_fleet, host) == old[host]
        assert greeting(fap_fleet, host) == "1.0"
        app = fap_fleet.in_host(host, [f"{APP}/current/venv/bin/python", f"{APP}/current/app.py"], user="deploy")
        assert app.stdout == "Hello, fleet (greeting 1.0)\n", app.stderr
        # The rolled-back release is kept, marked bad: the venv only it uses stays with it (both venvs, each with its key).
        assert len(store(fap_fleet, host)) == 4, store(fap_fleet, host)


def test_cleanup_keeps_every_venv_a_kept_release_links_to(fap_fleet, fap_run, venv_deployfile, write_app, tmp_path):
    venv_deployfile({"virtualenv_installer": "pip", "keep_releases": 2}, hosts=["host1"])

    def deploy(requirements: str) -> str:
        write_app(requirements)
        result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
        assert result.exit_code == 0, result.output
        return venv_dir(fap_fleet, "host1").name

    a = deploy("fapdemo-greeting==1.0\n")
    b = deploy("fapdemo-greeting==2.0\n")
    # A again: the venv of the first release is reused although that release is removed now.
    assert deploy("fapdemo-greeting==1.0\n") == a
    assert set(store(fap_fleet, "host1")) == {a, a.split(".")[0], b, b.split(".")[0]}

    c = deploy("fapdemo-words==1.0\n")

    # Kept: releases 3 (A) and 4 (C). B's venv, which only the removed release 2 used, is gone, and its address.
    releases = fap_fleet.releases("host1")
    assert len(releases) == 2
    linked = {venv_dir(fap_fleet, "host1", release).name for release in releases}
    assert linked == {a, c}
    assert store(fap_fleet, "host1") == {a: "dir", a.split(".")[0]: a, c: "dir", c.split(".")[0]: c}
    for release in releases:
        python = f"{APP}/releases/{release}/venv/bin/python"
        assert fap_fleet.in_host("host1", [python, "-c", "import fapdemo_words"], user="deploy").returncode == 0


def test_uv_and_pip_install_the_same_requirements_into_working_venvs(fap_fleet, fap_run, venv_deployfile, write_app, tmp_path, uv_binary):
    write_app("fapdemo-greeting==1.0\nclick\n", **{"app.py": APP_PY})
    listing = "import importlib.metadata as m; print(sorted((d.metadata['Name'], d.version) for d in m.distributions() if d.metadata['Name'] not in ('pip', 'setuptools')))"
    found: dict[str, str] = {}
    for installer in ("pip", "uv"):
        venv_deployfile({"virtualenv_installer": installer, "virtualenv_uv": uv_binary}, hosts=["host1"])
        result = fap_run(["deploy", "-s", "test", "-v"], cwd=tmp_path)
        assert result.exit_code == 0, result.output
        assert f"with {installer}" in result.stdout, result.output
        app = fap_fleet.in_host("host1", [f"{APP}/current/venv/bin/python", f"{APP}/current/app.py"], user="deploy")
        assert app.stdout == "Hello, fleet (greeting 1.0)\n", app.stderr
        listed = current_python(fap_fleet, "host1", listing)
        assert listed.returncode == 0, listed.stderr
        found[installer] = listed.stdout
    assert found["uv"] == found["pip"]
    assert "fapdemo-greeting" in found["uv"] and "click" in found["uv"]
    # The installer is part of the key: two venvs, each with its address.
    assert len([name for name in store(fap_fleet, "host1") if "." not in name]) == 2
    # uv's cache is in shared/, on the venvs' filesystem (uv links from it instead of copying).
    assert (fap_fleet.app_dir("host1") / "shared" / "cache" / "uv").is_dir()


def test_auto_installer_uses_uv_where_the_host_has_it_else_pip(fap_fleet, fap_run, venv_deployfile, write_app, tmp_path, uv_binary):
    write_app("fapdemo-greeting==1.0\n")
    venv_deployfile({"virtualenv_uv": uv_binary}, hosts=["host1"])
    with_uv = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert with_uv.exit_code == 0, with_uv.output
    assert re.search(r"^host1 \| updated \| building virtualenv \S+ with uv$", with_uv.stdout, re.M), with_uv.output

    venv_deployfile({"virtualenv_uv": "/nowhere/uv"}, hosts=["host1"])
    without = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert without.exit_code == 0, without.output
    assert re.search(r"^host1 \| updated \| building virtualenv \S+ with pip$", without.stdout, re.M), without.output
    assert greeting(fap_fleet, "host1") == "1.0"


def test_installer_uv_on_a_host_without_uv_fails_before_building(fap_fleet, fap_run, venv_deployfile, write_app, tmp_path):
    write_app("fapdemo-greeting==1.0\n")
    venv_deployfile({"virtualenv_installer": "uv", "virtualenv_uv": "/nowhere/uv"}, hosts=["host1"])

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert re.search(r"^host1 \| .*virtualenv_installer is uv, but '/nowhere/uv' is not a command on the host", result.stdout, re.M), result.output
    assert fap_fleet.releases("host1") == [] and store(fap_fleet, "host1") == {}


def test_an_unknown_installer_is_bad_input(fap_fleet, fap_run, venv_deployfile, tmp_path):
    venv_deployfile({"virtualenv_installer": "conda"}, hosts=["host1"])

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 2, result.output
    assert "virtualenv_installer" in result.output and "conda" in result.output
    assert fap_fleet.releases("host1") == []


def test_per_release_shape_builds_a_venv_inside_every_release(fap_fleet, fap_run, venv_deployfile, write_app, tmp_path):
    write_app("fapdemo-greeting==1.0\n")
    venv_deployfile({"virtualenv_venvs_path": ""}, hosts=["host1"])

    for _ in range(2):
        result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
        assert result.exit_code == 0, result.output
        assert "reusing" not in result.stdout

    for release in fap_fleet.releases("host1"):
        venv = fap_fleet.app_dir("host1") / "releases" / release / "venv"
        assert venv.is_dir() and not venv.is_symlink()
        assert (venv / "pyvenv.cfg").is_file()
    assert not (fap_fleet.app_dir("host1") / "shared" / "venvs").exists()
    assert greeting(fap_fleet, "host1") == "1.0"


def test_per_release_shape_installs_with_uv_too(fap_fleet, fap_run, venv_deployfile, write_app, tmp_path, uv_binary):
    write_app("fapdemo-greeting==1.0\n")
    venv_deployfile({"virtualenv_venvs_path": "", "virtualenv_installer": "uv", "virtualenv_uv": uv_binary}, hosts=["host1"])

    result = fap_run(["deploy", "-s", "test", "-v"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert re.search(r"^host1 \| updated \| installing \S+/requirements\.txt with uv$", result.stdout, re.M), result.output
    venv = fap_fleet.current_dir("host1") / "venv"
    assert venv.is_dir() and not venv.is_symlink()
    assert greeting(fap_fleet, "host1") == "1.0"


def test_check_reports_a_uv_the_host_does_not_have(fap_fleet, fap_run, venv_deployfile, tmp_path, uv_binary):
    venv_deployfile({"virtualenv_installer": "uv", "virtualenv_uv": "/nowhere/uv"}, hosts=["host1"])
    missing = fap_run(["check", "-s", "test"], cwd=tmp_path)
    assert missing.exit_code != 0
    assert "virtualenv_installer is uv, but virtualenv_uv '/nowhere/uv' is not a command on the host" in missing.output

    venv_deployfile({"virtualenv_installer": "uv", "virtualenv_uv": uv_binary}, hosts=["host1"])
    assert fap_run(["check", "-s", "test"], cwd=tmp_path).exit_code == 0
