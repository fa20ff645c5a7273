"""The op table: one row per gradient-checked case of every public differentiable function.

To add an op, add a row here. Each row names the op, a function of Tensors, and its sample
inputs as (shape, domain) pairs; optional fields override gradcheck's tolerances, name a fused
op's composite twin, mark rows that get no numerical check, and say why a row is not checked
at second order. Rows cover scalars, broadcast pairs and several axes. Readers:

- tests/test_ops_gradcheck.py: gradcheck of every row (and of every twin), gradgradcheck of
  every row (second order: the recorded backward against central differences of the first
  derivative), float32 kept float32 through every node, and a meta-test that fails when a
  public op has no row;
- tests/test_fused.py: fused == twin (forward and gradients) for every row with a twin;
- `python -m autotensor verify`: fused == twin == numerical for the rows with a twin and a
  numerical check.

Ops are named as a user writes them: "exp" (`at.exp`, in `autotensor.ops.__all__`), "F.affine"
(`autotensor.nn.functional`), "fused.conv2d" (`autotensor.fused`; nn.functional re-exports it).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

import autotensor as at
from autotensor import fused
from autotensor.nn import functional as F

# ---- sampling domains ----------------------------------------------------------------------------
LABELS = np.array([0, 3, 1, 3, 2])      # class labels of the loss rows: scores are (5, C)


def _off_kink(rng, shape):
    """|x| >= 0.1: away from the kink of abs/relu/clip/leaky_relu at 0."""
    return rng.choice([-1, 1], shape) * rng.uniform(0.1, 2.0, shape)


def _distinct(rng, shape):
    """No ties (values at least ~0.09 apart), so max/min/max_pool have one winner."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.1 - n * 0.05).reshape(shape) + rng.uniform(0, .01, shape)


def _off_hinge(rng, shape):
    """svm_loss scores for LABELS: every margin s_j - s_y + 1 stays 0.05 off the hinge."""
    rows = np.arange(shape[0])
    while True:
        s = rng.standard_normal(shape)
        margins = s - s[rows, LABELS][:, None] + 1
        margins[rows, LABELS] = 1
        if np.min(np.abs(margins)) > 0.05:
            return s


DOMAINS = {
    "any": lambda rng, shape: rng.standard_normal(shape),
    "positive": lambda rng, shape: rng.uniform(0.5, 2.0, shape),    # sqrt, log, divisors
    "off-kink": _off_kink,
    "distinct": _distinct,
    "off-centre": lambda rng, shape: rng.standard_normal(shape) * 2 + 3,   # batch-norm input
    "off-hinge": _off_hinge,
    # Small integers: ties everywhere. A row sampling it sits on the kinks on purpose, where
    # the numerical gradient means nothing: it must say gradcheck=False.
    "ties": lambda rng, shape: rng.integers(0, 3, shape).astype(np.float64),
}
A, P, K, D = "any", "positive", "off-kink", "distinct"
TIGHT = dict(atol=1e-6, rtol=1e-5)      # gradcheck tolerances of the nn and fused rows


# ---- the row ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    op: str                     # the public name the row covers: "exp", "F.affine", "fused.conv2d"
    fn: Callable                # a function of Tensors, one per input
    inputs: tuple               # one (shape, domain) per Tensor argument of fn
    label: str = ""             # what the row adds (broadcast, axis, scalar...); part of its id
    tol: dict = field(default_factory=dict)      # at.gradcheck eps/atol/rtol overrides
    twin: Callable | None = None    # fused rows: the composite twin, called like fn
    gradcheck: bool = True      # False: fused == twin only (too large, or sampled on ties)
    # Second order: True = gradgradcheck this row; a string says why the row is not (and
    # cannot be) checked at second order. Rows without a numerical check get none either.
    gradgrad: bool | str = True

    def __post_init__(self):
        unknown = [d for _, d in self.inputs if d not in DOMAINS]
        if unknown:
            raise ValueError(f"row {self.id}: unknown domain(s) {unknown}; known: {list(DOMAINS)}")
        if self.gradcheck and any(d == "ties" for _, d in self.inputs):
            raise ValueError(f"row {self.id} samples on ties: it needs gradcheck=False")
        if self.gradgrad is not True and not (isinstance(self.gradgrad, str) and self.gradgrad):
            raise ValueError(f"row {self.id}: gradgrad must be True or the reason it is not "
                             "checked at second order")

    @property
    def id(self):
        return f"{self.op}-{self.label}" if self.label else self.op

    def sample(self, dtype=np.float64, seed=0):
        """Fresh leaf Tensors drawn from the inputs' domains, the same for the same row and seed."""
        rng = np.random.default_rng(zlib.crc32(self.id.encode()) + seed)
        return [at.Tensor(np.asarray(DOMAINS[d](rng, shape)).astype(dtype), requires_grad=True)
                for shape, d in self.inputs]


def fused_and_twin(row, dtype=np.float64, seed=0):
    """[(output, input gradients)] of row.fn with the fused ops on, then of row.twin, on the same
    samples and the same random upstream gradient."""
    results = []
    for fn in (row.fn, row.twin):
        inputs = row.sample(dtype, seed)
        with at.use_fused(True):
            out = fn(*inputs)
        out.backward(np.random.default_rng(seed).standard_normal(out.shape).astype(dtype))
        results.append((out, [x.grad for x in inputs]))
    return results


# ---- autotensor.ops -----------------------------------------------------------------------------
IDX = np.array([0, 2, 2, 1])          # repeated index: gradients must accumulate
# ndarray constants are float32 so the float32 test runs every row (float64 would promote, as
# numpy does); float64 inputs still promote them exactly.
F32_COL = np.arange(3, dtype=np.float32)[:, None]
MASK = np.array([[True, False, True, True], [False, True, False, True], [True] * 4])
GATHER = np.array([[0, 2, 2], [1, 0, 1], [3, 3, 0]])      # picks along dim 1 of (3, 4), repeats
WITH_ZERO = np.array([[1, 0, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], np.float32)

OPS = [
    # elementwise
    Row("add", lambda x, y: x + y, (((3, 4), A), ((3, 4), A)), "same"),
    Row("add", lambda x, y: x + y, (((3, 1, 4), A), ((5, 1), A)), "broadcast"),
    Row("add", lambda x: 2.5 + x, (((), A),), "scalar-reflected"),
    Row("add", lambda x: F32_COL + x, (((1, 4), A),), "ndarray-reflected"),
    Row("sub", lambda x, y: x - y, (((2, 3), A), ((3,), A)), "broadcast"),
    Row("sub", lambda x: 1.0 - x, (((4,), A),), "reflected"),
    Row("mul", lambda x, y: x * y, (((4, 1), A), ((1, 5), A)), "outer"),
    Row("mul", lambda x, y: x * y, (((), A), ((2, 3), A)), "scalar"),
    Row("mul", lambda x: np.full((2, 1, 3), -1.5, np.float32) * x, (((4, 1), A),),
        "ndarray-reflected"),
    Row("div", lambda x, y: x / y, (((2, 3), A), ((2, 1), P)), "broadcast"),
    Row("div", lambda x: 3.0 / x, (((3,), P),), "reflected"),
    Row("pow", lambda x: x ** 3, (((2, 3), A),), "int-exponent"),
    Row("pow", lambda x: x ** 0.5, (((3,), P),), "sqrt"),
    Row("pow", lambda x, y: x ** y, (((2, 3), P), ((3,), A)), "tensor-exponent"),
    Row("pow", lambda y: 2.0 ** y, (((3,), A),), "reflected"),
    Row("matmul", lambda x, y: x @ y, (((3, 4), A), ((4, 2), A)), "2d"),
    Row("matmul", lambda x, y: x @ y, (((2, 3, 4), A), ((4, 5), A)), "batched-broadcast"),
    Row("matmul", lambda x, y: x @ y, (((2, 1, 3, 4), A), ((5, 4, 2), A)), "batch-both"),
    Row("matmul", lambda x, y: x @ y, (((4,), A), ((2, 4, 3), A)), "vec-mat"),
    Row("matmul", lambda x, y: x @ y, (((2, 3, 4), A), ((4,), A)), "mat-vec"),
    Row("matmul", lambda x, y: x @ y, (((4,), A), ((4,), A)), "dot"),
    Row("matmul", lambda x: np.ones((2, 3), np.float32) @ x, (((5, 3, 4), A),),
        "ndarray-reflected"),
    Row("neg", lambda x: -x, (((2, 3), A),)),
    Row("abs", lambda x: abs(x), (((2, 3), K),)),
    Row("exp", lambda x: x.exp(), (((2, 3), A),)),
    Row("log", lambda x: x.log(), (((2, 3), P),)),
    Row("sqrt", lambda x: x.sqrt(), (((2, 3), P),)),
    Row("tanh", lambda x: x.tanh(), (((2, 3), A),)),
    Row("sigmoid", lambda x: x.sigmoid(), (((2, 3), A),)),
    Row("relu", lambda x: x.relu(), (((3, 4), K),)),
    Row("clip", lambda x: at.clip(x, -0.5, 0.5), (((4, 5), K),), "both"),
    Row("clip", lambda x: at.clip(x, lo=0.05), (((4, 5), K),), "lo-only"),
    Row("maximum", lambda x, y: at.maximum(x, y), (((3, 4), D), ((4,), D)), "broadcast"),
    Row("minimum", lambda x, y: at.minimum(x, y), (((3, 4), D), ((3, 4), D))),
    Row("minimum", lambda x, y: at.minimum(x, y), (((2, 1, 3), D), ((4, 1), D)), "broadcast"),
    Row("where", lambda x, y: at.where(MASK, x, y), (((3, 4), A), ((3, 4), A))),
    Row("where", lambda x, y: at.where(MASK[0], x, y), (((3, 4), A), ((1, 4), A)), "bcast"),
    Row("where", lambda x, y: at.where(MASK[:, :1], x, y), (((1, 4), A), ((), A)), "bcast-all"),
    # A float32 round trip: steps of 1e-6 vanish in float32 rounding, so use 1e-2 (the
    # function is linear, so a large step is still exact) and float32-level tolerances.
    Row("astype", lambda x: (x.astype(np.float32) * 2).astype(np.float64), (((3,), A),),
        tol=dict(eps=1e-2, atol=1e-5, rtol=1e-5)),
    Row("clamp", lambda x: at.clamp(x, min=-0.5, max=0.5), (((4, 5), K),)),
    Row("clamp", lambda x: x.clamp(max=0.3), (((4, 5), K),), "max-only"),
    Row("sin", lambda x: x.sin(), (((2, 3), A),)),
    Row("cos", lambda x: at.cos(x), (((2, 3), A),)),
    Row("log1p", lambda x: x.log1p(), (((2, 3), P),)),
    Row("expm1", lambda x: x.expm1(), (((2, 3), A),)),
    Row("erf", lambda x: x.erf(), (((2, 3), A),)),
    Row("maximum", lambda x, y: at.max(x, y), (((3, 4), D), ((3, 4), D)), "torch-max-binary"),
    Row("outer", lambda x, y: at.outer(x, y), (((4,), A), ((3,), A))),
    Row("einsum", lambda x, y: at.einsum("ij,jk->ik", x, y), (((3, 4), A), ((4, 2), A)), "mm"),
    Row("einsum", lambda x, y: at.einsum("bij,bjk->bik", x, y), (((2, 3, 4), A), ((2, 4, 2), A)),
        "bmm"),
    Row("einsum", lambda x, y: at.einsum("i,i->", x, y), (((4,), A), ((4,), A)), "dot"),
    Row("einsum", lambda x, y: at.einsum("ij,k->ik", x, y), (((3, 4), A), ((2,), A)),
        "summed-alone"),
    Row("einsum", lambda x, y: at.einsum("...ij,jk", x, y), (((2, 3, 4), A), ((4, 2), A)),
        "ellipsis-implicit"),
    Row("einsum", lambda x, y, z: at.einsum("ij,jk,kl->li", x, y, z),
        (((2, 3), A), ((3, 4), A), ((4, 2), A)), "three"),
    Row("tril", lambda x: x.tril(), (((3, 4), A),)),
    Row("tril", lambda x: at.tril(x, diagonal=-1), (((2, 3, 3), A),), "batched-below"),
    Row("triu", lambda x: x.triu(1), (((4, 3), A),)),
    # reductions
    Row("sum", lambda x: x.sum(), (((2, 3, 4), A),), "all"),
    Row("sum", lambda x: x.sum(axis=1), (((2, 3, 4), A),), "axis1"),
    Row("sum", lambda x: x.sum(axis=(0, -1), keepdims=True), (((2, 3, 4), A),), "tuple-kd"),
    Row("sum", lambda x: x.sum(axis=0), (((), A),), "scalar"),
    Row("mean", lambda x: x.mean(), (((2, 3, 4), A),), "all"),
    Row("mean", lambda x: x.mean(axis=-2, keepdims=True), (((2, 3, 4), A),), "neg-kd"),
    Row("mean", lambda x: x.mean(axis=(0, 2)), (((2, 3, 4), A),), "tuple"),
    Row("mean", lambda x, y: (x * y).mean(axis=0), (((3, 1), A), ((4,), A)), "broadcast"),
    Row("var", lambda x: x.var(), (((3, 4), A),), "all"),
    Row("var", lambda x: x.var(axis=(0, 2)), (((2, 3, 4), A),), "tuple"),
    Row("var", lambda x: x.var(axis=-1, keepdims=True), (((3, 4), A),), "neg-kd"),
    Row("max", lambda x: x.max(), (((3, 4), D),), "all"),
    Row("max", lambda x: x.max(axis=1, keepdims=True), (((3, 4, 2), D),), "axis-kd"),
    Row("max", lambda x: x.max(axis=(0, 2)), (((3, 4, 2), D),), "tuple"),
    Row("max", lambda x: x.max(axis=None, keepdims=True), (((2, 3, 2), D),), "all-kd"),
    Row("min", lambda x: x.min(axis=-1), (((3, 4), D),), "neg"),
    Row("min", lambda x: x.min(axis=(1, 2), keepdims=True), (((2, 3, 4), D),), "tuple-kd"),
    Row("sum", lambda x: x.sum(dim=(0, 2), keepdim=True), (((2, 3, 4), A),), "dim-kd"),
    Row("mean", lambda x: x.mean(dim=-1), (((2, 3, 4), A),), "dim"),
    Row("var", lambda x: x.var(dim=1), (((3, 4), A),), "dim-unbiased"),
    Row("var", lambda x: at.var(x, correction=0, dim=0, keepdim=True), (((3, 4), A),),
        "correction0"),
    Row("var", lambda x: x.var(0, ddof=1), (((3, 4), A),), "ddof1"),
    Row("std", lambda x: x.std(), (((3, 4), A),), "all"),
    Row("std", lambda x: x.std(dim=-1, keepdim=True), (((3, 4), A),), "dim-kd"),
    Row("std", lambda x: at.std(x, axis=0, unbiased=False), (((3, 4), A),), "biased"),
    Row("max", lambda x: x.max(dim=1).values, (((3, 4, 2), D),), "dim-values"),
    Row("max", lambda x: x.max(dim=-1, keepdim=True)[0], (((3, 4), D),), "dim-kd"),
    Row("min", lambda x: x.min(dim=0).values, (((3, 4), D),), "dim-values"),
    Row("amax", lambda x: at.amax(x, dim=(0, 2)), (((3, 4, 2), D),)),
    Row("amax", lambda x: x.amax(), (((3, 4), D),), "all"),
    Row("amin", lambda x: x.amin(1, keepdim=True), (((3, 4), D),)),
    Row("prod", lambda x: x.prod(), (((3, 5), A),), "all"),
    Row("prod", lambda x: x.prod(dim=1, keepdim=True), (((3, 5), A),), "dim-kd"),
    Row("prod", lambda x: (x * WITH_ZERO).prod(1), (((3, 5), A),), "zeros"),
    Row("prod", lambda x: x.prod(axis=(0, 2)), (((3, 2, 3), A),), "tuple"),
    Row("cumsum", lambda x: x.cumsum(1), (((3, 4), A),)),
    Row("cumsum", lambda x: at.cumsum(x, dim=-3), (((3, 2, 2), A),), "3d"),
    Row("cumsum", lambda x: at.cumsum(x), (((2, 3), A),), "flattened"),
    Row("norm", lambda x: x.norm(), (((3, 4), A),), "fro"),
    Row("norm", lambda x: x.norm(dim=1, keepdim=True), (((3, 4), A),), "dim"),
    Row("norm", lambda x: at.norm(x, p=1, dim=0), (((3, 4), K),), "p1"),
    Row("norm", lambda x: at.norm(x, p=float("inf"), dim=-1), (((3, 4), D),), "inf"),
    Row("norm", lambda x: at.norm(x, p=3), (((3, 4), K),), "p3"),
    Row("logsumexp", lambda x: x.logsumexp(dim=0), (((3, 4), A),), "dim"),
    Row("softmax", lambda x: x.softmax(dim=0), (((3, 4), A),), "dim"),
    Row("log_softmax", lambda x: at.log_softmax(x, dim=1), (((3, 4), A),), "dim"),
    Row("softmax", lambda x: x.softmax(axis=1), (((3, 4), A),)),
    Row("softmax", lambda x: x.softmax(axis=0), (((3, 2, 4), A),), "3d-axis0"),
    Row("log_softmax", lambda x: x.log_softmax(axis=0), (((3, 4), A),)),
    Row("log_softmax", lambda x: x.log_softmax(), (((2, 3, 4), A),), "3d-last"),
    Row("logsumexp", lambda x: x.logsumexp(axis=-1), (((3, 4), A),)),
    Row("logsumexp", lambda x: x.logsumexp(axis=(0, 1), keepdims=True), (((3, 4), A),),
        "tuple-kd"),
    # movement
    Row("reshape", lambda x: x.reshape(4, 6), (((2, 3, 4), A),)),
    Row("reshape", lambda x: x.reshape(-1), (((), A),), "scalar"),
    Row("transpose", lambda x: x.transpose(2, 0, 1), (((2, 3, 4), A),), "perm"),
    Row("transpose", lambda x: x.T, (((2, 3), A),), "T"),
    Row("transpose", lambda x: x.transpose(-1, 0, 1), (((2, 3, 4), A),), "neg-axis"),
    Row("transpose", lambda x: x.T, (((2, 3, 4), A),), "T-3d"),
    Row("transpose", lambda x: x.transpose(0, 2), (((2, 3, 4), A),), "swap"),
    Row("transpose", lambda x: x.transpose(0, 1), (((2, 3), A),), "swap-2d"),
    Row("permute", lambda x: x.permute(2, 0, 1), (((2, 3, 4), A),)),
    Row("view", lambda x: x.view(4, -1), (((2, 3, 4), A),)),
    Row("flatten", lambda x: x.flatten(0, 1), (((2, 3, 4), A),), "end-dim"),
    Row("unsqueeze", lambda x: x.unsqueeze(-1), (((2, 3), A),)),
    Row("squeeze", lambda x: x.squeeze(), (((2, 1, 3, 1), A),)),
    Row("squeeze", lambda x: at.squeeze(x, (0, 1)), (((1, 3, 1), A),), "dims"),
    Row("expand", lambda x: x.expand(2, -1, 4), (((3, 1), A),)),
    Row("expand_as", lambda x: x.expand_as(np.zeros((2, 3))), (((3,), A),)),
    Row("repeat", lambda x: x.repeat(2, 1, 3), (((2, 3), A),)),
    Row("flip", lambda x: x.flip(0, -1), (((2, 3, 4), A),)),
    Row("cat", lambda x, y: at.cat([x, y], dim=-1), (((2, 3), A), ((2, 1), A))),
    Row("split", lambda x: at.cat([p * (i + 1) for i, p in enumerate(x.split(2, dim=1))], 1),
        (((2, 5), A),), "size"),
    Row("split", lambda x: at.cat([p * (i + 1) for i, p in enumerate(x.split([1, 3]))]),
        (((4, 2), A),), "sections"),
    Row("chunk", lambda x: at.cat([p * (i + 1) for i, p in enumerate(x.chunk(3, -1))], -1),
        (((2, 7), A),)),
    Row("gather", lambda x: x.gather(1, GATHER), (((3, 4), A),)),
    Row("gather", lambda x: at.gather(x, 0, at.Tensor(GATHER[:2])), (((4, 3), A),),
        "dim0-tensor-index"),
    Row("scatter_add", lambda x, s: x.scatter_add(1, GATHER, s), (((3, 4), A), ((3, 3), A))),
    Row("scatter_add", lambda x, s: at.scatter_add(x, 0, GATHER[:2], s),
        (((4, 3), A), ((3, 4), A)), "larger-src"),
    Row("index_select", lambda x: x.index_select(1, IDX[:3]), (((2, 3, 4), A),)),
    Row("index_select", lambda x: at.index_select(x, 0, at.Tensor(IDX)), (((3, 2), A),),
        "tensor-index"),
    Row("masked_fill", lambda x: x.masked_fill(MASK, -1.5), (((3, 4), A),)),
    Row("masked_fill", lambda x, v: at.masked_fill(x, at.Tensor(MASK[0]), v),
        (((3, 4), A), ((), A)), "tensor-value"),
    Row("flatten", lambda x: x.flatten(1), (((2, 3, 4), A),)),
    Row("flatten", lambda x: x.flatten(), (((2, 3, 4), A),), "all"),
    Row("getitem", lambda x: x[1:, ::2], (((3, 4), A),), "slices"),
    Row("getitem", lambda x: x[IDX], (((3, 4), A),), "repeated-int-array"),
    Row("getitem", lambda x: x[IDX, IDX[::-1]], (((3, 4), A),), "paired-arrays"),
    Row("getitem", lambda x: x[MASK], (((3, 4), A),), "bool-mask"),
    Row("getitem", lambda x: x[..., 1, None], (((2, 3, 4), A),), "ellipsis-newaxis"),
    Row("getitem", lambda x: x[MASK[0], 1:], (((4, 3), A),), "mask-and-slice"),
    Row("getitem", lambda x: x[[1, 1, 0], -1], (((3, 4), A),), "list-and-int"),
    Row("getitem", lambda x: x[x > 0], (((3, 4), K),), "tensor-mask"),
    Row("concatenate", lambda x, y: at.concatenate([x, y, x], axis=1),
        (((2, 3), A), ((2, 1), A)), "axis1"),
    Row("concatenate", lambda x, y: at.concatenate([x, y], axis=-3),
        (((1, 2, 3), A), ((2, 2, 3), A)), "axis-neg"),
    Row("stack", lambda x, y: at.stack([x, y], axis=-1), (((2, 3), A), ((2, 3), A))),
    Row("stack", lambda x, y: at.stack([x, y, x]), (((2, 3), A), ((2, 3), A)), "axis0"),
    Row("pad", lambda x: at.pad(x, ((1, 0), (2, 3))), (((2, 3), A),), "per-axis"),
    Row("pad", lambda x: at.pad(x, 1, value=5.0), (((2, 2, 2), A),), "int"),
    Row("clone", lambda x: x.clone() * x, (((2, 3), A),)),
    Row("broadcast_to", lambda x: at.broadcast_to(x, (2, 3, 4)), (((3, 1), A),)),
    Row("broadcast_to", lambda x: x.broadcast_to(3), (((), A),), "scalar"),
    Row("index_put", lambda x, v: at.index_put(x, IDX, v, accumulate=True),
        (((3, 4), A), ((4, 4), A)), "accumulate-repeated"),
    Row("index_put", lambda x, v: at.index_put(x, (slice(1, None), 2), v),
        (((3, 4), A), ((), A)), "slice-broadcast"),
    Row("index_put", lambda x, v: at.index_put(x, MASK, v), (((3, 4), A), ((9,), A)), "mask"),
]

# ---- autotensor.nn.functional (its batch_norm, conv2d, max_pool2d are the fused rows below) ----
NN_FUNCTIONAL = [
    Row("F.affine", F.affine, (((3, 2, 3), A), ((6, 4), A), ((4,), A)), tol=TIGHT),
    Row("F.affine", F.affine, (((3, 5), A), ((5, 2), A)), "no-bias", TIGHT),
    Row("F.linear", F.linear, (((2, 3, 4), A), ((5, 4), A), ((5,), A)), tol=TIGHT),
    Row("F.linear", F.linear, (((4,), A), ((2, 4), A)), "1-d no-bias", TIGHT),
    Row("F.relu", F.relu, (((4, 5), K),), tol=TIGHT),
    Row("F.leaky_relu", partial(F.leaky_relu, negative_slope=0.1), (((4, 5), K),), tol=TIGHT),
    Row("F.sigmoid", F.sigmoid, (((3, 4), A),), tol=TIGHT),
    Row("F.tanh", F.tanh, (((3, 4), A),), tol=TIGHT),
    Row("F.dropout", partial(F.dropout, p=0.4, training=True, seed=3), (((6, 5), A),),
        tol=TIGHT),
    Row("F.softmax_cross_entropy", partial(F.softmax_cross_entropy, y=LABELS),
        (((5, 4), A),), tol=TIGHT),
    Row("F.svm_loss", partial(F.svm_loss, y=LABELS), (((5, 4), "off-hinge"),), tol=TIGHT),
    Row("F.layer_norm", F.layer_norm, (((4, 6), A), ((6,), A), ((6,), A)), tol=TIGHT),
]


# ---- activations and attention of nn.functional (issue 12) ------------------------------------
SDPA = F.scaled_dot_product_attention
KEEP = np.array([[1, 0, 1, 1, 0], [1, 1, 0, 1, 1], [0, 1, 1, 1, 1]], bool)   # no row all False
BIAS = np.linspace(-1.0, 1.0, 15, dtype=np.float32).reshape(3, 5)           # a float mask

ACTIVATION_ATTENTION_ROWS = [
    Row("F.gelu", F.gelu, (((3, 4), A),), tol=TIGHT),
    Row("F.gelu", partial(F.gelu, approximate="tanh"), (((3, 4), A),), "tanh", TIGHT),
    Row("F.silu", F.silu, (((3, 4), A),), tol=TIGHT),
    Row("F.elu", partial(F.elu, alpha=0.7), (((3, 4), K),), tol=TIGHT),
    Row("F.softplus", F.softplus, (((3, 4), A),), tol=TIGHT),
    # threshold 0: linear for x > 0, off-kink samples stay 0.1 from the switch
    Row("F.softplus", partial(F.softplus, beta=2.0, threshold=0.0), (((3, 4), K),),
        "linear-part", TIGHT),
    Row("F.hardtanh", partial(F.hardtanh, min_val=-2.5, max_val=0.05), (((3, 4), K),),
        tol=TIGHT),
    Row("F.softmax", partial(F.softmax, dim=0), (((3, 4), A),), tol=TIGHT),
    Row("F.softmax", partial(F.softmax, dim=-1), (((2, 3, 4), A),), "last", TIGHT),
    Row("F.log_softmax", partial(F.log_softmax, dim=1), (((3, 4), A),), tol=TIGHT),
    Row("F.scaled_dot_product_attention", SDPA, (((2, 3, 4), A), ((2, 5, 4), A), ((2, 5, 2), A)),
        "3d", TIGHT),
    Row("F.scaled_dot_product_attention", partial(SDPA, attn_mask=KEEP),
        (((2, 2, 3, 4), A), ((2, 2, 5, 4), A), ((2, 2, 5, 3), A)), "4d-bool-mask", TIGHT),
    Row("F.scaled_dot_product_attention", partial(SDPA, attn_mask=BIAS, scale=0.3),
        (((2, 3, 4), A), ((2, 5, 4), A), ((2, 5, 2), A)), "float-mask-scale", TIGHT),
    Row("F.scaled_dot_product_attention", lambda q, k, v, m: SDPA(q, k, v, attn_mask=m),
        (((2, 3, 4), A), ((5, 4), A), ((5, 2), A), ((3, 5), A)), "tensor-mask-broadcast",
        TIGHT),
    Row("F.scaled_dot_product_attention", partial(SDPA, is_causal=True),
        (((2, 4, 3), A), ((2, 4, 3), A), ((2, 4, 3), A)), "causal", TIGHT),
    Row("F.scaled_dot_product_attention", partial(SDPA, enable_gqa=True),
        (((1, 4, 3, 2), A), ((1, 2, 3, 2), A), ((1, 2, 3, 2), A)), "gqa", TIGHT),
]

# ---- autotensor.fused: each fused op beside its composite twin -----------------------------------
def _dims(v):
    """(2, 3, 7, 8) -> "(2,3,7,8)": short row labels."""
    return str(v).replace(" ", "")


def conv_row(x, w, stride=1, pad=0, bias=True, gradcheck=True):
    """fused.conv2d and conv2d_composite on x (N, C, H, W), w (F, C, HH, WW), with a bias (F,)
    unless bias=False."""
    inputs = ((x, A), (w, A), ((w[0],), A)) if bias else ((x, A), (w, A))
    label = f"x{_dims(x)} w{_dims(w)} s{_dims(stride)} p{_dims(pad)}" + ("" if bias else " no-bias")
    return Row("fused.conv2d", partial(fused.conv2d, stride=stride, pad=pad), inputs, label,
               TIGHT, partial(fused.conv2d_composite, stride=stride, pad=pad), gradcheck)


def pool_row(x, kernel, stride=None, domain=D, gradcheck=True):
    """fused.max_pool2d and max_pool2d_composite on x (N, C, H, W)."""
    label = f"x{_dims(x)} k{_dims(kernel)}" + (f" s{_dims(stride)}" if stride else "")
    label += f" {domain}" if domain != D else ""
    return Row("fused.max_pool2d", partial(fused.max_pool2d, kernel_size=kernel, stride=stride),
               ((x, domain),), label, TIGHT,
               partial(fused.max_pool2d_composite, kernel_size=kernel, stride=stride), gradcheck)


def bn_row(x, training=True, gradcheck=True):
    """fused.batch_norm and batch_norm_composite on x (N, D) or (N, C, H, W) with gamma, beta.
    Training rows pass no running stats (tests/test_fused.py checks their update); eval rows
    normalise with fixed ones."""
    d = x[1]
    stats = {} if training else dict(running_mean=np.linspace(-0.5, 0.5, d),
                                     running_var=np.linspace(0.5, 2.0, d))
    label = f"x{_dims(x)} " + ("train" if training else "eval")
    return Row("fused.batch_norm", partial(fused.batch_norm, training=training, **stats),
               ((x, "off-centre"), ((d,), A), ((d,), A)), label, TIGHT,
               partial(fused.batch_norm_composite, training=training, **stats), gradcheck)


# gradcheck=False: large geometries, checked fused == twin only (gradcheck costs ~a second).
FUSED = [
    conv_row((2, 3, 7, 8), (4, 3, 3, 3), 1, 1),
    conv_row((2, 3, 6, 6), (4, 3, 3, 3), 1, 1),
    conv_row((1, 2, 9, 6), (3, 2, 4, 3), (3, 2), (2, 0)),       # N=1, non-square, mixed
    conv_row((2, 1, 5, 5), (2, 1, 5, 5), 1, 0, bias=False),     # kernel == input
    conv_row((3, 2, 11, 10), (2, 2, 2, 5), 2, 3),               # pad 3, stride 2
    conv_row((1, 2, 7, 5), (3, 2, 2, 3), 2, 2, bias=False),
    conv_row((2, 2, 5, 5), (3, 2, 3, 2), 2, 1),
    conv_row((2, 3, 10, 9), (5, 3, 3, 1), 3, 2, gradcheck=False),        # 1-wide kernel
    conv_row((1, 4, 13, 7), (3, 4, 3, 2), (1, 3), (0, 1), bias=False, gradcheck=False),
    conv_row((4, 5, 8, 8), (6, 5, 1, 1), 2, 0, gradcheck=False),         # 1x1, stride 2
    conv_row((2, 3, 6, 6), (4, 3, 7, 7), 1, 3, gradcheck=False),         # kernel > input
    conv_row((5, 2, 15, 12), (3, 2, 3, 4), 2, 1, gradcheck=False),
    pool_row((2, 3, 8, 8), 2),                        # windows tile the input
    pool_row((2, 2, 4, 6), 2),
    pool_row((1, 2, 4, 4), 2),
    pool_row((1, 2, 9, 7), 2),                        # tile after cropping the last row/column
    pool_row((2, 3, 9, 7), 3, 2),                     # overlapping windows
    pool_row((1, 2, 7, 7), 3, 2),
    pool_row((2, 2, 9, 11), (2, 3), (3, 2)),          # non-square, gapped rows / overlapping cols
    pool_row((3, 4, 6, 6), (3, 2), (3, 2), gradcheck=False),     # non-square tiling
    pool_row((1, 1, 5, 5), 5, 1, gradcheck=False),               # one window covers everything
    pool_row((2, 3, 12, 10), 3, 3, gradcheck=False),
    pool_row((2, 3, 7, 7), 1, 2, gradcheck=False),               # 1x1 windows, stride 2
    # On ties both pick the first maximum of each window: fused == twin exactly.
    pool_row((2, 3, 8, 8), 2, domain="ties", gradcheck=False),
    pool_row((2, 3, 9, 7), 3, 2, domain="ties", gradcheck=False),
    bn_row((8, 5)),
    bn_row((6, 4)),
    bn_row((4, 3, 3, 2)),
    bn_row((3, 2, 3, 3)),
    bn_row((2, 3, 3, 2)),
    bn_row((1, 2, 3, 3), gradcheck=False),
    bn_row((50, 16, 4, 4), gradcheck=False),
    bn_row((6, 7), training=False),
    bn_row((6, 4), training=False),
    bn_row((3, 4, 2, 5), training=False),
]

ROWS = OPS + NN_FUNCTIONAL + FUSED


# ---- convolution and pooling with PyTorch's arguments (issue 12) --------------------------------
def _as_twin(fn, **kwargs):
    """fn(*tensors, **kwargs) with every fused op switched to its twin: the composite of a
    public op whose fused path is picked inside (dilation, groups, pool padding)."""
    def twin(*tensors):
        with at.use_fused(False):
            return fn(*tensors, **kwargs)
    return twin


def conv_torch_row(x, w, stride=1, padding=0, dilation=1, groups=1, bias=True, gradcheck=True):
    """fused.conv2d with PyTorch's padding ('same'), dilation and groups, beside its twin."""
    inputs = ((x, A), (w, A), ((w[0],), A)) if bias else ((x, A), (w, A))
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    label = (f"x{_dims(x)} w{_dims(w)} s{_dims(stride)} p{_dims(padding)} d{_dims(dilation)}"
             f" g{groups}" + ("" if bias else " no-bias"))
    return Row("fused.conv2d", partial(fused.conv2d, **args), inputs, label, TIGHT,
               _as_twin(fused.conv2d, **args), gradcheck)


def conv_transpose_row(x, w, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                       bias=True, gradcheck=True):
    """fused.conv_transpose2d and conv_transpose2d_composite; w (C, F / groups, HH, WW)."""
    inputs = ((x, A), (w, A), ((w[1] * groups,), A)) if bias else ((x, A), (w, A))
    args = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups,
                dilation=dilation)
    label = (f"x{_dims(x)} w{_dims(w)} s{_dims(stride)} p{_dims(padding)} "
             f"op{_dims(output_padding)} g{groups} d{_dims(dilation)}" + ("" if bias else " nb"))
    return Row("fused.conv_transpose2d", partial(fused.conv_transpose2d, **args), inputs, label,
               TIGHT, partial(fused.conv_transpose2d_composite, **args), gradcheck)


def pool_torch_row(x, kernel, stride=None, padding=0, dilation=1, ceil_mode=False):
    """fused.max_pool2d with PyTorch's padding, dilation and ceil_mode, beside its twin."""
    args = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation,
                ceil_mode=ceil_mode)
    label = (f"x{_dims(x)} k{_dims(kernel)} s{_dims(stride)} p{_dims(padding)} "
             f"d{_dims(dilation)}" + (" ceil" if ceil_mode else ""))
    return Row("fused.max_pool2d", partial(fused.max_pool2d, **args), ((x, D),), label, TIGHT,
               _as_twin(fused.max_pool2d, **args))


CONV_POOL = [
    conv_torch_row((2, 3, 6, 7), (4, 3, 3, 2), 1, "same", (2, 1)),        # odd total: extra end
    conv_torch_row((1, 2, 5, 6), (3, 2, 2, 4), 1, "same", bias=False),    # even kernels
    conv_torch_row((2, 4, 7, 7), (6, 2, 3, 3), 2, 1, 1, 2),               # groups
    conv_torch_row((1, 3, 6, 5), (3, 1, 3, 2), 1, (1, 0), 1, 3),          # depthwise
    conv_torch_row((1, 4, 9, 8), (4, 2, 2, 3), (2, 1), 2, (3, 2), 2, bias=False),
    conv_torch_row((2, 2, 5, 5), (3, 2, 3, 3), 1, "valid", 2),
    conv_torch_row((2, 6, 12, 11), (6, 1, 3, 3), 2, 1, 2, 6, gradcheck=False),
    conv_transpose_row((2, 3, 3, 4), (3, 2, 3, 3)),
    conv_transpose_row((1, 2, 4, 3), (2, 3, 3, 2), 2, 1, 1),
    conv_transpose_row((2, 4, 3, 3), (4, 1, 2, 3), (2, 3), (0, 1), (1, 2), 2, bias=False),
    conv_transpose_row((1, 2, 3, 4), (2, 2, 2, 2), 1, 2, 1, 1, (2, 3)),   # op < dilation
    conv_transpose_row((1, 3, 5, 4), (3, 1, 3, 3), 3, 4, 2, 3, 2),        # padding > kernel-1
    conv_transpose_row((2, 6, 6, 5), (6, 2, 4, 3), 2, 1, 1, 3, 2, gradcheck=False),
    pool_torch_row((2, 2, 7, 6), 3, 2, 1),
    pool_torch_row((2, 1, 6, 7), 2, 2, 1, ceil_mode=True),
    # Dilated max pooling has no fused kernel (it is the twin in both modes): it gets no fused
    # row; tests/test_nn_conv.py checks it against torch and at second order.
    Row("F.avg_pool2d", partial(F.avg_pool2d, kernel_size=3, stride=2, padding=1),
        (((2, 2, 7, 6), A),), "p1", TIGHT),
    Row("F.avg_pool2d", partial(F.avg_pool2d, kernel_size=(3, 2), stride=2, padding=1,
                                ceil_mode=True, count_include_pad=False),
        (((1, 2, 6, 7), A),), "ceil no-pad-count", TIGHT),
    Row("F.adaptive_avg_pool2d", partial(F.adaptive_avg_pool2d, output_size=(3, 2)),
        (((2, 2, 7, 5), A),), tol=TIGHT),
    Row("F.adaptive_max_pool2d", partial(F.adaptive_max_pool2d, output_size=(3, 4)),
        (((2, 2, 7, 6), D),), tol=TIGHT),
]

ROWS += CONV_POOL

# ---- nn losses (nn/loss_functional.py): PyTorch's F.* losses ----------------------------------
CLASS_W = np.array([0.5, 2.0, 1.0, 1.5], np.float32)             # one weight per class of 4
LABELS_KD = np.array([[0, 3, 1], [2, 2, 0]])                     # targets of (2, 4, 3) scores
LABELS_IGNORED = np.array([0, -100, 1, 3, -100])
LABELS_I2 = np.array([0, 2, 1, 3, 2])                            # ignore_index=2 drops two

LOSS_ROWS = [
    Row("F.cross_entropy", partial(F.cross_entropy, target=LABELS), (((5, 4), A),), tol=TIGHT),
    Row("F.cross_entropy", partial(F.cross_entropy, target=LABELS, weight=CLASS_W,
                                   label_smoothing=0.2), (((5, 4), A),), "weight-smoothing",
        TIGHT),
    Row("F.cross_entropy", partial(F.cross_entropy, target=LABELS_I2, ignore_index=2,
                                   weight=CLASS_W, reduction="sum", label_smoothing=0.1),
        (((5, 4), A),), "ignore-sum", TIGHT),
    Row("F.cross_entropy", partial(F.cross_entropy, target=LABELS_KD, reduction="none"),
        (((2, 4, 3), A),), "kdim-none", TIGHT),
    Row("F.cross_entropy", partial(F.cross_entropy, target=np.array(2)), (((4,), A),),
        "unbatched", TIGHT),
    Row("F.cross_entropy", lambda x, p: F.cross_entropy(x, p, weight=CLASS_W,
                                                        label_smoothing=0.1),
        (((3, 4), A), ((3, 4), P)), "probabilities", TIGHT),
    Row("F.cross_entropy", lambda x, p: F.cross_entropy(x, p, reduction="none"),
        (((2, 4, 3), A), ((2, 4, 3), P)), "probabilities-kdim", TIGHT),
    Row("F.nll_loss", partial(F.nll_loss, target=LABELS_IGNORED, weight=CLASS_W),
        (((5, 4), A),), tol=TIGHT),
    Row("F.nll_loss", partial(F.nll_loss, target=LABELS_KD, reduction="none"),
        (((2, 4, 3), A),), "kdim-none", TIGHT),
    Row("F.mse_loss", F.mse_loss, (((3, 4), A), ((3, 4), A)), tol=TIGHT),
    Row("F.mse_loss", partial(F.mse_loss, reduction="none"), (((3, 4), A), ((3, 4), A)), "none",
        TIGHT),
    Row("F.l1_loss", F.l1_loss, (((3, 4), K), ((3, 4), A)), tol=TIGHT),
    Row("F.l1_loss", lambda x: F.l1_loss(x, np.zeros((3, 4), np.float32), reduction="sum"),
        (((3, 4), K),), "sum", TIGHT),
    Row("F.smooth_l1_loss", partial(F.smooth_l1_loss, beta=0.5), (((3, 4), A), ((3, 4), A)),
        tol=TIGHT),
    Row("F.smooth_l1_loss", lambda x: F.smooth_l1_loss(x, np.zeros((3, 4), np.float32),
                                                       reduction="none", beta=1.2),
        (((3, 4), K),), "none", TIGHT),
    Row("F.huber_loss", partial(F.huber_loss, delta=1.5), (((3, 4), A), ((3, 4), A)), tol=TIGHT),
    Row("F.huber_loss", lambda x: F.huber_loss(x, np.zeros((3, 4), np.float32), "sum", 0.6),
        (((3, 4), K),), "sum", TIGHT),
    Row("F.binary_cross_entropy",
        lambda x, t: F.binary_cross_entropy(x.sigmoid(), t.sigmoid(), weight=CLASS_W),
        (((3, 4), A), ((3, 4), A)), tol=TIGHT),
    Row("F.binary_cross_entropy",
        lambda x, t: F.binary_cross_entropy(x.sigmoid(), t.sigmoid(), reduction="none"),
        (((2, 3), A), ((2, 3), A)), "none", TIGHT),
    Row("F.binary_cross_entropy_with_logits", F.binary_cross_entropy_with_logits,
        (((3, 4), A), ((3, 4), A)), tol=TIGHT),
    Row("F.binary_cross_entropy_with_logits",
        partial(F.binary_cross_entropy_with_logits, weight=CLASS_W[::-1].copy(),
                pos_weight=CLASS_W, reduction="sum"),
        (((2, 3, 4), A), ((2, 3, 4), A)), "pos_weight", TIGHT),
    Row("F.kl_div", partial(F.kl_div, reduction="batchmean"), (((3, 4), A), ((3, 4), P)),
        tol=TIGHT),
    Row("F.kl_div", partial(F.kl_div, reduction="none", log_target=True),
        (((3, 4), A), ((3, 4), A)), "log-target", TIGHT),
]
ROWS += LOSS_ROWS

# ---- F.embedding (issue 12, recurrent layers) ----------------------------------------------------
EMB_IDX = np.array([[1, 4, 1], [0, 4, 2]])     # repeated rows: their gradients must accumulate
EMB_KEEP = np.array([[1], [1], [1], [1], [0]], np.float32)
EMBEDDING_ROWS = [
    Row("F.embedding", lambda w: F.embedding(EMB_IDX, w), (((5, 3), A),), "repeated", TIGHT),
    # padding_idx passes its row's value but no gradient (PyTorch's rule, not the derivative):
    # the row is zeroed first so that the numerical gradient agrees. tests/test_nn_recurrent.py
    # checks the rule itself against torch.
    Row("F.embedding", lambda w: F.embedding(EMB_IDX, w * EMB_KEEP, padding_idx=4),
        (((5, 3), A),), "padding", TIGHT),
    Row("F.embedding", lambda w: F.embedding(at.tensor(3), w) * w[3], (((4, 2), A),),
        "0d-index-tensor", TIGHT),
]
ROWS += EMBEDDING_ROWS

# ---- normalisation, PyTorch's forms (issue 12) ---------------------------------------------------
NORM_ROWS = [
    Row("F.layer_norm", lambda x, w, b: F.layer_norm(x, (6,), w, b),
        (((4, 6), A), ((6,), A), ((6,), A)), "torch", TIGHT),
    Row("F.layer_norm", lambda x, w, b: F.layer_norm(x, (2, 3), w, b, eps=1e-3),
        (((2, 2, 2, 3), A), ((2, 3), A), ((2, 3), A)), "torch-2d", TIGHT),
    Row("F.layer_norm", lambda x: F.layer_norm(x, 5), (((3, 5), A),), "torch-no-affine", TIGHT),
    Row("F.group_norm", lambda x, w, b: F.group_norm(x, 2, w, b),
        (((2, 4, 3, 2), A), ((4,), A), ((4,), A)), tol=TIGHT),
    Row("F.group_norm", lambda x: F.group_norm(x, 3, eps=1e-3), (((2, 6, 5), A),),
        "no-affine", TIGHT),
    Row("F.group_norm", lambda x, w: F.group_norm(x, 1, w), (((3, 2), A), ((2,), A)),
        "one-group", TIGHT),
]

ROWS += NORM_ROWS

ROWS += ACTIVATION_ATTENTION_ROWS

# ---- recurrent cells (issue 13): fused.lstm_cell, fused.gru_cell and at.unbind -------------------
def _cell_inputs(gates, states, n=3, hidden=4, bias=True):
    """xw (n, gates * hidden), the states (n, hidden), w_hh, and b_hh when bias."""
    g = gates * hidden
    return (((n, g), A), *[((n, hidden), A)] * states, ((g, hidden), A)) + \
        ((((g,), A),) if bias else ())


RNN_ROWS = [
    Row("unbind", lambda x: at.stack([p * (i + 1) for i, p in enumerate(at.unbind(x, 1))], 0),
        (((3, 4, 2), A),), "dim1"),
    Row("unbind", lambda x: x.unbind(-1)[1] * 2, (((2, 3), A),), "one-used-negative-dim"),
    Row("unbind", lambda x: at.unbind(x)[0], (((1, 3), A),), "single"),
    Row("fused.lstm_cell", fused.lstm_cell, _cell_inputs(4, 2), "", TIGHT,
        fused.lstm_cell_composite),
    Row("fused.lstm_cell", fused.lstm_cell, _cell_inputs(4, 2, n=1, hidden=2, bias=False),
        "no-bias", TIGHT, fused.lstm_cell_composite),
    Row("fused.gru_cell", fused.gru_cell, _cell_inputs(3, 1), "", TIGHT,
        fused.gru_cell_composite),
    Row("fused.gru_cell", fused.gru_cell, _cell_inputs(3, 1, n=2, hidden=3, bias=False),
        "no-bias", TIGHT, fused.gru_cell_composite),
]
ROWS += RNN_ROWS

# ---- grouped convolution: groups native in Conv2dFn / ConvTranspose2dFn (s10 groups) -----------
# G = 2 and depthwise (G = C), with and without bias, stride 2, padding, dilation with groups;
# every row checked fused == twin == numerical at first and second order.
GROUPED_CONV_ROWS = [
    conv_torch_row((2, 4, 6, 6), (4, 2, 3, 3), 1, 1, 1, 2),                   # G=2
    conv_torch_row((2, 4, 7, 6), (6, 2, 3, 2), 2, (1, 0), 1, 2, bias=False),  # G=2, stride 2
    conv_torch_row((2, 4, 7, 7), (4, 1, 3, 3), 2, 1, 1, 4),                   # depthwise
    conv_torch_row((2, 3, 5, 6), (3, 1, 3, 3), 1, 1, 1, 3, bias=False),       # depthwise
    conv_torch_row((1, 4, 8, 7), (4, 1, 2, 3), 1, 2, 2, 4),          # depthwise, dilation 2
    conv_torch_row((2, 6, 8, 8), (6, 2, 3, 2), 2, 1, (2, 1), 3),     # G=3, dilated, stride 2
    conv_torch_row((1, 3, 6, 6), (6, 1, 3, 3), 1, "same", 1, 3),     # channel multiplier 2
    conv_transpose_row((2, 4, 3, 3), (4, 1, 3, 3), 2, 1, 1, 4),      # transposed depthwise
    conv_transpose_row((1, 4, 3, 4), (4, 3, 2, 2), 2, 0, 0, 2, bias=False),   # transposed G=2
]
ROWS += GROUPED_CONV_ROWS
