"""publishing: mark the release finished and switch ``current`` to it atomically.

A new release that holds nothing but what fap itself put there (``.env``, the
shared links) is switched to with a warning: fetching code is a plugin's job,
and a deploy without one would otherwise report success with an empty
``current``. The test rides in the switch's own command (shell builtins only),
so it costs no round trip.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from fapistrano import hookimpl, layout

#: Printed by the switch command when the release is empty.
EMPTY = "fap-empty-release"


@hookimpl
def fap_deploy_publishing(ctx) -> None:
    config = ctx.config
    check = "\n" + _empty_check(ctx.release_path, config) if ctx.flow == "release" else ""
    output = ctx.run(
        layout.finish_release_script(config["releases_path"], ctx.release)
        + "\n"
        + layout.switch_script(config["current_path"], ctx.release_path, tag=ctx.release)
        + check
    )
    if not ctx.dry_run:
        # Also tells the failure path that this host moved: a later publishing hook (trylast)
        # that fails or is interrupted must switch it back.
        ctx.current_release = ctx.release
    if EMPTY in output.splitlines():
        ctx.warn(f"release {ctx.release} is empty: no plugin put code into it"
                 " (enable one that does, e.g. plugins: [fapistrano.git])")


def _empty_check(release_path: str, config: Mapping[str, Any]) -> str:
    """Shell that prints :data:`EMPTY` when ``release_path`` has nothing but ``.env`` and shared links."""
    own = sorted({".env", *(PurePosixPath(item).parts[0] for item in (*config["linked_files"], *config["linked_dirs"]))})
    release = layout.q(release_path)
    return (
        f"fap_code=; for fap_entry in {release}/* {release}/.[!.]* {release}/..?*; do "
        '[ -e "$fap_entry" ] || [ -L "$fap_entry" ] || continue; '
        f'case "${{fap_entry##*/}}" in {"|".join(layout.q(name) for name in own)}) ;; *) fap_code=1; break ;; esac; done; '
        f'[ -n "$fap_code" ] || echo {EMPTY}'
    )
