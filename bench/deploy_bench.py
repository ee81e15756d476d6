#!/usr/bin/env python3
"""Deploy benchmark: ``fap deploy`` on an N-host SSH fleet, against the connection floor and Capistrano.

Starts the test fleet (:class:`fapistrano.testing.Fleet`: one real ``sshd``
per host on loopback), generates a git application (a local repository the
``deploy`` user reads; one linked file created beforehand in ``shared/`` on
every host; ``keep_releases: 5``), then for each run makes a new commit and
deploys it with ``fap deploy`` (the ``fapistrano.git`` plugin) and, with
``--capistrano``, with Debian's ``cap`` on the same fleet and repository.
In the same run it measures two floors. The connection floor: N parallel
``ssh -F <config> host true``, i.e. one fresh SSH connection per host and
nothing else. The deploy floor: the least work a git deploy can make the
hosts do, N hosts in parallel each running the whole release as ONE script
over one ssh connection with fap's own ssh options (Mina's shape: update
the mirror, ``git archive`` into a new release, write REVISION, link the
shared file, switch ``current`` with a temporary link and ``mv -T``, keep
5), after a new commit of its own. fap's distance to the deploy floor is
what its lockstep phases, its probe and lock, and Python cost.

Every deploy is checked afterwards (exit code, and ``current`` on every host
holds the commit just made), so a fast failure never counts as a fast deploy.

Printed: median wall time per tool, the ratios to the floor and to
Capistrano, remote commands per host (from fap's own ``--log-json``
events of kind ``command``: the plugins' and the core's scripts, the probe
and the unlock; from Capistrano's debug log), fap's round trips per host
(the ``round_trips`` of its ``--log-json`` summary: the writes to a host's
session whose answer it waited for; the deploy floor makes one), fap's peak memory, where fap's time goes (start-up,
connecting, each phase, the end), the CPU seconds each run cost on this
machine's side, on the hosts' side and to everything else running meanwhile
(wall times on a shared 2-core machine swing with its load; CPU seconds
show whether they did), and ``fap --help`` / ``fap --version`` start-up.
Targets are judged on ratios of medians; beside each, the median and range
of the runs' own ratios show how much the machine moved the figure.

``--kex`` pins the SSH key exchange for all three (OpenSSH 9's default,
sntrup761x25519, costs ~8x the client CPU of the ecdh-sha2-nistp521 that
Capistrano's net-ssh negotiates).

The hosts' files live in RAM (``/dev/shm``) unless ``--disk`` is given:
this VM's root filesystem is ext4 without a journal, where creating a file
scans past every inode deleted in the last few minutes (ext4's
``recently_deleted`` check, seen with ``perf``), so unpacking a release
there costs anywhere from a few to over 100 ms of kernel time per host, by what ran
before, for fap and Capistrano alike. In RAM the figures repeat.

A Capistrano deploy that fails (net-ssh now and then reports "closed
stream" on this fleet) is run once more, and the retries are printed.

Examples (root, on a machine with sshd; everything stays on loopback)::

    python bench/deploy_bench.py --hosts 20 --runs 7 --capistrano
    python bench/deploy_bench.py --hosts 5 --rtt-ms 20 --runs 7 --capistrano
    python bench/deploy_bench.py --hosts 20 --hosts 100 --runs 3
    python bench/deploy_bench.py --hosts 20 --capistrano --kex ecdh-sha2-nistp521
    python bench/deploy_bench.py --hosts 20 --capistrano --disk
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import pwd
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from delay_proxy import DelayProxy  # noqa: E402
from installed import compile_fap  # noqa: E402

from fapistrano.testing import DEPLOY_USER, WWW, Fleet, FleetUnavailable  # noqa: E402

FAP_APP = "app"
CAP_APP = "cap"
FLOOR_APP = "floor"
LINKED_FILE = "config/settings.ini"
STAGE = "bench"
#: Bounded waits: nothing here may hang a CI machine.
DEPLOY_TIMEOUT = 900
PR_SET_CHILD_SUBREAPER = 36


# ---------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------


@dataclass
class Sample:
    """One timed run of one tool."""

    seconds: float
    commands_per_host: float | None = None
    round_trips_per_host: float | None = None  # writes of commands fap waited for, per host (the summary's round_trips)
    peak_rss_mb: float | None = None
    client_cpu: float | None = None  # CPU seconds on this side: the tool, its ssh clients, their masters
    server_cpu: float | None = None  # CPU seconds on the hosts' side: sshd and every command it ran
    other_cpu: float | None = None  # CPU seconds everything else on the machine took meanwhile (interference)
    phases: dict[str, float] = field(default_factory=dict)


@dataclass
class Row:
    """Medians of one tool at one fleet size and latency."""

    tool: str
    hosts: int
    rtt_ms: float
    samples: list[Sample]

    @property
    def median(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    def median_of(self, name: str) -> float | None:
        values = [getattr(s, name) for s in self.samples if getattr(s, name) is not None]
        return statistics.median(values) if values else None

    def max_of(self, name: str) -> float | None:
        values = [getattr(s, name) for s in self.samples if getattr(s, name) is not None]
        return max(values) if values else None

    def phase_medians(self) -> dict[str, float]:
        names = [name for s in self.samples for name in s.phases]
        ordered = list(dict.fromkeys(names))
        return {name: statistics.median(s.phases.get(name, 0.0) for s in self.samples) for name in ordered}


def timed(argv: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> tuple[int, float, Any, float]:
    """Run ``argv``; return its exit code, wall seconds, resource usage (``os.wait4``) and start time (epoch)."""
    with open(log, "wb") as output:
        epoch = time.time()
        started = time.perf_counter()
        process = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                   env={**os.environ, **(env or {})})
        # A blocking wait (not polling); a timer kills a run that hangs.
        watchdog = threading.Timer(DEPLOY_TIMEOUT, process.kill)
        watchdog.start()
        try:
            _pid, status, usage = os.wait4(process.pid, 0)
        finally:
            watchdog.cancel()
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, seconds, usage, epoch


class CpuMeter:
    """CPU seconds a run cost, on this machine's side and on the hosts' side, whatever else the machine runs.

    Wall time on a shared 2-core machine swings with its load; CPU time does
    not, and it says what a deploy costs. This process becomes a child
    subreaper, so every process of a run ends up reaped either by a fleet
    ``sshd`` (its time is in that sshd's children's time) or here: the
    backgrounded ssh ControlMasters, and the sshd session processes that
    sshd leaves behind when a connection closes. Each process reaped here is
    counted on the side it ran on (its mount namespace, or its name).
    """

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self._own_namespace = os.readlink("/proc/self/ns/mnt")
        self._orphans_on_hosts = 0.0
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

    def snapshot(self) -> tuple[float, float]:
        """``(CPU seconds here, CPU seconds on the hosts)`` so far, once the last run's processes are gone."""
        self.settle()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        listeners = 0
        for host in self.fleet.hosts.values():
            fields = Path(f"/proc/{host.pid}/stat").read_text().rsplit(")", 1)[1].split()
            listeners += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
        here = usage.ru_utime + usage.ru_stime - self._orphans_on_hosts
        return here, listeners / os.sysconf("SC_CLK_TCK") + self._orphans_on_hosts

    def settle(self, timeout: float = 20) -> None:
        """Wait (bounded) until the last run's processes are gone on both sides, reaping what was left to us."""
        fleet_pids = {host.pid for host in self.fleet.hosts.values()}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = False
            for pid in _children(os.getpid()) - fleet_pids:
                on_host = self._on_host(pid)
                try:
                    done, _status, usage = os.wait4(pid, os.WNOHANG)
                except ChildProcessError:
                    continue
                if done == 0:
                    busy = True
                elif on_host:
                    self._orphans_on_hosts += usage.ru_utime + usage.ru_stime
            busy = busy or any(_children(pid) for pid in fleet_pids)
            if not busy:
                return
            time.sleep(0.01)

    def _on_host(self, pid: int) -> bool:
        try:
            return os.readlink(f"/proc/{pid}/ns/mnt") != self._own_namespace
        except OSError:  # a zombie: its name tells
            try:
                return Path(f"/proc/{pid}/comm").read_text().startswith("sshd")
            except OSError:
                return False


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            found.update(int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split())
    except OSError:
        pass
    return found


def measured(meter: CpuMeter, run: Any) -> Sample:
    """Run ``run()`` (which returns a :class:`Sample`) and add the CPU both sides spent, and everyone else."""
    client, server = meter.snapshot()
    busy, own = machine_busy(), _own_cpu()
    sample = run()
    client_after, server_after = meter.snapshot()
    sample.client_cpu = client_after - client
    sample.server_cpu = server_after - server
    sample.other_cpu = max(0.0, machine_busy() - busy - sample.client_cpu - sample.server_cpu - (_own_cpu() - own))
    return sample


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (``/proc/stat``: all but idle and iowait)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    guest = sum(fields[8:10]) if len(fields) > 9 else 0  # already counted in user and nice
    return (sum(fields) - idle - guest) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def parallel_ssh_floor(names: list[str], ssh_config: Path) -> float:
    """Seconds for ``ssh -F config host true`` to every host at once: the connection floor."""
    started = time.perf_counter()
    processes = [
        subprocess.Popen(["ssh", "-F", str(ssh_config), "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", name, "true"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for name in names
    ]
    failed = []
    for name, process in zip(names, processes, strict=True):
        _out, err = process.communicate(timeout=120)
        if process.returncode != 0:
            failed.append(f"{name}: {err.decode(errors='replace').strip()}")
    seconds = time.perf_counter() - started
    if failed:
        raise SystemExit("bench: the floor's ssh failed: " + "; ".join(failed[:3]))
    return seconds


def startup_times(fap: list[str], runs: int, env: dict[str, str]) -> dict[str, float]:
    """Median seconds of ``fap --help`` and ``fap --version`` (a fresh process each, after one untimed)."""
    result = {}
    for flag in ("--help", "--version"):
        times = []
        for index in range(runs + 1):
            started = time.perf_counter()
            subprocess.run([*fap, flag], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=60,
                           env={**os.environ, **env})
            if index == 0:
                continue
            times.append(time.perf_counter() - started)
        result[flag] = statistics.median(times)
    return result


# ---------------------------------------------------------------------------
# The application and the fleet's files
# ---------------------------------------------------------------------------


def as_deploy(argv: list[str], cwd: Path | None = None) -> str:
    """Run ``argv`` as the deploy user (it owns the source repository); return stdout."""
    home = pwd.getpwnam(DEPLOY_USER).pw_dir
    env = {"HOME": home, "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_AUTHOR_NAME": "bench",
           "GIT_AUTHOR_EMAIL": "bench@example.invalid", "GIT_COMMITTER_NAME": "bench",
           "GIT_COMMITTER_EMAIL": "bench@example.invalid", "LC_ALL": "C"}
    completed = subprocess.run(["runuser", "-u", DEPLOY_USER, "--", *argv], cwd=cwd, env=env, capture_output=True,
                               text=True, check=False, timeout=120)
    if completed.returncode != 0:
        raise SystemExit(f"bench: {shlex.join(argv)} failed: {completed.stderr.strip()}")
    return completed.stdout


class App:
    """A small web application in a git repository; each :meth:`commit` changes ``VERSION``."""

    def __init__(self, root: Path) -> None:
        self.repo = root / "app-src"
        self.version = 0

    def create(self) -> None:
        self.repo.mkdir(parents=True)
        shutil.chown(self.repo, DEPLOY_USER, DEPLOY_USER)
        as_deploy(["git", "init", "-q", "-b", "main", str(self.repo)])
        files = {
            "app/__init__.py": '"""The benchmark application."""\n',
            "app/wsgi.py": "def application(environ, start_response):\n"
                           "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
                           "    return [open('VERSION', 'rb').read()]\n",
            "requirements.txt": "",
            "README.md": "# bench app\n",
        }
        for index in range(40):
            files[f"app/views/view_{index:02d}.py"] = f"def view_{index}():\n    return {index}\n" * 20
            files[f"static/css/style_{index:02d}.css"] = f".c{index} {{ color: #{index:06x}; }}\n" * 40
        for name, text in files.items():
            path = self.repo / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        subprocess.run(["chown", "-R", f"{DEPLOY_USER}:{DEPLOY_USER}", str(self.repo)], check=True)
        self.commit()

    def commit(self) -> str:
        """A new commit with a new ``VERSION``; returns that version's text."""
        self.version += 1
        text = f"bench-{self.version}-{time.time_ns()}\n"
        path = self.repo / "VERSION"
        path.write_text(text)
        shutil.chown(path, DEPLOY_USER, DEPLOY_USER)
        as_deploy(["git", "-C", str(self.repo), "add", "-A"])
        as_deploy(["git", "-C", str(self.repo), "commit", "-q", "-m", f"version {self.version}"])
        return text


def write_ssh_config(fleet: Fleet, path: Path, endpoints: dict[str, tuple[str, int]], kex: str | None = None) -> None:
    """An ssh config like the fleet's, each host reached at ``endpoints[name]`` (the proxy, with RTT).

    ``kex`` pins the key exchange (``KexAlgorithms``) for the floor and fap alike.
    """
    blocks = []
    for name in fleet.names:
        address, port = endpoints[name]
        blocks.append("\n".join([
            f"Host {name}",
            f"  HostName {address}",
            f"  Port {port}",
            f"  User {DEPLOY_USER}",
            f"  IdentityFile {fleet.key}",
            "  IdentitiesOnly yes",
            f"  UserKnownHostsFile {fleet.dir / 'known_hosts'}",
            "  StrictHostKeyChecking yes",
            "  HostKeyAlias fap-fleet",
            "  LogLevel ERROR",
            *([f"  KexAlgorithms {kex}"] if kex else []),
        ]))
    path.write_text("\n\n".join(blocks) + "\n")


def prepare_hosts(fleet: Fleet) -> None:
    """The linked file, created beforehand in ``shared/`` of both apps on every host."""
    for name in fleet.names:
        for app in (FAP_APP, CAP_APP, FLOOR_APP):
            target = fleet.hosts[name].path(WWW / app / "shared" / LINKED_FILE)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("[app]\nsecret_key = bench\n")
            subprocess.run(["chown", "-R", f"{DEPLOY_USER}:{DEPLOY_USER}", str(fleet.hosts[name].path(WWW / app))],
                           check=True)


def live_release(fleet: Fleet, name: str, app: str) -> Path:
    """This machine's path of the release ``current`` points to on host ``name``.

    Resolved by hand: an absolute link target (Capistrano's) names a path in
    the host's own view, which :meth:`FleetHost.path` maps to ours.
    """
    link = WWW / app / "current"
    target = os.readlink(fleet.hosts[name].path(link))
    return fleet.hosts[name].path(target if os.path.isabs(target) else os.path.normpath(link.parent / target))


def check_deployed(fleet: Fleet, names: list[str], app: str, version: str, tool: str) -> None:
    """Refuse a run whose deploy did not put ``version`` live on every host, its file linked."""
    for name in names:
        try:
            release = live_release(fleet, name, app)
            text = (release / "VERSION").read_text()
        except (OSError, ValueError) as error:
            raise SystemExit(f"bench: {tool}: {name}: no current release with a VERSION ({error})") from None
        if text != version:
            raise SystemExit(f"bench: {tool}: {name}: current VERSION is {text.strip()!r}, expected {version.strip()!r}")
        if not (release / LINKED_FILE).is_symlink():
            raise SystemExit(f"bench: {tool}: {name}: {LINKED_FILE} is not linked into the release")


# ---------------------------------------------------------------------------
# fap
# ---------------------------------------------------------------------------


def fap_environment(work: Path) -> dict[str, str]:
    """fap's environment: bytecode cached (in ``work``), as a normal install has it compiled.

    Without it, a ``PYTHONDONTWRITEBYTECODE`` environment with an editable
    install recompiles every fapistrano module at every start.
    """
    return {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(work / "pycache"), "COLUMNS": "200", "NO_COLOR": "1"}


def fap_command() -> list[str]:
    """The ``fap`` console script of this Python (not a version manager's shim, which adds its own start-up)."""
    beside = Path(sys.executable).with_name("fap")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("fap")
    return [found] if found else [sys.executable, "-m", "fapistrano"]


def write_fap_project(directory: Path, ssh_config: Path, repo: Path, names: list[str], persist: str | int = 0) -> Path:
    """fap's deploy.yml; ``persist`` is its ``ssh_persist``: 0 here, so that every run pays its handshakes as the floor does
    (``persist_bench.py`` measures the runs that reuse them)."""
    from fapistrano.testing import _yaml_dump

    directory.mkdir(parents=True, exist_ok=True)
    data = {
        "app_name": FAP_APP,
        "ssh_config": str(ssh_config),
        "keep_releases": 5,
        "linked_files": [LINKED_FILE],
        "plugins": ["fapistrano.git"],
        "repo": str(repo),
        "branch": "main",
        "stage_role_configs": {STAGE: {"web": {"hosts": list(names)}}},
        "ssh_persist": persist,
    }
    path = directory / "deploy.yml"
    path.write_text(_yaml_dump(data))
    return path


def fap_deploy(fap: list[str], project: Path, names: list[str], env: dict[str, str]) -> Sample:
    events_path = project / "events.jsonl"
    events_path.unlink(missing_ok=True)
    argv = [*fap, "deploy", "-s", STAGE, "-q", "--log-json", str(events_path)]
    code, seconds, usage, epoch = timed(argv, project, project / "fap.out", env=env)
    if code != 0:
        output = (project / "fap.out").read_text(errors="replace")
        raise SystemExit(f"bench: fap deploy exited {code}:\n{output[-3000:]}")
    commands: Counter[str] = Counter()
    trips: dict[str, int] = {}
    # Where the time went: start-up (process start to fap's first event), connecting and
    # locking (to the first phase), each phase (fap's own phase_done durations), and the
    # end (last phase to exit: unlock, disconnect, summary).
    phases: dict[str, float] = {}
    first = first_phase = last_phase = None
    for line in events_path.read_text().splitlines():
        event = json.loads(line)
        stamp = event.get("time")
        if first is None and stamp is not None:
            first = stamp
        if event.get("kind") == "summary" and "round_trips" in event:
            trips[event["host"]] = event["round_trips"]
        if event.get("kind") == "command" and event.get("host"):
            commands[event["host"]] += 1
        elif event.get("kind") == "phase" and first_phase is None:
            first_phase = stamp
        elif event.get("kind") == "phase_done":
            phases[event["phase"]] = event.get("duration", 0.0)
            last_phase = stamp
    if first is not None and first_phase is not None and last_phase is not None:
        phases = {"(start-up)": first - epoch, "(connect+probe)": first_phase - first, **phases,
                  "(unlock+close+exit)": epoch + seconds - last_phase}
    missing = [n for n in names if commands[n] == 0]
    if missing:
        raise SystemExit(f"bench: fap's event log shows no command for {', '.join(missing[:5])}")
    return Sample(
        seconds=seconds,
        commands_per_host=statistics.median(commands[n] for n in names),
        round_trips_per_host=statistics.median(trips[n] for n in names) if trips else None,
        peak_rss_mb=usage.ru_maxrss / 1024,
        phases=phases,
    )


# ---------------------------------------------------------------------------
# The deploy floor
# ---------------------------------------------------------------------------

#: The whole release as one script (Mina's shape): what any git deploy must make each host do.
#: The same git commands as fap's (one shallow fetch of the branch into a bare mirror, ``git
#: archive`` into the release), REVISION, the linked file, ``current`` switched with a temporary
#: link and ``mv -T``, the newest 5 releases kept. No lock, no probe, no phases: nothing to wait for.
DEPLOY_FLOOR_SCRIPT = """\
set -e
app={app}; repo={repo}; release={release}; keep=5
mirror="$app/repo"; new="$app/releases/$release"
[ -d "$mirror" ] || {{ mkdir -p "$app/releases" && git -c init.defaultBranch=master init -q --bare "$mirror"; }}
git --git-dir="$mirror" fetch -q --no-tags --depth 1 -- "$repo" "+main:refs/fap/deploy"
sha=$(git --git-dir="$mirror" rev-parse --verify -q "refs/fap/deploy^{{commit}}")
mkdir "$new"
git --git-dir="$mirror" archive --format=tar "$sha" | tar -x -f - -C "$new"
printf '%s\\n' "$sha" > "$new/REVISION"
mkdir -p "$new/config" && ln -s "$app/shared/{linked}" "$new/{linked}"
ln -s "$new" "$app/current.tmp" && mv -fT "$app/current.tmp" "$app/current"
cd "$app/releases" && ls -1 | sort | head -n -"$keep" | xargs -r rm -rf --
"""


def deploy_floor_argv(ssh_config: Path, name: str, control_dir: Path) -> list[str]:
    """``ssh`` to ``name`` with exactly the options fap's connection uses (:meth:`fapistrano.remote.Host.start`)."""
    from fapistrano.remote import SshSettings

    settings = SshSettings(host=name, user=None, port=None, ssh_config=str(ssh_config), ssh_options=(), connect_timeout=10)
    control = str(control_dir / "%C")
    return ["ssh", "-T", *settings.base_options(control), "-o", "ControlMaster=yes", "-o", "ControlPersist=no", name, "exec sh"]


def deploy_floor(names: list[str], ssh_config: Path, repo: Path, release: str, work: Path) -> Sample:
    """Seconds for every host, in parallel, to run :data:`DEPLOY_FLOOR_SCRIPT` over one fresh ssh connection."""
    script = DEPLOY_FLOOR_SCRIPT.format(app=shlex.quote(str(WWW / FLOOR_APP)), repo=shlex.quote(str(repo)),
                                        release=shlex.quote(release), linked=LINKED_FILE)
    control_dir = Path(tempfile.mkdtemp(prefix="fl-", dir="/tmp"))
    try:
        started = time.perf_counter()
        processes = [subprocess.Popen(deploy_floor_argv(ssh_config, name, control_dir), stdin=subprocess.PIPE,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for name in names]
        failed = []
        for name, process in zip(names, processes, strict=True):
            _out, err = process.communicate(script.encode(), timeout=DEPLOY_TIMEOUT)
            if process.returncode != 0:
                failed.append(f"{name}: exit {process.returncode}: {err.decode(errors='replace').strip()[-300:]}")
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(control_dir, ignore_errors=True)
    if failed:
        raise SystemExit("bench: the deploy floor failed: " + "; ".join(failed[:3]))
    return Sample(seconds, commands_per_host=1, round_trips_per_host=1)


# ---------------------------------------------------------------------------
# Capistrano
# ---------------------------------------------------------------------------

CAPFILE = """\
require "capistrano/setup"
require "capistrano/deploy"
require "capistrano/scm/git"
install_plugin Capistrano::SCM::Git
"""


def ruby(value: Any) -> str:
    """A Ruby literal for a string or int (JSON strings are valid Ruby double-quoted strings, minus ``#{``)."""
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value)).replace("#", "\\#")


def write_cap_project(directory: Path, fleet: Fleet, repo: Path, names: list[str],
                      endpoints: dict[str, tuple[str, int]], kex: str | None = None) -> None:
    """Capfile, config/deploy.rb and config/deploy/bench.rb for the same fleet and repository.

    net-ssh reads no ``-F`` file, so the fleet's ssh settings are given as
    ``ssh_options``: the key, the user, and a known_hosts file listing the
    fleet's host key under every ``[address]:port`` it is reached at.
    """
    (directory / "config" / "deploy").mkdir(parents=True, exist_ok=True)
    (directory / "Capfile").write_text(CAPFILE)
    host_key = (fleet.dir / "known_hosts").read_text().split()[1:3]
    known_hosts = directory / "known_hosts"
    known_hosts.write_text("".join(f"[{address}]:{port} {host_key[0]} {host_key[1]}\n"
                                   for address, port in (endpoints[n] for n in names)))
    (directory / "config" / "deploy.rb").write_text("\n".join([
        f"set :application, {ruby(CAP_APP)}",
        f"set :repo_url, {ruby('file://' + str(repo))}",
        "set :branch, \"main\"",
        f"set :deploy_to, {ruby(str(WWW / CAP_APP))}",
        f"set :tmp_dir, {ruby(str(WWW / (CAP_APP + '-tmp')))}",
        "set :keep_releases, 5",
        f"append :linked_files, {ruby(LINKED_FILE)}",
        "set :pty, false",
        "set :ssh_options, {",
        f"  user: {ruby(DEPLOY_USER)},",
        f"  keys: [{ruby(str(fleet.key))}],",
        "  keys_only: true,",
        "  auth_methods: %w[publickey],",
        f"  user_known_hosts_file: {ruby(str(known_hosts))},",
        "  global_known_hosts_file: \"/dev/null\",",
        "  verify_host_key: :always,",
        *([f"  kex: [{ruby(kex)}],"] if kex else []),
        "  config: false,",
        "  timeout: 20,",
        "}",
        "",
    ]))
    (directory / "config" / "deploy" / f"{STAGE}.rb").write_text("".join(
        f"server {ruby(address)}, port: {port}, user: {ruby(DEPLOY_USER)}, roles: %w[app web]\n"
        for address, port in (endpoints[n] for n in names)
    ))


def cap_deploy(project: Path, names: list[str], endpoints: dict[str, tuple[str, int]]) -> Sample:
    log = project / "log" / "capistrano.log"
    log.unlink(missing_ok=True)
    code, seconds, usage, _epoch = timed(["cap", STAGE, "deploy"], project, project / "cap.out")
    if code != 0:
        output = (project / "cap.out").read_text(errors="replace")
        raise SystemExit(f"bench: cap deploy exited {code}:\n{output[-3000:]}")
    # SSHKit's debug log (airbrussh writes it to log/capistrano.log): "Running <command> as deploy@<address>" per command.
    commands: Counter[str] = Counter()
    for match in re.finditer(r"Running .*? (?:as|on) \S*?@?([0-9.]+)\b", log.read_text(errors="replace")):
        commands[match.group(1)] += 1
    addresses = [endpoints[n][0] for n in names]
    counted = [commands[a] for a in addresses]
    return Sample(
        seconds=seconds,
        commands_per_host=statistics.median(counted) if any(counted) else None,
        peak_rss_mb=usage.ru_maxrss / 1024,
    )


def failure_line(failure: SystemExit) -> str:
    """The line of a failed Capistrano deploy's output that says what failed."""
    lines = [line.strip() for line in str(failure).splitlines() if "Exception while executing" in line]
    return lines[-1] if lines else str(failure).splitlines()[0]


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def bench_size(fleet: Fleet, app: App, work: Path, hosts: int, args: argparse.Namespace,
               endpoints: dict[str, tuple[str, int]], ssh_config: Path) -> list[Row]:
    names = fleet.names[:hosts]
    fap = fap_command()
    fap_project = work / f"fap-{hosts}"
    write_fap_project(fap_project, ssh_config, app.repo, names)
    cap_project = work / f"cap-{hosts}"
    if args.capistrano:
        write_cap_project(cap_project, fleet, app.repo, names, endpoints, args.kex)

    # One deploy each first, not timed: it clones the mirror, as only a first deploy would.
    version = app.commit()
    env = fap_environment(work)
    fap_deploy(fap, fap_project, names, env)
    check_deployed(fleet, names, FAP_APP, version, "fap")
    floor_releases = iter(range(1, 1_000_000))

    def floor_release() -> str:
        return f"{time.strftime('%y%m%d-%H%M%S')}-{hosts:03d}-{next(floor_releases):03d}"

    deploy_floor(names, ssh_config, app.repo, floor_release(), work)
    check_deployed(fleet, names, FLOOR_APP, version, "deploy floor")
    if args.capistrano:
        cap_deploy(cap_project, names, endpoints)
        check_deployed(fleet, names, CAP_APP, version, "cap")

    meter = CpuMeter(fleet)
    rows = {"floor": Row("ssh floor", hosts, args.rtt_ms, []), "deploy floor": Row("deploy floor", hosts, args.rtt_ms, []),
            "fap": Row("fap", hosts, args.rtt_ms, [])}
    if args.capistrano:
        rows["cap"] = Row("capistrano", hosts, args.rtt_ms, [])
    retries: list[str] = []
    for run in range(args.runs):
        floor = measured(meter, lambda: Sample(parallel_ssh_floor(names, ssh_config)))
        rows["floor"].samples.append(floor)
        version = app.commit()
        release = floor_release()
        least = measured(meter, lambda release=release: deploy_floor(names, ssh_config, app.repo, release, work))
        check_deployed(fleet, names, FLOOR_APP, version, "deploy floor")
        rows["deploy floor"].samples.append(least)
        version = app.commit()
        sample = measured(meter, lambda: fap_deploy(fap, fap_project, names, env))
        check_deployed(fleet, names, FAP_APP, version, "fap")
        rows["fap"].samples.append(sample)
        line = (f"  [{hosts} hosts, run {run + 1}/{args.runs}] floor {floor.seconds:.2f}s  deploy floor {least.seconds:.2f}s"
                f"  fap {sample.seconds:.2f}s")
        if args.capistrano:
            try:
                cap = measured(meter, lambda: cap_deploy(cap_project, names, endpoints))
            except SystemExit as failure:  # measured again from the start: the failed run counts nowhere
                retries.append(failure_line(failure))
                cap = measured(meter, lambda: cap_deploy(cap_project, names, endpoints))
            check_deployed(fleet, names, CAP_APP, version, "cap")
            rows["cap"].samples.append(cap)
            line += f"  cap {cap.seconds:.2f}s"
        if not args.json:
            print(line, file=sys.stderr, flush=True)
    if retries:
        print(f"bench: {hosts} hosts: {len(retries)} Capistrano deploy(s) failed and ran again: "
              + "; ".join(retries), file=sys.stderr)
    return list(rows.values())


def table(rows: list[Row]) -> str:
    by_size = {(r.hosts, r.rtt_ms, r.tool): r for r in rows}
    header = ["tool", "N", "RTT ms", "median s", "x floor", "x deploy floor", "cap / tool", "commands/host", "round trips/host", "peak RSS MB",
              "CPU s here", "CPU s hosts", "CPU s others"]
    lines = [header]
    for row in rows:
        floor = by_size.get((row.hosts, row.rtt_ms, "ssh floor"))
        least = by_size.get((row.hosts, row.rtt_ms, "deploy floor"))
        cap = by_size.get((row.hosts, row.rtt_ms, "capistrano"))
        commands = row.median_of("commands_per_host")
        trips = row.median_of("round_trips_per_host")
        rss = row.max_of("peak_rss_mb")
        client, server, other = row.median_of("client_cpu"), row.median_of("server_cpu"), row.median_of("other_cpu")
        lines.append([
            row.tool, str(row.hosts), f"{row.rtt_ms:g}", f"{row.median:.2f}",
            f"{row.median / floor.median:.2f}" if floor else "",
            f"{row.median / least.median:.2f}" if least and row.tool != "ssh floor" else "",
            f"{cap.median / row.median:.2f}" if cap and "floor" not in row.tool else "",
            f"{commands:g}" if commands is not None else ("1" if "floor" in row.tool else ""),
            f"{trips:g}" if trips is not None else ("1" if "floor" in row.tool else ""),
            f"{rss:.0f}" if rss is not None else "",
            f"{client:.2f}" if client is not None else "",
            f"{server:.2f}" if server is not None else "",
            f"{other:.2f}" if other is not None else "",
        ])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(out)


def targets(rows: list[Row], startup: dict[str, float]) -> list[tuple[str, bool, str]]:
    """The performance targets that this run's figures can judge (each only at the size and RTT it names).

    The targets: >= 2.5x faster than Capistrano at 20 hosts (no added RTT) and at 5 hosts with 20 ms RTT;
    within 1.5x of the connection floor at 20 hosts; within 1.2x of the deploy floor at 20 hosts and 1.3x
    at 5 hosts with 20 ms and with 150 ms RTT; at most 4 round trips per host; peak memory < 200 MB at 100 hosts; time growing no
    worse than linearly with the number of hosts; ``fap --help`` and ``fap --version`` under 0.3 s.
    """
    found = {(r.hosts, r.rtt_ms, r.tool): r for r in rows}
    checks: list[tuple[str, bool, str]] = []
    for (hosts, rtt, tool), row in found.items():
        if tool != "fap":
            continue
        cap = found.get((hosts, rtt, "capistrano"))
        floor = found.get((hosts, rtt, "ssh floor"))
        where = f"{hosts} hosts, {rtt:g} ms RTT"
        if cap and (hosts, rtt) in ((20, 0), (5, 20)):
            ratio = cap.median / row.median
            checks.append((f"{where}: >= 2.5x faster than Capistrano", ratio >= 2.5,
                           f"{ratio:.2f}x{paired(cap, row)}"))
        if floor and (hosts, rtt) == (20, 0):
            ratio = row.median / floor.median
            checks.append((f"{where}: within 1.5x of the floor", ratio <= 1.5, f"{ratio:.2f}x{paired(row, floor)}"))
        least = found.get((hosts, rtt, "deploy floor"))
        limit = {(20, 0): 1.2, (5, 20): 1.3, (5, 150): 1.3}.get((hosts, rtt))
        if least and limit:
            ratio = row.median / least.median
            checks.append((f"{where}: within {limit:g}x of the deploy floor", ratio <= limit,
                           f"{ratio:.2f}x{paired(row, least)}"))
        trips = row.max_of("round_trips_per_host")
        if trips is not None:
            checks.append((f"{where}: at most 4 round trips per host", trips <= 4, f"{trips:g}"))
        rss = row.max_of("peak_rss_mb")
        if rss is not None and hosts >= 100:
            checks.append((f"{where}: fap peak memory < 200 MB", rss < 200, f"{rss:.0f} MB"))
    sizes = sorted({h for (h, r, tool) in found if tool == "fap" and r == 0})
    if len(sizes) > 1 and sizes[-1] >= 100:
        small, large = sizes[0], sizes[-1]
        growth = found[(large, 0, "fap")].median / found[(small, 0, "fap")].median
        checks.append((f"{small} -> {large} hosts: time grows no worse than linearly (x{large / small:g})",
                       growth <= large / small, f"x{growth:.2f}"))
    for flag, seconds in startup.items():
        checks.append((f"fap {flag} < 0.3 s", seconds < 0.3, f"{seconds:.3f} s"))
    return checks


def paired(numerator: Row, denominator: Row) -> str:
    """Each run's own ratio (the tools ran back to back within a run): median and range, to show the spread.

    The targets are judged on the ratio of the medians.
    """
    ratios = [a.seconds / b.seconds for a, b in zip(numerator.samples, denominator.samples, strict=False)]
    if len(ratios) < 2:
        return ""
    return f" (run by run: median {statistics.median(ratios):.2f}x, {min(ratios):.2f}-{max(ratios):.2f}x)"


def load_average() -> str:
    """The 1-minute load average: other work on the machine skews wall times (not CPU seconds)."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores{', ' + model if model else ''}; Python {sys.version.split()[0]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, action="append", metavar="N",
                        help="Fleet size; repeat to measure several sizes on one fleet (default: 20).")
    parser.add_argument("--runs", type=int, default=5, metavar="K", help="Timed deploys per tool and size (default: 5).")
    parser.add_argument("--rtt-ms", type=float, default=0.0, metavar="M",
                        help="Emulated round-trip time: a TCP proxy in front of each sshd delays each chunk M/2 ms each way.")
    parser.add_argument("--kex", metavar="ALGORITHM",
                        help="Pin the SSH key exchange for the floor, fap and Capistrano alike (e.g. ecdh-sha2-nistp521,"
                             " what Capistrano's net-ssh negotiates here; default: each client's own choice).")
    parser.add_argument("--disk", action="store_true",
                        help="Keep the hosts' files on this machine's disk instead of in RAM (/dev/shm); see above.")
    parser.add_argument("--capistrano", action="store_true", help="Also deploy with Capistrano (Debian's capistrano package).")
    parser.add_argument("--startup-runs", type=int, default=7, metavar="K",
                        help="Runs of fap --help and fap --version to take the median of (default: 7; 0 skips).")
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON instead of a table.")
    args = parser.parse_args(argv)
    sizes = sorted(set(args.hosts or [20]))
    if min(sizes) < 1 or args.runs < 1:
        parser.error("--hosts and --runs must be at least 1")
    from importlib.metadata import entry_points

    if "fapistrano.git" not in {entry.name for entry in entry_points(group="fapistrano")}:
        parser.error("the fapistrano.git plugin is not installed (pip install ./fapistrano_plugins/fapistrano-git)")
    if args.capistrano and not shutil.which("cap"):
        parser.error("--capistrano needs Capistrano's cap command (apt-get install -y capistrano)")

    compile_fap()
    in_ram = not args.disk
    if in_ram:
        if not os.path.isdir("/dev/shm"):
            parser.error("no /dev/shm on this machine: run with --disk")
        tempfile.tempdir = "/dev/shm"  # the fleet's and the app's directories: tempfile.mkdtemp
    width = len(str(max(sizes)))
    fleet = Fleet([f"web{index:0{width}d}" for index in range(1, max(sizes) + 1)], app_name=FAP_APP)
    work = Path(tempfile.mkdtemp(prefix="fap-bench-"))
    work.chmod(0o755)
    proxy: DelayProxy | None = None
    load_before = load_average()
    try:
        startup = startup_times(fap_command(), args.startup_runs, fap_environment(work)) if args.startup_runs > 0 else {}
        try:
            fleet.start()
        except FleetUnavailable as reason:
            print(f"bench: {reason}", file=sys.stderr)
            return 2
        endpoints = {name: (fleet.hosts[name].address, fleet.port) for name in fleet.names}
        if args.rtt_ms > 0:
            proxy = DelayProxy([(fleet.hosts[n].address, fleet.hosts[n].address, fleet.port) for n in fleet.names],
                               one_way=args.rtt_ms / 2000).start()
            endpoints = {name: (fleet.hosts[name].address, proxy.ports[fleet.hosts[name].address]) for name in fleet.names}
        ssh_config = work / "ssh_config"
        write_ssh_config(fleet, ssh_config, endpoints, args.kex)
        app = App(work)
        app.create()
        prepare_hosts(fleet)
        rows: list[Row] = []
        for hosts in sizes:
            rows += bench_size(fleet, app, work, hosts, args, endpoints, ssh_config)
    finally:
        if proxy is not None:
            proxy.stop()
        fleet.stop()
        shutil.rmtree(work, ignore_errors=True)

    checks = targets(rows, startup)
    load = f"{load_before} before, {load_average()} after"
    if args.json:
        print(json.dumps({
            "machine": machine(),
            "load_average": load,
            "runs": args.runs,
            "kex": args.kex,
            "hosts_files": "ram" if in_ram else "disk",
            "rows": [{"tool": r.tool, "hosts": r.hosts, "rtt_ms": r.rtt_ms, "median_s": r.median,
                      "commands_per_host": r.median_of("commands_per_host"),
                      "round_trips_per_host": r.median_of("round_trips_per_host"), "peak_rss_mb": r.max_of("peak_rss_mb"),
                      "client_cpu_s": r.median_of("client_cpu"), "server_cpu_s": r.median_of("server_cpu"),
                      "other_cpu_s": r.median_of("other_cpu"),
                      "phases_s": r.phase_medians(),
                      "samples": [asdict(s) for s in r.samples]} for r in rows],
            "startup_s": startup,
            "targets": [{"target": t, "met": ok, "measured": m} for t, ok, m in checks],
        }, indent=2))
        return 0
    print(f"machine: {machine()}; {args.runs} timed runs per tool (medians); fleet on loopback sshd"
          + (f"; {args.rtt_ms:g} ms RTT through a delay proxy" if args.rtt_ms else "")
          + (f"; key exchange {args.kex} for every tool" if args.kex else "; each client's default key exchange")
          + ("; hosts' files in RAM (/dev/shm)" if in_ram else "; hosts' files on this machine's disk")
          + f"; load average {load}")
    print()
    print(table(rows))
    for row in rows:
        if row.tool == "fap":
            phases = row.phase_medians()
            print(f"\nfap, {row.hosts} hosts, where the time goes (median s): "
                  + ", ".join(f"{name} {seconds:.2f}" for name, seconds in phases.items() if seconds >= 0.005))
    if startup:
        print("\nstart-up: " + ", ".join(f"fap {flag} {seconds:.3f} s" for flag, seconds in startup.items()))
    print("\nperformance targets (vs Capistrano, vs the floors, memory, growth, start-up):")
    for text, ok, measured in checks:
        print(f"  [{'met' if ok else 'MISSED'}] {text}: {measured}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
