"""The README's "Coming from PyTorch" section names what a porter trips on (issues 13 and 25).

Its examples, and every other ```python block, run on their own in ``tests/test_docs.py``.
"""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def test_coming_from_pytorch_has_its_example():
    assert "```python\n" in _section("Coming from PyTorch"), "the section lost its example"


def test_coming_from_pytorch_names_every_difference_the_issues_list():
    table = _section("Coming from PyTorch")
    rows = ("layout", "strided padding", "BatchNorm", "init", "bias", "pooling", "transposed")
    for row in (*rows, "tensors", "default padding"):  # issue 25: torch inputs, the defaults
        assert f"| {row}" in table, row


def test_api_tour_runs_conv_spec_and_explain_from_the_top_level():
    """Issue 25, item 6: both are top-level names, and the tour shows both."""
    import jaxconv

    tour = _section("API tour")
    for name in ("conv_spec", "explain"):
        assert name in jaxconv.__all__ and f"jaxconv.{name}(" in tour, name


def test_the_names_the_readme_gives_are_the_registrys():
    """The Training section lists every model the CLI trains, and "Coming from PyTorch" every
    name ``from_torchvision`` loads (both read the registry; the README is written by hand)."""
    from jaxconv.models import MODELS

    training = _section("Training: `python -m jaxconv.train`")
    for name in MODELS:  # (jaxconv.train.model_names() adds a test's register_model names)
        assert f"`{name}`" in training, name
    porting = _section("Coming from PyTorch")
    for name in (n for n, entry in MODELS.items() if entry.torchvision is not None):
        spelled = {"mobilenetv2": "mobilenet_v2"}.get(name, name)  # torchvision's spelling
        assert f'"{spelled}"' in porting, name
