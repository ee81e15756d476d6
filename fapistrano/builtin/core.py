"""``core.settings``: the core's own settings, declared with :class:`~fapistrano.Setting` as any plugin declares its own.

Each says its type (the docs render it), its choices and, where a value can
be of the right type and still wrong (a relative path, 0 hosts at once), a
``check``: :mod:`fapistrano.config` calls it with the value each host gets,
and refuses a bad one in one line naming where it was set.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from fapistrano import hookimpl
from fapistrano.connections import parse_duration
from fapistrano.flows import COMMANDS
from fapistrano.settings import Setting

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MAX_FAIL = re.compile(r"\d+(\.\d+)?%|\d+")


def absolute_directory(value: Any) -> None:
    """A directory of the layout: set, and written from ``/``."""
    if not value:
        raise ValueError("is not set (null or empty); set it to an absolute directory")
    if not str(value).startswith("/"):
        raise ValueError(f"{value!r} is not an absolute path; write it from / (fap expands neither '~' nor $HOME,"
                         " and a relative path would depend on where each command runs)")


def absolute_release_path(value: Any) -> None:
    """``release_path``: written from ``/`` (it names the release with ``%(release)s``)."""
    if not str(value).startswith("/"):
        raise ValueError(f"{value!r} is not an absolute path; write it from / (e.g. %(releases_path)s/%(release)s)")


def at_least_one(value: Any) -> None:
    """A count that must be 1 or more."""
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")


def seconds_above_zero(value: Any) -> None:
    """A time in seconds that must be more than 0."""
    if value <= 0:
        raise ValueError(f"must be more than 0 seconds, got {value}")


def duration(value: Any) -> None:
    """``N``, ``Ns``, ``Nm`` or ``Nh`` (see :func:`fapistrano.connections.parse_duration`)."""
    parse_duration(value)


def hosts_or_percentage(value: Any) -> None:
    """``max_fail``: a number of hosts, or a percentage up to 100%."""
    text = str(value).strip()
    if not _MAX_FAIL.fullmatch(text) or (text.endswith("%") and float(text[:-1]) > 100):
        raise ValueError(f"expected a number of hosts or a percentage up to 100%, got {value!r}")


def variable_names(value: Any) -> None:
    """``environment``: each name a valid shell variable name."""
    for name in value:
        if not _IDENT.match(name):
            raise ValueError(f"{name!r} is not a valid variable name")


def inside_the_release(value: Any) -> None:
    """``linked_files``, ``linked_dirs``: each a path relative to the release, never out of it."""
    for item in value:
        if not item or item.startswith("/") or ".." in PurePosixPath(item).parts:
            raise ValueError(f"{item!r} must be a path relative to the release, without '..'")


SETTINGS = [
    Setting("app_name", None, "Name of the application; names its directory on every host."),
    Setting("user", "deploy", "SSH login on the hosts (a host written user@host overrides it)."),
    Setting("sudo_user", None, "Run every command as this user through 'sudo -u' (when it differs from user)."),
    Setting("path", "/home/%(user)s/www/%(app_name)s", "Directory holding releases/, shared/ and current.",
            check=absolute_directory),
    Setting("current_path", "%(path)s/current", "The symlink to the live release.", check=absolute_directory),
    Setting("releases_path", "%(path)s/releases", "Directory holding one directory per release.", check=absolute_directory),
    Setting("shared_path", "%(path)s/shared", "Files and directories shared by every release.", check=absolute_directory),
    Setting("release_path", "%(releases_path)s/%(release)s", "The release this run works on.", check=absolute_release_path),
    Setting("keep_releases", 5, "How many finished releases to keep on each host; releases marked bad (by fap rollback) go"
            " first and never push a good one out.", check=at_least_one),
    Setting("linked_files", [], "Files linked from shared_path into every release; each must exist.", check=inside_the_release),
    Setting("linked_dirs", [], "Directories linked from shared_path into every release; created when missing.",
            check=inside_the_release),
    Setting("environment", {}, "Variables written, quoted, to .env in every release.", check=variable_names),
    Setting("hosts", [], "Hosts of a stage/role, each [user@]host[:port], or {host: [user@]host[:port], setting: value, ...}"
            " with settings of its own."),
    Setting("connection", "ssh", "'ssh', or 'local' to run on this machine without SSH.", choices=("ssh", "local")),
    Setting("ssh_config", None, "An ssh config file, passed to ssh as -F."),
    Setting("ssh_options", [], "Extra arguments for ssh, e.g. ['-o', 'ProxyJump=bastion']."),
    Setting("ssh_connect_timeout", 10, "Seconds to wait for a host to accept the connection.", check=at_least_one),
    Setting("max_parallel", 20, "How many hosts connect, and then run each phase, at once.", check=at_least_one),
    Setting("max_connecting", 10, "How many SSH connections may be being set up at once, over the whole run (a jump host's"
            " sshd refuses beyond its MaxStartups, 10 by default); connections already up do not count.", check=at_least_one),
    Setting("ssh_persist", "60s", "How long each host's SSH connection stays up after fap exits, for the next command to reuse"
            " without a key exchange: N, Ns, Nm or Nh; 0: it ends with the run ('fap disconnect' closes them).",
            check=duration),
    # batch_size and batch_pause are read by fapistrano.ramps (a size or a list of sizes; seconds, with a did-you-mean).
    Setting("batch_size", 0, "Run the whole flow on this many hosts at a time, batch after batch (0: all at once);"
            " a list ramps up: [1, 25%, 100%]."),
    Setting("batch_pause", 0.0, "Seconds to wait between two batches of batch_size (0: none); Ctrl-C during the pause stops the run."),
    Setting("max_fail", "0", "Hosts that may fail before publishing (dropped) or fail the healthcheck (kept) while the rest"
            " go on: N or P%.", check=hosts_or_percentage),
    Setting("healthcheck", "", "Shell command run on every host after published, until it passes (empty: no check);"
            " a failure switches the run back.", shell=True),
    Setting("healthcheck_interval", 1.0, "Seconds between two attempts of healthcheck.", check=seconds_above_zero),
    Setting("healthcheck_timeout", 30.0, "Seconds healthcheck may take to pass on a host, attempts included.",
            check=seconds_above_zero),
    Setting("plugins", [], "Plugins to enable: entry point names or dotted module paths."),
    Setting("mask", [], "Settings whose values are secrets, masked in all output (each item of a list, each value of a"
            " mapping; 4 characters at least)."),
    Setting("shell_command", "${SHELL:-/bin/sh} -l", "What 'fap shell' starts in current_path, the release's .env exported.",
            shell=True),
    # A list, so that deploy.yml's list type-checks; unset (not []) means "use plugins".
    *(Setting(f"{command.name}_plugins", [], f"Plugins for 'fap {command.name}' only, replacing plugins.")
      for command in COMMANDS if command.chooses_plugins),
    # 'release' is Fapistrano 0.9's name of 'deploy' (fap release is its alias): release_plugins still works.
    Setting("release_plugins", [], "Fapistrano 0.9's name of deploy_plugins (deploy_plugins wins when both are set)."),
]


@hookimpl
def fap_settings() -> list[Setting]:
    """The core's settings: the layout, the connection, the run's pace, the plugins."""
    return SETTINGS
