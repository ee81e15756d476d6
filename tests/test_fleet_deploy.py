"""``fap deploy`` on a real three-host SSH fleet: the layout, shared files, .env, cleanup,
dry runs, one run over several targets, and hosts written ``user@host:port``."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

WWW_APP = "/home/deploy/www/app"
HOSTS = ("host1", "host2", "host3")
PHASES = ("starting", "started", "updating", "updated", "publishing", "published", "finishing", "finished")


def test_deploy_lays_out_every_host_with_one_release_name(fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path) -> None:
    fap_fleet.write_deployfile(tmp_path)
    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    name = released(result)
    for host in HOSTS:
        assert fap_fleet.tree(host) == [
            ".fap",
            ".fap/fingerprints",  # what shaped each release (fap deploy --if-changed)
            f".fap/fingerprints/{name}.json",
            ".fap/history.jsonl",  # what each run did here (fap history)
            f"current -> {WWW_APP}/releases/{name}",
            "releases",
            f"releases/{name}",
            "shared",
        ], host
        assert fap_fleet.current(host) == name
        assert not fap_fleet.locked(host)
    assert "deploying app to test/web (3 hosts)" in result.stdout
    for host in HOSTS:
        assert re.search(rf"{host}\s.*test/web\s.*ok\s.*{name}", result.stdout), result.stdout


def test_next_deploy_switches_current_and_keeps_the_previous(fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path) -> None:
    fap_fleet.write_deployfile(tmp_path)
    first = released(fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path))
    second = released(fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path))
    assert second > first
    for host in HOSTS:
        assert fap_fleet.current(host) == second
        assert fap_fleet.releases(host) == [first, second]


def test_release_name_is_new_on_every_host_even_when_one_host_has_it(
    fap_fleet: Any, fap_run: Any, released: Any, on_host: Any, tmp_path: Path
) -> None:
    # host2 already holds a release named after a later second (a clock that stepped back, or a
    # run that started in the same second): the run's one name must sort after it, on every host.
    on_host("host2", f"mkdir -p {WWW_APP}/releases/991231-235959")
    fap_fleet.write_deployfile(tmp_path)
    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert released(result) == "991231-235959-01"
    for host in HOSTS:
        assert fap_fleet.current(host) == "991231-235959-01"
    assert fap_fleet.releases("host2") == ["991231-235959", "991231-235959-01"]
    assert fap_fleet.releases("host1") == ["991231-235959-01"]


def test_linked_files_and_dirs_point_into_shared(fap_fleet: Any, fap_run: Any, released: Any, on_host: Any, tmp_path: Path) -> None:
    for host in HOSTS:
        on_host(host, f"mkdir -p {WWW_APP}/shared/config && echo 'secret of {host}' > {WWW_APP}/shared/config/settings.ini")
    fap_fleet.write_deployfile(tmp_path, {"linked_files": ["config/settings.ini"], "linked_dirs": ["log", "var/cache"]})
    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    name = released(result)
    for host in HOSTS:
        tree = fap_fleet.tree(host)
        assert f"releases/{name}/config/settings.ini -> {WWW_APP}/shared/config/settings.ini" in tree
        assert f"releases/{name}/log -> {WWW_APP}/shared/log" in tree
        assert f"releases/{name}/var/cache -> {WWW_APP}/shared/var/cache" in tree
        assert "shared/log" in tree and "shared/var/cache" in tree  # linked dirs are created when missing
        # Through current, as the application reads them (resolved inside the host's own namespace).
        assert on_host(host, f"cat {WWW_APP}/current/config/settings.ini") == f"secret of {host}\n"
        on_host(host, f"echo line > {WWW_APP}/current/log/app.log")
        assert (fap_fleet.app_dir(host) / "shared" / "log" / "app.log").read_text() == "line\n"


def test_shared_dirs_survive_the_next_release(fap_fleet: Any, fap_run: Any, released: Any, on_host: Any, tmp_path: Path) -> None:
    fap_fleet.write_deployfile(tmp_path, {"linked_dirs": ["log"]})
    released(fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path))
    on_host("host1", f"echo kept > {WWW_APP}/current/log/old.log")
    second = released(fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path))
    assert fap_fleet.current("host1") == second
    assert on_host("host1", f"cat {WWW_APP}/current/log/old.log") == "kept\n"


HOSTILE = {
    "SUBSTITUTION": "$(touch {marker}-subst)",
    "BACKTICKS": "`touch {marker}-tick`",
    "SINGLE_QUOTES": "it's'; touch {marker}-single; echo '",
    "DOUBLE_QUOTES": 'say "hi"; touch {marker}-double; echo "',
    "SEMICOLON": "a; touch {marker}-semi",
    "NEWLINES": "first\nFAP_ENV_EOF\ntouch {marker}-heredoc #",
    "DOLLARS": "$HOME ${{PATH}} 100%",
    "FROM_SETTINGS": "%(app_name)s on %(host)s",
}


def test_environment_is_written_quoted_and_sourcing_it_runs_nothing(
    fap_fleet: Any, fap_run: Any, released: Any, on_host: Any, tmp_path: Path
) -> None:
    marker = f"/tmp/fap-injected-{uuid.uuid4().hex}"  # /tmp: writable by deploy, and the same on every host
    environment = {name: value.format(marker=marker) for name, value in HOSTILE.items()}
    fap_fleet.write_deployfile(tmp_path, {"environment": environment})
    result = fap_run(["deploy", "-s", "test", "-v"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    released(result)
    names = " ".join(environment)
    dump = f"cd {WWW_APP}/current && set -a && . ./.env && set +a && for n in {names}; do eval \"printf '%s\\0' \\\"\\${{$n}}\\\"\"; done"
    for host in HOSTS:
        values = on_host(host, dump).split("\0")[:-1]
        expected = {**environment, "FROM_SETTINGS": f"app on {host}"}
        assert dict(zip(environment, values, strict=True)) == expected, host
    assert list(Path("/tmp").glob(Path(marker).name + "*")) == []


def test_keep_releases_removes_the_oldest(fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path) -> None:
    fap_fleet.write_deployfile(tmp_path, {"keep_releases": 2})
    names = []
    for _ in range(3):
        result = fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path)
        assert result.exit_code == 0, result.output
        names.append(released(result))
    assert len(set(names)) == 3
    for host in HOSTS:
        assert fap_fleet.releases(host) == names[-2:]
        assert fap_fleet.current(host) == names[-1]
    # From the command line, down to one: current, and the release a rollback would return to.
    last = released(fap_run(["deploy", "-s", "test", "-q", "--keep-releases", "1"], cwd=tmp_path))
    for host in HOSTS:
        assert fap_fleet.releases(host) == [names[-1], last]


def test_dry_run_on_fresh_hosts_prints_commands_and_creates_nothing(fap_fleet: Any, fap_run: Any, tmp_path: Path) -> None:
    fap_fleet.write_deployfile(tmp_path, {"linked_dirs": ["log"], "environment": {"A": "1"}})
    result = fap_run(["deploy", "-s", "test", "--dry-run", "-v"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    # The hosts would run the same shell: one group, its shell once.
    assert re.search(rf"^host1, host2, host3 \| starting \|   \$ for dir in {WWW_APP} ", result.stdout, re.M), result.stdout
    assert re.search(r"^host1, host2, host3 \| publishing \| would run: switch ", result.stdout, re.M), result.stdout
    for host in HOSTS:
        assert not fap_fleet.app_dir(host).exists(), host
    assert "nothing changed" in result.stdout


def test_dry_run_after_a_deploy_changes_nothing(fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path, recorder: Any) -> None:
    fap_fleet.write_deployfile(tmp_path, recorder.settings(linked_dirs=["log"], keep_releases=1))
    released(fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path))
    released(fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path))
    before = {host: fap_fleet.tree(host) for host in HOSTS}
    assert len(fap_fleet.releases("host1")) == 2  # keep_releases: 1 still keeps the rollback target
    real_events = len(recorder.events())
    for command in (["deploy"], ["rollback"], ["restart"]):
        result = fap_run([*command, "-s", "test", "--dry-run", "--keep-releases", "1"], cwd=tmp_path)
        assert result.exit_code == 0, result.output
        assert "nothing changed" in result.stdout or "[dry run]" in result.stdout
        assert {host: fap_fleet.tree(host) for host in HOSTS} == before, command
        assert not any(fap_fleet.locked(host) for host in HOSTS)
    # Plugins' hooks ran with ctx.dry_run set: 8 deploy, 8 rollback and 2 restart hooks on 3 hosts.
    dry_events = recorder.events()[real_events:]
    assert len(dry_events) == (8 + 8 + 2) * 3
    assert all(event["dry_run"] for event in dry_events)


def test_several_roles_of_a_stage_are_one_run(fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path, recorder: Any) -> None:
    fap_fleet.write_deployfile(tmp_path, recorder.settings(stage_role_configs={
        "test": {"web": {"hosts": ["host1", "host2"]}, "worker": {"hosts": ["host3"]}},
    }))
    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    name = released(result)
    assert result.stdout.count("deploying app to") == 1
    assert "deploying app to test/web, test/worker (3 hosts)" in result.stdout
    assert [fap_fleet.current(host) for host in HOSTS] == [name] * 3
    events = recorder.events()
    assert {(e["host"], e["role"]) for e in events} == {("host1", "web"), ("host2", "web"), ("host3", "worker")}
    # Lockstep across both roles: every host ends a phase before any host starts the next.
    phases = [e["phase"] for e in events]
    assert phases == [phase for phase in PHASES for _ in HOSTS]


def test_one_role_in_every_stage_that_has_it(fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path) -> None:
    fap_fleet.write_deployfile(tmp_path, {"stage_role_configs": {
        "test": {"web": {"hosts": ["host1", "host2"]}, "worker": {"hosts": ["host3"]}},
        "staging": {"web": {"hosts": ["host2", "host3"], "app_name": "app-staging"}},
    }})
    result = fap_run(["deploy", "-r", "web"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    name = released(result)
    announced = [line for line in result.stdout.splitlines() if line.startswith("deploying ")]
    assert len(announced) == 1 and announced[0].endswith("(4 hosts)"), result.stdout
    assert "staging/web" in announced[0] and "test/web" in announced[0] and "worker" not in announced[0]
    assert fap_fleet.current("host1") == name
    assert fap_fleet.current("host2") == name
    assert fap_fleet.current("host2", "app-staging") == name
    assert fap_fleet.current("host3", "app-staging") == name
    assert not fap_fleet.app_dir("host1", "app-staging").exists()
    assert not fap_fleet.app_dir("host3").exists()  # test/worker was not selected


def test_hosts_written_user_at_host_colon_port(fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path) -> None:
    # An ssh config without Port and User: only the host strings can say them.
    config = tmp_path / "ssh_config"
    config.write_text("".join(line + "\n" for line in fap_fleet.ssh_config.read_text().splitlines()
                              if not line.strip().startswith(("Port ", "User "))))
    hosts = [f"deploy@{host}:{fap_fleet.port}" for host in HOSTS]
    fap_fleet.write_deployfile(tmp_path, {"ssh_config": str(config), "user": "nobody",
                                          "stage_role_configs": {"test": {"web": {"hosts": hosts}}}})
    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    name = released(result)
    for host in HOSTS:
        # %(user)s in the default path is the host's user, not user: nobody.
        assert fap_fleet.current(host) == name


def test_a_host_without_its_port_is_not_reached(fap_fleet: Any, fap_run: Any, assert_error: Any, tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text("".join(line + "\n" for line in fap_fleet.ssh_config.read_text().splitlines()
                              if not line.strip().startswith("Port ")))
    fap_fleet.write_deployfile(tmp_path, {"ssh_config": str(config), "ssh_connect_timeout": 3,
                                          "stage_role_configs": {"test": {"web": {"hosts": [f"host1:{fap_fleet.port}", "host2"]}}}})
    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert_error(result, "host2: cannot connect")
    assert fap_fleet.tree("host1") == []  # no release, no current, no lock left


# Notes when each host enters and leaves its updating hook (on this machine, one clock), and
# holds each host there long enough that hosts running at once overlap for sure.
PHASE_TIMER = """
import json, os, time
from fapistrano import hookimpl

@hookimpl
def fap_defaults():
    return {"timer_file": ""}

@hookimpl
def fap_deploy_updating(ctx):
    started = time.monotonic()
    ctx.run("sleep 0.3")
    line = json.dumps([ctx.host, started, time.monotonic()]) + "\\n"
    fd = os.open(ctx.config["timer_file"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, line.encode())
    os.close(fd)
"""


def _overlapping(spans: list[list[Any]]) -> list[tuple[str, str]]:
    return [(a[0], b[0]) for i, a in enumerate(spans) for b in spans[i + 1:] if a[1] < b[2] and b[1] < a[2]]


@pytest.mark.parametrize("parallel", ["1", "3"])
def test_fewer_hosts_at_once_than_the_fleet(fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path, parallel: str) -> None:
    (tmp_path / "phase_timer.py").write_text(PHASE_TIMER)
    timer = tmp_path / "timer.jsonl"
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["phase_timer"], "timer_file": str(timer)})
    result = fap_run(["deploy", "-s", "test", "-q", "--parallel", parallel], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    name = released(result)
    assert [fap_fleet.current(host) for host in HOSTS] == [name] * 3
    spans = [json.loads(line) for line in timer.read_text().splitlines()]
    assert sorted(span[0] for span in spans) == list(HOSTS)
    if parallel == "1":
        assert _overlapping(spans) == [], "hosts ran the phase at once under --parallel 1"
    else:  # the control: the timer does see hosts at work together
        assert _overlapping(spans), "three hosts at once never overlapped: the timer sees nothing"


def test_paths_with_spaces_and_quotes_are_quoted_everywhere(fap_fleet: Any, fap_run: Any, released: Any, on_host: Any, tmp_path: Path) -> None:
    app = "it's my app"
    fap_fleet.write_deployfile(tmp_path, {"app_name": app, "linked_dirs": ["log dir"], "environment": {"APP": "%(app_name)s"}})
    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    name = released(result)
    for host in HOSTS:
        assert fap_fleet.tree(host, app) == [
            ".fap",
            ".fap/fingerprints",  # what shaped each release (fap deploy --if-changed)
            f".fap/fingerprints/{name}.json",
            ".fap/history.jsonl",
            f"current -> /home/deploy/www/{app}/releases/{name}",
            "releases",
            f"releases/{name}",
            f"releases/{name}/.env",
            f"releases/{name}/log dir -> /home/deploy/www/{app}/shared/log dir",
            "shared",
            "shared/log dir",
        ]
    assert on_host("host1", "cd \"/home/deploy/www/it's my app/current\" && . ./.env && printf '%s' \"$APP\"") == app


def test_plugin_commands_run_exactly_as_given(fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path, recorder: Any) -> None:
    # %% in deploy.yml is a literal %: the command that reaches ctx.run holds "%(host)s" and "%s",
    # and nothing formats it a second time.
    fap_fleet.write_deployfile(tmp_path, recorder.settings(recorder_run="echo '%s|%%(host)s|%%%%|%(host)s'"))
    result = fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    outputs = {e["host"]: e["output"] for e in recorder.events() if e["hook"] == "fap_deploy_updated"}
    assert outputs == {host: f"%s|%(host)s|%%|{host}" for host in HOSTS}


@pytest.mark.parametrize("secret", ["s3cret-value", "it's a $ecret \"quoted\""])
def test_secrets_are_masked_in_output_but_written_to_env(
    fap_fleet: Any, fap_run: Any, released: Any, on_host: Any, tmp_path: Path, secret: str
) -> None:
    fap_fleet.write_deployfile(tmp_path, {"mask": ["db_password"], "db_password": secret,
                                          "environment": {"DB_PASSWORD": "%(db_password)s"}})
    dry = fap_run(["deploy", "-s", "test", "--dry-run", "-v"], cwd=tmp_path)  # -v: the shell it would run
    real = fap_run(["deploy", "-s", "test", "-v"], cwd=tmp_path)
    assert real.exit_code == 0, real.output
    released(real)
    for result in (dry, real):
        assert "DB_PASSWORD=" in result.stdout  # the .env command was shown...
        assert "***" in result.stdout  # ...with the secret hidden
        for piece in ("s3cret", "$ecret", "quoted"):
            assert piece not in result.output, result.output
    assert on_host("host2", "cd /home/deploy/www/app/current && . ./.env && printf '%s' \"$DB_PASSWORD\"") == secret
