"""What users read names things they can find: no tracker numbers, no values that are not the defaults they claim."""

from __future__ import annotations

import re
from pathlib import Path

from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[1]

#: Everything a user reads or runs: the docs, the READMEs, the code (its printed output), the benchmark, the examples.
READ_BY_USERS = ("README.md", "docs", "bench", "examples", "fapistrano", "fapistrano_plugins")
TEXT_SUFFIXES = {".md", ".rst", ".py", ".yml", ".yaml", ".cfg", ".toml", ".txt", ".ini", ".conf"}
SKIPPED_DIRS = {"_build", "__pycache__", ".venv", "build", "dist"}


def user_facing_files() -> list[Path]:
    found = []
    for top in READ_BY_USERS:
        path = REPO / top
        candidates = [path] if path.is_file() else path.rglob("*")
        for file in candidates:
            relative = file.relative_to(REPO).parts
            if file.is_file() and file.suffix in TEXT_SUFFIXES and not SKIPPED_DIRS.intersection(relative):
                found.append(file)
    return found


def test_no_text_refers_to_an_issue_by_number():
    """Users have no access to the project's tracker: "issue 6" tells them nothing; name the thing."""
    files = user_facing_files()
    assert any(file.name == "deploy_bench.py" for file in files) and len(files) > 50

    mentions = [
        f"{file.relative_to(REPO)}:{number}: {line.strip()}"
        for file in files
        for number, line in enumerate(file.read_text(errors="replace").splitlines(), start=1)
        if re.search(r"\bissues? #?\d+", line, re.IGNORECASE)
    ]

    assert mentions == []


def test_the_quick_starts_trimmed_deploy_file_shows_the_defaults_it_keeps():
    from fapistrano.config import CORE_SETTINGS

    from fapistrano_git import fap_settings as git_settings

    text = (REPO / "docs" / "quickstart.rst").read_text()
    block = re.search(r"   \.\. code-block:: yaml\n      :caption: deploy.yml\n\n((?:      .*\n|\n)+)", text)
    assert block, "docs/quickstart.rst lost its trimmed deploy.yml"
    shown = YAML(typ="safe").load("\n".join(line[6:] for line in block.group(1).splitlines()))

    assert shown["branch"] == next(s.default for s in git_settings() if s.name == "branch")
    assert shown["keep_releases"] == CORE_SETTINGS["keep_releases"][0]
