"""examples/processes/ as written, deployed to a fleet whose hosts each run a real supervisord."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from supervised_fleet import eventually

pytestmark = pytest.mark.fleet

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "processes"
PROCESSES = {"processes:processes-web": "web", "processes:processes-worker": "worker"}


def use_fleet(project: Path, supervised) -> None:
    """Point the example's deploy.yml at the test fleet; change nothing else."""
    yaml = YAML()
    data = yaml.load(project / "deploy.yml")
    data["ssh_config"] = str(supervised.fleet.ssh_config)
    data["stage_role_configs"]["production"]["web"]["hosts"] = list(supervised.names)
    yaml.dump(data, project / "deploy.yml")


def running(supervised, host: str) -> dict[str, int]:
    """Each process's pid, after checking it is RUNNING and says (in its log) it runs the live release."""
    fleet = supervised.fleet
    release = f"/home/deploy/www/processes/releases/{fleet.current(host, 'processes')}"
    pids = {}
    for process, role in PROCESSES.items():
        pid = eventually(lambda process=process: _running_pid(supervised, host, process))
        log = fleet.app_dir(host, "processes") / "shared" / "log" / f"{role}.log"
        expected = f"{role} (pid {pid}) running release {release}"
        eventually(lambda log=log, expected=expected: _assert_last_line(log, expected))
        pids[process] = pid
    return pids


def _running_pid(supervised, host: str, process: str) -> int:
    state, pid = supervised.status(host)[process]
    assert state == "RUNNING", f"{host}: {process} is {state}"
    return pid


def _assert_last_line(path: Path, expected: str) -> None:
    assert path.read_text().splitlines()[-1] == expected


def test_processes_example_runs_and_restarts_every_process_of_the_group(supervised, fap_run, tmp_path):
    project = tmp_path / "processes"
    shutil.copytree(EXAMPLE, project)
    use_fleet(project, supervised)

    deployed = fap_run(["deploy", "-s", "production"], cwd=project)

    assert deployed.exit_code == 0, deployed.output
    before = {}
    for host in supervised.names:
        assert supervised.link(host, "/etc/supervisor/conf.d/processes.conf") == (
            "/home/deploy/www/processes/current/.fap-supervisor.conf")
        before[host] = running(supervised, host)

    restarted = fap_run(["restart", "-s", "production"], cwd=project)

    assert restarted.exit_code == 0, restarted.output
    for host in supervised.names:
        after = running(supervised, host)
        assert all(after[process] != before[host][process] for process in PROCESSES)
