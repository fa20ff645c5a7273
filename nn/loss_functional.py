"""PyTorch's loss functions (`F.cross_entropy`, `F.mse_loss`, ...): names, arguments and values
as torch.nn.functional's, gradients from the tape.

Every loss is a composition of primitive ops (differentiable again, to any order), except the
elementwise binary cross-entropy, which keeps PyTorch's clamped formula as a `Function` of its
own (see `BinaryCrossEntropy`). `reduction` is "mean", "sum" or "none" everywhere (kl_div also
takes "batchmean"). Arguments after the ones PyTorch takes positionally are keyword-only here,
because PyTorch's deprecated `size_average` / `reduce` sit in those positions: a positional
call either means what it means in PyTorch or fails (docs/nn.md, "Losses").
"""

from __future__ import annotations

import warnings

import numpy as np

import autotensor as at
from autotensor import validate
from autotensor.function import Function, call
from autotensor.ops.elementwise import Clip, Log, Log1p
from autotensor.tensor import Tensor, _data, _tensor

REDUCTIONS = ("mean", "sum", "none")
# NOTE: PyTorch's binary cross-entropy gradient floors x (1 - x) at 1e-12 rounded to float32
# (its constant is a C float), so this is that float32 number, not the double 1e-12.
BCE_EPS = float(np.float32(1e-12))


# ---- shared argument handling --------------------------------------------------------------------
def _reduction(fn, reduction, allowed=REDUCTIONS):
    return validate.choice(fn, "reduction", reduction, allowed)


def _reduce(loss, reduction):
    """The elementwise `loss` summed, averaged (nan over zero elements, as torch) or kept."""
    if reduction == "none":
        return loss
    return at.sum(loss) if reduction == "sum" else at.mean(loss)


def _divide(total, denominator):
    """total / denominator; a zero denominator (every target ignored) gives nan, as torch does,
    while the gradient stays 0 (total's terms are all weighted by 0 then)."""
    denominator = float(denominator)
    return total * (1.0 / denominator) if denominator else total + float("nan")


def _pair(fn, input, target):  # noqa: A002 (PyTorch's argument names)
    """input and target as Tensors; a target of another shape is broadcast with a warning, as
    PyTorch's regression losses do, and one that does not broadcast is refused."""
    x, t = _tensor(input), _tensor(target)
    if x.shape != t.shape:
        try:
            np.broadcast_shapes(x.shape, t.shape)
        except ValueError:
            raise ValueError(f"{fn}: target of shape {t.shape} does not broadcast with input of "
                             f"shape {x.shape}") from None
        warnings.warn(f"{fn}: using a target size {t.shape} that is different to the input size "
                      f"{x.shape}. This will likely lead to incorrect results due to "
                      "broadcasting. Please ensure they have the same size.", stacklevel=3)
    return x, t


def _same_shape(fn, x, t):
    if x.shape != t.shape:
        raise ValueError(f"{fn}: target must have the input's shape {x.shape}, got {t.shape}")


def _constant(fn, name, value, dtype, shape=None):
    """A weight-like argument as an ndarray in `dtype` (None stays None). PyTorch does not
    differentiate these, so a Tensor that requires grad is refused rather than ignored."""
    if value is None:
        return None
    if isinstance(value, Tensor) and value.requires_grad:
        raise TypeError(f"{fn}: {name} is a constant (PyTorch has no gradient for it either): "
                        f"pass {name}.detach()")
    a = np.asarray(_data(value))
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{fn}: {name} must hold numbers, got dtype {a.dtype}")
    if shape is not None and a.shape != shape:
        raise ValueError(f"{fn}: {name} must have shape {shape}, one entry per class, got "
                         f"{a.shape}")
    return a.astype(dtype if dtype.kind == "f" else np.float64)


def _broadcasts(fn, name, a, shape):
    try:
        np.broadcast_shapes(a.shape, shape)
    except ValueError:
        raise ValueError(f"{fn}: {name} of shape {a.shape} does not broadcast with the "
                         f"target's shape {shape}") from None


# ---- classification: nll_loss, cross_entropy -----------------------------------------------------
def _class_dim(fn, x):
    if x.ndim < 1:
        raise ValueError(f"{fn}: input must have a class dimension: (C,), (N, C) or "
                         f"(N, C, d1, ...), got shape {x.shape}")
    return 0 if x.ndim == 1 else 1


def _class_target(fn, x, target, ignore_index):
    """The class-index target as an int ndarray of x's shape without its class dimension, and
    the mask of entries that count (not ignore_index); out-of-range classes are refused."""
    cdim = _class_dim(fn, x)
    if not validate.is_int(ignore_index):
        raise ValueError(f"{fn}: ignore_index must be an integer, got {ignore_index!r}")
    t = np.asarray(_data(target))
    if t.dtype.kind not in "iu":
        raise ValueError(f"{fn}: a target of class indices must be an integer array or Tensor, "
                         f"got dtype {t.dtype} (class probabilities are a float target of the "
                         f"input's shape {x.shape})")
    expected = x.shape[:cdim] + x.shape[cdim + 1:]
    if t.shape != expected:
        raise ValueError(f"{fn}: target must have shape {expected} for input of shape "
                         f"{x.shape}, got {t.shape}")
    n_classes = x.shape[cdim]
    keep = t != ignore_index
    bad = keep & ((t < 0) | (t >= n_classes))
    if bad.any():
        raise ValueError(f"{fn}: target values must lie in [0, {n_classes}) for input of shape "
                         f"{x.shape} (or equal ignore_index={ignore_index}), got {t[bad][0]}")
    return t, keep, cdim


def _nll(fn, logp, target, weight, ignore_index, reduction):
    """nll_loss on log-probabilities `logp`; also returns what cross_entropy's label smoothing
    reuses: (loss, (keep mask, class weights or None, each entry's target weight, class dim))."""
    t, keep, cdim = _class_target(fn, logp, target, ignore_index)
    w = _constant(fn, "weight", weight, logp.dtype, (logp.shape[cdim],))
    safe = np.where(keep, t, 0)            # ignored entries pick class 0, then weigh 0
    wt = keep.astype(logp.dtype) if w is None else np.where(keep, w[safe], 0).astype(logp.dtype)
    picked = at.squeeze(at.gather(logp, cdim, np.expand_dims(safe, cdim)), cdim)
    losses = -picked * wt
    if reduction == "none":
        return losses, (keep, w, wt, cdim)
    total = at.sum(losses)
    # NOTE: torch's weighted mean divides by the sum of the counted targets' weights.
    return (total if reduction == "sum" else _divide(total, wt.sum())), (keep, w, wt, cdim)


def nll_loss(input, target, weight=None, *, ignore_index=-100, reduction="mean"):  # noqa: A002
    """-input[n, target[n]] (times weight[target[n]]) for log-probabilities input (N, C),
    (N, C, d1, ...) or (C,); target int (N,), (N, d1, ...) or (). The mean divides by the
    summed weights of the targets that are not ignore_index."""
    _reduction("nll_loss", reduction)
    return _nll("nll_loss", _tensor(input), target, weight, ignore_index, reduction)[0]


def cross_entropy(input, target, weight=None, *, ignore_index=-100,  # noqa: A002
                  reduction="mean", label_smoothing=0.0):
    """nll_loss(log_softmax(input, class dim), target) for class-index targets; for a float
    target of the input's shape (class probabilities), -sum_c weight[c] target[c] logp[c].

    label_smoothing eps mixes in the uniform distribution as torch does: for class indices,
    (1 - eps) * nll + eps / C * (-sum_c weight[c] logp[c]), reduced like nll (the mean divides
    by the same summed target weights); for probabilities, target * (1 - eps) + eps / C.
    """
    fn = "cross_entropy"
    _reduction(fn, reduction)
    eps = float(validate.number(fn, "label_smoothing", label_smoothing, "in [0, 1]"))
    x = _tensor(input)
    cdim = _class_dim(fn, x)
    n_classes = x.shape[cdim]
    # NOTE: log_softmax subtracts the max first: stable for huge logits.
    logp = at.log_softmax(x, dim=cdim)
    if np.shape(_data(target)) == x.shape:
        return _cross_entropy_probs(logp, target, weight, ignore_index, reduction, eps)
    nll, (keep, w, wt, cdim) = _nll(fn, logp, target, weight, ignore_index, reduction)
    if eps == 0.0:
        return nll
    per_class = logp if w is None else logp * w.reshape((-1,) + (1,) * (x.ndim - cdim - 1))
    smooth = -at.sum(per_class, dim=cdim) * keep.astype(x.dtype)
    if reduction == "mean":
        smooth = _divide(at.sum(smooth), wt.sum())
    elif reduction == "sum":
        smooth = at.sum(smooth)
    return nll * (1.0 - eps) + smooth * (eps / n_classes)


def _cross_entropy_probs(logp, target, weight, ignore_index, reduction, eps):
    fn = "cross_entropy"
    t = _tensor(target)
    if t.dtype.kind != "f":
        raise ValueError(f"{fn}: a target of the input's shape {logp.shape} holds class "
                         f"probabilities and must be floating point, got dtype {t.dtype}")
    if not validate.is_int(ignore_index) or ignore_index >= 0:
        raise ValueError(f"{fn}: ignore_index is not supported for class-probability targets "
                         f"(leave it at a negative integer), got {ignore_index!r}")
    cdim = 0 if logp.ndim == 1 else 1
    n_classes = logp.shape[cdim]
    w = _constant(fn, "weight", weight, logp.dtype, (n_classes,))
    if eps > 0:
        t = t * (1.0 - eps) + eps / n_classes
    terms = logp * t
    if w is not None:
        terms = terms * w.reshape((-1,) + (1,) * (logp.ndim - cdim - 1))
    if reduction == "none":
        return -at.sum(terms, dim=cdim)
    total = -at.sum(terms)
    if reduction == "sum":
        return total
    # NOTE: torch's mean over probability targets divides by the number of samples (every
    # position of every batch entry), not by the weights.
    n = logp.size // n_classes if n_classes else 0
    return total * (1.0 / n) if n else total * float("nan")


# ---- regression: mse, l1, smooth_l1, huber ------------------------------------------------------
def mse_loss(input, target, *, reduction="mean"):  # noqa: A002
    """(input - target)**2; a target of another shape broadcasts (with a warning, as torch)."""
    _reduction("mse_loss", reduction)
    x, t = _pair("mse_loss", input, target)
    d = x - t
    return _reduce(d * d, reduction)


def l1_loss(input, target, *, reduction="mean"):  # noqa: A002
    """|input - target|. NOTE: the gradient at input == target is 0 (torch's sign)."""
    _reduction("l1_loss", reduction)
    x, t = _pair("l1_loss", input, target)
    return _reduce(at.abs(x - t), reduction)


def _quadratic_then_linear(d, cut, linear_scale, quadratic_scale):
    """quadratic_scale * 0.5 d**2 where |d| < cut, else linear_scale * (|d| - 0.5 cut).

    NOTE: at |d| == cut the linear branch is taken, as torch does: the same value and first
    derivative either way, and the second derivative 0 there (torch's double backward)."""
    a = at.abs(d)
    inside = a.data < cut
    return at.where(inside, d * d * (0.5 * quadratic_scale), (a - 0.5 * cut) * linear_scale)


def smooth_l1_loss(input, target, *, reduction="mean", beta=1.0):  # noqa: A002
    """0.5 d**2 / beta where |d| < beta, else |d| - 0.5 beta, d = input - target
    (beta == 0 is l1_loss, as torch)."""
    fn = "smooth_l1_loss"
    _reduction(fn, reduction)
    beta = float(validate.number(fn, "beta", beta, ">= 0"))
    x, t = _pair(fn, input, target)
    d = x - t
    if beta == 0.0:
        return _reduce(at.abs(d), reduction)
    return _reduce(_quadratic_then_linear(d, beta, 1.0, 1.0 / beta), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0):  # noqa: A002
    """0.5 d**2 where |d| < delta, else delta (|d| - 0.5 delta), d = input - target."""
    fn = "huber_loss"
    _reduction(fn, reduction)
    delta = float(validate.number(fn, "delta", delta, "> 0"))
    x, t = _pair(fn, input, target)
    return _reduce(_quadratic_then_linear(x - t, delta, delta, 1.0), reduction)


# ---- binary cross-entropy ------------------------------------------------------------------------
class BinaryCrossEntropy(Function):
    """z = -(t max(ln x, -100) + (1 - t) max(ln(1 - x), -100)), x in [0, 1].

    A rule of its own for stability at the ends, where the composite's gradient would be
    0 * inf = nan: as PyTorch, dz/dx = (x - t) / max(x (1 - x), 1e-12), finite at x = 0 and
    x = 1 (a saturated sigmoid), and dz/dt = ln(1 - x) - ln x (unclamped, as PyTorch's).
    """

    def forward(self, x, t):
        self.saved = (x, t)
        with np.errstate(divide="ignore"):         # ln 0 = -inf, then clamped to -100
            return -(t * np.maximum(np.log(x), -100) + (1 - t) * np.maximum(np.log1p(-x), -100))

    def backward(self, g):
        x, t = self.saved
        gx = g * (x - t) / call(Clip, x * (1 - x), lo=BCE_EPS)
        with np.errstate(divide="ignore"):
            return gx, g * (call(Log1p, -x) - call(Log, x))


def binary_cross_entropy(input, target, weight=None, *, reduction="mean"):  # noqa: A002
    """-weight (target ln input + (1 - target) ln(1 - input)), each log clamped at -100 as torch;
    input holds probabilities in [0, 1], target has its shape, weight broadcasts to it."""
    fn = "binary_cross_entropy"
    _reduction(fn, reduction)
    x, t = _tensor(input), _tensor(target)
    _same_shape(fn, x, t)
    values = x.data
    if not np.all((values >= 0) & (values <= 1)):
        raise ValueError(f"{fn}: every element of input must lie in [0, 1] (probabilities; "
                         "binary_cross_entropy_with_logits takes scores)")
    loss = BinaryCrossEntropy.apply(x, t)
    w = _constant(fn, "weight", weight, loss.dtype)
    if w is not None:
        _broadcasts(fn, "weight", w, t.shape)
        loss = loss * w
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, *,  # noqa: A002
                                     reduction="mean", pos_weight=None):
    """binary_cross_entropy(sigmoid(input), target) in a stable form:
    (1 - t) z + (1 + (pos_weight - 1) t) softplus(-z); pos_weight (C,) weighs the positive
    term of each class (it broadcasts against the target's last dimension)."""
    fn = "binary_cross_entropy_with_logits"
    _reduction(fn, reduction)
    z, t = _tensor(input), _tensor(target)
    _same_shape(fn, z, t)
    dtype = np.result_type(z.dtype, t.dtype)
    w = _constant(fn, "weight", weight, dtype)
    pw = _constant(fn, "pos_weight", pos_weight, dtype)
    # NOTE: softplus(-z) = max(-z, 0) + ln(1 + e**-|z|) never overflows. |z| and max(-z, 0)
    # are picked by a constant mask, so the sum is differentiated branch by branch: at z = 0
    # its slope is -1/2 (the kinks of |z| and max(-z, 0) would otherwise cancel wrongly).
    neg = z.data < 0
    softplus_neg = at.where(neg, -z, 0.0) + at.log1p(at.exp(-at.where(neg, -z, z)))
    if pw is None:
        loss = (1 - t) * z + softplus_neg
    else:
        _broadcasts(fn, "pos_weight", pw, t.shape)
        loss = (1 - t) * z + (t * (pw - 1) + 1) * softplus_neg
    if w is not None:
        _broadcasts(fn, "weight", w, t.shape)
        loss = loss * w
    return _reduce(loss, reduction)


# ---- kl_div ------------------------------------------------------------------------------------
def kl_div(input, target, *, reduction="mean", log_target=False):  # noqa: A002
    """target (ln target - input) for log-probabilities input (exp(target) (target - input)
    with log_target=True). "batchmean" divides the sum by input.shape[0], KL's definition;
    "mean" divides by the number of elements, as torch (which warns about it, as here)."""
    fn = "kl_div"
    _reduction(fn, reduction, REDUCTIONS + ("batchmean",))
    if not isinstance(log_target, (bool, np.bool_)):
        raise ValueError(f"{fn}: log_target must be a bool, got {log_target!r}")
    x, t = _pair_silent(fn, input, target)
    if log_target:
        loss = at.exp(t) * (t - x)
    else:
        # NOTE: 0 ln 0 = 0 (torch's xlogy): the log sees 1 where the target is 0.
        positive = t.data > 0
        loss = at.where(positive, t * at.log(at.where(positive, t, 1.0)), 0.0) - t * x
    if reduction == "mean":
        warnings.warn("kl_div: reduction='mean' divides the total loss by both the batch size "
                      "and the support size. 'batchmean' divides only by the batch size, and "
                      "aligns with the KL div math definition ('mean' is PyTorch's, which warns "
                      "the same).", stacklevel=2)
    if reduction != "batchmean":
        return _reduce(loss, reduction)
    total = at.sum(loss)
    if x.ndim == 0:                # torch: a 0-d input's batchmean is its sum
        return total
    return total * (1.0 / x.shape[0]) if x.shape[0] else total * float("nan")


def _pair_silent(fn, input, target):  # noqa: A002
    """input and target as Tensors that broadcast together (torch's kl_div does not warn)."""
    x, t = _tensor(input), _tensor(target)
    try:
        np.broadcast_shapes(x.shape, t.shape)
    except ValueError:
        raise ValueError(f"{fn}: target of shape {t.shape} does not broadcast with input of "
                         f"shape {x.shape}") from None
    return x, t
