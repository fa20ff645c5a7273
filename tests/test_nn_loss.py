"""PyTorch's losses (nn/loss_functional.py, nn/loss.py) against torch in float64: the loss, the
input gradient and, where torch has one, the target gradient, for every reduction and option;
ties and kinks; second order; the Modules; bad arguments. Numerical gradchecks of every loss
run from the op table (tests/test_ops_gradcheck.py) and below, with or without torch."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from torch_compare import assert_matches_torch

import autotensor as at
from autotensor import nn
from autotensor.nn import functional as F

REDUCTIONS = ["mean", "sum", "none"]
rng = np.random.default_rng(12)


def close(ours, theirs):
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-13)


def both(torch, ours, theirs, arrays, grad=None, kwargs=None, torch_kwargs=None):
    """Call ours(*Tensors, **kwargs) and theirs(*torch tensors, **torch_kwargs) on `arrays`
    (float arrays get a gradient where `grad` says so, integer ones are constants); compare
    outputs and the gradients of a random upstream gradient, to rtol 1e-10 and atol 1e-13."""
    kwargs = kwargs or {}
    torch_kwargs = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v
                    for k, v in (kwargs if torch_kwargs is None else torch_kwargs).items()}
    return assert_matches_torch(torch, lambda *xs: ours(*xs, **kwargs),
                                lambda *xs: theirs(*xs, **torch_kwargs), arrays,
                                grad=grad or None, atol=1e-13)


# ---- cross_entropy and nll_loss ------------------------------------------------------------------
def class_case(shape, ignore=None):
    """Scores of `shape` (class dim 1, or 0 when 1-D) and class-index targets, some equal to
    `ignore`."""
    x = rng.standard_normal(shape)
    c = shape[0] if len(shape) == 1 else shape[1]
    tshape = () if len(shape) == 1 else shape[:1] + shape[2:]
    y = rng.integers(0, c, tshape)
    if ignore is not None and y.ndim:
        y.flat[::3] = ignore
    return x, y, c


SHAPES = [(6, 5), (3, 4, 2, 3), (5,)]
CE_OPTIONS = {
    "plain": {},
    "weight": {"weight": True},
    "ignore": {"ignore_index": -100},
    "ignore-2": {"ignore_index": 2},
    "smoothing": {"label_smoothing": 0.2},
    "weight-smoothing": {"weight": True, "label_smoothing": 0.3},
    "weight-ignore-smoothing": {"weight": True, "ignore_index": 1, "label_smoothing": 0.15},
    "smoothing-1": {"label_smoothing": 1.0},
}


def class_kwargs(options, c, reduction):
    kwargs = dict(options, reduction=reduction)
    if kwargs.pop("weight", False):
        kwargs["weight"] = rng.uniform(0.2, 2.0, c)
    return kwargs


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("option", list(CE_OPTIONS))
def test_cross_entropy_with_class_indices_equals_torch(torch, option, shape, reduction):
    options = CE_OPTIONS[option]
    x, y, c = class_case(shape, options.get("ignore_index"))
    both(torch, F.cross_entropy, torch.nn.functional.cross_entropy, [x, y],
         kwargs=class_kwargs(options, c, reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("option", ["plain", "weight", "ignore", "ignore-2"])
def test_nll_loss_equals_torch(torch, option, shape, reduction):
    options = CE_OPTIONS[option]
    x, y, c = class_case(shape, options.get("ignore_index"))
    logp = np.log(rng.dirichlet(np.ones(c), size=x.size // c)).reshape(x.shape) if x.ndim == 2 \
        else x
    both(torch, F.nll_loss, torch.nn.functional.nll_loss, [logp, y],
         kwargs=class_kwargs(options, c, reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("option", ["plain", "weight", "smoothing", "weight-smoothing"])
def test_cross_entropy_with_class_probabilities_equals_torch_with_target_gradient(
        torch, option, shape, reduction):
    x = rng.standard_normal(shape)
    c = shape[0] if len(shape) == 1 else shape[1]
    p = rng.dirichlet(np.ones(c), size=x.size // c)
    p = p.reshape(shape) if len(shape) == 1 else np.moveaxis(
        p.reshape((shape[0],) + shape[2:] + (c,)), -1, 1)
    both(torch, F.cross_entropy, torch.nn.functional.cross_entropy, [x, p], grad=[True, True],
         kwargs=class_kwargs(CE_OPTIONS[option], c, reduction))


@pytest.mark.parametrize("fn, kwargs", [("nll_loss", {}), ("cross_entropy", {}),
                                        ("cross_entropy", {"label_smoothing": 0.2}),
                                        ("cross_entropy", {"weight": np.arange(1, 5.0)})])
def test_every_target_ignored_gives_nan_and_a_zero_gradient_as_torch(torch, fn, kwargs):
    x = rng.standard_normal((3, 4))
    y = np.full(3, -100)
    out = both(torch, getattr(F, fn), getattr(torch.nn.functional, fn), [x, y], kwargs=kwargs)
    assert np.isnan(out.item())


def test_cross_entropy_is_stable_for_huge_scores(torch):
    x = np.array([[1000.0, -1000.0, 0.0], [-800.0, 800.0, 799.0]])
    out = both(torch, F.cross_entropy, torch.nn.functional.cross_entropy, [x, np.array([2, 1])],
               kwargs={"label_smoothing": 0.1})
    assert np.isfinite(out.item())


def test_integer_tensor_targets_and_empty_batches(torch):
    x, y, _ = class_case((4, 3))
    for fn in (F.cross_entropy, F.nll_loss):
        assert fn(at.Tensor(x), at.Tensor(y)).item() == fn(at.Tensor(x), y).item()
    # An empty batch: a nan mean and an empty gradient, as torch.
    for target in (np.zeros(0, int), np.zeros((0, 3))):
        out = both(torch, F.cross_entropy, torch.nn.functional.cross_entropy,
                   [np.zeros((0, 3)), target], grad=[True, False])
        assert np.isnan(out.item())


# ---- regression losses ---------------------------------------------------------------------------
REGRESSION = [
    ("mse_loss", {}), ("l1_loss", {}), ("smooth_l1_loss", {}), ("smooth_l1_loss", {"beta": 0.4}),
    ("smooth_l1_loss", {"beta": 0.0}), ("huber_loss", {}), ("huber_loss", {"delta": 2.5}),
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name, options", REGRESSION, ids=lambda v: str(v))
def test_regression_losses_equal_torch_with_target_gradient(torch, name, options, reduction):
    x, t = rng.standard_normal((4, 5)) * 2, rng.standard_normal((4, 5))
    both(torch, getattr(F, name), getattr(torch.nn.functional, name), [x, t], grad=[True, True],
         kwargs=dict(options, reduction=reduction))


@pytest.mark.parametrize("name, options", REGRESSION, ids=lambda v: str(v))
def test_regression_losses_follow_torch_at_ties_and_kinks(torch, name, options):
    # d = x - t exactly 0, exactly +-beta / +-delta, and beside them.
    cut = options.get("beta", options.get("delta", 1.0))
    d = np.array([0.0, cut, -cut, 0.5 * cut, 1.5 * cut + 0.1, -2.0, 1e-3])
    t = rng.standard_normal(d.shape).round(2)
    both(torch, getattr(F, name), getattr(torch.nn.functional, name), [t + d, t],
         grad=[True, True], kwargs={"reduction": "sum"})


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"])
def test_a_target_of_another_shape_broadcasts_with_torch_warning(torch, name):
    x, t = rng.standard_normal((3, 4)), rng.standard_normal(4)
    with pytest.warns(UserWarning, match="different to the input size"):
        both(torch, getattr(F, name), getattr(torch.nn.functional, name), [x, t],
             kwargs={"reduction": "none"})
    with pytest.raises(ValueError, match=r"target of shape \(3,\) does not broadcast"):
        getattr(F, name)(at.Tensor(x), np.zeros(3))


# ---- binary cross-entropy ------------------------------------------------------------------------
BCE_WEIGHTS = {"none": None, "full": (4, 5), "per-column": (5,), "per-row": (4, 1)}


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight", list(BCE_WEIGHTS))
def test_binary_cross_entropy_equals_torch_with_target_gradient(torch, weight, reduction):
    p, t = rng.uniform(0.02, 0.98, (4, 5)), rng.uniform(0, 1, (4, 5))
    kwargs = {"reduction": reduction}
    if BCE_WEIGHTS[weight]:
        kwargs["weight"] = rng.uniform(0.2, 2.0, BCE_WEIGHTS[weight])
    both(torch, F.binary_cross_entropy, torch.nn.functional.binary_cross_entropy, [p, t],
         grad=[True, True], kwargs=kwargs)


def test_binary_cross_entropy_at_probabilities_0_and_1_follows_torch_clamps(torch):
    # A saturated sigmoid gives exactly 0 or 1: torch clamps each log at -100 and the input
    # gradient's denominator at 1e-12, so the loss and the input gradient stay finite.
    p = np.array([0.0, 1.0, 0.0, 1.0, 1e-50, 0.5])
    t = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.3])
    out = both(torch, F.binary_cross_entropy, torch.nn.functional.binary_cross_entropy, [p, t],
               grad=[True, False], kwargs={"reduction": "sum"})
    assert np.isfinite(out.item())


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("option", ["plain", "pos_weight", "pos_weight-weight", "weight-row"])
def test_bce_with_logits_equals_torch_with_target_gradient(torch, option, reduction):
    z, t = rng.standard_normal((4, 3, 5)) * 3, rng.uniform(0, 1, (4, 3, 5))
    kwargs = {"reduction": reduction}
    if "pos_weight" in option:
        kwargs["pos_weight"] = rng.uniform(0.2, 3.0, 5)       # broadcast over the last dim
    if option.endswith("-weight"):
        kwargs["weight"] = rng.uniform(0.2, 2.0, (4, 3, 5))
    if option == "weight-row":
        kwargs["weight"] = rng.uniform(0.2, 2.0, (4, 1, 1))
    both(torch, F.binary_cross_entropy_with_logits,
         torch.nn.functional.binary_cross_entropy_with_logits, [z, t], grad=[True, True],
         kwargs=kwargs)


@pytest.mark.parametrize("pos_weight", [None, np.array([0.5, 2.0, 1.0])])
def test_bce_with_logits_at_zero_and_huge_logits(torch, pos_weight):
    # z = 0 sits where |z| and max(-z, 0) have kinks: the slope must still be sigmoid(0) - t.
    z = np.array([[0.0, 800.0, -800.0], [0.0, -0.0, 40.0]])
    t = np.array([[1.0, 0.0, 1.0], [0.3, 0.7, 1.0]])
    kwargs = {"reduction": "sum"} if pos_weight is None else {"reduction": "sum",
                                                              "pos_weight": pos_weight}
    out = both(torch, F.binary_cross_entropy_with_logits,
               torch.nn.functional.binary_cross_entropy_with_logits, [z, t], grad=[True, True],
               kwargs=kwargs)
    assert np.isfinite(out.item())


# ---- kl_div -------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none", "mean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_equals_torch_with_target_gradient(torch, reduction, log_target):
    x = np.log(rng.dirichlet(np.ones(5), size=4))
    t = rng.dirichlet(np.ones(5), size=4)
    t = np.log(t) if log_target else t
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # 'mean' warns in both libraries
        both(torch, F.kl_div, torch.nn.functional.kl_div, [x, t], grad=[True, True],
             kwargs={"reduction": reduction, "log_target": log_target})


def test_kl_div_zero_targets_count_zero_and_mean_warns_as_torch(torch):
    x = np.log(rng.dirichlet(np.ones(4), size=3))
    t = np.array([[0.0, 0.5, 0.5, 0.0], [1.0, 0.0, 0.0, 0.0], [0.25] * 4])
    # The target gradient at t = 0 is nan in torch (d/dt t ln t is unbounded): not compared.
    both(torch, F.kl_div, torch.nn.functional.kl_div, [x, t], grad=[True, False],
         kwargs={"reduction": "batchmean"})
    with pytest.warns(UserWarning, match="batchmean"):
        F.kl_div(at.Tensor(x), t)


def test_kl_div_batchmean_of_a_0d_input_is_its_sum(torch):
    both(torch, F.kl_div, torch.nn.functional.kl_div, [np.array(-0.7), np.array(0.4)],
         kwargs={"reduction": "batchmean"})


# ---- second order -------------------------------------------------------------------------------
SECOND_ORDER = {
    "cross_entropy": ((6, 4), {"weight": np.linspace(0.5, 2, 4), "label_smoothing": 0.1}),
    "binary_cross_entropy_with_logits": ((3, 4), {"pos_weight": np.linspace(0.5, 2, 4)}),
    "binary_cross_entropy": ((3, 4), {}),
    "smooth_l1_loss": ((3, 4), {"beta": 0.7}),
    "huber_loss": ((3, 4), {"delta": 0.8}),
}      # kl_div, nll_loss, l1_loss are linear in the input: their second derivative is 0


@pytest.mark.parametrize("name", list(SECOND_ORDER))
def test_second_derivatives_equal_torch(torch, name):
    shape, kwargs = SECOND_ORDER[name]
    x = rng.uniform(0.05, 0.95, shape) if name == "binary_cross_entropy" else \
        rng.standard_normal(shape)
    t = np.array([0, 3, 1, 2, 2, 0]) if name == "cross_entropy" else rng.uniform(0.1, 1, shape)
    v = rng.standard_normal(shape)
    a = at.Tensor(x, requires_grad=True)
    (g,) = at.grad(getattr(F, name)(a, t, **kwargs), [a], create_graph=True)
    (hv,) = at.grad((g * v).sum(), [a])
    b = torch.tensor(x, requires_grad=True)
    tk = {k: torch.tensor(w) if isinstance(w, np.ndarray) else w for k, w in kwargs.items()}
    (gt,) = torch.autograd.grad(getattr(torch.nn.functional, name)(b, torch.tensor(t), **tk), [b],
                                create_graph=True)
    (hvt,) = torch.autograd.grad((gt * torch.tensor(v)).sum(), [b])
    close(g.data, gt.detach().numpy())
    close(np.asarray(hv.data if isinstance(hv, at.Tensor) else hv), hvt.numpy())


def test_target_gradients_pass_a_numerical_check_without_torch():
    x, t = rng.standard_normal((3, 4)), rng.uniform(0.1, 0.9, (3, 4))
    cases = [
        lambda a, b: F.mse_loss(a, b),
        lambda a, b: F.huber_loss(a, b, delta=0.8),
        lambda a, b: F.binary_cross_entropy(a.sigmoid(), b, reduction="sum"),
        lambda a, b: F.binary_cross_entropy_with_logits(a, b, pos_weight=np.arange(1, 5.0)),
        lambda a, b: F.kl_div(a, b, reduction="batchmean", log_target=False),
        lambda a, b: F.cross_entropy(a, b.softmax(dim=1), label_smoothing=0.2),
    ]
    for fn in cases:
        inputs = [at.Tensor(x, requires_grad=True), at.Tensor(t, requires_grad=True)]
        assert at.gradcheck(fn, inputs)
        assert at.gradgradcheck(fn, inputs)


# ---- the Modules --------------------------------------------------------------------------------
W4 = np.array([0.5, 1.5, 1.0, 2.0])
MODULES = [
    ("CrossEntropyLoss", {"weight": W4, "ignore_index": 1, "label_smoothing": 0.1}, "class"),
    ("CrossEntropyLoss", {"reduction": "sum"}, "probs"),
    ("NLLLoss", {"weight": W4, "reduction": "none"}, "class"),
    ("MSELoss", {"reduction": "sum"}, "real"),
    ("L1Loss", {}, "real"),
    ("SmoothL1Loss", {"beta": 0.5}, "real"),
    ("HuberLoss", {"delta": 0.7, "reduction": "none"}, "real"),
    ("BCELoss", {"weight": W4}, "prob"),
    ("BCEWithLogitsLoss", {"weight": W4, "pos_weight": W4[::-1].copy()}, "real"),
    ("KLDivLoss", {"reduction": "batchmean", "log_target": True}, "real"),
]


@pytest.mark.parametrize("name, kwargs, kind", MODULES, ids=[m[0] for m in MODULES])
def test_loss_modules_equal_torch_modules(torch, name, kwargs, kind):
    x = rng.uniform(0.05, 0.95, (5, 4)) if kind == "prob" else rng.standard_normal((5, 4))
    t = {"class": np.array([0, 3, 1, 1, 2]), "probs": rng.dirichlet(np.ones(4), 5)}.get(
        kind, rng.uniform(0, 1, (5, 4)))
    ours = getattr(nn, name)(**kwargs)
    theirs = getattr(torch.nn, name)(**{k: torch.tensor(v) if isinstance(v, np.ndarray) else v
                                        for k, v in kwargs.items()})
    both(torch, ours, theirs, [x, t], grad=[True, t.dtype.kind == "f"])
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
    for k, v in theirs.state_dict().items():
        close(ours.state_dict()[k], v.numpy())


def test_loss_modules_keep_weights_as_buffers_and_check_arguments_at_construction():
    m = nn.BCEWithLogitsLoss(pos_weight=at.Tensor(W4))
    assert list(m.state_dict()) == ["pos_weight"] and not list(m.parameters())
    assert isinstance(m.pos_weight, np.ndarray)
    assert list(nn.CrossEntropyLoss().state_dict()) == []
    with pytest.raises(ValueError, match="reduction must be one of"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match='"batchmean"'):
        nn.KLDivLoss(reduction="elementwise")
    assert nn.KLDivLoss(reduction="batchmean").reduction == "batchmean"
    with pytest.raises(ValueError, match="label_smoothing"):
        nn.CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(ValueError, match="beta"):
        nn.SmoothL1Loss(beta=-1)
    with pytest.raises(ValueError, match="delta"):
        nn.HuberLoss(delta=0)
    with pytest.raises(TypeError):
        nn.MSELoss(None, None, "sum")        # torch's deprecated positional slots: refused



@pytest.mark.parametrize("name, kwargs, kind", MODULES, ids=[m[0] for m in MODULES])
def test_loss_modules_pass_gradcheck(name, kwargs, kind):
    # Runs without torch; every loss module of nn.__all__ is covered (the module meta-test in
    # tests/test_nn_module.py leaves the losses, which take a target, to this one).
    assert {n for n in nn.__all__ if n.endswith("Loss")} == {m[0] for m in MODULES}
    r = np.random.default_rng(3)
    x = r.uniform(0.05, 0.95, (5, 4)) if kind == "prob" else r.standard_normal((5, 4))
    t = {"class": np.array([0, 3, 1, 1, 2]), "probs": r.dirichlet(np.ones(4), 5)}.get(
        kind, r.uniform(0.1, 0.9, (5, 4)))
    m = getattr(nn, name)(**kwargs)
    inputs = [at.Tensor(x, requires_grad=True)]
    if t.dtype.kind == "f":
        inputs.append(at.Tensor(t, requires_grad=True))
        assert at.gradcheck(lambda a, b: m(a, b), inputs)
    else:
        assert at.gradcheck(lambda a: m(a, t), inputs)

# ---- bad arguments ------------------------------------------------------------------------------
X = at.Tensor(rng.standard_normal((3, 4)))
BAD = [
    (lambda: F.mse_loss(X, X, reduction="avg"), ValueError,
     r'mse_loss: reduction must be one of "mean", "sum", "none"'),
    (lambda: F.kl_div(X, X, reduction="avg"), ValueError, '"batchmean"'),
    (lambda: F.cross_entropy(X, np.array([0, 4, 1])), ValueError,
     r"target values must lie in \[0, 4\) for input of shape \(3, 4\).*got 4"),
    (lambda: F.nll_loss(X, np.array([0, -1, 1])), ValueError, r"lie in \[0, 4\).*got -1"),
    (lambda: F.cross_entropy(X, np.array([0, 1])), ValueError,
     r"target must have shape \(3,\) for input of shape \(3, 4\), got \(2,\)"),
    (lambda: F.cross_entropy(X, np.array([0.0, 1.0, 2.0])), ValueError,
     "integer array or Tensor, got dtype float64"),
    (lambda: F.cross_entropy(X, np.zeros((3, 4), int)), ValueError,
     "class probabilities and must be floating point"),
    (lambda: F.cross_entropy(X, np.zeros((3, 4)), ignore_index=0), ValueError,
     "ignore_index is not supported for class-probability targets"),
    (lambda: F.cross_entropy(X, np.array([0, 1, 2]), weight=np.ones(3)), ValueError,
     r"weight must have shape \(4,\)"),
    (lambda: F.cross_entropy(X, np.array([0, 1, 2]), label_smoothing=-0.1), ValueError,
     "label_smoothing must be a finite number in"),
    (lambda: F.cross_entropy(X, np.array([0, 1, 2]), ignore_index=1.5), ValueError,
     "ignore_index must be an integer"),
    (lambda: F.cross_entropy(at.Tensor(2.0), np.array(0)), ValueError, "class dimension"),
    (lambda: F.cross_entropy(X, np.array([0, 1, 2]),
                             weight=at.Tensor(np.ones(4), requires_grad=True)), TypeError,
     r"weight is a constant.*detach"),
    (lambda: F.binary_cross_entropy(X, np.zeros((3, 4))), ValueError, r"lie in \[0, 1\]"),
    (lambda: F.binary_cross_entropy(X.sigmoid(), np.zeros((4,))), ValueError,
     r"target must have the input's shape \(3, 4\), got \(4,\)"),
    (lambda: F.binary_cross_entropy(X.sigmoid(), np.zeros((3, 4)), weight=np.ones(3)),
     ValueError, r"weight of shape \(3,\) does not broadcast"),
    (lambda: F.binary_cross_entropy_with_logits(X, np.zeros((3, 4)), pos_weight=np.ones(3)),
     ValueError, r"pos_weight of shape \(3,\) does not broadcast"),
    (lambda: F.binary_cross_entropy_with_logits(X, np.zeros((3, 1))), ValueError,
     "target must have the input's shape"),
    (lambda: F.smooth_l1_loss(X, X, beta=-0.5), ValueError, "beta must be a finite number >= 0"),
    (lambda: F.huber_loss(X, X, delta=0.0), ValueError, "delta must be a finite number > 0"),
    (lambda: F.kl_div(X, np.zeros(3)), ValueError, "does not broadcast"),
    (lambda: F.kl_div(X, X, reduction="sum", log_target="yes"), ValueError, "log_target"),
]


@pytest.mark.parametrize("call, error, message", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_arguments_raise_naming_the_argument_and_shapes(call, error, message):
    with pytest.raises(error, match=message):
        call()
