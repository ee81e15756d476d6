"""A plugin that fails, blocks or fills the disk on a chosen host in a chosen phase.

Settings (all empty by default, so a plain deploy just works):
``fault_phase``/``fault_host``: fail there with exit 7 and "boom" on stderr (``fault_host: "*"``: on every host);
``fault_block_phase``: in that phase, wait until ``fault_release_file`` exists (on this machine);
the phase ``after-switch`` is a ``trylast`` publishing hook, run after the core has switched ``current``;
the phase ``mid-switch`` moves ``current`` in publishing, then fails, before the core's switch: fap never
learns that it moved, as when a host is lost while its switch command runs;
``fault_write_mb``: in updating, write that many MiB into the release.
"""

import shlex

from fapistrano import hookimpl

PHASES = ("starting", "started", "updating", "updated", "publishing", "published", "finishing", "finished",
          "reverting", "reverted", "finishing_rollback", "restarting", "restarted")


@hookimpl
def fap_defaults():
    return {
        "fault_phase": "",
        "fault_host": "",
        "fault_block_phase": "",
        "fault_block_file": "",
        "fault_release_file": "",
        "fault_write_mb": 0,
    }


def _act(ctx, phase):
    config = ctx.config
    if phase == "updating":
        ctx.run("echo 'the app' > app.txt", cwd=ctx.release_path)
        if config["fault_write_mb"]:
            ctx.run(f"head -c {int(config['fault_write_mb'])}M /dev/zero > big.bin", cwd=ctx.release_path)
    if config["fault_block_phase"] == phase:
        # Tell the test we are blocked, then wait for it to let us go (bounded: 60 s).
        if config["fault_block_file"]:
            open(config["fault_block_file"], "a").close()
        ctx.run(f"for i in $(seq 600); do [ -e {shlex.quote(config['fault_release_file'])} ] && exit 0; sleep 0.1; done; exit 9")
    if config["fault_phase"] == phase and config["fault_host"] in ("*", ctx.host):
        ctx.run("echo boom >&2; exit 7")
    if phase == "publishing" and config["fault_phase"] == "mid-switch" and config["fault_host"] in ("*", ctx.host):
        ctx.run(f"ln -sfn {shlex.quote(ctx.release_path)} {shlex.quote(config['current_path'])}; echo lost mid-switch >&2; exit 7")


for _phase in PHASES:
    exec(f"@hookimpl\ndef fap_deploy_{_phase}(ctx):\n    _act(ctx, {_phase!r})\n")


@hookimpl(trylast=True, specname="fap_deploy_publishing")
def after_the_switch(ctx):
    _act(ctx, "after-switch")


@hookimpl
def fap_deploy_failed(ctx, error):
    ctx.run("echo failed >> " + shlex.quote(ctx.config["shared_path"] + "/failed-hook.log"))
