"""In-place Tensor ops and saved-array safety: a changed saved array never gives a silently
wrong gradient (docs/engine.md, "In-place ops and saved arrays")."""

from __future__ import annotations

import gc
import warnings

import numpy as np
import pytest

import autotensor as at
from autotensor.gradient_check import eval_numerical_gradient_array


def leaf(*shape, seed=0, name=None):
    t = at.Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)
    t.name = name
    return t


# ---- the operators -----------------------------------------------------------------------------
def test_sgd_step_under_no_grad_keeps_the_leaf():
    w = leaf(3)
    view = w.data[1:]                    # taken before: sees the update
    (w * w).sum().backward()
    before = w.data.copy()
    with at.no_grad():
        w -= 0.1 * w.grad
    assert w.is_leaf and w.requires_grad and isinstance(w, at.Tensor)
    np.testing.assert_allclose(w.data, before * 0.8)
    np.testing.assert_allclose(view, w.data[1:])
    w.grad = None
    (w * 2).sum().backward()             # the next step works as usual
    np.testing.assert_allclose(w.grad, 2.0)


def test_every_in_place_op_writes_into_the_same_array():
    t = at.Tensor(np.array([1.0, -2.0, 3.0]))
    data = t.data
    t += 1
    t *= 2
    t -= 1
    t /= 2
    np.testing.assert_allclose(data, [1.5, -1.5, 3.5])
    assert t.clamp_(-1, 2) is t and np.allclose(data, [1.5, -1, 2])
    assert t.fill_(7) is t and np.allclose(data, 7)
    assert t.copy_(np.array([1.0, 2.0, 3.0])) is t and np.allclose(data, [1, 2, 3])
    assert t.zero_() is t and np.allclose(data, 0) and t.data is data


def test_in_place_on_a_leaf_that_requires_grad_raises_like_pytorch():
    w = leaf(3)
    for op in (lambda: w.__iadd__(1.0), lambda: w.zero_(), lambda: w.clamp_(0, 1)):
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being "
                                               "used in an in-place operation."):
            op()


def test_in_place_result_must_fit_the_tensor():
    t = at.Tensor(np.ones(3))
    with pytest.raises(RuntimeError, match=r"\(2, 3\).*\(3,\)"):
        t += np.ones((2, 3))


def test_recorded_in_place_ops_give_pytorchs_gradients(torch):
    a0, b0 = np.array([0.5, -1.0, 2.0]), np.array([1.5, 0.3, -0.7])

    def ours():
        a, b = at.Tensor(a0, requires_grad=True), at.Tensor(b0, requires_grad=True)
        c = a * 2
        c += b
        c *= b                           # needs the old c: a copy is saved
        c /= a
        c -= 1
        c.clamp_(-3, 3)
        (c * c).sum().backward()
        return a.grad, b.grad, c.data

    def theirs():
        a = torch.tensor(a0, requires_grad=True)
        b = torch.tensor(b0, requires_grad=True)
        c = a * 2
        c += b
        c *= b
        c /= a
        c -= 1
        c.clamp_(-3, 3)
        (c * c).sum().backward()
        return a.grad.numpy(), b.grad.numpy(), c.detach().numpy()

    for x, y in zip(ours(), theirs()):
        np.testing.assert_allclose(x, y, rtol=1e-12)


def test_a_constant_becomes_part_of_the_graph_when_a_tensor_that_requires_grad_is_added():
    w = leaf(3)
    acc = at.zeros(3)
    acc += w * 2
    assert acc.requires_grad and not acc.is_leaf
    acc.sum().backward()
    np.testing.assert_allclose(w.grad, 2.0)


def test_fill_and_copy_on_a_graph_pass_the_gradient_to_the_source():
    a, s = leaf(3), leaf(3, seed=1)
    c = a * 1.0
    c.copy_(s * 3)
    c.sum().backward()
    np.testing.assert_allclose(s.grad, 3.0)
    assert a.grad is None or np.allclose(a.grad, 0)


def test_in_place_on_a_view_inside_a_graph_is_refused():
    x = leaf(2, 3)
    v = (x * 1.0)[0]
    with pytest.raises(RuntimeError, match="view"):
        v += 1


# ---- a saved array changed by an in-place op: error at backward ----------------------------
def test_overwriting_an_op_saved_output_raises_at_backward_naming_the_op():
    a = leaf(3)
    c = a.exp()                          # Exp saves its output
    c += 1
    with pytest.raises(RuntimeError, match=r"modified by an in-place operation.*Exp"):
        c.sum().backward()


def test_updating_a_saved_leaf_raises_at_backward_naming_the_tensor_and_op():
    w, x = leaf(3, name="w"), leaf(3, seed=1)
    y = (w * x).sum()                    # Mul saves w's array
    with at.no_grad():
        w -= 0.5
    with pytest.raises(RuntimeError, match=r"'w' of shape \(3,\), saved by Mul"):
        y.backward()


def test_updating_a_leaf_the_graph_did_not_save_is_fine():
    w, x = leaf(3), leaf(3, seed=1)
    y = (w + x).sum()                    # Add saves nothing
    with at.no_grad():
        w += 1.0
    y.backward()
    np.testing.assert_allclose(x.grad, 1.0)


def test_no_grad_write_into_a_saved_non_leaf_raises_at_backward():
    a = leaf(3)
    h = a * 2
    y = (h * h).sum()
    with at.no_grad():
        h.zero_()
    with pytest.raises(RuntimeError, match=r"output of Mul"):
        y.backward()


def test_retained_graph_then_update_then_second_backward_raises():
    w = leaf(3)
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    with at.no_grad():                   # allowed although the retained graph holds w
        w -= 0.1 * w.grad
    with pytest.raises(RuntimeError, match="in-place"):
        loss.backward()


# ---- a saved array written directly: refused at the write --------------------------------------
def test_direct_write_into_a_saved_leaf_array_is_refused_until_backward():
    # The example: w.data changed between forward and backward gave 100 instead of 2.
    w = at.Tensor(np.array([1.0]), requires_grad=True)
    x = at.Tensor(np.array([2.0]), requires_grad=True)
    y = (w * x).sum()
    with pytest.raises(ValueError, match="read-only"):
        w.data[...] = 100.0
    y.backward()
    np.testing.assert_allclose(x.grad, [1.0])
    w.data[...] = 100.0                  # the graph is freed: writable again
    assert w.data[0] == 100.0


def test_an_abandoned_graph_releases_its_arrays_without_the_garbage_collector():
    gc.disable()
    try:
        x = np.ones(3)
        y = at.Tensor(x, requires_grad=True).exp() * at.Tensor(x)
        assert not x.flags.writeable
        del y
        assert x.flags.writeable
    finally:
        gc.enable()


def test_two_graphs_holding_one_array_release_it_after_both():
    x = np.ones(3)
    w = at.Tensor(x, requires_grad=True)
    y1, y2 = (w * 2.0 * w).sum(), (w * w).sum()
    y1.backward()
    assert not x.flags.writeable         # y2 still needs it
    y2.backward()
    assert x.flags.writeable


def test_course_numerical_helpers_still_modify_arrays_held_by_live_graphs():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    dout = rng.standard_normal((4, 2))
    xt = at.Tensor(x, requires_grad=True)          # wraps x without copying, as nn.layers
    out = xt @ at.Tensor(w)                        # a graph that holds x, not yet used
    num = eval_numerical_gradient_array(lambda v: (at.Tensor(v) @ at.Tensor(w)).data, x, dout)
    out.backward(dout)                             # x was restored exactly: still right
    np.testing.assert_allclose(xt.grad, dout @ w.T, rtol=1e-12)
    np.testing.assert_allclose(num, dout @ w.T, rtol=1e-7)


def test_a_saved_view_of_a_leaf_protects_the_leaf_both_ways():
    w = at.Tensor(np.ones((2, 3)), requires_grad=True)
    x = at.Tensor(np.full((3, 2), 2.0))
    y = (w.reshape(3, 2) * x).sum()      # Mul saves a view of w's array
    with pytest.raises(ValueError, match="read-only"):
        w.data[0, 0] = 5.0
    with at.no_grad():
        w += 1.0
    with pytest.raises(RuntimeError, match="in-place"):
        y.backward()


def test_views_of_a_held_leaf_are_released_after_their_base():
    """Slices of a leaf saved under create_graph: every hold is released, in any order, with
    no error from a view released while its base was still held read-only (pytest turns an
    exception in that finalizer into a failure: pyproject.toml's filterwarnings)."""
    x = at.Tensor(np.random.default_rng(0).standard_normal((2, 5)), requires_grad=True)
    y = at.cat([p * (i + 1) for i, p in enumerate(x.split(2, dim=1))], dim=1)
    u = np.random.default_rng(1).standard_normal(y.shape)
    (g,) = at.grad(y, [x], u, create_graph=True)
    del g, y
    gc.collect()
    x.data[0, 0] = 5.0              # the leaf is the user's again
    assert x.data.flags.writeable


def test_an_in_place_update_under_no_grad_is_not_a_use_of_the_leaf():
    """`w -= lr * w.grad` under no_grad writes into w; it is no reason for a later missing
    .grad to be blamed on no_grad."""
    w = at.Tensor(np.ones(3), requires_grad=True)
    with at.no_grad():
        w -= 0.1
    (at.Tensor(np.ones(3), requires_grad=True) * 2).sum().backward()   # does not reach w
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert w.grad is None
    assert not any("no_grad" in str(c.message) for c in caught)
    assert any("no recorded op has used it" in str(c.message) for c in caught)
