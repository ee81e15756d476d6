"""fapistrano.virtualenv: a Python virtualenv per release, built from the release's requirements.

In ``fap_deploy_updated`` (the code and the shared links are in place) every
host creates ``virtualenv_venv_path`` with ``virtualenv_executive``,
optionally upgrades pip, and installs ``virtualenv_requirements`` with the
venv's own pip. The venv lives inside the release by default, so every
release carries the exact environment it was tested with and a rollback
returns to it with the same symlink switch as the code.

Enable it in deploy.yml::

    plugins:
      - fapistrano.virtualenv
    virtualenv_requirements: '%(release_path)s/production-requirements.txt'
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from typing import Any

from fapistrano import CommandFailed, FapError, Setting, hookimpl

__version__ = "1.0.0"

#: Environment for every pip run: unbuffered so each line reaches the live view
#: as pip prints it (a piped Python is block-buffered), and never a prompt or a
#: version check that would hang or chatter on an offline host.
PIP_ENVIRONMENT: dict[str, str] = {
    "PYTHONUNBUFFERED": "1",
    "PIP_NO_INPUT": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}

#: How many of pip's lines a failed install reports.
ERROR_LINES = 5


@hookimpl
def fap_settings() -> list[Setting]:
    """The ``virtualenv_*`` settings."""
    return [
        Setting(
            "virtualenv_venv_path", "%(release_path)s/venv",
            "Where each release's virtualenv is created (relative paths are inside the release).",
        ),
        Setting(
            "virtualenv_executive", "python3 -m venv",
            "The command that creates a virtualenv, given the venv path as its last argument, e.g. 'virtualenv -p python3.11'.",
        ),
        Setting(
            "virtualenv_requirements", "%(release_path)s/requirements.txt",
            "The requirements file pip installs into the venv; the deploy fails if it is missing; '' installs nothing.",
        ),
        Setting("virtualenv_pip_upgrade", False, "Upgrade pip inside the new venv before installing the requirements."),
        Setting(
            "virtualenv_pip_options", [],
            "Extra pip install arguments, e.g. '--no-index --find-links /srv/wheels'; each item is split like a shell word list.",
            type=list[str],
        ),
        Setting(
            "virtualenv_parallel", 0,
            "How many hosts run pip install -r at the same time, fleet-wide (a private index spared); 0: every host at once.",
        ),
    ]


@hookimpl
def fap_check(ctx: Any) -> list[str]:
    """Report a missing virtualenv command (or a Python without ensurepip) on the host."""
    try:
        executive = executive_argv(ctx.config["virtualenv_executive"])
    except FapError as error:
        return [str(error)]
    program = executive[0]
    if not ctx.test(f"command -v {shlex.quote(program)} >/dev/null 2>&1"):
        return [f"virtualenv_executive: {program!r} is not found on the host's PATH"]
    creates_pip = "--without-pip" not in executive
    if executive[1:3] == ["-m", "venv"] and creates_pip and not ctx.test(f"{shlex.quote(program)} -c 'import ensurepip' >/dev/null 2>&1"):
        # Debian and Ubuntu ship ensurepip separately: 'python3 -m venv' fails without it.
        return [f"virtualenv_executive: {program} -m venv cannot install pip (no ensurepip; on Debian/Ubuntu install python3-venv)"]
    return []


@hookimpl
def fap_deploy_updated(ctx: Any) -> None:
    """Create the release's venv and install its requirements into it."""
    config = ctx.config
    release_path = ctx.release_path
    venv = in_release(release_path, config["virtualenv_venv_path"])
    requirements = in_release(release_path, config["virtualenv_requirements"]) if config["virtualenv_requirements"] else ""
    executive = executive_argv(config["virtualenv_executive"])
    pip_options = pip_options_argv(config["virtualenv_pip_options"])

    # Check before spending seconds on a venv: the file comes from the code, and
    # a deploy without its dependencies must not go live. Under --dry-run
    # updating copied nothing, so there is nothing to look at.
    if requirements and not ctx.dry_run and not ctx.test(f"test -f {shlex.quote(requirements)}"):
        raise FapError(
            f"{ctx.host}: virtualenv_requirements: {requirements} does not exist in the release "
            "(set virtualenv_requirements to '' to create the venv without installing anything)"
        )

    ctx.log(f"creating virtualenv {venv}")
    ctx.run(join([*executive, venv]), cwd=release_path)

    # The venv's python runs pip, not bin/pip: a script's #! line breaks on
    # paths with spaces or longer than the kernel's limit.
    pip = [posixpath.join(venv, "bin", "python"), "-m", "pip"]
    if config["virtualenv_pip_upgrade"]:
        ctx.log("upgrading pip")
        run_pip(ctx, [*pip, "install", "--upgrade", "pip", *pip_options], release_path, "pip install --upgrade pip")
    if requirements:
        ctx.log(f"installing {requirements}")
        shown = posixpath.relpath(requirements, release_path) if requirements.startswith(release_path.rstrip("/") + "/") else requirements
        with ctx.throttle("virtualenv.pip", config["virtualenv_parallel"]) if config["virtualenv_parallel"] else nullcontext():
            run_pip(ctx, [*pip, "install", *pip_options, "-r", requirements], release_path, f"pip install -r {shown}")
    else:
        ctx.log("virtualenv_requirements is empty: no requirements installed")


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
