"""``ctx.run(..., show_output=True)``: a command's output the operator should read, shown without -v."""

from __future__ import annotations

import json
from typing import Any

PLUGIN = '''\
import shlex

from fapistrano import Setting, hookimpl


@hookimpl
def fap_settings():
    return [Setting("shown_token", "", "A secret the shown output must not print.", secret=True)]


@hookimpl
def fap_deploy_updated(ctx):
    ctx.run("echo 'migrated 3 tables'; echo token " + shlex.quote(ctx.config["shown_token"]) + " >&2", show_output=True)
    ctx.run("echo 'an ordinary line'")
'''


def deploy(fap_local: Any, fap_run: Any, *args: str) -> Any:
    (fap_local.root / "shown_plugin.py").write_text(PLUGIN)
    fap_local.write_deployfile({"plugins": ["shown_plugin"], "shown_token": "s3cr3t-v4lue"})
    return fap_run(["deploy", "-s", "test", *args], cwd=fap_local.root)


def test_shown_output_is_printed_at_normal_verbosity_and_masked(fap_local: Any, fap_run: Any) -> None:
    result = deploy(fap_local, fap_run)
    assert result.exit_code == 0, result.output
    assert "localhost | updated | migrated 3 tables" in result.stdout
    assert "localhost | updated | token ***" in result.stdout
    assert "an ordinary line" not in result.output
    assert "s3cr3t-v4lue" not in result.output


def test_quiet_hides_shown_output_and_verbose_shows_every_line_once(fap_local: Any, fap_run: Any) -> None:
    quiet = deploy(fap_local, fap_run, "-q")
    assert quiet.exit_code == 0, quiet.output
    assert "migrated 3 tables" not in quiet.output

    verbose = deploy(fap_local, fap_run, "-v")
    assert verbose.exit_code == 0, verbose.output
    shown = [line for line in verbose.stdout.splitlines() if line.endswith("| migrated 3 tables")]
    assert shown == ["localhost | updated | migrated 3 tables"]
    assert "localhost | updated |   an ordinary line" in verbose.stdout


def test_shown_output_is_in_the_json_log_as_log_events(fap_local: Any, fap_run: Any) -> None:
    log = fap_local.root / "events.jsonl"
    result = deploy(fap_local, fap_run, "-q", "--log-json", str(log))
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in log.read_text().splitlines()]
    shown = [e for e in events if e["kind"] == "log" and e.get("phase") == "updated"]
    # stdout and stderr are two streams: their lines may arrive in either order.
    assert sorted(e["message"] for e in shown) == ["migrated 3 tables", "token ***"]
