"""One module per ``fap`` command; :mod:`fapistrano.cli` parses the command line, calls one, renders what it returns.

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
  read-only reports, returned as plain data.
- :mod:`~fapistrano.commands.init`: writes a commented deploy.yml.

This package's ``__init__`` and :mod:`~fapistrano.commands.options` import
nothing heavy: ``fap --help`` loads them.
"""
