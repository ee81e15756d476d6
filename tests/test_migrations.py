"""Rollback across a migration: the ``migrates:``/``migrates_back:`` step keys and the guard's decisions.

The fleet cases (marks on three hosts, refusals, the down step, the switch-back) are in test_fleet_migrations.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fapistrano.migrations import (
    HostPlan,
    Ledger,
    Migration,
    MigrationsCrossed,
    crossed,
    guard,
    mark_record,
    not_undone,
    read_mark,
    undone_ahead,
)

R1, R2, R3, R4 = "260101-100000", "260102-100000", "260103-100000", "260104-100000"
MIGRATE = Migration(R3, "step deploy.yml:14 (./manage.py migrate)", "host1", "updated", "production")


def plan(host: str = "host1", target: str = R1, current: str | None = R4, migrated: Any = None,
         down_step: str | None = None, stage: str = "production", role: str = "web") -> HostPlan:
    return HostPlan(host, stage, f"{stage}/{role}", target, current, migrated if migrated is not None else {R3: [MIGRATE]},
                    down_step)


# -- which releases a rollback crosses ---------------------------------------

def test_a_rollback_crosses_the_releases_newer_than_its_target_up_to_current_newest_first() -> None:
    migrated = {R2: [MIGRATE], R3: [MIGRATE], R4: [MIGRATE]}
    assert [name for name, _ in crossed(R1, R4, migrated)] == [R4, R3, R2]
    assert [name for name, _ in crossed(R2, R4, migrated)] == [R4, R3]
    assert [name for name, _ in crossed(R2, R3, migrated)] == [R3]


def test_a_rollback_to_a_newer_release_or_with_no_migration_between_crosses_nothing() -> None:
    assert crossed(R4, R2, {R3: [MIGRATE]}) == []
    assert crossed(R3, R4, {R2: [MIGRATE], R3: [MIGRATE]}) == []
    assert crossed(R1, None, {R3: [MIGRATE]}) == []


def test_a_release_removed_since_still_counts_while_its_mark_is_there() -> None:
    # R3 is not among the host's releases any more (a health switch-back removed it): its migration ran all the same.
    assert crossed(R2, R4, {R3: [MIGRATE]}) == [(R3, [MIGRATE])]


BACK = {"what": "step deploy.yml:20 (./manage.py migrate app 0001)", "host": "host1", "to": R2}


def test_going_forward_passes_the_releases_newer_than_current_up_to_the_target_whose_migration_was_undone() -> None:
    migrated = {R3: [MIGRATE], R4: [MIGRATE]}
    assert [name for name, _, _ in undone_ahead(R4, R2, migrated, {R3: BACK, R4: BACK})] == [R4, R3]
    assert [name for name, _, _ in undone_ahead(R3, R2, migrated, {R3: BACK, R4: BACK})] == [R3]
    # Going back, or to a release whose migration was not undone (a rollback that crossed --across-migrations): none.
    assert undone_ahead(R2, R4, migrated, {R3: BACK}) == []
    assert undone_ahead(R4, R2, migrated, {}) == []
    # A migrated_back mark without the migrated one (edited by hand) does not count; nor does a host with no current.
    assert undone_ahead(R4, R2, {}, {R3: BACK}) == []
    assert undone_ahead(R4, None, migrated, {R3: BACK}) == []


def test_the_guard_refuses_going_forward_over_an_undone_migration_unless_across() -> None:
    forward = HostPlan("host1", "production", "production/web", R4, R2, {R3: [MIGRATE]}, None, {R3: BACK})
    with pytest.raises(MigrationsCrossed) as refused:
        guard([forward], across=False)
    text = str(refused.value)
    assert text.startswith(f"rollback to {R4} runs code newer than a migration the schema no longer has: {R3} migrated by"
                           f" {MIGRATE.what} on host1, migrated back by {BACK['what']} on host1 (host1); nothing changed")
    assert refused.value.exit_code == 2

    plans, warnings = guard([forward], across=True)
    assert plans == {}
    assert warnings == [f"rolling forward over a migration that was migrated back (--across-migrations): {R4} runs on the"
                        f" schema as it is, without the migration of {R3} (migrated back by {BACK['what']} on host1)"]


# -- the guard -----------------------------------------------------------------

def test_the_guard_refuses_naming_the_release_and_the_step_with_exit_2() -> None:
    with pytest.raises(MigrationsCrossed) as refused:
        guard([plan("host1"), plan("host2")], across=False)
    text = str(refused.value)
    assert refused.value.exit_code == 2
    assert f"rollback to {R1} crosses a migration: {R3} migrated by step deploy.yml:14 (./manage.py migrate) on host1" in text
    assert "(host1, host2)" in text and "nothing changed" in text
    assert "migrates_back: true" in text and "--across-migrations" in text


def test_the_guard_lets_a_rollback_that_crosses_nothing_through() -> None:
    assert guard([plan(target=R3, current=R4, migrated={R3: [MIGRATE]})], across=False) == ({}, [])


def test_across_migrations_goes_through_with_a_warning_and_no_down_step() -> None:
    plans, warnings = guard([plan("host1"), plan("host2")], across=True)
    assert plans["production"].across
    assert warnings == [f"rolling back across migrations (--across-migrations): {R3} migrated by step deploy.yml:14"
                        f" (./manage.py migrate) on host1; the schema stays as it is, {R1} runs on it"]


def test_a_down_step_runs_in_the_newest_release_that_migrated_for_its_stage() -> None:
    older = Migration(R2, "fapistrano_alembic: alembic upgrade head", "host2", "updated", "production")
    migrated = {R2: [older], R3: [MIGRATE]}
    plans, warnings = guard([plan("host1", migrated=migrated, down_step="stage"),
                             plan("host2", migrated={R2: [older]}, down_step="stage")], across=False)
    assert warnings == []
    going_back = plans["production"]
    assert (going_back.target, going_back.run_in, going_back.across) == (R1, R3, False)
    assert [name for name, _ in going_back.crossed] == [R3, R2]


def test_a_down_step_written_in_a_block_plans_for_its_target() -> None:
    plans, _ = guard([plan(down_step="label", role="worker")], across=False)
    assert list(plans) == ["production/worker"]


def test_one_host_without_a_down_step_refuses_the_whole_rollback() -> None:
    with pytest.raises(MigrationsCrossed, match=r"\(host2\)"):
        guard([plan("host1", down_step="label", role="web"), plan("host2", role="worker")], across=False)


# -- marks and the run's ledger ------------------------------------------------

def test_a_mark_keeps_every_migration_of_its_release_and_reads_back() -> None:
    plugin = Migration(R3, "fapistrano_alembic: alembic upgrade head", "host2", "published", "production")
    assert read_mark(R3, mark_record([MIGRATE, plugin])) == [MIGRATE, plugin]


def test_a_mark_edited_by_hand_still_says_the_release_migrated() -> None:
    (unknown,) = read_mark(R3, {"migrations": "yes"})
    assert unknown.release == R3 and "names no step" in unknown.what


def test_the_ledger_gives_each_stage_its_own_migrations_and_a_local_step_to_all() -> None:
    ledger = Ledger()
    ledger.record(MIGRATE)
    ledger.record(Migration(R3, "step deploy.yml:20 (./migrate-reports)", "local", "updated", None))
    ledger.record(Migration(R3, "step deploy.yml:14 (./manage.py migrate)", "host9", "updated", "staging"))
    assert [m.host for m in ledger.of_release(R3, "production")] == ["host1", "local"]
    assert ledger.of_release(R4, "production") == []


def test_a_deploy_that_did_not_stay_live_names_the_migration_it_leaves_behind() -> None:
    ledger = Ledger()
    assert not_undone(ledger, R3, switched_back=True) == []
    ledger.record(MIGRATE)
    (switched,) = not_undone(ledger, R3, switched_back=True)
    (removed,) = not_undone(ledger, R3, switched_back=False)
    assert switched == (f"the schema was migrated by {R3}, the release switched away from (step deploy.yml:14"
                        " (./manage.py migrate) on host1): switching back does not undo it;"
                        " the release live now runs on the migrated schema")
    assert removed.startswith(f"the schema was migrated by {R3}, the release removed after the failure (step")
    assert "removing it does not undo it" in removed


# -- deploy.yml: migrates: and migrates_back: ------------------------------------

def write(fap_local: Any, hooks: str) -> Path:
    text = (f"app_name: app\nconnection: local\npath: {fap_local.path}\n{hooks}"
            "stage_role_configs:\n  test:\n    web:\n      hosts: [localhost]\n")
    path = fap_local.root / "deploy.yml"
    path.write_text(text)
    return path


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), start=1) if text in line)


@pytest.mark.parametrize(("hooks", "bad", "fragments"), [
    ("hooks:\n  updated:\n    - run: ./migrate\n      migrate: true\n", "migrate: true",
     ["unknown step key 'migrate'", "did you mean 'migrates'"]),
    ("hooks:\n  updated:\n    - run: ./migrate\n      migrations: true\n", "migrations:",
     ["unknown step key 'migrations'", "did you mean 'migrates'"]),
    ("hooks:\n  reverting:\n    - run: ./down\n      migrate_back: true\n", "migrate_back",
     ["unknown step key 'migrate_back'", "did you mean 'migrates_back'"]),
    ("hooks:\n  updated:\n    - run: ./migrate\n      migrates: yes please\n", "./migrate",
     ["migrates: expected true or false, got 'yes please'"]),
    ("hooks:\n  finished:\n    - run: ./migrate\n      migrates: true\n", "./migrate",
     ["finished: migrates: marks the release a deploy makes", "updated, before the switch, is the usual place"]),
    ("hooks:\n  reverting:\n    - run: ./migrate\n      migrates: true\n", "./migrate", ["reverting: migrates: marks"]),
    ("hooks:\n  updated:\n    - run: ./down\n      migrates_back: true\n", "./down",
     ["updated: migrates_back: is the down-migration of a rollback", "reverting or reverted"]),
    ("hooks:\n  reverting:\n    - local: ./down\n      migrates_back: true\n", "./down", ["migrates_back: is for run: steps"]),
    ("hooks:\n  reverting:\n    - run: ./down\n      migrates_back: true\n      once: false\n", "./down",
     ["migrates_back: runs on one host only; remove once: false"]),
    ("hooks:\n  reverting:\n    - run: ./down\n      migrates_back: 1\n", "./down", ["migrates_back: expected true or false"]),
])
def test_a_mistake_in_migrates_is_one_line_naming_the_line_exit_2(
        fap_local: Any, fap_run: Any, assert_error: Any, hooks: str, bad: str, fragments: list[str]) -> None:
    path = write(fap_local, hooks)

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 2, result.output
    assert_error(result, f"deploy.yml:{line_of(path, bad)}: hooks:", *fragments)
    assert not fap_local.path.exists()


def test_fap_config_shows_which_steps_migrate(fap_local: Any, fap_run: Any) -> None:
    write(fap_local, "hooks:\n  updated:\n    - run: ./migrate\n      once: true\n      migrates: true\n"
                     "  reverting:\n    - run: ./migrate-back\n      migrates_back: true\n")

    result = fap_run(["config", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    rows = [line.split()[:5] for line in result.stdout.splitlines() if line.startswith("hooks.")]
    assert rows == [["hooks.updated", "run:", "./migrate", "(once)", "(migrates)"],
                    ["hooks.reverting", "run:", "./migrate-back", "(once)", "(migrates"]]


# -- a plugin marks its release: ctx.mark_migrated -------------------------------

ALEMBIC_PLUGIN = '''\
import os

from fapistrano import hookimpl


@hookimpl
def fap_deploy_updated(ctx):
    if os.path.exists(os.path.join(ctx.project_dir, "NEW_MIGRATION")):
        ctx.run("echo alembic upgrade head")
        ctx.mark_migrated("fap_alembic: alembic upgrade head")


@hookimpl
def fap_deploy_finished(ctx):
    if os.path.exists(os.path.join(ctx.project_dir, "LATE_MIGRATION")):
        ctx.mark_migrated("fap_alembic: too late")
'''


def write_plugin(fap_local: Any, hooks: str = "") -> Path:
    (fap_local.root / "fap_alembic.py").write_text(ALEMBIC_PLUGIN)
    path = write(fap_local, f"plugins: [fap_alembic]\n{hooks}")
    return path


def deploy(fap_local: Any, fap_run: Any, released: Any, *flags: str) -> str:
    for flag in flags:
        (fap_local.root / flag).touch()
    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)
    for flag in flags:
        (fap_local.root / flag).unlink()
    assert result.exit_code == 0, result.output
    return released(result)


def test_a_plugin_marks_its_release_and_the_guard_names_what_it_said(
        fap_local: Any, fap_run: Any, released: Any, assert_error: Any) -> None:
    write_plugin(fap_local)
    first = deploy(fap_local, fap_run, released)
    second = deploy(fap_local, fap_run, released, "NEW_MIGRATION")

    listed = fap_run(["releases", "-s", "test"], cwd=fap_local.root)
    refused = fap_run(["rollback", "-s", "test"], cwd=fap_local.root)

    assert f"{second} migrated the schema: fap_alembic: alembic upgrade head on localhost" in listed.stdout
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()
            if line[:1].isdigit() and "the schema" not in line}
    assert "current, migrated" in rows[second] and "migrated" not in rows[first]
    assert refused.exit_code == 2, refused.output
    assert_error(refused, f"rollback to {first} crosses a migration: {second} migrated by fap_alembic: alembic upgrade head"
                          " on localhost")
    assert fap_local.current() == second


def test_mark_migrated_outside_a_deploys_migrating_phases_fails_naming_the_call(
        fap_local: Any, fap_run: Any, released: Any) -> None:
    write_plugin(fap_local)
    (fap_local.root / "LATE_MIGRATION").touch()

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 1, result.output
    assert "mark_migrated('fap_alembic: too late'): only a deploy's release migrates, in updating, updated, publishing," \
           " published, finishing; called in finished (release)" in result.stderr


def test_a_local_step_that_migrates_marks_the_release_on_the_hosts(fap_local: Any, fap_run: Any, released: Any) -> None:
    write(fap_local, "hooks:\n  updated:\n    - local: echo migrating from here\n      migrates: true\n")

    release = deploy(fap_local, fap_run, released)
    listed = fap_run(["releases", "-s", "test"], cwd=fap_local.root)

    assert f"{release} migrated the schema: step deploy.yml:6 (echo migrating from here) on local" in listed.stdout


def test_a_dry_run_marks_nothing(fap_local: Any, fap_run: Any, released: Any) -> None:
    write(fap_local, "hooks:\n  updated:\n    - run: echo migrating\n      migrates: true\n")
    deploy(fap_local, fap_run, released)

    result = fap_run(["deploy", "-s", "test", "--dry-run", "-v"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    assert "would mark" in result.output and "migrated: step deploy.yml:6 (echo migrating)" in result.output
    marks = sorted(p.name for p in (fap_local.path / ".fap" / "marks").iterdir())
    assert len(marks) == 1  # the first deploy's own


# -- fap releases: the mark in the table ---------------------------------------

def test_the_releases_table_says_migrated_and_on_which_hosts_when_they_disagree() -> None:
    import datetime as dt

    from fapistrano.commands.releases import HostReleases, migration_notes, release_rows
    from fapistrano.layout import HostState

    mark = {"migrated": mark_record([MIGRATE])}
    everywhere = [HostReleases(h, HostState(current=R4, releases=(R1, R3, R4), marks={R3: mark})) for h in ("host1", "host2")]
    one = [everywhere[0], HostReleases("host2", HostState(current=R4, releases=(R1, R3, R4)))]

    rows = {row.release: row.status for row in release_rows(everywhere, dt.datetime(2026, 1, 5))}
    partly = {row.release: row.status for row in release_rows(one, dt.datetime(2026, 1, 5))}

    assert rows == {R4: "current", R3: "migrated", R1: ""}
    assert partly[R3] == "migrated on host1"
    assert migration_notes(everywhere) == [f"{R3} migrated the schema: step deploy.yml:14 (./manage.py migrate) on host1"]
