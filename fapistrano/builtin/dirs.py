"""starting: make the layout's directories, check linked files, remove leftovers, create the release."""

from __future__ import annotations

from fapistrano import hookimpl, layout


@hookimpl(tryfirst=True)
def fap_deploy_starting(ctx) -> None:
    config = ctx.config
    is_release = ctx.flow == "release"
    state: layout.HostState | None = ctx.state.get("fap.host_state")
    # Unfinished releases of runs that died (a host or fap killed mid-release). Only a run that
    # holds the lock may judge them dead: with the lock taken, no other run is making a release here.
    leftovers = [r for r in state.unfinished if r != ctx.release] if state is not None and state.locked_by_us else []
    ctx.run(
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
        )
    )
    if is_release:
        # The failure path removes a release this run made, even once publishing has unmarked it.
        ctx.state["fap.release_created"] = True
    for release in leftovers:
        ctx.log(f"removed unfinished release {release} (left by a run that did not finish)")
