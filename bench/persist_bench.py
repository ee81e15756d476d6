#!/usr/bin/env python3
"""``ssh_persist`` benchmark: a deploy right after another (masters kept up) against a cold one.

Starts the test fleet (one real ``sshd`` per host on loopback, the hosts'
files in RAM as in ``deploy_bench.py``), the same git application and
deploy.yml as ``deploy_bench.py``, then per round: ``fap disconnect`` and a
cold ``fap deploy`` (a key exchange per host), then at once a second
``fap deploy`` of a new commit within the ``ssh_persist`` window (every
host's master reused: no key exchange), then ``fap releases``. Every deploy
is checked (``current`` holds the commit just made on every host). fap runs
with a ``$XDG_RUNTIME_DIR`` of the benchmark's own, so its private
directory holds only the benchmark's masters.

Printed: the medians of each, the warm-to-cold ratio (target <= 0.5 at 20 hosts),
and the machine.

Example (root, on a machine with sshd; everything stays on loopback)::

    python bench/persist_bench.py --hosts 20 --runs 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploy_bench import (  # noqa: E402
    FAP_APP,
    App,
    check_deployed,
    fap_command,
    fap_environment,
    machine,
    prepare_hosts,
    write_fap_project,
    write_ssh_config,
)

from fapistrano.testing import Fleet, FleetUnavailable  # noqa: E402

TIMEOUT = 600


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Wall seconds of ``argv``; exits the benchmark when it fails."""
    started = time.monotonic()
    completed = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    seconds = time.monotonic() - started
    if completed.returncode != 0:
        raise SystemExit(f"bench: {' '.join(argv[-3:])} exited {completed.returncode}:\n{(completed.stdout + completed.stderr)[-3000:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=20, help="Hosts in the fleet (default 20).")
    parser.add_argument("--runs", type=int, default=5, help="Rounds of cold deploy, warm deploy, releases (default 5).")
    args = parser.parse_args()
    if os.path.isdir("/dev/shm"):
        tempfile.tempdir = "/dev/shm"  # the hosts' files in RAM: see deploy_bench.py
    width = len(str(args.hosts))
    fleet = Fleet([f"web{index:0{width}d}" for index in range(1, args.hosts + 1)], app_name=FAP_APP)
    work = Path(tempfile.mkdtemp(prefix="fap-bench-"))
    work.chmod(0o755)
    runtime = Path(tempfile.mkdtemp(prefix="fapb-", dir="/tmp"))  # short: unix socket paths are limited
    env = {**os.environ, **fap_environment(work), "XDG_RUNTIME_DIR": str(runtime)}
    fap = fap_command()
    cold: list[float] = []
    warm: list[float] = []
    releases_cold: list[float] = []
    releases_warm: list[float] = []
    try:
        try:
            fleet.start()
        except FleetUnavailable as reason:
            print(f"bench: {reason}", file=sys.stderr)
            return 2
        ssh_config = work / "ssh_config"
        write_ssh_config(fleet, ssh_config, {n: (fleet.hosts[n].address, fleet.port) for n in fleet.names})
        app = App(work)
        app.create()
        prepare_hosts(fleet)
        project = work / "fap"
        write_fap_project(project, ssh_config, app.repo, fleet.names, persist="60s")
        timed([*fap, "deploy", "-s", "bench", "-q"], project, env)  # the first deploy makes the directories
        for _ in range(args.runs):
            timed([*fap, "disconnect"], project, env)
            releases_cold.append(timed([*fap, "releases", "-s", "bench"], project, env))
            timed([*fap, "disconnect"], project, env)
            version = app.commit()
            cold.append(timed([*fap, "deploy", "-s", "bench", "-q"], project, env))
            check_deployed(fleet, fleet.names, FAP_APP, version, "fap (cold)")
            version = app.commit()
            warm.append(timed([*fap, "deploy", "-s", "bench", "-q"], project, env))
            check_deployed(fleet, fleet.names, FAP_APP, version, "fap (warm)")
            releases_warm.append(timed([*fap, "releases", "-s", "bench"], project, env))
        timed([*fap, "disconnect"], project, env)
    finally:
        fleet.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(runtime, ignore_errors=True)

    def line(name: str, samples: list[float]) -> str:
        return f"  {name:<34} {statistics.median(samples):6.2f} s  (range {min(samples):.2f}-{max(samples):.2f})"

    ratio = statistics.median(warm) / statistics.median(cold)
    print(f"machine: {machine()}; {args.hosts} hosts on loopback sshd, {args.runs} rounds (medians);"
          f" load average {os.getloadavg()[0]:.2f}")
    print(line("fap deploy, cold (new connections)", cold))
    print(line("fap deploy, within ssh_persist", warm))
    print(line("fap releases, cold", releases_cold))
    print(line("fap releases, within ssh_persist", releases_warm))
    print(f"  second deploy / cold deploy: {ratio:.2f}x  [{'met' if ratio <= 0.5 else 'MISSED'}] target <= 0.5x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
