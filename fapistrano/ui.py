"""What the operator sees: a rich live view on a terminal, plain lines elsewhere, JSON events.

The runner and each host's ``ctx`` emit :class:`Event` objects (already
masked); reporters turn them into output. Nothing here reaches back into
the run.
"""

from __future__ import annotations

import errno
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import IO, Any, Literal, get_args

from fapistrano.flows import LAST_PHASES

QUIET, NORMAL, VERBOSE = 0, 1, 2

#: What an :class:`Event` reports (docs/failures.rst lists them for ``--log-json`` readers; a test keeps both equal):
#: ``run`` a line about the whole run (what it acts on, a batch starting);
#: ``phase`` a host starting or ending a phase (``status`` start/ok/failed);
#: ``phase_done`` every host ended a phase (``status`` ok/failed);
#: ``command`` a command sent to a host (``data.dry_run`` when only shown);
#: ``output`` a line a command printed (``data.stream``; not in the JSON log);
#: ``log``, ``warning``, ``error`` a line from fap or a plugin.
EventKind = Literal["run", "phase", "phase_done", "command", "output", "log", "warning", "error"]
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)

#: A phase event's ``status``.
PhaseStatus = Literal["start", "ok", "failed"]


# C0 controls but tab and newline, DEL, and C1 controls: a terminal acts on them (titles, erasing, moving the cursor).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with every control character a terminal would act on shown as ``\\xNN`` (``\\x1b[2K``).

    Host output and error lines reach the operator's terminal: an escape
    sequence in them must not set its title, erase lines or move the cursor.
    A line's closing carriage return (CRLF output) is dropped.
    """
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text.replace("\r\n", "\n").removesuffix("\r"))


def json_line(value: Any) -> str:
    """``value`` as one line of JSON for stdout (``--json``): UTF-8 kept readable, but every control character escaped.

    JSON leaves DEL and the 8-bit controls (``\\x9b`` is an escape sequence's
    start) raw in strings; a record edited by hand on a host must not act on the
    terminal of whoever reads ``fap history --json``.
    """
    text = json.dumps(value, ensure_ascii=False)
    return _CONTROL.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


@dataclass(frozen=True)
class Event:
    """One thing that happened in a run: ``kind`` is an :data:`EventKind`."""

    kind: EventKind
    host: str | None = None
    phase: str | None = None
    status: PhaseStatus | None = None
    message: str = ""
    duration: float | None = None
    time: float = field(default_factory=time.time)
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:  # a misspelled kind would vanish from every reporter
            raise ValueError(f"unknown event kind {self.kind!r}")


@dataclass
class HostResult:
    """How a host's run ended, for the summary."""

    host: str
    target: str
    status: str  # "ok", "failed", "skipped", "reverted", "dropped", "unhealthy"
    release: str = ""
    duration: float = 0.0
    error: str = ""
    commands: int = 0
    current: str = ""  # where ``current`` is after the run: "unchanged", "now RELEASE", or "" (never reached)
    round_trips: int = 0  # writes of commands to the host whose answer fap waited for (the probe and unlock included)


#: How much of a command's output a reporter reads (:meth:`Reporter.output_wanted`), least first.
OUTPUT_WANTED = ("none", "latest", "all")


def line_reader(reporter: Any, on_line: Callable[[str, str], None]) -> Callable[[str, str], None] | None:
    """What reads a command's output for ``reporter``: ``on_line`` for each line, for the latest line, or nothing.

    Nobody reading them (no ``-v``, no live view), a command printing
    millions of lines costs no event per line (see :class:`fapistrano.remote.Output`).
    """
    wanted = getattr(reporter, "output_wanted", lambda: "all")() if reporter is not None else "none"
    if wanted == "none":
        return None
    if wanted == "latest":
        def latest(stream: str, line: str) -> None:
            on_line(stream, line)

        latest.latest_only = True  # type: ignore[attr-defined]
        return latest
    return on_line


class Reporter:
    """Receives events; subclasses print or write them."""

    def handle(self, event: Event) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def output_wanted(self) -> str:
        """Which ``output`` events this reporter reads: ``"all"``, ``"latest"`` (a line now and then) or ``"none"``.

        A command printing millions of lines then costs no event per line
        when nobody reads them. A reporter that does not say reads all.
        """
        return "all"

    def summary(self, title: str, results: list[HostResult], ok: bool) -> None:
        """The run is over: show how each host ended."""

    def close(self) -> None:
        """Stop any live display."""


class Fanout(Reporter):
    """Sends every event to several reporters."""

    def __init__(self, reporters: Iterable[Reporter]) -> None:
        self.reporters = list(reporters)
        self._lock = threading.RLock()

    def handle(self, event: Event) -> None:
        with self._lock:
            for reporter in self.reporters:
                reporter.handle(event)

    def output_wanted(self) -> str:
        return max((reporter.output_wanted() for reporter in self.reporters), key=OUTPUT_WANTED.index, default="none")

    def summary(self, title: str, results: list[HostResult], ok: bool) -> None:
        with self._lock:
            for reporter in self.reporters:
                reporter.summary(title, results, ok)

    def close(self) -> None:
        with self._lock:
            for reporter in self.reporters:
                reporter.close()


def _summary_table(title: str, results: list[HostResult], ok: bool, width: int = 0) -> Any:
    """host, target, result, release, current (when the run failed), time, error: one line per host.

    ``width`` (the console's) keeps rows to one line: the error is cut to the
    room left, or left out when under 20 columns remain — it is printed in full
    above the table and as the last line anyway. Folded into a narrow column it
    took ten lines per host and hid the other columns.
    """
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", expand=False)
    cells = {
        "host": [r.host for r in results], "target": [r.target for r in results], "result": [r.status for r in results],
        "release": [r.release for r in results],
        # Where current is matters when the run failed (after a success it is the release on every host).
        **({} if ok else {"current": [r.current for r in results]}),
        "time": [f"{r.duration:.1f}s" for r in results],
    }
    widths = {column: max(len(column), *(len(v) for v in values)) for column, values in cells.items()}
    used = sum(widths.values()) + 3 * len(widths) + 1  # each column: padding 2, border 1; plus the last border
    fits = not width or used <= width
    for column in cells:
        table.add_column(column, no_wrap=fits, min_width=widths[column] if fits else None)
    room = (width - used - 3) if width else 10_000
    show_errors = fits and room >= 20 and any(r.error for r in results)
    if show_errors:
        table.add_column("error", no_wrap=True)
    styles = {"ok": "green", "failed": "bold red", "reverted": "yellow", "skipped": "dim", "dropped": "red", "unhealthy": "red"}
    for result in results:
        row = [
            Text(result.host),
            Text(result.target),
            Text(result.status, style=styles.get(result.status, "")),
            Text(result.release),
            *([] if ok else [Text(result.current)]),
            Text(f"{result.duration:.1f}s"),
        ]
        if show_errors:
            # Text, not markup: an error may hold brackets ("[Errno 28]").
            row.append(Text(result.error if len(result.error) <= room else result.error[:room - 1] + "…"))
        table.add_row(*row)
    return table


def _plain_table(title: str, results: list[HostResult], ok: bool) -> list[str]:
    """The summary as plain lines: ASCII, columns two spaces apart, nothing cut or padded at the end.

    For pipes and CI logs, where a box-drawn table is noise and a cut error is lost.
    An empty cell reads ``-`` so that every row splits into the same columns.
    """
    columns = ["host", "target", "result", "release", *([] if ok else ["current"]), "time"]
    rows = [[r.host, r.target, r.status, r.release, *([] if ok else [r.current]), f"{r.duration:.1f}s"] for r in results]
    if any(r.error for r in results):
        columns.append("error")
        for row, result in zip(rows, results, strict=True):
            row.append(" ".join(result.error.split()))  # one line, whatever the command printed
    rows = [[cell or "-" for cell in row] for row in rows]
    widths = [max(len(row[index]) for row in [columns, *rows]) for index in range(len(columns))]
    return [title, *("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in [columns, *rows])]


def _natural(name: str) -> list[Any]:
    """Sort key: host2 before host10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


class DryRunPlan:
    """Under ``--dry-run``: what each host would run, told per phase once every host is through it.

    In words first - which plugin would run how many commands - with the hosts that
    would do the same on one line; with ``-v`` the shell follows, once per group of
    hosts whose shell is the same. Ninety lines of shell for one host told nobody
    what a deploy would do.
    """

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self._commands: dict[str, list[tuple[str, str]]] = {}  # host -> [(plugin, shell)] of the phase running

    def record(self, event: Event) -> bool:
        """Keep ``event`` if it is a command that was not run; True when it was kept."""
        # Only a plugin's commands (named by the step): fap's own (fap once) are shown as they come.
        if event.kind != "command" or not event.data.get("dry_run") or not event.host or not event.data.get("step"):
            return False
        self._commands.setdefault(event.host, []).append((step_label(event.data["step"]), event.message))
        return True

    def phase_lines(self, phase: str) -> list[str]:
        """``hosts | phase | would run: …`` (and the shell under -v) for the phase every host just ended."""
        groups: dict[Any, list[str]] = {}
        for host in sorted(self._commands, key=_natural):
            commands = self._commands[host]
            counts: dict[str, int] = {}
            for plugin, _ in commands:
                counts[plugin] = counts.get(plugin, 0) + 1
            words = ", ".join(f"{plugin} ({n} command{'s' if n != 1 else ''})" for plugin, n in counts.items())
            group = (words, tuple(shell for _, shell in commands)) if self.verbose else (words, ())
            groups.setdefault(group, []).append(host)
        self._commands = {}
        lines = []
        for (words, shells), hosts in groups.items():
            where = f"{', '.join(hosts)} | {phase} |"
            lines.append(f"{where} would run: {words}")
            for shell in shells:
                lines.extend(f"{where}   {'$' if index == 0 else ' '} {text}" for index, text in enumerate(shell.splitlines()))
        return lines


class PlainReporter(Reporter):
    """Greppable lines, ``host | phase | message``, for pipes and CI logs."""

    def __init__(self, console: Any, verbosity: int = NORMAL, dry_run: bool = False) -> None:
        self.console = console
        self.verbosity = verbosity
        self.plan = DryRunPlan(verbosity >= VERBOSE) if dry_run else None

    def output_wanted(self) -> str:
        return "all" if self.verbosity >= VERBOSE else "none"

    def _line(self, host: str | None, phase: str | None, message: str, style: str = "") -> None:
        parts = [p for p in (host, phase) if p]
        prefix = " | ".join(parts)
        text = f"{prefix} | {message}" if prefix else message
        self.console.print(text, style=style or None, markup=False, highlight=False, soft_wrap=True)

    def _output_line(self, host: str | None, phase: str | None, message: str) -> None:
        # A command's output line is the one line printed by the million: written as it is, past rich's
        # rendering (~0.5 ms a line), as _line would print it unstyled.
        prefix = " | ".join(p for p in (host, phase) if p)
        file = self.console.file
        file.write(f"{prefix} |   {message}\n" if prefix else f"  {message}\n")
        file.flush()

    def handle(self, event: Event) -> None:
        kind, verbose = event.kind, self.verbosity >= VERBOSE
        if self.plan is not None and self.plan.record(event):
            return
        if self.plan is not None and kind == "phase_done" and self.verbosity > QUIET:
            for line in self.plan.phase_lines(event.phase or ""):
                self._line(None, None, line)
            if not verbose:
                return
        if self.plan is not None and kind == "log" and not verbose and not event.message.startswith("would "):
            return  # a plugin's log says what it did ("linked …"): in a dry run it did nothing; "would …" says what it would
        if kind == "error" or (kind == "phase" and event.status == "failed"):
            self._line(event.host, event.phase, f"FAILED: {event.message}" if kind == "phase" else event.message, "red")
        elif self.verbosity <= QUIET:
            return
        elif kind == "warning":
            self._line(event.host, event.phase, f"warning: {event.message}", "yellow")
        elif kind == "phase" and event.status in ("ok", "skipped") and verbose:
            self._line(event.host, event.phase, f"{event.status} ({event.duration or 0:.2f}s)")
        elif kind == "phase_done":
            self._line("all hosts", event.phase, f"{event.message} ({event.duration or 0:.2f}s)")
        elif kind == "log":
            self._line(event.host, event.phase, event.message)
        elif kind == "run":
            self._line(None, None, event.message, "bold")
        elif kind == "command" and (verbose or event.data.get("dry_run")):
            prefix = "would run" if event.data.get("dry_run") else "$"
            for index, line in enumerate(event.message.splitlines() or [""]):
                self._line(event.host, event.phase, f"{prefix if index == 0 else ' ' * len(prefix)} {line}")
        elif kind == "output" and verbose:
            self._output_line(event.host, event.phase, event.message)

    def summary(self, title: str, results: list[HostResult], ok: bool) -> None:
        if results:
            for line in _plain_table(title, results, ok):
                self.console.print(line, markup=False, highlight=False, soft_wrap=True)


#: What the events of the health check give as their phase (it runs between two phases, on its own).
HEALTH_PHASE = "healthcheck"


def step_label(plugin: str) -> str:
    """How a plugin is named beside the phase: its last dotted part (``fapistrano.virtualenv`` -> ``virtualenv``)."""
    return plugin.rsplit(".", 1)[-1]


def _tail(text: str, width: int) -> str:
    """``text`` cut to ``width`` from the left: the end of a line (a release name, a path's last part) matters most."""
    return text if len(text) <= width else "…" + text[len(text) - width + 1:]


class LiveReporter(Reporter):
    """A rich live view: one row per host with its state, phase and plugin, elapsed time, last output line.

    A host that has finished the phase shows ✓, its clock stopped and the hosts it
    waits for, so the slow host is the one still spinning. The view is erased at the
    end: the summary table is the one table left on screen.
    """

    def __init__(self, console: Any, verbosity: int = NORMAL, dry_run: bool = False) -> None:
        from rich.live import Live

        self.console = console
        self.verbosity = verbosity
        self.plan = DryRunPlan(verbosity >= VERBOSE) if dry_run else None
        self._rows: dict[str, dict[str, Any]] = {}
        self._started = time.monotonic()
        self._waiting: Any = None
        self._pause_until: float | None = None  # batch_pause: the wall time the next batch starts, counted down below the rows
        self._live = Live(get_renderable=self._render, console=console, refresh_per_second=10, transient=True)
        self._live.start()

    def output_wanted(self) -> str:
        return "all" if self.verbosity >= VERBOSE else "latest"  # the last output column shows one line per host

    def _row(self, host: str) -> dict[str, Any]:
        from rich.spinner import Spinner

        # One spinner per row, kept: a Spinner made afresh at every refresh never leaves its first frame.
        # Elapsed counts from the run's start, like the summary's time column.
        return self._rows.setdefault(host, {"phase": "connecting", "step": "", "line": "", "status": "running",
                                            "start": self._started, "end": None, "spinner": Spinner("dots", style="cyan")})

    def handle(self, event: Event) -> None:
        if event.host:
            self._update_row(self._row(event.host), event)
        if self.plan is not None and self.plan.record(event):
            return
        if self.plan is not None and event.kind == "phase_done" and self.verbosity > QUIET:
            for line in self.plan.phase_lines(event.phase or ""):
                self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        elif self.plan is not None and event.kind == "log" and self.verbosity < VERBOSE and not event.message.startswith("would "):
            return  # a plugin's log says what it did ("linked …"): in a dry run it did nothing; "would …" says what it would
        if event.kind == "run":
            self._pause_until = event.data.get("pause_until")
            self.console.print(event.message, style="bold", markup=False, highlight=False)
        elif event.kind == "error" or (event.kind == "phase" and event.status == "failed"):
            where = " | ".join(p for p in (event.host, event.phase) if p)
            self.console.print(f"[red]{where + ' | ' if where else ''}{_escape(event.message)}[/red]")
        elif event.kind == "warning" and self.verbosity >= NORMAL:
            self.console.print(f"[yellow]warning: {_escape(event.message)}[/yellow]")
        elif event.kind == "command" and (self.verbosity >= VERBOSE or event.data.get("dry_run")):
            label = "would run" if event.data.get("dry_run") else "$"
            where = " | ".join(p for p in (event.host, event.phase) if p)  # a local step has no host
            self.console.print(f"[dim]{where} | {label} {_escape(event.message)}[/dim]")
        elif event.kind == "output" and self.verbosity >= VERBOSE:
            where = " | ".join(p for p in (event.host, event.phase) if p)
            self.console.print(f"[dim]{where} |   {_escape(event.message)}[/dim]")
        elif event.kind == "log" and self.verbosity >= NORMAL:
            where = " | ".join(p for p in (event.host, event.phase) if p)  # run.log has no host
            self.console.print(f"{where} | {_escape(event.message)}")

    def _update_row(self, row: dict[str, Any], event: Event) -> None:
        kind, now = event.kind, time.monotonic()
        if kind == "phase" and event.status == "start":
            # A new phase: what the last one printed (a no-op notice, say) is no longer this host's news.
            row.update(phase=event.phase, step="", line="", status="running", end=None)
        elif kind == "phase" and event.status == "failed":
            row.update(phase=event.phase, status="failed", line=event.message, end=now)
        elif kind == "phase" and event.status == "ok":
            # Done with its flow (with --batch-size the next batch runs on), or with this phase:
            # either way its spinner and clock stop, and the hosts still working stand out.
            last = event.phase in LAST_PHASES
            row.update(status="ok" if last else "waiting", end=now, **({"phase": "done", "step": ""} if last else {}))
        elif event.phase == HEALTH_PHASE and kind in ("command", "log", "error", "output"):
            self._update_health_row(row, event, now)
        elif kind in ("command", "log", "warning", "output"):
            if event.data.get("step"):
                row["step"] = event.data["step"]
            if kind == "command" and event.data.get("dry_run"):
                row["line"] = "would run: " + (event.message.splitlines() or [""])[0]
            elif kind != "command" and event.message.strip():
                row["line"] = event.message.strip()
        elif kind == "result":
            row.update(status=event.status, end=now, phase="done" if event.status == "ok" else event.status)

    @staticmethod
    def _update_health_row(row: dict[str, Any], event: Event, now: float) -> None:
        """The health check is a row's phase of its own: each attempt counted, its last output shown, then its verdict."""
        if row["phase"] != HEALTH_PHASE:
            row.update(phase=HEALTH_PHASE, step="", line="", status="running", end=None, attempts=0)
        if event.kind == "command":
            row["attempts"] = row.get("attempts", 0) + 1
            if event.data.get("dry_run"):
                row["line"] = "would run: " + (event.message.splitlines() or [""])[0]
        elif event.kind == "output" and event.message.strip():
            row["line"] = event.message.strip()
        elif event.kind == "log":  # passed: its clock stops, like a host done with a phase
            row.update(status="waiting", end=now, line=event.message.strip())
        elif event.kind == "error":
            row.update(status="failed", end=now, line=event.message.strip())

    def _render(self) -> Any:
        from rich.spinner import Spinner
        from rich.table import Table
        from rich.text import Text

        if not self._rows:
            # Before any host reports (connecting, taking the lock) a bare header looked like a hang.
            if self._waiting is None:
                self._waiting = Spinner("dots", style="cyan")
            self._waiting.update(text=Text(f"connecting… {time.monotonic() - self._started:.1f}s", style="dim"))
            return self._waiting

        now = time.monotonic()
        cells = []
        for host, row in self._rows.items():
            status = row["status"]
            phase = f"{row['phase']}: {step_label(row['step'])}" if row["step"] and status in ("running", "failed") else row["phase"]
            if row["phase"] == HEALTH_PHASE and row.get("attempts"):
                phase = f"{HEALTH_PHASE}: attempt {row['attempts']}"
            line = row["line"]
            if status == "waiting":
                slow = [h for h, r in self._rows.items() if r["status"] == "running" and r["phase"] == row["phase"]]
                line = f"done, waiting for {', '.join(slow) if len(slow) <= 3 else f'{len(slow)} hosts'}" if slow else "done"
            cells.append((host, status, row, phase, f"{(row['end'] or now) - row['start']:.1f}s", line))
        host_width = max(4, *(len(c[0]) for c in cells))
        phase_width = max(10, *(len(c[3]) for c in cells))  # at least 10: rows do not jump as phases change
        elapsed_width = max(7, *(len(c[4]) for c in cells))
        # Each column is 2 apart; what is left is the last output's, cut from the left (see _tail).
        line_width = max(20, self.console.width - host_width - 2 - phase_width - elapsed_width - 8)

        table = Table(box=None, show_header=True, header_style="bold", expand=False, pad_edge=False)
        table.add_column("host", no_wrap=True)
        table.add_column("", width=2)
        table.add_column("phase", no_wrap=True, min_width=10)
        table.add_column("elapsed", justify="right", no_wrap=True)
        table.add_column("last output", no_wrap=True, overflow="crop")
        marks = {"ok": Text("✓", style="green"), "waiting": Text("✓", style="dim green"), "failed": Text("✗", style="red"),
                 "reverted": Text("↺", style="yellow"), "skipped": Text("-", style="dim"), "dropped": Text("✗", style="red")}
        for host, status, row, phase, elapsed, line in cells:
            table.add_row(host, marks.get(status) or row["spinner"], phase, elapsed, Text(_tail(line, line_width), style="dim"))
        if self._pause_until is not None and time.time() < self._pause_until:
            from rich.console import Group

            return Group(table, Text(f"next batch in {self._pause_until - time.time():.0f}s (Ctrl-C stops the run)", style="bold yellow"))
        return table

    def summary(self, title: str, results: list[HostResult], ok: bool) -> None:
        self.close()  # the live view goes: the summary below says how each host ended, with more
        if results:
            self.console.print(_summary_table(title, results, ok, self.console.width))

    def close(self) -> None:
        if self._live.is_started:
            self._live.stop()


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


#: Characters of one text of a JSON log event (a command's script, an error) kept: its start, then a count.
JSON_TEXT_CHARS = 16 * 1024


def bounded(text: str, limit: int = JSON_TEXT_CHARS) -> str:
    """``text``, or its first ``limit`` characters and how many more there were."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


class JsonLog(Reporter):
    """``--log-json FILE``: one JSON object per line for every event but output lines.

    Every text is bounded (:func:`bounded`): a script of megabytes is
    summarised by its start and its size. A write that fails (a full disk, a
    pipe whose reader left) is told once to ``on_error`` and ends the log;
    the run itself goes on.
    """

    def __init__(self, stream: IO[str], on_error: Callable[[OSError], None] | None = None) -> None:
        self.stream = stream
        self.on_error = on_error
        self.broken = False

    def _write(self, lines: list[dict[str, Any]]) -> None:
        if self.broken:
            return
        try:
            for line in lines:
                self.stream.write(json.dumps(line, sort_keys=True) + "\n")
            self.stream.flush()
        except OSError as error:
            self.broken = True
            if self.on_error is not None:
                self.on_error(error)

    def output_wanted(self) -> str:
        return "none"

    def handle(self, event: Event) -> None:
        if event.kind == "output":
            return
        self._write([{k: _bounded(v) for k, v in asdict(event).items() if v not in (None, "", {})}])

    def summary(self, title: str, results: list[HostResult], ok: bool) -> None:
        self._write([*({"kind": "summary", **{k: _bounded(v) for k, v in asdict(result).items()}} for result in results),
                     {"kind": "end", "ok": ok, "title": title}])

    def close(self) -> None:
        try:
            self.stream.close()
        except OSError:
            pass  # what was left in the buffer could not be written: said already, or nothing was left


def open_event_log(path: str, wait: float = 2.0) -> IO[str]:
    """``--log-json``'s file, opened to append without ever blocking the run before it starts.

    A FIFO's plain ``open`` waits for a reader, forever when none comes: it
    is opened non-blocking instead, tried again for ``wait`` seconds (a
    reader started at the same moment as fap), then refused. Once open,
    writes block as usual. Raises :class:`OSError` whose ``strerror`` says why.
    """
    import fcntl
    import stat

    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC
    deadline = time.monotonic() + wait
    while True:
        try:
            fd = os.open(path, flags, 0o666)
            break
        except OSError as error:
            if error.errno != errno.ENXIO or not stat.S_ISFIFO(os.stat(path).st_mode):
                raise
            if time.monotonic() >= deadline:
                raise OSError(errno.ENXIO, "a FIFO that no process reads; start its reader first", path) from None
            time.sleep(0.05)
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return os.fdopen(fd, "a", encoding="utf-8")


def _bounded(value: Any) -> Any:
    if isinstance(value, str):
        return bounded(value)
    if isinstance(value, dict):
        return {key: _bounded(item) for key, item in value.items()}
    return value


def make_console(stderr: bool = False) -> Any:
    """The one console of a run."""
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    # Into a pipe or a file every line is printed whole: a reader (grep, a CI log) has no width to wrap at.
    console.soft_wrap = not console.is_terminal
    return console


def print_table(console: Any, table: Any) -> None:
    """Print a rich table; into a pipe or a file at its natural width, so that no cell is cut to fit 80 columns.

    A CI log or ``| grep`` has no width to fit: ``who`` cut to ``ro…`` loses
    what the reader came for.
    """
    if console.is_terminal:
        console.print(table)
    else:
        natural = console.measure(table, options=console.options.update_width(_WIDEST)).maximum
        width = console.width
        console.width = max(width, natural)  # print(width=) only narrows
        try:
            console.print(table)
        finally:
            console.width = width


#: The widest a table printed into a pipe gets (a cell of 100 000 characters still folds).
_WIDEST = 1000


def make_reporter(console: Any, verbosity: int, live: bool | None = None, dry_run: bool = False) -> Reporter:
    """A live view on an interactive terminal, plain lines otherwise; under ``dry_run`` both tell the plan."""
    if live is None:
        live = console.is_interactive and not console.is_dumb_terminal
    return LiveReporter(console, verbosity, dry_run) if live else PlainReporter(console, verbosity, dry_run)
