"""What the command line chose for one run: :class:`Options`, read by the commands and the composition alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Options:
    """Run options, given before or after the command (after wins)."""

    deployfile: str | None = None
    dry_run: bool = False
    verbose: int = 0
    quiet: bool = False
    parallel: int | None = None
    log_json: str | None = None
    live: bool | None = None
    hosts: str | None = None  # --hosts: patterns filtering the selected targets' hosts
    wait_lock: str | None = None  # --wait-lock DURATION (changing commands): see fapistrano.freeze

    def merged(self, **later: Any) -> Options:
        values = {**self.__dict__}
        for name, value in later.items():
            if value not in (None, False, 0):
                values[name] = value
        return Options(**values)

    @property
    def verbosity(self) -> int:
        from fapistrano.ui import NORMAL, QUIET, VERBOSE

        if self.quiet:
            return QUIET
        return VERBOSE if self.verbose else NORMAL

    def plain(self) -> Options:
        """Read-only reports print lines and tables, not the live deploy view (unless --live asks)."""
        import dataclasses

        return self if self.live else dataclasses.replace(self, live=False)
