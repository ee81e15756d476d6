"""Fapistrano: Capistrano-style deploys for Python teams, extended with pluggy.

Writing a plugin
================

A plugin is a module with functions marked ``@hookimpl``, one per deploy
phase it cares about, and a ``fap_defaults`` that declares its settings::

    from fapistrano import hookimpl

    @hookimpl
    def fap_defaults():
        return {"hello_greeting": "hello from %(host)s"}

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
:class:`fapistrano.context.Context`.
"""

import pluggy

__version__ = "1.0.0"

#: Marks a function as an implementation of a Fapistrano hook.
hookimpl = pluggy.HookimplMarker("fapistrano")

#: Marks a function in :mod:`fapistrano.hookspecs` as a hook specification.
hookspec = pluggy.HookspecMarker("fapistrano")

from fapistrano.errors import CommandFailed as CommandFailed, FapError  # noqa: E402, I001  (public, after the markers)

__all__ = ["FapError", "__version__", "hookimpl", "hookspec"]
