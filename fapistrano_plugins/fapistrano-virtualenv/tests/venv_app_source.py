"""A test-only plugin: copy the directory ``venv_app_source`` into the new release.

The tests copy this file beside their deploy.yml and list it under
``plugins:`` (a dotted module name is imported from deploy.yml's directory).
The copy runs on the fleet host as ``deploy``; the fleet hosts share this
machine's ``/tmp``, so the source is a world-readable directory there.
"""

import shlex

from fapistrano import Setting, hookimpl


@hookimpl
def fap_settings():
    return [Setting("venv_app_source", "", "A directory whose files (app.py, requirements.txt) each release gets.")]


@hookimpl
def fap_deploy_updating(ctx):
    source = ctx.config["venv_app_source"]
    ctx.run(f"cp -R {shlex.quote(source)}/. {shlex.quote(ctx.release_path)}/")
