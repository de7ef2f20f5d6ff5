"""The documents hold: every relative link resolves, every ```python block runs, every command
line they show parses.

Covers README.md, CONTRIBUTING.md, CHANGELOG.md (when present) and docs/*.md. A link resolves
when its file exists and, for ``#anchor``, when the target file has a heading with that slug
(GitHub's rule). Each ```python block runs on its own, in a fresh namespace, as a reader who
copies that one block runs it (issue 25, item 6: a block that leaned on an earlier block's
imports failed alone) — the rule for every document, not only the README: a block may not
lean on an earlier one. Blocks that must not run are tagged ```text or ```bash. Every
``python -m bench …`` and ``python -m jaxconv.train …`` command, in a ```bash block or a code
span (CHANGELOG.md aside: it records old commands), is parsed by that command's own argument
parser, which is imported, not copied: a renamed or removed flag fails here. Nothing is run.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import unicodedata
from collections.abc import Callable
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


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """``path``'s ```python blocks as (number among all its fenced blocks, body)."""
    _, blocks = _split(path.read_text(encoding="utf-8"))
    return [
        (i + 1, body) for i, (info, body) in enumerate(blocks) if info.split()[:1] == ["python"]
    ]


def run_alone(body: str, where: str) -> None:
    """Runs one block as a reader who copied it would: in a fresh namespace."""
    exec(compile(body, where, "exec"), {"__name__": f"docs:{where}"})


BLOCKS = [(path, n, body) for path in DOCS for n, body in python_blocks(path)]


@pytest.mark.parametrize(
    "path,n,body", BLOCKS, ids=[f"{p.relative_to(ROOT)}:block{n}" for p, n, _ in BLOCKS]
)
def test_each_python_block_runs_alone(path, n, body):
    run_alone(body, f"{path.relative_to(ROOT)} (code block {n})")


def test_a_block_that_leans_on_an_earlier_one_fails():
    text = "```python\nimport math\n```\ntext\n```python\nassert math.pi > 3\n```\n"
    (_, first), (_, second) = _split(text)[1]
    run_alone(first, "first")
    with pytest.raises(NameError, match="math"):
        run_alone(second, "second")


# --- command lines ---------------------------------------------------------------------------


def _parse_bench(argv: list[str]) -> None:
    from bench.__main__ import parse_args  # the command's own parser and its suite checks

    parse_args(argv)


def _parse_train(argv: list[str]) -> None:
    from jaxconv.train._cli import build_parser

    build_parser().parse_args(argv)


#: The commands the documents show, by module, and how each parses its flags.
CLIS: dict[str, Callable[[list[str]], None]] = {
    "bench": _parse_bench,
    "jaxconv.train": _parse_train,
}

_OPERATORS = {"&&", "||", ";", "|", "&"}


def _command_lines(text: str) -> list[tuple[str, list[str]]]:
    """Every ``python -m <cli> …`` in one shell text (comments, ``\\`` continuations and
    ``&&`` chains understood), as (cli, argv)."""
    found = []
    for line in text.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words, command = list(lexer), []
        for word in [*words, ";"]:
            if word not in _OPERATORS:
                command.append(word)
                continue
            if len(command) >= 3 and re.fullmatch(r"python3?", command[0]) and command[1] == "-m":
                if command[2] in CLIS:
                    found.append((command[2], command[3:]))
            command = []
    return found


def commands(path: Path) -> list[tuple[str, list[str]]]:
    """The CLI commands in ``path``: its ```bash blocks and, but in CHANGELOG.md, its code
    spans (one may wrap a line)."""
    prose, blocks = _split(path.read_text(encoding="utf-8"))
    found = [
        c
        for info, body in blocks
        if info.split()[:1] in (["bash"], ["sh"])
        for c in _command_lines(body)
    ]
    if path.name != "CHANGELOG.md":
        for span in re.findall(r"(?<!`)`([^`]+)`(?!`)", "\n".join(prose)):
            found += _command_lines(" ".join(span.split()))
    return found


def parse_error(cli: str, argv: list[str]) -> str | None:
    """None when ``cli``'s parser takes ``argv`` (``--help`` included), else its message."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            CLIS[cli](argv)
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            return err.getvalue().strip() or f"exit status {exit_.code}"
    return None


COMMANDS = [(path, cli, argv) for path in DOCS for cli, argv in commands(path)]


@pytest.mark.parametrize(
    "path,cli,argv",
    COMMANDS,
    ids=[f"{p.relative_to(ROOT)}:{' '.join([c, *a])}" for p, c, a in COMMANDS],
)
def test_each_command_line_parses(path, cli, argv):
    problem = parse_error(cli, argv)
    assert problem is None, (
        f"{path.relative_to(ROOT)}: python -m {' '.join([cli, *argv])}: {problem}"
    )


def test_the_commands_are_found_and_checked():
    """The README shows both command lines, and the checker reads chains, comments,
    continuations and code spans, and reports a flag the parser does not know."""
    assert {"bench", "jaxconv.train"} <= {cli for cli, _ in commands(ROOT / "README.md")}
    text = (
        "Run `python -m bench groups\n--peers torch` or:\n```bash\n"
        "pip install -e . && python -m bench --quick   # tiny shapes\n"
        "python -m jaxconv.train --model nin \\\n    --steps 5\npython -m pytest -q\n```\n"
    )
    prose, blocks = _split(text)
    assert _command_lines(blocks[0][1]) == [
        ("bench", ["--quick"]),
        ("jaxconv.train", ["--model", "nin", "--steps", "5"]),
    ]
    assert _command_lines(" ".join(re.findall(r"`([^`]+)`", "\n".join(prose))[0].split())) == [
        ("bench", ["groups", "--peers", "torch"])
    ]
    assert parse_error("bench", ["--quick"]) is None
    assert parse_error("jaxconv.train", ["--help"]) is None
    assert "--no-such-flag" in (parse_error("bench", ["--no-such-flag"]) or "")
    assert "--no-such-flag" in (parse_error("jaxconv.train", ["--no-such-flag"]) or "")
