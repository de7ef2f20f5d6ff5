"""The documents hold: every relative link resolves, every ```python block runs.

Covers README.md, CONTRIBUTING.md, CHANGELOG.md (when present) and docs/*.md. A link resolves
when its file exists and, for ``#anchor``, when the target file has a heading with that slug
(GitHub's rule). A file's ```python blocks run in order in one namespace, like a notebook;
blocks that must not run are tagged ```text or ```bash.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted(
    p
    for p in (
        ROOT / "README.md",
        ROOT / "CONTRIBUTING.md",
        ROOT / "CHANGELOG.md",
        *(ROOT / "docs").glob("*.md"),
    )
    if p.is_file()
)
IDS = [str(p.relative_to(ROOT)) for p in DOCS]

_FENCE = re.compile(r"^(`{3,}|~{3,})(.*)$")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")


def _split(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The lines outside fenced code blocks, and every fenced block as (info string, body)."""
    prose, blocks = [], []
    fence, info, body = None, "", []
    for line in text.splitlines():
        match = _FENCE.match(line.strip()) if len(line) - len(line.lstrip()) < 4 else None
        if fence is None:
            if match:
                fence, info, body = match.group(1), match.group(2).strip(), []
            else:
                prose.append(line)
        elif match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
            if not match.group(2).strip():
                blocks.append((info, "\n".join(body) + "\n"))
                fence = None
            else:
                body.append(line)
        else:
            body.append(line)
    assert fence is None, "a code fence is never closed"
    return prose, blocks


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text lowercased, punctuation other than ``-`` and
    ``_`` dropped, each space a ``-``.

    >>> slug("Benchmarks: `python -m bench`")
    'benchmarks-python--m-bench'
    >>> slug("Current results (AVX-512/AMX Xeon)")
    'current-results-avx-512amx-xeon'
    """
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"[`*]", "", text).strip().lower()
    kept = []
    for ch in text:
        category = unicodedata.category(ch)
        if ch in " -" or category[0] in "LMN" or category == "Pc":
            kept.append(ch)
    return "".join(kept).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of ``path``; a repeated slug gets ``-1``, ``-2``, … as on GitHub."""
    prose, _ = _split(path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    found = set()
    for line in prose:
        match = re.match(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = slug(match.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(path: Path) -> list[str]:
    """Every link target in ``path``'s prose (inline, image and reference-style), code spans
    and fenced blocks left out."""
    prose, _ = _split(path.read_text(encoding="utf-8"))
    found = []
    for line in prose:
        line = re.sub(r"(`+).*?\1", "", line)  # code spans
        found += _LINK.findall(line)
        reference = _REFERENCE.match(line)
        if reference:
            found.append(reference.group(1))
    return found


def _relative(target: str) -> bool:
    return not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target)  # no scheme: http:, mailto:, …


def test_the_documents_are_found():
    assert {"README.md", "CONTRIBUTING.md", "docs/design.md", "docs/performance.md"} <= set(IDS)


@pytest.mark.parametrize("path", DOCS, ids=IDS)
def test_relative_links_resolve(path):
    problems = []
    for target in filter(_relative, links(path)):
        file, _, anchor = target.partition("#")
        where = (path.parent / unquote(file)).resolve() if file else path
        if not where.exists():
            problems.append(f"{target}: no such file")
        elif not where.is_relative_to(ROOT):
            problems.append(f"{target}: outside the repository")
        elif anchor and where.suffix == ".md" and anchor not in anchors(where):
            problems.append(f"{target}: no heading with anchor #{anchor} in {where.name}")
        elif anchor and where.suffix != ".md":
            problems.append(f"{target}: an anchor into a file that is not Markdown")
    assert not problems, f"{path.relative_to(ROOT)}: " + "; ".join(problems)


def test_links_are_checked():
    """The checker sees what it should: a broken link and anchor are reported, code is not."""
    text = (
        "[a](README.md) [b](nowhere.md) ![c](docs/design.md#no-such-heading)\n"
        "`[d](in-a-code-span.md)`\n[e]: CONTRIBUTING.md\n"
        "```text\n[f](in-a-block.md)\n```\n## A heading: `with code`\n"
    )
    prose, blocks = _split(text)
    assert blocks == [("text", "[f](in-a-block.md)\n")]
    assert "a-heading-with-code" in {slug(line[3:]) for line in prose if line.startswith("## ")}
    found = [t for line in prose for t in _LINK.findall(re.sub(r"(`+).*?\1", "", line))]
    assert found == ["README.md", "nowhere.md", "docs/design.md#no-such-heading"]
    assert _REFERENCE.match("[e]: CONTRIBUTING.md").group(1) == "CONTRIBUTING.md"
    assert not _relative("https://github.com") and _relative("docs/design.md#x")


@pytest.mark.parametrize("path", DOCS, ids=IDS)
def test_python_blocks_run_in_order(path):
    _, blocks = _split(path.read_text(encoding="utf-8"))
    namespace: dict = {"__name__": f"docs:{path.name}"}
    for i, (info, body) in enumerate(blocks):
        if info.split()[:1] == ["python"]:
            where = f"{path.relative_to(ROOT)} (code block {i + 1})"
            exec(compile(body, where, "exec"), namespace)
