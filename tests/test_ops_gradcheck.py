"""One table, one test: every public op is gradient-checked against central differences.

Each row names the op, a function of Tensors, and the inputs' shapes and domains. Rows cover
scalars, broadcast pairs and several axes. A meta-test fails when an op in
`autotensor.ops.__all__` has no row.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pytest

import autotensor as at
from autotensor import ops
from autotensor.autograd import graph_nodes
from autotensor.ops import elementwise, movement, reduce


@dataclass
class Case:
    op: str
    fn: object
    shapes: tuple            # one (shape, domain) per Tensor input
    label: str = ""
    tol: dict = field(default_factory=dict)      # gradcheck eps/atol/rtol overrides

    @property
    def id(self):
        return f"{self.op}-{self.label}" if self.label else self.op


def sample(shape, domain, rng):
    """Inputs inside the op's smooth domain: off kinks, ties and log(0)."""
    if domain == "any":
        return rng.standard_normal(shape)
    if domain == "pos":
        return rng.uniform(0.5, 2.0, shape)
    if domain == "offkink":        # |x| >= 0.1: away from the kink of abs/relu/clip at 0
        return rng.choice([-1, 1], shape) * rng.uniform(0.1, 2.0, shape)
    if domain == "distinct":       # no ties, so max/min have one winner
        n = int(np.prod(shape))
        return (rng.permutation(n) * 0.1 - n * 0.05).reshape(shape) + rng.uniform(0, .01, shape)
    raise ValueError(domain)


A = "any"
P = "pos"
K = "offkink"
D = "distinct"
IDX = np.array([0, 2, 2, 1])          # repeated index: gradients must accumulate
# ndarray constants are float32 so the float32 test below runs every row (float64 would
# promote, as numpy does); float64 inputs still promote them exactly.
F32_COL = np.arange(3, dtype=np.float32)[:, None]
MASK = np.array([[True, False, True, True], [False, True, False, True], [True] * 4])

CASES = [
    Case("add", lambda x, y: x + y, (((3, 4), A), ((3, 4), A)), "same"),
    Case("add", lambda x, y: x + y, (((3, 1, 4), A), ((5, 1), A)), "broadcast"),
    Case("add", lambda x: 2.5 + x, (((), A),), "scalar-reflected"),
    Case("add", lambda x: F32_COL + x, (((1, 4), A),), "ndarray-reflected"),
    Case("sub", lambda x, y: x - y, (((2, 3), A), ((3,), A)), "broadcast"),
    Case("sub", lambda x: 1.0 - x, (((4,), A),), "reflected"),
    Case("mul", lambda x, y: x * y, (((4, 1), A), ((1, 5), A)), "outer"),
    Case("mul", lambda x, y: x * y, (((), A), ((2, 3), A)), "scalar"),
    Case("mul", lambda x: np.full((2, 1, 3), -1.5, np.float32) * x, (((4, 1), A),),
         "ndarray-reflected"),
    Case("div", lambda x, y: x / y, (((2, 3), A), ((2, 1), P)), "broadcast"),
    Case("div", lambda x: 3.0 / x, (((3,), P),), "reflected"),
    Case("pow", lambda x: x ** 3, (((2, 3), A),), "int-exponent"),
    Case("pow", lambda x: x ** 0.5, (((3,), P),), "sqrt"),
    Case("pow", lambda x, y: x ** y, (((2, 3), P), ((3,), A)), "tensor-exponent"),
    Case("pow", lambda y: 2.0 ** y, (((3,), A),), "reflected"),
    Case("matmul", lambda x, y: x @ y, (((3, 4), A), ((4, 2), A)), "2d"),
    Case("matmul", lambda x, y: x @ y, (((2, 3, 4), A), ((4, 5), A)), "batched-broadcast"),
    Case("matmul", lambda x, y: x @ y, (((2, 1, 3, 4), A), ((5, 4, 2), A)), "batch-both"),
    Case("matmul", lambda x, y: x @ y, (((4,), A), ((2, 4, 3), A)), "vec-mat"),
    Case("matmul", lambda x, y: x @ y, (((2, 3, 4), A), ((4,), A)), "mat-vec"),
    Case("matmul", lambda x, y: x @ y, (((4,), A), ((4,), A)), "dot"),
    Case("matmul", lambda x: np.ones((2, 3), np.float32) @ x, (((5, 3, 4), A),),
         "ndarray-reflected"),
    Case("neg", lambda x: -x, (((2, 3), A),)),
    Case("abs", lambda x: abs(x), (((2, 3), K),)),
    Case("exp", lambda x: x.exp(), (((2, 3), A),)),
    Case("log", lambda x: x.log(), (((2, 3), P),)),
    Case("sqrt", lambda x: x.sqrt(), (((2, 3), P),)),
    Case("tanh", lambda x: x.tanh(), (((2, 3), A),)),
    Case("sigmoid", lambda x: x.sigmoid(), (((2, 3), A),)),
    Case("relu", lambda x: x.relu(), (((3, 4), K),)),
    Case("clip", lambda x: at.clip(x, -0.5, 0.5), (((4, 5), K),), "both"),
    Case("clip", lambda x: at.clip(x, lo=0.05), (((4, 5), K),), "lo-only"),
    Case("maximum", lambda x, y: at.maximum(x, y), (((3, 4), D), ((4,), D)), "broadcast"),
    Case("minimum", lambda x, y: at.minimum(x, y), (((3, 4), D), ((3, 4), D))),
    Case("minimum", lambda x, y: at.minimum(x, y), (((2, 1, 3), D), ((4, 1), D)), "broadcast"),
    Case("where", lambda x, y: at.where(MASK, x, y), (((3, 4), A), ((3, 4), A))),
    Case("where", lambda x, y: at.where(MASK[0], x, y), (((3, 4), A), ((1, 4), A)), "bcast"),
    Case("where", lambda x, y: at.where(MASK[:, :1], x, y), (((1, 4), A), ((), A)),
         "bcast-all"),
    Case("sum", lambda x: x.sum(), (((2, 3, 4), A),), "all"),
    Case("sum", lambda x: x.sum(axis=1), (((2, 3, 4), A),), "axis1"),
    Case("sum", lambda x: x.sum(axis=(0, -1), keepdims=True), (((2, 3, 4), A),), "tuple-kd"),
    Case("sum", lambda x: x.sum(axis=0), (((), A),), "scalar"),
    Case("mean", lambda x: x.mean(), (((2, 3, 4), A),), "all"),
    Case("mean", lambda x: x.mean(axis=-2, keepdims=True), (((2, 3, 4), A),), "neg-kd"),
    Case("mean", lambda x: x.mean(axis=(0, 2)), (((2, 3, 4), A),), "tuple"),
    Case("mean", lambda x, y: (x * y).mean(axis=0), (((3, 1), A), ((4,), A)), "broadcast"),
    Case("var", lambda x: x.var(), (((3, 4), A),), "all"),
    Case("var", lambda x: x.var(axis=(0, 2)), (((2, 3, 4), A),), "tuple"),
    Case("var", lambda x: x.var(axis=-1, keepdims=True), (((3, 4), A),), "neg-kd"),
    Case("max", lambda x: x.max(), (((3, 4), D),), "all"),
    Case("max", lambda x: x.max(axis=1, keepdims=True), (((3, 4, 2), D),), "axis-kd"),
    Case("max", lambda x: x.max(axis=(0, 2)), (((3, 4, 2), D),), "tuple"),
    Case("max", lambda x: x.max(axis=None, keepdims=True), (((2, 3, 2), D),), "all-kd"),
    Case("min", lambda x: x.min(axis=-1), (((3, 4), D),), "neg"),
    Case("min", lambda x: x.min(axis=(1, 2), keepdims=True), (((2, 3, 4), D),), "tuple-kd"),
    Case("reshape", lambda x: x.reshape(4, 6), (((2, 3, 4), A),)),
    Case("reshape", lambda x: x.reshape(-1), (((), A),), "scalar"),
    Case("transpose", lambda x: x.transpose(2, 0, 1), (((2, 3, 4), A),), "perm"),
    Case("transpose", lambda x: x.T, (((2, 3), A),), "T"),
    Case("transpose", lambda x: x.transpose(-1, 0, 1), (((2, 3, 4), A),), "neg-axis"),
    Case("transpose", lambda x: x.T, (((2, 3, 4), A),), "T-3d"),
    Case("flatten", lambda x: x.flatten(1), (((2, 3, 4), A),)),
    Case("flatten", lambda x: x.flatten(), (((2, 3, 4), A),), "all"),
    Case("getitem", lambda x: x[1:, ::2], (((3, 4), A),), "slices"),
    Case("getitem", lambda x: x[IDX], (((3, 4), A),), "repeated-int-array"),
    Case("getitem", lambda x: x[IDX, IDX[::-1]], (((3, 4), A),), "paired-arrays"),
    Case("getitem", lambda x: x[MASK], (((3, 4), A),), "bool-mask"),
    Case("getitem", lambda x: x[..., 1, None], (((2, 3, 4), A),), "ellipsis-newaxis"),
    Case("getitem", lambda x: x[MASK[0], 1:], (((4, 3), A),), "mask-and-slice"),
    Case("getitem", lambda x: x[[1, 1, 0], -1], (((3, 4), A),), "list-and-int"),
    Case("getitem", lambda x: x[x > 0], (((3, 4), K),), "tensor-mask"),
    Case("concatenate", lambda x, y: at.concatenate([x, y, x], axis=1),
         (((2, 3), A), ((2, 1), A)), "axis1"),
    Case("concatenate", lambda x, y: at.concatenate([x, y], axis=-3),
         (((1, 2, 3), A), ((2, 2, 3), A)), "axis-neg"),
    Case("stack", lambda x, y: at.stack([x, y], axis=-1), (((2, 3), A), ((2, 3), A))),
    Case("stack", lambda x, y: at.stack([x, y, x]), (((2, 3), A), ((2, 3), A)), "axis0"),
    Case("pad", lambda x: at.pad(x, ((1, 0), (2, 3))), (((2, 3), A),), "per-axis"),
    Case("pad", lambda x: at.pad(x, 1, value=5.0), (((2, 2, 2), A),), "int"),
    Case("softmax", lambda x: x.softmax(axis=1), (((3, 4), A),)),
    Case("softmax", lambda x: x.softmax(axis=0), (((3, 2, 4), A),), "3d-axis0"),
    Case("log_softmax", lambda x: x.log_softmax(axis=0), (((3, 4), A),)),
    Case("log_softmax", lambda x: x.log_softmax(), (((2, 3, 4), A),), "3d-last"),
    Case("logsumexp", lambda x: x.logsumexp(axis=-1), (((3, 4), A),)),
    Case("logsumexp", lambda x: x.logsumexp(axis=(0, 1), keepdims=True), (((3, 4), A),),
         "tuple-kd"),
    # A float32 round trip: steps of 1e-6 vanish in float32 rounding, so use 1e-2 (the
    # function is linear, so a large step is still exact) and float32-level tolerances.
    Case("astype", lambda x: (x.astype(np.float32) * 2).astype(np.float64), (((3,), A),),
         tol=dict(eps=1e-2, atol=1e-5, rtol=1e-5)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_gradcheck(case):
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    inputs = [at.Tensor(sample(s, d, rng), requires_grad=True) for s, d in case.shapes]
    assert at.gradcheck(case.fn, inputs, **case.tol)


def test_every_op_has_a_row():
    covered = {c.op for c in CASES}
    missing = sorted(set(ops.__all__) - covered)
    assert not missing, f"ops without a gradcheck row: {missing}"


def test_every_primitive_has_a_row():
    # A Function added to autotensor/ops but not exported in ops.__all__ is caught here:
    # each primitive class is named after its public function (MatMul -> matmul).
    covered = {c.op for c in CASES}
    primitives = {name.lower() for m in (elementwise, movement, reduce)
                  for name, obj in vars(m).items()
                  if isinstance(obj, type) and issubclass(obj, at.Function)
                  and obj.__module__ == m.__name__}
    assert len(primitives) > 20
    missing = sorted(primitives - covered)
    assert not missing, f"primitives without a gradcheck row: {missing}"


@pytest.mark.parametrize("case", [c for c in CASES if c.op != "astype"],
                         ids=[c.id for c in CASES if c.op != "astype"])
def test_float32_stays_float32_through_every_node(case):
    # Leaves cast their .grad to their own dtype, which would hide an upcast inside the
    # graph: so check every node's output and every gradient each backward returns.
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    inputs = [at.Tensor(sample(s, d, rng).astype(np.float32), requires_grad=True)
              for s, d in case.shapes]
    out = case.fn(*inputs)
    returned = []
    for node in graph_nodes(out._node):
        assert node.dtype == np.float32, f"{node.name} node outputs {node.dtype}"
        node.backward = _recording(node, returned)     # the instance attribute wins
    out.backward(np.ones(out.shape, dtype=np.float32))
    upcast = [(name, str(dtype)) for name, dtype in returned if dtype != np.float32]
    assert returned and not upcast, f"backward returned non-float32 gradients: {upcast}"
    assert all(x.grad.dtype == np.float32 for x in inputs)


def _recording(node, returned):
    backward = node.backward

    def wrapper(g):
        grads = backward(g)
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
