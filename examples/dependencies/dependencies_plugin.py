"""The dependencies example's own plugin: copy ``app/`` beside deploy.yml into the release.

A real project lists ``fapistrano.git`` or ``fapistrano.curl`` instead; the
copy runs on the target host, so ``app/`` must be readable there.
"""

import os
import shlex

from fapistrano import Setting, hookimpl


@hookimpl
def fap_settings():
    return [Setting("dependencies_source", os.path.join(os.path.dirname(os.path.abspath(__file__)), "app"),
                    "The directory whose files every release gets (app/ beside this plugin).")]


@hookimpl
def fap_deploy_updating(ctx):
    source = ctx.config["dependencies_source"]
    ctx.run(f"cp -R {shlex.quote(source)}/. {shlex.quote(ctx.release_path)}/")
    ctx.log(f"copied {source}")
