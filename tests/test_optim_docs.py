"""The Python examples of docs/training.md run as written (one program, top to bottom)."""

from __future__ import annotations

import contextlib
import io
import pathlib
import re

PAGE = pathlib.Path(__file__).resolve().parents[1] / "docs" / "training.md"


def test_training_guide_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) >= 6
    namespace = {}
    with contextlib.redirect_stdout(io.StringIO()) as out:
        for block in blocks:
            exec(compile(block, str(PAGE), "exec"), namespace)
    printed = out.getvalue()
    assert "(Iteration 1 / 20) loss: " in printed and "(Epoch 5 / 5) train acc: " in printed
    assert namespace["solver"].best_val_acc > 0.9          # the ModuleModel example
    assert max(namespace["val_acc"]) > 0.9                 # the ClassifierTrainer example
    assert namespace["resumed"].loss_history == namespace["full"].loss_history
