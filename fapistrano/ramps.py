"""Canary ramps: ``batch_size`` as one size or a list (``[1, 25%, 100%]``), and ``batch_pause`` between batches.

The sizes follow Ansible's ``serial``: each item is a number of hosts or a
percentage of the whole run's hosts (rounded down, at least 1); the batches
take the items in order and the last item repeats until every host has had
its batch. ``batch_size: 0`` (the default) is one batch of every host.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fapistrano.errors import ConfigError

T = TypeVar("T")

#: One item of a ramp: a number of hosts (``1``) or a percentage of the run's hosts (``"25%"``).
RampItem = int | str

_COUNT = re.compile(r"\d+")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)%")
_EXAMPLE = "[1, 25%, 100%]"


def check_batch_size(value: Any, where: str) -> int | list[RampItem]:
    """``batch_size`` from deploy.yml or the command line, checked: an int (``0``: all at once) or a non-empty ramp.

    ``where`` starts the error line (``deploy.yml:12: batch_size: `` or ``command line: --batch-size: ``).
    Raises :class:`~fapistrano.errors.ConfigError` naming the bad item.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{where}expected a number of hosts, a percentage or a list like {_EXAMPLE}, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"{where}must be 0 (all at once) or more, got {value}")
        return value
    if isinstance(value, str) and "," in value:
        raise ConfigError(f"{where}{value!r} is one string; write a list (did you mean [{value.replace(',', ', ')}]?)")
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise ConfigError(f"{where}an empty list; give at least one size, e.g. {_EXAMPLE} (or 0: all at once)")
    return [_item(item, where) for item in items]


def _item(item: Any, where: str) -> RampItem:
    text = str(item).strip() if isinstance(item, (str, int, float)) and not isinstance(item, bool) else None
    if text is not None and _COUNT.fullmatch(text):
        if int(text) < 1:
            raise ConfigError(f"{where}{text} hosts in a batch; each size must be at least 1 (or a percentage like 25%)")
        return int(text)
    match = _PERCENT.fullmatch(text or "")
    if match:
        percent = float(match.group(1))
        if not 0 < percent <= 100:
            raise ConfigError(f"{where}{text}: a percentage of the hosts is more than 0% and at most 100%")
        return f"{match.group(1)}%"
    hint = _did_you_mean(text)
    raise ConfigError(f"{where}{item!r} is not a number of hosts (1 or more) or a percentage like 25%{hint}")


def _did_you_mean(text: str | None) -> str:
    """A guess at what a size that does not parse meant: ``%25``, ``25 %``, ``0.25``, ``-1``."""
    if text is None:
        return ""
    squeezed = text.replace(" ", "")
    if squeezed.startswith("%") and _COUNT.fullmatch(squeezed[1:]):
        return f" (did you mean {squeezed[1:]}%?)"
    if squeezed != text and (_PERCENT.fullmatch(squeezed) or _COUNT.fullmatch(squeezed)):
        return f" (did you mean {squeezed}?)"
    if re.fullmatch(r"0?\.\d+", squeezed):
        return f" (did you mean {float(squeezed) * 100:g}%?)"
    if re.fullmatch(r"-\d+", squeezed):
        return " (each size must be at least 1)"
    return ""


def parse_cli_batch_size(text: str) -> int | list[RampItem]:
    """``--batch-size 2`` or ``--batch-size 1,25%,100%`` (or ``[1, 25%, 100%]``), checked."""
    where = "command line: --batch-size: "
    stripped = text.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        stripped = stripped[1:-1]
    if not stripped:
        raise ConfigError(f"{where}an empty value; give a size or a list like 1,25%,100%")
    if "," not in stripped:
        if re.fullmatch(r"-?\d+", stripped):
            return check_batch_size(int(stripped), where)
        return check_batch_size([stripped], where)
    return check_batch_size([part for part in stripped.split(",")], where)


def check_batch_pause(value: Any, where: str) -> float:
    """``batch_pause`` checked: seconds, 0 or more (``30``, ``2.5``); ``30s`` gets a did-you-mean."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            seconds = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds|m|min)", text)
            hint = ""
            if seconds:
                number = float(seconds.group(1)) * (60 if seconds.group(2).startswith("m") else 1)
                hint = f" (did you mean {number:g}?)"
            raise ConfigError(f"{where}expected a number of seconds, got {value!r}{hint}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(f"{where}expected a number of seconds, got {value!r}")
    if value < 0:
        raise ConfigError(f"{where}must be 0 (no pause) or more seconds, got {value:g}")
    return float(value)


def batch_sizes(spec: int | Sequence[RampItem], total: int) -> list[int]:
    """How many hosts each batch of a run of ``total`` hosts gets.

    >>> batch_sizes([1, "25%", "100%"], 10)
    [1, 2, 7]
    >>> batch_sizes(2, 5)
    [2, 2, 1]
    """
    if total <= 0:
        return []
    if isinstance(spec, int):
        spec = [spec] if spec else ["100%"]
    sizes: list[int] = []
    left = total
    index = 0
    while left > 0:
        item = spec[min(index, len(spec) - 1)]
        size = max(1, int(total * float(item[:-1]) / 100)) if isinstance(item, str) else int(item)
        size = min(size, left)
        sizes.append(size)
        left -= size
        index += 1
    return sizes


def split(members: Sequence[T], spec: int | Sequence[RampItem]) -> list[list[T]]:
    """``members`` in their order, cut into the batches of ``spec``."""
    batches: list[list[T]] = []
    start = 0
    for size in batch_sizes(spec, len(members)):
        batches.append(list(members[start:start + size]))
        start += size
    return batches


def describe_plan(batches: Sequence[Sequence[Any]], name: Callable[[Any], str], pause: float) -> str:
    """One line listing every batch and its hosts (``--dry-run`` and the run's start show it)."""
    listed = "; ".join(f"{number}) {', '.join(name(m) for m in batch)}" for number, batch in enumerate(batches, start=1))
    between = f", {pause:g}s pause between batches" if pause else ""
    return f"{len(batches)} batches{between}: {listed}"


def pause(runner: Any, seconds: float, next_number: int, count: int) -> None:
    """Wait ``seconds`` before batch ``next_number`` of ``count``; a signal (``runner.stopping``) ends the wait at once.

    One ``run`` event says the pause (its ``data.pause_until`` lets the live
    view count it down); a dry run says it would pause and does not wait.
    """
    if seconds <= 0 or runner.stopping.is_set():
        return
    if runner.dry_run:
        runner.emit("run", f"would pause {seconds:g}s before batch {next_number}/{count}")
        return
    until = time.time() + seconds
    runner.emit("run", f"pausing {seconds:g}s before batch {next_number}/{count} (Ctrl-C stops the run here)",
                data={"pause_until": until})
    deadline = time.monotonic() + seconds
    # Short waits: the signal handler sets the flag from the main thread, between two of them at worst.
    while not runner.stopping.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            break
        runner.stopping.wait(min(left, 0.2))


#: The settings whose values this module checks (:func:`fapistrano.config.check_type` calls them), by name.
CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "batch_size": check_batch_size,
    "batch_pause": check_batch_pause,
}
