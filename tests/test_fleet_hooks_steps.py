"""``hooks:`` on the SSH fleet: examples/django-hooks as written, and ``once`` steps per stage and per target."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "django-hooks"
APP = "django_hooks"
HOSTS = ("host1", "host2", "host3")


def use_fleet(project: Path, fleet: Any) -> None:
    """Point the example's deploy.yml at the test fleet; change nothing else."""
    yaml = YAML()
    data = yaml.load(project / "deploy.yml")
    data["ssh_config"] = str(fleet.ssh_config)
    data["stage_role_configs"]["production"]["web"]["hosts"] = list(HOSTS)
    yaml.dump(data, project / "deploy.yml")


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_the_django_example_collects_static_everywhere_migrates_once_notifies_and_pages(fap_fleet, fap_run, tmp_path,
                                                                                      released, assert_error):
    project = tmp_path / "django-hooks"
    shutil.copytree(EXAMPLE, project)
    use_fleet(project, fap_fleet)

    deployed = fap_run(["deploy", "-s", "production"], cwd=project)

    assert deployed.exit_code == 0, deployed.output
    release = released(deployed)
    for host in HOSTS:
        assert fap_fleet.current(host, APP) == release
        assert (fap_fleet.current_dir(host, APP) / "static" / "site.css").read_text() == "body { margin: 0 }\n"
    migrations = [lines(fap_fleet.app_dir(host, APP) / "shared" / "db" / "migrations.log") for host in HOSTS]
    assert migrations == [[f"migrated by host1 for {release} (site.settings.production)"], [], []]
    assert lines(project / "notifications.log") == [f"deployed {release} to production"]

    (project / "app" / "BROKEN_MIGRATION").touch()
    failed = fap_run(["deploy", "-s", "production"], cwd=project)

    assert failed.exit_code == 1
    step = next(n for n, line in enumerate((project / "deploy.yml").read_text().splitlines(), 1) if "manage.py migrate" in line)
    assert_error(failed, f"host1: updated: core.steps: step deploy.yml:{step} (python3 manage.py migrate --noinput)",
                 'relation "users" does not exist')
    assert "nothing changed: the new release was removed" in failed.stderr
    for host in HOSTS:
        assert fap_fleet.current(host, APP) == release
        assert fap_fleet.releases(host, APP) == [release]
        # The failed run: step ran on every host, in path.
        (line,) = lines(fap_fleet.app_dir(host, APP) / "failed-deploys.log")
        # (the failed release is another one: within the same second it is the first one's name with a suffix)
        assert line.startswith("release ") and line.endswith(" failed in deploy") and line.split()[1] != release
    assert lines(project / "notifications.log") == [
        f"deployed {release} to production",
        "paged: deploy of django_hooks to production failed (ok=false) on host1 host2 host3",
    ]


def write_two_targets(fap_fleet: Any, root: Path) -> None:
    """Two stages: staging/web on host1; production/web on host2 and host3, production/worker on host3 and host1."""
    record = "echo $FAP_STAGE/$FAP_ROLE >> /home/deploy/www/once-%s.log"
    text = f"""\
app_name: {fap_fleet.app_name}
ssh_config: {fap_fleet.ssh_config}
path: /home/%(user)s/www/%(app_name)s-%(role)s
hooks:
  updated:
    - run: {record % "stage"}
      once: true
    - run: {record % "every"}
stage_role_configs:
  staging:
    web:
      hosts: [host1]
  production:
    web:
      hosts: [host2, host3]
    worker:
      hosts: [host3, host1]
      hooks:
        updated:
          - run: {record % "worker"}
            once: true
"""
    (root / "deploy.yml").write_text(text)


def once_logs(on_host: Any, name: str) -> dict[str, list[str]]:
    # Sorted: two targets on one host run a phase at the same time.
    return {host: sorted(on_host(host, f"cat /home/deploy/www/once-{name}.log 2>/dev/null || true").split()) for host in HOSTS}


def test_once_runs_on_the_first_selected_host_of_each_stage_and_of_its_target(fap_fleet, fap_run, tmp_path, on_host):
    write_two_targets(fap_fleet, tmp_path)
    for host in HOSTS:
        on_host(host, "rm -f /home/deploy/www/once-*.log")

    result = fap_run(["deploy", "-s", "production"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    # Once per stage: production's first host in deploy.yml order; once in the worker block: the worker's first.
    assert once_logs(on_host, "stage") == {"host1": [], "host2": ["production/web"], "host3": []}
    assert once_logs(on_host, "worker") == {"host1": [], "host2": [], "host3": ["production/worker"]}
    assert once_logs(on_host, "every") == {"host1": ["production/worker"], "host2": ["production/web"],
                                           "host3": ["production/web", "production/worker"]}
    for host in HOSTS:
        on_host(host, "rm -f /home/deploy/www/once-*.log")

    # --hosts leaves host2 out: the first *selected* host runs it; -r web over both stages: once in each.
    subset = fap_run(["deploy", "-r", "web", "--hosts", "host1,host3"], cwd=tmp_path)

    assert subset.exit_code == 0, subset.output
    assert once_logs(on_host, "stage") == {"host1": ["staging/web"], "host2": [], "host3": ["production/web"]}
    assert once_logs(on_host, "worker") == {"host1": [], "host2": [], "host3": []}


def test_local_steps_run_once_per_run_across_batches(fap_fleet, fap_run, tmp_path):
    # The hosts' updated.log, seen from this machine: the local step reads host3's (the last batch's) copy.
    log = fap_fleet.app_dir("host3") / "updated.log"
    fap_fleet.write_deployfile(tmp_path, {"batch_size": 1, "updated_log": str(log), "hooks": {
        "starting": [{"local": 'echo "starting $FAP_HOSTS" >> local.log'}],
        "updated": [{"run": "echo $FAP_HOST >> ../../updated.log"}, {"local": "cat %(updated_log)s >> local.log"}],
        "finished": [{"local": 'echo "finished ok=$FAP_OK" >> local.log'}],
    }})

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert "batch 3/3" in result.stdout
    # Before the first batch, once; after the last batch finished updated (host3 wrote its line), once.
    assert lines(tmp_path / "local.log") == ["starting host1 host2 host3", "host3", "finished ok=true"]
