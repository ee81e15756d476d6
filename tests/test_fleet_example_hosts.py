"""examples/fleet/deploy.yml as written, on the SSH fleet: per-host values in a step and in .env, a throttled step."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fleet"
APP = "fleet"
#: The example's hosts, in order, and the fleet's.
NAMES = {"app-web01": "host1", "app-web02": "host2", "app-web03": "host3"}


def use_fleet(project: Path, fleet: Any) -> None:
    """Point the example's hosts at the test fleet's; change nothing else."""
    yaml = YAML()
    data = yaml.load(project / "deploy.yml")
    data["ssh_config"] = str(fleet.ssh_config)
    hosts = data["stage_role_configs"]["production"]["web"]["hosts"]
    for index, item in enumerate(hosts):
        if isinstance(item, str):
            hosts[index] = NAMES[item]
        else:
            item["host"] = NAMES[item["host"]]
    yaml.dump(data, project / "deploy.yml")


def test_the_fleet_example_configures_each_host_with_its_own_values(fap_fleet: Any, fap_run: Any, tmp_path: Path,
                                                                    released: Any) -> None:
    project = tmp_path / "fleet"
    shutil.copytree(EXAMPLE, project)
    use_fleet(project, fap_fleet)

    result = fap_run(["deploy", "-s", "production"], cwd=project)

    assert result.exit_code == 0, result.output
    release = released(result)
    conf = {host: (fap_fleet.current_dir(host, APP) / "balancer.conf").read_text() for host in NAMES.values()}
    assert conf == {
        "host1": "program=web\nweight=1\nworkers=4\n",
        "host2": "program=web-b\nweight=2\nworkers=4\n",
        "host3": "program=web\nweight=1\nworkers=8\n",
    }
    assert all(fap_fleet.current(host, APP) == release for host in NAMES.values())
    spans = sorted(tuple(map(float, (fap_fleet.app_dir(host, APP) / "shared" / "warm-cache.times").read_text().split()))
                   for host in NAMES.values())
    # Two at a time: the third host starts once one of the first two is done.
    assert spans[2][0] >= min(spans[0][1], spans[1][1])

    shown = fap_run(["config", "-s", "production", "--host", "host2"], cwd=project)

    assert shown.exit_code == 0, shown.output
    line = next(n for n, text in enumerate((project / "deploy.yml").read_text().splitlines(), 1) if "host: host2" in text)
    row = next(text for text in shown.stdout.splitlines() if text.startswith("supervisor_program "))
    assert row.split() == ["supervisor_program", "web-b", f"deploy.yml:{line}", "(host", "host2)"]
