"""Fapistrano: Capistrano-style deploys for Python teams, extended with pluggy.

Writing a plugin
================

A plugin is a module with functions marked ``@hookimpl``, one per deploy
phase it cares about, and a ``fap_settings`` that declares its settings::

    import shlex

    from fapistrano import Setting, hookimpl

    @hookimpl
    def fap_settings():
        return [Setting("hello_greeting", "hello from %(host)s", "What HELLO says.")]

    @hookimpl
    def fap_deploy_updated(ctx):
        ctx.run("echo " + shlex.quote(ctx.config["hello_greeting"]) + " > HELLO",
                cwd=ctx.release_path)

Ship it as a distribution with an entry point in the ``fapistrano`` group::

    [options.entry_points]
    fapistrano =
        hello = fapistrano_hello

and list its entry point name under ``plugins:`` in deploy.yml. Every hook
is documented in :mod:`fapistrano.hookspecs`; ``ctx`` is a
:class:`fapistrano.Context`. What a plugin imports comes from here:
``hookimpl``, ``Setting``, ``Context``, ``Run`` (what the run-level hooks
``fap_run_starting``, ``fap_run_finished`` and ``fap_check_run`` get), with
its ``RunTarget`` and ``RunOutcome``, ``HealthResult`` (what a
``fap_health_check`` answers), and the errors: ``FapError`` (fails
with a message, exit 1), ``ConfigError`` (bad input, exit 2),
``CommandFailed`` (what ``ctx.run`` raises). The test kit,
:mod:`fapistrano.testing`, is a pytest plugin a test suite enables with
``-p fapistrano.testing``.
"""

import pluggy

__version__ = "1.1.0"

#: Marks a function as an implementation of a Fapistrano hook.
hookimpl = pluggy.HookimplMarker("fapistrano")

#: Marks a function in :mod:`fapistrano.hookspecs` as a hook specification.
hookspec = pluggy.HookspecMarker("fapistrano")

# The public API, imported after the markers: these modules import them.
from fapistrano.context import Context  # noqa: E402
from fapistrano.errors import CommandFailed, ConfigError, FapError  # noqa: E402
from fapistrano.hosts import HealthResult  # noqa: E402
from fapistrano.run import Run, RunOutcome, RunTarget  # noqa: E402
from fapistrano.settings import Setting  # noqa: E402

__all__ = ["CommandFailed", "ConfigError", "Context", "FapError", "HealthResult", "Run", "RunOutcome", "RunTarget", "Setting", "__version__",
           "hookimpl", "hookspec"]
