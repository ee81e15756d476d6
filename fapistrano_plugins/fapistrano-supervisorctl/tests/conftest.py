"""Fixtures: a module's fleet of SSH hosts, each running its own real supervisord (see supervised_fleet)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from supervised_fleet import SUPERVISOR_DIR, WWW, SupervisedFleet

from fapistrano.testing import Fleet, FleetUnavailable


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def supervised_session() -> Iterator[SupervisedFleet]:
    """Three SSH hosts, each with its own supervisord; module-scoped (starting them costs ~1 s)."""
    try:
        Fleet.check_machine()
    except FleetUnavailable as reason:
        _unavailable(str(reason))
    for program in ("supervisord", "supervisorctl"):
        if not shutil.which(program):
            _unavailable(f"{program} is not installed (apt-get install supervisor)")
    # Mounts go over existing directories: make sure the mount point exists here.
    Path(SUPERVISOR_DIR).mkdir(parents=True, exist_ok=True)
    fleet = Fleet(mounts={WWW: "www", SUPERVISOR_DIR: "supervisor"})
    supervised = SupervisedFleet(fleet)
    try:
        try:
            fleet.start()
            for name in fleet.names:
                supervised.prepare(name)
            supervised.start_supervisord(*fleet.names)
        except FleetUnavailable as reason:
            _unavailable(str(reason))
        yield supervised
    finally:
        supervised.stop()
        fleet.stop()


@pytest.fixture
def supervised(supervised_session: SupervisedFleet) -> SupervisedFleet:
    """The module's supervised fleet, with no program and no app on any host."""
    supervised_session.reset()
    return supervised_session


