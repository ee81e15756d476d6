"""publishing: mark the release finished and switch ``current`` to it atomically."""

from __future__ import annotations

from fapistrano import hookimpl, layout


@hookimpl
def fap_deploy_publishing(ctx) -> None:
    config = ctx.config
    ctx.run(
        layout.finish_release_script(config["releases_path"], ctx.release)
        + "\n"
        + layout.switch_script(config["current_path"], ctx.release_path, tag=ctx.release)
    )
    # Read by the runner: a later publishing hook (trylast) that fails or is interrupted must switch this host back.
    ctx.state["fap.switched"] = True
