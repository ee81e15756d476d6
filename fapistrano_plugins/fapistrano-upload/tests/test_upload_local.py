"""fapistrano.upload on a local target (connection: local): what lands in the release, errors, --dry-run, fap check."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

BUILD = ("mkdir -p dist/app/sub dist/.git && echo built >> BUILDS && printf 'print(1)\\n' > dist/app/main.py"
         " && printf x > dist/app/main.pyc && printf 'ref' > dist/.git/HEAD && printf '#!/bin/sh\\necho run\\n' > dist/run.sh"
         " && chmod 755 dist/run.sh && chmod 750 dist/app/sub && ln -s ../run.sh dist/app/run-link && printf data > dist/app/sub/f")


def release_dir(fap_local) -> Path:
    return fap_local.path / "releases" / fap_local.current()


def test_a_local_deploy_builds_once_and_unpacks_the_build_with_modes_and_links(fap_local, fap_run):
    fap_local.write_deployfile({"plugins": ["fapistrano.upload"], "upload_build": BUILD, "upload_source": "dist",
                                "upload_exclude": ["*.pyc"]})

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    release = release_dir(fap_local)
    assert (fap_local.root / "BUILDS").read_text() == "built\n"
    assert (release / "app" / "main.py").read_text() == "print(1)\n"
    assert not (release / "app" / "main.pyc").exists() and not (release / ".git").exists()
    assert os.stat(release / "run.sh").st_mode & 0o777 == 0o755
    assert os.stat(release / "app" / "sub").st_mode & 0o777 == 0o750
    assert os.readlink(release / "app" / "run-link") == "../run.sh"
    assert "packed 3 files" in result.output and "checksum verified" in result.output


def test_the_build_runs_in_deploy_yml_s_directory_from_a_subdirectory(fap_local, fap_run):
    fap_local.write_deployfile({"plugins": ["fapistrano.upload"], "upload_build": "mkdir -p out && echo hi > out/hi",
                                "upload_source": "out"})
    (fap_local.root / "sub").mkdir()

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root / "sub")

    assert result.exit_code == 0, result.output
    assert (release_dir(fap_local) / "hi").read_text() == "hi\n"


def test_an_archive_is_unpacked_and_a_single_file_copied(fap_local, fap_run):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("web/index.html")
        info.size = 3
        archive.addfile(info, io.BytesIO(b"hi\n"))
    (fap_local.root / "app.tgz").write_bytes(buffer.getvalue())
    fap_local.write_deployfile({"plugins": ["fapistrano.upload"], "upload_source": "app.tgz"})
    assert fap_run(["deploy", "-s", "test"], cwd=fap_local.root).exit_code == 0
    assert (release_dir(fap_local) / "web" / "index.html").read_text() == "hi\n"
    assert not (release_dir(fap_local) / "app.tgz").exists()

    (fap_local.root / "tool.bin").write_bytes(bytes(range(256)))
    fap_local.write_deployfile({"plugins": ["fapistrano.upload"], "upload_source": "tool.bin", "upload_target": "bin"})
    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)
    assert result.exit_code == 0, result.output
    assert (release_dir(fap_local) / "bin" / "tool.bin").read_bytes() == bytes(range(256))


@pytest.mark.parametrize("pointed", ["../../outside", "/etc/passwd"])
def test_a_link_leading_outside_the_source_is_an_error_naming_it(fap_local, fap_run, pointed):
    (fap_local.root / "dist").mkdir()
    (fap_local.root / "dist" / "ok").write_text("ok\n")
    (fap_local.root / "dist" / "escape").symlink_to(pointed)
    fap_local.write_deployfile({"plugins": ["fapistrano.upload"], "upload_source": "dist"})

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 1
    assert f"link escape -> {pointed}" in result.output and "Traceback" not in result.output
    assert fap_local.releases() == [] and fap_local.current() is None


def test_a_target_outside_the_release_is_a_config_error(fap_local, fap_run):
    (fap_local.root / "dist").mkdir()
    fap_local.write_deployfile({"plugins": ["fapistrano.upload"], "upload_source": "dist", "upload_target": "../elsewhere"})

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 2, result.output
    assert "upload_target '../elsewhere' is outside the release" in result.output
    assert fap_local.releases() == []


def test_a_missing_source_stops_the_run_with_nothing_changed(fap_local, fap_run):
    fap_local.write_deployfile({"plugins": ["fapistrano.upload"], "upload_source": "nowhere"})
    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)
    assert result.exit_code == 1
    assert "upload_source" in result.output and "nowhere: no such file or directory" in result.output
    assert fap_local.releases() == []


def test_dry_run_builds_nothing_sends_nothing_and_says_what_it_would(fap_local, fap_run):
    (fap_local.root / "dist").mkdir()
    (fap_local.root / "dist" / "a").write_bytes(b"x" * 1000)
    (fap_local.root / "dist" / "b").write_bytes(b"y" * 24)
    fap_local.write_deployfile({"plugins": ["fapistrano.upload"], "upload_build": "touch BUILT", "upload_source": "dist"})

    result = fap_run(["deploy", "-s", "test", "--dry-run"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    assert "would build: touch BUILT" in result.output
    assert "would send 2 files (1.0 KiB) from" in result.output
    assert not (fap_local.root / "BUILT").exists() and fap_local.releases() == []


def test_check_says_whether_the_build_program_is_found_or_the_source_exists(fap_local, fap_run):
    fap_local.write_deployfile({"plugins": ["fapistrano.upload"], "upload_build": "no-such-builder --wheel"})
    result = fap_run(["check", "-s", "test"], cwd=fap_local.root)
    assert result.exit_code != 0 and "upload_build: no-such-builder is not found on this machine" in result.output

    fap_local.write_deployfile({"plugins": ["fapistrano.upload"], "upload_build": "sh -c true"})
    result = fap_run(["check", "-s", "test"], cwd=fap_local.root)
    assert "upload" not in result.output.replace("fapistrano.upload", ""), result.output

    fap_local.write_deployfile({"plugins": ["fapistrano.upload"], "upload_source": "dist"})
    result = fap_run(["check", "-s", "test"], cwd=fap_local.root)
    assert result.exit_code != 0 and "dist: no such file or directory" in result.output


def test_excludes_match_the_relative_path_or_the_base_name(fap_local, fap_run):
    for name in ("app/static/site.js", "app/static/site.js.map", "app/keep.map", "app/__pycache__/m.pyc", "docs/x.md"):
        (fap_local.root / "dist" / name).parent.mkdir(parents=True, exist_ok=True)
        (fap_local.root / "dist" / name).write_text(name)
    fap_local.write_deployfile({"plugins": ["fapistrano.upload"], "upload_source": "dist",
                                "upload_exclude": ["app/static/*.map", "__pycache__", "docs"]})

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    release = release_dir(fap_local)
    assert sorted(str(p.relative_to(release)) for p in release.rglob("*") if p.is_file()) == [
        "app/keep.map", "app/static/site.js"]


def test_an_archive_with_a_member_outside_the_release_is_refused(fap_local, fap_run):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("../escaped")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"x\n"))
    (fap_local.root / "app.tar").write_bytes(buffer.getvalue())
    fap_local.write_deployfile({"plugins": ["fapistrano.upload"], "upload_source": "app.tar"})

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 1
    assert "member ../escaped would land outside the release" in result.output
    assert fap_local.releases() == [] and not (fap_local.path / "releases" / "escaped").exists()


def test_the_readme_lists_every_setting():
    from fapistrano_upload import fap_settings

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for setting in fap_settings():
        assert f"| `{setting.name}` |" in readme, setting.name


@pytest.mark.parametrize("size", [0, 1, 255, 256, 65_536, 1_048_577, 3_000_001])
def test_the_checksum_is_the_one_the_hosts_cksum_prints(size, tmp_path):
    from fapistrano_upload.pack import Cksum

    data = os.urandom(size)
    checksum = Cksum()
    for start in range(0, size, 100_003):  # pieces of an odd size, as a file is read
        checksum.update(data[start:start + 100_003])
    (tmp_path / "data").write_bytes(data)

    printed = subprocess.run(["cksum", str(tmp_path / "data")], capture_output=True, text=True, check=True).stdout

    assert printed.split()[:2] == [str(checksum.value()), str(size)]


ODD_NAMES = ["-starts-with-dash", "it's", 'back\\slash "quoted"', "new\nline", "tab\there", "ünïcode", "%b %s\\0"]


def test_files_with_any_name_and_hard_links_arrive_and_are_checked(fap_local, fap_run):
    dist = fap_local.root / "dist"
    (dist / "sub dir").mkdir(parents=True)
    for number, name in enumerate(ODD_NAMES):
        (dist / "sub dir" / name).write_bytes(os.urandom(number * 1000))
    raw_name = os.fsdecode(b"latin-1 \xe9")  # not UTF-8: the name's bytes go as they are
    (dist / raw_name).write_bytes(b"bytes")
    (dist / "big").write_bytes(os.urandom(300_000))
    os.link(dist / "big", dist / "big-again")
    fap_local.write_deployfile({"plugins": ["fapistrano.upload"], "upload_source": "dist"})

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    assert "checksum verified" in result.output
    release = release_dir(fap_local)
    for name in ODD_NAMES:
        assert (release / "sub dir" / name).read_bytes() == (dist / "sub dir" / name).read_bytes()
    assert (release / raw_name).read_bytes() == b"bytes"
    assert (release / "big-again").read_bytes() == (dist / "big").read_bytes()


def test_the_packed_file_is_removed_after_the_run(fap_local, fap_run, tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    (fap_local.root / "dist").mkdir()
    (fap_local.root / "dist" / "data.bin").write_bytes(os.urandom(2_000_000))
    fap_local.write_deployfile({"plugins": ["fapistrano.upload"], "upload_source": "dist"})

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root, env={"TMPDIR": str(scratch)})

    assert result.exit_code == 0, result.output
    deadline = time.monotonic() + 10
    while list(scratch.glob("fap-upload-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not list(scratch.glob("fap-upload-*"))


#: ``app/sub/y -> ..`` makes ``sub/y`` the directory ``app`` itself: the path below climbs ten levels above ``app``
#: on the disk though, read as text, it never leaves it. Resolved as the kernel will, it is ``/etc/passwd``.
CLIMBING = "sub/y/" * 10 + "../" * 10 + "etc/passwd"


def test_a_link_that_climbs_out_through_another_link_is_refused(fap_local, fap_run):
    app = fap_local.root / "dist" / "app"
    (app / "sub").mkdir(parents=True)
    (app / "sub" / "y").symlink_to("..")
    (app / "esc").symlink_to(CLIMBING)
    assert os.path.realpath(app / "esc") == "/etc/passwd"  # what it would be on a host, too
    fap_local.write_deployfile({"plugins": ["fapistrano.upload"], "upload_source": "dist"})

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 1, result.output
    assert f"link app/esc -> {CLIMBING} leads outside the source" in result.output
    assert "Traceback" not in result.output
    assert fap_local.releases() == [] and fap_local.current() is None


def test_links_that_stay_inside_through_other_links_are_sent(fap_local, fap_run):
    app = fap_local.root / "dist" / "app"
    (app / "sub").mkdir(parents=True)
    (app / "sub" / "y").symlink_to("..")
    (app / "VERSION").write_text("1\n")
    (app / "same").symlink_to("sub/y/sub/y/VERSION")
    (fap_local.root / "dist" / "top").symlink_to("app/sub/y/../VERSION")  # app/sub/y is app: its parent is the top
    (fap_local.root / "dist" / "VERSION").write_text("top\n")
    fap_local.write_deployfile({"plugins": ["fapistrano.upload"], "upload_source": "dist"})

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    release = release_dir(fap_local)
    assert (release / "app" / "same").read_text() == "1\n"
    assert (release / "top").read_text() == "top\n"


def archive(path: Path, members: list[tuple[str, str | None]]) -> None:
    """A .tgz of ``members``: (name, link target) for a symbolic link, (name, None) for a small file."""
    with tarfile.open(path, mode="w:gz") as packed:
        for name, pointed in members:
            info = tarfile.TarInfo(name)
            if pointed is None:
                info.size = 3
                packed.addfile(info, io.BytesIO(b"ok\n"))
            else:
                info.type, info.linkname = tarfile.SYMTYPE, pointed
                packed.addfile(info)


@pytest.mark.parametrize(("members", "refused"), [
    ([("web/index.html", None), ("web/escape", "../../outside")], "link web/escape -> ../../outside leads outside the archive"),
    ([("web/index.html", None), ("web/passwd", "/etc/passwd")], "link web/passwd -> /etc/passwd is absolute"),
    ([("app/sub/y", ".."), ("app/esc", CLIMBING)], f"link app/esc -> {CLIMBING} leads outside the archive"),
], ids=["climbing", "absolute", "through-a-link"])
def test_an_uploaded_archive_with_a_link_leading_outside_it_is_refused(fap_local, fap_run, members, refused):
    archive(fap_local.root / "app.tgz", members)
    fap_local.write_deployfile({"plugins": ["fapistrano.upload"], "upload_source": "app.tgz"})

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 1, result.output
    assert refused in result.output and "Traceback" not in result.output
    assert fap_local.releases() == [] and fap_local.current() is None
    assert not (fap_local.path / "outside").exists()


def test_an_uploaded_archive_with_links_inside_it_is_unpacked(fap_local, fap_run):
    archive(fap_local.root / "app.tgz", [("app/sub/y", ".."), ("app/VERSION", None), ("app/same", "sub/y/VERSION")])
    fap_local.write_deployfile({"plugins": ["fapistrano.upload"], "upload_source": "app.tgz"})

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    assert (release_dir(fap_local) / "app" / "same").read_text() == "ok\n"


def test_a_single_file_given_through_a_link_is_sent_as_the_file_it_names(fap_local, fap_run):
    # build/tool -> tool-1.2.bin, as build tools leave a "latest" link: its content is sent, never a link
    # to a path of this machine.
    (fap_local.root / "build").mkdir()
    (fap_local.root / "build" / "tool-1.2.bin").write_bytes(b"tool 1.2\n")
    (fap_local.root / "build" / "tool").symlink_to("tool-1.2.bin")
    fap_local.write_deployfile({"plugins": ["fapistrano.upload"], "upload_source": "build/tool", "upload_target": "bin"})

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    sent = release_dir(fap_local) / "bin" / "tool"
    assert not sent.is_symlink() and sent.read_bytes() == b"tool 1.2\n"
