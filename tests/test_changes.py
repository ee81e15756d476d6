"""The fingerprint of a release (``fap deploy --if-changed``): stable, release-neutral, naming what changed, no secret in clear."""

from __future__ import annotations

import json

from fapistrano import changes
from fapistrano.config import Step

CONFIG = {"release_path": "/srv/app/releases/261205-071500", "environment": {"MODE": "blue"}, "api_token": "s3cret-value",
          "keep_releases": 5, "max_fail": "0", "hosts": ["web1"]}
STEPS = (Step("updated", "./build.sh", "deploy.yml:9"),)


def record(config=CONFIG, release="261205-071500", revision="abc", steps=STEPS):
    return changes.fingerprint(revision, config, ("fapistrano.git",), steps, release)


def test_two_releases_of_the_same_thing_have_the_same_fingerprint():
    later = {**CONFIG, "release_path": "/srv/app/releases/261206-090000"}
    assert record()["fingerprint"] == record(later, release="261206-090000")["fingerprint"]


def test_each_difference_is_named():
    assert changes.differences(record(), record(revision="def")) == ["revision"]
    assert changes.differences(record(), record({**CONFIG, "environment": {"MODE": "green"}})) == ["setting environment"]
    moved = (Step("updated", "./build.sh --fast", "deploy.yml:9"),)
    assert changes.differences(record(), record(steps=moved)) == ["hooks: steps"]
    assert changes.differences(record(), record()) == []


def test_a_step_moved_to_another_line_changes_nothing():
    assert changes.differences(record(), record(steps=(Step("updated", "./build.sh", "deploy.yml:30"),))) == []


def test_no_setting_value_is_written_in_clear():
    text = json.dumps(record())
    assert "s3cret-value" not in text and "blue" not in text
    assert changes.differences(record(), record({**CONFIG, "api_token": "other-value"})) == ["setting api_token"]


def test_a_file_that_is_no_record_reads_as_none():
    assert changes.parse_record("") is None
    assert changes.parse_record("not json") is None
    assert changes.parse_record('{"fingerprint": "x"}') == {"fingerprint": "x"}


def test_how_fap_runs_the_hosts_is_no_change_of_the_release():
    for name, value in (("max_fail", "1"), ("hosts", ["web1", "web2"]), ("keep_releases", 3), ("restart_plugins", ["x"])):
        assert changes.differences(record(), record({**CONFIG, name: value})) == [], name
