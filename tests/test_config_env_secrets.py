"""``%(env:NAME)s``: secrets read from the deployer's environment, masked everywhere.

A local target (``connection: local``): no root, no SSH.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

SECRET = "pw-from-ci-7Xq"
VARIABLE = "FAP_TEST_DB_PASSWORD"


def line_of(path: Path, key: str) -> int:
    """The line of deploy.yml where ``key:`` is set."""
    return next(n for n, line in enumerate(path.read_text().splitlines(), start=1) if line.lstrip().startswith(f"{key}:"))


def write(fap_local: Any, value: str = f"%(env:{VARIABLE})s") -> Path:
    return fap_local.write_deployfile({"db_password": value, "environment": {"DB_PASSWORD": "%(db_password)s"}})


def env(**variables: str) -> dict[str, str]:
    """fap's environment: this one without the test variable, plus ``variables``."""
    environment = {k: v for k, v in os.environ.items() if k != VARIABLE}
    return {**environment, **variables}


def test_a_value_from_the_environment_reaches_the_release_but_no_output(fap_local: Any, fap_run: Any) -> None:
    write(fap_local)
    log = fap_local.root / "events.jsonl"
    result = fap_run(["deploy", "-s", "test", "-v", "--log-json", str(log)], cwd=fap_local.root, env=env(**{VARIABLE: SECRET}))
    assert result.exit_code == 0, result.output
    assert f"DB_PASSWORD={SECRET}\n" in (fap_local.path / "current" / ".env").read_text()
    assert ".env" in result.stdout  # -v shows the command that wrote it: masked
    once = fap_run(["once", "-s", "test", "-v", "--log-json", str(log), "-c", 'echo "the password is $DB_PASSWORD"'],
                   cwd=fap_local.root, env=env(**{VARIABLE: SECRET}))
    assert once.exit_code == 0, once.output
    assert "the password is ***" in once.stdout, once.output
    for text in (result.stdout, result.stderr, once.stdout, once.stderr, log.read_text()):
        assert SECRET not in text


def test_config_masks_it_and_names_the_variable_as_its_origin(fap_local: Any, fap_run: Any) -> None:
    path = write(fap_local)
    result = fap_run(["config", "-s", "test"], cwd=fap_local.root, env=env(**{VARIABLE: SECRET}))
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    row = next(line for line in result.stdout.splitlines() if line.startswith("db_password "))
    assert row.split()[1] == "***"
    assert row.endswith(f"environment ${VARIABLE} (read by deploy.yml:{line_of(path, 'db_password')})")


def test_an_unset_or_empty_variable_is_an_error_naming_it_and_the_line(fap_local: Any, fap_run: Any, assert_error: Any) -> None:
    path = write(fap_local)
    where = f"deploy.yml:{line_of(path, 'db_password')}: db_password"
    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root, env=env())
    assert result.exit_code == 2
    assert_error(result, where, f"environment variable ${VARIABLE} is not set")
    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root, env=env(**{VARIABLE: ""}))
    assert result.exit_code == 2
    assert_error(result, where, f"${VARIABLE} is not set (it is empty)")
    assert not fap_local.releases()


def test_a_default_written_inline_is_used_and_is_no_secret(fap_local: Any, fap_run: Any) -> None:
    write(fap_local, f"%(env:{VARIABLE}:-local-default)s")
    result = fap_run(["deploy", "-s", "test", "-v"], cwd=fap_local.root, env=env())
    assert result.exit_code == 0, result.output
    assert "DB_PASSWORD=local-default\n" in (fap_local.path / "current" / ".env").read_text()
    shown = fap_run(["config", "-s", "test"], cwd=fap_local.root, env=env())
    row = next(line for line in shown.stdout.splitlines() if line.startswith("db_password "))
    assert row.split()[1] == "local-default" and "environment" not in row
    # Set, the variable wins over the default, and is a secret.
    shown = fap_run(["config", "-s", "test"], cwd=fap_local.root, env=env(**{VARIABLE: SECRET}))
    assert SECRET not in shown.output and f"environment ${VARIABLE}" in shown.stdout


def test_a_value_too_short_to_mask_is_an_error_without_the_value(fap_local: Any, fap_run: Any, assert_error: Any) -> None:
    path = write(fap_local)
    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root, env=env(**{VARIABLE: "zq9"}))
    assert result.exit_code == 2
    assert_error(result, f"deploy.yml:{line_of(path, 'db_password')}: db_password", f"${VARIABLE}", "fewer than 4 characters")
    assert "zq9" not in result.output
    assert not fap_local.releases()


def test_a_malformed_reference_is_an_error(fap_local: Any, fap_run: Any, assert_error: Any) -> None:
    write(fap_local, "%(env:9LIVES)s")
    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root, env=env())
    assert result.exit_code == 2
    assert_error(result, "db_password: cannot read %(env:9LIVES)s")
