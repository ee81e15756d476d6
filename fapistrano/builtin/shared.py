"""updating (last): link shared files and directories into the release, write ``.env``."""

from __future__ import annotations

from fapistrano import hookimpl, layout


@hookimpl(trylast=True)
def fap_deploy_updating(ctx) -> None:
    config = ctx.config
    if not (config["linked_files"] or config["linked_dirs"] or config["environment"]):
        return
    ctx.run_later(
        layout.link_script(
            release_path=ctx.release_path,
            shared_path=config["shared_path"],
            linked_files=config["linked_files"],
            linked_dirs=config["linked_dirs"],
            environment=config["environment"],
        )
    )
