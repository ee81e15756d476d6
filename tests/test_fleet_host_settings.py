"""Per-host settings on the SSH fleet: a host item's value reaches ``%(name)s`` in a step, ``.env`` and ``fap config --host``."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any


def write(fleet: Any, root: Path) -> Path:
    path = root / "deploy.yml"
    path.write_text(textwrap.dedent(f"""\
        app_name: {fleet.app_name}
        ssh_config: {fleet.ssh_config}
        program: web
        weight: "1"
        environment: {{APP: shop, WORKERS: "4"}}
        hooks:
          updated:
            - run: echo %(program)s %(weight)s > program.txt
        stage_role_configs:
          test:
            web:
              hosts:
                - host1
                - {{host: host2, program: web-b, weight: 2}}
                - host: host3
                  environment: {{WORKERS: "8"}}
            worker:
              path: /home/deploy/www/%(app_name)s-worker
              hosts: [host2]
        """))
    return path


def dotenv(fleet: Any, host: str) -> list[str]:
    return sorted((fleet.current_dir(host) / ".env").read_text().splitlines())


def test_a_host_items_values_reach_steps_and_dotenv_on_that_host_only(fap_fleet: Any, fap_run: Any, tmp_path: Path,
                                                                      released: Any) -> None:
    write(fap_fleet, tmp_path)

    result = fap_run(["deploy", "-s", "test", "-r", "web"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    release = released(result)
    assert [fap_fleet.current(host) for host in ("host1", "host2", "host3")] == [release] * 3
    programs = [(fap_fleet.current_dir(host) / "program.txt").read_text() for host in ("host1", "host2", "host3")]
    assert programs == ["web 1\n", "web-b 2\n", "web 1\n"]
    assert dotenv(fap_fleet, "host1") == ["APP=shop", "WORKERS=4"]
    assert dotenv(fap_fleet, "host3") == ["APP=shop", "WORKERS=8"]  # merged over the role's, not replacing it


def test_a_host_in_two_roles_keeps_each_roles_values(fap_fleet: Any, fap_run: Any, tmp_path: Path) -> None:
    write(fap_fleet, tmp_path)

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert (fap_fleet.current_dir("host2") / "program.txt").read_text() == "web-b 2\n"
    assert (fap_fleet.current_dir("host2", f"{fap_fleet.app_name}-worker") / "program.txt").read_text() == "web 1\n"


def test_fap_config_for_a_host_shows_its_values_and_their_line(fap_fleet: Any, fap_run: Any, tmp_path: Path) -> None:
    path = write(fap_fleet, tmp_path)
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "host: host2" in text)
    env_line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "WORKERS: \"8\"" in text)

    host2 = fap_run(["config", "-s", "test", "-r", "web", "--host", "host2"], cwd=tmp_path)
    host3 = fap_run(["config", "-s", "test", "-r", "web", "--host", "host3"], cwd=tmp_path)
    host1 = fap_run(["config", "-s", "test", "-r", "web", "--host", "host1"], cwd=tmp_path)

    assert host2.exit_code == host3.exit_code == host1.exit_code == 0, host2.output + host3.output
    rows = {line.split()[0]: line.split(None, 1)[1] for line in host2.stdout.splitlines() if line.strip()}
    assert rows["program"].split() == ["web-b", f"deploy.yml:{line}", "(host", "host2)"]
    assert rows["weight"].split() == ["2", f"deploy.yml:{line}", "(host", "host2)"]
    rows3 = {line.split()[0]: line.split(None, 1)[1] for line in host3.stdout.splitlines() if line.strip()}
    assert rows3["environment"].split() == ["{APP:", "shop,", "WORKERS:", "8}", f"deploy.yml:{env_line}", "(host", "host3)"]
    rows1 = {line.split()[0]: line.split(None, 1)[1] for line in host1.stdout.splitlines() if line.strip()}
    assert rows1["program"].split()[0] == "web" and "(host" not in rows1["program"]


def test_a_bad_key_in_a_host_item_is_refused_before_any_host(fap_fleet: Any, fap_run: Any, tmp_path: Path,
                                                            assert_error: Any) -> None:
    path = write(fap_fleet, tmp_path)
    path.write_text(path.read_text().replace("program: web-b", "program: web-b, keep_release: 3"))
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "host: host2" in text)

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 2, result.output
    assert_error(result, f"deploy.yml:{line}: hosts: host host2: keep_release is not a known setting (did you mean 'keep_releases'?)")
    assert fap_fleet.current("host1") is None
