"""How many round trips a default git deploy makes per host: what a deploy over a slow link pays for.

The deploy floor (the whole release as one script) makes one; fap's lockstep
phases need the probe and lock, everything before the switch, the switch, and
everything after it with the unlock: four. A change that adds one fails here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HOSTS = ("host1", "host2", "host3")


def summary_rows(log: Path) -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    return {row["host"]: row for row in rows if row.get("kind") == "summary"}


def test_default_git_deploy_makes_at_most_four_round_trips_per_host(fap_fleet, fap_run, tmp_path, git_repo):
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["fapistrano.git"], "repo": str(git_repo.path),
                                          "linked_files": ["config/settings.ini"], "keep_releases": 1})
    for host in HOSTS:
        shared = fap_fleet.app_dir(host) / "shared" / "config"
        fap_fleet.in_host(host, ["sh", "-c", f"mkdir -p {shared} && echo '[app]' > {shared}/settings.ini"], user="deploy")
    for _ in range(2):
        earlier = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
        assert earlier.exit_code == 0, earlier.output
    first_release = fap_fleet.releases("host1")[0]
    git_repo.commit({"app.py": "print('v2')\n"}, "v2")

    # The third deploy has everything to do: fetch, archive, link, switch, log the revision, remove the old release.
    log = tmp_path / "events.jsonl"
    third = fap_run(["deploy", "-s", "test", "-v", "--log-json", str(log)], cwd=tmp_path)

    assert third.exit_code == 0, third.output
    rows = summary_rows(log)
    for host in HOSTS:
        assert first_release not in fap_fleet.releases(host)  # keep_releases: 1 (and the rollback target)
        assert (fap_fleet.current_dir(host) / "app.py").read_text() == "print('v2')\n"
        assert (fap_fleet.current_dir(host) / "config" / "settings.ini").is_symlink()
        assert len((fap_fleet.app_dir(host) / "revisions.log").read_text().splitlines()) == 3
        assert rows[host]["round_trips"] <= 4, rows[host]  # the history record, with its revision, included
        record = json.loads((fap_fleet.app_dir(host) / ".fap" / "history.jsonl").read_text().splitlines()[-1])
        assert record["revision"] == (fap_fleet.current_dir(host) / "REVISION").read_text().strip() != ""
    assert "round trips per host: " in third.output


def test_a_local_step_after_a_phase_finds_every_host_done_with_what_it_sent_later(fap_fleet, fap_run, tmp_path, git_repo):
    # A step on the deployer after updating counts on every host having the code (the archive goes with
    # a later round trip when nothing needs it sooner): with local: steps each phase ends with it sent.
    checks = " && ".join(f"ls {fap_fleet.app_dir(host)}/releases/*/web/index.html" for host in HOSTS)
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["fapistrano.git"], "repo": str(git_repo.path),
                                          "hooks": {"updating": [{"local": checks}]}})

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    for host in HOSTS:
        assert (fap_fleet.current_dir(host) / "web" / "index.html").is_file()
