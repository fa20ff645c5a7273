"""One table, one test: every row of autotensor/op_table.py is gradient-checked against central
differences (a fused row's composite twin too) at first and second order, and keeps float32
float32 through every node.

A meta-test fails when a public op has no row: `autotensor.ops.__all__`, the fused ops of
`autotensor.fused` and `autotensor.nn.functional.__all__`.
"""

from __future__ import annotations

import numpy as np
import pytest

import autotensor as at
from autotensor import fused, ops
from autotensor.autograd import graph_nodes
from autotensor.function import value
from autotensor.nn import functional as F
from autotensor.op_table import ROWS
from autotensor.ops import einsum, elementwise, movement, reduce

# Each checked row, and each checked row's twin (an id ending in "-twin").
CHECKED = [pytest.param(r.fn, r, id=r.id) for r in ROWS if r.gradcheck] + [
    pytest.param(r.twin, r, id=f"{r.id}-twin") for r in ROWS if r.gradcheck and r.twin]


@pytest.mark.parametrize("fn, row", CHECKED)
def test_gradcheck(fn, row):
    with at.use_fused(True):
        assert at.gradcheck(fn, row.sample(), **row.tol)


# Second order: every numerically checked row whose `gradgrad` is True.
SECOND = [pytest.param(r, id=r.id) for r in ROWS if r.gradcheck and r.gradgrad is True]


@pytest.mark.parametrize("row", SECOND)
def test_gradgradcheck(row):
    # The recorded backward (create_graph) of every row against central differences of its
    # first-order gradient, with random grad_outputs checked as inputs too. Fused rows differ
    # through their twin or a rule of their own (docs/fused_ops.md); their inputs are larger,
    # so they are checked along random directions (fast_mode).
    with at.use_fused(True):
        assert at.gradgradcheck(row.fn, row.sample(), fast_mode=row.twin is not None,
                                **row.tol)


def test_every_row_is_checked_at_second_order_or_says_why_not():
    assert len(SECOND) > 100
    unchecked = [r for r in ROWS if r.gradcheck and r.gradgrad is not True]
    assert all(isinstance(r.gradgrad, str) and r.gradgrad for r in unchecked)
    from autotensor.op_table import Row
    with pytest.raises(ValueError, match="gradgrad"):
        Row("exp", lambda x: x.exp(), (((3,), "any"),), gradgrad=False)


def test_gradgradcheck_catches_a_backward_that_is_not_differentiable():
    class ConstantSlopeExp(at.Function):
        """z = e**x, whose backward treats e**x as a constant: right at first order only."""

        def forward(self, x):
            self.saved = x
            return np.exp(x)

        def backward(self, g):
            return g * np.exp(value(self.saved))

    x = at.Tensor(np.array([0.1, 0.5, -0.3]), requires_grad=True)
    assert at.gradcheck(ConstantSlopeExp.apply, [x])
    with pytest.raises(AssertionError, match="input 0"):
        at.gradgradcheck(ConstantSlopeExp.apply, [x])
    assert at.gradgradcheck(lambda t: t.exp(), [x])


def public_ops():
    """Every name a row must cover: the ops, the fused ops (a public function with a
    `*_composite` twin), and nn.functional's functions (its fused re-exports by their home)."""
    fused_ops = {n for n in fused.__all__ if f"{n}_composite" in fused.__all__}
    functional = {f"fused.{n}" if n in fused_ops and getattr(F, n) is getattr(fused, n)
                  else f"F.{n}" for n in F.__all__}
    return set(ops.__all__) | {f"fused.{n}" for n in fused_ops} | functional


def test_every_public_op_has_a_row_and_every_row_a_public_op():
    names, covered = public_ops(), {r.op for r in ROWS}
    assert {"add", "astype", "fused.conv2d", "fused.max_pool2d", "fused.batch_norm",
            "F.affine", "F.svm_loss"} <= names
    assert not names - covered, f"public ops without a row in op_table.py: {names - covered}"
    assert not covered - names, f"rows naming no public op: {covered - names}"


def test_rows_are_unique_and_fused_rows_name_their_twin():
    ids = [r.id for r in ROWS]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for r in ROWS:
        assert (r.twin is not None) == r.op.startswith("fused."), r.id
        assert r.gradcheck or r.twin, f"{r.id}: a row without gradcheck needs a twin to check"


def test_every_primitive_has_a_row():
    # A Function added to autotensor/ops but not exported in ops.__all__ is caught here:
    # each primitive class is named after its public function (MatMul -> matmul,
    # BroadcastTo -> broadcast_to).
    covered = {r.op.replace("_", "") for r in ROWS}
    primitives = {name.lower() for m in (elementwise, movement, reduce, einsum)
                  for name, obj in vars(m).items()
                  if isinstance(obj, type) and issubclass(obj, at.Function)
                  and obj.__module__ == m.__name__}
    assert len(primitives) > 20
    missing = sorted(primitives - covered)
    assert not missing, f"primitives without a gradcheck row: {missing}"


def test_a_row_sampling_on_ties_must_skip_the_numerical_check():
    from autotensor.op_table import Row
    with pytest.raises(ValueError, match="gradcheck=False"):
        Row("max", lambda x: x.max(), (((3, 4), "ties"),))
    with pytest.raises(ValueError, match="unknown domain"):
        Row("max", lambda x: x.max(), (((3, 4), "postive"),))


FLOAT32 = [r for r in ROWS if r.op != "astype"]      # astype's row returns float64 on purpose


@pytest.mark.parametrize("row", FLOAT32, ids=[r.id for r in FLOAT32])
def test_float32_stays_float32_through_every_node(row):
    # Leaves cast their .grad to their own dtype, which would hide an upcast inside the
    # graph: so check every node's output and every gradient each backward returns.
    inputs = row.sample(np.float32)
    with at.use_fused(True):
        out = row.fn(*inputs)
    assert out.dtype == np.float32, f"output is {out.dtype}"
    returned = []
    for node in graph_nodes(out._node):
        dtypes = node.dtype if isinstance(node.dtype, tuple) else (node.dtype,)  # multi-output
        assert all(d == np.float32 for d in dtypes), f"{node.name} node outputs {node.dtype}"
        node.backward = _recording(node, returned)     # the instance attribute wins
    out.backward(np.ones(out.shape, dtype=np.float32))
    upcast = [(name, str(dtype)) for name, dtype in returned if dtype != np.float32]
    assert returned and not upcast, f"backward returned non-float32 gradients: {upcast}"
    assert all(x.grad.dtype == np.float32 for x in inputs)


def _recording(node, returned):
    backward = node.backward

    def wrapper(*g):             # a multi-output node gets one gradient per output
        grads = backward(*g)
        for gp in grads if isinstance(grads, tuple) else (grads,):
            if gp is not None:
                returned.append((node.name, gp.dtype))
        return grads
    return wrapper


def test_gradcheck_catches_a_wrong_backward():
    class BadSquare(at.Function):
        def forward(self, x):
            self.saved = x
            return x * x

        def backward(self, g):
            return g * self.saved          # wrong: should be 2 * x * g

    x = at.Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    with pytest.raises(AssertionError, match=r"input 0 .* index \(\d+,\)"):
        at.gradcheck(BadSquare.apply, [x])
    assert at.gradcheck(BadSquare.apply, [x], raise_exception=False) is False
