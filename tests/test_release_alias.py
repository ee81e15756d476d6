"""``release`` is Fapistrano 0.9's name of ``deploy``: ``fap release`` and ``release_plugins:`` keep working."""

from __future__ import annotations

import textwrap
from pathlib import Path

from fapistrano import config as cfg
from fapistrano.flows import COMMANDS
from fapistrano.plugins import Plugins

DEPLOY_YML = """
plugins: [everywhere]
release_plugins: [for_deploys]
stage_role_configs:
  prod:
    web:
      hosts: [web1]
"""


def test_release_plugins_choose_the_plugins_of_fap_deploy(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yml"
    path.write_text(textwrap.dedent(DEPLOY_YML))
    deployfile = cfg.DeployFile.load(path)

    assert [name for name, _ in deployfile.plugins_for("prod", "web", "deploy")] == ["for_deploys"]
    assert [name for name, _ in deployfile.plugins_for("prod", "web", "rollback")] == ["everywhere"]


def test_release_plugins_is_a_known_setting_and_release_is_no_command_of_its_own(tmp_path: Path) -> None:
    declared = cfg.declared_settings(Plugins().settings())
    assert "release_plugins" in declared and "deploy_plugins" in declared
    assert "release" not in [command.name for command in COMMANDS]


def test_fap_release_deploys_with_the_release_plugins(fap_local, fap_run) -> None:
    (fap_local.root / "for_deploys.py").write_text(
        "from fapistrano import hookimpl\n\n@hookimpl\ndef fap_deploy_updated(ctx):\n"
        "    ctx.run('touch FROM_RELEASE_PLUGINS', cwd=ctx.release_path)\n"
    )
    path = fap_local.write_deployfile({"release_plugins": ["for_deploys"]})

    result = fap_run(["release", "-s", "test", "-q"], cwd=path.parent)

    assert result.exit_code == 0, result.output
    assert (fap_local.path / "current" / "FROM_RELEASE_PLUGINS").exists()


def test_each_command_that_chooses_its_plugins_has_its_core_setting_and_no_other_does() -> None:
    declared = cfg.declared_settings(Plugins().settings())
    plugin_lists = {name for name, d in declared.items() if name.endswith("_plugins") and d.origin.kind == "core"}
    assert plugin_lists == {f"{c.name}_plugins" for c in COMMANDS if c.chooses_plugins} | {"release_plugins"}
