"""``fap disconnect``: close every SSH connection fap keeps up for the next command (``ssh_persist``)."""

from __future__ import annotations

import os
import sys

import click

from fapistrano import connections
from fapistrano.commands.wiring import PLAIN
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


@click.command("disconnect", context_settings=PLAIN,
               help="Close every SSH connection kept up for the next command (ssh_persist), whichever deploy file made it.")
def command() -> None:
    code, text = disconnect()
    click.echo(text, err=code != ExitCode.OK)
    sys.exit(code)
