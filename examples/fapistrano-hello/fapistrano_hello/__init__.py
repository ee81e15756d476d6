"""fapistrano-hello: greets every host it is deployed to.

A complete third-party Fapistrano plugin in one module, one hookimpl per
phase family:

- release: ``fap_deploy_updated`` writes the greeting into the new release,
  ``fap_deploy_published`` records the release that went live in ``hello_log``;
- rollback: ``fap_deploy_reverted`` records where the rollback went;
- restart: ``fap_deploy_restarted`` records the restart;
- failure: ``fap_deploy_failed`` records why the run stopped.

Enable it in deploy.yml with ``plugins: [hello]`` (the entry point name in
setup.cfg).
"""

from __future__ import annotations

import shlex

from fapistrano import FapError, Setting, hookimpl

__version__ = "1.0.0"


# -- settings ----------------------------------------------------------------


@hookimpl
def fap_settings() -> list[Setting]:
    """Every setting this plugin reads: name, default and one line of description.

    Declaring them here is what lets ``fap config`` show them and
    ``fap deploy --hello-greeting "..."`` override them.
    """
    return [
        Setting("hello_greeting", "hello from %(host)s", "The text written into every release; %(name)s references work."),
        Setting("hello_file", "HELLO", "The file, relative to the release, that holds the greeting."),
        Setting("hello_log", "%(path)s/hello.log",
                "A file outside the releases where every release, rollback, restart and failure is recorded."),
    ]


# -- fap check ---------------------------------------------------------------


@hookimpl
def fap_check(ctx) -> list[str]:
    """Report a hello_log the deploy user could not append to."""
    log = ctx.config["hello_log"]
    if ctx.exists(log) and not ctx.test(f"test -w {shlex.quote(log)}"):
        return [f"hello_log {log} is not writable by {ctx.config['user']}"]
    return []


# -- release -----------------------------------------------------------------


@hookimpl
def fap_deploy_updated(ctx) -> None:
    """Write the greeting into the new release, next to the code."""
    name = ctx.config["hello_file"]
    if not name or name.startswith("/") or ".." in name.split("/"):
        # Raising FapError fails the deploy before any host switches.
        raise FapError(f"hello_file must be a path inside the release, got {name!r}")
    # Every value from configuration is quoted: a greeting may hold any text.
    ctx.run(f"printf '%s\\n' {shlex.quote(ctx.config['hello_greeting'])} > {shlex.quote(name)}",
            cwd=ctx.release_path)


@hookimpl
def fap_deploy_published(ctx) -> None:
    """Record the release that just went live (after a deploy or a rollback)."""
    _record(ctx, f"published {ctx.release}")


# -- rollback ----------------------------------------------------------------


@hookimpl
def fap_deploy_reverted(ctx) -> None:
    """Record which release the rollback leaves and which it returns to."""
    _record(ctx, f"rolled back from {ctx.rollback_from} to {ctx.release}")


# -- restart -----------------------------------------------------------------


@hookimpl
def fap_deploy_restarted(ctx) -> None:
    """Record a ``fap restart``."""
    _record(ctx, f"restarted {ctx.release}")


# -- failure -----------------------------------------------------------------


@hookimpl
def fap_deploy_failed(ctx, error: BaseException) -> None:
    """Record why the run stopped; called on every host of a failed run."""
    first_line = (str(error).splitlines() or [type(error).__name__])[0]
    # The error may quote a command holding a secret: mask before writing it.
    _record(ctx, f"failed: {ctx.mask(first_line)}")


def _record(ctx, line: str) -> None:
    log = ctx.config["hello_log"]
    ctx.run(f"printf '%s\\n' {shlex.quote(line)} >> {shlex.quote(log)}")
    ctx.log(line)
