"""Property-based tests: gradients of broadcast ops always come back in the input's shape."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import autotensor as at
from autotensor.autograd import unbroadcast

SHAPES = mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3)


@settings(max_examples=60, deadline=None)
@given(SHAPES, st.sampled_from(["add", "sub", "mul", "div", "maximum"]))
def test_binary_op_grads_match_input_shapes(shapes, op):
    (sx, sy), out_shape = shapes.input_shapes, shapes.result_shape
    rng = np.random.default_rng(0)
    x = at.Tensor(rng.uniform(0.5, 1.5, sx), requires_grad=True)
    y = at.Tensor(rng.uniform(2.0, 3.0, sy), requires_grad=True)   # y > x: no maximum ties
    fn = {"add": lambda: x + y, "sub": lambda: x - y, "mul": lambda: x * y,
          "div": lambda: x / y, "maximum": lambda: at.maximum(x, y)}[op]
    out = fn()
    assert out.shape == out_shape
    g = rng.standard_normal(out_shape)
    out.backward(g)
    assert x.grad.shape == sx and y.grad.shape == sy
    # The reduction is a sum over broadcast copies: for add, grads are exactly that sum.
    if op == "add":
        np.testing.assert_allclose(x.grad, unbroadcast(g, sx), rtol=1e-12)
        np.testing.assert_allclose(x.grad.sum(), g.sum(), rtol=1e-9, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(SHAPES)
def test_unbroadcast_is_the_adjoint_of_broadcasting(shapes):
    # <broadcast(a), g> == <a, unbroadcast(g)> for every a, g: the defining property.
    (sx, _), out_shape = shapes.input_shapes, shapes.result_shape
    rng = np.random.default_rng(1)
    a = rng.standard_normal(sx)
    g = rng.standard_normal(out_shape)
    lhs = np.sum(np.broadcast_to(a, out_shape) * g)
    rhs = np.sum(a * unbroadcast(g, sx))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-9, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(SHAPES)
def test_mul_grads_are_the_unbroadcast_products(shapes):
    (sx, sy), out_shape = shapes.input_shapes, shapes.result_shape
    rng = np.random.default_rng(2)
    x = at.Tensor(rng.standard_normal(sx), requires_grad=True)
    y = at.Tensor(rng.standard_normal(sy), requires_grad=True)
    g = rng.standard_normal(out_shape)
    (x * y).backward(g)
    np.testing.assert_allclose(x.grad, unbroadcast(g * np.broadcast_to(y.data, out_shape), sx),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y.grad, unbroadcast(g * np.broadcast_to(x.data, out_shape), sy),
                               rtol=1e-12, atol=1e-12)


@st.composite
def shape_and_axes(draw):
    shape = draw(st.lists(st.integers(1, 3), min_size=1, max_size=4).map(tuple))
    axes = draw(st.lists(st.integers(-len(shape), len(shape) - 1), unique_by=lambda a: a %
                         len(shape), max_size=len(shape)).map(tuple))
    return shape, axes, draw(st.booleans())


@settings(max_examples=60, deadline=None)
@given(shape_and_axes(), st.sampled_from(["sum", "mean", "max", "logsumexp"]))
def test_reduction_grads_match_input_shapes(case, op):
    shape, axes, keepdims = case
    rng = np.random.default_rng(3)
    x = at.Tensor(rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1, requires_grad=True)
    out = getattr(x, op)(axis=axes or None, keepdims=keepdims)
    ref = {"sum": np.sum, "mean": np.mean, "max": np.max}.get(op)
    if ref is not None:
        np.testing.assert_allclose(out.data, ref(x.data, axis=axes or None, keepdims=keepdims))
    g = rng.standard_normal(out.shape)
    out.backward(g)
    assert x.grad.shape == shape
    # Each output element's gradient is spread over the n inputs it reduced, with weights
    # adding up to n for sum and to 1 for mean, max (one winner) and logsumexp (softmax).
    total = g.sum() * (x.size // out.size if op == "sum" else 1)
    np.testing.assert_allclose(x.grad.sum(), total, rtol=1e-9, atol=1e-12)
