"""``fap plugins``: installed plugins, their hooks and settings, and whether deploy.yml enables them."""

from __future__ import annotations

from test_commands_support import install_demo_plugin


def _block(output: str, name: str) -> list[str]:
    """The lines ``fap plugins`` printed about plugin ``name`` (its head line and the indented ones)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split("  ")[0] == name)
    block = [lines[start]]
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        block.append(line)
    return block


def test_plugins_lists_installed_ones_without_a_deploy_file(tmp_path, fap_run):
    env = install_demo_plugin(tmp_path / "site")
    empty = tmp_path / "empty"
    empty.mkdir()

    result = fap_run(["plugins"], cwd=empty, env=env)

    assert result.exit_code == 0, result.output
    block = _block(result.stdout, "fapistrano.demo")
    assert block[0] == "fapistrano.demo  fap-demo-plugin 0.3  (module fap_demo_plugin)"
    assert not any("enabled:" in line for line in block)  # nothing to compare with
    assert block[1] == ("  hooks:    fap_check, fap_defaults, fap_deploy_updating, fap_secret_settings, fap_setting_docs")
    settings = "\n".join(block[2:])
    assert "  settings: demo_greeting: hello from %(host)s  # What the demo plugin writes into GREETING in each release." in settings
    assert "demo_token: ''  # API token of the demo service. [secret]" in settings
    assert "demo_check_crash: false" in settings
    assert "built-in plugins, always on: dirs (fap_deploy_starting)" in result.stdout
    # fap check's own checks are a hookimpl like any plugin's.
    assert "; checks (fap_check)" in result.stdout


def test_plugins_says_where_deploy_yml_enables_each(tmp_path, fap_run):
    env = install_demo_plugin(tmp_path / "site", broken=True)
    (tmp_path / "deploy_hooks.py").write_text(
        "from fapistrano import hookimpl\n\n\n@hookimpl\ndef fap_deploy_finished(ctx):\n    ctx.log('done')\n"
    )
    (tmp_path / "deploy.yml").write_text(
        "app_name: shop\n"
        "plugins: [deploy_hooks]\n"
        "deploy_plugins: [fapistrano.demo, deploy_hooks]\n"
        "stage_role_configs:\n"
        "  production:\n"
        "    web: {hosts: [web1]}\n"
    )

    result = fap_run(["plugins"], cwd=tmp_path, env=env)

    assert result.exit_code == 0, result.output
    assert "  enabled:  yes (fap deploy)" in _block(result.stdout, "fapistrano.demo")
    hooks = _block(result.stdout, "deploy_hooks")
    assert hooks[0] == "deploy_hooks  module listed at deploy.yml:3"
    assert "  enabled:  yes" in hooks
    assert "  hooks:    fap_deploy_finished" in hooks
    # An installed plugin that cannot be imported is reported, and the others are still listed.
    broken = _block(result.stdout, "fapistrano.broken")
    assert "  enabled:  no" in broken
    assert any("error:" in line and "needs a library that is not installed" in line for line in broken)


def test_plugins_fails_when_deploy_yml_enables_a_plugin_that_is_missing(tmp_path, fap_run):
    (tmp_path / "deploy.yml").write_text(
        "app_name: shop\nplugins: [fapistrano.gti]\nstage_role_configs:\n  production:\n    web: {hosts: [web1]}\n"
    )

    result = fap_run(["plugins"], cwd=tmp_path)

    assert result.exit_code == 2, result.output
    block = _block(result.stdout, "fapistrano.gti")
    assert block[0] == "fapistrano.gti  module listed at deploy.yml:2"
    assert "  enabled:  yes" in block
    assert any(line.startswith("  error:    unknown plugin 'fapistrano.gti'") for line in block), block
