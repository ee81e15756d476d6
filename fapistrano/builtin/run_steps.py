"""The ``run:`` steps of deploy.yml's ``hooks:``, in each phase, after every other plugin's hookimpl (trylast).

A step runs through ``ctx.run`` like any plugin's command: in the release
directory (``current`` in a restart, ``path`` in ``failed``), as the deploy
user, with the release's ``.env`` exported as ``fap once`` does, and the
``FAP_*`` variables of :func:`fapistrano.steps.remote_environment`. The steps a
host runs are on ``ctx.target.steps`` (a ``once`` step only on its chosen host).
"""

from __future__ import annotations

from contextlib import nullcontext

from fapistrano import hookimpl, migrations
from fapistrano.errors import CommandFailed
from fapistrano.flows import Phase, hook_name
from fapistrano.steps import failure, remote_environment

#: Exports the release's .env, as fap once does (a directory without one, like ``path``, has none).
LOAD_DOTENV = "if [ -f .env ]; then set -a; . ./.env; set +a; fi\n"


def run_steps(ctx) -> None:
    """Run the steps of ``ctx.phase`` for this host, in the order written."""
    steps = [step for step in ctx.target.steps if step.phase == ctx.phase]
    if not steps:
        return
    if ctx.phase == "failed":
        directory = ctx.config["path"]
    elif ctx.flow == "restart":
        directory = ctx.config["current_path"]
    else:
        directory = ctx.release_path
    environment = remote_environment(ctx)
    for step in steps:
        command = step.expand(ctx.config)
        where, env, going_back = directory, environment, ""
        if step.migrates_back:
            down = migrations.down_step(ctx, step, environment)
            if down is None:  # this rollback crosses no migration, or --across-migrations: said why
                continue
            where, env, going_back = down
        if step.once and ctx.phase != "failed":
            # Where a migration ran is worth a line in every report (the host is not always the first one).
            scope = ctx.stage if step.role is None else f"{ctx.stage}/{ctx.role}"
            ctx.log(f"once step {step.where} runs on this host only, once for {scope}")
        if going_back:
            ctx.log(going_back)
        try:
            with ctx.throttle(f"step {step.where}", step.parallel) if step.parallel else nullcontext():
                # What a migration printed is read at every run, like a plugin's show_output.
                ctx.run(LOAD_DOTENV + command, cwd=where, env=env, show_output=step.migrates or step.migrates_back)
        except CommandFailed as error:
            if ctx.phase != "failed":
                raise failure(step, ctx.host, error) from None
            # The run has failed already: a failing clean-up or page is told, and the next step still runs.
            ctx.warn(str(failure(step, ctx.host, error)).removeprefix(f"{ctx.host}: "))
            continue
        if step.migrates:
            migrations.record(ctx, migrations.step_text(step.where, step.command))
        elif step.migrates_back and not ctx.dry_run:
            migrations.record_back(ctx, step)
            ctx.log(f"schema migrated back for {ctx.release}: step {step.where} succeeded; the switch follows")


def _phase_hook(name: str):
    def hook(ctx) -> None:
        run_steps(ctx)

    hook.__name__ = name
    hook.__qualname__ = name
    return hookimpl(trylast=True)(hook)


# One hookimpl per phase of the flows' table (fap_deploy_failed, which takes the error too, is below).
for _phase in Phase:
    if _phase is not Phase.FAILED:
        globals()[hook_name(_phase)] = _phase_hook(hook_name(_phase))
del _phase


@hookimpl(trylast=True)
def fap_deploy_failed(ctx, error) -> None:
    run_steps(ctx)
