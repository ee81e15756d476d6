"""``fap config``: every resolved setting, its value (secrets masked) and where it came from.

No connection is made: the hosts below do not exist.
"""

from __future__ import annotations

from test_commands_support import config_rows, install_demo_plugin, one_error_line

DEPLOY_YML = """\
app_name: shop
keep_releases: 4
plugins: [fapistrano.demo]
db_password: s3cr3t-pw
mask: [db_password]
demo_token: tok-XYZ123
source_url: https://bob:hunter22@files.example.com/shop.tgz
environment:
  DATABASE_URL: postgres://shop:%(db_password)s@db.example.com/shop
stage_role_configs:
  production:
    web:
      hosts: [web1.invalid, web2.invalid]
      linked_dirs: [log]
    worker:
      hosts: [worker1.invalid]
"""


def _project(tmp_path):
    env = install_demo_plugin(tmp_path / "site")
    (tmp_path / "deploy.yml").write_text(DEPLOY_YML)
    return env


def test_config_says_where_every_value_came_from(tmp_path, fap_run):
    env = _project(tmp_path)

    result = fap_run(["config", "-s", "production", "-r", "web", "--max-parallel", "3"], cwd=tmp_path, env=env)

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# production/web on web1.invalid")
    rows = config_rows(result.stdout)
    assert rows["app_name"] == ("shop", "deploy.yml (deploy.yml:1)")
    assert rows["keep_releases"] == ("4", "deploy.yml (deploy.yml:2)")
    assert rows["linked_dirs"] == ("[log]", "stage/role block (deploy.yml:14)")
    assert rows["hosts"] == ("[web1.invalid, web2.invalid]", "stage/role block (deploy.yml:13)")
    assert rows["max_parallel"] == ("3", "command line")
    assert rows["user"] == ("deploy", "core default")
    assert rows["current_path"] == ("/home/deploy/www/shop/current", "core default")
    # A plugin default, interpolated for this host, names its plugin.
    assert rows["demo_greeting"] == ("hello from web1.invalid", "plugin default (fapistrano.demo)")
    assert rows["demo_check_crash"] == ("false", "plugin default (fapistrano.demo)")
    # Every setting is there, the run's own names (stage, role, host, release) are not.
    assert {"path", "shared_path", "ssh_connect_timeout", "shell_command", "deploy_plugins"} <= set(rows)
    assert not {"stage", "role", "host", "release"} & set(rows)


def test_config_masks_secrets_from_mask_plugins_and_urls(tmp_path, fap_run):
    env = _project(tmp_path)

    result = fap_run(["config", "-s", "production", "-r", "web"], cwd=tmp_path, env=env)

    assert result.exit_code == 0, result.output
    for secret in ("s3cr3t-pw", "tok-XYZ123", "hunter22"):
        assert secret not in result.output
    rows = config_rows(result.stdout)
    assert rows["db_password"] == ("***", "deploy.yml (deploy.yml:4)")  # listed in mask:
    assert rows["demo_token"] == ("***", "deploy.yml (deploy.yml:6)")  # the plugin's fap_secret_settings
    assert rows["source_url"][0] == "https://bob:***@files.example.com/shop.tgz"  # a password inside a URL
    assert rows["environment"][0] == "{DATABASE_URL: postgres://shop:***@db.example.com/shop}"


def test_config_resolves_for_the_host_asked_for(tmp_path, fap_run):
    env = _project(tmp_path)

    result = fap_run(["config", "-s", "production", "-r", "web", "--host", "web2.invalid"], cwd=tmp_path, env=env)

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# production/web on web2.invalid")
    assert config_rows(result.stdout)["demo_greeting"][0] == "hello from web2.invalid"

    wrong = fap_run(["config", "-s", "production", "-r", "web", "--host", "web9"], cwd=tmp_path, env=env)
    assert "--host web9: not a host of the selected targets" in one_error_line(wrong)


def test_config_of_a_whole_stage_shows_each_role(tmp_path, fap_run):
    env = _project(tmp_path)

    result = fap_run(["config", "-s", "production"], cwd=tmp_path, env=env)

    assert result.exit_code == 0, result.output
    headers = [line for line in result.stdout.splitlines() if line.startswith("# ")]
    assert [h.split(":")[0] for h in headers] == ["# production/web on web1.invalid", "# production/worker on worker1.invalid"]


def test_config_errors_are_one_line(tmp_path, tmp_path_factory, fap_run):
    env = _project(tmp_path)

    unknown = fap_run(["config", "-s", "production", "-r", "web", "--keep-relases", "2"], cwd=tmp_path, env=env)
    assert "unknown setting --keep-relases (did you mean '--keep-releases'?)" in one_error_line(unknown)

    # A subdirectory of the project finds ../deploy.yml; a directory outside it has none.
    missing = fap_run(["config", "-s", "production"], cwd=tmp_path_factory.mktemp("elsewhere"))
    assert "no deploy file here" in one_error_line(missing)


def test_config_runs_before_any_host_is_listed(tmp_path, fap_run):
    # A new project: the settings are worth checking before the servers exist.
    (tmp_path / "deploy.yml").write_text("app_name: shop\nstage_role_configs:\n  production:\n    web:\n      hosts: []\n")

    result = fap_run(["config", "-s", "production"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# production/web on no host yet")
    rows = config_rows(result.stdout)
    assert rows["hosts"] == ("[]", "stage/role block (deploy.yml:5)")
    assert rows["current_path"] == ("/home/deploy/www/shop/current", "core default")
    # Any command that would connect still refuses it.
    assert "no hosts" in one_error_line(fap_run(["deploy", "-s", "production"], cwd=tmp_path))
