"""The quick start's own plugin: copy ``app/`` beside deploy.yml into the release.

A real project lists ``fapistrano.git`` or ``fapistrano.curl`` instead; this
shows that a plugin is just a module of ``@hookimpl`` functions.
"""

import os
import shlex

from fapistrano import Setting, hookimpl


@hookimpl
def fap_settings():
    here = os.path.dirname(os.path.abspath(__file__))
    return [Setting("quickstart_source", os.path.join(here, "app"),
                    "The directory every release gets (app/ here).")]


@hookimpl
def fap_deploy_updating(ctx):
    source = ctx.config["quickstart_source"]
    ctx.run(f"cp -R {shlex.quote(source)}/. {shlex.quote(ctx.release_path)}/")
    ctx.log(f"copied {source}")
