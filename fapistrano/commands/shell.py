"""``fap shell``: an interactive login shell in one host's ``current_path``, its ``.env`` exported."""

from __future__ import annotations

import os
import sys

import click

from fapistrano import layout
from fapistrano.commands.wiring import fleet_command
from fapistrano.hosts import Member
from fapistrano.options import Options
from fapistrano.remote import ssh_settings_from


def shell_argv(member: Member) -> list[str]:
    """The argv that opens the shell (as ``fap once`` would run a command there); the CLI execs it."""
    config = member.target.config
    inner = (
        f"cd {layout.q(config['current_path'])} 2>/dev/null || cd {layout.q(config['path'])}; "
        "if [ -f .env ]; then set -a; . ./.env; set +a; fi; "
        f"exec {config['shell_command']}"
    )
    if member.connection.is_local:
        return ["sh", "-c", inner]
    ssh = ssh_settings_from(config, member.spec.name, member.spec.port, config["user"])
    options = ssh.base_options("none")
    # An interactive shell may prompt (passphrase, host key): drop the "-o BatchMode=yes" pair, not just its value.
    batch = options.index("BatchMode=yes")
    del options[batch - 1 : batch + 1]
    return ["ssh", "-t", *options, ssh.host, inner]


@fleet_command("shell", "Open an interactive shell in the current release of one host, with its .env loaded.")
@click.option("--host", "host", metavar="NAME", help="Which host, by exact name (default: the first one selected).")
def command(options: Options, stage: str | None, role: str | None, overrides: list[str], host: str | None) -> None:
    from fapistrano.compose import Composition, host_filter

    with Composition(options, stage, role, overrides, "shell", hosts=host_filter(False), host=host, connects=False) as fleet:
        argv = shell_argv(fleet.members[0])
        fleet.close()
    sys.stdout.flush()
    os.execvp(argv[0], argv)
