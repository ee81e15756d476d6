#!/usr/bin/env python3
"""Heavy output: what a step printing millions of lines costs fap, in time and memory.

Deploys with one ``run:`` step that prints ``--lines`` lines (``yes | head -n
N``), once with ``connection: local`` (and once more with the same step as a
``local:`` step, run on this machine) and, with ``--ssh`` (root: it starts
the test fleet), to one SSH host. Beside each deploy it times the same
command alone (its output thrown away) and a deploy without the step, so
that what is printed is fap's own cost of the output: the deploy's wall time
minus the step alone and minus the empty deploy. Peak memory is fap's
maximum resident set (``ru_maxrss`` of its process). The same with
``--log-json`` and, with ``-v``, with ``fap -v`` (every line printed).

Target: 5 million lines cost < 10 s over the step itself
and < 100 MB.

    python bench/output_bench.py [--lines 5000000] [--ssh] [-v]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fapistrano.testing import Fleet, FleetUnavailable, LocalTarget, _yaml_dump


def fap(args: list[str], cwd: Path) -> tuple[float, float, int, str]:
    """Run ``fap ARGS`` in ``cwd``: (wall seconds, peak RSS in MB, exit code, last line of stderr)."""
    command = [sys.executable, "-c", "import resource, subprocess, sys;"
               " code = subprocess.call([sys.executable, '-m', 'fapistrano', *sys.argv[1:]], stdout=subprocess.DEVNULL);"
               " print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)", *args]
    started = time.monotonic()
    done = subprocess.run(command, cwd=cwd, stderr=subprocess.PIPE, text=True, check=False)
    seconds = time.monotonic() - started
    lines = done.stderr.strip().splitlines()
    peak = int(lines[-1]) / 1024 if lines and lines[-1].isdigit() else float("nan")
    return seconds, peak, done.returncode, (lines[-2] if len(lines) > 1 else "")


def alone(command: str, ssh: list[str] | None = None) -> float:
    started = time.monotonic()
    subprocess.run([*ssh, command] if ssh else ["sh", "-c", command], stdout=subprocess.DEVNULL, check=True)
    return time.monotonic() - started


def measure(label: str, deployfile: dict, directory: Path, lines: int, ssh: list[str] | None, verbose: bool,
            kind: str = "run") -> None:
    step = f"yes | head -n {lines}"
    path = directory / "deploy.yml"
    path.write_text(_yaml_dump({**deployfile, "keep_releases": 2}))
    empty, _peak, code, said = fap(["deploy", "-s", "test"], directory)
    assert code == 0, said
    step_alone = alone(step, ssh)
    path.write_text(_yaml_dump({**deployfile, "keep_releases": 2, "hooks": {"updated": [{kind: step}]}}))
    print(f"{label}, a {kind}: step: {lines} lines; the step alone {step_alone:.2f} s, a deploy without it {empty:.2f} s")
    for extra in ([], ["--log-json", str(directory / "events.jsonl")], *([["-v"]] if verbose else [])):
        seconds, peak, code, said = fap(["deploy", "-s", "test", *extra], directory)
        assert code == 0, said
        cost = seconds - step_alone - empty
        print(f"  fap deploy {' '.join(extra) or '(plain)':<30} {seconds:6.2f} s, output cost {cost:6.2f} s,"
              f" peak {peak:6.1f} MB  {'ok' if cost < 10 and peak < 100 else 'OVER TARGET'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=5_000_000)
    parser.add_argument("--ssh", action="store_true", help="also deploy to one host of the SSH test fleet (root)")
    parser.add_argument("-v", "--verbose", action="store_true", help="also with fap -v (every line printed)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fap-output-bench-"))
    local = LocalTarget(work / "local")
    local.root.mkdir()
    measure("connection: local", local.deployfile(), local.root, args.lines, None, args.verbose)
    # A local: step runs on this machine whatever the connection: once per run.
    measure("connection: local", local.deployfile(), local.root, args.lines, None, args.verbose, kind="local")
    if not args.ssh:
        return
    fleet = Fleet(["web1"])
    try:
        fleet.start()
    except FleetUnavailable as reason:
        print(f"ssh: skipped ({reason})")
        return
    try:
        directory = work / "ssh"
        directory.mkdir()
        directory.chmod(0o755)
        ssh = ["ssh", "-F", str(fleet.ssh_config), "web1"]
        measure("ssh, 1 host", fleet.deployfile(), directory, args.lines, ssh, args.verbose)
    finally:
        fleet.stop()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "")
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
