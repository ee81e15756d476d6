"""docs/guide.rst, run as written: two servers, web on both, worker and cron on the second.

The fleet plays app1 and app2 (each its own /home/deploy/www and
/home/deploy/supervisor; they share this machine's loopback, so each web
web host gets its own port in ``shared/port``, which the example app reads). The test runs the
page's named blocks: the deploy user's supervisord on each server (over
SSH), then ``fap`` in a copy of examples/guide/, and checks after each block
what a user would: each program RUNNING in its live release, the web
answering with ``environment``'s value, the migration run once, the
switch-back's exit code, the rollback.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from supervised_fleet import eventually
from test_supervisorctl_docs_real_server import USER_SUPERVISOR, WWW, _machine_ready, _unavailable, named_block

from fapistrano.testing import Fleet, FleetUnavailable

pytestmark = pytest.mark.fleet

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "guide"
HOSTS = ["app1", "app2"]
PORTS = {"app1": 18081, "app2": 18082}
ROLES = {"web": HOSTS, "worker": ["app2"], "cron": ["app2"]}
SUPERVISORCTL = ["supervisorctl", "-c", f"{USER_SUPERVISOR}/supervisord.conf"]


@pytest.fixture
def servers() -> Iterator[Fleet]:
    """Two SSH hosts with supervisor installed and nothing set up for the deploy user."""
    _machine_ready()
    if not shutil.which("curl"):
        _unavailable("curl is not installed")
    fleet = Fleet(HOSTS, mounts={WWW: "www", USER_SUPERVISOR: "deploy-supervisor"}, app_name="shop")
    try:
        try:
            Path(USER_SUPERVISOR).mkdir(parents=True, exist_ok=True)
            fleet.start()
        except FleetUnavailable as reason:
            _unavailable(str(reason))
        yield fleet
    finally:
        fleet.stop()  # also ends each host's supervisord: it runs in the host's namespace


def on_server(fleet: Fleet, host: str, script: str) -> subprocess.CompletedProcess[str]:
    """``script`` in a shell of the deploy user on ``host``, over SSH, as the page's reader runs it."""
    return subprocess.run(["ssh", "-F", str(fleet.ssh_config), host, "bash", "-eus"], input=script,
                          capture_output=True, text=True, timeout=120, check=False)


def run_block(project: Path, name: str) -> subprocess.CompletedProcess[str]:
    """The page's named sh block, run by bash in the project, with this interpreter's fap on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-euc", named_block("guide.rst", name)], cwd=project, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{name}: {done.stdout}{done.stderr}"
    return done


def use_fleet(project: Path, fleet: Fleet) -> None:
    """Point the example's deploy.yml at the fleet: its hosts and its ssh config; a port per web host in shared/port."""
    yaml = YAML()
    data = yaml.load(project / "deploy.yml")
    data["ssh_config"] = str(fleet.ssh_config)
    production = data["stage_role_configs"]["production"]
    assert {role: len(block["hosts"]) for role, block in production.items()} == {"web": 2, "worker": 1, "cron": 1}
    for role, hosts in ROLES.items():
        production[role]["hosts"] = [f"deploy@{host}" for host in hosts]
    yaml.dump(data, project / "deploy.yml")
    for host in HOSTS:
        done = on_server(fleet, host, f"mkdir -p {WWW}/shop-web/shared && echo {PORTS[host]} > {WWW}/shop-web/shared/port")
        assert done.returncode == 0, done.stderr


def releases(fleet: Fleet) -> dict[tuple[str, str], str | None]:
    """``{(host, role): live release}``."""
    return {(host, role): fleet.current(host, f"shop-{role}") for role, hosts in ROLES.items() for host in hosts}


def web_says(host: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{PORTS[host]}/", timeout=10) as response:
        return response.read().decode().strip()


def assert_serving(fleet: Fleet, greeting: str) -> dict[tuple[str, str], str | None]:
    """Every program RUNNING from its role's live release, with ``GREETING`` from deploy.yml's environment."""
    live = releases(fleet)
    assert all(live.values()), live
    for host in HOSTS:
        status = on_server(fleet, host, " ".join(SUPERVISORCTL) + " status || true").stdout
        for role, hosts in ROLES.items():
            if host in hosts:
                assert re.search(rf"^shop-{role} +RUNNING", status, re.MULTILINE), f"{host}: {status}"
        expected = f"{greeting} from {live[(host, 'web')]}"
        eventually(lambda host=host, expected=expected: _equal(web_says(host), expected))
    for role in ("worker", "cron"):
        log = fleet.app_dir("app2", f"shop-{role}") / "shared" / "log" / f"{role}.log"
        release = f"{WWW}/shop-{role}/releases/{live[('app2', role)]}"
        eventually(lambda log=log, role=role, release=release: _equal(
            log.read_text().splitlines()[-1], f"{role} production {release} {greeting}"))
    return live


def _equal(actual: object, expected: object) -> None:
    assert actual == expected


def migrations(fleet: Fleet) -> list[str]:
    """Every migration run, on any host and role (each appends the release it ran in)."""
    lines = []
    for role, hosts in ROLES.items():
        for host in hosts:
            path = fleet.app_dir(host, f"shop-{role}") / "shared" / "db" / "migrations"
            lines += path.read_text().split() if path.exists() else []
    return lines


def test_the_guide_from_empty_servers_to_web_worker_and_cron(servers: Fleet, tmp_path: Path) -> None:
    for host in HOSTS:
        done = on_server(servers, host, named_block("guide.rst", "guide-supervisor-setup"))
        assert done.returncode == 0, f"{host}: {done.stdout}{done.stderr}"
    project = tmp_path / "shop"
    shutil.copytree(EXAMPLE, project)
    use_fleet(project, servers)

    deployed = run_block(project, "guide-deploy")

    assert "ERROR" not in deployed.stdout + deployed.stderr
    first = assert_serving(servers, "hello")
    assert len(migrations(servers)) == 1
    for host in HOSTS:
        assert (servers.current_dir(host, "shop-web") / "static" / "app.css").is_file()

    run_block(project, "guide-change")

    second = assert_serving(servers, "hello again")
    assert all(second[key] != first[key] for key in first)
    assert len(migrations(servers)) == 2

    broken = run_block(project, "guide-broken")

    assert "fap deploy exited 4" in broken.stdout, broken.stdout + broken.stderr
    assert broken.stdout.strip().splitlines()[-1] == "shop deploy failed in production"
    assert assert_serving(servers, "hello again") == second

    run_block(project, "guide-rollback")

    assert assert_serving(servers, "hello") == first
