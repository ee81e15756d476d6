"""A third-party Fapistrano plugin, written only from the public plugin contract of 1.0.

It declares its settings the 1.0 way (``fap_defaults``, ``fap_setting_docs``,
``fap_secret_settings``) and must keep working unchanged: that form is a
promise to every plugin written against 1.0.

It greets each release with a file, and keeps a log in ``shared/`` of every
release it saw published and every run that failed.
"""

from __future__ import annotations

import posixpath
import shlex
from typing import Any

from fapistrano import hookimpl

__version__ = "0.1.0"


@hookimpl
def fap_defaults() -> dict[str, Any]:
    """Every setting this plugin reads, with its default."""
    return {
        "thirdparty_greeting": "hello from %(host)s in %(stage)s",
        "thirdparty_file": "GREETING.txt",
        "thirdparty_log": "%(shared_path)s/thirdparty.log",
        "thirdparty_token": "",
    }


@hookimpl
def fap_setting_docs() -> dict[str, str]:
    """One line per setting."""
    return {
        "thirdparty_greeting": "What the plugin writes into every release.",
        "thirdparty_file": "The file, in the release, that gets the greeting.",
        "thirdparty_log": "The log of published releases and failed runs, on each host.",
        "thirdparty_token": "Token of the greeting service.",
    }


@hookimpl
def fap_secret_settings() -> list[str]:
    """The token is a secret."""
    return ["thirdparty_token"]


@hookimpl
def fap_deploy_updated(ctx: Any) -> None:
    """Write the greeting into the new release."""
    target = posixpath.join(ctx.release_path, ctx.config["thirdparty_file"])
    ctx.run(f"printf '%s\\n' {shlex.quote(ctx.config['thirdparty_greeting'])} > {shlex.quote(target)}")
    ctx.log(f"greeted {ctx.release}")
    if ctx.config["thirdparty_token"]:
        ctx.log(f"greeting service token: {ctx.config['thirdparty_token']}")


@hookimpl
def fap_deploy_published(ctx: Any) -> None:
    """Note that this host now serves ``ctx.release``."""
    _append(ctx, f"published {ctx.release} on {ctx.host}")


@hookimpl
def fap_deploy_failed(ctx: Any, error: BaseException) -> None:
    """Note that the run failed (on this host or another)."""
    _append(ctx, f"failed {ctx.release} on {ctx.host}")


def _append(ctx: Any, line: str) -> None:
    log = ctx.config["thirdparty_log"]
    ctx.run(f"mkdir -p {shlex.quote(posixpath.dirname(log))} && printf '%s\\n' {shlex.quote(line)} >> {shlex.quote(log)}")
