"""The command line: the demo's accuracy and outputs, verify, train."""

from __future__ import annotations

import re

import numpy as np
import pytest

from autotensor.__main__ import main


@pytest.mark.slow
def test_demo_reaches_98_percent_and_writes_its_outputs(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    test_acc = float(re.search(r"test accuracy ([0-9.]+)", out).group(1))
    assert test_acc >= 0.98
    # A loss line and an accuracy line for every epoch (27 iterations of 50 images each).
    losses = re.findall(r"\(Iteration (\d+) / 270\) loss: [0-9.]+\n", out)
    assert [int(t) for t in losses] == [1 + 27 * e for e in range(10)]
    assert len(re.findall(r"\(Epoch \d+ / 10\) train acc: [0-9.]+; val_acc: ", out)) == 11
    svg = (tmp_path / "model_graph.svg").read_text()
    assert "<svg" in svg and "features.0" in svg and "Conv2d" in svg
    for png in ("training_curves.png", "first_layer_weights.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with np.load(tmp_path / "checkpoint_final.npz", allow_pickle=False) as ckpt:
        assert any(k.startswith("params/features.0.weight") for k in ckpt.files)


def test_verify_passes_and_prints_every_fused_op(capsys):
    assert main(["verify"]) == 0
    out = capsys.readouterr().out
    for op in ("conv2d", "max_pool2d", "batch_norm"):
        assert op in out
    assert "all ok" in out


def test_train_fc_on_digits_writes_checkpoints(tmp_path, capsys):
    assert main(["train", "--model", "fc", "--epochs", "2", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("checkpoint_epoch_*.npz")) == [
        "checkpoint_epoch_1.npz", "checkpoint_epoch_2.npz"]
    assert "test accuracy" in capsys.readouterr().out


def test_train_cifar10_without_data_dir_is_a_clear_error():
    with pytest.raises(SystemExit, match="--data-dir"):
        main(["train", "--dataset", "cifar10"])
