"""Every setting the plugin reads is declared, described, and listed in the README with its default."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import fapistrano_git

ROOT = Path(__file__).resolve().parents[1]


def test_entry_point_names_the_plugin_module():
    (entry_point,) = [ep for ep in metadata.entry_points(group="fapistrano") if ep.name == "fapistrano.git"]
    assert entry_point.load() is fapistrano_git


def test_every_setting_read_is_declared_documented_and_in_the_readme():
    source = (ROOT / "fapistrano_git" / "__init__.py").read_text()
    read = set(re.findall(r'config\["(\w+)"\]', source)) - {"releases_path", "path", "current_path", "release_path"}
    settings = fapistrano_git.fap_settings()
    defaults = {s.name: s.default for s in settings}
    docs = {s.name: s.doc for s in settings}
    assert read == set(defaults), read ^ set(defaults)
    assert set(docs) == set(defaults)
    assert all(docs[name].strip() for name in docs)
    readme = (ROOT / "README.md").read_text()
    for name, default in defaults.items():
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, f"{name} is missing from the README's settings table"
        if default not in (None, ""):
            assert f"`{default}`" in row, f"README does not give {name}'s default {default!r}"
