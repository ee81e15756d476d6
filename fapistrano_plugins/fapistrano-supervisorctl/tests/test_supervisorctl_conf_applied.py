"""What a deploy makes supervisord run: deploy.yml's environment, the conf as changed, the program it defines.

Each host runs a real supervisord (see supervised_fleet); the program
prints its environment to ``shared/env-<name>`` when it starts, so a test
reads what the process really got, as a user would with ``cat
/proc/<pid>/environ``.
"""

from __future__ import annotations

import os

import pytest
from supervised_fleet import SupervisedFleet, deploy_settings, eventually
from test_supervisorctl_deploy import APP, CONF, assert_runs_current_release, program, setup_deploy

pytestmark = pytest.mark.fleet

#: deploy.yml's environment: a comma, both ini comment marks, '%' (written %% in deploy.yml), a quote and a
#: backslash must arrive as written.
ENVIRONMENT = {"GREETING": "hi", "TRICKY": 'a, b;c#d 50%% "q" \\n', "EMPTY": ""}
SEEN_TRICKY = 'a, b;c#d 50% "q" \\n'


def seen_environment(supervised: SupervisedFleet, host: str, name: str = "app") -> dict[str, str]:
    """The environment process ``name`` started with on ``host`` (what it printed)."""
    text = (supervised.fleet.app_dir(host) / "shared" / f"env-{name}").read_text()
    return dict(line.split("=", 1) for line in text.split("\0") if "=" in line)


def printing_program(name: str, extra: str = "") -> str:
    """A program that prints its environment, NUL-separated, then stays up."""
    return program(name, extra=extra).replace(
        f"command=/bin/sh {APP}/current/run.sh {name}",
        f"command=/bin/sh -c 'env -0 > {APP}/shared/env-{name}; exec /bin/sh {APP}/current/run.sh {name}'",
    )


def test_environment_reaches_the_program_and_a_changed_value_the_next_deploy(supervised, fap_run, tmp_path):
    app = setup_deploy(supervised, tmp_path, printing_program("app", extra='environment=FROM_CONF="conf",GREETING="conf wins"'),
                       environment={**ENVIRONMENT, "ONLY_FAP": "fap"}, supervisor_check_status=True)

    first = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert first.exit_code == 0, first.output
    assert_runs_current_release(supervised)
    for host in supervised.names:
        seen = eventually(lambda host=host: seen_environment(supervised, host))
        assert seen.get("TRICKY") == SEEN_TRICKY and seen["EMPTY"] == "" and seen["ONLY_FAP"] == "fap", (seen, first.output)
        # The conf's own environment= keys win for its program.
        assert seen["FROM_CONF"] == "conf" and seen["GREETING"] == "conf wins"
        # What supervisord includes holds the values: readable by the deploy user and its group only.
        rendered = supervised.fleet.current_dir(host) / ".fap-supervisor.conf"
        assert oct(rendered.stat().st_mode & 0o777) == "0o640"

    (app / CONF).write_text(printing_program("app"))
    supervised.fleet.write_deployfile(tmp_path, deploy_settings(app, environment={"GREETING": "bye"}, supervisor_check_status=True))
    second = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert second.exit_code == 0, second.output
    assert_runs_current_release(supervised)
    for host in supervised.names:
        seen = eventually(lambda host=host: _with(seen_environment(supervised, host), "GREETING", "bye"))
        assert "ONLY_FAP" not in seen and "FROM_CONF" not in seen


def test_a_changed_conf_and_program_set_are_applied_by_a_plain_deploy(supervised, fap_run, tmp_path):
    app = setup_deploy(supervised, tmp_path, program("app", extra='environment=APP_FLAVOR="one"'))
    first = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert first.exit_code == 0, first.output
    for host in supervised.names:
        eventually(lambda host=host: _equal(supervised.running_record_flavor(host), "one"))

    # The conf changes and a program joins it: no setting asks for either to be applied.
    (app / CONF).write_text(program("app", extra='environment=APP_FLAVOR="two"') + "\n" + program("extra"))
    second = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert second.exit_code == 0, second.output
    assert_runs_current_release(supervised)
    assert_runs_current_release(supervised, "extra", "extra")
    for host in supervised.names:
        assert supervised.running_record_flavor(host) == "two"

    # Unchanged conf: a restart, and the program leaves supervisord when its section leaves the conf.
    (app / CONF).write_text(program("app", extra='environment=APP_FLAVOR="two"'))
    third = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert third.exit_code == 0, third.output
    for host in supervised.names:
        assert "extra" not in supervised.status(host)
    fourth = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert fourth.exit_code == 0, fourth.output
    assert_runs_current_release(supervised)
    assert any(line.startswith("host1 | published | restarted app") for line in fourth.output.splitlines()), fourth.output


def test_a_program_the_conf_does_not_define_is_refused_by_check_and_before_the_switch(supervised, fap_run, tmp_path):
    setup_deploy(supervised, tmp_path, "[group:web]\nprograms=gunicorn\n\n" + program("gunicorn") + "\n" + program("app"),
                 supervisor_program="nosuch", supervisor_target="/etc/supervisor/conf.d/app.conf")
    defines = "defines: app, web:* (web:gunicorn)"

    check = fap_run(["check", "-s", "test"], cwd=tmp_path)
    # The conf sits beside deploy.yml in a checkout of the repository: check reads it there.
    (tmp_path / "configs").mkdir()
    (tmp_path / CONF).write_text((tmp_path / "app" / CONF).read_text())
    check_local = fap_run(["check", "-s", "test"], cwd=tmp_path)
    deploy = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert check.exit_code == 0, check.output  # nothing deployed, no conf beside deploy.yml: nothing to read
    assert check_local.exit_code != 0, check_local.output
    assert f"supervisor_program nosuch is not defined in {tmp_path / CONF}, which {defines}" in check_local.output
    assert deploy.exit_code != 0, deploy.output
    assert "Traceback" not in deploy.output
    for host in supervised.names:
        assert (f"{host} | updated | FAILED: fapistrano.supervisorctl: supervisor_program nosuch is not defined "
                f"in {CONF}, which {defines}") in deploy.output
        assert supervised.fleet.current(host) is None
        assert os.listdir(supervised.supervisor_dir(host) / "conf.d") == []

    # After a good deploy, the same mistake leaves the live release, its link and its program as they were.
    good = fap_run(["deploy", "-s", "test", "--supervisor-program", "app"], cwd=tmp_path)
    assert good.exit_code == 0, good.output
    pids = assert_runs_current_release(supervised)
    live = {host: supervised.fleet.current(host) for host in supervised.names}
    (tmp_path / CONF).unlink()

    check_host = fap_run(["check", "-s", "test"], cwd=tmp_path)
    again = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert check_host.exit_code != 0, check_host.output
    assert f"supervisor_program nosuch is not defined in {APP}/current/{CONF}, which {defines}" in check_host.output
    assert again.exit_code != 0, again.output
    for host in supervised.names:
        assert supervised.fleet.current(host) == live[host]
        assert supervised.link(host, "/etc/supervisor/conf.d/app.conf") == f"{APP}/current/.fap-supervisor.conf"
    assert assert_runs_current_release(supervised) == pids


def test_a_good_first_start_prints_no_error(supervised, fap_run, tmp_path):
    setup_deploy(supervised, tmp_path, program("app"), supervisor_check_status=True, supervisor_output=True)

    first = fap_run(["-v", "deploy", "-s", "test"], cwd=tmp_path)

    assert first.exit_code == 0, first.output
    assert "ERROR" not in first.output
    assert "fap-supervisorctl-exit" not in first.output
    for host in supervised.names:
        assert f"{host} | published | added and started app: app RUNNING" in first.output
    assert_runs_current_release(supervised)


def _equal(actual: object, expected: object) -> None:
    assert actual == expected


def _with(seen: dict[str, str], key: str, value: str) -> dict[str, str]:
    assert seen.get(key) == value, seen
    return seen


def test_fap_check_reports_a_live_program_supervisord_does_not_know(supervised, fap_run, tmp_path):
    setup_deploy(supervised, tmp_path, program("app"))
    deployed = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert deployed.exit_code == 0, deployed.output
    # host2's supervisord no longer includes conf.d (its conf was edited, then re-read): it drops the program.
    conf = supervised.supervisor_dir("host2") / "supervisord.conf"
    written = conf.read_text()
    conf.write_text(written.replace("files = /etc/supervisor/conf.d/*.conf", "files = /etc/supervisor/elsewhere/*.conf"))
    try:
        for args in (("reread",), ("update",)):
            done = supervised.ctl("host2", *args)
            assert done.returncode == 0, done.stdout + done.stderr

        check = fap_run(["check", "-s", "test"], cwd=tmp_path)
    finally:
        conf.write_text(written)
        supervised.ctl("host2", "reread")

    assert check.exit_code != 0, check.output
    problems = [line for line in check.output.splitlines() if "supervisord does not know app" in line]
    assert problems and all("host2" in line for line in problems), check.output
    assert "is /etc/supervisor/conf.d/app.conf in its [include] files?" in problems[0]


def test_rollback_to_a_release_without_fap_conf_links_its_own_conf(supervised, fap_run, tmp_path):
    setup_deploy(supervised, tmp_path, program("app"), supervisor_check_status=True)
    first = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert first.exit_code == 0, first.output
    for host in supervised.names:
        # As a release deployed before fap wrote its own conf.
        (supervised.fleet.current_dir(host) / ".fap-supervisor.conf").unlink()
    second = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert second.exit_code == 0, second.output

    back = fap_run(["rollback", "-s", "test"], cwd=tmp_path)

    assert back.exit_code == 0, back.output
    assert_runs_current_release(supervised)
    for host in supervised.names:
        assert supervised.link(host, "/etc/supervisor/conf.d/app.conf") == f"{APP}/current/{CONF}"


def test_a_conf_fap_does_not_link_is_added_on_the_first_deploy(supervised, fap_run, tmp_path):
    app = setup_deploy(supervised, tmp_path, program("app"), supervisor_conf="")
    for host in supervised.names:
        # The program's conf, put in place by hand (or by configuration management), not yet read.
        (supervised.supervisor_dir(host) / "conf.d" / "app.conf").write_text((app / CONF).read_text())

    deployed = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert deployed.exit_code == 0, deployed.output
    assert_runs_current_release(supervised)


def test_a_renamed_program_replaces_the_old_one_and_its_link(supervised, fap_run, tmp_path):
    conf_d = "/etc/supervisor/conf.d"
    app = setup_deploy(supervised, tmp_path, program("app"), supervisor_check_status=True)
    first = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert first.exit_code == 0, first.output
    for host in supervised.names:
        # A conf linked by hand into this app's directory, but not to what fap links: not fap's, it stays.
        (supervised.fleet.app_dir(host) / "shared" / "other.conf").write_text("; linked by hand\n")
        (supervised.supervisor_dir(host) / "conf.d" / "other.conf").symlink_to(f"{APP}/shared/other.conf")

    # supervisor_program renamed: the default supervisor_target (conf.d/<program>.conf) follows it.
    (app / CONF).write_text(program("web"))
    supervised.fleet.write_deployfile(tmp_path, deploy_settings(app, supervisor_program="web", supervisor_check_status=True))
    second = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert second.exit_code == 0, second.output
    assert_runs_current_release(supervised, "web", "web")
    for host in supervised.names:
        # The old program left supervisord (it would run the old code beside the new, on the same port).
        assert "app" not in supervised.status(host), supervised.status(host)
        links = sorted(p.name for p in (supervised.supervisor_dir(host) / "conf.d").iterdir())
        assert links == ["other.conf", "web.conf"], links
        assert supervised.link(host, f"{conf_d}/web.conf") == f"{APP}/current/.fap-supervisor.conf"
    assert f"host1 | published | removed {conf_d}/app.conf: it linked this app's conf under a former name" in second.output
