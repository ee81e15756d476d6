"""Values from deploy.yml and the command line are data, never code; secrets never show."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

PAYLOADS = {
    "semicolon": "a; touch /tmp/fap-pwned-semicolon",
    "subshell": "$(touch /tmp/fap-pwned-subshell)",
    "backticks": "`touch /tmp/fap-pwned-backticks`",
    "quotes": "it's \"quoted\" '; touch /tmp/fap-pwned-quotes; '",
}


def _no_payload_ran() -> None:
    for name in PAYLOADS:
        assert not Path(f"/tmp/fap-pwned-{name}").exists(), name


def test_hostile_names_and_values_are_quoted_everywhere(fap_fleet, fap_run, tmp_path):
    for name in PAYLOADS:
        Path(f"/tmp/fap-pwned-{name}").unlink(missing_ok=True)
    linked = ["config/a; touch \"/tmp/fap-pwned-semicolon\"", "config/$(touch \"/tmp/fap-pwned-subshell\")",
              "config/`touch \"/tmp/fap-pwned-backticks\"`", "config/it's here.yml"]
    app_name = "my app; $(touch /tmp/fap-pwned-subshell)"
    for host in fap_fleet.names:
        root = fap_fleet.hosts[host].path(f"/home/deploy/www/{app_name}")
        for name in linked:
            (root / "shared" / name).parent.mkdir(parents=True, exist_ok=True)
            (root / "shared" / name).write_text(name)
        subprocess.run(["chown", "-R", "deploy:deploy", str(root)], check=True)
    fap_fleet.write_deployfile(tmp_path, {"app_name": app_name, "linked_files": linked,
                                          "linked_dirs": ["log dir/`touch \"/tmp/fap-pwned-backticks\"`"],
                                          "environment": {f"VAR_{k.upper()}": v for k, v in PAYLOADS.items()}})

    result = fap_run(["deploy", "-s", "test", "--keep-releases", "2"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    _no_payload_ran()
    for host in fap_fleet.names:
        release = fap_fleet.current_dir(host, app_name)
        for name in linked:
            target = os.readlink(release / name)
            assert target == f"/home/deploy/www/{app_name}/shared/{name}"
            assert fap_fleet.hosts[host].path(target).read_text() == name
        assert (release / "log dir" / "`touch \"/tmp/fap-pwned-backticks\"`").is_symlink()
        # Sourcing .env as the app would gives back every value exactly, and runs nothing.
        shown = subprocess.run(["sh", "-c", "set -a; . ./.env; set +a; env"], cwd=release, capture_output=True, text=True, check=True).stdout
        for key, value in PAYLOADS.items():
            assert f"VAR_{key.upper()}={value}" in shown
    _no_payload_ran()

    once = fap_run(["once", "-s", "test", "-c", "printf '%s\\n' \"$VAR_SUBSHELL\""], cwd=tmp_path)
    assert once.exit_code == 0, once.output
    assert "$(touch /tmp/fap-pwned-subshell)" in once.stdout
    _no_payload_ran()


def test_secrets_are_masked_in_output_errors_and_the_json_log(fap_fleet, fap_run, tmp_path):
    (tmp_path / "leaky.py").write_text(
        "from fapistrano import hookimpl\n"
        "@hookimpl\n"
        "def fap_defaults():\n"
        "    return {'api_token': '', 'artifact_url': ''}\n"
        "@hookimpl\n"
        "def fap_deploy_updating(ctx):\n"
        "    ctx.log('using token ' + ctx.config['api_token'])\n"
        "    ctx.run('echo fetching ' + ctx.config['artifact_url'] + ' with ' + ctx.config['api_token'])\n"
        "@hookimpl\n"
        "def fap_deploy_updated(ctx):\n"
        "    ctx.run('echo ' + ctx.config['api_token'] + ' >&2; echo ' + ctx.config['artifact_url'] + ' >&2; exit 3')\n"
    )
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["leaky"], "mask": ["api_token"], "api_token": "s3cr3t-t0ken",
                                          "artifact_url": "https://bob:hunter22@example.invalid/app.tgz"})
    log = tmp_path / "events.jsonl"

    result = fap_run(["deploy", "-s", "test", "-v", "--log-json", str(log)], cwd=tmp_path)

    assert result.exit_code == 1
    assert "host1, host2, host3: updated: leaky: *** | https://bob:***@example.invalid/app.tgz (command exited 3)" in result.stderr
    everything = result.output + log.read_text()
    assert "s3cr3t-t0ken" not in everything
    assert "hunter22" not in everything
    assert "https://bob:***@example.invalid/app.tgz" in result.stdout
    assert "using token ***" in result.stdout
    events = [json.loads(line) for line in log.read_text().splitlines()]
    failed = [e for e in events if e.get("kind") == "phase" and e.get("status") == "failed"]
    assert {e["host"] for e in failed} == set(fap_fleet.names)
    assert all(e["phase"] == "updated" for e in failed)
    assert events[-1] == {"kind": "end", "ok": False, "title": "fap deploy: FAILED"}
