"""The built HTML docs can be copied from, and show every member the API pages list.

Sphinx's "smart quotes" turn ``--keep-releases`` into ``–keep-releases`` (an
en dash) wherever the text is not a literal, and docutils turns ``user@host``
into a ``mailto:`` link; a user who copies either gets a command that fails.
An autodoc ``:members:`` list can also come out empty with the build still
green (a setting in conf.py once did that to every API page).

These tests build the docs (or read ``$FAP_DOCS_HTML``, the build ``tox -e
docs`` just made) and look at every page's text as a browser shows it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

pytest.importorskip("sphinx", reason="building the docs needs Sphinx and its theme: tox -e docs runs these tests")

DOCS = Path(__file__).resolve().parents[1] / "docs"

#: An en or em dash glued to a word: ``–keep-releases``, ``–role`` (prose dashes stand between spaces).
DASHED_OPTION = re.compile(r"(?<![\w\u2013\u2014])[\u2013\u2014]{1,2}[A-Za-z][\w-]*")


class PageText(HTMLParser):
    """A page's visible text and its links."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden += 1
        if tag == "a":
            self.links += [value or "" for name, value in attrs if name == "href"]
        self.ids.update(value for name, value in attrs if name == "id" and value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.text.append(data)


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PageText]:
    """Every built page by its path relative to the HTML root."""
    built = os.environ.get("FAP_DOCS_HTML")
    if built:
        root = Path(built)
    else:
        from sphinx.cmd.build import build_main

        root = tmp_path_factory.mktemp("html")
        assert build_main(["-W", "-q", "-b", "html", str(DOCS), str(root)]) == 0
    found = {}
    for path in sorted(root.rglob("*.html")):
        if "_static" in path.parts or "_modules" in path.parts:
            continue
        page = PageText()
        page.feed(path.read_text(encoding="utf-8"))
        found[str(path.relative_to(root))] = page
    assert "cli.html" in found and "quickstart.html" in found, sorted(found)
    return found


def test_options_keep_their_two_hyphens(pages: dict[str, PageText]) -> None:
    dashed = {name: sorted(set(DASHED_OPTION.findall("".join(page.text)))) for name, page in pages.items()}

    assert {name: words for name, words in dashed.items() if words} == {}
    # The options are there, with their hyphens: the check above looked at the right text.
    assert "--keep-releases" in "".join(pages["cli.html"].text)
    assert "--no-index --find-links" in "".join(pages["configuration.html"].text)


def test_user_at_host_is_text_not_a_mail_link(pages: dict[str, PageText]) -> None:
    mail_links = {name: [link for link in page.links if link.startswith("mailto:")] for name, page in pages.items()}

    assert {name: links for name, links in mail_links.items() if links} == {}
    assert "deploy@app1.example.com" in "".join(pages["quickstart.html"].text)


#: An autodoc directive and the ``:members:`` list under it (which may go on over indented lines).
AUTODOC = re.compile(
    r"^\.\. auto(?:class|exception|module)::\s*(?P<name>\S+)\n(?P<options>(?:[ \t]+\S.*\n)*)", re.MULTILINE
)


def listed_members() -> Iterator[tuple[str, str]]:
    """``(page, object.member)`` for every member an API page's autodoc directive lists."""
    for source in sorted(DOCS.glob("*.rst")):
        for directive in AUTODOC.finditer(source.read_text(encoding="utf-8")):
            options = re.split(r"\n(?=[ \t]+:)", directive["options"])
            for option in options:
                option = option.strip()
                if option.startswith(":members:"):
                    for member in option[len(":members:"):].replace("\n", " ").split(","):
                        if member.strip():
                            yield f"{source.stem}.html", f"{directive['name']}.{member.strip()}"


#: What a plugin author must find on the API pages, whatever the directives say.
PUBLIC_API = {
    "hooks.html": [
        *(f"fapistrano.context.Context.{name}" for name in (
            "run", "test", "exists", "log", "warn", "mask", "config", "host", "release", "release_path",
            "previous_release", "current_release", "releases", "unfinished_releases", "locked", "state",
            "run_state", "project_dir", "report",
        )),
        *(f"fapistrano.Run.{name}" for name in ("command", "release", "hosts", "config", "state", "reports", "project_dir",
                                                 "hook", "local")),
        "fapistrano.Setting", "fapistrano.CommandFailed", "fapistrano.CommandFailed.status", "fapistrano.FapError",
        "fapistrano.ConfigError",
    ],
    "testing.html": [
        "fapistrano.testing.run_fap", "fapistrano.testing.FapResult", "fapistrano.testing.FapResult.exit_code",
        "fapistrano.testing.LocalTarget", "fapistrano.testing.LocalTarget.current",
        "fapistrano.testing.Fleet", "fapistrano.testing.Fleet.current", "fapistrano.testing.Fleet.releases",
        "fapistrano.testing.Fleet.hosts", "fapistrano.testing.LocalTarget.root", "fapistrano.testing.start_fap",
        "fapistrano.testing.FapProcess.wait_until",
    ],
}


def test_every_member_an_api_page_lists_is_rendered(pages: dict[str, PageText]) -> None:
    listed = list(listed_members())
    assert ("hooks.html", "fapistrano.context.Context.run") in listed  # the directives were read

    assert [(page, member) for page, member in listed if member not in pages[page].ids] == []


def test_the_public_api_is_on_its_pages(pages: dict[str, PageText]) -> None:
    missing = {page: [name for name in names if name not in pages[page].ids] for page, names in PUBLIC_API.items()}

    assert {page: names for page, names in missing.items() if names} == {}
