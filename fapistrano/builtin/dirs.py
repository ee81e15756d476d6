"""starting: make the layout's directories, check linked files, remove leftovers, create the release."""

from __future__ import annotations

from fapistrano import hookimpl, layout


@hookimpl(tryfirst=True)
def fap_deploy_starting(ctx) -> None:
    config = ctx.config
    is_release = ctx.flow == "release"
    # Unfinished releases of runs that died (a host or fap killed mid-release). Only a run that
    # holds the lock may judge them dead: with the lock taken, no other run is making a release here.
    leftovers = [r for r in ctx.unfinished_releases if r != ctx.release] if ctx.locked else []

    def removed(_output: str) -> None:
        for release in leftovers:
            ctx.log(f"removed unfinished release {release} (left by a run that did not finish)")

    # Nothing waits for its answer: it goes with the host's next round trip (ctx.run_later).
    ctx.run_later(
        layout.starting_script(
            path=config["path"],
            releases_path=config["releases_path"],
            shared_path=config["shared_path"],
            linked_files=config["linked_files"],
            linked_dirs=config["linked_dirs"],
            release_path=ctx.release_path if is_release else None,
            release_marker=layout.marker(config["releases_path"], ctx.release) if is_release else None,
            current_path=config["current_path"],
            leftovers=leftovers,
        ),
        then=removed,
    )
