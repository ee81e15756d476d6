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
    from fapistrano.plugins import core_settings

    from fapistrano_git import fap_settings as git_settings

    text = (REPO / "docs" / "quickstart.rst").read_text()
    block = re.search(r"   \.\. code-block:: yaml\n      :caption: deploy.yml\n\n((?:      .*\n|\n)+)", text)
    assert block, "docs/quickstart.rst lost its trimmed deploy.yml"
    shown = YAML(typ="safe").load("\n".join(line[6:] for line in block.group(1).splitlines()))

    assert shown["branch"] == next(s.default for s in git_settings() if s.name == "branch")
    assert shown["keep_releases"] == next(s.default for s in core_settings() if s.name == "keep_releases")


def _readme_sections() -> dict[str, str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    parts = re.split(r"^## (.+)\n", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_the_readme_starts_with_the_newcomers_path_and_leaves_the_figures_to_the_docs():
    sections = _readme_sections()
    titles = list(sections)
    assert titles[0] == "Try it (no server needed)" and titles[1] == "To a real server", titles
    assert titles.index("Run the tests") > titles.index("To a real server")
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert "|---|" not in text  # the benchmark tables are in docs/performance.rst
    performance = sections["Performance"]
    assert len([line for line in performance.splitlines() if line.strip()]) <= 4, performance
    assert "docs/performance.rst" in performance
    page = (REPO / "docs" / "performance.rst").read_text(encoding="utf-8")
    for figure in ("fap / deploy floor", "scp floor", "python bench/deploy_bench.py --hosts 20 --runs 7 --capistrano"):
        assert figure in page, figure


def test_the_readme_installs_tox_before_running_it():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    commands = [line.strip() for line in re.findall(r"```sh\n(.*?)```", text, re.DOTALL) for line in line.splitlines()]
    assert "python3 -m pip install tox" in commands
    assert commands.index("python3 -m pip install tox") < commands.index("tox")
