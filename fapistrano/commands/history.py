"""``fap history``: the runs that changed the selected hosts, newest first, merged across hosts by run id.

Read-only and lock-free: each host's history file is read in one round trip
(its last ``-n`` records: a run leaves one record per host, so they hold the
newest ``-n`` runs of that host). A host deployed by an older fap has no
history: it adds nothing, and is no error. ``fap deploy --retry-failed``
reads the same files (:func:`retry_targets`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from fapistrano import history, layout
from fapistrano.commands.wiring import exit_with, fleet_command
from fapistrano.errors import ExitCode
from fapistrano.hosts import Member, key
from fapistrano.options import Options

if TYPE_CHECKING:  # what they name is imported when the command runs: fap --help stays fast
    from fapistrano.compose import Composition
    from fapistrano.masking import Masker


def read_records(fleet: Composition, last: int | None) -> tuple[list[dict[str, Any]], list[str]]:
    """Every selected host's last ``last`` records (all, with ``None``), and one error line per host that did not answer.

    (:func:`read_history` also says which targets are frozen.)
    """
    records, errors, _ = read_history(fleet, last)
    return records, errors


def read_history(fleet: Composition, last: int | None) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """:func:`read_records`, and a line per freeze of the selected targets (``fap lock``)."""
    from fapistrano import freeze

    runner, members = fleet.runner, fleet.members
    found: dict[str, list[dict[str, Any]]] = {}
    frozen: list[tuple[str, layout.HostState]] = []
    with fleet.connected(probe=False) as hosts:  # no probe, no lock: the history is read as it is

        def work(member: Member) -> None:
            script = layout.history_read_script(member.target.config["path"], last)
            runner.emit("command", "(history) reading the history", host=member.name, phase="history")
            result = member.connection.run(script)
            if result.exit_code != 0:
                raise history_error(member, result.stderr)
            for line in result.stdout.splitlines():
                if line.startswith("freeze="):
                    frozen.append((member.name, layout.HostState(freeze=line.removeprefix("freeze="))))
            records = history.parse_records(result.stdout)
            for record in records:
                record.setdefault("stage", member.settings.stage)
                record.setdefault("role", member.settings.role)
                record.setdefault("host", member.name)
            found[key(member)] = records

        hosts.on_each(work)
    records = [record for member in members for record in found.get(key(member), [])]
    return records, hosts.failure_lines(), freeze.notes(frozen)


def history_error(member: Member, stderr: str) -> Exception:
    from fapistrano.errors import FapError

    return FapError(f"cannot read {layout.history_path(member.target.config['path'])}: {stderr.strip() or 'unknown error'}")


def runs(fleet: Composition, last: int) -> tuple[list[history.RunSummary], list[str], list[str]]:
    """The ``last`` newest runs of the selected hosts, merged; the hosts that did not answer; the freezes."""
    records, errors, frozen = read_history(fleet, last)
    return history.merge(records)[:last], errors, frozen


def json_lines(summaries: Sequence[history.RunSummary], masker: Masker) -> list[str]:
    """One JSON object per run (``--json``), masked."""
    from fapistrano.ui import json_line

    return [json_line(masker.hide_in(s.as_json())) for s in summaries]


def table_rows(summaries: Sequence[history.RunSummary]) -> list[tuple[str, ...]]:
    """``(when, who, command, release, revision, outcome, hosts)`` per run, for the table."""
    from fapistrano.commands.releases import short_revision

    rows: list[tuple[str, ...]] = []
    for summary in summaries:
        command = summary.command + (f" (from {summary.promoted_from})" if summary.promoted_from else "")
        rows.append((history.when_text(summary.started), summary.who, command, ", ".join(summary.releases) or "-",
                     " / ".join(short_revision(r) for r in summary.revisions) or "-", summary.outcome, summary.host_count()))
    return rows


def why_lines(summary: history.RunSummary) -> list[str]:
    """The reasons a run's hosts gave, one line per distinct reason."""
    by_why: dict[str, list[str]] = {}
    for host, why in summary.why.items():
        by_why.setdefault(why, []).append(host)
    return [f"{', '.join(hosts)}: {why}" for why, hosts in by_why.items()]


def retry_targets(fleet: Composition) -> tuple[history.RunSummary | None, list[str], list[str]]:
    """For ``--retry-failed``: the last run of the selected hosts, the hosts it did not finish on, and unanswered hosts."""
    records, errors = read_records(fleet, 1)
    last, failed = history.failed_hosts(records)
    selected = {m.name for m in fleet.members}
    return last, [h for h in failed if h in selected], errors


def show(options: Options, stage: str | None, role: str | None, overrides: list[str], last: int, as_json: bool) -> int:
    """``fap history``: print the table (or ``--json`` lines); the exit code (1 when a host did not answer)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from fapistrano.compose import Composition
    from fapistrano.ui import print_table

    with Composition(options.plain(), stage, role, overrides, "history") as fleet:
        summaries, errors, frozen = runs(fleet, last)
        fleet.close()
    if as_json:
        for line in json_lines(summaries, fleet.masker):
            click.echo(line)
    elif not summaries:
        fleet.console.print(f"no history on {fleet.describe()}", markup=False, highlight=False)
    else:
        table = Table(title=f"{fleet.describe()}: last {len(summaries)} run(s), times in UTC", title_justify="left",
                      box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for column in ("when", "who", "command", "release", "revision", "outcome", "hosts"):
            table.add_column(column, no_wrap=column not in ("hosts", "who"))
        for summary, row in zip(summaries, table_rows(summaries), strict=True):
            same = all(outcome == summary.outcome for outcome in summary.hosts.values()) and summary.total == len(summary.hosts)
            # What the hosts' records say is text (a deployer may be "dependabot[bot]"), masked and printable.
            table.add_row(*(Text(fleet.masker(cell)) for cell in row),
                          style="" if same and summary.outcome in history.SUCCESS.values() else "yellow")
        print_table(fleet.console, table)
        for summary in summaries:
            for line in why_lines(summary):
                fleet.console.print(fleet.masker(f"  {history.when_text(summary.started)} {summary.command}, {line}"), style="dim",
                                    markup=False, highlight=False, soft_wrap=True)
            if summary.migrated:
                fleet.console.print(fleet.masker(f"  {history.when_text(summary.started)} {summary.command} of"
                                                 f" {', '.join(summary.releases)} migrated the schema:"
                                                 f" {', '.join(summary.migrated)}"), markup=False, highlight=False,
                                    soft_wrap=True)
    for note in frozen:  # on stderr: --json's stdout stays one object per line
        fleet.errors.print(f"warning: {note}", style="yellow", markup=False, highlight=False, soft_wrap=True)
    for error in errors:
        fleet.errors.print(f"fap: error: {error}", style="red", markup=False, highlight=False, soft_wrap=True)
    return ExitCode.FAILED if errors else ExitCode.OK


def hosts_to_retry(options: Options, stage: str | None, role: str | None, overrides: list[str]) -> str | None:
    """``fap deploy --retry-failed``: a ``--hosts`` value naming the hosts the last run did not finish on.

    ``None``, once it said so, when there is nothing to retry.
    """
    from fapistrano.compose import Composition

    with Composition(options.plain(), stage, role, overrides, "history") as fleet:
        last, failed, errors = retry_targets(fleet)
        fleet.close()
    for error in errors:
        fleet.errors.print(f"fap: warning: {error}", style="yellow", markup=False, highlight=False, soft_wrap=True)
    if last is None:
        fleet.console.print("nothing to retry: no run recorded on the selected hosts", markup=False, highlight=False)
        return None
    what = (f"the last run ({last.command} of {', '.join(last.releases) or 'no release'},"
            f" {history.when_text(last.started)} UTC, run {last.run})")
    if not failed:
        fleet.console.print(f"nothing to retry: {what} finished on every host", markup=False, highlight=False, soft_wrap=True)
        return None
    fleet.console.print(f"retrying {', '.join(failed)}: {what} did not finish there", markup=False, highlight=False,
                        soft_wrap=True)
    return ",".join(history.host_pattern(host) for host in failed)


@fleet_command("history", "List the runs that changed the selected hosts, newest first, merged across hosts:"
               " when, who, command, release, revision, outcome, how many hosts. Takes no lock.",
               short_help="List past runs: who deployed what, when, and how it ended.")
@click.option("-n", "--last", "last", type=click.IntRange(min=1), default=20, show_default=True, metavar="N",
              help="How many runs to show.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run per line.")
def command(options: Options, stage: str | None, role: str | None, overrides: list[str], last: int, as_json: bool) -> None:
    exit_with(ExitCode(show(options, stage, role, overrides, last, as_json)))
