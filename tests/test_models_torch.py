"""Every zoo model (examples/) equals PyTorch in float64: from the same weights, one training
step's losses and every parameter gradient to rel 1e-8, then three optimizer steps' losses and
parameters to rel 1e-6. A new example is one more name in EXAMPLES (tests/test_examples.py)."""

from __future__ import annotations

import importlib
import pathlib
import sys

import numpy as np
import pytest

from autotensor import nn, optim
from autotensor.nn.interop import transposed_keys

HERE = pathlib.Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(HERE))
zoo = importlib.import_module("_zoo")
EXAMPLES, load = zoo.EXAMPLES, zoo.load


def rel(a, b):
    """max |a - b| / max(|b|, tiny): one number for a whole array."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"shape {a.shape} != {b.shape}"
    return float(np.max(np.abs(a - b), initial=0.0) / max(np.max(np.abs(b), initial=0.0),
                                                          1e-300))


def in_torch_layout(model, arrays):
    """{PyTorch name: array} of arrays keyed by the model's parameter names."""
    transposed = transposed_keys(model)
    return {k: (a.T if k in transposed else a) for k, a in arrays.items()}


def twins(ex, torch):
    """The autotensor model and its torch twin, holding the twin's initial weights."""
    tmodel = ex.torch_build(torch)
    model = ex.build()
    nn.utils.load_torch_state_dict(model, tmodel.state_dict())
    return model, tmodel


@pytest.mark.parametrize("name", EXAMPLES)
def test_one_step_and_three_more_equal_torch(name, torch):
    ex = load(name)
    torch.manual_seed(0)
    model, tmodel = twins(ex, torch)
    opts, topts = ex.optimizers(model, optim), ex.optimizers(tmodel, torch.optim)
    rng = np.random.default_rng(0)

    batch = ex.batch(rng)
    losses, grads = ex.step(model, opts, batch)
    tlosses, tgrads = ex.torch_step(torch, tmodel, topts, batch)
    assert losses.keys() == tlosses.keys()
    for k in losses:
        assert rel(losses[k], tlosses[k]) < 1e-8, k
    grads = in_torch_layout(model, grads)
    assert grads.keys() == tgrads.keys() == dict(tmodel.named_parameters()).keys()
    for k in grads:
        assert rel(grads[k], tgrads[k]) < 1e-8, f"{name}: gradient of {k}"

    for t in range(3):
        batch = ex.batch(rng)
        losses, _ = ex.step(model, opts, batch)
        tlosses, _ = ex.torch_step(torch, tmodel, topts, batch)
        for k in losses:
            assert rel(losses[k], tlosses[k]) < 1e-6, f"{name}: step {t + 2} {k}"
    state = nn.utils.torch_state_dict(model)
    assert state.keys() == tmodel.state_dict().keys()
    for k, v in tmodel.state_dict().items():          # parameters and running statistics
        assert rel(state[k], v.detach().numpy()) < 1e-6, f"{name}: {k} after 4 steps"
