"""Helpers for the operator-command tests (``test_commands_*.py``); holds no tests itself.

``install_demo_plugin(directory)`` makes a real installed distribution,
``fap-demo-plugin 0.3``, the way pip leaves one: a module and a
``.dist-info`` with an entry point ``fapistrano.demo`` in the ``fapistrano``
group. Putting ``directory`` on ``PYTHONPATH`` installs it for the ``fap``
processes a test starts, and for nothing else.
"""

from __future__ import annotations

import re
from pathlib import Path

DEMO_SOURCE = '''\
"""fap-demo-plugin: a small third-party plugin for the command tests."""

import shlex

from fapistrano import hookimpl


@hookimpl
def fap_defaults():
    return {
        "demo_greeting": "hello from %(host)s",
        "demo_token": "",
        "demo_marker": "",
        "demo_check_crash": False,
        "demo_fail_host": "",
    }


@hookimpl
def fap_setting_docs():
    return {
        "demo_greeting": "What the demo plugin writes into GREETING in each release.",
        "demo_token": "API token of the demo service.",
        "demo_marker": "A file that must exist on each host before a deploy.",
    }


@hookimpl
def fap_secret_settings():
    return ["demo_token"]


@hookimpl
def fap_check(ctx):
    if ctx.config["demo_check_crash"]:
        raise RuntimeError("the demo check fell over")
    marker = ctx.config["demo_marker"]
    if marker and not ctx.exists(marker):
        return ["marker file " + marker + " is missing"]
    return []


@hookimpl
def fap_deploy_updating(ctx):
    ctx.run("printf '%s\\\\n' " + shlex.quote(ctx.config["demo_greeting"]) + " > GREETING", cwd=ctx.release_path)
    if ctx.host == ctx.config["demo_fail_host"]:
        ctx.run("echo 'no space left on device [Errno 28]' >&2; exit 1")
'''

BROKEN_SOURCE = '''\
raise ImportError("fap_broken_plugin needs a library that is not installed")
'''


def _distribution(directory: Path, name: str, version: str, entry_points: dict[str, str]) -> None:
    info = directory / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "".join(f"{ep} = {module}\n" for ep, module in entry_points.items())
    (info / "entry_points.txt").write_text(f"[fapistrano]\n{lines}")


def install_demo_plugin(directory: Path, broken: bool = False) -> dict[str, str]:
    """Install ``fap-demo-plugin`` (and, if asked, a plugin that fails to import) into ``directory``.

    :return: the environment that makes ``fap`` see them.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "fap_demo_plugin.py").write_text(DEMO_SOURCE)
    _distribution(directory, "fap-demo-plugin", "0.3", {"fapistrano.demo": "fap_demo_plugin"})
    if broken:
        (directory / "fap_broken_plugin.py").write_text(BROKEN_SOURCE)
        _distribution(directory, "fap-broken-plugin", "0.1", {"fapistrano.broken": "fap_broken_plugin"})
    return {"PYTHONPATH": str(directory)}


def config_rows(output: str) -> dict[str, tuple[str, str]]:
    """``fap config`` output -> ``{setting: (value, origin)}`` (columns are two or more spaces apart)."""
    rows = {}
    for line in output.splitlines():
        if not line or line.startswith("#"):
            continue
        parts = re.split(r"\s{2,}", line.strip())
        if len(parts) == 3:
            rows[parts[0]] = (parts[1], parts[2])
    return rows


def one_error_line(result: object) -> str:
    """The single ``fap: error:`` line of a handled failure (and no traceback)."""
    output = result.stdout + result.stderr  # type: ignore[attr-defined]
    assert result.exit_code != 0, output  # type: ignore[attr-defined]
    assert "Traceback" not in output, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("fap: error:")]  # type: ignore[attr-defined]
    assert len(errors) == 1, output
    return errors[0]
