"""finishing: keep the newest ``keep_releases`` good releases; releases marked bad go first.

A rollback keeps the release it leaves, marked bad (see :mod:`fapistrano.history`):
this cleanup is what removes it, once newer releases come.
"""

from __future__ import annotations

from fapistrano import hookimpl, layout


@hookimpl
def fap_deploy_finishing(ctx) -> None:
    releases = tuple(layout.sort_releases({*ctx.releases, ctx.release}))
    after = layout.HostState(current=ctx.release, releases=releases, marks=ctx.marks)
    # Never remove the release a rollback would return to, even with keep_releases: 1.
    rollback_target = layout.previous_good_release(after)
    outdated = layout.outdated_releases(after, ctx.config["keep_releases"], keep_also=[rollback_target] if rollback_target else [])
    # Marks whose release is gone (removed by hand): they go with the cleanup; removing a missing directory is nothing.
    orphans = [r for r in ctx.marks if r not in releases and r not in ctx.unfinished_releases and layout.is_release_name(r)]
    # Unfinished releases of runs that died went in starting (builtin.dirs).
    if not outdated and not orphans:
        return
    bad = [r for r in outdated if after.is_bad(r)]
    said = f"removed {len(outdated)} old release(s): {', '.join(outdated)}" + (f" ({len(bad)} marked bad)" if bad else "")
    # With the run's last round trip (the unlock), or the next command of a later phase.
    ctx.run_later(layout.remove_releases_script(ctx.config["releases_path"], ctx.config["current_path"], [*outdated, *orphans],
                                                layout.marks_path(ctx.config["path"])),
                  then=lambda _output: ctx.log(said) if outdated else None)
