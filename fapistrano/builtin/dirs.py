"""starting: make the layout's directories, check linked files, create the release."""

from __future__ import annotations

from fapistrano import hookimpl, layout


@hookimpl(tryfirst=True)
def fap_deploy_starting(ctx) -> None:
    config = ctx.config
    is_release = ctx.flow == "release"
    ctx.run(
        layout.starting_script(
            path=config["path"],
            releases_path=config["releases_path"],
            shared_path=config["shared_path"],
            linked_files=config["linked_files"],
            linked_dirs=config["linked_dirs"],
            release_path=ctx.release_path if is_release else None,
            release_marker=layout.marker(config["releases_path"], ctx.release) if is_release else None,
        )
    )
