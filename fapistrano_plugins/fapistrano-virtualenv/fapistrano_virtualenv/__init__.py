"""fapistrano.virtualenv: a Python virtualenv for every release, built once per set of requirements.

In ``fap_deploy_updated`` (the code and the shared links are in place) every
host gives the release a venv at ``virtualenv_venv_path`` (``venv`` in the
release). By default that path is a symlink into a content-addressed store
under ``shared/venvs`` (:mod:`fapistrano_virtualenv.store`): the venv is
keyed by the requirements file's content, the interpreter, the installer and
the pip options, so a deploy whose requirements did not change reuses the
venv the previous release built (one command, no pip), and a changed file
builds a new venv beside it, under a name nothing looks up until pip has
succeeded. Cleanup keeps every venv a kept release links to, so a rollback
finds its venv as it was. With ``virtualenv_venvs_path: ''`` each release
gets a venv of its own, built inside it.

The installer is ``uv`` when the host has it (``virtualenv_installer:
auto``), else pip; both cache downloads and built wheels under
``shared/cache``.

Enable it in deploy.yml::

    plugins:
      - fapistrano.virtualenv
    virtualenv_requirements: '%(release_path)s/production-requirements.txt'
"""

from __future__ import annotations

import posixpath
import secrets
import shlex
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from typing import Any

from fapistrano import CommandFailed, FapError, Setting, hookimpl

from . import store

__version__ = "1.1.0"

#: Environment for every pip run: unbuffered so each line reaches the live view
#: as pip prints it (a piped Python is block-buffered), and never a prompt or a
#: version check that would hang or chatter on an offline host.
PIP_ENVIRONMENT: dict[str, str] = {
    "PYTHONUNBUFFERED": "1",
    "PIP_NO_INPUT": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}

#: Environment for every uv run: never download a Python (the venv is made with
#: the host's interpreter named by ``virtualenv_executive``), no progress bars.
UV_ENVIRONMENT: dict[str, str] = {
    "UV_PYTHON_DOWNLOADS": "never",
    "UV_NO_PROGRESS": "1",
}

#: The values ``virtualenv_installer`` accepts.
INSTALLERS = ("auto", "uv", "pip")

#: How many of pip's lines a failed install reports.
ERROR_LINES = 5


@hookimpl
def fap_settings() -> list[Setting]:
    """The ``virtualenv_*`` settings."""
    return [
        Setting(
            "virtualenv_venv_path", "%(release_path)s/venv",
            "Where the release's virtualenv is (relative paths are inside the release): a link into virtualenv_venvs_path, or the venv itself.",
        ),
        Setting(
            "virtualenv_venvs_path", "%(shared_path)s/venvs",
            "Where venvs are kept, one per set of requirements, and reused by every release that has the same; '' builds a new venv inside each release.",
        ),
        Setting(
            "virtualenv_installer", "auto",
            "What installs the requirements: 'uv' (virtualenv_uv), 'pip', or 'auto' (uv when the host has it, else pip).",
            choices=INSTALLERS,
        ),
        Setting("virtualenv_uv", "uv", "The uv command on the host: a name looked up on the deploy user's PATH, or a path."),
        Setting(
            "virtualenv_cache_path", "%(shared_path)s/cache",
            "Where pip and uv keep downloads and built wheels between deploys (pip/ and uv/ in it); '' leaves each to its own default.",
        ),
        Setting(
            "virtualenv_executive", "python3 -m venv",
            "The command that creates a virtualenv, given the venv path as its last argument, e.g. 'virtualenv -p python3.11'.",
        ),
        Setting(
            "virtualenv_requirements", "%(release_path)s/requirements.txt",
            "The requirements file installed into the venv; the deploy fails if it is missing; '' installs nothing.",
        ),
        Setting("virtualenv_pip_upgrade", False, "Upgrade pip inside the new venv before installing the requirements (pip only)."),
        Setting(
            "virtualenv_pip_options", [],
            "Extra install arguments for pip and uv, e.g. '--no-index --find-links /srv/wheels'; each item is split like a shell word list.",
            type=list[str],
        ),
        Setting(
            "virtualenv_parallel", 0,
            "How many hosts install the requirements (pip or uv) at the same time, fleet-wide (a private index spared); 0: every host at once.",
        ),
    ]


@hookimpl
def fap_check(ctx: Any) -> list[str]:
    """Report a missing uv (with ``virtualenv_installer: uv``), virtualenv command or ensurepip on the host."""
    try:
        executive = executive_argv(ctx.config["virtualenv_executive"])
    except FapError as error:
        return [str(error)]
    program = executive[0]
    uv = ctx.config["virtualenv_uv"]
    if ctx.config["virtualenv_installer"] == "uv" and not ctx.test(f"command -v {shlex.quote(uv)} >/dev/null 2>&1"):
        return [f"virtualenv_installer is uv, but virtualenv_uv {uv!r} is not a command on the host"]
    if not ctx.test(f"command -v {shlex.quote(program)} >/dev/null 2>&1"):
        return [f"virtualenv_executive: {program!r} is not found on the host's PATH"]
    creates_pip = "--without-pip" not in executive
    if executive[1:3] == ["-m", "venv"] and creates_pip and not ctx.test(f"{shlex.quote(program)} -c 'import ensurepip' >/dev/null 2>&1"):
        # Debian and Ubuntu ship ensurepip separately: 'python3 -m venv' fails without it.
        return [f"virtualenv_executive: {program} -m venv cannot install pip (no ensurepip; on Debian/Ubuntu install python3-venv)"]
    return []


@hookimpl
def fap_deploy_updated(ctx: Any) -> None:
    """Give the release its venv: the store's venv for its requirements, built when there is none yet."""
    config = ctx.config
    release_path = ctx.release_path
    venv = in_release(release_path, config["virtualenv_venv_path"])
    requirements = in_release(release_path, config["virtualenv_requirements"]) if config["virtualenv_requirements"] else ""
    executive = executive_argv(config["virtualenv_executive"])
    pip_options = pip_options_argv(config["virtualenv_pip_options"])
    venvs = config["virtualenv_venvs_path"]
    if not venvs:
        build_in_release(ctx, venv, requirements, executive, pip_options)
        return
    if not venv.startswith(release_path.rstrip("/") + "/"):
        raise FapError(
            f"virtualenv_venv_path: {venv} is outside the release; with virtualenv_venvs_path set it is the release's link "
            "to its venv and must be inside the release (e.g. '%(release_path)s/venv')"
        )

    material = [
        f"executive={join(executive)}",
        f"pip_options={join(pip_options)}",
        f"pip_upgrade={bool(config['virtualenv_pip_upgrade'])}",
    ]
    lookup = store.lookup_script(
        venvs_path=venvs, venv_link=venv, requirements=requirements, installer=config["virtualenv_installer"],
        uv=config["virtualenv_uv"], program=executive[0], material=material,
    )
    if ctx.dry_run:
        # Updating copied nothing: there is no requirements file to key the venv by.
        ctx.run(lookup)
        ctx.log(f"would reuse the venv in {venvs} made for these requirements, or build it")
        return
    answer = ctx.run(lookup).split()
    if answer == ["missing"]:
        raise missing_requirements(ctx, requirements)
    if answer == ["no-uv"]:
        raise FapError(
            f"{ctx.host}: virtualenv_installer is uv, but {config['virtualenv_uv']!r} is not a command on the host "
            "(install uv for the deploy user, e.g. 'pip install --user uv', or set virtualenv_uv to its path)"
        )
    status, key, detail = (answer + ["", "", ""])[:3]
    if status == "reuse":
        ctx.log(f"reusing virtualenv {posixpath.join(venvs, detail)} (requirements unchanged)")
        return
    if status != "build":
        raise FapError(f"{ctx.host}: cannot look up the venv in {venvs}: unexpected answer {' '.join(answer)!r}")

    # The nonce: hosts sharing one shared/ (a network filesystem) never build in the same directory.
    built = f"{key}.{ctx.release}.{secrets.token_hex(3)}"
    target = posixpath.join(venvs, built)
    installer = detail
    ctx.log(f"building virtualenv {target} with {installer}")
    try:
        create_and_install(ctx, target, requirements, executive, pip_options, installer)
    except BaseException:
        # The directory has no address yet: nothing would reuse it. Remove it now
        # rather than at the next cleanup (it may be large); never mask the failure.
        try:
            ctx.run(f"rm -rf {shlex.quote(target)}")
        except Exception:
            pass
        raise
    ctx.run(store.publish_script(venvs, key, built, venv))


@hookimpl(trylast=True)
def fap_deploy_finishing(ctx: Any) -> None:
    """Remove the stored venvs no kept release links to (after the core removed the old releases)."""
    prune(ctx)


@hookimpl(trylast=True)
def fap_deploy_finishing_rollback(ctx: Any) -> None:
    """Remove the stored venvs no kept release links to (the release rolled back from is kept, marked bad: its venv stays)."""
    prune(ctx)


def prune(ctx: Any) -> None:
    """Run the store's prune script on this host and say what it removed."""
    config = ctx.config
    venvs = config["virtualenv_venvs_path"]
    if not venvs:
        return
    venv = in_release(ctx.release_path, config["virtualenv_venv_path"])
    in_the_release = posixpath.relpath(venv, ctx.release_path)
    if in_the_release.startswith(".."):
        return
    removed = ctx.run(store.prune_script(venvs, config["releases_path"], in_the_release)).split()
    directories = [name for name in removed if "." in name.lstrip(".") and not name.endswith(".new")]
    if directories:
        ctx.log(f"removed {len(directories)} virtualenv(s) no kept release uses: {', '.join(directories)}")


def build_in_release(ctx: Any, venv: str, requirements: str, executive: list[str], pip_options: list[str]) -> None:
    """The per-release shape (``virtualenv_venvs_path: ''``): a new venv inside the release, at every deploy."""
    # Check before spending seconds on a venv: the file comes from the code, and
    # a deploy without its dependencies must not go live. Under --dry-run
    # updating copied nothing, so there is nothing to look at.
    if requirements and not ctx.dry_run and not ctx.test(f"test -f {shlex.quote(requirements)}"):
        raise missing_requirements(ctx, requirements)
    installer = ctx.config["virtualenv_installer"]
    uv = ctx.config["virtualenv_uv"]
    if installer != "pip":
        found = ctx.test(f"command -v {shlex.quote(uv)} >/dev/null 2>&1")
        if installer == "uv" and not found:
            raise FapError(
                f"{ctx.host}: virtualenv_installer is uv, but {uv!r} is not a command on the host "
                "(install uv for the deploy user, e.g. 'pip install --user uv', or set virtualenv_uv to its path)"
            )
        installer = "uv" if found else "pip"
    create_and_install(ctx, venv, requirements, executive, pip_options, installer)


def install_slots(ctx: Any) -> Any:
    """At most ``virtualenv_parallel`` hosts install requirements at once, fleet-wide (0: every host)."""
    count = ctx.config["virtualenv_parallel"]
    return ctx.throttle("virtualenv.install", count) if count else nullcontext()


def create_and_install(ctx: Any, venv: str, requirements: str, executive: list[str], pip_options: list[str], installer: str) -> None:
    """Create ``venv`` and install ``requirements`` into it with ``installer`` (``pip`` or ``uv``)."""
    config = ctx.config
    release_path = ctx.release_path
    cache = config["virtualenv_cache_path"]
    python = posixpath.join(venv, "bin", "python")
    shown = requirements_label(requirements, release_path)
    if installer == "uv":
        uv = config["virtualenv_uv"]
        environment = {**UV_ENVIRONMENT, **({"UV_CACHE_DIR": posixpath.join(cache, "uv")} if cache else {})}
        ctx.log(f"creating virtualenv {venv}")
        if executive[1:] == ["-m", "venv"]:
            # uv makes the venv itself (no pip inside: uv installs), in milliseconds.
            run_pip(ctx, [uv, "venv", "--python", executive[0], venv], release_path, "uv venv", environment)
        else:
            creating = [*executive, "--without-pip"] if executive[1:3] == ["-m", "venv"] and "--without-pip" not in executive else executive
            ctx.run(join([*creating, venv]), cwd=release_path)
        if config["virtualenv_pip_upgrade"]:
            ctx.log("virtualenv_pip_upgrade: uv installs, no pip to upgrade")
        if requirements:
            ctx.log(f"installing {requirements} with uv")
            with install_slots(ctx):
                run_pip(ctx, [uv, "pip", "install", "--python", python, *pip_options, "-r", requirements], release_path,
                        f"uv pip install -r {shown}", environment)
        else:
            ctx.log("virtualenv_requirements is empty: no requirements installed")
        return

    environment = {**PIP_ENVIRONMENT, **({"PIP_CACHE_DIR": posixpath.join(cache, "pip")} if cache else {})}
    ctx.log(f"creating virtualenv {venv}")
    ctx.run(join([*executive, venv]), cwd=release_path)
    # The venv's python runs pip, not bin/pip: a script's #! line breaks on
    # paths with spaces or longer than the kernel's limit.
    pip = [python, "-m", "pip"]
    if config["virtualenv_pip_upgrade"]:
        ctx.log("upgrading pip")
        run_pip(ctx, [*pip, "install", "--upgrade", "pip", *pip_options], release_path, "pip install --upgrade pip", environment)
    if requirements:
        ctx.log(f"installing {requirements}")
        with install_slots(ctx):
            run_pip(ctx, [*pip, "install", *pip_options, "-r", requirements], release_path, f"pip install -r {shown}", environment)
    else:
        ctx.log("virtualenv_requirements is empty: no requirements installed")


def missing_requirements(ctx: Any, requirements: str) -> FapError:
    """The error for a requirements file the release does not have."""
    return FapError(
        f"{ctx.host}: virtualenv_requirements: {requirements} does not exist in the release "
        "(set virtualenv_requirements to '' to create the venv without installing anything)"
    )


def requirements_label(requirements: str, release_path: str) -> str:
    """The requirements file as errors name it: relative to the release when inside it."""
    if requirements.startswith(release_path.rstrip("/") + "/"):
        return posixpath.relpath(requirements, release_path)
    return requirements


# ---------------------------------------------------------------------------
# Helpers (public for the tests and for plugins that build on this one)
# ---------------------------------------------------------------------------


def in_release(release_path: str, path: str) -> str:
    """``path`` made absolute: a relative path is inside the release."""
    return posixpath.normpath(posixpath.join(release_path, path))


def executive_argv(value: str) -> list[str]:
    """``virtualenv_executive`` split into words as a shell would; never empty."""
    try:
        words = shlex.split(value or "")
    except ValueError as error:
        raise FapError(f"virtualenv_executive: cannot split {value!r}: {error}") from None
    if not words:
        raise FapError("virtualenv_executive: is empty; write the command that creates a venv, e.g. 'python3 -m venv'")
    return words


def pip_options_argv(value: str | Iterable[str] | None) -> list[str]:
    """``virtualenv_pip_options`` as pip arguments.

    A string, or each item of a list, is split into words as a shell would
    (``'--find-links "/srv/my wheels"'`` keeps the path whole), so a YAML
    string and a YAML list mean the same thing.
    """
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    words: list[str] = []
    for item in items:
        try:
            words.extend(shlex.split(str(item)))
        except ValueError as error:
            raise FapError(f"virtualenv_pip_options: cannot split {item!r}: {error}") from None
    return words


def join(argv: Iterable[str]) -> str:
    """Shell text running ``argv`` with every word quoted."""
    return " ".join(shlex.quote(word) for word in argv)


def run_pip(ctx: Any, argv: list[str], cwd: str, label: str, environment: Mapping[str, str] = PIP_ENVIRONMENT) -> str:
    """Run pip; on failure raise one line: ``label``, the exit code, then pip's own error lines.

    The short ``label`` (not the whole command, which ``-v`` shows) comes
    first so that pip's diagnosis survives in narrow summaries.
    """
    try:
        return ctx.run(join(argv), cwd=cwd, env=dict(environment))
    except CommandFailed as failure:
        detail = pip_error_lines(failure.stderr)
        message = f"{ctx.host}: {ctx.mask(label)} failed (exit {failure.returncode})"
        raise FapError(f"{message}: {detail}" if detail else message) from None


def pip_error_lines(output: str, count: int = ERROR_LINES) -> str:
    """The lines of pip's output that say what went wrong, joined with `` | ``.

    pip states its own diagnosis on ``ERROR:`` lines. When a package's build
    fails, pip instead frames the build's output (``╰─> [N lines of
    output]`` ... ``[end of output]``) and ends with generic notes ("This
    error originates from a subprocess"): the build's last lines are the
    useful ones, after pip's one-line heading (``× ... did not run
    successfully.``). Anything else: the last lines.
    """
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    if errors:
        return " | ".join(errors[-count:])
    if "[end of output]" in lines:
        end = len(lines) - 1 - lines[::-1].index("[end of output]")
        opening = next((i for i in range(end - 1, -1, -1) if lines[i].startswith("╰─>")), -1)
        heading = next((lines[i] for i in range(opening - 1, -1, -1) if lines[i].startswith("×")), "") if opening >= 0 else ""
        built = lines[opening + 1:end][-(count - 1 if heading else count):]
        if built:
            return " | ".join(([heading.lstrip("× ").strip()] if heading else []) + built)
    return " | ".join(lines[-count:])
