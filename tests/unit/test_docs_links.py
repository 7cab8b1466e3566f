"""Every relative link of the README, CONTRIBUTING.md and docs/*.md points at a file that exists, and every
`#anchor` at a heading of the page it names: the reference moved out of the README must stay reachable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`[^`]*`")
# [text](target) and ![alt](target), with an optional "title"
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _prose_lines(text: str) -> list[str]:
    """The page's lines outside fenced code blocks (a `# comment` in a shell block is not a heading)."""
    lines, in_fence = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            lines.append(line)
    return lines


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: link markup reduced to its text, lower case, punctuation dropped, spaces
    turned into hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of the page's headings; a repeated heading gets `-1`, `-2`, ... as on GitHub."""
    found: set[str] = set()
    repeats: dict[str, int] = {}
    for line in _prose_lines(page.read_text()):
        match = HEADING.match(line)
        if match:
            slug = _slug(match.group(1))
            found.add(f"{slug}-{repeats[slug]}" if slug in repeats else slug)
            repeats[slug] = repeats.get(slug, 0) + 1
    return found


def broken_links(page: Path, root: Path) -> list[str]:
    """Each relative link of `page` whose file does not exist under `root`, or whose anchor names no heading."""
    broken = []
    for line in _prose_lines(page.read_text()):
        for target in LINK.findall(INLINE_CODE.sub("", line)):
            if SCHEME.match(target):
                continue  # http(s), mailto: not checked here
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.is_relative_to(root.resolve()):
                broken.append(f"{target}: outside the repository")
            elif not resolved.exists():
                broken.append(f"{target}: no such file")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{target}: no heading #{anchor} in {resolved.name}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page, REPO) == []


def test_the_readme_links_each_docs_page() -> None:
    readme = REPO / "README.md"
    linked = {(readme.parent / target.partition("#")[0]).resolve() for target in LINK.findall(readme.read_text())}
    assert [page.name for page in PAGES if page.parent.name == "docs" and page.resolve() not in linked] == []


def test_a_missing_file_and_a_missing_heading_are_reported(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "other.md").write_text("# Other\n\n## The studio (in the browser)\n\n## Faults: what\n")
    (tmp_path / "elsewhere.md").write_text("outside the repository")
    page = root / "README.md"
    page.write_text(
        "# Title\n\n"
        "[ok](docs/other.md#the-studio-in-the-browser), [ok](#title), ![ok](docs/other.md), "
        "[ok](https://example.com/nowhere.md), `[code](nowhere.md)`\n\n"
        "```sh\n# not a heading\n[in a code block](nowhere.md)\n```\n\n"
        "[gone](docs/gone.md), [bad anchor](docs/other.md#faults), [no such section](#not-a-heading), "
        "[outside](../elsewhere.md)\n"
    )

    assert broken_links(page, root) == [
        "docs/gone.md: no such file",
        "docs/other.md#faults: no heading #faults in other.md",
        "#not-a-heading: no heading #not-a-heading in README.md",
        "../elsewhere.md: outside the repository",
    ]


def test_a_repeated_heading_gets_a_numbered_anchor(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n## Usage\n\n### `make run` → Usage\n\n## Usage\n\n## Usage\n")
    assert anchors(page) == {"page", "usage", "make-run--usage", "usage-1", "usage-2"}
