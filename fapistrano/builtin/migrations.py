"""The ``migrated`` mark: every host of a deploy's stage writes it once a migration of the release succeeded;
and the ``migrated_back`` mark: every host of a rollback's group writes it on the releases its down step undid.

A ``migrates: true`` step runs on one host (``once: true``) and a plugin's
``ctx.mark_migrated`` on the hosts it chooses; the run's ledger
(:mod:`fapistrano.migrations`) collects them, and each host writes the mark
at the start of its next phase (every host finished the phase before: the
phases run in lockstep), so that a rollback from any host of the stage knows.
Nothing to mark costs no command, and a mark goes with the host's next
round trip (``ctx.run_later``).
"""

from __future__ import annotations

from fapistrano import hookimpl, layout
from fapistrano.migrations import BACK_MARK_KIND, MARK_KIND, back_marks_due, mark_record, marked, marks_due


def write_mark(ctx) -> None:
    """Write (or rewrite, with every migration so far) the ``migrated`` mark of this deploy's release;
    in a rollback, the ``migrated_back`` marks of the releases its ``migrates_back`` step undid."""
    for release, record in back_marks_due(ctx) or ():
        ctx.run_later(layout.mark_script(ctx.config["path"], release, BACK_MARK_KIND, record))
    migrations = marks_due(ctx)
    if migrations is None:
        return
    # With the host's next round trip (the switch's, when the migration ran in updated): it costs none of its own.
    ctx.run_later(layout.mark_script(ctx.config["path"], ctx.release, MARK_KIND, mark_record(migrations)))
    marked(ctx, migrations)


@hookimpl(tryfirst=True)
def fap_deploy_updated(ctx) -> None:
    write_mark(ctx)


@hookimpl(tryfirst=True)
def fap_deploy_reverted(ctx) -> None:
    write_mark(ctx)


@hookimpl(tryfirst=True)
def fap_deploy_publishing(ctx) -> None:
    write_mark(ctx)


@hookimpl(tryfirst=True)
def fap_deploy_published(ctx) -> None:
    write_mark(ctx)


@hookimpl(tryfirst=True)
def fap_deploy_finishing(ctx) -> None:
    write_mark(ctx)


@hookimpl(tryfirst=True)
def fap_deploy_finishing_rollback(ctx) -> None:
    write_mark(ctx)


@hookimpl(tryfirst=True)
def fap_deploy_finished(ctx) -> None:
    write_mark(ctx)
