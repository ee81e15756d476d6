"""updated: write what shaped the release into it (:data:`fapistrano.changes.FINGERPRINT_FILE`).

``fap deploy --if-changed`` compares the live release's record with the one
it would write, and makes no release when they are the same on every host.
"""

from __future__ import annotations

from typing import Any

from fapistrano import changes, hookimpl


@hookimpl
def fap_deploy_updated(ctx: Any) -> None:
    if ctx.flow != "release" or not ctx.release_path:
        return
    # The code is in place (updating): the source plugin can say which revision the release holds.
    record = changes.of_context(ctx, ctx.revision(ctx.release))
    ctx.run(changes.write_script(ctx.release_path, record))
