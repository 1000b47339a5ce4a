"""The documentation site: it builds offline with ``mkdocs build --strict``, every page and every anchor the
source tree points at exists, every detector has its section, the examples run, and no page loads an asset
from the network."""

from __future__ import annotations

import doctest
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

import unseen

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(p.stem for p in DOCS.glob("*.md"))
#: Where the code and the README point readers at the docs: ``docs/<page>.md`` or ``docs/<page>.md#<anchor>``.
REFERENCE = re.compile(r"docs/([A-Za-z0-9_-]+)\.md(?:#([A-Za-z0-9_-]+))?")
SOURCES = [
    *(ROOT / "src").rglob("*.py"),
    *(ROOT / "tests").rglob("*.py"),
    *(ROOT / "benchmarks").rglob("*.py"),
    ROOT / "README.md",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
    pytest.importorskip("material", reason="the docs extra is not installed: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, f"mkdocs build --strict failed:\n{run.stdout}\n{run.stderr}"
    return out


def _ids(html: str) -> set[str]:
    return set(re.findall(r'\sid="([^"]+)"', html))


def _page(site: Path, page: str) -> str:
    return (site / f"{page}.html").read_text(encoding="utf-8")


def test_every_page_is_built_and_in_the_nav(site):
    assert {
        "index",
        "quickstart",
        "methods",
        "metrics",
        "decisions",
        "architecture",
        "contract",
        "adding-a-detector",
    } <= set(PAGES)
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in PAGES:
        assert (site / f"{page}.html").is_file(), page
        assert f"{page}.md" in nav, f"docs/{page}.md is not in the nav of mkdocs.yml"


def test_every_detector_has_its_section(site):
    ids = _ids(_page(site, "methods"))
    missing = sorted(set(unseen.registry.builtin_detectors()) - ids)
    assert not missing, f"docs/methods.md has no section with the anchor {{#name}} for {missing}"
    assert {"odin", "mahalanobis-preprocessed", "conventions"} <= ids


def _references() -> list[tuple[str, int, str, str | None]]:
    found = []
    for path in SOURCES:
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for page, anchor in REFERENCE.findall(line):
                found.append((f"{path.relative_to(ROOT)}:{lineno}", lineno, page, anchor or None))
    return found


def test_every_reference_in_the_source_tree_exists(site):
    refs = _references()
    assert len(refs) >= 20  # the detectors, metrics, decisions and tests point at the docs
    for where, _, page, anchor in refs:
        assert (DOCS / f"{page}.md").is_file(), f"{where} points at docs/{page}.md, which does not exist"
        if anchor:
            assert anchor in _ids(_page(site, page)), f"{where} points at docs/{page}.md#{anchor}: no such anchor"


def test_no_reference_to_notes_users_cannot_read():
    stale = [
        f"{path.relative_to(ROOT)}:{i}"
        for path in SOURCES
        if path.name != "test_docs.py"
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"\b(METHODS|DESIGN|PEERS|DATA)\.md\b", line)
    ]
    assert not stale, f"these point at the team's notes, which are not shipped; point them at docs/ instead: {stale}"


class _Assets(HTMLParser):
    """Every URL a page *loads* (scripts, styles, images, frames, media), not the links a reader may follow."""

    LOADING = {
        "script": "src",
        "img": "src",
        "iframe": "src",
        "audio": "src",
        "video": "src",
        "source": "src",
        "embed": "src",
        "track": "src",
        "object": "data",
        "link": "href",
    }

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        key = self.LOADING.get(tag)
        if key and attrs.get(key):
            self.urls.append(attrs[key])
        if tag in ("img", "source") and attrs.get("srcset"):
            self.urls.append(attrs["srcset"])
        if attrs.get("style"):
            self.urls.extend(re.findall(r"url\(\s*['\"]?([^'\")]+)", attrs["style"]))


def _external(url: str) -> bool:
    return bool(re.match(r"\s*(https?:)?//", url))


def test_the_site_loads_nothing_from_the_network(site):
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= len(PAGES)
    for page in pages:
        parser = _Assets()
        parser.feed(page.read_text(encoding="utf-8"))
        assert parser.urls, f"{page.name}: found no assets at all; the check is broken"
        external = [u for u in parser.urls if _external(u)]
        assert not external, f"{page.relative_to(site)} loads {external}"
    for css in site.rglob("*.css"):
        text = css.read_text(encoding="utf-8")
        imports = re.findall(r"@import\s+(?:url\()?\s*['\"]?([^'\")\s;]+)", text)
        urls = re.findall(r"url\(\s*['\"]?((?:https?:)?//[^'\")]+)", text)
        assert not [u for u in imports if _external(u)] and not urls, f"{css.name} loads {imports + urls}"


def _python_blocks(text: str) -> list[tuple[int, str]]:
    """The fenced ```python blocks of a Markdown page that hold doctest examples, with their first line number."""
    blocks = []
    for m in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
        if ">>>" in m.group(1):
            blocks.append((text[: m.start()].count("\n") + 2, m.group(1)))
    return blocks


EXAMPLE_PAGES = [p for p in PAGES if _python_blocks((DOCS / f"{p}.md").read_text(encoding="utf-8"))]


def test_the_pages_have_examples():
    assert {"index", "metrics", "decisions", "contract", "adding-a-detector"} <= set(EXAMPLE_PAGES)


@pytest.mark.parametrize("page", EXAMPLE_PAGES)
def test_the_examples_on_each_page_run(page, tmp_path, monkeypatch):
    blocks = _python_blocks((DOCS / f"{page}.md").read_text(encoding="utf-8"))
    monkeypatch.chdir(tmp_path)  # examples that save files write here
    # The blocks of one page share their names, as a reader's session would: one doctest per page.
    text = "\n".join(code for _, code in blocks)
    test = doctest.DocTestParser().get_doctest(text, {}, f"docs/{page}.md", f"docs/{page}.md", blocks[0][0])
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test, out=lambda s: print(s, end=""))
    assert runner.failures == 0, f"{runner.failures} example(s) in docs/{page}.md failed (see the output above)"
    assert runner.tries > 0


def test_the_quickstart_page_shows_the_tested_readme_code():
    """tests/test_readme.py runs the README's quickstart and PyTorch story; the page shows them verbatim."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    page = (DOCS / "quickstart.md").read_text(encoding="utf-8")
    quick = re.search(r"## Quickstart\n\n```python\n(.*?)```", readme, re.S).group(1)
    story = re.search(r"### From your PyTorch model.*?\n```python\n(.*?)```", readme, re.S).group(1)
    assert quick in page and story in page
