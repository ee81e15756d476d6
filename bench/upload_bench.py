#!/usr/bin/env python3
"""Upload benchmark: ``fapistrano.upload`` shipping one build to N hosts, against the floor, and its memory.

Starts the test fleet (:class:`fapistrano.testing.Fleet`: one real ``sshd``
per host on loopback, hosts' files on this machine's disk), writes a build of
``--size-mb`` MB of random bytes into ``dist/``, and for each ``--hosts N``
runs, side by side:

- ``fap deploy`` with ``plugins: [fapistrano.upload]`` and
  ``upload_source: dist`` to the first N hosts (the whole deploy: connect,
  lock, pack once, stream, unpack and checksum on every host, switch, unlock);
- the floor: the same file sent to the same N hosts in parallel with
  ``scp`` over fresh connections (``scp -F <config> file host:path``), which
  neither packs, checks, nor switches anything;
- for where the time goes: the same ``fap deploy`` of a build of one
  empty file (the deploy's own cost: start-up, connect, lock, phases,
  switch, unlock) and the connect floor (``ssh host true`` to the same
  hosts in parallel, fresh connections).

Every deploy is checked (exit 0, the file byte-exact in ``current`` on every
host) before it counts. Printed: median wall time of ``--runs`` runs per
tool and N, fap's ratio to the floor and fap's own peak resident memory
(``VmHWM`` of the fap process, its ssh children not counted). With
``--rss-mb`` (default 1024) it then deploys a build of that size to one host
and prints the same.

The hosts' files are on this machine's disk, like fap's packed file
(its ``TMPDIR``); ``--ram`` puts the hosts' files and the build in
``/dev/shm``, where the figures repeat better (see deploy_bench.py on this
VM's disk).

Example (root, on a machine with sshd; everything stays on loopback)::

    python bench/upload_bench.py --hosts 1 --hosts 5 --hosts 20 --runs 3
    python bench/upload_bench.py --hosts 5 --size-mb 50 --rss-mb 0
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from installed import compile_fap

from fapistrano.testing import Fleet, FleetUnavailable


def write_build(directory: Path, megabytes: int) -> str:
    """``directory/dist/build.bin``: ``megabytes`` MB of random bytes, written in pieces; its sha256."""
    dist = directory / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    dist.mkdir(parents=True)
    digest = hashlib.sha256()
    with open(dist / "build.bin", "wb") as stream:
        for _ in range(megabytes):
            piece = os.urandom(1024 * 1024)
            digest.update(piece)
            stream.write(piece)
    return digest.hexdigest()


def deploy(fleet: Fleet, project: Path, names: list[str], source: str = "dist") -> tuple[float, int]:
    """One ``fap deploy`` of ``source`` to ``names``: (seconds, peak RSS in KiB of fap)."""
    fleet.write_deployfile(project, {"plugins": ["fapistrano.upload"], "upload_source": source, "keep_releases": 1},
                           hosts=names)
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "fapistrano", "deploy", "-s", "test", "-q"], cwd=project,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = [0]
    watcher = threading.Thread(target=_watch_peak, args=(process.pid, peak), daemon=True)
    watcher.start()
    output, _ = process.communicate(timeout=3600)
    seconds = time.perf_counter() - started
    watcher.join()
    if process.returncode != 0:
        raise SystemExit(f"bench: fap deploy failed:\n{output.decode(errors='replace')}")
    return seconds, peak[0]


def _watch_peak(pid: int, peak: list[int]) -> None:
    """fap's own peak resident memory (VmHWM, KiB), read until it exits: its ssh children are not counted."""
    while True:
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]))
        except OSError:
            return
        time.sleep(0.02)


def check(fleet: Fleet, names: list[str], sha256: str) -> None:
    for name in names:
        got = hashlib.sha256((fleet.current_dir(name) / "build.bin").read_bytes()).hexdigest()
        if got != sha256:
            raise SystemExit(f"bench: {name}: build.bin arrived with sha256 {got}, expected {sha256}")


def scp_floor(fleet: Fleet, source: Path, names: list[str]) -> float:
    """Seconds for ``scp`` of ``source`` to every host at once, over fresh connections."""
    started = time.perf_counter()
    processes = [subprocess.Popen(["scp", "-q", "-F", str(fleet.ssh_config), "-o", "BatchMode=yes", str(source),
                                   f"{name}:/home/deploy/www/floor.bin"], stdin=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE) for name in names]
    for name, process in zip(names, processes, strict=True):
        _out, err = process.communicate(timeout=3600)
        if process.returncode != 0:
            raise SystemExit(f"bench: scp to {name} failed: {err.decode(errors='replace').strip()}")
    return time.perf_counter() - started


def connect_floor(fleet: Fleet, names: list[str]) -> float:
    """Seconds for ``ssh host true`` to every host at once, over fresh connections."""
    started = time.perf_counter()
    processes = [subprocess.Popen(["ssh", "-F", str(fleet.ssh_config), "-o", "BatchMode=yes", name, "true"],
                                  stdin=subprocess.DEVNULL) for name in names]
    for process in processes:
        process.wait(timeout=600)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, action="append", help="fleet sizes (repeatable; default 1, 5, 20)")
    parser.add_argument("--size-mb", type=int, default=50, help="size of the build (MB)")
    parser.add_argument("--runs", type=int, default=3, help="runs per tool and fleet size (median printed)")
    parser.add_argument("--rss-mb", type=int, default=1024, help="size of the build whose peak memory is measured (0: skip)")
    parser.add_argument("--ram", action="store_true",
                        help="keep the hosts' files (and the build) in RAM (/dev/shm) instead of on this machine's disk")
    options = parser.parse_args()
    if options.ram:
        if not os.path.isdir("/dev/shm"):
            parser.error("no /dev/shm on this machine: run without --ram")
        tempfile.tempdir = "/dev/shm"  # the fleet's and the build's directories: tempfile.mkdtemp
    sizes = options.hosts or [1, 5, 20]
    compile_fap()
    try:
        fleet = Fleet([f"host{i}" for i in range(1, max(sizes) + 1)]).start()
    except FleetUnavailable as error:
        raise SystemExit(f"bench: {error}") from None
    project = Path(tempfile.mkdtemp(prefix="fap-upload-bench-"))
    try:
        sha256 = write_build(project, options.size_mb)
        (project / "empty").mkdir()
        (project / "empty" / "EMPTY").write_bytes(b"")
        where = "in RAM (/dev/shm)" if options.ram else "on this machine's disk"
        print(f"build: {options.size_mb} MB of random bytes; {options.runs} runs each; medians; hosts' files {where}")
        print(f"{'hosts':>5}  {'fap deploy':>10}  {'scp floor':>10}  {'fap / floor':>11}  {'fap peak RSS':>12}"
              f"  {'fap, empty':>10}  {'ssh true':>8}")
        for count in sizes:
            names = list(fleet.names[:count])
            times: dict[str, list[float]] = {"fap": [], "floor": [], "empty": [], "connect": []}
            peaks = []
            for _ in range(options.runs):
                seconds, peak = deploy(fleet, project, names)
                check(fleet, names, sha256)
                times["fap"].append(seconds)
                peaks.append(peak)
                times["floor"].append(scp_floor(fleet, project / "dist" / "build.bin", names))
                times["empty"].append(deploy(fleet, project, names, "empty")[0])
                times["connect"].append(connect_floor(fleet, names))
            fap, floor, empty, connect = (statistics.median(times[key]) for key in ("fap", "floor", "empty", "connect"))
            print(f"{count:>5}  {fap:>9.2f}s  {floor:>9.2f}s  {fap / floor:>11.2f}  {max(peaks) / 1024:>9.0f} MB"
                  f"  {empty:>9.2f}s  {connect:>7.2f}s", flush=True)
        if options.rss_mb:
            fleet.reset()
            sha256 = write_build(project, options.rss_mb)
            seconds, peak = deploy(fleet, project, [fleet.names[0]])
            check(fleet, [fleet.names[0]], sha256)
            print(f"{options.rss_mb} MB build to 1 host: {seconds:.1f} s, fap peak RSS {peak / 1024:.0f} MB")
    finally:
        shutil.rmtree(project, ignore_errors=True)
        fleet.stop()


if __name__ == "__main__":
    main()
