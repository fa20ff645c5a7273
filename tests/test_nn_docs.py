"""The Python examples in docs/nn.md run as written, top to bottom, as one program."""

from __future__ import annotations

import pathlib
import re

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "nn.md"


def test_nn_guide_examples_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 6
    namespace = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    printed = capsys.readouterr().out
    # The numbers the guide quotes in comments are the ones the code prints.
    assert "2.3004790897684924" in printed and "7.052114776533016" in printed
    assert "['features.0.weight', 'features.0.bias', 'features.1.weight', 'features.1.bias']" \
        in printed
    assert ("['features.0', 'features.1', 'features.2', 'features.3', 'head.0', 'head.1', "
            "'head.2']") in printed
    assert "(300, 100) (75, 200)" in printed
