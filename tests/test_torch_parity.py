"""PyTorch as the oracle: fused ops, layers and a whole course model give torch's forward
values and gradients to float64 round-off. Each test takes the `torch` fixture (conftest.py):
skipped, and counted in the summary, where torch is absent; CI always has it."""

from __future__ import annotations

import numpy as np
import pytest
from torch_compare import assert_matches_torch

import autotensor as at
from autotensor import nn
from autotensor.nn import functional as F
from autotensor.nn.models import ThreeLayerConvNet

RTOL, ATOL = 1e-10, 1e-12


CONV_CASES = [  # x shape, w shape, stride, pad
    ((2, 3, 7, 7), (4, 3, 3, 3), 1, 1),
    ((2, 2, 9, 8), (3, 2, 3, 2), (2, 1), (0, 1)),
    ((1, 3, 8, 8), (2, 3, 5, 5), 3, 2),
]


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "composite"])
@pytest.mark.parametrize("xs,ws,stride,pad", CONV_CASES)
def test_conv2d(torch, fused, xs, ws, stride, pad):
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])]
    assert_matches_torch(
        torch, lambda x, w, b: F.conv2d(x, w, b, stride=stride, pad=pad),
        lambda x, w, b: torch.nn.functional.conv2d(x, w, b, stride=stride, padding=pad),
        arrays, fused=fused)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "composite"])
@pytest.mark.parametrize("kernel,stride", [(2, None), (3, 2), ((3, 2), (1, 2))])
def test_max_pool2d(torch, fused, kernel, stride):
    x = np.random.default_rng(2).permutation(2 * 3 * 9 * 8).reshape(2, 3, 9, 8) * 0.01
    assert_matches_torch(torch, lambda t: F.max_pool2d(t, kernel, stride),
                         lambda t: torch.nn.functional.max_pool2d(t, kernel, stride), [x],
                         fused=fused)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "composite"])
@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 5, 6)])
def test_batch_norm_training(torch, fused, shape):
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(shape) * 2 + 1, rng.standard_normal(shape[1]),
              rng.standard_normal(shape[1])]
    assert_matches_torch(
        torch, lambda x, gamma, beta: F.batch_norm(x, gamma, beta, training=True),
        lambda x, gamma, beta: torch.nn.functional.batch_norm(x, None, None, gamma, beta,
                                                              training=True, eps=1e-5),
        arrays, fused=fused)


def test_layer_norm(torch):
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal((6, 10)), rng.standard_normal(10), rng.standard_normal(10)]
    assert_matches_torch(
        torch, F.layer_norm,
        lambda x, g, b: torch.nn.functional.layer_norm(x, (10,), g, b, eps=1e-5), arrays)


def test_softmax_cross_entropy_and_svm(torch):
    rng = np.random.default_rng(5)
    scores = rng.standard_normal((7, 4))
    y = rng.integers(0, 4, 7)
    assert_matches_torch(torch, lambda s: F.softmax_cross_entropy(s, y),
                         lambda s: torch.nn.functional.cross_entropy(s, torch.tensor(y)),
                         [scores])
    # torch's multi-class hinge divides by the number of classes as well as the batch.
    assert_matches_torch(
        torch, lambda s: F.svm_loss(s, y),
        lambda s: torch.nn.functional.multi_margin_loss(s, torch.tensor(y)) * scores.shape[1],
        [scores])


def test_mlp_modules(torch):
    """nn.Linear stores weight (in, out): torch's (out, in) transposed gives the same model."""
    rng = np.random.default_rng(6)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    ref = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    ref = ref.double()
    with torch.no_grad():
        for ours, theirs in ((model[0], ref[0]), (model[2], ref[2])):
            theirs.weight.copy_(torch.tensor(ours.weight.data.T))
            theirs.bias.copy_(torch.tensor(rng.standard_normal(ours.bias.shape)))
            ours.bias.data[...] = theirs.bias.numpy()
    x = rng.standard_normal((4, 5))
    y = rng.integers(0, 3, 4)
    loss = F.softmax_cross_entropy(model(at.Tensor(x)), y)
    tloss = torch.nn.functional.cross_entropy(ref(torch.tensor(x)), torch.tensor(y))
    loss.backward()
    tloss.backward()
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=RTOL)
    for ours, theirs in ((model[0], ref[0]), (model[2], ref[2])):
        np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy().T, rtol=RTOL,
                                   atol=ATOL)
        np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), rtol=RTOL,
                                   atol=ATOL)


def test_three_layer_conv_net_loss_and_grads(torch):
    """The course's conv - relu - pool - affine - relu - affine - softmax (+ L2), in torch."""
    np.random.seed(7)
    model = ThreeLayerConvNet(input_dim=(3, 10, 10), num_filters=4, filter_size=3,
                              hidden_dim=6, num_classes=5, weight_scale=0.3, reg=0.05,
                              dtype=np.float64)
    X = np.random.randn(3, 3, 10, 10)
    y = np.random.randint(5, size=3)
    loss, grads = model.loss(X, y)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    f = torch.nn.functional
    h = f.max_pool2d(f.relu(f.conv2d(torch.tensor(X), p["W1"], p["b1"], padding=1)), 2)
    h = f.relu(h.reshape(3, -1) @ p["W2"] + p["b2"])
    scores = h @ p["W3"] + p["b3"]
    reg = sum((p[w] ** 2).sum() for w in ("W1", "W2", "W3"))
    tloss = f.cross_entropy(scores, torch.tensor(y)) + 0.5 * 0.05 * reg
    tloss.backward()
    np.testing.assert_allclose(loss, tloss.item(), rtol=RTOL)
    for name in model.params:
        np.testing.assert_allclose(grads[name], p[name].grad.numpy(), rtol=1e-9, atol=ATOL,
                                   err_msg=name)


def test_linear_applies_to_the_last_dimension_like_torch(torch):
    """nn.Linear on (*, in) inputs, and F.linear with torch's (out, in) weight layout."""
    r = np.random.default_rng(4)
    x, w, b = r.standard_normal((2, 3, 4)), r.standard_normal((5, 4)), r.standard_normal(5)
    assert_matches_torch(torch, F.linear, torch.nn.functional.linear, [x, w, b])

    lin = nn.Linear(4, 5)
    lin.weight.data[...], lin.bias.data[...] = w.T, b          # autotensor stores (in, out)
    out = assert_matches_torch(
        torch, lin, lambda t: torch.nn.functional.linear(t, torch.tensor(w), torch.tensor(b)),
        [x])
    assert out.shape == (2, 3, 5)
    with pytest.raises(ValueError, match=r"Linear: input must be \(\*, in_features=4\)"):
        lin(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"linear: need input \(\*, in\) and weight \(out, in\)"):
        F.linear(np.zeros((2, 3)), np.zeros((3, 2)))


def test_flatten_module_takes_start_and_end_dim_like_torch(torch):
    x = np.arange(2 * 3 * 4 * 5.0).reshape(2, 3, 4, 5)
    for args in [(), (0,), (1, 2), (2, -1), (-3, -2)]:
        ours = nn.Flatten(*args)(at.Tensor(x))
        theirs = torch.nn.Flatten(*args)(torch.tensor(x))
        np.testing.assert_array_equal(ours.data, theirs.numpy(), err_msg=str(args))
