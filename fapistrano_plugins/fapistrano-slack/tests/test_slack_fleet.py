"""fapistrano.slack on the real SSH fleet: one message per run, naming every host, whatever the fleet does."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.fleet


def test_a_fleet_deploy_posts_once_for_the_run_naming_every_host(fap_fleet, fap_run, tmp_path, webhook):
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["fapistrano.slack"], "slack_webhook": webhook.url()})

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    release = fap_fleet.current("host1")
    assert {fap_fleet.current(host) for host in fap_fleet.hosts} == {release}
    assert len(webhook.posts) == 2
    start, end = (text.splitlines() for text in webhook.texts)
    assert start[0].startswith(f"app: deploy of release {release} to test/web started by ")
    assert start[1:] == end[1:] == ["hosts: host1, host2, host3 (3)"]
    assert ": ok in " in end[0]


def test_a_host_that_cannot_be_reached_is_the_first_error_of_the_end_message(fap_fleet, fap_run, tmp_path, webhook):
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["fapistrano.slack"], "slack_webhook": webhook.url()})
    fap_fleet.kill_host("host2")

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 1, result.output
    assert all(fap_fleet.current(host) is None for host in ("host1", "host3"))
    # The run stopped before it started: only the end message is posted.
    assert len(webhook.posts) == 1
    end = webhook.texts[0].splitlines()
    assert end[0].startswith("app: deploy to test/web by ") and end[0].endswith(": failed")
    assert end[-1].startswith("error: host2: ")
