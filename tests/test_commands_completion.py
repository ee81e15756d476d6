"""Shell completion (click's mechanism), and the lines docs/cli-completion.md gives for each shell."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_commands_support import install_demo_plugin

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli-completion.md"
DEPLOY_YML = """\
app_name: shop
stage_role_configs:
  staging:
    web: {hosts: [s1]}
  production:
    web: {hosts: [p1]}
    worker: {hosts: [p2]}
"""


def _documented(shell: str) -> list[str]:
    """The first code block of the doc's section for ``shell``: the lines a user pastes."""
    section = DOC.read_text().split(f"\n## {shell}", 1)[1]
    return re.search(r"```\w*\n(.*?)```", section, re.S).group(1).strip().splitlines()


def _complete(fap_run, cwd, words: str, env=None) -> list[str]:
    cword = len(words.split(" ")) - 1
    result = fap_run([], cwd=cwd, env={"COMP_WORDS": words, "COMP_CWORD": str(cword), "_FAP_COMPLETE": "bash_complete", **(env or {})})
    assert result.exit_code == 0 and not result.stderr, result.output
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]


def test_commands_stages_and_roles_complete(tmp_path, fap_run):
    (tmp_path / "deploy.yml").write_text(DEPLOY_YML)

    assert _complete(fap_run, tmp_path, "fap rel") == ["releases"]
    assert _complete(fap_run, tmp_path, "fap disc") == ["disconnect"]
    assert _complete(fap_run, tmp_path, "fap hist") == ["history"]
    assert _complete(fap_run, tmp_path, "fap history -s pro") == ["production"]
    assert "--retry-failed" in _complete(fap_run, tmp_path, "fap deploy --ret")
    assert _complete(fap_run, tmp_path, "fap deploy -s ") == ["staging", "production"]
    assert _complete(fap_run, tmp_path, "fap check --stage pro") == ["production"]
    assert _complete(fap_run, tmp_path, "fap deploy -s production -r ") == ["web", "worker"]
    assert _complete(fap_run, tmp_path, "fap deploy -s staging -r ") == ["web"]
    assert _complete(fap_run, tmp_path, "fap releases -r w") == ["web", "worker"]


def test_stages_come_from_the_deploy_file_the_command_would_use(tmp_path, fap_run):
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "fap.yml").write_text(DEPLOY_YML.replace("staging", "qa"))

    assert _complete(fap_run, tmp_path, "fap -d ops/fap.yml deploy -s ") == ["qa", "production"]
    assert _complete(fap_run, tmp_path, "fap deploy -d ops/fap.yml -s ") == ["qa", "production"]
    assert _complete(fap_run, tmp_path, "fap deploy -s ", env={"FAP_APP": "shop", "SHOP_DEPLOYFILE": "ops/fap.yml"}) == ["qa", "production"]
    # No deploy file, or a broken one: no candidates, and nothing printed into the prompt.
    assert _complete(fap_run, tmp_path, "fap deploy -s ") == []
    (tmp_path / "deploy.yml").write_text("stage_role_configs: [oops\n")
    assert _complete(fap_run, tmp_path, "fap deploy -s ") == []


def test_init_completes_installed_plugin_names(tmp_path, fap_run):
    env = install_demo_plugin(tmp_path / "site")

    assert "demo" in _complete(fap_run, tmp_path, "fap init --plugins ", env=env)
    assert _complete(fap_run, tmp_path, "fap init -p git,de", env=env) == ["git,demo"]


def _require(*programs: str) -> None:
    """Skip without ``programs`` on PATH; fail under ``CI=true``, where .ci/run installs them."""
    missing = [program for program in programs if not shutil.which(program)]
    if missing:
        reason = f"needs {' and '.join(missing)} on PATH"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the test {reason}")
        pytest.skip(reason)


def test_the_documented_bash_line_completes_in_bash(tmp_path):
    _require("fap", "bash")
    (tmp_path / "deploy.yml").write_text(DEPLOY_YML)
    [line] = _documented("bash")
    script = f'{line}\nCOMP_WORDS=(fap deploy -s pro); COMP_CWORD=3; _fap_completion fap; printf "%s\\n" "${{COMPREPLY[@]}}"\n'

    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, check=False)

    assert result.returncode == 0 and not result.stderr, result.stderr
    assert result.stdout.split() == ["production"]


def test_the_documented_fish_lines_complete_in_fish(tmp_path):
    _require("fap", "fish")
    (tmp_path / "deploy.yml").write_text(DEPLOY_YML)
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    subprocess.run(["sh", "-c", "\n".join(_documented("fish"))], cwd=tmp_path, env=env, check=True)

    result = subprocess.run(["fish", "-c", "complete -C 'fap deploy -s '; complete -C 'fap rel'"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, check=False)

    assert result.returncode == 0 and not result.stderr, result.stderr
    # fish shortens long descriptions differently from version to version: compare the completions, not the help.
    assert sorted(line.split("\t")[0] for line in result.stdout.splitlines()) == ["production", "releases", "staging"]


def test_the_documented_zsh_line_loads_in_zsh(tmp_path):
    _require("fap", "zsh")
    [line] = _documented("zsh")
    script = f"autoload -Uz compinit && compinit -u -d {tmp_path}/zcompdump\n{line}\nprint -r -- ${{_comps[fap]}}"

    result = subprocess.run(["zsh", "-c", script], cwd=tmp_path, capture_output=True, text=True, check=False)

    assert result.returncode == 0 and not result.stderr, result.stderr
    assert result.stdout.strip() == "_fap_completion"


def test_lock_and_wait_lock_complete(tmp_path, fap_run):
    (tmp_path / "deploy.yml").write_text(DEPLOY_YML)

    assert _complete(fap_run, tmp_path, "fap loc") == ["lock"]
    assert _complete(fap_run, tmp_path, "fap lock -s ") == ["staging", "production"]
    assert _complete(fap_run, tmp_path, "fap lock -s production -r w") == ["web", "worker"]
    for command in ("deploy", "rollback", "restart"):
        assert _complete(fap_run, tmp_path, f"fap {command} --wait") == ["--wait-lock"]
    assert _complete(fap_run, tmp_path, "fap check --wait") == []


def test_pending_and_promote_complete(tmp_path, fap_run):
    (tmp_path / "deploy.yml").write_text(DEPLOY_YML)

    assert _complete(fap_run, tmp_path, "fap pen") == ["pending"]
    assert _complete(fap_run, tmp_path, "fap prom") == ["promote"]
    assert _complete(fap_run, tmp_path, "fap pending -s ") == ["staging", "production"]
    assert _complete(fap_run, tmp_path, "fap pending -s staging --js") == ["--json"]
    assert _complete(fap_run, tmp_path, "fap promote -s production --from ") == ["staging", "production"]
    assert _complete(fap_run, tmp_path, "fap promote -s production --from st") == ["staging"]
    assert _complete(fap_run, tmp_path, "fap deploy --if") == ["--if-changed"]
