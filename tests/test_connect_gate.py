"""``max_connecting``'s gate on real hosts: at most N connections being set up at once; one that is up holds no slot."""

from __future__ import annotations

import tempfile
import threading
from typing import Any

from fapistrano.connections import ConnectGate, attach
from fapistrano.remote import Host

HOSTS = ("host1", "host2", "host3")


def hosts_with_gate(fap_fleet: Any, limit: int) -> tuple[list[Host], ConnectGate]:
    control = tempfile.mkdtemp(prefix="fap-", dir="/tmp")
    hosts = [Host(name, fap_fleet.ssh_settings(name), control_dir=control) for name in HOSTS]
    gate = ConnectGate(limit)
    attach(hosts, 0.0, gate)
    return hosts, gate


def test_at_most_max_connecting_handshakes_at_once_and_all_connect(fap_fleet: Any) -> None:
    hosts, gate = hosts_with_gate(fap_fleet, 2)
    try:
        for host in hosts:
            host.start()  # what a run does before it needs the hosts: the third finds the gate full
        assert gate.held == 2
        workers = [threading.Thread(target=host.connect) for host in hosts]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert [host.run("echo up").stdout for host in hosts] == ["up\n"] * 3
        assert gate.peak == 2
        assert gate.held == 0  # connections that are up hold no slot
    finally:
        for host in hosts:
            host.close()


def test_a_started_connection_closed_unused_gives_its_slot_back(fap_fleet: Any) -> None:
    hosts, gate = hosts_with_gate(fap_fleet, 1)
    hosts[0].start()
    assert gate.held == 1
    hosts[0].close()
    assert gate.held == 0
    hosts[1].connect()
    try:
        assert hosts[1].run("echo up").stdout == "up\n"
    finally:
        hosts[1].close()
