"""``--hosts``: a subset of the selected stage/roles' hosts, on the real fleet.

deploy.yml has two roles sharing host2 (each in its own directory): ``--hosts``
filters the (target, host) pairs; it never adds a host to a role.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

HOSTS = ("host1", "host2", "host3")


@pytest.fixture
def two_roles(fap_fleet: Any, tmp_path: Path) -> Any:
    """test/web on host1..host3, test/worker on host2 only; returns ``current(host, role)``."""
    fap_fleet.write_deployfile(tmp_path, {
        "path": "/home/deploy/www/app-%(role)s",
        "stage_role_configs": {"test": {"web": {"hosts": list(HOSTS)}, "worker": {"hosts": ["host2"]}}},
    })
    return lambda host, role: fap_fleet.current(host, f"app-{role}")


def test_a_glob_selects_hosts_of_every_selected_role_and_adds_none(
    fap_run: Any, tmp_path: Path, two_roles: Any, released: Any
) -> None:
    result = fap_run(["deploy", "-s", "test", "--hosts", "host[12]"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    release = released(result)
    assert [two_roles(h, "web") for h in HOSTS] == [release, release, None]
    assert two_roles("host2", "worker") == release
    assert two_roles("host1", "worker") is None  # host1 is no worker: the filter never made it one
    # The summary's closing line says which hosts of test/web now disagree.
    assert (f"warning: hosts of test/web now disagree on current: host1, host2 -> {release}; host3 (not selected) unchanged"
            in result.stdout), result.output
    assert "test/worker now disagree" not in result.stdout  # its only host was deployed


def test_one_host_of_one_role_leaves_the_role_sharing_it_alone(fap_run: Any, tmp_path: Path, two_roles: Any,
                                                               released: Any) -> None:
    result = fap_run(["deploy", "-s", "test", "--hosts", "host3"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert [two_roles(h, "web") for h in HOSTS] == [None, None, released(result)]
    assert [two_roles(h, "worker") for h in HOSTS] == [None, None, None]
    assert "to test/web (1 host)" in result.stdout, result.output  # test/worker, with no host selected, is not run


def test_several_patterns_and_releases_says_the_hosts_disagree(fap_run: Any, tmp_path: Path, two_roles: Any,
                                                               released: Any) -> None:
    first = fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path)
    assert first.exit_code == 0, first.output
    old = released(first)
    result = fap_run(["deploy", "-s", "test", "-r", "web", "--hosts", "host3,host1"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    new = released(result)
    assert [two_roles(h, "web") for h in HOSTS] == [new, old, new]
    assert two_roles("host2", "worker") == old
    assert f"hosts of test/web now disagree on current: host1, host3 -> {new}; host2 (not selected) unchanged" in result.stdout

    listing = fap_run(["releases", "-s", "test"], cwd=tmp_path)
    assert listing.exit_code == 0, listing.output
    assert f"warning: hosts of test/web disagree on current: host1, host3 -> {new}; host2 -> {old}" in listing.stdout


def test_releases_check_and_rollback_act_on_the_selected_hosts_only(fap_run: Any, tmp_path: Path, two_roles: Any,
                                                                     released: Any) -> None:
    old = released(fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path))
    new = released(fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path))
    listing = fap_run(["releases", "-s", "test", "--hosts", "host1"], cwd=tmp_path)
    assert listing.exit_code == 0, listing.output
    assert "test/web (1 host)" in listing.stdout and "test/worker" not in listing.stdout
    check = fap_run(["check", "-s", "test", "--hosts", "host2"], cwd=tmp_path)
    assert check.exit_code == 0, check.output
    assert "host1" not in check.output and "host3" not in check.output
    back = fap_run(["rollback", "-s", "test", "--hosts", "host2"], cwd=tmp_path)
    assert back.exit_code == 0, back.output
    assert [two_roles(h, "web") for h in HOSTS] == [new, old, new]
    assert two_roles("host2", "worker") == old


def test_a_pattern_matching_nothing_is_an_error_naming_patterns_and_hosts(
    fap_fleet: Any, fap_run: Any, assert_error: Any, tmp_path: Path, two_roles: Any
) -> None:
    result = fap_run(["deploy", "-s", "test", "--hosts", "host1,web*"], cwd=tmp_path)
    assert result.exit_code == 2
    assert_error(result, "--hosts host1,web*", "web* matches none", "host1, host2, host3")
    assert [two_roles(h, "web") for h in HOSTS] == [None, None, None]
    # Outside the selected role, a host is not there to match either.
    result = fap_run(["deploy", "-s", "test", "-r", "worker", "--hosts", "host1"], cwd=tmp_path)
    assert result.exit_code == 2
    assert_error(result, "--hosts host1", "test/worker (host2)")


def test_a_pattern_matches_the_name_with_or_without_user_and_port(fap_fleet: Any, fap_run: Any, tmp_path: Path,
                                                                  released: Any) -> None:
    written = ["deploy@host1", f"host2:{fap_fleet.port}", f"deploy@host3:{fap_fleet.port}"]
    fap_fleet.write_deployfile(tmp_path, {"stage_role_configs": {"test": {"web": {"hosts": written}}}})
    result = fap_run(["deploy", "-s", "test", "--hosts", f"deploy@host1,host2:{fap_fleet.port}"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert [fap_fleet.current(h) for h in HOSTS] == [released(result)] * 2 + [None]
    fap_fleet.reset()
    result = fap_run(["deploy", "-s", "test", "--hosts", "host1,*@host3:*"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert [fap_fleet.current(h) for h in HOSTS] == [released(result), None, released(result)]


def test_once_host_is_an_exact_name_alias_of_hosts(fap_run: Any, assert_error: Any, tmp_path: Path, two_roles: Any) -> None:
    assert fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path).exit_code == 0
    result = fap_run(["once", "-s", "test", "--host", "host2", "-c", "echo on $PWD"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    ran = [line for line in result.stdout.splitlines() if " | once | on " in line]
    # host2 of each role that has it, nothing else.
    assert len(ran) == 2 and all(line.startswith("host2 | once | on /home/deploy/www/app-") for line in ran), result.output
    # A name, not a pattern.
    result = fap_run(["once", "-s", "test", "--host", "host[2]", "-c", "true"], cwd=tmp_path)
    assert result.exit_code == 2
    assert_error(result, "--host host[2]", "host1, host2, host3")
    result = fap_run(["once", "-s", "test", "--hosts", "host[2]", "--all-hosts", "-c", "echo on $PWD"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert len([line for line in result.stdout.splitlines() if line.startswith("host2 | once | on ")]) == 2
