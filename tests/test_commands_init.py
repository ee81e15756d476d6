"""``fap init``: a commented deploy.yml that fap loads once hosts are filled in."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML
from test_commands_support import config_rows, install_demo_plugin, one_error_line

from fapistrano.plugins import core_settings, installed_plugins


def _fill_hosts(path: Path, hosts: str) -> None:
    """Do what the file asks: put hosts into the staging/web block (the first ``hosts: []``)."""
    text = path.read_text()
    start = text.index("hosts: []")
    end = text.index("\n", start)
    path.write_text(text[:start] + f"hosts: {hosts}" + text[end:])


def test_init_writes_every_setting_of_the_chosen_plugins_commented_out(tmp_path, fap_run):
    env = install_demo_plugin(tmp_path / "site")
    project = tmp_path / "shop"
    project.mkdir()

    result = fap_run(["init", "--plugins", "demo"], cwd=project, env=env)

    assert result.exit_code == 0, result.output
    assert "wrote deploy.yml" in result.stdout
    text = (project / "deploy.yml").read_text()
    data = YAML(typ="safe").load(text)
    # Only the app, the plugins and the targets are set; every other setting stays a comment.
    assert data == {
        "app_name": "shop",
        "plugins": ["fapistrano.demo"],
        "stage_role_configs": {
            "staging": {"web": {"hosts": []}},
            "production": {"web": {"hosts": []}, "worker": {"hosts": []}},
        },
    }
    lines = text.splitlines()
    assert "# demo_greeting: hello from %(host)s" in lines
    assert "# demo_token: ''" in lines
    assert "# demo_check_crash: false" in lines
    assert "# What the demo plugin writes into GREETING in each release." in lines
    assert any(line.startswith("# API token of the demo service.") and "Secret" in line for line in lines)
    assert "# fapistrano.demo (fap-demo-plugin 0.3)" in lines
    for name in ("user", "keep_releases", "linked_files", "ssh_options", "mask"):
        assert any(line.startswith(f"# {name}: ") for line in lines), name
    assert "# keep_releases: 5" in lines
    assert "# current_path: '%(path)s/current'" in lines
    comments = " ".join(line[2:] for line in lines if line.startswith("# "))  # a long doc wraps over lines
    assert next(s.doc for s in core_settings() if s.name == 'keep_releases') in comments


def test_the_written_file_loads_once_hosts_are_filled_in(tmp_path, fap_run):
    env = install_demo_plugin(tmp_path / "site")
    project = tmp_path / "shop"
    project.mkdir()
    assert fap_run(["init", "-p", "demo"], cwd=project, env=env).exit_code == 0
    deployfile = project / "deploy.yml"
    _fill_hosts(deployfile, "[web1.example.com, web2.example.com]")
    # Uncommenting a line is how a user changes a default.
    text = deployfile.read_text().replace("# keep_releases: 5", "keep_releases: 7")
    deployfile.write_text(text)
    line = text.splitlines().index("keep_releases: 7") + 1

    result = fap_run(["config", "-s", "staging", "-r", "web"], cwd=project, env=env)

    assert result.exit_code == 0, result.output
    rows = config_rows(result.stdout)
    assert rows["keep_releases"] == ("7", f"deploy.yml (deploy.yml:{line})")
    assert rows["demo_greeting"] == ("hello from web1.example.com", "plugin default (fapistrano.demo)")
    assert rows["app_name"][0] == "shop"
    assert rows["path"] == ("/home/deploy/www/shop", "core default")


def test_init_refuses_to_overwrite_a_deploy_file(tmp_path, fap_run):
    existing = tmp_path / "deploy.yml"
    existing.write_text("app_name: mine\n")

    result = fap_run(["init"], cwd=tmp_path)

    error = one_error_line(result)
    assert "deploy.yml: already exists; not overwriting it" in error
    assert result.exit_code == 2  # bad input, like every other refusal of what was asked
    assert existing.read_text() == "app_name: mine\n"


def test_init_with_an_unknown_plugin_names_it_and_writes_nothing(tmp_path, fap_run):
    env = install_demo_plugin(tmp_path / "site")

    result = fap_run(["init", "--plugins", "demo,dmeo"], cwd=tmp_path, env=env)

    error = one_error_line(result)
    assert "unknown plugin 'fapistrano.dmeo'" in error
    assert "did you mean 'fapistrano.demo'" in error
    assert not (tmp_path / "deploy.yml").exists()


def test_init_writes_where_deployfile_says_with_the_given_app_name(tmp_path, fap_run):
    result = fap_run(["init", "-d", "ops/fap.yml", "--app-name", "billing"], cwd=tmp_path)

    assert result.exit_code != 0  # ops/ does not exist: a one-line error, not a traceback
    assert "cannot write" in one_error_line(result)
    (tmp_path / "ops").mkdir()
    result = fap_run(["init", "-d", "ops/fap.yml", "--app-name", "billing"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert YAML(typ="safe").load((tmp_path / "ops" / "fap.yml").read_text())["app_name"] == "billing"
    assert not (tmp_path / "deploy.yml").exists()


BUNDLED = {"fapistrano.git", "fapistrano.virtualenv", "fapistrano.supervisorctl"}


@pytest.mark.skipif(not BUNDLED <= {p.name for p in installed_plugins()}, reason="the bundled plugins are not installed")
def test_init_with_the_bundled_plugins_lists_their_settings_and_loads(tmp_path, fap_run):
    result = fap_run(["init", "--plugins", "git,virtualenv,supervisorctl"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    lines = (tmp_path / "deploy.yml").read_text().splitlines()
    for setting in ("repo", "branch", "git_shallow_clone", "virtualenv_requirements", "supervisor_program", "supervisorctl"):
        assert any(line.startswith(f"# {setting}: ") for line in lines), setting
    _fill_hosts(tmp_path / "deploy.yml", "[web1]")
    config = fap_run(["config", "-s", "staging", "-r", "web"], cwd=tmp_path)
    assert config.exit_code == 0, config.output
    assert config_rows(config.stdout)["branch"] == ("master", "plugin default (fapistrano.git)")


def test_the_template_shows_a_canary_ramp_that_loads_once_uncommented(tmp_path, fap_run):
    project = tmp_path / "shop"
    project.mkdir()
    assert fap_run(["init"], cwd=project).exit_code == 0
    deployfile = project / "deploy.yml"
    _fill_hosts(deployfile, "[web1.example.com, web2.example.com]")
    text = deployfile.read_text()
    assert "# batch_size: [1, 25%, 100%]" in text and "# batch_pause: 60" in text
    deployfile.write_text(text.replace("# batch_size: [1, 25%, 100%]", "batch_size: [1, 25%, 100%]")
                          .replace("# batch_pause: 60", "batch_pause: 60"))

    result = fap_run(["config", "-s", "staging", "-r", "web"], cwd=project)

    assert result.exit_code == 0, result.output
    rows = config_rows(result.stdout)
    assert rows["batch_size"] == ("[1, 25%, 100%]", f"deploy.yml (deploy.yml:{text.splitlines().index('# batch_size: [1, 25%, 100%]   # a canary ramp: one host, then a quarter of them, then the rest') + 1})")
    assert rows["batch_pause"][0] == "60.0"


def test_the_template_says_how_keep_releases_treats_bad_releases(tmp_path, fap_run):
    assert fap_run(["init"], cwd=tmp_path).exit_code == 0
    text = " ".join(line.lstrip("# ") for line in (tmp_path / "deploy.yml").read_text().splitlines())

    assert "releases marked bad (by fap rollback) go first and never push a good one out" in text


def test_the_template_shows_steps_and_a_per_host_setting_that_load_once_uncommented(tmp_path, fap_run):
    assert fap_run(["init"], cwd=tmp_path).exit_code == 0
    deployfile = tmp_path / "deploy.yml"
    lines = deployfile.read_text().splitlines()
    start = lines.index("# hooks:")
    end = next(n for n in range(start, len(lines)) if not lines[n].startswith("#"))
    lines[start:end] = [line[2:] for line in lines[start:end]]  # the block, uncommented as a user would
    text = "\n".join(lines) + "\n"
    example = "      hosts: []              # e.g. [web1.example.com, deploy@web2.example.com:2222]\n"
    per_host = [line for line in lines if line.startswith("      #   - ")]
    assert len(per_host) == 2, per_host
    text = text.replace(example, "      hosts:\n").replace("      # hosts:\n", "")
    for line in per_host:
        text = text.replace(line, "        " + line.removeprefix("      #   "))
    deployfile.write_text(text)

    result = fap_run(["config", "-s", "production", "-r", "web", "--host", "web2.example.com"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    rows = config_rows(result.stdout)
    assert rows["environment"][0] == "{WORKERS: 8}" and "(host web2.example.com)" in rows["environment"][1]
    assert "migrate --noinput (once) (migrates)" in result.stdout
    assert "collectstatic --noinput (parallel 4)" in result.stdout
    assert "(migrates back)" in result.stdout
