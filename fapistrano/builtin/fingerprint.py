"""published (last): record what shaped the release (in :data:`fapistrano.changes.RECORDS_DIR`, beside the releases).

After the switch, so that the source plugin knows the revision it shipped
without asking the host again, and the record goes with the host's next
round trip (a restart, or the unlock). A release without a record (the run
failed after its switch) is never "already live": the next ``--if-changed``
deploys.

``fap deploy --if-changed`` compares the live release's record with the one
it would write, and makes no release when they are the same on every host.
"""

from __future__ import annotations

from typing import Any

from fapistrano import changes, hookimpl


@hookimpl(trylast=True)
def fap_deploy_published(ctx: Any) -> None:
    if ctx.flow != "release" or not ctx.release:
        return
    record = changes.of_context(ctx, ctx.revision(ctx.release))
    # Nothing waits for it: it goes with the host's next round trip.
    ctx.run_later(changes.write_script(ctx.config["path"], ctx.config["releases_path"], ctx.release, record))
