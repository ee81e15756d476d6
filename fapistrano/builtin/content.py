"""publishing (first): warn when the release holds nothing but what fap itself put there.

Fetching code is a plugin's job (fapistrano.git, .curl, .upload, ...). A deploy with
none of them enabled still succeeds, with an empty ``current``: say so on every host,
before the switch, rather than report a success that serves nothing.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from fapistrano import hookimpl, layout


@hookimpl(tryfirst=True)
def fap_deploy_publishing(ctx) -> None:
    if ctx.flow != "release" or ctx.dry_run:
        return
    config = ctx.config
    # What fap writes into every release: .env and the links to shared files and dirs.
    own = {".env", *(PurePosixPath(item).parts[0] for item in (*config["linked_files"], *config["linked_dirs"]))}
    entries = ctx.run(f"ls -A {layout.q(ctx.release_path)}", readonly=True).splitlines()
    if not set(entries) - own:
        ctx.warn(f"release {ctx.release} is empty: no plugin put code into it"
                 " (enable one that does, e.g. plugins: [fapistrano.git])")
