"""Rollback across a migration on the real fleet (3 hosts): the marks, the guard, the down step, the switch-back.

The "schema" is a file in host1's shared directory: the ``migrates: true``
step (``once: true``, so on host1) appends its release to it, and the
``migrates_back`` step writes where it ran and what it migrates back to.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.fleet

HOSTS = ("host1", "host2", "host3")
MIGRATE = 'echo "up $FAP_RELEASE" >> "$FAP_SHARED_PATH/schema"'
MIGRATE_BACK = ('echo "down in $(basename "$PWD") to $FAP_RELEASE from $FAP_MIGRATED_RELEASES on $FAP_HOST"'
                ' >> "$FAP_SHARED_PATH/schema"')
MIGRATING = {"hooks": {"updated": [{"run": MIGRATE, "once": True, "migrates": True}]}}


def step_line(tmp_path: Path, text: str) -> int:
    """The line of the step whose command holds ``text``: where its list item starts (``- ...``)."""
    lines = (tmp_path / "deploy.yml").read_text().splitlines()
    at = next(n for n, line in enumerate(lines) if text in line)
    return next(n for n in range(at, -1, -1) if lines[n].lstrip().startswith("- ")) + 1


def schema(fap_fleet: Any, host: str = "host1") -> list[str]:
    path = fap_fleet.app_dir(host) / "shared" / "schema"
    return path.read_text().splitlines() if path.exists() else []


def mark(fap_fleet: Any, host: str, release: str) -> dict[str, Any] | None:
    path = fap_fleet.app_dir(host) / ".fap" / "marks" / f"{release}.migrated.json"
    return json.loads(path.read_text()) if path.exists() else None


@pytest.fixture
def migrated(fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path) -> tuple[str, str, str]:
    """Three releases on every host: the second ran the migrating step, the first and third did not."""
    names = []
    for extra in ({}, MIGRATING, {}):
        fap_fleet.write_deployfile(tmp_path, extra)
        result = fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path)
        assert result.exit_code == 0, result.output
        names.append(released(result))
    return names[0], names[1], names[2]


def write_with_down_step(fap_fleet: Any, tmp_path: Path, command: str = MIGRATE_BACK) -> int:
    fap_fleet.write_deployfile(tmp_path, {"hooks": {"updated": [{"run": MIGRATE, "once": True, "migrates": True}],
                                                    "reverting": [{"run": command, "migrates_back": True}]}})
    return step_line(tmp_path, "down in" if command == MIGRATE_BACK else command)


def test_a_migrating_step_marks_its_release_on_every_host_and_fap_releases_shows_it(
        fap_fleet: Any, fap_run: Any, tmp_path: Path, migrated: tuple[str, str, str]) -> None:
    first, second, third = migrated
    fap_fleet.write_deployfile(tmp_path, MIGRATING)
    line = step_line(tmp_path, "up $FAP_RELEASE")

    assert schema(fap_fleet) == [f"up {second}"]
    assert schema(fap_fleet, "host2") == []  # ran once, on host1
    for host in HOSTS:
        record = mark(fap_fleet, host, second)
        assert record is not None, host
        (migration,) = record["migrations"]
        assert migration["what"] == f'step deploy.yml:{line} (echo "up $FAP_RELEASE" >> "$FAP_SHARED_PATH/schema")'
        assert (migration["host"], migration["phase"], migration["stage"]) == ("host1", "updated", "test")
        assert mark(fap_fleet, host, first) is None and mark(fap_fleet, host, third) is None

    listed = fap_run(["releases", "-s", "test"], cwd=tmp_path)

    assert listed.exit_code == 0, listed.output
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()
            if line[:1].isdigit() and "the schema" not in line}
    assert "migrated" in rows[second], listed.stdout
    assert "migrated" not in rows[first] and "migrated" not in rows[third], listed.stdout
    assert (f'{second} migrated the schema: step deploy.yml:{line} (echo "up $FAP_RELEASE" >> "$FAP_SHARED_PATH/schema")'
            " on host1") in listed.stdout


def test_the_history_records_and_fap_history_shows_which_run_migrated(
        fap_fleet: Any, fap_run: Any, tmp_path: Path, migrated: tuple[str, str, str]) -> None:
    first, second, third = migrated
    fap_fleet.write_deployfile(tmp_path, MIGRATING)
    step = f'step deploy.yml:{step_line(tmp_path, "up $FAP_RELEASE")} (echo "up $FAP_RELEASE" >> "$FAP_SHARED_PATH/schema")'
    for host in HOSTS:
        records = [json.loads(line) for line in (fap_fleet.app_dir(host) / ".fap" / "history.jsonl").read_text().splitlines()]
        assert [r.get("migrated") for r in records] == [None, [f"{step} on host1"], None], host

    shown = fap_run(["history", "-s", "test"], cwd=tmp_path)
    as_json = fap_run(["history", "-s", "test", "--json"], cwd=tmp_path)

    assert shown.exit_code == 0, shown.output
    (line,) = [line for line in shown.stdout.splitlines() if "migrated the schema" in line]
    assert line.strip().endswith(f"deploy of {second} migrated the schema: {step} on host1"), shown.stdout
    runs = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [r.get("migrated") for r in runs] == [None, [f"{step} on host1"], None]


def test_the_guard_refuses_a_rollback_across_the_migration_naming_release_and_step(
        fap_fleet: Any, fap_run: Any, tmp_path: Path, migrated: tuple[str, str, str], assert_error: Any) -> None:
    first, second, third = migrated
    fap_fleet.write_deployfile(tmp_path, MIGRATING)
    line = step_line(tmp_path, "up $FAP_RELEASE")

    result = fap_run(["rollback", "-s", "test", "--to", first], cwd=tmp_path)

    assert result.exit_code == 2, result.output
    assert_error(result, f"rollback to {first} crosses a migration: {second} migrated by step deploy.yml:{line}"
                         f' (echo "up $FAP_RELEASE" >> "$FAP_SHARED_PATH/schema") on host1',
                 "(host1, host2, host3); nothing changed", "--across-migrations")
    for host in HOSTS:
        assert fap_fleet.current(host) == third
        assert second in fap_fleet.releases(host)
        assert not fap_fleet.locked(host)
    assert schema(fap_fleet) == [f"up {second}"]


def test_a_rollback_to_the_release_that_migrated_crosses_nothing(
        fap_fleet: Any, fap_run: Any, tmp_path: Path, migrated: tuple[str, str, str]) -> None:
    _first, second, _third = migrated

    result = fap_run(["rollback", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert all(fap_fleet.current(host) == second for host in HOSTS)


def test_across_migrations_rolls_back_and_leaves_the_schema_as_it_is(
        fap_fleet: Any, fap_run: Any, tmp_path: Path, migrated: tuple[str, str, str]) -> None:
    first, second, _third = migrated
    write_with_down_step(fap_fleet, tmp_path)

    result = fap_run(["rollback", "-s", "test", "--to", first, "--across-migrations"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert f"rolling back across migrations (--across-migrations): {second} migrated by step" in result.output
    assert f"the schema stays as it is, {first} runs on it" in result.output
    assert all(fap_fleet.current(host) == first for host in HOSTS)
    assert schema(fap_fleet) == [f"up {second}"]  # the down step did not run


def test_the_down_step_runs_once_in_the_release_that_migrated_then_the_switch(
        fap_fleet: Any, fap_run: Any, tmp_path: Path, migrated: tuple[str, str, str]) -> None:
    first, second, third = migrated
    write_with_down_step(fap_fleet, tmp_path)

    result = fap_run(["rollback", "-s", "test", "--to", first], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert schema(fap_fleet) == [f"up {second}", f"down in {second} to {first} from {second} on host1"]
    assert schema(fap_fleet, "host2") == [] and schema(fap_fleet, "host3") == []
    assert all(fap_fleet.current(host) == first for host in HOSTS)
    assert f"migrating the schema back for {first} before the switch, in {second}" in result.output


def back_mark(fap_fleet: Any, host: str, release: str) -> dict[str, Any] | None:
    path = fap_fleet.app_dir(host) / ".fap" / "marks" / f"{release}.migrated_back.json"
    return json.loads(path.read_text()) if path.exists() else None


def test_going_forward_again_over_a_migration_undone_by_the_down_step_is_refused(
        fap_fleet: Any, fap_run: Any, tmp_path: Path, migrated: tuple[str, str, str], assert_error: Any) -> None:
    first, second, third = migrated
    line = write_with_down_step(fap_fleet, tmp_path)
    back = fap_run(["rollback", "-s", "test", "--to", first], cwd=tmp_path)
    assert back.exit_code == 0, back.output
    for host in HOSTS:
        record = back_mark(fap_fleet, host, second)
        assert record is not None, host
        assert (record["host"], record["to"]) == ("host1", first), record
        assert record["what"].startswith(f"step deploy.yml:{line} (echo "), record
        assert back_mark(fap_fleet, host, third) is None  # it migrated nothing
    listed = fap_run(["releases", "-s", "test"], cwd=tmp_path)
    assert f"{second} migrated the schema: step deploy.yml:" in listed.stdout, listed.stdout
    assert f"; migrated back to {first} by step deploy.yml:{line} (echo " in listed.stdout, listed.stdout
    assert "migrated back" in next(row for row in listed.stdout.splitlines() if row.split()[:1] == [second]), listed.stdout

    # Its code needs the schema the down step took away: a switch to it (or past it) is refused.
    for to in (second, third):
        result = fap_run(["rollback", "-s", "test", "--to", to], cwd=tmp_path)

        assert result.exit_code == 2, result.output
        assert_error(result, f"rollback to {to} runs code newer than a migration the schema no longer has:"
                             f" {second} migrated by step deploy.yml:", f"migrated back by step deploy.yml:{line}",
                     "(host1, host2, host3); nothing changed", "deploy again", "--across-migrations")
        assert all(fap_fleet.current(host) == first for host in HOSTS)
    assert schema(fap_fleet)[-1].startswith(f"down in {second} to {first}")

    forward = fap_run(["rollback", "-s", "test", "--to", third, "--across-migrations"], cwd=tmp_path)

    assert forward.exit_code == 0, forward.output
    assert ("rolling forward over a migration that was migrated back (--across-migrations):"
            f" {third} runs on the schema as it is, without the migration of {second}") in forward.output
    assert all(fap_fleet.current(host) == third for host in HOSTS)


def test_going_forward_after_a_rollback_that_kept_the_schema_is_not_refused(
        fap_fleet: Any, fap_run: Any, tmp_path: Path, migrated: tuple[str, str, str]) -> None:
    first, second, third = migrated
    fap_fleet.write_deployfile(tmp_path, MIGRATING)
    assert fap_run(["rollback", "-s", "test", "--to", first, "--across-migrations"], cwd=tmp_path).exit_code == 0

    result = fap_run(["rollback", "-s", "test", "--to", third], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert all(fap_fleet.current(host) == third for host in HOSTS)
    assert all(back_mark(fap_fleet, host, second) is None for host in HOSTS)


def test_a_failing_down_step_stops_the_rollback_with_nothing_switched(
        fap_fleet: Any, fap_run: Any, tmp_path: Path, migrated: tuple[str, str, str], assert_error: Any) -> None:
    first, second, third = migrated
    line = write_with_down_step(fap_fleet, tmp_path, "echo cannot drop column users.email >&2; exit 3")

    result = fap_run(["rollback", "-s", "test", "--to", first], cwd=tmp_path)

    assert result.exit_code == 1, result.output
    assert f"host1: reverting: core.steps: step deploy.yml:{line}" in result.stderr
    assert "cannot drop column users.email" in result.stderr
    assert "nothing changed" in result.stderr
    for host in HOSTS:
        assert fap_fleet.current(host) == third
        assert set(fap_fleet.releases(host)) >= {first, second, third}
        assert not fap_fleet.locked(host)


def test_a_health_switch_back_says_the_schema_stays_migrated_and_by_which_step(
        fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path) -> None:
    fap_fleet.write_deployfile(tmp_path)
    good = released(fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path))
    fap_fleet.write_deployfile(tmp_path, MIGRATING)
    line = step_line(tmp_path, "up $FAP_RELEASE")

    result = fap_run(["deploy", "-s", "test", "--healthcheck", '[ "$FAP_HOST" != host2 ]', "--healthcheck-timeout", "1",
                      "--healthcheck-interval", "0.2"], cwd=tmp_path)

    assert result.exit_code == 4, result.output
    (new,) = [entry.split()[1] for entry in schema(fap_fleet)]
    assert all(fap_fleet.current(host) == good for host in HOSTS)
    assert (f"fap: error: the schema was migrated by {new}, the release switched away from (step deploy.yml:{line}"
            f' (echo "up $FAP_RELEASE" >> "$FAP_SHARED_PATH/schema") on host1): switching back does not undo it;'
            " the release live now runs on the migrated schema") in result.stderr, result.stderr


# -- examples/django-hooks: a migration, and its way back -------------------------

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "django-hooks"


def test_the_django_example_migrates_back_in_the_release_that_migrated_before_the_switch(
        fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path) -> None:
    from ruamel.yaml import YAML

    project = tmp_path / "django-hooks"
    shutil.copytree(EXAMPLE, project)
    yaml = YAML()
    data = yaml.load(project / "deploy.yml")
    data["ssh_config"] = str(fap_fleet.ssh_config)
    data["stage_role_configs"]["production"]["web"]["hosts"] = list(HOSTS)
    yaml.dump(data, project / "deploy.yml")
    log = [fap_fleet.app_dir(host, "django_hooks") / "shared" / "db" / "migrations.log" for host in HOSTS]
    first = released(fap_run(["deploy", "-s", "production", "-q"], cwd=project))
    (project / "app" / "migrations" / "0002_add_email.py").write_text('"""users.email"""\n')
    second = released(fap_run(["deploy", "-s", "production", "-q"], cwd=project))

    result = fap_run(["rollback", "-s", "production"], cwd=project)

    assert result.exit_code == 0, result.output
    assert log[0].read_text().splitlines()[-1] == f"migrated back to 0001_initial by host1 in {second}"
    assert not log[1].exists() and not log[2].exists()
    assert "Unapplying app.0002_add_email... OK" in result.output
    assert all(fap_fleet.current(host, "django_hooks") == first for host in HOSTS)


def test_a_dry_run_across_a_migration_shows_the_down_step_and_runs_nothing(
        fap_fleet: Any, fap_run: Any, tmp_path: Path, migrated: tuple[str, str, str]) -> None:
    first, second, third = migrated
    write_with_down_step(fap_fleet, tmp_path)

    result = fap_run(["rollback", "-s", "test", "--to", first, "--dry-run", "-v"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert f"migrating the schema back for {first} before the switch, in {second}" in result.output
    assert "down in" in result.output and "succeeded" not in result.output
    assert schema(fap_fleet) == [f"up {second}"]
    assert all(fap_fleet.current(host) == third for host in HOSTS)
