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
        self.classes: list[list[str]] = []  # each element's classes
        self.blocks: list[tuple[str, str]] = []  # (language, text) of each highlighted code block
        self._hidden = 0
        self._block: tuple[str, list[str]] | None = None
        self._language = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.classes.extend((value or "").split() for name, value in attrs if name == "class")
        if tag in ("script", "style"):
            self._hidden += 1
        if tag == "a":
            self.links += [value or "" for name, value in attrs if name == "href"]
        self.ids.update(value for name, value in attrs if name == "id" and value)

        languages = [c[len("highlight-"):] for c in self.classes[-1:][0] if c.startswith("highlight-")] if self.classes else []
        if tag == "div" and languages:
            self._language = languages[0]
        if tag == "pre" and self._language:
            self._block = (self._language, [])
            self._language = ""

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._hidden -= 1
        if tag == "pre" and self._block is not None:
            self.blocks.append((self._block[0], "".join(self._block[1])))
            self._block = None

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.text.append(data)
        if self._block is not None:
            self._block[1].append(data)


@pytest.fixture(scope="module")
def html_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built HTML: ``$FAP_DOCS_HTML`` (what ``tox -e docs`` just built), else a build of our own."""
    built = os.environ.get("FAP_DOCS_HTML")
    if built:
        return Path(built)
    from sphinx.cmd.build import build_main

    root = tmp_path_factory.mktemp("html")
    assert build_main(["-W", "-q", "-b", "html", str(DOCS), str(root)]) == 0
    return root


@pytest.fixture(scope="module")
def pages(html_root: Path) -> dict[str, PageText]:
    """Every built page by its path relative to the HTML root."""
    root = html_root
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


#: What Furo's stylesheet writes over a ``.. contents::`` box (its CSS adds the text: no HTML holds it).
FURO_CONTENTS_ERROR = "Adding a table of contents in Furo-based documentation is unnecessary"
FURO_ESCAPE = "this-will-duplicate-information-and-it-is-still-useful-here"


def test_no_page_shows_furos_table_of_contents_error(html_root: Path, pages: dict[str, PageText]) -> None:
    css = "".join(path.read_text(encoding="utf-8") for path in html_root.rglob("_static/**/*.css"))
    assert FURO_CONTENTS_ERROR in css  # the theme still says it: the check below looks for what triggers it

    boxes = {name: n for name, page in pages.items()
             if (n := sum(1 for c in page.classes if "contents" in c and FURO_ESCAPE not in c))}
    assert boxes == {}


def test_only_web_addresses_are_links(pages: dict[str, PageText]) -> None:
    # docutils makes a link of any scheme-like word: file:line, file://, ssh:// in prose.
    odd = {name: sorted({link for link in page.links if re.match(r"[a-z][a-z0-9+.-]*:", link)
                         and not link.startswith(("http://", "https://"))})
           for name, page in pages.items()}
    assert {name: links for name, links in odd.items() if links} == {}


def test_the_hook_reference_intro_reads_as_a_page(pages: dict[str, PageText]) -> None:
    text = " ".join("".join(pages["hooks.html"].text).split())
    assert "Read this file top to bottom" not in text  # the source file's advice, not the page's
    assert text.count("implements any subset of") == 1
    assert "Every hook Fapistrano calls" in text


def test_a_doc_named_in_the_reference_is_a_link(pages: dict[str, PageText]) -> None:
    shown = {name: "docs/migrating.rst" in "".join(page.text) for name, page in pages.items()}
    assert {name for name, there in shown.items() if there} == set()
    assert any(link.startswith("migrating.html") for link in pages["hooks.html"].links)


#: Characters of code a block shows without scrolling at 1280 px: Furo's content column is 46em
#: less 3em of padding each side (640 px), less the block's own padding (28 px), at 13 px monospace
#: (0.6 em a character): 78.
CODE_COLUMNS = 78
#: The pages whose YAML is read line by line, comments included (the examples people copy).
YAML_PAGES = ("deploy-hooks.html", "configuration.html", "plugins.html", "hooks.html", "performance.html")


def test_yaml_examples_fit_the_page_at_1280_px(pages: dict[str, PageText]) -> None:
    long = {(name, line) for name in YAML_PAGES for language, text in pages[name].blocks if language == "yaml"
            for line in text.splitlines() if len(line) > CODE_COLUMNS}
    assert sorted(long) == []
    assert any(language == "yaml" for language, _ in pages["deploy-hooks.html"].blocks)
