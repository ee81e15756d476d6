"""On the deployer: what ``upload_source`` holds, packed once into one tar file, and the command that receives it.

Pure local work, no host: :func:`scan` lists what would be sent (for
``--dry-run`` and for packing), :func:`pack` writes it once to a temporary
tar file and hashes it, and :func:`receive_command` is the shell text every
host runs with that file on its stdin. Memory stays flat: files are copied
into the tar and hashed in pieces, never read whole.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import shlex
import stat
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from fapistrano import FapError
from fapistrano.errors import ConfigError

#: Names never sent, wherever they are: a repository's history is no part of a build.
ALWAYS_EXCLUDED = (".git",)
#: ``upload_source`` files with these endings are unpacked into the release, not copied.
ARCHIVE_ENDINGS = (".tar", ".tar.gz", ".tgz")
_PIECE = 1024 * 1024


@dataclass(frozen=True)
class Entry:
    """One path to send: its absolute path here, its name in the tar, and what it is."""

    path: str
    name: str
    kind: str  # "file", "dir", "link"
    size: int


@dataclass(frozen=True)
class Packed:
    """The upload, packed once: the tar file to stream, its checksum, what it holds."""

    path: str
    sha256: str
    size: int
    files: int
    file_bytes: int
    #: ``-z`` when the bytes are gzip (an uploaded ``.tar.gz``), else empty.
    tar_flags: str = ""


def source_path(source: str, project_dir: str) -> str:
    """``upload_source`` as an absolute path: relative ones are relative to deploy.yml's directory."""
    text = (source or ".").strip() or "."
    return os.path.normpath(os.path.join(project_dir, os.path.expanduser(text)))


def target_path(target: str, release_path: str) -> str:
    """``upload_target`` on the host: the release directory, or a directory inside it; outside is a ConfigError."""
    release = posixpath.normpath(release_path)
    text = (target or "").strip()
    if not text:
        return release
    joined = posixpath.normpath(text if text.startswith("/") else posixpath.join(release, text))
    if joined != release and not joined.startswith(release.rstrip("/") + "/"):
        raise ConfigError(f"upload_target {text!r} is outside the release {release}: "
                          "give a directory inside it, relative to the release")
    return joined


def is_archive(path: str) -> bool:
    return os.path.isfile(path) and path.endswith(ARCHIVE_ENDINGS)


def excluded(relative: str, patterns: Sequence[str]) -> bool:
    """Whether ``relative`` (a path under the source) matches a pattern, by itself or by its base name."""
    base = posixpath.basename(relative)
    if base in ALWAYS_EXCLUDED:
        return True
    return any(fnmatch.fnmatchcase(relative, pattern) or fnmatch.fnmatchcase(base, pattern) for pattern in patterns)


def scan(source: str, patterns: Sequence[str]) -> Iterator[Entry]:
    """Every path to send from ``source`` (a directory, or one file), sorted, excluded ones left out.

    Raises :class:`FapError` naming a link that leads outside the source
    (absolute links included: on the hosts they would point at this
    machine's paths) and anything that is not a file, directory or link.
    """
    if not os.path.lexists(source):
        raise FapError(f"upload_source {source}: no such file or directory")
    if not os.path.isdir(source):
        info = os.stat(source)
        yield Entry(source, os.path.basename(source), "file", info.st_size)
        return
    root = os.path.realpath(source)
    yield from _walk(root, "", patterns)


def _walk(root: str, relative: str, patterns: Sequence[str]) -> Iterator[Entry]:
    directory = os.path.join(root, relative) if relative else root
    with os.scandir(directory) as found:
        names = sorted(entry.name for entry in found)
    for name in names:
        child = posixpath.join(relative, name) if relative else name
        if excluded(child, patterns):
            continue
        path = os.path.join(root, child)
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            _check_link(root, child, path)
            yield Entry(path, child, "link", 0)
        elif stat.S_ISDIR(info.st_mode):
            yield Entry(path, child, "dir", 0)
            yield from _walk(root, child, patterns)
        elif stat.S_ISREG(info.st_mode):
            yield Entry(path, child, "file", info.st_size)
        else:
            raise FapError(f"upload_source: {path} is not a file, a directory or a link")


def _check_link(root: str, relative: str, path: str) -> None:
    pointed = os.readlink(path)
    if os.path.isabs(pointed):
        raise FapError(f"upload_source: link {relative} -> {pointed} is absolute: on the hosts it would lead outside"
                       " the release; make it relative to a path inside the source")
    resolved = os.path.normpath(os.path.join(os.path.dirname(path), pointed))
    if resolved != root and not resolved.startswith(root + os.sep):
        raise FapError(f"upload_source: link {relative} -> {pointed} leads outside the source")


def check_archive(path: str) -> int:
    """Check an uploaded archive's members stay inside the release; return how many files it holds."""
    files = 0
    try:
        with tarfile.open(path, "r|*") as archive:
            for member in archive:
                name = posixpath.normpath(member.name)
                if name.startswith("/") or name == ".." or name.startswith("../"):
                    raise FapError(f"upload_source {path}: member {member.name} would land outside the release")
                if member.issym():
                    if member.linkname.startswith("/"):
                        raise FapError(f"upload_source {path}: link {member.name} -> {member.linkname} is absolute")
                    pointed = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
                    if pointed == ".." or pointed.startswith("../"):
                        raise FapError(f"upload_source {path}: link {member.name} -> {member.linkname} leads outside the archive")
                if member.isfile():
                    files += 1
    except tarfile.TarError as error:
        raise FapError(f"upload_source {path}: not a readable tar archive: {error}") from None
    return files


def pack(source: str, patterns: Sequence[str], directory: str) -> Packed:
    """Pack ``source`` once into a tar file in ``directory`` (an archive source is sent as it is); hash it."""
    if is_archive(source):
        files = check_archive(source)
        digest, size = _hash(source)
        with open(source, "rb") as stream:
            gzip = stream.read(2) == b"\x1f\x8b"
        return Packed(source, digest, size, files, size, "-z" if gzip else "")
    entries = list(scan(source, patterns))
    fd, path = _new_file(directory)
    with os.fdopen(fd, "wb") as raw:
        hashing = _Hashing(raw)
        _write_tar(entries, hashing)
    files = sum(1 for entry in entries if entry.kind == "file")
    return Packed(path, hashing.digest.hexdigest(), hashing.size, files, sum(entry.size for entry in entries))


class _Hashing:
    """A binary file that hashes what is written to it: the tar is hashed as it is made, not read again."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.raw.write(data)


def _write_tar(entries: Sequence[Entry], stream: Any) -> None:
    with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        for entry in entries:
            info = archive.gettarinfo(entry.path, arcname=entry.name)
            # Owners belong to this machine: the hosts' files belong to whoever unpacks them.
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if entry.kind == "file":
                with open(entry.path, "rb") as content:
                    archive.addfile(info, content)
            else:
                archive.addfile(info)


def _new_file(directory: str) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(prefix="upload-", suffix=".tar", dir=directory)


def _hash(path: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as stream:
        while piece := stream.read(_PIECE):
            digest.update(piece)
            size += len(piece)
    return digest.hexdigest(), size


def receive_command(target: str, packed: Packed) -> str:
    """Shell text that unpacks the tar on its stdin into ``target`` and fails unless its sha256 is ``packed``'s.

    The bytes go through ``tee`` to ``tar`` and to ``sha256sum`` at once; tar
    is drained to the end so that the checksum covers every byte received. A
    damaged or short upload fails the command (and so the deploy, before
    anything is published), whatever tar made of it.
    """
    expected = packed.sha256
    return f"""\
target={shlex.quote(target)}
mkdir -p "$target" || exit 1
scratch=$(mktemp -d "${{TMPDIR:-/tmp}}/fap-upload.XXXXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT
mkfifo "$scratch/sum" || exit 1
sha256sum <"$scratch/sum" >"$scratch/sha" &
tee "$scratch/sum" | {{ tar -x {packed.tar_flags} -p --no-same-owner -f - -C "$target"; unpacked=$?; cat >/dev/null; exit $unpacked; }}
unpacked=$?
wait $!
received=$(cut -d' ' -f1 "$scratch/sha")
if [ "$received" != {expected} ]; then
    echo "the upload arrived damaged or short: sha256 $received, expected {expected} ({packed.size} bytes)" >&2
    exit 1
fi
[ "$unpacked" = 0 ] || {{ echo "tar could not unpack the upload into $target" >&2; exit 1; }}
"""
