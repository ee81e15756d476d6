"""``--hosts`` without a fleet: the patterns, the forms of a host's name, and the command line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fapistrano.config import HostSpec, Origin
from fapistrano.errors import ConfigError
from fapistrano.selection import HostPatterns, written_forms


@dataclass
class Pair:
    spec: HostSpec
    label: str = "test/web"


def pairs(*written: str) -> list[Pair]:
    return [Pair(HostSpec.parse(text, Origin("file", "deploy.yml:3"))) for text in written]


def test_a_host_is_matched_with_or_without_its_user_and_port() -> None:
    assert written_forms(HostSpec.parse("deploy@web1:2222", Origin("core"))) == [
        "web1", "web1:2222", "deploy@web1", "deploy@web1:2222"]
    assert written_forms(HostSpec.parse("[::1]:22", Origin("core"))) == ["::1", "[::1]:22"]
    assert written_forms(HostSpec.parse("web1", Origin("core"))) == ["web1"]


def test_globs_filter_in_file_order() -> None:
    hosts = pairs("web1", "deploy@web2:2222", "db1")
    selected, left_out = HostPatterns.parse("db*, web[2]").split(hosts)
    assert [p.spec.name for p in selected] == ["web2", "db1"]
    assert [p.spec.name for p in left_out] == ["web1"]
    selected, _ = HostPatterns.parse("*@*:2222").split(hosts)
    assert [p.spec.name for p in selected] == ["web2"]


def test_an_exact_name_is_no_pattern() -> None:
    hosts = pairs("web1", "deploy@web2:2222")
    assert [p.spec.name for p in HostPatterns.exact_name("deploy@web2").split(hosts)[0]] == ["web2"]
    with pytest.raises(ConfigError, match=r"--host web\*: not a host of the selected targets test/web \(web1, deploy@web2:2222\)"):
        HostPatterns.exact_name("web*").split(hosts)


def test_every_pattern_must_match_and_an_empty_list_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"--hosts web1,nope\*: nope\* matches none of the hosts of test/web \(web1, web2\)"):
        HostPatterns.parse("web1,nope*").split(pairs("web1", "web2"))
    with pytest.raises(ConfigError, match="give at least one host name or pattern"):
        HostPatterns.parse(" , ")


@pytest.mark.parametrize("command", ["deploy", "rollback", "restart", "once", "shell", "check", "releases", "unlock", "config"])
def test_every_command_on_hosts_takes_hosts(fap_run: Any, tmp_path: Path, command: str) -> None:
    result = fap_run([command, "--help"], cwd=tmp_path)
    assert result.exit_code == 0 and "--hosts PATTERNS" in result.stdout, result.output


def test_host_and_hosts_together_and_an_empty_hosts_are_errors(fap_local: Any, fap_run: Any, assert_error: Any) -> None:
    fap_local.write_deployfile()
    result = fap_run(["config", "-s", "test", "--host", "localhost", "--hosts", "local*"], cwd=fap_local.root)
    assert result.exit_code == 2
    assert_error(result, "--host and --hosts")
    result = fap_run(["config", "-s", "test", "--hosts", ""], cwd=fap_local.root)
    assert result.exit_code == 2
    assert_error(result, "--hosts ''")
    # --hosts is the filter, never the hosts setting: a host that is not there is not added.
    result = fap_run(["deploy", "-s", "test", "--hosts", "elsewhere"], cwd=fap_local.root)
    assert result.exit_code == 2
    assert_error(result, "--hosts elsewhere", "(localhost)")
    assert not fap_local.releases()
