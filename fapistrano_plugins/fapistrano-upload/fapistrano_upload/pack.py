"""On the deployer: what ``upload_source`` holds, packed once into one tar file, and the command that receives it.

Pure local work, no host: :func:`scan` lists what would be sent (for
``--dry-run`` and for packing), :func:`pack` writes it once to a temporary
tar file and hashes it, and :func:`receive_command` is the shell text every
host runs with that file on its stdin. Memory stays flat: files are copied
into the tar and hashed in pieces, never read whole.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import shlex
import stat
import tarfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, BinaryIO

from fapistrano import ConfigError, FapError

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
    #: The POSIX ``cksum`` CRC of an archive sent as it is (``size`` bytes), checked as a stream; ``None`` for a
    #: tar fap packed, whose files are checked one by one (``listing``).
    checksum: int | None
    size: int
    files: int
    file_bytes: int
    #: ``-z`` when the bytes are gzip (an uploaded ``.tar.gz``), else empty.
    tar_flags: str = ""
    #: What fap packed itself: each regular file's name in the tar, its cksum CRC and size, in the tar's order.
    #: The hosts check these files once unpacked; an archive uploaded as it is (``None``) is checked as a stream.
    listing: tuple[tuple[str, int, int], ...] | None = None
    #: The directories and files of the tar their owner may not read (``chmod 000``), with their modes, in the
    #: tar's order: the hosts' check opens them for itself, then gives them their mode back.
    sealed: tuple[tuple[str, int], ...] = ()

    @cached_property
    def files_check(self) -> str:
        """Shell text that checks the unpacked ``listing`` in ``$target``: made once, sent to every host."""
        return _files_check(self.listing or (), self.size, self.sealed)


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
        # Given through a link (build/latest -> tool-1.2.bin), the file it names is sent: the link would dangle there.
        yield Entry(os.path.realpath(source), os.path.basename(source), "file", info.st_size)
        return
    root = os.path.realpath(source)
    entries = list(_walk(root, "", patterns))
    # Checked once every link is known: one link's meaning depends on the others (``sub/y -> ..``).
    links = {entry.name: os.readlink(entry.path) for entry in entries if entry.kind == "link"}
    for name, pointed in links.items():
        _check_link(name, pointed, links, "the source")
    yield from entries


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
            yield Entry(path, child, "link", 0)
        elif stat.S_ISDIR(info.st_mode):
            yield Entry(path, child, "dir", 0)
            yield from _walk(root, child, patterns)
        elif stat.S_ISREG(info.st_mode):
            yield Entry(path, child, "file", info.st_size)
        else:
            raise FapError(f"upload_source: {path} is not a file, a directory or a link")


#: Links the kernel follows while resolving one path before it gives up (ELOOP): Linux's MAXSYMLINKS.
_MAX_LINKS = 40


def _check_link(name: str, pointed: str, links: Mapping[str, str], where: str) -> None:
    """Refuse the link ``name -> pointed`` unless it resolves inside the tree sent, as the hosts' kernel will."""
    if pointed.startswith("/"):
        raise FapError(f"upload_source: link {name} -> {pointed} is absolute: on the hosts it would lead outside"
                       " the release; make it relative to a path inside the source")
    if resolve(posixpath.dirname(name), pointed, links) is None:
        raise FapError(f"upload_source: link {name} -> {pointed} leads outside {where}")


def resolve(directory: str, path: str, links: Mapping[str, str]) -> str | None:
    """``path`` (relative to ``directory``) resolved the way the kernel will once the tree is unpacked; ``None`` outside.

    ``directory``, the result and the keys of ``links`` (each symbolic link
    of the tree and what it points at) are relative to the tree's top. Each
    component that is a link is replaced by what it points at, then ``..``
    is taken: read as text, ``sub/y/sub/y/../..`` stays below ``sub``; with
    ``sub/y -> ..`` it climbs two levels above the link's directory. A name
    that is not in the tree is taken as a directory (it may exist on a host
    later). A path that resolves nowhere (a loop of links) is not outside.
    """
    resolved: list[str] = []
    pending = [*reversed(path.split("/")), *reversed(directory.split("/"))]
    followed = 0
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                return None
            resolved.pop()
            continue
        pointed = links.get("/".join((*resolved, part)))
        if pointed is None:
            resolved.append(part)
            continue
        followed += 1
        if followed > _MAX_LINKS or pointed.startswith("/"):
            return "/".join(resolved) if followed > _MAX_LINKS else None
        pending.extend(reversed(pointed.split("/")))
    return "/".join(resolved)


def check_archive(path: str) -> int:
    """Check an uploaded archive's members stay inside the release; return how many files it holds."""
    files = 0
    links: dict[str, str] = {}
    try:
        with tarfile.open(path, "r|*") as archive:
            for member in archive:
                name = posixpath.normpath(member.name)
                if name.startswith("/") or name == ".." or name.startswith("../"):
                    raise FapError(f"upload_source {path}: member {member.name} would land outside the release")
                if member.issym():
                    if member.linkname.startswith("/"):
                        raise FapError(f"upload_source {path}: link {member.name} -> {member.linkname} is absolute")
                    links[name] = member.linkname
                else:
                    links.pop(name, None)  # a later member of the same name replaces the link
                if member.isfile():
                    files += 1
    except tarfile.TarError as error:
        raise FapError(f"upload_source {path}: not a readable tar archive: {error}") from None
    # Checked once every link is known, as tar leaves them: one link's meaning depends on the others.
    for name, pointed in links.items():
        if resolve(posixpath.dirname(name), pointed, links) is None:
            raise FapError(f"upload_source {path}: link {name} -> {pointed} leads outside the archive")
    return files


def pack(source: str, patterns: Sequence[str], directory: str) -> Packed:
    """Pack ``source`` once into a tar file in ``directory``, checksumming each file (an archive is sent as it is)."""
    if is_archive(source):
        files = check_archive(source)
        checksum, size = _checksum_of(source)
        with open(source, "rb") as stream:
            gzip = stream.read(2) == b"\x1f\x8b"
        return Packed(source, checksum, size, files, size, "-z" if gzip else "")
    try:
        entries = list(scan(source, patterns))
        fd, path = _new_file(directory)
        with os.fdopen(fd, "wb") as raw:
            listing, sealed = _write_tar(entries, raw)
            size = raw.tell()
    except OSError as error:  # a file the deployer may not read, a dangling link: named, without a traceback
        raise FapError(f"upload_source: cannot read {error.filename}: {error.strerror}") from None
    return Packed(path, None, size, len(listing), sum(entry.size for entry in entries), listing=tuple(listing),
                  sealed=tuple(sealed))


# Each byte with its bits in reverse order: zlib's CRC-32 reads bits the other way round from cksum's.
_BITS_REVERSED = bytes(int(f"{byte:08b}"[::-1], 2) for byte in range(256))


class Cksum:
    """The CRC that POSIX ``cksum`` prints, computed in pieces at zlib's speed.

    cksum's CRC-32 (polynomial 0x04C11DB7, bits most significant first,
    the byte count appended, the result inverted) is zlib's reflected
    CRC-32 of the same bytes with each byte's bits reversed, started from
    zero and its result's 32 bits reversed.
    """

    def __init__(self) -> None:
        self._crc = 0xFFFFFFFF  # zlib inverts it on entry: the register starts at zero, as cksum's does
        self.size = 0

    def update(self, data: bytes) -> None:
        self.size += len(data)
        self._crc = zlib.crc32(data.translate(_BITS_REVERSED), self._crc)

    def value(self) -> int:
        count, length = self.size, bytearray()
        while count:
            length.append(count & 0xFF)
            count >>= 8
        crc = zlib.crc32(bytes(length).translate(_BITS_REVERSED), self._crc)
        return int(f"{crc:032b}"[::-1], 2)


def _write_tar(entries: Sequence[Entry], stream: Any) -> tuple[list[tuple[str, int, int]], list[tuple[str, int]]]:
    """Write ``entries`` as a tar into ``stream``; return each regular file's (name, cksum CRC, size), and the
    (name, mode) of each file and directory its owner may not read (see :attr:`Packed.sealed`)."""
    listing: list[tuple[str, int, int]] = []
    sealed: list[tuple[str, int]] = []
    sums: dict[str, tuple[int, int]] = {}
    # "w", not the stream mode "w|": that one re-slices its buffer into 10 KiB records, half the packing time.
    with tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT, copybufsize=_PIECE) as archive:
        for entry in entries:
            info = archive.gettarinfo(entry.path, arcname=entry.name)
            # Owners belong to this machine: the hosts' files belong to whoever unpacks them.
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isreg():
                with open(entry.path, "rb") as content:
                    summed = _SummedReader(content)
                    archive.addfile(info, summed)
                sums[entry.name] = (summed.checksum.value(), summed.checksum.size)
            else:
                archive.addfile(info)
            if info.islnk():  # a second name of a file already sent: the same content
                sums[entry.name] = sums[info.linkname]
            if entry.name in sums:
                listing.append((entry.name, *sums[entry.name]))
            needs = 0o400 if info.isreg() else 0o500 if info.isdir() else 0
            if info.mode & needs != needs:
                sealed.append((entry.name, info.mode & 0o7777))
    return listing, sealed


class _SummedReader:
    """A binary file that checksums what is read from it: each file is summed as it goes into the tar."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.checksum = Cksum()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.checksum.update(data)
        return data


def _new_file(directory: str) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(prefix="upload-", suffix=".tar", dir=directory)


def _checksum_of(path: str) -> tuple[int, int]:
    checksum = Cksum()
    with open(path, "rb") as stream:
        while piece := stream.read(_PIECE):
            checksum.update(piece)
    return checksum.value(), checksum.size


def receive_command(target: str, packed: Packed) -> str:
    """Shell text that unpacks the tar on its stdin into ``target`` and fails unless it arrived whole and unchanged.

    What fap packed itself is checked once unpacked: ``cksum`` reads every
    regular file it sent, straight from the page cache, and the checksum of
    that listing (CRC, size and name of each, in order) must be the one
    computed here. A short upload leaves tar failing or files missing, a
    damaged one files whose CRC differ. An archive uploaded as it is is
    checked as a stream instead (:func:`_stream_check_command`). ``cksum``
    is POSIX, on every host; tampering on the way is SSH's to refuse (every
    packet carries a MAC): the checksum is for what SSH does not see, a pipe
    or a process on the host that lost or changed bytes. sha256sum on the
    stream cost the hosts about ten times the CPU, a ``tee`` of it twice.
    """
    if packed.listing is None:
        return _stream_check_command(target, packed)
    return f"""\
target={shlex.quote(target)}
mkdir -p "$target" && cd "$target" || exit 1
{_WIDE_PIPE}
{_LARGE_RECORDS}
tar -x $records -p --no-same-owner -f - || {{ echo "tar could not unpack the upload into $target: it arrived damaged or short" >&2; exit 1; }}
{packed.files_check}"""


def _files_check(listing: Sequence[tuple[str, int, int]], sent: int, sealed: Sequence[tuple[str, int]] = ()) -> str:
    """Shell text: ``cksum`` of each listed file in ``$target``, and of that listing, must be what was packed.

    What its owner may not read (``sealed``: a ``chmod 000`` file, a
    directory without ``r`` or ``x``) is opened for the check, directories
    from the top down, and given back its mode afterwards, from the bottom
    up: it is deployed as it was built, and checked all the same.
    """
    if not listing:
        return ""
    text = "".join(f"{crc} {size} {name}\n" for name, crc, size in listing)
    listed = Cksum()
    listed.update(text.encode("utf-8", "surrogateescape"))
    names = " ".join(_printf_word(name) for name, _crc, _size in listing)
    # One chmod per sealed path, in order: a directory must be opened before what it holds, and closed after.
    opened = "".join(f"printf '%b\\0' {_printf_word(name)} | xargs -0 chmod u+rx -- || exit 1\n" for name, _mode in sealed)
    closed = "".join(f"printf '%b\\0' {_printf_word(name)} | xargs -0 chmod {mode:04o} -- || exit 1\n"
                     for name, mode in reversed(sealed))
    return f"""\
{opened}listed=$(printf '%b\\0' {names} | xargs -0 cksum -- | cksum)
if [ "$listed" != "{listed.value()} {listed.size}" ]; then
    echo "the upload arrived damaged or short: the {len(listing)} files unpacked in $target are not the ones packed ({sent} bytes sent)" >&2
    exit 1
fi
{closed}"""


#: The pipe sshd feeds the upload into holds 1 MiB instead of 64 KiB (Linux; perl is on nearly every host, and
#: where it is not the pipe keeps its size): sshd writes it in a few large pieces, 15 % less time on 20 hosts.
_WIDE_PIPE = """command -v perl >/dev/null 2>&1 && perl -e 'fcntl(STDIN, 1031, 1048576) if $^O eq "linux"' 2>/dev/null"""
#: GNU tar reads a pipe in records of 1 MiB instead of 10 KiB: half its CPU on a large upload (busybox tar has no -b).
_LARGE_RECORDS = 'records=; case $(tar --version </dev/null 2>/dev/null) in *GNU*) records="-b 2048";; esac'



def _printf_word(name: str) -> str:
    """``name`` as a single-quoted argument of ``printf '%b'``: any byte but NUL, the text plain ASCII."""
    out = []
    for byte in os.fsencode(name):
        if 32 <= byte < 127 and byte not in b"\\'":
            out.append(chr(byte))
        else:
            out.append(f"\\0{byte:03o}")
    return "'" + "".join(out) + "'"


def _stream_check_command(target: str, packed: Packed) -> str:
    """Shell text that unpacks an uploaded archive and checks the ``cksum`` of the stream as it arrives.

    The bytes go through ``tee`` to ``tar`` and to ``cksum`` at once; tar
    is drained to the end so that the checksum covers every byte received.
    """
    expected = f"{packed.checksum} {packed.size}"
    return f"""\
target={shlex.quote(target)}
mkdir -p "$target" || exit 1
scratch=$(mktemp -d "${{TMPDIR:-/tmp}}/fap-upload.XXXXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT
mkfifo "$scratch/sum" || exit 1
cksum <"$scratch/sum" >"$scratch/cksum" &
tee "$scratch/sum" | {{ tar -x {packed.tar_flags} -p --no-same-owner -f - -C "$target"; unpacked=$?; cat >/dev/null; exit $unpacked; }}
unpacked=$?
wait $!
read -r crc count rest <"$scratch/cksum"
if [ "$crc $count" != "{expected}" ]; then
    echo "the upload arrived damaged or short: $count bytes with cksum $crc, expected {packed.size} bytes with cksum {packed.checksum}" >&2
    exit 1
fi
[ "$unpacked" = 0 ] || {{ echo "tar could not unpack the upload into $target" >&2; exit 1; }}
"""
