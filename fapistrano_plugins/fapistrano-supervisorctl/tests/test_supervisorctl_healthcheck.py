"""The core's health check over a fleet whose app runs under a real supervisord on every host.

The fleet's hosts share one network namespace: each host's app listens on
that host's own loopback address (written to ``shared/address`` on the host),
and the check asks it with curl, from the host, as a deploy.yml would.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
from pathlib import Path

import pytest
from supervised_fleet import SupervisedFleet, deploy_settings, eventually, ship_plugin

pytestmark = pytest.mark.fleet

APP = "/home/deploy/www/app"
CONF = "configs/supervisor_test_web.conf"

#: The deployed web app: answers /up with 200, or 503 on the host the release's ``fail_on`` names.
APP_PY = f"""\
import http.server, os, sys

shared = "{APP}/shared"
address = open(os.path.join(shared, "address")).read().strip()
name = open(os.path.join(shared, "name")).read().strip()
port = int(open(os.path.join(shared, "port")).read().strip())
failing = open("fail_on").read().split() if os.path.exists("fail_on") else []
with open(os.path.join(shared, "running-app"), "w") as record:
    record.write(f"{{os.getpid()}} {{os.getcwd()}}\\n")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 503 if name in failing else 200
        self.send_response(code)
        self.end_headers()
        self.wfile.write(f"{{code}} from {{name}} in {{os.getcwd()}}\\n".encode())

    def log_message(self, *args):
        pass


http.server.HTTPServer((address, port), Handler).serve_forever()
"""

PROGRAM = f"""\
[program:app]
command=/usr/bin/python3 {APP}/current/app.py
directory={APP}/current
user=deploy
autorestart=true
startsecs=1
startretries=0
stopwaitsecs=5
redirect_stderr=true
stdout_logfile={APP}/shared/app.log
"""

CHECK = f'curl -fsS "http://$(cat {APP}/shared/address):$(cat {APP}/shared/port)/up"'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_release(directory: Path, fail_on: str = "") -> Path:
    if directory.exists():
        shutil.rmtree(directory)
    (directory / "configs").mkdir(parents=True)
    (directory / "app.py").write_text(APP_PY)
    (directory / CONF).write_text(PROGRAM)
    if fail_on:
        (directory / "fail_on").write_text(fail_on)
    return directory


def tell_hosts_who_they_are(supervised: SupervisedFleet, port: int) -> None:
    """Each host's ``shared/`` says its name, its own loopback address and the app's port (before any deploy)."""
    deploy = pwd.getpwnam("deploy")
    for name in supervised.names:
        shared = supervised.fleet.app_dir(name) / "shared"
        for directory in (shared.parent, shared):
            directory.mkdir(exist_ok=True)
            os.chown(directory, deploy.pw_uid, deploy.pw_gid)
        for facts, value in (("name", name), ("address", supervised.fleet.hosts[name].address), ("port", str(port))):
            (shared / facts).write_text(value + "\n")
            os.chown(shared / facts, deploy.pw_uid, deploy.pw_gid)


def runs_release(supervised: SupervisedFleet, host: str) -> tuple[int, str]:
    """``(pid, release directory)`` of the app supervisord runs on ``host``, once RUNNING."""
    state, pid = supervised.status(host)["app"]
    assert state == "RUNNING", f"{host}: app is {state}"
    recorded = supervised.running_record(host)
    assert recorded[0] == pid, f"{host}: the record is of {recorded[0]}, supervisord runs {pid}"
    return recorded


@pytest.fixture
def first(supervised: SupervisedFleet, fap_run, tmp_path: Path) -> dict[str, tuple[int, str]]:
    """A healthy release live and answering on every host; what each host runs."""
    app = write_release(tmp_path / "app")
    ship_plugin(tmp_path)
    supervised.fleet.write_deployfile(tmp_path, deploy_settings(app, healthcheck=CHECK, healthcheck_interval=0.5,
                                                                healthcheck_timeout=8, supervisor_check_status=True))
    tell_hosts_who_they_are(supervised, free_port())
    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert result.output.count("healthy: check passed") == 3, result.output
    return {host: eventually(lambda host=host: runs_release(supervised, host)) for host in supervised.names}


def test_a_check_failing_on_one_host_of_three_brings_every_host_back_to_the_old_code(supervised, fap_run, tmp_path, first):
    old = {host: supervised.fleet.current(host) for host in supervised.names}
    write_release(tmp_path / "app", fail_on="host2")

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 4, result.output
    assert "host2 | healthcheck | failed its health check" in result.output and "error: 503" in result.output
    for host in supervised.names:
        assert supervised.fleet.current(host) == old[host]
        assert supervised.fleet.releases(host) == [old[host]], result.output  # the new release is removed
        pid, directory = eventually(lambda host=host: runs_release(supervised, host))
        # Restarted on the old code: a new process, started from the old release.
        assert directory == f"{APP}/releases/{old[host]}"
        assert pid != first[host][0]
    assert result.output.count(f"switched back to {old['host1']}") == 3, result.output


def test_a_passing_check_leaves_the_new_release_live(supervised, fap_run, tmp_path, first):
    old = supervised.fleet.current("host1")
    write_release(tmp_path / "app")

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert result.output.count("healthy: check passed") == 3, result.output
    for host in supervised.names:
        new = supervised.fleet.current(host)
        assert new != old
        _pid, directory = eventually(lambda host=host: runs_release(supervised, host))
        assert directory == f"{APP}/releases/{new}"
