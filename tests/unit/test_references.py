"""Every reference the repository cites is inside it: ``docs/reference/<file>.md#<anchor>`` resolves to a file and
a heading, and no citation points at files outside the repository (``shared/reference``) or at bare ``§N``
sections of them."""

import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference"
#: Where citations live: the package, templates, playbooks, tests (golden outputs included), docs, README.
SCANNED = ("reproducer", "templates", "playbooks", "tests", "docs", "README.md")
CITATION = re.compile(r"docs/reference/(?P<file>[\w.-]+\.md)(?:#(?P<anchor>[\w-]+))?")
LOCAL_LINK = re.compile(r"\]\((?P<file>[\w.-]+\.md)(?:#(?P<anchor>[\w-]+))?\)")
OUTSIDE = re.compile(r"shared/reference|§\s*\d")
HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*#*\s*$")
_MAX_BYTES = 4_000_000


def slug(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, each space a hyphen."""
    text = re.sub(r"[`*]", "", title.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """The anchors of a Markdown file's headings (fenced code skipped; repeats get ``-1``, ``-2``...)."""
    counts: dict[str, int] = {}
    found = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        heading = None if fenced else HEADING.match(line)
        if heading:
            base = slug(heading["title"])
            repeat = counts.get(base, 0)
            found.add(f"{base}-{repeat}" if repeat else base)
            counts[base] = repeat + 1
    return frozenset(found)


def scanned_files() -> list[Path]:
    """Text files of the scanned trees, this test module excepted (it names the forbidden forms)."""
    files = []
    for name in SCANNED:
        top = ROOT / name
        candidates = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for path in candidates:
            if path == Path(__file__).resolve() or "__pycache__" in path.parts or path.stat().st_size > _MAX_BYTES:
                continue
            try:
                path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            files.append(path)
    return files


def citations() -> list[tuple[str, int, str, str | None]]:
    """Every ``docs/reference`` citation: (path, line, file, anchor)."""
    found = []
    for path in scanned_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in CITATION.finditer(line):
                found.append((str(path.relative_to(ROOT)), number, match["file"], match["anchor"]))
    return found


def unresolved(file: str, anchor: str | None, base: Path = REFERENCE) -> str | None:
    """Why a citation does not resolve, or None when it does."""
    target = base / file
    if not target.is_file():
        return f"no file {target.relative_to(ROOT)}"
    if anchor is not None and anchor not in anchors(target):
        return f"no heading #{anchor} in {target.relative_to(ROOT)}"
    return None


def test_slug_follows_github_rules():
    assert slug("Signature") == "signature"
    assert slug("Plans and backups") == "plans-and-backups"
    assert slug("Redis and Valkey") == "redis-and-valkey"
    assert slug("`engine_configs` (Memorystore)") == "engine_configs-memorystore"
    assert slug("Baseline A1") == "baseline-a1"


def test_anchor_reader_sees_headings_not_code(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## Part\n\n```sh\n# not a heading\n```\n\n## Part\n", encoding="utf-8")
    assert anchors(page) == {"title", "part", "part-1"}


def test_the_code_cites_the_references():
    cited = {(path, file) for path, _line, file, _anchor in citations()}
    assert ("reproducer/catalog.py", "ovh-api.md") in cited
    assert ("reproducer/sandbox/ovh_api.py", "ovh-api.md") in cited
    assert ("reproducer/data/resp.py", "performance.md") in cited


def test_every_reference_citation_resolves():
    broken = [
        f"{path}:{line}: docs/reference/{file}{'#' + anchor if anchor else ''}: {why}"
        for path, line, file, anchor in citations()
        if (why := unresolved(file, anchor)) is not None
    ]
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("page", sorted(REFERENCE.glob("*.md")), ids=lambda p: p.name)
def test_links_between_reference_pages_resolve(page):
    broken = [
        f"{page.name}: {match[0]}: {why}"
        for match in LOCAL_LINK.finditer(page.read_text(encoding="utf-8"))
        if (why := unresolved(match["file"], match["anchor"])) is not None
    ]
    assert not broken, "\n".join(broken)


def test_no_citation_points_outside_the_repository():
    outside = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()[:140]}"
        for path in scanned_files()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not outside, "cite docs/reference/<file>.md#<anchor> instead:\n" + "\n".join(outside)
