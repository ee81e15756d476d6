"""``max_connecting`` through a jump host: 30 hosts behind one sshd with OpenSSH's default ``MaxStartups`` (10:30:100)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fapistrano.testing import DEPLOY_USER, Fleet, FleetUnavailable, run_fap

BEHIND = [f"app{n:02d}" for n in range(1, 31)]
BASTION = "bastion"
#: What ssh says when the jump host's sshd dropped a connection past its MaxStartups.
REFUSED = ("kex_exchange_identification", "Connection reset", "Connection closed by")


class BastionFleet(Fleet):
    """30 hosts reachable only through ``bastion`` (``ProxyJump`` in the user's ssh config), whose sshd keeps its defaults."""

    def _write_sshd_config(self, host: Any) -> None:
        super()._write_sshd_config(host)
        if host.name == BASTION:
            path = self.dir / f"{host.name}.sshd_config"
            # OpenSSH's defaults: MaxStartups 10:30:100; INFO says "drop connection ... past MaxStartups".
            lines = [line for line in path.read_text().splitlines() if not line.startswith(("MaxStartups", "LogLevel"))]
            path.write_text("\n".join([*lines, "LogLevel INFO", ""]))

    def _write_ssh_config(self) -> None:
        super()._write_ssh_config()
        blocks = self.ssh_config.read_text().split("\n\n")
        jumped = [block if block.startswith(f"Host {BASTION}\n") else block.rstrip("\n") + f"\n  ProxyJump {BASTION}"
                  for block in blocks]
        self.ssh_config.write_text("\n\n".join(jumped).rstrip("\n") + "\n")

    def bastion_log(self) -> str:
        return (self.dir / f"{BASTION}.sshd.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def bastion_fleet() -> Iterator[BastionFleet]:
    try:
        Fleet.check_machine()
        fleet = BastionFleet([BASTION, *BEHIND])
        fleet.start()
    except FleetUnavailable as reason:
        pytest.skip(str(reason))
    yield fleet
    fleet.stop()


def deploy(fleet: BastionFleet, tmp_path: Path, max_connecting: int) -> tuple[Any, str]:
    """A deploy to the 30 hosts, every handshake allowed to start at once; (result, what the bastion logged meanwhile)."""
    fleet.write_deployfile(tmp_path, {"max_connecting": max_connecting, "max_parallel": 100, "ssh_persist": 0},
                           hosts=BEHIND)
    logged = len(fleet.bastion_log())
    result = run_fap(["deploy", "-s", "test"], cwd=tmp_path, timeout=300)
    return result, fleet.bastion_log()[logged:]


def test_max_connecting_keeps_handshakes_under_the_jump_hosts_maxstartups(bastion_fleet: BastionFleet, tmp_path: Path) -> None:
    assert f"ProxyJump {BASTION}" in bastion_fleet.ssh_config.read_text()

    # Without the bound, 30 handshakes at once: the jump host drops those past its MaxStartups.
    unbounded, logged = deploy(bastion_fleet, tmp_path, 100)
    assert unbounded.exit_code != 0, unbounded.output
    assert "past MaxStartups" in logged
    assert any(said in unbounded.output for said in REFUSED), unbounded.output
    assert all(bastion_fleet.current(host) is None for host in BEHIND)

    # With the default bound of 10, every host connects and deploys; the jump host drops nothing.
    bounded, logged = deploy(bastion_fleet, tmp_path, 10)
    assert bounded.exit_code == 0, bounded.output
    assert "past MaxStartups" not in logged
    assert not any(said in bounded.output for said in REFUSED), bounded.output
    assert logged.count(f"Accepted publickey for {DEPLOY_USER}") == len(BEHIND)
    release = bastion_fleet.current(BEHIND[0])
    assert release is not None
    assert all(bastion_fleet.current(host) == release for host in BEHIND)
