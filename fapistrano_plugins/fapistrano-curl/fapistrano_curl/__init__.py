"""fapistrano.curl: deploy a built artifact — download it with curl, unpack it, run its install script.

The "build, release, run" way: CI builds an archive once; every host of the
fleet downloads that same archive into the new release, extracts it and runs
its post-install script. Enable it in deploy.yml::

    plugins: [fapistrano.curl]
    curl_url: https://ci.example.org/builds/app-%(release)s.tar.gz
    curl_extract_tgz: true
    curl_postinstall_script: ./install.sh

Phases:

``starting`` (release)
    Checks the settings (``curl_url`` set, ``curl_user`` is ``user:password``…).
``started`` (release)
    Checks that ``curl`` (and ``tar`` when extracting) is installed on the host.
``updating``
    Downloads ``curl_url`` to ``curl_output`` in the release with
    ``curl --fail --location``: an HTTP error fails the deploy, so an error
    page is never unpacked as the application. Extracts the archive into the
    release and removes it when ``curl_extract_tar``/``curl_extract_tgz``.
``updated`` (last)
    Runs ``curl_postinstall_script`` in the release, once the code, the shared
    links, ``.env`` and every other plugin's build step (a virtualenv) are in
    place. A non-zero exit fails the deploy with the script's output.

Credentials, in ``curl_user`` or in the URL (``https://user:pass@host/...``),
reach curl on its stdin (``--config -``), never on a command line: they are
not in any host's process list, and fap masks them in everything it prints.
"""

from __future__ import annotations

from typing import Any

from fapistrano import CommandFailed, ConfigError, FapError, Setting, hookimpl

from fapistrano_curl import command

__version__ = "1.0.0"

PLUGIN = "fapistrano.curl"

@hookimpl
def fap_settings() -> list[Setting]:
    """The ``curl_*`` settings. ``curl_user`` holds a password; passwords inside ``curl_url`` are masked by the core anyway."""
    return [
        Setting("curl_url", "", "URL of the artifact to deploy (required); may hold user:password@, masked in all output."),
        Setting("curl_output", "", "File the download is saved as, relative to the release (default: the last part of the URL's path)."),
        Setting(
            "curl_options", [],
            "Extra curl arguments; each item is split like a shell line, e.g. '--retry 3 --max-time 600'.",
            type=list[str],
        ),
        Setting("curl_user", "", "user:password for HTTP authentication (a secret: masked, passed to curl on stdin).", secret=True),
        Setting("curl_extract_tar", False, "Extract the download (a .tar) into the release, then remove it."),
        Setting("curl_extract_tgz", False, "Extract the download (a .tar.gz) into the release, then remove it."),
        Setting(
            "curl_postinstall_script", "",
            "Shell command run in the release after download, links and builds; non-zero exit fails the deploy.",
            shell=True,
        ),
        Setting("curl_postinstall_output", True, "Show the post-install script's output (false: only when it fails)."),
    ]


@hookimpl
def fap_check(ctx: Any) -> list[str]:
    """Settings, ``curl``/``tar`` on the host, and whether the URL answers (first byte only)."""
    found = command.problems(ctx.config, flow="check")
    if found:
        return found
    found = _missing_tools(ctx)
    if found:
        return found
    try:
        ctx.run(command.download_command(ctx.config, "/dev/null", probe=True), readonly=True, stdin=command.curl_config(ctx.config))
    except CommandFailed as error:
        found.append(f"curl_url {ctx.mask(ctx.config['curl_url'])} cannot be downloaded: {command.last_lines(error.stderr, 2)}")
    return found


@hookimpl
def fap_deploy_starting(ctx: Any) -> None:
    """Fail early, before anything is downloaded, when the settings cannot work."""
    if ctx.flow != "release":
        return
    found = command.problems(ctx.config)
    if found:
        raise FapError(f"{ctx.host}: {found[0]}")


@hookimpl
def fap_deploy_started(ctx: Any) -> None:
    """Check that the host has the tools the download needs."""
    if ctx.flow != "release" or ctx.dry_run:
        return
    found = _missing_tools(ctx)
    if found:
        raise FapError(f"{ctx.host}: {found[0]}")


@hookimpl
def fap_deploy_updating(ctx: Any) -> None:
    """Download the artifact into the release; extract it when asked."""
    config = ctx.config
    url = config["curl_url"].strip()
    shown_url = ctx.mask(url)
    output = command.output_path(config, ctx.release_path)
    ctx.log(f"downloading {shown_url}")
    try:
        size = ctx.run(command.download_command(config, output), cwd=ctx.release_path, stdin=command.curl_config(config))
    except CommandFailed as error:
        # The core's message names curl's argv, not the URL (it is on stdin): name it here, masked.
        raise FapError(
            f"{ctx.host}: cannot download {shown_url} (curl exit {error.returncode}): {command.last_lines(error.stderr, 3)}"
        ) from None
    if not ctx.dry_run:
        ctx.log(f"downloaded {size.strip() or '?'} bytes to {output}")
    extract = command.extract_command(config, output, ctx.release_path)
    if extract is None:
        return
    try:
        ctx.run(extract)
    except CommandFailed as error:
        kind = "tar.gz" if config["curl_extract_tgz"] else "tar"
        raise FapError(
            f"{ctx.host}: cannot extract {output} (downloaded from {shown_url}) as a {kind} archive: "
            f"{command.last_lines(error.stderr, 3)}"
        ) from None


@hookimpl(trylast=True)
def fap_deploy_updated(ctx: Any) -> None:
    """Run ``curl_postinstall_script`` in the release; its failure fails the deploy with its output."""
    script = (ctx.config["curl_postinstall_script"] or "").strip()
    if not script:
        return
    env = {
        "FAP_STAGE": ctx.stage,
        "FAP_ROLE": ctx.role,
        "FAP_HOST": ctx.host,
        "FAP_RELEASE": ctx.release or "",
        "FAP_RELEASE_PATH": ctx.release_path,
    }
    try:
        output = ctx.run(command.postinstall_command(script), cwd=ctx.release_path, env=env)
    except CommandFailed as error:
        # stderr was merged into stdout, so error.stderr holds the whole (masked) output.
        for line in error.stderr.splitlines():
            ctx.log(f"postinstall: {line}")
        detail = command.last_lines(error.stderr)
        raise FapError(
            f"{ctx.host}: curl_postinstall_script {script!r} failed (exit {error.returncode}) in {ctx.release_path}"
            + (f": {detail}" if detail else " with no output")
        ) from None
    if ctx.config["curl_postinstall_output"]:
        for line in output.splitlines():
            ctx.log(f"postinstall: {line}")


@hookimpl
def fap_source_revision(ctx: Any) -> str | None:
    """An archive's URL names no revision: ``fap pending`` says it cannot tell, ``--if-changed`` deploys."""
    raise FapError("fapistrano.curl downloads curl_url and cannot tell which revision it holds before it is downloaded")


@hookimpl
def fap_source_promote(revision: str, stage: str, role: str, config: Any) -> dict[str, Any] | None:
    """Refused: the plugin downloads whatever ``curl_url`` serves, it cannot be told to ship staging's revision."""
    raise ConfigError(f"{stage}/{role}: fapistrano.curl cannot promote: it downloads whatever curl_url serves, not a given"
                      f" revision; set curl_url to the artifact staging runs and use fap deploy")


def _missing_tools(ctx: Any) -> list[str]:
    tools = ["curl"]
    if ctx.config["curl_extract_tar"] or ctx.config["curl_extract_tgz"]:
        tools.append("tar")
    missing = [tool for tool in tools if not ctx.test(f"command -v {tool} >/dev/null")]
    return [f"{tool} is not installed on the host ({PLUGIN} needs it)" for tool in missing]
