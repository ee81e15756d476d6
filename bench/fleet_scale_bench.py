#!/usr/bin/env python3
"""Fleet-size benchmark: ``fap deploy`` to 20 and to 200 hosts, beside the deploy floor, and what fap holds meanwhile.

The same fleet, application and deploy floor as ``deploy_bench.py`` (one
real ``sshd`` per host on loopback, uniform latency; the floor runs the
whole release as ONE script per host over one fresh ssh connection, every
host at once). For each size it deploys with ``fap deploy`` (``ssh_persist:
0``, so every run pays its handshakes as the floor does) and samples the
``fap`` process while it runs (every 20 ms, from ``/proc``): its open file
descriptors and threads at their peak, and its peak RSS (``VmHWM``, its own
memory; the ssh clients are processes of their own). Every deploy is
checked (``current`` holds the new commit on every host) before it counts.

The deploy floor is measured two ways: every host at once (as
``deploy_bench.py`` does), and at most 10 hosts at once, the next starting
as one ends (what ``xargs -P 10 ssh`` would do; fap bounds its handshakes
to ``max_connecting: 10`` likewise). On a 2-core machine 200 handshakes at
once are slower than 10 at a time; fap is judged against the faster of
the two.

Printed per size: the medians of fap and of both floors, fap's ratio to the faster,
fap's round trips per host (from its ``--log-json`` summary), peak RSS,
peak descriptors per host and threads; then the growth from the smallest
to the largest size, fap's against the floor's. Targets: fap ≤ 1.25x the
deploy floor at 200 hosts, peak RSS ≤ 80 MB, ≤ 3 file descriptors per
host, growth within ±20 % of the floor's.

Heavy: 200 hosts take both cores of a small machine for tens of seconds
per deploy (each OpenSSH handshake costs ~125 ms of client CPU). Run it a
few times, not in a loop::

    python bench/fleet_scale_bench.py --hosts 20 --hosts 200 --runs 3
    python bench/fleet_scale_bench.py --hosts 200 --runs 1 --set max_parallel=200 --set max_connecting=20
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploy_bench import (  # noqa: E402
    DEPLOY_FLOOR_SCRIPT,
    DEPLOY_TIMEOUT,
    FAP_APP,
    FLOOR_APP,
    LINKED_FILE,
    STAGE,
    App,
    check_deployed,
    deploy_floor,
    deploy_floor_argv,
    fap_command,
    fap_environment,
    load_average,
    machine,
    prepare_hosts,
    write_fap_project,
    write_ssh_config,
)
from installed import compile_fap  # noqa: E402

from fapistrano.testing import WWW, Fleet, FleetUnavailable  # noqa: E402

SAMPLE_EVERY = 0.02
#: Hosts the bounded deploy floor works on at once: fap's own bound on handshakes (max_connecting).
BOUNDED = 10


@dataclass
class FapRun:
    """One ``fap deploy`` and what the process held at its peak."""

    seconds: float
    round_trips: float
    peak_rss_mb: float
    peak_fds: int
    peak_threads: int
    phases: dict[str, float] = field(default_factory=dict)


@dataclass
class Size:
    hosts: int
    fap: list[FapRun] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)
    bounded: list[float] = field(default_factory=list)

    @property
    def fap_median(self) -> float:
        return statistics.median(r.seconds for r in self.fap)

    @property
    def floor_median(self) -> float:
        """The least a deploy took: the better of the two floors (all hosts at once, or at most BOUNDED at once)."""
        return min(statistics.median(self.floor), statistics.median(self.bounded))


class ProcessSampler(threading.Thread):
    """Polls ``/proc/<pid>`` until the process is gone: the most descriptors and threads it held, its VmHWM."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.fds = 0
        self.threads = 0
        self.hwm_kb = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.fds = max(self.fds, len(os.listdir(f"/proc/{self.pid}/fd")))
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("Threads:"):
                        self.threads = max(self.threads, int(line.split()[1]))
                    elif line.startswith("VmHWM:"):
                        self.hwm_kb = max(self.hwm_kb, int(line.split()[1]))
            except (OSError, ValueError):
                pass  # between exec and exit, or a zombie: the last reading stands
            self.stop.wait(SAMPLE_EVERY)


def bounded_floor(names: list[str], ssh_config: Path, repo: Path, release: str) -> float:
    """The deploy floor with at most :data:`BOUNDED` hosts at once, the next starting as one ends (``xargs -P``).

    On a machine whose CPU the handshakes saturate, every host at once is
    slower than a bounded few: they share the two cores with the hosts'
    sshd, and each waits for all.
    """
    script = DEPLOY_FLOOR_SCRIPT.format(app=shlex.quote(str(WWW / FLOOR_APP)), repo=shlex.quote(str(repo)),
                                        release=shlex.quote(release), linked=LINKED_FILE)
    control_dir = Path(tempfile.mkdtemp(prefix="fb-", dir="/tmp"))
    failed: list[str] = []
    pending = list(names)
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if not pending:
                    return
                name = pending.pop(0)
            process = subprocess.run(deploy_floor_argv(ssh_config, name, control_dir), input=script.encode(),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=DEPLOY_TIMEOUT, check=False)
            if process.returncode != 0:
                with lock:
                    failed.append(f"{name}: exit {process.returncode}: {process.stderr.decode(errors='replace')[-300:]}")

    try:
        started = time.perf_counter()
        workers = [threading.Thread(target=worker) for _ in range(min(BOUNDED, len(names)))]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(control_dir, ignore_errors=True)
    if failed:
        raise SystemExit("bench: the bounded deploy floor failed: " + "; ".join(failed[:3]))
    return seconds


def fap_deploy(fap: list[str], project: Path, names: list[str], env: dict[str, str]) -> FapRun:
    events = project / "events.jsonl"
    events.unlink(missing_ok=True)
    argv = [*fap, "deploy", "-s", STAGE, "-q", "--log-json", str(events)]
    with open(project / "fap.out", "wb") as output:
        started = time.perf_counter()
        process = subprocess.Popen(argv, cwd=project, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                   env={**os.environ, **env})
        sampler = ProcessSampler(process.pid)
        sampler.start()
        watchdog = threading.Timer(DEPLOY_TIMEOUT, process.kill)
        watchdog.start()
        try:
            # wait4 without reaping first would lose /proc: poll until it exits, the sampler reading meanwhile.
            _pid, status, usage = os.wait4(process.pid, 0)
        finally:
            watchdog.cancel()
            sampler.stop.set()
            sampler.join()
        seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"bench: fap deploy exited {code}:\n{(project / 'fap.out').read_text(errors='replace')[-3000:]}")
    trips: dict[str, int] = {}
    phases: dict[str, float] = {}
    commands: Counter[str] = Counter()
    for line in events.read_text().splitlines():
        event = json.loads(line)
        if event.get("kind") == "summary":
            trips[event["host"]] = event.get("round_trips", 0)
        elif event.get("kind") == "phase_done":
            phases[event["phase"]] = event.get("duration", 0.0)
        elif event.get("kind") == "command" and event.get("host"):
            commands[event["host"]] += 1
    missing = [n for n in names if n not in trips]
    if missing:
        raise SystemExit(f"bench: fap's summary names no round trips for {', '.join(missing[:5])}")
    # ru_maxrss and VmHWM are the same figure; the sampler's is the fallback when wait4 reports none.
    rss_kb = max(usage.ru_maxrss, sampler.hwm_kb)
    return FapRun(seconds, statistics.median(trips[n] for n in names), rss_kb / 1024, sampler.fds, sampler.threads, phases)


def run_size(fleet: Fleet, app: App, work: Path, hosts: int, runs: int, settings: dict[str, object], ssh_config: Path) -> Size:
    names = fleet.names[:hosts]
    project = work / f"fap-{hosts}"
    path = write_fap_project(project, ssh_config, app.repo, names)
    if settings:
        path.write_text(path.read_text() + "".join(f"{key}: {value}\n" for key, value in settings.items()))
    env = fap_environment(work)
    fap = fap_command()
    releases = iter(range(1, 1_000_000))

    def floor_release() -> str:
        return f"{time.strftime('%y%m%d-%H%M%S')}-{hosts:03d}-{next(releases):03d}"

    # One untimed deploy each: it clones the mirrors, as only a first deploy would.
    version = app.commit()
    fap_deploy(fap, project, names, env)
    check_deployed(fleet, names, FAP_APP, version, "fap")
    deploy_floor(names, ssh_config, app.repo, floor_release(), work)
    size = Size(hosts)
    for run in range(runs):
        version = app.commit()
        floor = deploy_floor(names, ssh_config, app.repo, floor_release(), work)
        check_deployed(fleet, names, FLOOR_APP, version, "deploy floor")
        size.floor.append(floor.seconds)
        version = app.commit()
        bounded = bounded_floor(names, ssh_config, app.repo, floor_release())
        check_deployed(fleet, names, FLOOR_APP, version, "bounded deploy floor")
        size.bounded.append(bounded)
        version = app.commit()
        result = fap_deploy(fap, project, names, env)
        check_deployed(fleet, names, FAP_APP, version, "fap")
        size.fap.append(result)
        print(f"  [{hosts} hosts, run {run + 1}/{runs}] deploy floor {floor.seconds:.2f}s  bounded {bounded:.2f}s"
              f"  fap {result.seconds:.2f}s"
              f"  ({result.round_trips:g} round trips/host, {result.peak_rss_mb:.0f} MB, {result.peak_fds} fds,"
              f" {result.peak_threads} threads)", file=sys.stderr, flush=True)
    return size


def report(sizes: list[Size]) -> list[tuple[str, bool, str]]:
    header = ["N", "floor, all at once s", f"floor, {BOUNDED} at once s", "fap s", "fap / floor", "round trips/host", "peak RSS MB", "peak fds", "fds/host",
              "threads"]
    rows = [header]
    for size in sizes:
        rss = max(r.peak_rss_mb for r in size.fap)
        fds = max(r.peak_fds for r in size.fap)
        rows.append([str(size.hosts), f"{statistics.median(size.floor):.2f}", f"{statistics.median(size.bounded):.2f}",
                     f"{size.fap_median:.2f}",
                     f"{size.fap_median / size.floor_median:.2f}", f"{statistics.median(r.round_trips for r in size.fap):g}",
                     f"{rss:.0f}", str(fds), f"{fds / size.hosts:.2f}", str(max(r.peak_threads for r in size.fap))])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    print("\n".join(lines))
    for size in sizes:
        phases: dict[str, list[float]] = {}
        for run in size.fap:
            for name, seconds in run.phases.items():
                phases.setdefault(name, []).append(seconds)
        print(f"\nfap, {size.hosts} hosts, phases (median s): "
              + ", ".join(f"{name} {statistics.median(values):.2f}" for name, values in phases.items()))
    checks: list[tuple[str, bool, str]] = []
    for size in sizes:
        if size.hosts >= 200:
            ratio = size.fap_median / size.floor_median
            checks.append((f"{size.hosts} hosts: fap <= 1.25x the deploy floor", ratio <= 1.25, f"{ratio:.2f}x"))
            rss = max(r.peak_rss_mb for r in size.fap)
            checks.append((f"{size.hosts} hosts: peak RSS <= 80 MB", rss <= 80, f"{rss:.0f} MB"))
            per_host = max(r.peak_fds for r in size.fap) / size.hosts
            checks.append((f"{size.hosts} hosts: <= 3 file descriptors per host", per_host <= 3, f"{per_host:.2f}"))
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        fap_growth = large.fap_median / small.fap_median
        floor_growth = large.floor_median / small.floor_median
        relative = fap_growth / floor_growth
        checks.append((f"{small.hosts} -> {large.hosts} hosts: fap's growth within ±20 % of the floor's",
                       0.8 <= relative <= 1.2, f"fap x{fap_growth:.2f}, floor x{floor_growth:.2f} ({relative:.2f})"))
    print("\ntargets:")
    for text, ok, measured in checks:
        print(f"  [{'met' if ok else 'MISSED'}] {text}: {measured}")
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, action="append", metavar="N", help="Fleet sizes (default: 20 and 200).")
    parser.add_argument("--runs", type=int, default=3, metavar="K", help="Timed deploys per size (default: 3).")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="A deploy.yml setting for fap (e.g. max_parallel=200); repeat for more.")
    args = parser.parse_args(argv)
    sizes = sorted(set(args.hosts or [20, 200]))
    settings = dict(item.split("=", 1) for item in args.set)
    compile_fap()
    tempfile.tempdir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # the hosts' files in RAM, as deploy_bench
    width = len(str(max(sizes)))
    fleet = Fleet([f"web{index:0{width}d}" for index in range(1, max(sizes) + 1)], app_name=FAP_APP)
    work = Path(tempfile.mkdtemp(prefix="fap-scale-"))
    work.chmod(0o755)
    load_before = load_average()
    results: list[Size] = []
    try:
        started = time.perf_counter()
        try:
            fleet.start()
        except FleetUnavailable as reason:
            print(f"bench: {reason}", file=sys.stderr)
            return 2
        print(f"bench: {len(fleet.names)} sshd hosts up in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        ssh_config = work / "ssh_config"
        write_ssh_config(fleet, ssh_config, {name: (fleet.hosts[name].address, fleet.port) for name in fleet.names})
        app = App(work)
        app.create()
        prepare_hosts(fleet)
        for hosts in sizes:
            results.append(run_size(fleet, app, work, hosts, args.runs, settings, ssh_config))
    finally:
        fleet.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"machine: {machine()}; {args.runs} timed runs per size (medians); loopback sshd, uniform latency;"
          f" hosts' files in RAM; fap settings: {settings or 'defaults'}; load average {load_before} before,"
          f" {load_average()} after\n")
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
