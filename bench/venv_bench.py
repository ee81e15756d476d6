#!/usr/bin/env python3
"""Dependency benchmark: fapistrano.virtualenv's dependency step on a 5-host SSH fleet, pip beside uv.

Starts the test fleet (:class:`fapistrano.testing.Fleet`: one real ``sshd``
per host on loopback) and a generated application whose pinned
``requirements.txt`` (as ``pip-compile`` writes it) names 25 distributions:
15 real pure-Python ones re-packed from this Python's own installation
(Pygments, docutils, rich, pytest, click, ...; their ``Requires-Dist`` lines
dropped, since the file pins every one) and 10 generated ones of 40 modules
each. Their wheels are served from a local directory (``--no-index
--find-links``): nothing goes to the network, and the figures are the
installers', not a mirror's.

For each installer (``virtualenv_installer: pip``, then ``uv``, each in an
application directory of its own, emptied before every round), one round is
three deploys:

1. cold: the first deploy, nothing in ``shared/`` (no venv, no cache);
2. unchanged: the same requirements again (the stored venv is reused);
3. one changed: one generated requirement's version bumped (a new venv is
   built; the installer's cache in ``shared/cache`` is warm).

The figure is the ``updated`` phase per host (the dependency step: the
plugin's look-up, and the venv's creation and install when there is one),
from fap's own ``--log-json`` events; the deploy's wall time is printed
beside it. Medians of ``--runs`` rounds; the table prints the three figures
of the dependency targets and whether each is met.

The hosts' files (venvs, caches) live in RAM (``/dev/shm``) unless
``--disk`` is given, as in ``deploy_bench.py``: on this VM's ext4 the time
to create files swings with how many were deleted in the last minutes.

uv comes from PyPI (``pip install uv``); the fleet's hosts share this
machine's filesystem outside their own application directory, so the
binary is copied to a world-readable directory and named by
``virtualenv_uv``.

Example (root, on a machine with sshd; everything stays on loopback)::

    python bench/venv_bench.py --runs 3
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "fapistrano_plugins" / "fapistrano-virtualenv" / "tests"))

from installed import compile_fap  # noqa: E402
from virtualenv_wheels import write_wheel  # noqa: E402

from fapistrano.testing import DEPLOY_USER, WWW, Fleet, FleetUnavailable, _yaml_dump  # noqa: E402

STAGE = "bench"
HOSTS = 5
#: Real pure-Python distributions re-packed from this installation.
REAL = ["click", "docutils", "iniconfig", "markdown-it-py", "mdurl", "packaging", "pluggy", "plumbum", "Pygments",
        "pytest", "rich", "ruamel.yaml", "sortedcontainers", "typing_extensions", "wheel"]
GENERATED = 10
MODULES = 40
#: The generated requirement whose version the "one changed" deploy bumps.
BUMPED = "benchdep-01"

#: A test-only plugin, as the virtualenv tests use: copies the application into the release.
SOURCE_PLUGIN = '''\
import shlex

from fapistrano import Setting, hookimpl


@hookimpl
def fap_settings():
    return [Setting("bench_app_source", "", "The directory each release gets.")]


@hookimpl
def fap_deploy_updating(ctx):
    ctx.run(f"cp -R {shlex.quote(ctx.config['bench_app_source'])}/. {shlex.quote(ctx.release_path)}/")
'''


def repack(directory: Path, name: str) -> tuple[str, str]:
    """A wheel of the installed pure-Python distribution ``name`` without its Requires-Dist lines; (name, version)."""
    distribution = importlib.metadata.distribution(name)
    files: dict[str, bytes] = {}
    dist_info = ""
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
    project, version = distribution.metadata["Name"], distribution.version
    wanted = f"{re.sub(r'[-_.]+', '_', project)}-{version}.dist-info"
    files = {(wanted + path[len(dist_info):] if path.startswith(dist_info + "/") else path): data for path, data in files.items()}
    metadata = files.pop(f"{wanted}/METADATA").decode()
    metadata = "".join(line for line in metadata.splitlines(keepends=True) if not line.startswith("Requires-Dist:"))
    write_wheel(directory, project, version, files, metadata=metadata)
    return project, version


def generated(directory: Path, index: int, version: str) -> tuple[str, str]:
    """``benchdep-NN`` at ``version``: MODULES modules of ~2 KB each."""
    name = f"benchdep-{index:02d}"
    package = name.replace("-", "_")
    body = "".join(f"def function_{n}(value):\n    return value * {n} + {index}\n\n" for n in range(40))
    files = {f"{package}/__init__.py": f'VERSION = "{version}"\n'}
    files.update({f"{package}/module_{m:02d}.py": body for m in range(MODULES)})
    write_wheel(directory, name, version, files)
    return name, version


def requirements(pins: list[tuple[str, str]]) -> str:
    return "".join(f"{name}=={version}\n" for name, version in sorted(pins, key=lambda pin: pin[0].lower()))


def find_uv() -> str | None:
    found = shutil.which("uv")
    if found:
        return found
    try:
        import uv

        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        return None


def fap_command() -> list[str]:
    beside = Path(sys.executable).with_name("fap")
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "fapistrano"]


def deploy(fap: list[str], project: Path, names: list[str]) -> dict[str, Any]:
    """One ``fap deploy``; its wall time and each host's ``updated`` duration (from the JSON events)."""
    events = project / "events.jsonl"
    events.unlink(missing_ok=True)
    started = time.perf_counter()
    result = subprocess.run([*fap, "deploy", "-s", STAGE, "-q", "--log-json", str(events)], cwd=project,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"})
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"bench: fap deploy exited {result.returncode}:\n{(result.stdout + result.stderr)[-3000:]}")
    updated: dict[str, float] = {}
    logs: list[str] = []
    for line in events.read_text().splitlines():
        event = json.loads(line)
        if event.get("kind") == "phase" and event.get("phase") == "updated" and event.get("status") == "ok":
            updated[event["host"]] = event["duration"]
        elif event.get("kind") == "log" and event.get("phase") == "updated":
            logs.append(event.get("message", ""))
    missing = [name for name in names if name not in updated]
    if missing:
        raise SystemExit(f"bench: no 'updated' phase for {', '.join(missing)} in fap's events")
    return {"seconds": seconds, "updated": updated, "reused": sum("reusing virtualenv" in m for m in logs),
            "built": sum(m.startswith("building virtualenv") for m in logs)}


def check_venv(fleet: Fleet, names: list[str], app: str, version: str) -> None:
    """Refuse a round whose live venv does not import the bumped package at ``version``."""
    package = BUMPED.replace("-", "_")
    for name in names:
        result = fleet.in_host(name, [f"{WWW}/{app}/current/venv/bin/python", "-c",
                                      f"import {package}, pygments, rich, pytest; print({package}.VERSION)"], user=DEPLOY_USER)
        if result.returncode != 0 or result.stdout.strip() != version:
            raise SystemExit(f"bench: {name}: the live venv of {app} is not right: {result.stdout}{result.stderr}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, metavar="K", help="Rounds (cold, unchanged, one changed) per installer (default: 3).")
    parser.add_argument("--disk", action="store_true",
                        help="Keep the hosts' files on this machine's disk instead of in RAM (/dev/shm).")
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON instead of a table.")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    uv = find_uv()
    if uv is None:
        parser.error("uv is not installed (pip install uv)")
    compile_fap()
    if not args.disk:
        if not os.path.isdir("/dev/shm"):
            parser.error("no /dev/shm on this machine: run with --disk")
        # The fleet's directories (tempfile.mkdtemp): see deploy_bench.py on ext4 and deleted inodes.
        tempfile.tempdir = "/dev/shm"
    names = [f"web{index}" for index in range(1, HOSTS + 1)]
    fleet = Fleet(names, app_name="venvbench")
    work = Path(tempfile.mkdtemp(prefix="fap-venv-bench-"))
    work.chmod(0o755)
    fap = fap_command()
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    load_before = "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
    try:
        wheels = work / "wheels"
        wheels.mkdir()
        wheels.chmod(0o755)
        pins = [repack(wheels, name) for name in REAL] + [generated(wheels, index, "1.0") for index in range(1, GENERATED + 1)]
        generated(wheels, 1, "1.1")
        bumped = [(name, "1.1" if name == BUMPED else version) for name, version in pins]
        uv_dir = work / "uv"
        uv_dir.mkdir()
        shutil.copy(uv, uv_dir / "uv")
        for path in [uv_dir, uv_dir / "uv"]:
            path.chmod(0o755)
        try:
            fleet.start()
        except FleetUnavailable as reason:
            print(f"bench: {reason}", file=sys.stderr)
            return 2
        for installer in ("pip", "uv"):
            app = f"venvbench-{installer}"
            project = work / installer
            source = project / "source"
            source.mkdir(parents=True)
            (project / "bench_app_source.py").write_text(SOURCE_PLUGIN)
            (project / "deploy.yml").write_text(_yaml_dump(fleet.deployfile({
                "app_name": app,
                "plugins": ["bench_app_source", "fapistrano.virtualenv"],
                "bench_app_source": str(source),
                "virtualenv_installer": installer,
                "virtualenv_uv": str(uv_dir / "uv"),
                "virtualenv_pip_options": ["--no-index", "--find-links", str(wheels)],
            }, stage=STAGE)))
            for path in [project, source]:
                path.chmod(0o755)
            rounds: dict[str, list[dict[str, Any]]] = {"cold": [], "unchanged": [], "changed": []}
            for _ in range(args.runs):
                for name in names:
                    shutil.rmtree(fleet.hosts[name].path(WWW / app), ignore_errors=True)
                for case, pinned, version in (("cold", pins, "1.0"), ("unchanged", pins, "1.0"), ("changed", bumped, "1.1")):
                    (source / "requirements.txt").write_text(requirements(pinned))
                    (source / "requirements.txt").chmod(0o644)
                    sample = deploy(fap, project, names)
                    expected_reuse = case == "unchanged"
                    if sample["reused"] != (len(names) if expected_reuse else 0):
                        raise SystemExit(f"bench: {installer} {case}: {sample['reused']} host(s) reused their venv")
                    check_venv(fleet, names, app, version)
                    rounds[case].append(sample)
            results[installer] = rounds
    finally:
        fleet.stop()
        shutil.rmtree(work, ignore_errors=True)

    def per_host(installer: str, case: str) -> float:
        """Median over rounds of the median host's ``updated`` seconds."""
        return statistics.median(statistics.median(s["updated"].values()) for s in results[installer][case])

    def slowest(installer: str, case: str) -> float:
        return statistics.median(max(s["updated"].values()) for s in results[installer][case])

    def wall(installer: str, case: str) -> float:
        return statistics.median(s["seconds"] for s in results[installer][case])

    unchanged = max(slowest("pip", "unchanged"), slowest("uv", "unchanged"))
    changed = per_host("uv", "changed") / per_host("pip", "changed")
    cold = per_host("uv", "cold") / per_host("pip", "cold")
    checks = [
        ("requirements unchanged, second deploy: dependency step < 0.5 s per host", unchanged < 0.5, f"{unchanged:.3f} s (slowest host)"),
        ("one requirement changed, uv <= 0.3x pip", changed <= 0.3, f"{changed:.2f}x"),
        ("cold first deploy, uv <= 0.5x pip", cold <= 0.5, f"{cold:.2f}x"),
    ]
    load = "load average {} before, {:.1f} {:.1f} {:.1f} after".format(load_before, *os.getloadavg())
    machine = f"{os.cpu_count()} cores; Python {sys.version.split()[0]}; uv {subprocess.run([uv, '--version'], capture_output=True, text=True).stdout.split()[1]}"
    if args.json:
        print(json.dumps({
            "machine": machine, "load_average": load, "hosts": HOSTS, "runs": args.runs, "requirements": len(REAL) + GENERATED,
            "cases": {installer: {case: {"updated_per_host_s": per_host(installer, case), "updated_slowest_host_s": slowest(installer, case),
                                         "deploy_s": wall(installer, case)} for case in ("cold", "unchanged", "changed")}
                      for installer in ("pip", "uv")},
            "targets": [{"target": t, "met": ok, "measured": m} for t, ok, m in checks],
        }, indent=2))
        return 0
    print(f"machine: {machine}; {HOSTS} hosts on loopback sshd; {len(REAL) + GENERATED} pinned requirements from a local wheel"
          f" directory; medians of {args.runs} rounds; hosts' files {'on disk' if args.disk else 'in RAM'}; {load}")
    print()
    print(f"{'case':<24}{'pip step/host':>15}{'uv step/host':>15}{'uv/pip':>8}{'pip deploy':>12}{'uv deploy':>11}")
    for case, label in (("cold", "cold first deploy"), ("unchanged", "requirements unchanged"), ("changed", "one requirement changed")):
        pip_step, uv_step = per_host("pip", case), per_host("uv", case)
        print(f"{label:<24}{pip_step:>13.2f} s{uv_step:>13.2f} s{uv_step / pip_step:>7.2f}x{wall('pip', case):>10.2f} s{wall('uv', case):>9.2f} s")
    print("\ndependency targets:")
    for text, ok, measured in checks:
        print(f"  [{'met' if ok else 'MISSED'}] {text}: {measured}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
