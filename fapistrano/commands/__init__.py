"""One module per ``fap`` command: its click command (named ``command``), its plan, its rendering.

:mod:`fapistrano.cli` registers each module's ``command`` under the global
options; :mod:`~fapistrano.commands.wiring` holds the decorators they are
built with (``fleet_command`` for a command on stage/role targets). A new
command is a new module here, a :class:`fapistrano.flows.Command` in
:data:`fapistrano.flows.COMMANDS`, and its name in ``cli.COMMAND_MODULES``.

- :mod:`fapistrano.compose` (outside this package): a run composed in one place —
  deploy file, plugins, settings, targets, hosts, reporters, the engine.
- :mod:`~fapistrano.commands.changing`: what deploy, rollback and restart share —
  connect, lock, probe, ``fap_run_starting``, the phases, ``fap_run_finished``, the outcome.
- :mod:`~fapistrano.commands.deploy`, :mod:`~fapistrano.commands.rollback`,
  :mod:`~fapistrano.commands.restart`: which release each host works on.
- :mod:`~fapistrano.commands.once`, :mod:`~fapistrano.commands.shell`,
  :mod:`~fapistrano.commands.unlock`: operator commands on hosts.
- :mod:`~fapistrano.commands.check`, :mod:`~fapistrano.commands.releases`,
  :mod:`~fapistrano.commands.config`, :mod:`~fapistrano.commands.plugins`:
  read-only reports, gathered as plain data, then printed.
- :mod:`~fapistrano.commands.init`: writes a commented deploy.yml.

This package's ``__init__`` and :mod:`~fapistrano.commands.wiring` import
nothing heavy: ``fap --help`` loads them.
"""
