"""examples/codebase/deploy.yml, exactly as shipped, deployed to the fleet.

The example names real-looking machines (staging.example.com, web1…) and a
repository on git.example.com. The test gives those names to fleet hosts in
an ssh config (``--ssh-config``) and points ``--repo`` at a real repository
that a fleet host serves over ssh; nothing else of the example changes.
"""

from __future__ import annotations

from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "codebase" / "deploy.yml"

MACHINES = {
    "staging.example.com": "host1",
    "web1.example.com": "host2",
    "web2.example.com": "host3",
    "worker1.example.com": "host1",
    "git.example.com": "host3",
}


def test_one_codebase_deployed_as_staging_and_production_in_three_roles(fap_fleet, fap_run, tmp_path, git_server):
    repo = git_server.new_repo("shop")
    production_sha = repo.head()
    repo.branch("production")
    staging_sha = repo.commit({"app.py": "print('next version')\n"}, "next version")
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(fap_fleet.ssh_config.read_text() + git_server.alias_ssh_config(fap_fleet.ssh_config, MACHINES))
    overrides = [
        "--ssh-config", str(ssh_config),
        "--repo", f"deploy@git.example.com:{repo.path}",
        "--git-ssh-command", git_server.ssh_command(fap_fleet.ssh_config, aliases=MACHINES),
    ]

    staging = fap_run(["-d", str(EXAMPLE), "deploy", "-s", "staging", *overrides], cwd=tmp_path)
    production = fap_run(["-d", str(EXAMPLE), "deploy", "-s", "production", *overrides], cwd=tmp_path)

    assert staging.exit_code == 0, staging.output
    assert production.exit_code == 0, production.output
    expected = {
        ("staging", "web"): (["host1"], staging_sha),
        ("staging", "worker"): (["host1"], staging_sha),
        ("staging", "cron"): (["host1"], staging_sha),
        ("production", "web"): (["host2", "host3"], production_sha),
        ("production", "worker"): (["host1"], production_sha),
        ("production", "cron"): (["host1"], production_sha),
    }
    for (stage, role), (hosts, sha) in expected.items():
        app = f"shop-{stage}-{role}"
        for host in hosts:
            release = fap_fleet.current_dir(host, app)
            assert (release / "REVISION").read_text() == sha + "\n", (stage, role, host)
            assert (release / "app.py").is_file()
            assert (release / ".env").read_text() == f"APP_STAGE={stage}\nAPP_ROLE={role}\n"
            branch = "master" if stage == "staging" else "production"
            (line,) = (fap_fleet.app_dir(host, app) / "revisions.log").read_text().splitlines()
            assert f"sha={sha} branch={branch}" in line
    # Only the hosts of each role got that role's directory.
    assert not fap_fleet.app_dir("host2", "shop-production-worker").exists()
    assert not fap_fleet.app_dir("host1", "shop-production-web").exists()
