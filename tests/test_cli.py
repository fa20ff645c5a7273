"""The command line: the demo's accuracy and outputs, verify, train."""

from __future__ import annotations

import dataclasses
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


def test_verify_exits_1_naming_a_twin_mismatch_and_a_wrong_gradient(monkeypatch, capsys):
    import autotensor as at
    from autotensor import op_table

    class WrongGradient(at.Function):
        fused = True

        def forward(self, x):
            return 2 * x

        def backward(self, g):
            return 3 * g                   # wrong: should be 2 * g

    good = next(r for r in op_table.ROWS if r.op == "fused.max_pool2d" and r.gradcheck)
    mismatch = dataclasses.replace(good, label="twin-off", twin=lambda x: good.twin(x) * 1.01)
    wrong = op_table.Row("fused.double", WrongGradient.apply, (((3,), "any"),),
                         twin=lambda x: 2 * x)
    monkeypatch.setattr(op_table, "ROWS", [good, mismatch, wrong])
    assert main(["verify"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].endswith("ok") and "twin-off" in lines[2] and lines[2].endswith("ok")
    assert lines[3].startswith("double") and lines[3].endswith("FAILED")
    assert "gradcheck failed for input 0" in lines[4]
    assert lines[-1] == "fused == composite twin == numerical: 2 FAILED"


def test_train_fc_on_digits_writes_checkpoints(tmp_path, capsys):
    assert main(["train", "--model", "fc", "--epochs", "2", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("checkpoint_epoch_*.npz")) == [
        "checkpoint_epoch_1.npz", "checkpoint_epoch_2.npz"]
    assert "test accuracy" in capsys.readouterr().out


def test_train_cifar10_without_data_dir_is_a_clear_error():
    with pytest.raises(SystemExit, match="--data-dir"):
        main(["train", "--dataset", "cifar10"])


def test_train_fc_on_cifar10_in_the_python_format(tmp_path, capsys):
    """The CIFAR-10 path end to end on small batches written in the official python layout
    (the validation split needs 1,000 images after the training ones, test 1,000)."""
    import pickle

    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name, n in [(f"data_batch_{i}", 220) for i in range(1, 6)] + [("test_batch", 1000)]:
        batch = {b"batch_label": name.encode(), b"labels": rng.integers(0, 10, n).tolist(),
                 b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    out = tmp_path / "run"
    assert main(["train", "--model", "fc", "--dataset", "cifar10", "--data-dir", str(tmp_path),
                 "--num-training", "100", "--epochs", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "FullyConnectedNet on cifar10 (100 training images of shape (3, 32, 32))" in printed
    assert re.search(r"test accuracy 0\.\d+", printed)
    assert (out / "checkpoint_epoch_1.npz").exists()
    assert (out / "first_layer_weights.png").exists()
