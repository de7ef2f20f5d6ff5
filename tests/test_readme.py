"""The README's "Coming from PyTorch" section runs as written (issue 13: a test runs it)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def test_coming_from_pytorch_runs_as_written():
    blocks = re.findall(r"```python\n(.*?)```", _section("Coming from PyTorch"), re.S)
    assert blocks, "the section lost its example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})


def test_coming_from_pytorch_names_every_difference_the_issue_lists():
    table = _section("Coming from PyTorch")
    for row in ("layout", "strided padding", "BatchNorm", "init", "bias", "pooling", "transposed"):
        assert f"| {row}" in table, row


def test_semantics_and_export_runs_as_written():
    blocks = re.findall(r"```python\n(.*?)```", _section("Semantics and export"), re.S)
    assert blocks, "the section lost its example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
