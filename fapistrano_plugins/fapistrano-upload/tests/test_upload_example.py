"""examples/upload/deploy.yml, as documented, against the real fleet: a wheel built here, installed with no index."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

pytestmark = pytest.mark.fleet

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "upload"


@pytest.mark.skipif(not (EXAMPLE / "deploy.yml").exists(), reason="runs from a checkout of the fapistrano repository")
def test_upload_example_builds_a_wheel_once_and_installs_it_with_no_index(fap_fleet, fap_run, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("dist", "build", "*.egg-info", "__pycache__"))
    yaml = YAML()
    data = yaml.load((project / "deploy.yml").read_text())
    data["ssh_config"] = str(fap_fleet.ssh_config)
    data["stage_role_configs"]["production"]["app"]["hosts"] = list(fap_fleet.hosts)
    with open(project / "deploy.yml", "w") as stream:
        yaml.dump(data, stream)

    # The build's python3 is the one fap runs on (as in a tox or CI virtualenv): it has setuptools and wheel.
    try:
        import setuptools  # noqa: F401
        import wheel  # noqa: F401
    except ImportError:
        pytest.skip("building the example's wheel needs setuptools and wheel beside fap (pip install wheel)")
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

    result = fap_run(["deploy", "-s", "production"], cwd=project, env={"PATH": path})

    assert result.exit_code == 0, result.output
    wheels = sorted(p.name for p in (project / "dist").glob("*.whl"))
    assert wheels == ["hello_upload-1.0-py3-none-any.whl"]
    for host in fap_fleet.hosts:
        current = fap_fleet.current_dir(host, "hello-upload")
        assert (current / wheels[0]).is_file()
        ran = fap_fleet.in_host(host, ["sh", "-c", "cd /home/deploy/www/hello-upload/current && venv/bin/python -m hello_upload"],
                                user="deploy")
        assert ran.stdout.startswith("hello from ") and "installed from a wheel" in ran.stdout, ran.stderr
