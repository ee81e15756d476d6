"""The example's own plugin: ship ``app/`` beside deploy.yml into the new release.

A real project lists ``fapistrano.git`` (or ``fapistrano.curl``) instead.
The directory travels as a tar stream on the command's stdin, so it reaches
hosts over SSH without a repository or an artifact server.
"""

import base64
import io
import os
import shlex
import tarfile

from fapistrano import Setting, hookimpl


@hookimpl
def fap_settings():
    return [Setting("upload_app_source", os.path.join(os.path.dirname(os.path.abspath(__file__)), "app"),
                    "The directory uploaded into every release (app/ beside this plugin).")]


@hookimpl
def fap_deploy_updating(ctx):
    source = ctx.config["upload_app_source"]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(source, arcname=".")
    payload = base64.b64encode(buffer.getvalue()).decode()
    ctx.run(f"base64 -d | tar -xzf - -C {shlex.quote(ctx.release_path)}", stdin=payload)
    ctx.log(f"uploaded {source}")
