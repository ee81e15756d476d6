"""Day two on the real fleet: the history each run leaves on every host, ``fap history``, bad releases, --retry-failed."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fapistrano import layout

pytestmark = pytest.mark.fleet

HOSTS = ("host1", "host2", "host3")
#: A step that fails on a host whose shared/ holds a file named ``fail``.
FAILS_WHERE_FLAGGED = {"updated": [{"run": 'test ! -e "$FAP_RELEASE_PATH/../../shared/fail"'}]}
FAILS_ON_HOST2 = 'if [ "$FAP_HOST" = host2 ]; then echo "503 from $FAP_HOST"; exit 1; fi'


def records(fap_fleet: Any, host: str) -> list[dict[str, Any]]:
    """The host's history, as a user would read it: one JSON object per line."""
    path = fap_fleet.app_dir(host) / ".fap" / "history.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def last_records(fap_fleet: Any) -> dict[str, dict[str, Any]]:
    return {host: records(fap_fleet, host)[-1] for host in HOSTS if records(fap_fleet, host)}


def fap(fap_run: Any, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return fap_run(list(args), cwd=tmp_path, env=env)


@pytest.fixture
def deployed(fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path) -> list[str]:
    """Two releases deployed on every host."""
    fap_fleet.write_deployfile(tmp_path, {"hooks": FAILS_WHERE_FLAGGED})
    names = []
    for _ in range(2):
        result = fap(fap_run, tmp_path, "deploy", "-s", "test", "-q")
        assert result.exit_code == 0, result.output
        names.append(released(result))
    return names


def test_a_deploy_leaves_one_record_per_host_with_one_run_id(fap_fleet, fap_run, tmp_path, deployed):
    first, second = deployed
    last = last_records(fap_fleet)
    assert set(last) == set(HOSTS)
    assert len({r["run"] for r in last.values()}) == 1
    for host, record in last.items():
        assert record["host"] == host and record["command"] == "deploy" and record["outcome"] == "deployed"
        assert record["release"] == second and record["replaced"] == first
        assert record["stage"] == "test" and record["role"] == "web"
        assert record["started"].endswith("Z") and record["finished"] >= record["started"]
        assert "@" in record["who"] and record["fap"]
        assert len(records(fap_fleet, host)) == 2


def test_fap_who_names_the_deployer_and_dry_run_writes_nothing(fap_fleet, fap_run, tmp_path, deployed):
    result = fap(fap_run, tmp_path, "deploy", "-s", "test", "-q", env={"FAP_WHO": "ci pipeline 42"})
    assert result.exit_code == 0, result.output
    assert {r["who"] for r in last_records(fap_fleet).values()} == {"ci pipeline 42"}
    dry = fap(fap_run, tmp_path, "--dry-run", "deploy", "-s", "test")
    assert dry.exit_code == 0, dry.output
    assert all(len(records(fap_fleet, host)) == 3 for host in HOSTS)


def test_rollback_keeps_the_release_it_leaves_marked_bad(fap_fleet, fap_run, tmp_path, deployed):
    first, second = deployed
    result = fap(fap_run, tmp_path, "rollback", "-s", "test", env={"FAP_WHO": "alice"})
    assert result.exit_code == 0, result.output
    for host in HOSTS:
        assert fap_fleet.current(host) == first
        assert fap_fleet.releases(host) == [first, second]  # kept
        mark = json.loads((fap_fleet.app_dir(host) / ".fap" / "marks" / f"{second}.bad.json").read_text())
        assert mark["who"] == "alice" and mark["why"] == f"rolled back to {first}" and mark["when"].endswith("Z")
    last = last_records(fap_fleet)
    assert {r["outcome"] for r in last.values()} == {"rolled back"}
    assert {r["release"] for r in last.values()} == {first} and {r["replaced"] for r in last.values()} == {second}
    assert {m["run"] for m in [json.loads((fap_fleet.app_dir(h) / ".fap" / "marks" / f"{second}.bad.json").read_text())
                               for h in HOSTS]} == {last["host1"]["run"]}

    listing = fap(fap_run, tmp_path, "releases", "-s", "test")
    assert listing.exit_code == 0, listing.output
    assert f"{second} is marked bad by alice at " in listing.stdout
    assert any(line.startswith(second) and "bad" in line for line in listing.stdout.splitlines()), listing.stdout


def test_a_plain_rollback_skips_a_bad_release_and_to_warns(fap_fleet, fap_run, released, tmp_path, deployed):
    first, second = deployed
    assert fap(fap_run, tmp_path, "rollback", "-s", "test").exit_code == 0  # second is bad now
    third = released(fap(fap_run, tmp_path, "deploy", "-s", "test", "-q"))

    result = fap(fap_run, tmp_path, "rollback", "-s", "test")
    assert result.exit_code == 0, result.output
    assert all(fap_fleet.current(host) == first for host in HOSTS), result.output  # not second, which is bad

    assert fap_fleet.releases("host1") == [first, second, third]  # third is bad now too

    to_bad = fap(fap_run, tmp_path, "rollback", "-s", "test", "--to", second)
    assert to_bad.exit_code == 0, to_bad.output
    assert f"{second} is marked bad" in to_bad.output and "rolling back to it as asked with --to" in to_bad.output
    assert all(fap_fleet.current(host) == second for host in HOSTS)

    none_good = fap(fap_run, tmp_path, "rollback", "-s", "test")  # first, the only older one, is bad now
    assert none_good.exit_code == 2, none_good.output
    assert f"nothing to roll back to: every release before {second} is marked bad ({first})" in none_good.stderr
    assert "Traceback" not in none_good.output
    assert all(fap_fleet.current(host) == second for host in HOSTS)


def test_cleanup_removes_bad_releases_first_and_keeps_keep_releases_good_ones(fap_fleet, fap_run, released, tmp_path, deployed):
    first, second = deployed
    assert fap(fap_run, tmp_path, "rollback", "-s", "test").exit_code == 0  # second is bad
    third = released(fap(fap_run, tmp_path, "deploy", "-s", "test", "-q", "--keep-releases", "2"))
    for host in HOSTS:
        assert fap_fleet.releases(host) == [first, third], "the bad release goes, not the good one"
        assert not (fap_fleet.app_dir(host) / ".fap" / "marks" / f"{second}.bad.json").exists()


def test_a_failure_before_the_switch_is_recorded_on_every_host(fap_fleet, fap_run, tmp_path, deployed):
    (fap_fleet.app_dir("host2") / "shared" / "fail").touch()
    result = fap(fap_run, tmp_path, "deploy", "-s", "test")
    assert result.exit_code == 1, result.output
    last = last_records(fap_fleet)
    assert {r["outcome"] for r in last.values()} == {"failed before the switch"}
    assert len({r["run"] for r in last.values()}) == 1
    assert "exited 1" in last["host2"]["why"] and "another host failed" in last["host1"]["why"]

    shown = fap(fap_run, tmp_path, "history", "-s", "test", "-n", "2")
    assert shown.exit_code == 0, shown.output
    assert "failed before the switch" in shown.stdout and "3/3" in shown.stdout


def test_a_health_switch_back_is_recorded_with_why(fap_fleet, fap_run, tmp_path, deployed):
    first, second = deployed
    result = fap(fap_run, tmp_path, "deploy", "-s", "test", "--healthcheck", FAILS_ON_HOST2, "--healthcheck-timeout", "1")
    assert result.exit_code == 4, result.output
    last = last_records(fap_fleet)
    assert {r["outcome"] for r in last.values()} == {"switched back"}, last
    assert len({r["run"] for r in last.values()}) == 1
    assert "health check failed: 503 from host2" in last["host2"]["why"]
    assert "health check failed" in last["host1"]["why"]
    assert all(fap_fleet.releases(host) == [first, second] for host in HOSTS)  # the new release is removed, as before


def test_sigint_mid_deploy_records_interrupted(fap_fleet, fap_start, tmp_path, deployed):
    started = fap_fleet.app_dir("host1") / "shared" / "started"
    fap_fleet.write_deployfile(tmp_path, {"hooks": {"updating": [{"run": 'touch "$FAP_RELEASE_PATH/../../shared/started"; sleep 30'}]}})
    process = fap_start(["deploy", "-s", "test"], cwd=tmp_path)
    process.wait_until(started.exists, what="the step to start")
    process.send_signal(signal.SIGINT)
    result = process.wait()
    assert result.exit_code == 130, result.output
    last = last_records(fap_fleet)
    assert {r["outcome"] for r in last.values()} == {"interrupted"}, last
    assert len({r["run"] for r in last.values()}) == 1


def test_fap_history_merges_the_hosts_runs_newest_first_and_json_parses(fap_fleet, fap_run, tmp_path, deployed):
    first, second = deployed
    assert fap(fap_run, tmp_path, "rollback", "-s", "test").exit_code == 0
    (fap_fleet.app_dir("host3") / "shared" / "fail").touch()
    partial = fap(fap_run, tmp_path, "deploy", "-s", "test", "--max-fail", "1")
    assert partial.exit_code == 3, partial.output

    shown = fap(fap_run, tmp_path, "history", "-s", "test")
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    rows = [line for line in lines if line.startswith("20")]
    assert len(rows) == 4, shown.stdout
    assert "deployed" in rows[0] and "2/3 (host3: failed before the switch)" in rows[0]
    assert "rollback" in rows[1] and "rolled back" in rows[1] and first in rows[1] and "3/3" in rows[1]
    assert second in rows[2] and "3/3" in rows[2]

    as_json = fap(fap_run, tmp_path, "history", "-s", "test", "--json", "-n", "3")
    assert as_json.exit_code == 0, as_json.output
    runs = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert len(runs) == 3
    assert runs[0]["hosts"] == {"host1": "deployed", "host2": "deployed", "host3": "failed before the switch"}
    assert runs[0]["ok"] == 2 and runs[0]["total"] == 3 and runs[1]["command"] == "rollback"
    assert len({r["run"] for r in runs}) == 3


def test_hosts_without_history_show_nothing_and_history_takes_no_lock(fap_fleet, fap_run, fap_start, tmp_path):
    fap_fleet.write_deployfile(tmp_path)
    empty = fap(fap_run, tmp_path, "history", "-s", "test")
    assert empty.exit_code == 0, empty.output
    assert "no history" in empty.stdout

    assert fap(fap_run, tmp_path, "deploy", "-s", "test", "-q").exit_code == 0
    started = fap_fleet.app_dir("host1") / "shared" / "started"
    fap_fleet.write_deployfile(tmp_path, {"hooks": {"updating": [{"run": 'touch "$FAP_RELEASE_PATH/../../shared/started"; sleep 3'}]}})
    running = fap_start(["deploy", "-s", "test", "-q"], cwd=tmp_path)
    running.wait_until(started.exists, what="the deploy to run")
    assert fap_fleet.locked("host1")
    during = fap(fap_run, tmp_path, "history", "-s", "test", "--json")
    assert during.exit_code == 0, during.output  # read while the deploy holds the lock, without waiting for it
    assert running.running, "the read did not wait for the deploy"
    assert [json.loads(line)["hosts"] for line in during.stdout.splitlines()] == [dict.fromkeys(HOSTS, "deployed")]
    assert running.wait().exit_code == 0
    after = fap(fap_run, tmp_path, "history", "-s", "test", "--json")
    assert len(after.stdout.splitlines()) == 2


def test_the_history_keeps_the_last_1000_records(fap_fleet, tmp_path):
    path = str(fap_fleet.app_dir("host1"))
    lines = [json.dumps({"run": f"r{n}", "outcome": "deployed"}) for n in range(1001)]
    script = "\n".join(layout.history_append_script(path, line) for line in lines)
    subprocess.run(["sh"], input=script, text=True, check=True)
    kept = records(fap_fleet, "host1")
    assert len(kept) == 1000
    assert kept[0]["run"] == "r1" and kept[-1]["run"] == "r1000"


def test_retry_failed_deploys_only_the_hosts_that_failed(fap_fleet, fap_run, released, tmp_path, deployed):
    first, second = deployed
    nothing = fap(fap_run, tmp_path, "deploy", "-s", "test", "--retry-failed")
    assert nothing.exit_code == 0, nothing.output
    assert "nothing to retry" in nothing.stdout
    assert all(fap_fleet.current(host) == second for host in HOSTS)

    (fap_fleet.app_dir("host2") / "shared" / "fail").touch()
    partial = fap(fap_run, tmp_path, "deploy", "-s", "test", "--max-fail", "1")
    assert partial.exit_code == 3, partial.output
    third = released(partial) if "deployed release" in partial.stdout else fap_fleet.current("host1")
    assert "to retry the hosts that failed: fap deploy -s test --hosts host2" in partial.stderr
    assert "fap deploy -s test --retry-failed" in partial.stderr

    (fap_fleet.app_dir("host2") / "shared" / "fail").unlink()
    retry = fap(fap_run, tmp_path, "deploy", "-s", "test", "--retry-failed")
    assert retry.exit_code == 0, retry.output
    assert "retrying host2" in retry.stdout
    fourth = released(retry)
    assert fap_fleet.current("host2") == fourth
    assert fap_fleet.current("host1") == third and fap_fleet.current("host3") == third
    assert [r["run"] for r in [last_records(fap_fleet)["host2"]]] != [last_records(fap_fleet)["host1"]["run"]]

    done = fap(fap_run, tmp_path, "deploy", "-s", "test", "--retry-failed")
    assert done.exit_code == 0 and "nothing to retry" in done.stdout, done.output


def test_a_canary_that_fails_names_the_hosts_it_never_started_and_retry_takes_them_all(fap_fleet, fap_run, released, tmp_path,
                                                                                      deployed):
    first, second = deployed
    (fap_fleet.app_dir("host1") / "shared" / "fail").touch()
    canary = fap(fap_run, tmp_path, "deploy", "-s", "test", "--batch-size", "1")
    assert canary.exit_code == 1, canary.output
    assert len(records(fap_fleet, "host1")) == 3 and len(records(fap_fleet, "host2")) == 2  # host2, host3: nothing ran
    record = records(fap_fleet, "host1")[-1]
    assert record["outcome"] == "failed before the switch" and record["not_started"] == ["host2", "host3"]

    shown = fap(fap_run, tmp_path, "history", "-s", "test", "-n", "1", "--json")
    assert json.loads(shown.stdout)["total"] == 3, shown.output

    (fap_fleet.app_dir("host1") / "shared" / "fail").unlink()
    retry = fap(fap_run, tmp_path, "deploy", "-s", "test", "--retry-failed")
    assert retry.exit_code == 0, retry.output
    assert "retrying host1, host2, host3" in retry.stdout
    assert len({fap_fleet.current(host) for host in HOSTS} - {second}) == 1


def test_the_marks_of_a_release_removed_by_hand_go_with_the_next_cleanup(fap_fleet, fap_run, tmp_path, deployed):
    first, second = deployed
    assert fap(fap_run, tmp_path, "rollback", "-s", "test").exit_code == 0
    for host in HOSTS:
        subprocess.run(["rm", "-rf", str(fap_fleet.app_dir(host) / "releases" / second)], check=True)
    assert fap(fap_run, tmp_path, "deploy", "-s", "test", "-q").exit_code == 0
    for host in HOSTS:
        assert list((fap_fleet.app_dir(host) / ".fap" / "marks").iterdir()) == []


def test_a_restart_and_a_failure_after_the_switch_are_recorded(fap_fleet, fap_run, tmp_path, deployed):
    first, second = deployed
    restart = fap(fap_run, tmp_path, "restart", "-s", "test")
    assert restart.exit_code == 0, restart.output
    assert {(r["outcome"], r["release"], r["replaced"]) for r in last_records(fap_fleet).values()} == {("restarted", second, None)}

    fap_fleet.write_deployfile(tmp_path, {"hooks": {"published": [{"run": 'test ! -e "$FAP_RELEASE_PATH/../../shared/fail"'}]}})
    (fap_fleet.app_dir("host2") / "shared" / "fail").touch()
    late = fap(fap_run, tmp_path, "deploy", "-s", "test")
    assert late.exit_code == 1, late.output
    last = last_records(fap_fleet)
    assert last["host2"]["outcome"] == "failed after the switch" and "exited 1" in last["host2"]["why"]
    assert last["host1"]["outcome"] == last["host3"]["outcome"] == "deployed"
    assert last["host2"]["release"] == fap_fleet.current("host2") != second


def test_fap_history_shows_a_freeze(fap_fleet, fap_run, tmp_path, deployed):
    frozen = fap(fap_run, tmp_path, "lock", "-s", "test", "-m", "incident 431: db failover")
    assert frozen.exit_code == 0, frozen.output
    shown = fap(fap_run, tmp_path, "history", "-s", "test", "--json")
    assert shown.exit_code == 0, shown.output
    assert "frozen" in shown.stderr and "incident 431: db failover" in shown.stderr
    assert len([json.loads(line) for line in shown.stdout.splitlines()]) == 2
