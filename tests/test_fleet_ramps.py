"""Canary ramps on a five-host fleet: ``batch_size: [1, 50%, 100%]`` in order, pauses between batches, Ctrl-C in a pause."""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from fapistrano.testing import Fleet, FleetUnavailable

pytestmark = pytest.mark.fleet

HOSTS = ["web1", "web2", "web3", "web4", "web5"]
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "canary"
RAMP = [1, "50%", "100%"]


@pytest.fixture(scope="module")
def fleet5() -> Iterator[Fleet]:
    """Five hosts of their own (the session's fleet has three): a ramp needs a fleet wider than its first batches."""
    try:
        Fleet.check_machine()
        fleet = Fleet(HOSTS)
        fleet.start()
    except FleetUnavailable as reason:
        pytest.skip(str(reason))
    yield fleet
    fleet.stop()


@pytest.fixture
def fleet(fleet5: Fleet) -> Fleet:
    fleet5.reset()
    return fleet5


def switch_times(log: Path) -> dict[str, float]:
    """When each host ended ``publishing`` (its switch), from the ``--log-json`` events."""
    events = [json.loads(line) for line in log.read_text().splitlines()]
    return {e["host"]: e["time"] for e in events if e["kind"] == "phase" and e.get("phase") == "publishing" and e.get("status") == "ok"}


def test_a_ramp_deploys_one_host_then_half_then_the_rest_with_a_pause_between(fleet, fap_run, released, tmp_path):
    fleet.write_deployfile(tmp_path, {"batch_size": RAMP, "batch_pause": 2})
    log = tmp_path / "events.jsonl"

    result = fap_run(["deploy", "-s", "test", "--log-json", str(log)], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    new = released(result)
    assert all(fleet.current(host) == new for host in HOSTS)
    assert "3 batches, 2s pause between batches: 1) web1; 2) web2, web3; 3) web4, web5" in result.stdout
    assert result.stdout.count("pausing 2s before batch") == 2, result.output
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["data"]["batches"] for e in events if "batches" in e.get("data", {})] == [[["web1"], ["web2", "web3"], ["web4", "web5"]]]
    assert len([e for e in events if "pause_until" in e.get("data", {})]) == 2
    times = switch_times(log)
    # Each batch switched after the one before it, and at least the pause later.
    assert max(times["web1"], 0) + 2 <= min(times["web2"], times["web3"]), times
    assert max(times["web2"], times["web3"]) + 2 <= min(times["web4"], times["web5"]), times


def test_the_command_line_ramp_overrides_deploy_yml(fleet, fap_run, tmp_path):
    fleet.write_deployfile(tmp_path, {"batch_size": 2})

    result = fap_run(["deploy", "-s", "test", "--batch-size", "1,25%,100%", "--dry-run"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    # 25% of 5 hosts is 1.25: one host; the last size, 100%, takes the three left.
    assert "3 batches: 1) web1; 2) web2; 3) web3, web4, web5" in result.stdout


def test_a_dry_run_lists_the_batches_and_changes_nothing(fleet, fap_run, tmp_path):
    fleet.write_deployfile(tmp_path, {"batch_size": RAMP, "batch_pause": 60})

    result = fap_run(["deploy", "-s", "test", "--dry-run"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert "3 batches, 60s pause between batches: 1) web1; 2) web2, web3; 3) web4, web5" in result.stdout
    assert "would pause 60s before batch 2/3" in result.stdout
    assert result.duration < 50, result.output  # a dry run does not wait
    assert all(fleet.releases(host) == [] for host in HOSTS)


def test_a_canary_failing_its_health_check_switches_back_and_no_later_host_gets_the_release(fleet, fap_run, released, tmp_path):
    fleet.write_deployfile(tmp_path)
    first = fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path)
    assert first.exit_code == 0, first.output
    good = released(first)
    fleet.write_deployfile(tmp_path, {"batch_size": RAMP, "batch_pause": 1})

    result = fap_run(["deploy", "-s", "test", "--healthcheck", '[ "$FAP_HOST" != web1 ]', "--healthcheck-timeout", "1",
                      "--healthcheck-interval", "0.2"], cwd=tmp_path)

    assert result.exit_code == 4, result.output
    for host in HOSTS:
        assert fleet.current(host) == good, result.output
        assert fleet.releases(host) == [good], result.output  # web1's new release removed; the others never had one
        assert not fleet.locked(host)
    assert "switched back to" in result.output
    assert "batch 2/3: " not in result.stdout and "pausing" not in result.stdout


def test_ctrl_c_during_a_pause_stops_the_run_and_leaves_the_canary_switched(fleet, fap_run, fap_start, released, tmp_path):
    fleet.write_deployfile(tmp_path)
    first = fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path)
    assert first.exit_code == 0, first.output
    good = released(first)
    fleet.write_deployfile(tmp_path, {"batch_size": RAMP, "batch_pause": 120})

    fap = fap_start(["deploy", "-s", "test"], cwd=tmp_path)
    fap.wait_until(lambda: "pausing 120s before batch 2/3" in fap.output, what="the pause", timeout=120)
    fap.send_signal(signal.SIGINT)
    result = fap.wait(timeout=60)

    assert result.exit_code == 130, result.output
    assert result.duration < 100, result.output  # the pause did not run out
    new = fleet.current("web1")
    assert new != good and new in fleet.releases("web1")  # the canary batch stays on the new release
    for host in HOSTS[1:]:
        assert fleet.current(host) == good, result.output
        assert fleet.releases(host) == [good], result.output
    assert not any(fleet.locked(host) for host in HOSTS)
    assert "interrupted" in result.output
    assert f"current now points to {new} (kept) on web1" in result.output
    assert "to return to the previous release: fap rollback -s test --hosts web1" in result.output
    assert "batch 2/3: " not in result.output  # the stop came first: no batch is announced that does not start
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("value", "words"), [
    ("[1, 150%]", "batch_size: 150%: a percentage of the hosts is more than 0% and at most 100%"),
    ("[0, 100%]", "batch_size: 0 hosts in a batch"),
    ("[]", "batch_size: an empty list"),
    ("[1, abc]", "batch_size: 'abc' is not a number of hosts"),
    ("-1", "batch_size: must be 0 (all at once) or more, got -1"),
])
def test_a_bad_ramp_in_deploy_yml_is_one_line_with_its_line_and_nothing_is_touched(fleet, fap_run, tmp_path, value, words):
    path = fleet.write_deployfile(tmp_path)
    path.write_text(path.read_text() + f"batch_size: {value}\n")
    line = len(path.read_text().splitlines())

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 2, result.output
    assert f"deploy.yml:{line}: {words}" in result.stderr, result.stderr
    assert "Traceback" not in result.output
    assert all(fleet.releases(host) == [] for host in HOSTS)


@pytest.mark.parametrize(("args", "words"), [
    (["--batch-size", "1,0"], "command line: --batch-size: 0 hosts in a batch"),
    (["--batch-size", "150%"], "command line: --batch-size: 150%: a percentage"),
    (["--batch-pause", "30s"], "command line: batch_pause: expected a number of seconds, got '30s' (did you mean 30?)"),
    (["--batch-pause", "-1"], "batch_pause: must be 0 (no pause) or more seconds"),
])
def test_a_bad_ramp_on_the_command_line_names_the_option(fleet, fap_run, tmp_path, args, words):
    fleet.write_deployfile(tmp_path)

    result = fap_run(["deploy", "-s", "test", *args], cwd=tmp_path)

    assert result.exit_code == 2, result.output
    assert words in result.stderr, result.stderr
    assert all(fleet.releases(host) == [] for host in HOSTS)


def test_the_canary_example_ramps_over_five_hosts(fleet, fap_run, released, tmp_path):
    project = tmp_path / "canary"
    shutil.copytree(EXAMPLE, project)
    yaml = YAML()
    data = yaml.load(project / "deploy.yml")
    data["ssh_config"] = str(fleet.ssh_config)
    hosts = data["stage_role_configs"]["production"]["web"]["hosts"]
    assert hosts[0]["environment"] == {"APP_CANARY": "1"}, "the example's canary carries a setting of its own"
    hosts[0]["host"] = HOSTS[0]
    hosts[1:] = list(HOSTS[1:])
    yaml.dump(data, project / "deploy.yml")

    listed = fap_run(["deploy", "-s", "production", "--dry-run"], cwd=project)
    assert listed.exit_code == 0, listed.output
    assert "3 batches, 30s pause between batches: 1) web1; 2) web2, web3; 3) web4, web5" in listed.stdout

    result = fap_run(["deploy", "-s", "production", "--batch-pause", "1"], cwd=project)  # the example's 30 s, shortened

    assert result.exit_code == 0, result.output
    new = released(result)
    for host in HOSTS:
        assert fleet.current(host, "canary") == new
        assert "hello from the canary example" in (fleet.current_dir(host, "canary") / "index.html").read_text()
    assert result.stdout.count("pausing 1s before batch") == 2
    for host in HOSTS:
        env = (fleet.current_dir(host, "canary") / ".env").read_text().splitlines()
        assert "APP_ENV=production" in env, env
        assert f"APP_CANARY={1 if host == HOSTS[0] else 0}" in env, (host, env)
    assert result.stdout.count("healthy: check passed") == 5, result.output
