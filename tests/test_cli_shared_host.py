"""A host in two roles of one run must not have two releases fight over one directory."""

from __future__ import annotations

import os


def test_two_roles_deploying_to_one_directory_are_refused_before_anything_changes(fap_local, fap_run):
    fap_local.write_deployfile({"stage_role_configs": {"test": {"worker": {"hosts": ["localhost"]}}}})

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 1
    assert "test/web and test/worker both deploy to" in result.stderr
    assert "Traceback" not in result.output
    assert not fap_local.path.exists()


def test_two_roles_with_their_own_paths_deploy_in_one_run(fap_local, fap_run):
    fap_local.write_deployfile({
        "path": str(fap_local.root / "srv" / "%(app_name)s-%(role)s"),
        "stage_role_configs": {"test": {"worker": {"hosts": ["localhost"]}}},
    })

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    # Each role's own current points at the one release of this run, in that role's own releases/.
    for role in ("web", "worker"):
        app = fap_local.root / "srv" / f"app-{role}"
        assert (app / "current").is_symlink(), f"{role} was never switched"
        assert os.readlink(app / "current") == str(app / "releases" / sorted(os.listdir(app / "releases"))[0])
        assert (app / "current").resolve().is_dir()
    web = os.readlink(fap_local.root / "srv" / "app-web" / "current")
    worker = os.readlink(fap_local.root / "srv" / "app-worker" / "current")
    assert os.path.basename(web) == os.path.basename(worker)
