"""Real wheels made by the tests, with no network, and directories the fleet's deploy user can read."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import re
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

GREETING = '''\
"""A package the tests install into a release's venv."""

from fapdemo_words import WORD

VERSION = "{version}"


def greet(name):
    return f"{{WORD}}, {{name}} (greeting {{VERSION}})"
'''


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_wheel(directory: Path, name: str, version: str, files: Mapping[str, bytes | str],
                metadata: str | None = None, wheel: str | None = None) -> Path:
    """Write a pure-Python wheel of ``files`` (archive path -> content); return its path."""
    project = re.sub(r"[-_.]+", "_", name)
    dist_info = f"{project}-{version}.dist-info"
    entries: dict[str, bytes] = {path: (data.encode() if isinstance(data, str) else data) for path, data in files.items()}
    entries.setdefault(f"{dist_info}/METADATA", (metadata or f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n").encode())
    entries.setdefault(
        f"{dist_info}/WHEEL",
        (wheel or "Wheel-Version: 1.0\nGenerator: fapistrano-virtualenv-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n").encode(),
    )
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in entries.items()) + f"{dist_info}/RECORD,,\n"
    path = directory / f"{project}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in entries.items():
            archive.writestr(member, data)
        archive.writestr(f"{dist_info}/RECORD", record)
    path.chmod(0o644)
    return path


def greeting_wheel(directory: Path, version: str) -> Path:
    """``fapdemo-greeting`` at ``version``; it requires ``fapdemo-words``."""
    metadata = f"Metadata-Version: 2.1\nName: fapdemo-greeting\nVersion: {version}\nRequires-Dist: fapdemo-words\n"
    return write_wheel(directory, "fapdemo-greeting", version, {"fapdemo_greeting/__init__.py": GREETING.format(version=version)}, metadata)


def wheel_from_installed(directory: Path, name: str) -> Path:
    """A wheel of the installed pure-Python distribution ``name``, re-packed from its files.

    Its own METADATA, WHEEL and entry points are kept; RECORD is written
    anew; byte code and files outside site-packages (scripts) are left out,
    since pip makes scripts from entry_points.txt.
    """
    distribution = importlib.metadata.distribution(name)
    files: dict[str, bytes] = {}
    dist_info = None
    for file in distribution.files or []:
        path = file.as_posix()
        if path.startswith("..") or "__pycache__" in path or path.endswith(".pyc"):
            continue
        top = path.split("/", 1)[0]
        if top.endswith(".dist-info"):
            dist_info = top
            if path.rsplit("/", 1)[-1] in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json"):
                continue
        files[path] = Path(file.locate()).read_bytes()
    assert dist_info, f"{name} has no dist-info"
    version = distribution.version
    # The archive's dist-info must be named after the wheel's file name.
    wanted = f"{re.sub(r'[-_.]+', '_', distribution.metadata['Name'])}-{version}.dist-info"
    files = {(wanted + path[len(dist_info):] if path.startswith(dist_info + "/") else path): data for path, data in files.items()}
    return write_wheel(directory, distribution.metadata["Name"], version, files)


def world_readable_dir(prefix: str) -> Path:
    """A new directory under /tmp that the fleet's ``deploy`` user can read."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path
