"""``fap disconnect``: close every SSH connection fap keeps up for the next command (``ssh_persist``)."""

from __future__ import annotations

import os

from fapistrano import connections
from fapistrano.errors import ExitCode


def disconnect() -> tuple[ExitCode, str]:
    """Stop every master in this user's private directory; ``(exit code, what to print)``.

    Needs no deploy file: the masters are this user's, whichever project made them.
    """
    try:
        directory = connections.private_directory()
    except connections.UnsafeDirectory as error:
        return ExitCode.FAILED, f"fap: error: {error}: not fap's; remove it"
    if not os.listdir(directory):
        return ExitCode.OK, "no connection to close"
    stopped, stale = connections.close_all(directory)
    removed = f"; removed {stale} stale socket(s)" if stale else ""
    return ExitCode.OK, f"closed {stopped} connection(s) in {directory}{removed}"
