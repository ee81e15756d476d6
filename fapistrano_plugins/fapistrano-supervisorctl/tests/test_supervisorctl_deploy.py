"""fapistrano.supervisorctl against a real supervisord on every host of a real SSH fleet."""

from __future__ import annotations

from pathlib import Path

import pytest
from supervised_fleet import SupervisedFleet, deploy_settings, eventually, ship_plugin

pytestmark = pytest.mark.fleet

APP = "/home/deploy/www/app"
CONF = "configs/supervisor_test_web.conf"

#: The deployed program: says which process and release it is, then stays up like a server.
RUN_SH = f"""\
#!/bin/sh
if [ -e {APP}/shared/broken ]; then
    echo "refusing to start: {APP}/shared/broken exists" >&2
    exit 3
fi
echo "$$ $(pwd -P) ${{APP_FLAVOR:-plain}}" > "{APP}/shared/running-$1"
exec sleep 100000
"""


def program(name: str, *, startsecs: int = 1, extra: str = "") -> str:
    """A [program:NAME] section running run.sh from ``current``, as a real deploy would."""
    return f"""\
[program:{name}]
command=/bin/sh {APP}/current/run.sh {name}
directory={APP}/current
user=deploy
autorestart=true
startsecs={startsecs}
startretries=0
stopwaitsecs=5
redirect_stderr=true
stdout_logfile={APP}/shared/{name}.log
{extra}
"""


def write_app(directory: Path, conf: str) -> Path:
    """The application's source: run.sh and its supervisor conf for stage test, role web."""
    (directory / "configs").mkdir(parents=True, exist_ok=True)
    (directory / "run.sh").write_text(RUN_SH)
    (directory / "run.sh").chmod(0o755)
    (directory / CONF).write_text(conf)
    return directory


def setup_deploy(supervised: SupervisedFleet, tmp_path: Path, conf: str, **settings: object) -> Path:
    app = write_app(tmp_path / "app", conf)
    ship_plugin(tmp_path)
    supervised.fleet.write_deployfile(tmp_path, deploy_settings(app, **settings))
    return app


def release_dir(supervised: SupervisedFleet, host: str) -> str:
    return f"{APP}/releases/{supervised.fleet.current(host)}"


def assert_runs_current_release(supervised: SupervisedFleet, process: str = "app", record: str = "app") -> dict[str, int]:
    """Every host runs ``process`` from its current release; return each host's pid."""
    pids = {}
    for host in supervised.names:
        # Restarted processes count as RUNNING only after startsecs: wait for it, a loaded machine is slow.
        pid = eventually(lambda host=host: _running_pid(supervised, host, process))
        expected = (pid, release_dir(supervised, host))
        eventually(lambda host=host, expected=expected: _assert_equal(supervised.running_record(host, record), expected))
        pids[host] = pid
    return pids


def _running_pid(supervised: SupervisedFleet, host: str, process: str) -> int:
    state, pid = supervised.status(host)[process]
    assert state == "RUNNING", f"{host}: {process} is {state}"
    return pid


def _assert_equal(actual: object, expected: object) -> None:
    assert actual == expected


def test_deploy_and_rollback_restart_the_program_in_the_live_release(supervised, fap_run, tmp_path):
    setup_deploy(supervised, tmp_path, program("app"), supervisor_check_status=True)

    first = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert first.exit_code == 0, first.output
    for host in supervised.names:
        # Linked through current, so the link stays right after every later switch; fap wrote the conf.
        assert supervised.link(host, "/etc/supervisor/conf.d/app.conf") == f"{APP}/current/.fap-supervisor.conf"
    first_pids = assert_runs_current_release(supervised)
    first_releases = {host: supervised.fleet.current(host) for host in supervised.names}

    second = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert second.exit_code == 0, second.output
    second_pids = assert_runs_current_release(supervised)
    for host in supervised.names:
        assert supervised.fleet.current(host) != first_releases[host]
        assert second_pids[host] != first_pids[host]
    assert "restarted app: app RUNNING" in second.output

    back = fap_run(["rollback", "-s", "test"], cwd=tmp_path)
    assert back.exit_code == 0, back.output
    back_pids = assert_runs_current_release(supervised)
    for host in supervised.names:
        assert supervised.fleet.current(host) == first_releases[host]
        assert back_pids[host] != second_pids[host]


def test_fap_restart_restarts_the_program_and_dry_run_does_not(supervised, fap_run, tmp_path):
    setup_deploy(supervised, tmp_path, program("app"))
    deployed = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert deployed.exit_code == 0, deployed.output
    before = assert_runs_current_release(supervised)

    dry = fap_run(["--dry-run", "-v", "restart", "-s", "test"], cwd=tmp_path)
    assert dry.exit_code == 0, dry.output
    assert "would run: supervisorctl (1 command)" in dry.output
    assert "supervisorctl restart app" in dry.output
    assert {host: supervised.status(host)["app"][1] for host in supervised.names} == before

    restarted = fap_run(["restart", "-s", "test", "--supervisor-output", "true"], cwd=tmp_path)
    assert restarted.exit_code == 0, restarted.output
    after = assert_runs_current_release(supervised)
    for host in supervised.names:
        assert after[host] != before[host]
        # supervisor_output shows what supervisorctl said, per host.
        assert f"{host} | restarting | app: started" in restarted.output


def test_program_exiting_at_once_fails_the_deploy_naming_host_and_status(supervised, fap_run, tmp_path):
    setup_deploy(supervised, tmp_path, program("app"), supervisor_check_status=True)
    made = supervised.fleet.in_host("host2", ["sh", "-c", f"mkdir -p {APP}/shared && touch {APP}/shared/broken"], user="deploy")
    assert made.returncode == 0, made.stderr

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    failures = [line for line in result.output.splitlines() if "host2" in line and "FATAL" in line]
    assert failures, result.output
    assert "Exited too quickly" in failures[0]
    assert supervised.status("host2")["app"][0] == "FATAL"
    for host in ("host1", "host3"):
        assert supervised.status(host)["app"][0] == "RUNNING"


def test_check_status_fails_when_running_is_not_reached_in_time(supervised, fap_run, tmp_path):
    # startsecs=30: the process stays STARTING far longer than the 0 s we allow.
    setup_deploy(supervised, tmp_path, program("app", startsecs=30),
                 supervisor_check_status=True, supervisor_check_timeout=0)

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code != 0, result.output
    for host in supervised.names:
        assert any(host in line and "did not reach RUNNING within 0s: app STARTING" in line
                   for line in result.output.splitlines()), result.output


def test_group_programs_restart_every_process_of_the_group(supervised, fap_run, tmp_path):
    conf = "[group:app]\nprograms=web,worker\n\n" + program("web") + "\n" + program("worker")
    setup_deploy(supervised, tmp_path, conf, supervisor_program="app:*",
                 supervisor_target="/etc/supervisor/conf.d/app.conf", supervisor_check_status=True)

    first = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert first.exit_code == 0, first.output
    web = assert_runs_current_release(supervised, "app:web", "web")
    worker = assert_runs_current_release(supervised, "app:worker", "worker")

    second = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert second.exit_code == 0, second.output
    for host, pid in assert_runs_current_release(supervised, "app:web", "web").items():
        assert pid != web[host]
    for host, pid in assert_runs_current_release(supervised, "app:worker", "worker").items():
        assert pid != worker[host]
    for host in supervised.names:
        line = next(line for line in second.output.splitlines() if line.startswith(f"{host} | published | restarted app:*"))
        assert "app:web RUNNING" in line and "app:worker RUNNING" in line


def test_refresh_rereads_a_changed_conf(supervised, fap_run, tmp_path):
    app = setup_deploy(supervised, tmp_path, program("app", extra='environment=APP_FLAVOR="one"'))
    first = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert first.exit_code == 0, first.output
    for host in supervised.names:
        eventually(lambda host=host: _assert_equal(supervised.running_record_flavor(host), "one"))

    (app / CONF).write_text(program("app", extra='environment=APP_FLAVOR="two"'))
    refreshed = fap_run(["deploy", "-s", "test", "--supervisor-refresh", "true"], cwd=tmp_path)

    assert refreshed.exit_code == 0, refreshed.output
    assert_runs_current_release(supervised)
    for host in supervised.names:
        assert supervised.running_record_flavor(host) == "two"


def test_supervisord_not_answering_fails_before_anything_is_switched(supervised, fap_run, tmp_path):
    setup_deploy(supervised, tmp_path, program("app"))
    supervised.stop_supervisord("host3")

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert any("host3" in line and "supervisorctl does not answer: supervisorctl pid:" in line
               and "supervisor.sock no such file" in line for line in result.output.splitlines()), result.output
    for host in supervised.names:
        assert supervised.fleet.current(host) is None
        assert supervised.fleet.releases(host) == []


def test_missing_conf_in_release_fails_before_anything_is_switched(supervised, fap_run, tmp_path):
    setup_deploy(supervised, tmp_path, program("app"), supervisor_conf="configs/supervisor_nowhere.conf")

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code != 0, result.output
    assert "supervisor_conf configs/supervisor_nowhere.conf is not in the release" in result.output
    for host in supervised.names:
        assert supervised.fleet.current(host) is None
        assert "app" not in supervised.status(host)


def test_fap_check_reports_supervisorctl_not_answering(supervised, fap_run, tmp_path):
    setup_deploy(supervised, tmp_path, program("app"))
    healthy = fap_run(["check", "-s", "test"], cwd=tmp_path)
    assert healthy.exit_code == 0, healthy.output
    supervised.stop_supervisord("host1")

    result = fap_run(["check", "-s", "test"], cwd=tmp_path)

    assert result.exit_code != 0, result.output
    problems = [line for line in result.output.splitlines() if "supervisorctl does not answer" in line]
    assert problems and all("host1" in line for line in problems), result.output
