"""The built HTML docs can be copied from: options keep their ``--``, addresses stay text.

Sphinx's "smart quotes" turn ``--keep-releases`` into ``–keep-releases`` (an
en dash) wherever the text is not a literal, and docutils turns ``user@host``
into a ``mailto:`` link; a user who copies either gets a command that fails.
These tests build the docs (or read ``$FAP_DOCS_HTML``, the build ``tox -e
docs`` just made) and look at every page's text as a browser shows it.
"""

from __future__ import annotations

import os
import re
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
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden += 1
        if tag == "a":
            self.links += [value or "" for name, value in attrs if name == "href"]

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
