"""The core's own plugins: hookimpls registered like any plugin, under names starting with ``core.``.

- :mod:`~fapistrano.builtin.dirs`: directories, linked-file checks, the new release dir.
- :mod:`~fapistrano.builtin.shared`: links shared files into the release, writes ``.env``.
- :mod:`~fapistrano.builtin.switch`: the atomic switch of ``current`` (warning when the release is empty).
- :mod:`~fapistrano.builtin.cleanup`: old releases, and the release a rollback left.
- :mod:`~fapistrano.builtin.checks`: ``fap check``'s own checks (directories writable, linked files, the lock).
- :mod:`~fapistrano.builtin.run_steps` (``core.steps``): the ``run:`` steps of deploy.yml's ``hooks:``, last in each phase.
- :mod:`~fapistrano.builtin.core` (``core.settings``): the core's own settings, declared with ``Setting``.
- :mod:`~fapistrano.builtin.health`: the health check after the switch (the runner decides for the fleet).
- :mod:`~fapistrano.builtin.migrations`: the ``migrated`` mark of a release whose migration ran, on every host.

Each built-in does its work on a host in one remote script: one round trip per host per phase (a step of
``hooks:`` is one per step).
"""
