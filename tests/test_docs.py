"""The Python examples in docs/ run as written."""

from __future__ import annotations

import pathlib
import re

import pytest

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"
# Pages whose ```python blocks form one runnable program each (run top to bottom).
PAGES = ["quickstart.md", "custom_ops.md", "gradient_check.md"]


@pytest.mark.parametrize("page", PAGES)
def test_doc_examples_run(page):
    text = (DOCS / page).read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, f"{page} has no python examples"
    namespace = {}
    for block in blocks:
        exec(compile(block, f"{page}", "exec"), namespace)
