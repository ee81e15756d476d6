"""fapistrano.upload on the real SSH fleet: one build, byte-exact on every host, and failures that switch no host."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.fleet

BUILD = ("echo building >> BUILD_LOG && rm -rf dist && mkdir -p dist/app/static"
         " && head -c 5000000 /dev/urandom > dist/app/static/big.bin && printf 'print(42)\\n' > dist/app/main.py"
         " && printf '#!/bin/sh\\nexec python3 -m app\\n' > dist/run && chmod 755 dist/run && ln -s app/main.py dist/entry")


def sums(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by relative path (links read as their target text)."""
    found = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if path.is_symlink():
            found[relative] = "-> " + os.readlink(path)
        elif path.is_file():
            found[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def deploy(fleet, fap_run, directory: Path, extra: dict[str, object], *args: str):
    fleet.write_deployfile(directory, {"plugins": ["fapistrano.upload"], **extra})
    return fap_run(["deploy", "-s", "test", *args], cwd=directory)


def test_a_build_shipped_to_every_host_arrives_byte_exact_and_is_built_once(fap_fleet, fap_run, tmp_path):
    result = deploy(fap_fleet, fap_run, tmp_path, {"upload_build": BUILD, "upload_source": "dist"})

    assert result.exit_code == 0, result.output
    assert (tmp_path / "BUILD_LOG").read_text() == "building\n"  # once for the run, not once per host
    built = sums(tmp_path / "dist")
    assert len(built) == 4
    releases = set()
    for host in fap_fleet.hosts:
        current = fap_fleet.current_dir(host)
        releases.add(current.name)
        assert sums(current) == built, host
        assert os.stat(current / "run").st_mode & 0o777 == 0o755
        ran = fap_fleet.in_host(host, ["sh", "-c", f"cd {fap_fleet.app_dir(host)}/current && python3 entry"], user="deploy")
        assert ran.stdout == "42\n", ran.stderr
    assert len(releases) == 1
    assert result.output.count("checksum verified") == len(fap_fleet.hosts)


def good_release(fleet, fap_run, directory: Path) -> dict[str, str | None]:
    (directory / "dist").mkdir()
    (directory / "dist" / "VERSION").write_text("1\n")
    first = deploy(fleet, fap_run, directory, {"upload_source": "dist"})
    assert first.exit_code == 0, first.output
    return {host: fleet.current(host) for host in fleet.hosts}


def assert_nothing_changed(fleet, before: dict[str, str | None]) -> None:
    for host, release in before.items():
        assert fleet.current(host) == release, host
        assert fleet.releases(host) == [release], host
        assert (fleet.current_dir(host) / "VERSION").read_text() == "1\n"
        assert not fleet.locked(host)


def test_a_failed_build_changes_nothing_and_shows_its_last_lines(fap_fleet, fap_run, tmp_path):
    before = good_release(fap_fleet, fap_run, tmp_path)

    result = deploy(fap_fleet, fap_run, tmp_path, {"upload_build": "echo compiling; echo 'error: app.c:3: expected ;' >&2; exit 3",
                                                   "upload_source": "dist"})

    assert result.exit_code == 1
    assert "upload_build failed (exit 3)" in result.output and "error: app.c:3: expected ;" in result.output
    assert "Traceback" not in result.output
    assert_nothing_changed(fap_fleet, before)


DAMAGING = """#!/bin/sh
# {program} behind a damaged link: the bytes that reach it have been changed on the way.
tr A B | exec {real} "$@"
"""


@pytest.fixture
def damage_host2(fap_fleet) -> Iterator[Callable[[str], None]]:
    """Call it with a program the receiving end pipes the upload into (``tar``, ``tee``), and on host2 the bytes
    reach that program changed on the way; the other hosts are fine."""
    www = fap_fleet.app_dir("host2").parent  # /home/deploy/www, this machine's view of it
    mounts = []

    def damage(program: str = "tar") -> None:
        real = shutil.which(program)
        shutil.copy2(real, www / f".real-{program}")
        (www / f".damaging-{program}").write_text(DAMAGING.format(program=program, real=f"/home/deploy/www/.real-{program}"))
        (www / f".damaging-{program}").chmod(0o755)
        mounted = fap_fleet.in_host("host2", ["mount", "--bind", f"/home/deploy/www/.damaging-{program}", real])
        assert mounted.returncode == 0, mounted.stderr
        mounts.append(real)

    try:
        yield damage
    finally:
        for path in mounts:
            fap_fleet.in_host("host2", ["umount", path])


def test_a_damaged_transfer_on_one_host_switches_no_host(fap_fleet, fap_run, tmp_path, damage_host2):
    before = good_release(fap_fleet, fap_run, tmp_path)
    damage_host2()
    (tmp_path / "dist" / "VERSION").write_text("2\n")
    (tmp_path / "dist" / "data.bin").write_bytes(os.urandom(3_000_000))

    result = deploy(fap_fleet, fap_run, tmp_path, {"upload_source": "dist"})

    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if "arrived damaged or short" in line]
    assert errors and all("host2" in line and "host1" not in line and "host3" not in line for line in errors), result.output
    assert "nothing changed" in result.output
    assert_nothing_changed(fap_fleet, before)


@pytest.mark.parametrize("name", ["app.tgz", "app.tar"])
def test_an_archive_uploaded_as_it_is_and_damaged_before_it_is_summed_switches_no_host(fap_fleet, fap_run, tmp_path,
                                                                                       damage_host2, name):
    # The receiving end tees the stream to cksum and to tar: bytes changed before that tee reach both, and
    # only the stream's checksum can tell (a plain tar unpacks damaged bytes without a word).
    before = good_release(fap_fleet, fap_run, tmp_path)
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "VERSION").write_text("2\n")
    (staged / "data.bin").write_bytes(os.urandom(1_000_000))
    with tarfile.open(tmp_path / name, "w:gz" if name.endswith(".tgz") else "w") as packed:
        packed.add(staged, arcname=".")
    damage_host2("tee")

    result = deploy(fap_fleet, fap_run, tmp_path, {"upload_source": name})

    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if "arrived damaged or short" in line]
    assert errors and all("host2" in line and "host1" not in line and "host3" not in line for line in errors), result.output
    assert "nothing changed" in result.output
    assert_nothing_changed(fap_fleet, before)


def test_files_and_directories_their_owner_cannot_read_arrive_checked_with_their_modes(fap_fleet, fap_run, tmp_path):
    # The deploy user owns what it unpacks, but cksum cannot read a mode-000 file nor enter a mode-000
    # directory: the check opens them for itself and gives them back the mode they were sent with.
    dist = tmp_path / "dist"
    (dist / "locked").mkdir(parents=True)
    (dist / "locked" / "inside").write_bytes(os.urandom(5000))
    (dist / "sealed").write_bytes(os.urandom(7000))
    (dist / "open").write_text("open\n")
    (dist / "sealed").chmod(0o000)
    (dist / "locked").chmod(0o000)
    expected = {"locked/inside": hashlib.sha256((dist / "locked" / "inside").read_bytes()).hexdigest(),
                "sealed": hashlib.sha256((dist / "sealed").read_bytes()).hexdigest()}

    result = deploy(fap_fleet, fap_run, tmp_path, {"upload_source": "dist"})

    assert result.exit_code == 0, result.output
    assert result.output.count("checksum verified") == len(fap_fleet.hosts)
    for host in fap_fleet.hosts:
        current = fap_fleet.current_dir(host)
        assert os.stat(current / "sealed").st_mode & 0o777 == 0o000, host
        assert os.stat(current / "locked").st_mode & 0o777 == 0o000, host
        for name, digest in expected.items():  # read as root, from this machine
            assert hashlib.sha256((current / name).read_bytes()).hexdigest() == digest, (host, name)
