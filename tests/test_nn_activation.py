"""Activations (modules and F functions) against PyTorch in float64, and numerically.

Inputs include the kinks (0, the hardtanh bounds, the softplus threshold) and large values, so
the subgradient choices and overflow guards are compared with torch's too.
"""

from __future__ import annotations

import numpy as np
import pytest

import autotensor as at
from autotensor import nn
from autotensor.nn import functional as F

X = np.array([[-1000.0, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 0.8],
              [25.0, 10.0, 1.5, 2.0, -0.2, 0.3, 700.0, -20.0]])

# name -> (autotensor module, its torch twin (a function of the torch module), input)
CASES = {
    "ReLU": (lambda: nn.ReLU(), lambda tnn: tnn.ReLU(), X),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.2), lambda tnn: tnn.LeakyReLU(0.2), X),
    "Sigmoid": (lambda: nn.Sigmoid(), lambda tnn: tnn.Sigmoid(), X / 100),
    "Tanh": (lambda: nn.Tanh(), lambda tnn: tnn.Tanh(), X / 100),
    "GELU": (lambda: nn.GELU(), lambda tnn: tnn.GELU(), X / 100),
    "GELU_tanh": (lambda: nn.GELU("tanh"), lambda tnn: tnn.GELU("tanh"), X / 100),
    "SiLU": (lambda: nn.SiLU(), lambda tnn: tnn.SiLU(), X / 100),
    "ELU": (lambda: nn.ELU(), lambda tnn: tnn.ELU(), X),
    "ELU_alpha": (lambda: nn.ELU(alpha=0.5), lambda tnn: tnn.ELU(alpha=0.5), X),
    "Softplus": (lambda: nn.Softplus(), lambda tnn: tnn.Softplus(), X),
    "Softplus_beta": (lambda: nn.Softplus(beta=2.0, threshold=1.0),
                      lambda tnn: tnn.Softplus(beta=2.0, threshold=1.0), X),
    "Hardtanh": (lambda: nn.Hardtanh(), lambda tnn: tnn.Hardtanh(), X),
    "Hardtanh_bounds": (lambda: nn.Hardtanh(-0.5, 2.0), lambda tnn: tnn.Hardtanh(-0.5, 2.0), X),
    "Softmax": (lambda: nn.Softmax(dim=1), lambda tnn: tnn.Softmax(dim=1), X / 100),
    "Softmax_dim0": (lambda: nn.Softmax(0), lambda tnn: tnn.Softmax(0), X),
    "LogSoftmax": (lambda: nn.LogSoftmax(dim=-1), lambda tnn: tnn.LogSoftmax(dim=-1), X),
    "Identity": (lambda: nn.Identity(54, unused="x"), lambda tnn: tnn.Identity(54), X),
}


def _close(a, b, rel=1e-10):
    """max |a - b| <= rel * max |b|: relative to the array's scale, so entries that are tiny
    differences of large ones (softmax gradients) are held to the same absolute standard."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, a.dtype, b.shape, b.dtype)
    err = np.max(np.abs(a - b), initial=0) / max(np.max(np.abs(b), initial=0), 1e-300)
    assert err <= rel, f"relative error {err:.3g} > {rel:g}"


def _compare(torch, ours, theirs, x, kinks=()):
    """Forward, gradient (random upstream) and a Hessian-vector product vs torch.

    NOTE: at a switch point PyTorch's double backward takes the other branch than its backward
    (ELU at x = 0: backward x <= 0, double backward x < 0; Softplus at beta x = threshold
    likewise), so its second derivative there is 0; ours differentiates the branch the first
    derivative took (docs/nn.md says so). The second-order check skips exactly the x in
    `kinks`."""
    rng = np.random.default_rng(0)
    g, v = rng.standard_normal(x.shape), rng.standard_normal(x.shape)
    xa = at.Tensor(x.copy(), requires_grad=True)
    xt = torch.tensor(x.copy(), requires_grad=True)
    out_a, out_t = ours(xa), theirs(xt)
    _close(out_a.data, out_t.detach().numpy())
    (ga,) = at.grad(out_a, [xa], grad_outputs=g, create_graph=True)
    (gt,) = torch.autograd.grad(out_t, [xt], torch.tensor(g), create_graph=True)
    _close(ga.data, gt.detach().numpy())
    assert np.all(np.isfinite(ga.data))
    if gt.requires_grad:
        # a gradient constant in x (relu, hardtanh, identity) has no graph: its derivative is 0
        (hva,) = (at.grad((ga * v).sum(), [xa], allow_unused=True) if ga.requires_grad
                  else (None,))
        (hvt,) = torch.autograd.grad((gt * torch.tensor(v)).sum(), [xt], allow_unused=True)
        hva = np.zeros_like(x) if hva is None else hva.data
        hvt = np.zeros_like(x) if hvt is None else hvt.numpy()
        keep = ~np.isin(x, kinks)
        hva, hvt = hva[keep], hvt[keep]
        _close(hva, hvt)


KINKS = {"ELU": [0.0], "ELU_alpha": [0.0], "elu": [0.0], "Softplus_beta": [0.5],
         "softplus": [10.0]}


@pytest.mark.parametrize("name", sorted(CASES))
def test_module_matches_torch(torch, name):
    make, make_torch, x = CASES[name]
    _compare(torch, make(), make_torch(torch.nn), x, KINKS.get(name, ()))


FUNCTIONS = [
    ("gelu", lambda F_: (lambda x: F_.gelu(x)), X / 100),
    ("gelu_tanh", lambda F_: (lambda x: F_.gelu(x, approximate="tanh")), X / 100),
    ("silu", lambda F_: (lambda x: F_.silu(x)), X / 100),
    ("elu", lambda F_: (lambda x: F_.elu(x, 1.5)), X),
    ("softplus", lambda F_: (lambda x: F_.softplus(x, beta=0.5, threshold=5)), X),
    ("hardtanh", lambda F_: (lambda x: F_.hardtanh(x, -1.0, 0.5)), X),
    ("softmax", lambda F_: (lambda x: F_.softmax(x, dim=0)), X / 100),
    ("log_softmax", lambda F_: (lambda x: F_.log_softmax(x, 1)), X),
    ("relu", lambda F_: (lambda x: F_.relu(x)), X),
    ("leaky_relu", lambda F_: (lambda x: F_.leaky_relu(x, 0.1)), X),
]


@pytest.mark.parametrize("name, make, x", FUNCTIONS, ids=[f[0] for f in FUNCTIONS])
def test_functional_matches_torch(torch, name, make, x):
    _compare(torch, make(F), make(torch.nn.functional), x, KINKS.get(name, ()))


def test_softmax_dtype_argument_matches_torch(torch):
    x = X[:, :4].astype(np.float32) / 10
    ours = F.log_softmax(x, dim=1, dtype=np.float64)
    theirs = torch.nn.functional.log_softmax(torch.tensor(x), dim=1, dtype=torch.float64)
    assert ours.dtype == np.float64
    np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_module_gradcheck(name):
    make, _, _ = CASES[name]
    rng = np.random.default_rng(3)
    # off every kink: |x| in [0.1, 2], away from the hardtanh bounds and softplus switch
    x = rng.choice([-1, 1], (3, 4)) * rng.uniform(0.1, 0.45, (3, 4)) + rng.choice([0, 1.2],
                                                                                     (3, 4))
    x = at.Tensor(x, requires_grad=True)
    m = make()
    assert at.gradcheck(m, [x], atol=1e-6, rtol=1e-5)
    assert at.gradgradcheck(m, [x], atol=1e-6, rtol=1e-5)


def test_float32_stays_float32():
    x = X.astype(np.float32) / 100
    for name, (make, _, _) in CASES.items():
        xt = at.Tensor(x, requires_grad=True)
        out = make()(xt)
        out.sum().backward()
        assert out.dtype == np.float32 and xt.grad.dtype == np.float32, name


def test_large_inputs_give_finite_gradients():
    x = at.Tensor(np.array([1e3, 800.0, -800.0]), requires_grad=True)
    (F.elu(x) + F.softplus(x) + F.silu(x) + F.gelu(x)).sum().backward()
    assert np.all(np.isfinite(x.grad))


def test_bad_arguments_are_refused_at_the_call():
    with pytest.raises(ValueError, match="inplace=False"):
        nn.ReLU(inplace=True)
    with pytest.raises(ValueError, match="inplace=False"):
        F.elu(X, inplace=True)
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("erf")
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(X, approximate="fast")
    with pytest.raises(ValueError, match="dim is required"):
        nn.Softmax()
    with pytest.raises(ValueError, match=r"dim is required.*\(2, 8\)"):
        F.log_softmax(X)
    with pytest.raises(ValueError, match=r"dim must be an int in \[-2, 2\).*got 2"):
        F.softmax(X, dim=2)
    with pytest.raises(ValueError, match="min_val must be <= max_val"):
        nn.Hardtanh(1.0, -1.0)
    with pytest.raises(ValueError, match="beta"):
        F.softplus(X, beta=0)
    with pytest.raises(ValueError, match="alpha"):
        nn.ELU(alpha="1")


def test_reprs_name_the_arguments():
    assert repr(nn.GELU("tanh")) == "GELU(approximate='tanh')"
    assert repr(nn.Softmax(dim=1)) == "Softmax(dim=1)"
    assert repr(nn.ELU(0.5)) == "ELU(alpha=0.5)"
    assert repr(nn.Identity()) == "Identity()"
