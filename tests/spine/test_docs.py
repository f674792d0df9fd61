"""The design document lives in the repository: every citation of it (``docs/design.md §N`` or
``docs/design.md#<anchor>``) names a section that exists, and nothing points at a design document
a clone does not contain."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
#: what a clone holds that may cite the design (build outputs and virtualenvs are elsewhere)
SOURCES = ("cogsim", "tests", "docs", "architectures", "experiments", "viz", ".ci")
TOP_FILES = ("README.md", "pyproject.toml")
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".c", ".h", ".txt", ".cfg", ".ini", ""}

CITATION = re.compile(r"(docs/[\w./-]+\.md)(?:\s*§\s*(\d+(?:\.\d+)*)|#([\w-]+))?")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
SECTION_NUMBER = re.compile(r"^(\d+(?:\.\d+)*)\.?\s")
EXPLICIT_ANCHOR = re.compile(r"""<a\s+(?:id|name)=["']([^"']+)["']""")
# Citations of a design document outside the repository: the word DESIGN followed by a section sign,
# a file named DESIGN dot md, or the shared seed documents. Spelled in pieces so that this file does
# not match itself.
OUTSIDE = re.compile("|".join([r"\bDESIGN\s*" + "\u00a7", r"\bDESIGN\.md\b", "SHARED_" + "DESIGN",
                               r"shared/" + "seeds"]))


def repository_files() -> list[Path]:
    files = [ROOT / name for name in TOP_FILES if (ROOT / name).is_file()]
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and path.suffix in TEXT_SUFFIXES and "__pycache__" not in path.parts:
                files.append(path)
    return files


def read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return ""


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"<[^>]+>|`", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def outline(doc: Path) -> tuple[set[str], set[str]]:
    """(section numbers, anchors) of a markdown file, skipping fenced code blocks."""
    numbers, anchors, fenced = set(), set(), False
    for line in read(doc).splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        anchors.update(EXPLICIT_ANCHOR.findall(line))
        m = HEADING.match(line)
        if m:
            title = m.group(2)
            anchors.add(github_slug(title))
            n = SECTION_NUMBER.match(title)
            if n:
                numbers.add(n.group(1))
    return numbers, anchors


def citations() -> list[tuple[Path, int, str, str | None, str | None]]:
    out = []
    for path in repository_files():
        text = read(path)
        for m in CITATION.finditer(text):  # the whole text: a citation may wrap after the file name
            lineno = text.count("\n", 0, m.start()) + 1
            out.append((path, lineno, m.group(1), m.group(2), m.group(3)))
    return out


def test_design_document_exists_with_numbered_sections_and_anchors():
    numbers, anchors = outline(DOCS / "design.md")
    for section, anchor in (("2", "layers"), ("3", "yaml"), ("4", "components"), ("5.1", "engram"),
                            ("5.2", "htm"), ("5.3", "snn"), ("5.4", "workspace"), ("11", "native")):
        assert section in numbers, f"docs/design.md has no section {section}"
        assert anchor in anchors, f"docs/design.md has no anchor #{anchor}"


def test_no_section_number_or_explicit_anchor_is_given_twice():
    for doc in sorted(DOCS.glob("*.md")):
        seen_numbers, seen_anchors, fenced = [], [], False
        for line in read(doc).splitlines():
            if line.lstrip().startswith("```"):
                fenced = not fenced
            if fenced:
                continue
            seen_anchors += EXPLICIT_ANCHOR.findall(line)
            m = HEADING.match(line)
            n = SECTION_NUMBER.match(m.group(2)) if m else None
            if n:
                seen_numbers.append(n.group(1))
        for name, seen in (("section", seen_numbers), ("anchor", seen_anchors)):
            twice = sorted({s for s in seen if seen.count(s) > 1})
            assert not twice, f"{doc.relative_to(ROOT)}: {name} given twice: {twice}"


def test_every_cited_section_and_anchor_exists():
    outlines: dict[str, tuple[set[str], set[str]]] = {}
    missing = []
    for path, lineno, doc, section, anchor in citations():
        where = f"{path.relative_to(ROOT)}:{lineno}"
        target = ROOT / doc
        if not target.is_file():
            missing.append(f"{where}: {doc} does not exist")
            continue
        numbers, anchors = outlines.setdefault(doc, outline(target))
        if section is not None and section not in numbers:
            missing.append(f"{where}: {doc} has no section §{section}")
        if anchor is not None and anchor not in anchors:
            missing.append(f"{where}: {doc} has no anchor #{anchor}")
    assert not missing, "\n".join(missing)


def test_links_inside_the_docs_resolve():
    missing = []
    for doc in sorted(DOCS.glob("*.md")):
        _, anchors = outline(doc)
        for lineno, line in enumerate(read(doc).splitlines(), 1):
            for target in re.findall(r"\]\(([^)\s]+)\)", line):
                if re.match(r"[a-z]+://", target):
                    continue
                file, _, anchor = target.partition("#")
                path = (doc.parent / file).resolve() if file else doc
                if not path.exists():
                    missing.append(f"{doc.name}:{lineno}: {target} (no such file)")
                elif anchor and path.suffix == ".md" and anchor not in outline(path)[1]:
                    missing.append(f"{doc.name}:{lineno}: {target} (no such anchor)")
    assert not missing, "\n".join(missing)


def test_nothing_points_at_a_design_document_outside_the_repository():
    found = [f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}"
             for path in repository_files()
             for lineno, line in enumerate(read(path).splitlines(), 1) if OUTSIDE.search(line)]
    assert not found, "references to a design document a clone does not contain:\n" + "\n".join(found)


def test_the_checks_catch_what_they_are_for(tmp_path):
    doc = tmp_path / "d.md"
    doc.write_text('# T\n<a id="x"></a>\n## 3. Things — and more\n```\n## 9. not a heading\n```\n')
    numbers, anchors = outline(doc)
    assert numbers == {"3"} and anchors == {"t", "x", "3-things--and-more"}
    assert OUTSIDE.search("see DESIGN " + "\u00a7" + "5.2") and not OUTSIDE.search("docs/design.md \u00a75.2")
    m = CITATION.search("(docs/design.md \u00a75.2): x")
    assert m.groups() == ("docs/design.md", "5.2", None)
    assert CITATION.search("docs/design.md#htm.").groups() == ("docs/design.md", None, "htm")
    assert CITATION.search("(docs/design.md\n§5.2.1)").groups() == ("docs/design.md", "5.2.1", None)
