"""examples/artifact/deploy.yml, as documented, against the real fleet."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

pytestmark = pytest.mark.fleet

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "artifact"


@pytest.mark.skipif(not (EXAMPLE / "deploy.yml").exists(), reason="runs from a checkout of the fapistrano repository")
def test_artifact_example_builds_releases_and_runs(fap_fleet, fap_run, tmp_path, artifact_server):
    # Build the artifact exactly as the example's comment says.
    subprocess.run(["tar", "-czf", str(tmp_path / "artifact.tar.gz"), "-C", str(EXAMPLE / "app"), "."], check=True)
    artifact_server.files["/builds/artifact-42.tar.gz"] = (tmp_path / "artifact.tar.gz").read_bytes()
    # The example's deploy.yml, pointed at the fleet: its production hosts become the fleet's.
    yaml = YAML()
    data = yaml.load((EXAMPLE / "deploy.yml").read_text())
    data["ssh_config"] = str(fap_fleet.ssh_config)
    data["stage_role_configs"]["production"]["app"]["hosts"] = list(fap_fleet.hosts)
    project = tmp_path / "project"
    project.mkdir()
    with open(project / "deploy.yml", "w") as stream:
        yaml.dump(data, stream)
    for host in fap_fleet.hosts:
        provisioned = fap_fleet.in_host(host, ["sh", "-c", "mkdir -p /home/deploy/www/artifact/shared/config && "
                                               f"printf '[app]\\nname = {host}\\n' > /home/deploy/www/artifact/shared/config/settings.ini"],
                                        user="deploy")
        assert provisioned.returncode == 0, provisioned.stderr

    result = fap_run(["deploy", "-s", "production", "--curl-url", artifact_server.url("/builds/artifact-42.tar.gz")], cwd=project)

    assert result.exit_code == 0, result.output
    for host in fap_fleet.hosts:
        release = fap_fleet.current(host, "artifact")
        current = fap_fleet.current_dir(host, "artifact")
        assert (current / "INSTALLED").read_text() == f"{release} installed on {host}\n"
        assert (current / "hello" / "__pycache__").is_dir()  # install.sh compiled it on the host
        assert not (current / "artifact-42.tar.gz").exists()
        ran = fap_fleet.in_host(host, ["sh", "-c", "cd /home/deploy/www/artifact/current && python3 -m hello"], user="deploy")
        assert ran.stdout == f"hello from {host}\n", ran.stderr
        assert f"installed release {release}" in result.stdout
