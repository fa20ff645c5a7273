"""nn.functional: reference values, dropout, bad input.

Its gradient rows (every function in `F.__all__`, float64 gradcheck and float32 kept float32)
live in autotensor/op_table.py, run by tests/test_ops_gradcheck.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from autotensor import Tensor
from autotensor.nn import functional as F


def _t(a):
    return Tensor(np.array(a, dtype=np.float64), requires_grad=True)


# ---- reference values --------------------------------------------------------------------------
def test_affine_matches_the_course_reference():
    x = np.linspace(-0.1, 0.5, num=2 * 120).reshape(2, 4, 5, 6)
    w = np.linspace(-0.2, 0.3, num=120 * 3).reshape(120, 3)
    b = np.linspace(-0.3, 0.1, num=3)
    out = F.affine(x, w, b).data
    correct = np.array([[1.49834967, 1.70660132, 1.91485297],
                        [3.25553199, 3.51413270, 3.77273342]])
    np.testing.assert_allclose(out, correct, rtol=1e-8)


def test_losses_on_small_random_scores():
    # With scores near 0 every class is equally likely (loss ~ log 10) and every SVM margin
    # is ~1 (loss ~ 9), the sanity checks the course prints.
    rng = np.random.default_rng(1)
    scores = 0.001 * rng.standard_normal((50, 10))
    y = rng.integers(10, size=50)
    assert abs(F.softmax_cross_entropy(scores, y).item() - np.log(10)) < 0.01
    assert abs(F.svm_loss(scores, y).item() - 9.0) < 0.01


def test_losses_against_direct_numpy():
    rng = np.random.default_rng(2)
    s = rng.standard_normal((7, 5)) * 3
    y = rng.integers(5, size=7)
    p = np.exp(s - s.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert np.isclose(F.softmax_cross_entropy(s, y).item(), -np.mean(np.log(p[np.arange(7), y])))
    m = np.maximum(0, s - s[np.arange(7), y][:, None] + 1)
    m[np.arange(7), y] = 0
    assert np.isclose(F.svm_loss(s, y).item(), m.sum() / 7)


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    s = _t([[1000.0, -1000.0, 0.0], [-500.0, 500.0, 0.0]])
    loss = F.softmax_cross_entropy(s, np.array([0, 0]))
    loss.backward()
    assert np.isclose(loss.item(), 500.0) and np.all(np.isfinite(s.grad))


def test_layer_norm_normalises_each_sample():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 50)) * 5 + 3
    out = F.layer_norm(x, np.ones(50), np.zeros(50)).data
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-10)
    np.testing.assert_allclose(out.std(axis=1), 1, atol=1e-4)


def test_leaky_relu_values():
    out = F.leaky_relu(np.array([-2.0, 0.0, 3.0]), 0.1).data
    np.testing.assert_array_equal(out, [-0.2, 0.0, 3.0])


# ---- dropout -----------------------------------------------------------------------------------
def test_dropout_keeps_the_expected_fraction_and_the_mean():
    np.random.seed(0)
    x = np.ones((500, 500)) + 9
    for p in (0.25, 0.4, 0.7):
        out = F.dropout(x, p).data
        assert abs(np.mean(out == 0) - p) < 0.01              # p is the drop probability
        assert abs(out.mean() - 10) < 0.15                    # inverted: the mean is kept
    assert F.dropout(Tensor(x), 0.5, training=False).data is x


def test_dropout_seed_gives_the_same_mask_every_call():
    x = np.random.default_rng(4).standard_normal((20, 30))
    a = F.dropout(x, 0.5, seed=7).data
    b = F.dropout(x, 0.5, seed=7).data
    c = F.dropout(x, 0.5, seed=8).data
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # The course's mask for the same seed: np.random.seed(seed); rand(*shape) < keep.
    np.testing.assert_array_equal(a != 0, np.random.RandomState(7).rand(20, 30) < 0.5)


def test_dropout_seed_leaves_numpys_global_rng_alone():
    np.random.seed(5)
    expected = np.random.rand(4)
    np.random.seed(5)
    F.dropout(np.ones((3, 3)), 0.5, seed=1)
    np.testing.assert_array_equal(np.random.rand(4), expected)


def test_dropout_edge_probabilities():
    x = np.ones((3, 3))
    np.testing.assert_array_equal(F.dropout(x, 0.0).data, x)
    np.testing.assert_array_equal(F.dropout(x, 1.0).data, 0 * x)
    with pytest.raises(ValueError, match="probability"):
        F.dropout(x, 1.5)


# ---- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("y, match", [
    (np.array([0, 1, 3]), r"\[0, 3\)"),
    (np.array([0, -1, 2]), r"\[0, 3\)"),
    (np.array([0, 1]), r"shape \(3,\)"),
    (np.array([[0], [1], [2]]), r"shape \(3,\)"),
    (np.array([0.0, 1.0, 2.0]), "integer"),
])
@pytest.mark.parametrize("loss", [F.softmax_cross_entropy, F.svm_loss])
def test_losses_reject_bad_labels(loss, y, match):
    with pytest.raises(ValueError, match=match):
        loss(np.zeros((3, 3)), y)


def test_affine_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(2, 12\)"):
        F.affine(np.zeros((2, 3, 4)), np.zeros((10, 5)), np.zeros(5))
    with pytest.raises(ValueError, match="b must have shape"):
        F.affine(np.zeros((2, 3)), np.zeros((3, 5)), np.zeros(4))


def test_layer_norm_rejects_mismatched_gamma():
    with pytest.raises(ValueError, match="trailing axes"):
        F.layer_norm(np.zeros((2, 3)), np.ones(4), np.zeros(4))
