"""A host in two roles of one run must not have two releases fight over one directory."""

from __future__ import annotations


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
    web = (fap_local.root / "srv" / "app-web" / "current").resolve().name
    worker = (fap_local.root / "srv" / "app-worker" / "current").resolve().name
    assert web == worker
