"""updating (last): record what shaped the release (in :data:`fapistrano.changes.RECORDS_DIR`, beside the releases).

``fap deploy --if-changed`` compares the live release's record with the one
it would write, and makes no release when they are the same on every host.
"""

from __future__ import annotations

from typing import Any

from fapistrano import changes, hookimpl


@hookimpl(trylast=True)
def fap_deploy_updating(ctx: Any) -> None:
    if ctx.flow != "release" or not ctx.release:
        return
    # After the plugins' updating (trylast): the code is in place, the source plugin can say which revision the release holds.
    record = changes.of_context(ctx, ctx.revision(ctx.release))
    ctx.run(changes.write_script(ctx.config["path"], ctx.config["releases_path"], ctx.release, record))
