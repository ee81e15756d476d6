"""A fleet whose every host runs its own real supervisord.

Each host of :class:`~fapistrano.testing.Fleet` has its own mount namespace;
this fleet also mounts a per-host directory over ``/etc/supervisor``, so every
host has its own ``supervisord.conf``, ``conf.d/`` include directory and unix
socket at the paths Debian's supervisor uses. supervisord runs as root inside
the host's namespace, as a packaged one would; its socket belongs to
``deploy`` (mode 0770) and ``conf.d/`` is writable by ``deploy``, which is
what the plugin's README asks of a real host. A plain ``supervisorctl`` run by
the deploy user over SSH therefore talks to that host's supervisord.
"""

from __future__ import annotations

import http.client
import os
import pwd
import shutil
import socket
import subprocess
import time
import xmlrpc.client
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from fapistrano.testing import Fleet, FleetUnavailable

T = TypeVar("T")

HERE = Path(__file__).parent
SUPERVISOR_DIR = "/etc/supervisor"
CONF_D = f"{SUPERVISOR_DIR}/conf.d"
WWW = "/home/deploy/www"

#: What an init system gives supervisord: no test runner's PATH (programs run as deploy must find python3).
SUPERVISORD_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}

SUPERVISORD_CONF = f"""\
; One test host's supervisord (written by the test fixture).
[unix_http_server]
file={SUPERVISOR_DIR}/supervisor.sock
chmod=0770
chown=deploy:deploy

[supervisord]
logfile={SUPERVISOR_DIR}/log/supervisord.log
pidfile={SUPERVISOR_DIR}/supervisord.pid
childlogdir={SUPERVISOR_DIR}/log
loglevel=info

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{SUPERVISOR_DIR}/supervisor.sock

[include]
files = {CONF_D}/*.conf
"""


class SupervisedFleet:
    """A :class:`Fleet` plus one supervisord per host, and what a test checks on them."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.supervisords: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def names(self) -> list[str]:
        return self.fleet.names

    def supervisor_dir(self, name: str) -> Path:
        """This machine's path of the host's ``/etc/supervisor``."""
        return self.fleet.hosts[name].path(SUPERVISOR_DIR)

    # -- supervisord ----------------------------------------------------------

    def prepare(self, name: str) -> None:
        directory = self.supervisor_dir(name)
        deploy = pwd.getpwnam("deploy")
        os.chown(directory, 0, 0)
        directory.chmod(0o755)
        (directory / "log").mkdir(exist_ok=True)
        (directory / "conf.d").mkdir(exist_ok=True)
        os.chown(directory / "conf.d", deploy.pw_uid, deploy.pw_gid)
        (directory / "supervisord.conf").write_text(SUPERVISORD_CONF)

    def start_supervisord(self, *names: str, timeout: float = 20) -> None:
        """Start supervisord inside each host's namespace; wait until each answers on its socket."""
        for name in names:
            log = open(self.fleet.dir / f"{name}.supervisord.out", "ab")  # noqa: SIM115 - owned by the child
            # nsenter execs supervisord in the host's mount namespace: the Popen is supervisord itself.
            self.supervisords[name] = subprocess.Popen(
                ["nsenter", "-t", str(self.fleet.hosts[name].pid), "-m", "--",
                 "supervisord", "--nodaemon", "-c", f"{SUPERVISOR_DIR}/supervisord.conf"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                env=SUPERVISORD_ENV,
            )
            log.close()
        deadline = time.monotonic() + timeout
        for name in names:
            while True:
                if self.supervisords[name].poll() is not None:
                    raise FleetUnavailable(f"supervisord on {name} exited: {self._log_tail(name)}")
                try:
                    self.rpc(name).getState()
                    break
                except (OSError, xmlrpc.client.Error):
                    pass
                if time.monotonic() > deadline:
                    raise FleetUnavailable(f"supervisord on {name} did not answer: {self._log_tail(name)}")
                time.sleep(0.1)

    def stop_supervisord(self, *names: str) -> None:
        """Stop the hosts' supervisords (all at once) and the programs they run."""
        processes = [self.supervisords.pop(name) for name in names if name in self.supervisords]
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def _log_tail(self, name: str) -> str:
        texts = []
        for path in (self.fleet.dir / f"{name}.supervisord.out", self.supervisor_dir(name) / "log" / "supervisord.log"):
            if path.exists():
                texts.append(path.read_text(errors="replace").strip()[-600:])
        return " | ".join(texts) or "no log"

    # -- what a test checks ---------------------------------------------------

    def ctl(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        """``supervisorctl ARGS`` on host ``name``, as the deploy user (as the plugin runs it)."""
        return self.fleet.in_host(name, ["supervisorctl", *args], user="deploy", timeout=60)

    def rpc(self, name: str) -> Any:
        """The host's supervisord XML-RPC ``supervisor`` namespace, through its unix socket.

        What ``supervisorctl status`` shows, without starting a supervisorctl
        (a Python start-up each) for every look.
        """
        transport = _UnixSocketTransport(str(self.supervisor_dir(name) / "supervisor.sock"))
        return xmlrpc.client.ServerProxy("http://localhost", transport=transport).supervisor

    def status(self, name: str) -> dict[str, tuple[str, int | None]]:
        """``{process: (state, pid)}`` as the host's supervisord reports them (``group:name`` in groups)."""
        found: dict[str, tuple[str, int | None]] = {}
        for info in self.rpc(name).getAllProcessInfo():
            namespec = info["name"] if info["group"] == info["name"] else f"{info['group']}:{info['name']}"
            found[namespec] = (info["statename"], info["pid"] or None)
        return found

    def running_record(self, name: str, process: str = "app") -> tuple[int, str]:
        """``(pid, release directory)`` the test app wrote when ``process`` started on host ``name``."""
        record = self.fleet.app_dir(name) / "shared" / f"running-{process}"
        pid, directory = record.read_text().split()[:2]
        return int(pid), directory

    def running_record_flavor(self, name: str, process: str = "app") -> str:
        """The ``APP_FLAVOR`` (from the program's conf) ``process`` saw when it started."""
        return (self.fleet.app_dir(name) / "shared" / f"running-{process}").read_text().split()[2]

    def link(self, name: str, target: str) -> str:
        """Where the host's ``target`` symlink points."""
        return os.readlink(self.fleet.hosts[name].path(target))

    def reset(self) -> None:
        """Forget every program and empty every host's www, keeping supervisord running."""
        dead = [name for name in self.names if name not in self.supervisords or self.supervisords[name].poll() is not None]
        for name in dead:
            self.supervisords.pop(name, None)
        self.start_supervisord(*dead)
        # Stopping waits for supervisord's next tick (up to ~1 s): all hosts at once.
        with ThreadPoolExecutor(len(self.names)) as pool:
            list(pool.map(self._forget_everything, self.names))

    def _forget_everything(self, name: str) -> None:
        conf_d = self.supervisor_dir(name) / "conf.d"
        for child in conf_d.iterdir():
            child.unlink()
        # What 'supervisorctl update' does for a conf that is gone: stop and drop its group.
        supervisor = self.rpc(name)
        for group in sorted({info["group"] for info in supervisor.getAllProcessInfo()}):
            supervisor.stopProcessGroup(group, True)
            supervisor.removeProcessGroup(group)
        www = self.fleet.hosts[name].path(WWW)
        for child in www.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

    def stop(self) -> None:
        self.stop_supervisord(*self.supervisords)


class _UnixSocketConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self.socket_path)


class _UnixSocketTransport(xmlrpc.client.Transport):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.socket_path = path

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        return _UnixSocketConnection(self.socket_path)


def eventually(check: Callable[[], T], timeout: float = 30) -> T:
    """``check()``, retried while it raises ``AssertionError`` or ``OSError``, until ``timeout``.

    A process reaches RUNNING (``startsecs`` after its start) independently of
    when it writes what the test reads; on a loaded machine the write may
    come later. The last failure is raised as is.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, OSError, ValueError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def ship_plugin(directory: Path) -> None:
    """Put the test's code-shipping plugin next to a deploy.yml, where fap imports it from."""
    shutil.copy(HERE / "shipped_app.py", directory / "shipped_app.py")


def deploy_settings(app_dir: Path, **extra: Any) -> dict[str, Any]:
    """deploy.yml settings shipping ``app_dir`` and enabling the plugin under test."""
    return {"plugins": ["shipped_app", "fapistrano.supervisorctl"], "shipped_app_dir": str(app_dir), **extra}
