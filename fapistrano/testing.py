"""A pytest plugin for plugin authors: a real SSH fleet, and a way to run ``fap`` on it.

Opt-in: a test suite enables it with ``-p fapistrano.testing`` (in its
pytest configuration's ``addopts``, or ``pytest_plugins = ["fapistrano.testing"]``
in its top ``conftest.py``); installing fapistrano loads nothing into other
projects' pytest sessions.

Fixtures:

``fap_fleet``
    A :class:`Fleet` of three SSH hosts for the test session: one ``sshd`` per
    host on its own loopback address, each in its own mount namespace so that
    every host has its own ``/home/deploy/www``; login as the real ``deploy``
    user with a generated key. Needs root, ``sshd`` and ``unshare``; skipped
    without them (a failure when ``CI=true``). Each test starts with empty
    hosts.
``fap_local``
    A :class:`LocalTarget`: a temporary directory and a deploy.yml with
    ``connection: local``; needs no root.
``fap_run``
    :func:`run_fap`: runs the real ``fap`` command and returns a :class:`FapResult`.
``fap_start``
    :func:`start_fap`: starts ``fap`` in the background and returns a
    :class:`FapProcess`, to watch a host mid-run (``wait_until``), signal
    it, then take its :class:`FapResult`; killed at the test's end if still
    running.
``fap_fleet_addresses``
    The fleet's addresses: ``None`` (the default range, see :class:`Fleet`),
    or a session-scoped fixture a suite overrides in its ``conftest.py`` to
    return ``{"host1": "127.0.10.1", ...}``.

Example::

    def test_hello_writes_its_file(fap_fleet, fap_run, tmp_path):
        deployfile = fap_fleet.write_deployfile(tmp_path, {"plugins": ["hello"]})
        result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
        assert result.exit_code == 0, result.output
        for host in fap_fleet.hosts:
            assert (fap_fleet.current_dir(host) / "HELLO").read_text() == "hello\\n"
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEPLOY_USER = "deploy"
DEPLOY_HOME = Path("/home/deploy")
WWW = DEPLOY_HOME / "www"
SSHD = "/usr/sbin/sshd"


class FleetUnavailable(RuntimeError):
    """This machine cannot run the fleet (not root, no sshd, no unshare)."""


@dataclass(frozen=True)
class FapResult:
    """What a ``fap`` run left: its exit code and what it printed."""

    #: fap's exit status (0 done, 1 failed, 2 bad input…: see the exit codes in :doc:`cli`).
    exit_code: int
    #: What fap printed on stdout (progress, the summary).
    stdout: str
    #: What fap printed on stderr (``fap: error: …`` lines).
    stderr: str
    #: Wall time of the run, in seconds.
    duration: float

    @property
    def output(self) -> str:
        """``stdout`` then ``stderr``: what a user saw, for assertion messages."""
        return self.stdout + self.stderr


def _fap_environment(env: Mapping[str, str] | None) -> dict[str, str]:
    """fap's environment in a test: this one, wide plain output, no ``FAP_APP`` unless ``env`` sets it."""
    environment = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    if env is None or "FAP_APP" not in env:
        environment.pop("FAP_APP", None)
    return environment


def run_fap(args: Sequence[str], cwd: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None,
            timeout: float = 300, input: str | None = None) -> FapResult:
    """Run ``fap ARGS`` as a user would (a new process, output not a terminal)."""
    environment = _fap_environment(env)
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "fapistrano", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        check=False,
    )
    return FapResult(completed.returncode, completed.stdout, completed.stderr, time.monotonic() - started)


class FapProcess:
    """``fap`` running in the background (:func:`start_fap`): watch a host while it runs, signal it, get its result.

    Example: stop a deploy once the new release exists on ``host2``::

        fap = fap_start(["deploy", "-s", "test"], cwd=tmp_path)
        fap.wait_until(lambda: fap_fleet.releases("host2"), what="a release on host2")
        fap.send_signal(signal.SIGINT)
        result = fap.wait()
        assert result.exit_code == 130
    """

    def __init__(self, args: Sequence[str], cwd: str | os.PathLike[str] | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        #: The arguments fap was started with.
        self.args = list(args)
        # Files, not pipes: a chatty fap never blocks on a full pipe while the test polls a host.
        self._stdout = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")
        self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")
        self._started = time.monotonic()
        #: The ``fap`` process (a :class:`subprocess.Popen`).
        self.process = subprocess.Popen([sys.executable, "-m", "fapistrano", *self.args], cwd=cwd,
                                        env=_fap_environment(env), stdin=subprocess.DEVNULL,
                                        stdout=self._stdout, stderr=self._stderr, text=True)
        self._result: FapResult | None = None

    @property
    def running(self) -> bool:
        """Whether fap has not exited yet."""
        return self.process.poll() is None

    @property
    def output(self) -> str:
        """What fap printed so far, stdout then stderr."""
        return self._read(self._stdout) + self._read(self._stderr)

    def wait_until(self, condition: Callable[[], Any], timeout: float = 60, interval: float = 0.05, what: str = "") -> Any:
        """Call ``condition`` until it returns something true, and return that; fap goes on running meanwhile.

        ``condition`` looks at a host, e.g. ``lambda: fap_fleet.locked("host1")``
        or ``lambda: (fap_fleet.app_dir("host2") / "shared" / "ready").exists()``.
        Raises :class:`AssertionError` naming ``what`` and what fap printed
        when fap exits before the condition holds, or after ``timeout``
        seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            label = what or getattr(condition, "__name__", "the condition")
            if not self.running:
                raise AssertionError(f"fap exited {self.process.returncode} before {label}:\n{self.output}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{label}: not after {timeout:g} s of fap {' '.join(self.args)}:\n{self.output}")
            time.sleep(interval)

    def send_signal(self, number: int) -> None:
        """Send signal ``number`` to fap (``signal.SIGINT`` is Ctrl-C, ``signal.SIGTERM`` a CI job cancelled)."""
        self.process.send_signal(number)

    def wait(self, timeout: float = 300) -> FapResult:
        """Wait for fap to exit; its :class:`FapResult` (the duration counts from the start)."""
        if self._result is None:
            self.process.wait(timeout=timeout)
            self._result = FapResult(self.process.returncode, self._read(self._stdout), self._read(self._stderr),
                                     time.monotonic() - self._started)
            self._stdout.close()
            self._stderr.close()
        return self._result

    def kill(self) -> None:
        """Kill fap if it still runs (its hosts are left as a killed fap leaves them)."""
        if self.running:
            self.process.kill()
        self.wait(timeout=30)

    def __enter__(self) -> FapProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.kill()

    @staticmethod
    def _read(stream: Any) -> str:
        if stream.closed:
            return ""
        stream.seek(0)
        return str(stream.read())


def start_fap(args: Sequence[str], cwd: str | os.PathLike[str] | None = None,
              env: Mapping[str, str] | None = None) -> FapProcess:
    """Start ``fap ARGS`` in the background, as :func:`run_fap` runs it; a :class:`FapProcess` to watch and wait for."""
    return FapProcess(args, cwd, env)


def _yaml_dump(data: Any) -> str:
    from io import StringIO

    from ruamel.yaml import YAML

    stream = StringIO()
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.dump(data, stream)
    return stream.getvalue()


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for name, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(name), Mapping):
            merged[name] = _merge(dict(merged[name]), value)
        else:
            merged[name] = value
    return merged


# ---------------------------------------------------------------------------
# The SSH fleet
# ---------------------------------------------------------------------------


@dataclass
class FleetHost:
    """One host of the fleet: its name, address, root directory here, and sshd."""

    #: The host's name: what deploy.yml lists (``host1``), an alias in the fleet's ``ssh_config``.
    name: str
    #: The loopback address its sshd listens on (``127.N.0.2``, or the one the fleet was given).
    address: str
    #: This machine's view of the host's own files (its mounts are subdirectories of it: :meth:`path`).
    root: Path
    process: subprocess.Popen[bytes] | None = None
    mounts: dict[str, str] = field(default_factory=dict)

    def path(self, mounted: str | os.PathLike[str]) -> Path:
        """This machine's path for ``mounted`` (a path the host sees under one of its mounts)."""
        mounted = str(mounted)
        for target, subdir in sorted(self.mounts.items(), key=lambda kv: -len(kv[0])):
            if mounted == target or mounted.startswith(target.rstrip("/") + "/"):
                return self.root / subdir / mounted[len(target):].lstrip("/")
        raise ValueError(f"{mounted} is not under one of {self.name}'s own mounts ({', '.join(self.mounts)})")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


class Fleet:
    """Real SSH hosts on loopback addresses, each with its own ``/home/deploy/www``.

    ``Fleet(["web1", "web2"]).start()``; ``stop()`` kills every process of the
    fleet. ``mounts`` maps a path the hosts see to a subdirectory of each
    host's root (default: ``/home/deploy/www`` -> ``www``).

    Each host listens on its own loopback address, all on one port
    (:attr:`port`, free when the fleet starts). ``addresses`` chooses them:
    ``{"host1": "127.0.10.1", ...}`` (or a list, in the order of ``names``),
    each a distinct IPv4 address in ``127.0.0.0/8``. Without it, a fleet
    takes ``127.N.0.2``, ``127.N.0.3``… for one ``N`` from 2 to 250 picked at
    random when it starts (:data:`DEFAULT_RANGE`), so that two fleets on
    one machine hardly ever meet. Read them back from
    ``fleet.hosts[name].address``.
    """

    def __init__(self, names: Iterable[str] = ("host1", "host2", "host3"), mounts: Mapping[str, str] | None = None,
                 app_name: str = "app", addresses: Mapping[str, str] | Sequence[str] | None = None) -> None:
        self.names = list(names)
        self.addresses = _addresses(self.names, addresses)
        self.mounts = dict(mounts or {str(WWW): "www"})
        self.app_name = app_name
        self.dir = Path(tempfile.mkdtemp(prefix="fap-fleet-"))
        self.dir.chmod(0o755)
        #: Each host by name (a :class:`FleetHost`: ``address``, ``root``, ``path()``), once started.
        self.hosts: dict[str, FleetHost] = {}
        #: The port every host's sshd listens on, once started.
        self.port = 0
        self.ssh_config = self.dir / "ssh_config"
        self.key = self.dir / "id_ed25519"

    # -- lifecycle --------------------------------------------------------

    @staticmethod
    def check_machine() -> None:
        """Raise :class:`FleetUnavailable` saying what is missing."""
        if os.geteuid() != 0:
            raise FleetUnavailable("the SSH fleet needs root (it starts sshd and makes mount namespaces)")
        for tool in (SSHD, shutil.which("unshare"), shutil.which("ssh-keygen"), shutil.which("ssh")):
            if not tool or not os.path.exists(tool):
                raise FleetUnavailable("the SSH fleet needs openssh-server, openssh-client and util-linux (unshare)")

    def start(self) -> Fleet:
        self.check_machine()
        ensure_deploy_user()
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        WWW.mkdir(exist_ok=True)
        self._keys()
        self.port = _free_port()
        octet = random.randint(2, 250)
        for index, name in enumerate(self.names, start=2):
            address = self.addresses.get(name) or f"127.{octet}.{index // 250}.{index % 250 + 1}"
            host = FleetHost(name, address, self.dir / "hosts" / name, mounts=dict(self.mounts))
            self.hosts[name] = host
            for subdir in self.mounts.values():
                (host.root / subdir).mkdir(parents=True, exist_ok=True)
                _chown_deploy(host.root / subdir)
            host.root.chmod(0o755)
            self._write_sshd_config(host)
        self._write_ssh_config()
        for name in self.names:
            self.start_host(name)
        for name in self.names:
            self.wait_ready(name)
        return self

    def stop(self) -> None:
        for name in list(self.hosts):
            self.kill_host(name)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start_host(self, name: str) -> None:
        """Start (or restart) the host's sshd in a new mount namespace."""
        host = self.hosts[name]
        binds = " && ".join(
            f"mount --bind {_q(str(host.root / subdir))} {_q(target)}" for target, subdir in host.mounts.items()
        )
        script = f"mount --make-rprivate / && {binds} && exec {SSHD} -D -e -f {_q(str(self.dir / (name + '.sshd_config')))}"
        log = open(self.dir / f"{name}.sshd.log", "ab")  # noqa: SIM115 - owned by the child
        host.process = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )
        log.close()

    def wait_ready(self, name: str, timeout: float = 15) -> None:
        """Wait until host ``name``'s sshd accepts connections; :class:`FleetUnavailable` if it died."""
        host = self.hosts[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if host.process is not None and host.process.poll() is not None:
                log = (self.dir / f"{name}.sshd.log").read_text(errors="replace")
                raise FleetUnavailable(f"sshd for {name} exited: {log.strip()[-500:]}")
            try:
                with socket.create_connection((host.address, self.port), timeout=1) as sock:
                    if sock.recv(4).startswith(b"SSH"):
                        return
            except OSError:
                time.sleep(0.05)
        raise FleetUnavailable(f"sshd for {name} did not answer on {host.address}:{self.port}")

    def kill_host(self, name: str) -> None:
        """Stop the host's sshd and every process in its namespace (sessions included)."""
        host = self.hosts[name]
        if host.process is None:
            return
        for pid in self.processes_of(name):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            host.process.kill()
        except ProcessLookupError:
            pass
        host.process.wait(timeout=10)
        host.process = None

    def processes_of(self, name: str) -> list[int]:
        """Pids of every process in the host's mount namespace."""
        host = self.hosts[name]
        if host.process is None or host.process.poll() is not None:
            return []
        try:
            namespace = os.readlink(f"/proc/{host.pid}/ns/mnt")
        except OSError:
            return []
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.readlink(f"/proc/{entry}/ns/mnt") == namespace:
                        pids.append(int(entry))
                except OSError:
                    continue
        return pids

    def in_host(self, name: str, argv: Sequence[str], user: str | None = None, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` on this machine inside the host's mount namespace (as root, or ``user``)."""
        prefix = ["nsenter", "-t", str(self.hosts[name].pid), "-m", "--"]
        if user:
            prefix += ["runuser", "-u", user, "--"]
        return subprocess.run([*prefix, *argv], capture_output=True, text=True, check=False, **kwargs)

    def reset(self) -> None:
        """Empty every host's own directories, as if freshly provisioned."""
        for name, host in self.hosts.items():
            if host.process is None or host.process.poll() is not None:
                self.start_host(name)
                self.wait_ready(name)
            for subdir in host.mounts.values():
                directory = host.root / subdir
                if directory.exists():
                    for child in directory.iterdir():
                        if child.is_dir() and not child.is_symlink():
                            shutil.rmtree(child, ignore_errors=True)
                        else:
                            child.unlink(missing_ok=True)
            # A test may have mounted something over a host's directory (a full disk): undo it.
            self.in_host(name, ["sh", "-c", f"while umount {_q(str(WWW))}/* 2>/dev/null; do :; done; true"])

    # -- files ------------------------------------------------------------

    def _keys(self) -> None:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)], check=True)
        host_key = self.dir / "ssh_host_ed25519_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
        (self.dir / "authorized_keys").write_text(Path(f"{self.key}.pub").read_text())
        (self.dir / "authorized_keys").chmod(0o644)
        public = Path(f"{host_key}.pub").read_text().split()
        (self.dir / "known_hosts").write_text(f"fap-fleet {public[0]} {public[1]}\n")

    def _write_sshd_config(self, host: FleetHost) -> None:
        (self.dir / f"{host.name}.sshd_config").write_text(
            "\n".join(
                [
                    f"ListenAddress {host.address}:{self.port}",
                    f"HostKey {self.dir / 'ssh_host_ed25519_key'}",
                    f"PidFile {self.dir / (host.name + '.sshd.pid')}",
                    f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
                    "StrictModes no",
                    "UsePAM no",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    f"AllowUsers {DEPLOY_USER}",
                    "PermitRootLogin no",
                    "MaxSessions 200",
                    "MaxStartups 500",
                    "LogLevel ERROR",
                    "UseDNS no",
                    "Subsystem sftp internal-sftp",
                    "",
                ]
            )
        )

    def _write_ssh_config(self) -> None:
        blocks = []
        for host in self.hosts.values():
            blocks.append(
                "\n".join(
                    [
                        f"Host {host.name}",
                        f"  HostName {host.address}",
                        f"  Port {self.port}",
                        f"  User {DEPLOY_USER}",
                        f"  IdentityFile {self.key}",
                        "  IdentitiesOnly yes",
                        f"  UserKnownHostsFile {self.dir / 'known_hosts'}",
                        "  StrictHostKeyChecking yes",
                        "  HostKeyAlias fap-fleet",
                        "  LogLevel ERROR",
                    ]
                )
            )
        self.ssh_config.write_text("\n\n".join(blocks) + "\n")

    def deploy_settings(self, hosts: Iterable[str] | None = None) -> dict[str, Any]:
        """Settings that make fap reach this fleet: ``ssh_config`` and ``hosts``."""
        return {"ssh_config": str(self.ssh_config), "hosts": list(hosts or self.names)}

    def ssh_settings(self, name: str, connect_timeout: int = 10) -> Any:
        """How fap reaches host ``name`` (a :class:`fapistrano.remote.SshSettings`), for tests of the transport."""
        from fapistrano.remote import SshSettings

        return SshSettings(host=name, user=DEPLOY_USER, port=None, ssh_config=str(self.ssh_config), ssh_options=(),
                           connect_timeout=connect_timeout)

    def deployfile(self, extra: Mapping[str, Any] | None = None, stage: str = "test", role: str = "web",
                   hosts: Iterable[str] | None = None) -> dict[str, Any]:
        """A deploy.yml (as data) targeting this fleet, merged with ``extra``."""
        data: dict[str, Any] = {
            "app_name": self.app_name,
            "ssh_config": str(self.ssh_config),
            "stage_role_configs": {stage: {role: {"hosts": list(hosts or self.names)}}},
        }
        return _merge(data, extra or {})

    def write_deployfile(self, directory: str | os.PathLike[str], extra: Mapping[str, Any] | None = None, **kwargs: Any) -> Path:
        """Write :meth:`deployfile` to ``directory/deploy.yml``; return its path."""
        path = Path(directory) / "deploy.yml"
        path.write_text(_yaml_dump(self.deployfile(extra, **kwargs)))
        return path

    # -- what a user would check -------------------------------------------

    def app_dir(self, host: str, app_name: str | None = None) -> Path:
        """This machine's path of the host's ``/home/deploy/www/<app>``."""
        return self.hosts[host].path(WWW / (app_name or self.app_name))

    def current(self, host: str, app_name: str | None = None) -> str | None:
        """The release ``current`` points to on ``host`` (``None`` when there is none)."""
        link = self.app_dir(host, app_name) / "current"
        if not link.is_symlink():
            return None
        return os.path.basename(os.readlink(link).rstrip("/"))

    def current_dir(self, host: str, app_name: str | None = None) -> Path:
        """This machine's path of the host's current release."""
        release = self.current(host, app_name)
        assert release is not None, f"{host} has no current release"
        return self.app_dir(host, app_name) / "releases" / release

    def releases(self, host: str, app_name: str | None = None) -> list[str]:
        """Release directories on ``host``, oldest first."""
        releases = self.app_dir(host, app_name) / "releases"
        if not releases.is_dir():
            return []
        return sorted(p.name for p in releases.iterdir() if p.is_dir() and not p.name.startswith("."))

    def tree(self, host: str, app_name: str | None = None) -> list[str]:
        """Every path under the host's app directory, relative, sorted (symlinks shown as ``a -> b``)."""
        root = self.app_dir(host, app_name)
        out = []
        for path in sorted(root.rglob("*")):
            relative = str(path.relative_to(root))
            if any(part in ("venv", "repo") for part in path.relative_to(root).parts[:3]) and path.parent != root:
                continue
            out.append(f"{relative} -> {os.readlink(path)}" if path.is_symlink() else relative)
        return out

    def locked(self, host: str, app_name: str | None = None) -> bool:
        """Whether a run's deploy lock is held on ``host``."""
        return (self.app_dir(host, app_name) / ".fap-lock").exists()


#: Where a fleet's hosts listen when no ``addresses`` are given: ``127.N.0.2`` onwards, one random ``N`` per fleet.
DEFAULT_RANGE = "127.2.0.0 - 127.250.255.255"


def _addresses(names: list[str], chosen: Mapping[str, str] | Sequence[str] | None) -> dict[str, str]:
    """``addresses`` of :class:`Fleet` checked and keyed by host: distinct loopback IPv4 addresses of known hosts."""
    import ipaddress

    if chosen is None:
        return {}
    if isinstance(chosen, Mapping):
        by_name = dict(chosen)
    else:
        if len(chosen) != len(names):
            raise ValueError(f"addresses: {len(chosen)} given for {len(names)} hosts ({', '.join(names)})")
        by_name = dict(zip(names, chosen, strict=True))
    for name, address in by_name.items():
        if name not in names:
            raise ValueError(f"addresses: {name!r} is not a host of this fleet ({', '.join(names)})")
        try:
            loopback = ipaddress.IPv4Address(address).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"addresses: {name}: {address!r} is not an IPv4 address in 127.0.0.0/8")
    if len(set(by_name.values())) != len(by_name):
        raise ValueError("addresses: each host needs its own address")
    return by_name


def ensure_deploy_user() -> None:
    """Create the ``deploy`` user (home ``/home/deploy``, unlocked for key login) if missing."""
    try:
        pwd.getpwnam(DEPLOY_USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", DEPLOY_USER], check=True)
    # UsePAM=no refuses locked accounts ('!'); '*' allows keys and no password.
    subprocess.run(["usermod", "-p", "*", DEPLOY_USER], check=True)
    DEPLOY_HOME.mkdir(exist_ok=True)
    _chown_deploy(DEPLOY_HOME)


def _chown_deploy(path: Path) -> None:
    entry = pwd.getpwnam(DEPLOY_USER)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _free_port() -> int:
    for _ in range(100):
        port = random.randint(20000, 60000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise FleetUnavailable("no free port for the fleet")


def _q(text: str) -> str:
    import shlex

    return shlex.quote(text)


# ---------------------------------------------------------------------------
# A local target (no root needed)
# ---------------------------------------------------------------------------


@dataclass
class LocalTarget:
    """A directory on this machine deployed to with ``connection: local``."""

    #: The test's directory: deploy.yml is written here, and the app lives under ``srv/`` in it (:attr:`path`).
    root: Path
    app_name: str = "app"

    @property
    def path(self) -> Path:
        """The app's directory (deploy.yml's ``path``): ``releases/``, ``shared/``, ``current``."""
        return self.root / "srv" / self.app_name

    def deployfile(self, extra: Mapping[str, Any] | None = None, stage: str = "test", role: str = "web") -> dict[str, Any]:
        """A deploy.yml (as data) deploying to :attr:`path` with ``connection: local``, merged with ``extra``."""
        data = {
            "app_name": self.app_name,
            "connection": "local",
            "path": str(self.path),
            "stage_role_configs": {stage: {role: {"hosts": ["localhost"]}}},
        }
        return _merge(data, extra or {})

    def write_deployfile(self, extra: Mapping[str, Any] | None = None, **kwargs: Any) -> Path:
        """Write :meth:`deployfile` to ``root/deploy.yml``; return its path."""
        path = self.root / "deploy.yml"
        path.write_text(_yaml_dump(self.deployfile(extra, **kwargs)))
        return path

    def current(self) -> str | None:
        """The release ``current`` points to (``None`` when there is none)."""
        link = self.path / "current"
        return os.path.basename(os.readlink(link)) if link.is_symlink() else None

    def releases(self) -> list[str]:
        """Release directories, oldest first."""
        directory = self.path / "releases"
        return sorted(p.name for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")) if directory.is_dir() else []


# ---------------------------------------------------------------------------
# pytest fixtures
# ---------------------------------------------------------------------------

# The module also serves bench/ scripts, where pytest may not be installed.
if importlib.util.find_spec("pytest") is not None:
    import pytest

    def pytest_configure(config: Any) -> None:
        config.addinivalue_line("markers", "fleet: needs the real SSH test fleet (root, sshd, unshare)")
        # A suite started in the background by a script (`pytest &`, a CI runner) inherits SIGINT
        # ignored, and so would every fap it starts: fap keeps an ignored signal ignored, as nohup
        # expects, so a test pressing Ctrl-C would wait in vain. Each fap a test starts gets SIGINT
        # as a terminal gives it (exec resets a handler, not an ignore).
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def pytest_collection_modifyitems(items: list[Any]) -> None:
        # A test on the fleet is marked whichever fixture brought the fleet in, so that
        # ``-m "not fleet"`` runs exactly the tests that need no root and no sshd.
        for item in items:
            if "fap_fleet_session" in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.fleet)

    @pytest.fixture(scope="session")
    def fap_fleet_addresses() -> Mapping[str, str] | None:
        """The fleet's addresses by host; ``None``: the default range. Override it in a conftest.py to choose them."""
        return None

    @pytest.fixture(scope="session")
    def fap_fleet_session(fap_fleet_addresses: Mapping[str, str] | None) -> Iterable[Fleet]:
        try:
            Fleet.check_machine()
        except FleetUnavailable as reason:
            if os.environ.get("CI") == "true":
                pytest.fail(f"CI=true but {reason}")
            pytest.skip(str(reason))
        fleet = Fleet(addresses=fap_fleet_addresses)
        try:
            fleet.start()
        except FleetUnavailable as reason:
            fleet.stop()
            if os.environ.get("CI") == "true":
                pytest.fail(str(reason))
            pytest.skip(str(reason))
        yield fleet
        fleet.stop()

    @pytest.fixture
    def fap_fleet(fap_fleet_session: Fleet) -> Fleet:
        """The session's three-host fleet, emptied for this test."""
        fap_fleet_session.reset()
        return fap_fleet_session

    @pytest.fixture
    def fap_local(tmp_path: Path) -> LocalTarget:
        """A local deploy target in ``tmp_path`` (no SSH, no root)."""
        return LocalTarget(tmp_path)

    @pytest.fixture
    def fap_run() -> Any:
        """:func:`run_fap`."""
        return run_fap

    @pytest.fixture
    def fap_start() -> Iterable[Callable[..., FapProcess]]:
        """:func:`start_fap`; a fap still running when the test ends is killed."""
        started: list[FapProcess] = []

        def start(args: Sequence[str], cwd: str | os.PathLike[str] | None = None,
                  env: Mapping[str, str] | None = None) -> FapProcess:
            process = start_fap(args, cwd, env)
            started.append(process)
            return process

        yield start
        for process in started:
            process.kill()
