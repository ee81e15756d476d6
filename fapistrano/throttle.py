"""Throttles: at most N hosts of a run inside the same piece of work at once (``parallel: N``, ``ctx.throttle``).

A phase runs on every host in parallel; a throttled step or command holds one
of its name's N slots while it runs, and a host that finds none free waits
for one. The rest of the phase is not held back, and the phase still ends on
every host before the next one starts. One :class:`Throttles` per run is
shared by every host's ``ctx``, so a name is throttled fleet-wide.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fapistrano.errors import Interrupted

#: How often (seconds) a host waiting for a slot looks whether the run is being stopped.
POLL = 0.1


class Throttles:
    """The run's throttles by name, each a count of slots; safe from every host's thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, tuple[int, threading.Semaphore]] = {}

    def _semaphore(self, name: str, count: int) -> threading.Semaphore:
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"throttle {name!r}: expected a count of hosts at once, 1 or more, got {count!r}")
        with self._lock:
            known = self._slots.get(name)
            if known is None:
                known = self._slots[name] = (count, threading.Semaphore(count))
            elif known[0] != count:
                # Two counts for one name would make the limit depend on who came first.
                raise ValueError(f"throttle {name!r} is used with {known[0]} at a time already, not {count}")
            return known[1]

    @contextmanager
    def hold(self, name: str, count: int, stopping: Any = None, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold one of ``name``'s ``count`` slots for the ``with`` block; wait while all are held.

        ``stopping`` (a :class:`threading.Event`, set on Ctrl-C or SIGTERM)
        ends the wait with :class:`~fapistrano.errors.Interrupted`: a host
        still waiting starts nothing new. ``on_wait`` is called once when
        every slot is taken (the live view then says why the host waits).
        """
        semaphore = self._semaphore(name, count)
        held = semaphore.acquire(blocking=False)
        if not held and on_wait is not None:
            on_wait()
        while not held:
            held = semaphore.acquire(timeout=POLL)
            if not held and stopping is not None and stopping.is_set():
                raise Interrupted(f"interrupted while waiting for {name} ({count} at a time)")
        try:
            yield
        finally:
            semaphore.release()
