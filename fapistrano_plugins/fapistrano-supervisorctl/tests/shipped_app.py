"""Test plugin: ships a directory of this machine into the release while updating.

It stands in for fapistrano.git or fapistrano.curl, so the supervisorctl
tests depend on no other plugin. The directory travels as a base64 tar
stream on the command's stdin, so it works over SSH as well as locally.
"""

import base64
import io
import shlex
import tarfile

from fapistrano import FapError, Setting, hookimpl


@hookimpl
def fap_settings():
    return [Setting("shipped_app_dir", "", "The application's directory on the deployer, copied into each release.")]


@hookimpl
def fap_deploy_updating(ctx):
    source = ctx.config["shipped_app_dir"]
    if not source:
        raise FapError("shipped_app_dir is not set")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(source, arcname=".")
    payload = base64.b64encode(buffer.getvalue()).decode()
    ctx.run(f"base64 -d | tar -xzf - -C {shlex.quote(ctx.release_path)}", stdin=payload)
    ctx.log(f"shipped {source}")
