"""``--hosts``: which hosts of the selected stage/roles a command acts on.

``-s``/``-r`` choose (stage, role) targets; ``--hosts`` then keeps, among their
hosts, those whose name matches one of its shell-style patterns. It only
filters: a host is never added to a target it is not a host of.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from fapistrano.config import HostSpec
from fapistrano.errors import ConfigError


class _Selectable(Protocol):
    @property
    def spec(self) -> HostSpec: ...

    @property
    def label(self) -> str: ...


M = TypeVar("M", bound=_Selectable)


def written_forms(spec: HostSpec) -> list[str]:
    """The names a pattern may match: the host's name, with and without its ``user@`` and ``:port``."""
    name = f"[{spec.name}]" if ":" in spec.name else spec.name  # an IPv6 address keeps its brackets before a port
    forms = [spec.name]
    if spec.port is not None:
        forms.append(f"{name}:{spec.port}")
    if spec.user:
        forms += [f"{spec.user}@{form}" for form in forms]
    return forms


def _written(spec: HostSpec) -> str:
    return written_forms(spec)[-1]


@dataclass(frozen=True)
class HostPatterns:
    """The patterns of ``--hosts`` (or the exact name of ``--host``), and the flag to name in errors."""

    patterns: tuple[str, ...]
    flag: str = "--hosts"
    exact: bool = False

    @classmethod
    def parse(cls, text: str) -> HostPatterns:
        """``"web[12],db*"`` -> the two patterns; an empty list is an error."""
        patterns = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
        if not patterns:
            raise ConfigError(f"command line: --hosts {text!r}: give at least one host name or pattern")
        return cls(patterns)

    @classmethod
    def exact_name(cls, name: str) -> HostPatterns:
        """``--host NAME``: one host, its name taken literally (no pattern)."""
        return cls((name,), flag="--host", exact=True)

    def matches(self, pattern: str, spec: HostSpec) -> bool:
        if self.exact:
            return pattern in written_forms(spec)
        return any(fnmatch.fnmatchcase(form, pattern) for form in written_forms(spec))

    def split(self, members: Sequence[M]) -> tuple[list[M], list[M]]:
        """``(selected, left out)``, in deploy.yml order; a pattern that matches no host is an error."""
        unmatched = [p for p in self.patterns if not any(self.matches(p, m.spec) for m in members)]
        if unmatched:
            hosts = ", ".join(dict.fromkeys(_written(m.spec) for m in members))
            targets = ", ".join(dict.fromkeys(m.label for m in members))
            which = ", ".join(unmatched)
            problem = "not a host of the selected targets" if self.exact else f"{which} matches none of the hosts of"
            raise ConfigError(f"command line: {self.flag} {','.join(self.patterns)}: {problem} {targets} ({hosts})")
        selected = [m for m in members if any(self.matches(p, m.spec) for p in self.patterns)]
        chosen = {id(m) for m in selected}
        return selected, [m for m in members if id(m) not in chosen]


def left_behind(switched: Sequence[tuple[str, str, str]], left_out: Sequence[tuple[str, str]]) -> list[str]:
    """After a partial deploy: a line per target whose hosts now disagree on ``current``.

    ``switched`` holds ``(target, host, release)`` for each host the run switched,
    ``left_out`` ``(target, host)`` for each host ``--hosts`` did not select.
    """
    lines = []
    for target in dict.fromkeys(t for t, _, _ in switched):
        others = [host for t, host in left_out if t == target]
        if not others:
            continue
        by_release: dict[str, list[str]] = {}
        for t, host, release in switched:
            if t == target:
                by_release.setdefault(release, []).append(host)
        now = "; ".join(f"{', '.join(hosts)} -> {release}" for release, hosts in by_release.items())
        lines.append(f"hosts of {target} now disagree on current: {now}; {', '.join(others)} (not selected) unchanged")
    return lines
