"""finishing: keep the newest ``keep_releases``; finishing_rollback: remove the release left."""

from __future__ import annotations

from fapistrano import hookimpl, layout


@hookimpl
def fap_deploy_finishing(ctx) -> None:
    releases = tuple(layout.sort_releases({*ctx.releases, ctx.release}))
    after = layout.HostState(current=ctx.release, releases=releases)
    # Never remove the release a rollback would return to, even with keep_releases: 1.
    rollback_target = layout.previous_release(after)
    outdated = layout.outdated_releases(after, ctx.config["keep_releases"], keep_also=[rollback_target] if rollback_target else [])
    # Unfinished releases of runs that died went in starting (builtin.dirs).
    if outdated:
        # With the run's last round trip (the unlock), or the next command of a later phase.
        ctx.run_later(layout.remove_releases_script(ctx.config["releases_path"], ctx.config["current_path"], outdated),
                      then=lambda _output: ctx.log(f"removed {len(outdated)} old release(s): {', '.join(outdated)}"))


@hookimpl
def fap_deploy_finishing_rollback(ctx) -> None:
    if ctx.rollback_from and ctx.rollback_from != ctx.release and layout.is_release_name(ctx.rollback_from):
        ctx.run_later(layout.remove_releases_script(ctx.config["releases_path"], ctx.config["current_path"], [ctx.rollback_from]),
                      then=lambda _output: ctx.log(f"removed rolled-back release {ctx.rollback_from}"))
