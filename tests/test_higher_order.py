"""Higher-order gradients: at.grad, backward(create_graph=True), at.functional, multi-output
Functions, and the examples of docs/higher_order.md, against numerical derivatives and torch.

Every op's second derivative is checked against central differences by the op table's
second-order column (tests/test_ops_gradcheck.py::test_gradgradcheck).
"""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest

import autotensor as at
from autotensor import fused, nn

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"


def leaf(*shape, seed=0):
    return at.Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def numerical_grad(f, x, h=1e-6):
    """Central differences of the scalar f() with respect to the array x (restored)."""
    out = np.zeros(x.shape)
    for ix in np.ndindex(x.shape):
        old = x[ix]
        x[ix] = old + h
        plus = f()
        x[ix] = old - h
        minus = f()
        x[ix] = old
        out[ix] = (plus - minus) / (2 * h)
    return out


# ---- at.grad and backward(create_graph=True) ----------------------------------------------------
def test_grad_returns_a_tuple_of_tensors_and_leaves_dot_grad_alone():
    x, w = leaf(3), leaf(3, seed=1)
    gx, gw = at.grad((x * w).sum(), [x, w])
    assert isinstance(gx, at.Tensor) and not gx.requires_grad
    np.testing.assert_allclose(gx.data, w.data)
    np.testing.assert_allclose(gw.data, x.data)
    assert x._grad is None and w._grad is None


def test_third_derivative():
    x = leaf(4)
    (g1,) = at.grad((x ** 4).sum(), x, create_graph=True)
    (g2,) = at.grad(g1.sum(), x, create_graph=True)
    (g3,) = at.grad(g2.sum(), x)
    np.testing.assert_allclose(g1.data, 4 * x.data ** 3)
    np.testing.assert_allclose(g2.data, 12 * x.data ** 2)
    np.testing.assert_allclose(g3.data, 24 * x.data)


def test_backward_create_graph_makes_grad_a_tensor_that_differentiates_again():
    x = leaf(3)
    (x.exp() * x).sum().backward(create_graph=True)
    g = x.grad
    assert isinstance(g, at.Tensor) and g.requires_grad
    np.testing.assert_allclose(g.data, np.exp(x.data) * (1 + x.data))
    x.grad = None
    g.sum().backward()
    assert isinstance(x.grad, np.ndarray)            # without create_graph: an ndarray again
    np.testing.assert_allclose(x.grad, np.exp(x.data) * (2 + x.data))


def test_retain_graph_defaults_to_create_graph():
    x = leaf(3)
    y = x.tanh().sum()
    at.grad(y, x, create_graph=True)
    at.grad(y, x)                                    # the graph was retained
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        at.grad(y, x)


def test_allow_unused_and_errors():
    x, z = leaf(3), leaf(2, seed=1)
    y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="allow_unused=True"):
        at.grad(y, [x, z], retain_graph=True)
    gx, gz = at.grad(y, [x, z], allow_unused=True)
    assert gz is None and np.allclose(gx.data, 2)
    with pytest.raises(RuntimeError, match="does not require grad"):
        at.grad(y, at.Tensor(np.ones(3)))
    with pytest.raises(RuntimeError, match="scalar output"):
        at.grad(x * 2, x)


def test_grad_with_respect_to_a_non_leaf_and_with_grad_outputs():
    x = leaf(3)
    h = x * 3
    y = h.exp()
    (gh,) = at.grad(y, h, grad_outputs=np.array([1.0, 2.0, 3.0]), retain_graph=True)
    np.testing.assert_allclose(gh.data, np.exp(h.data) * [1, 2, 3])
    gx, gh2 = at.grad(y.sum(), [x, h])              # total derivative for x, through h
    np.testing.assert_allclose(gx.data, 3 * np.exp(h.data))
    np.testing.assert_allclose(gh2.data, np.exp(h.data))


def test_backward_inputs_accumulates_only_into_those():
    x, w = leaf(3), leaf(3, seed=1)
    (x * w).sum().backward(inputs=[w])
    assert x._grad is None
    np.testing.assert_allclose(w.grad, x.data)


def test_mixed_second_derivative_matches_numerical():
    rng = np.random.default_rng(0)
    x, w = leaf(2, 3), leaf(3, 4, seed=1)
    b = at.Tensor(rng.standard_normal(4), requires_grad=True)

    def first():
        (gx,) = at.grad(((x @ w + b).sigmoid() ** 2).sum(), x, create_graph=True)
        return gx

    u = rng.standard_normal((2, 3))
    hw, hb = at.grad((first() * u).sum(), [w, b])

    def f():
        with at.enable_grad():
            return float((first().data * u).sum())

    np.testing.assert_allclose(hw.data, numerical_grad(f, w.data), atol=1e-7)
    np.testing.assert_allclose(hb.data, numerical_grad(f, b.data), atol=1e-7)


def test_fused_conv_pool_batchnorm_second_order_equals_the_composite_and_numerical():
    rng = np.random.default_rng(3)
    xa, wa, ga = rng.standard_normal((2, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3)), \
        rng.standard_normal(3) + 1

    def net(x, w, g):
        h = fused.conv2d(x, w, None, stride=1, pad=1)
        h = fused.batch_norm(h, g, at.Tensor(np.zeros(3)))
        return (fused.max_pool2d(h.tanh(), 2) ** 2).sum()

    results = []
    for on in (True, False):
        x, w, g = (at.Tensor(a.copy(), requires_grad=True) for a in (xa, wa, ga))
        with at.use_fused(on):
            (gx,) = at.grad(net(x, w, g), x, create_graph=True)
            results.append([t.data for t in at.grad((gx ** 2).sum(), [x, w, g])])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, atol=1e-10)
    with at.use_fused(True):
        assert at.gradgradcheck(net, [at.Tensor(a, requires_grad=True) for a in (xa, wa, ga)],
                                fast_mode=True)


# ---- multi-output Functions ------------------------------------------------------------------
class SplitHalves(at.Function):
    """(a, b) = x[:n], x[n:] and their squares: a multi-output op."""

    def forward(self, x):
        n = len(x) // 2
        self.n, self.saved = n, x
        return x[:n], x[n:] ** 2

    def backward(self, ga, gb):
        x = self.saved
        return at.concatenate([ga, gb * 2 * x[self.n:]]) if isinstance(ga, at.Tensor) else \
            np.concatenate([ga, gb * 2 * x[self.n:]])


def test_multi_output_function_returns_a_tuple_and_gets_one_grad_per_output():
    x = leaf(4)
    a, b = SplitHalves.apply(x)
    assert isinstance(a, at.Tensor) and a.shape == (2,) and b.shape == (2,)
    (a.sum() * 3 + (b * b).sum()).backward()
    np.testing.assert_allclose(x.grad, [3, 3, *(4 * x.data[2:] ** 3)])


def test_an_unused_output_gets_zeros():
    x = leaf(4)
    a, b = SplitHalves.apply(x)
    b.sum().backward()                                # a gets no gradient: zeros
    np.testing.assert_allclose(x.grad, [0, 0, *(2 * x.data[2:])])
    assert at.gradcheck(lambda t: SplitHalves.apply(t), [leaf(4)])


class ScaleAndSquare(at.Function):
    """(2x, x**2): a multi-output op whose rule is written once for every order."""

    def forward(self, x):
        self.saved = x
        return 2 * x, x * x

    def backward(self, g_double, g_square):
        return 2 * g_double + 2 * g_square * self.saved


def test_a_multi_output_op_is_differentiable_twice():
    x = leaf(3)
    assert at.gradgradcheck(ScaleAndSquare.apply, [x])
    double, square = ScaleAndSquare.apply(x)
    (g,) = at.grad(square.sum(), x, create_graph=True)          # only one output used
    np.testing.assert_allclose(g.data, 2 * x.data)
    (h,) = at.grad((g * g).sum(), x)
    np.testing.assert_allclose(h.data, 8 * x.data)
    (gd,) = at.grad(double.sum(), double)                       # w.r.t. one output itself
    np.testing.assert_allclose(gd.data, 1.0)


class ExpAndCopy(at.Function):
    """(e**x, x): saves its first output, which create_graph finds by identity."""

    def forward(self, x):
        out = np.exp(x)
        self.saved = out
        return out, x.copy()

    def backward(self, g_exp, g_copy):
        return g_exp * self.saved + g_copy


def test_a_multi_output_op_that_saved_its_own_output():
    x = leaf(4)
    assert at.gradgradcheck(ExpAndCopy.apply, [x])
    e, c = ExpAndCopy.apply(x)
    (g,) = at.grad((e * c).sum(), x, create_graph=True)          # d/dx x e^x = e^x (1 + x)
    (h,) = at.grad(g.sum(), x)
    np.testing.assert_allclose(h.data, np.exp(x.data) * (2 + x.data), rtol=1e-12)


def test_multi_output_without_grad_gives_plain_tensors():
    a, b = SplitHalves.apply(at.Tensor(np.arange(4.0)))
    assert not a.requires_grad and np.allclose(b.data, [4, 9])


# ---- at.functional ---------------------------------------------------------------------------
def _f(x, y):
    return ((x @ y).tanh() * 2).exp().sum() + (x ** 3).sum()


def test_functional_against_numerical_derivatives():
    rng = np.random.default_rng(1)
    x, y = at.tensor(rng.standard_normal(3)), at.tensor(rng.standard_normal((3, 2)))
    v = at.tensor(rng.standard_normal(3))

    def f_of_x():
        return float(_f(x, y).data)
    g = numerical_grad(f_of_x, x.data)
    _, (gx, _) = at.functional.vjp(_f, (x, y))
    np.testing.assert_allclose(gx.data, g, atol=1e-7)
    H = at.functional.hessian(lambda x: _f(x, y), x)
    def grad_entry(i):
        return lambda: float(at.functional.vjp(lambda t: _f(t, y), x)[1].data[i])
    Hn = np.stack([numerical_grad(grad_entry(i), x.data) for i in range(3)])
    np.testing.assert_allclose(H.data, Hn, atol=1e-6)
    _, hv = at.functional.hvp(lambda x: _f(x, y), x, v)
    np.testing.assert_allclose(hv.data, H.data @ v.data, atol=1e-10)
    J = at.functional.jacobian(lambda x: (x @ y).tanh(), x)
    assert J.shape == (2, 3)
    _, jv = at.functional.jvp(lambda x: (x @ y).tanh(), x, v)
    np.testing.assert_allclose(jv.data, J.data @ v.data, atol=1e-12)


def test_functional_equals_torch(torch):
    import torch.autograd.functional as TF
    rng = np.random.default_rng(2)
    xa, ya, va = rng.standard_normal(3), rng.standard_normal((3, 2)), rng.standard_normal(3)
    ours = (at.tensor(xa), at.tensor(ya))
    theirs = (torch.tensor(xa), torch.tensor(ya))
    vs = (at.tensor(va), at.tensor(np.ones((3, 2))))
    vt = (torch.tensor(va), torch.ones(3, 2, dtype=torch.float64))
    for name in ("vjp", "hvp", "vhp"):
        args, targs = ((), ()) if name == "vjp" else ((vs,), (vt,))
        out, res = getattr(at.functional, name)(_f, ours, *args)
        tout, tres = getattr(TF, name)(_f, theirs, *targs)
        assert np.allclose(out.data, tout.numpy())
        for a, b in zip(res, tres):
            np.testing.assert_allclose(a.data, b.numpy(), atol=1e-12, err_msg=name)
    _, jv = at.functional.jvp(_f, ours, vs)
    _, tjv = TF.jvp(_f, theirs, vt)
    np.testing.assert_allclose(jv.data, tjv.numpy(), atol=1e-12)
    jac = at.functional.jacobian(lambda x, y: (x @ y).tanh(), ours)
    tjac = TF.jacobian(lambda x, y: (x @ y).tanh(), theirs)
    for a, b in zip(jac, tjac):
        np.testing.assert_allclose(a.data, b.numpy(), atol=1e-12)
    hess = at.functional.hessian(_f, ours)
    thess = TF.hessian(_f, theirs)
    for i in range(2):
        for j in range(2):
            np.testing.assert_allclose(hess[i][j].data, thess[i][j].numpy(), atol=1e-12)


def test_functional_options():
    x = at.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(NotImplementedError, match="vectorize"):
        at.functional.jacobian(lambda t: t * 2, x, vectorize=True)
    with pytest.raises(NotImplementedError, match="forward-mode"):
        at.functional.jacobian(lambda t: t * 2, x, strategy="forward-mode")
    with pytest.raises(RuntimeError, match="single-element"):
        at.functional.hessian(lambda t: t * 2, x)
    with pytest.raises(RuntimeError, match="strict"):
        at.functional.vjp(lambda t: at.Tensor(np.ones(())), x, strict=True)
    _, g = at.functional.vjp(lambda t: at.Tensor(np.ones(())), x)       # non-strict: zeros
    assert np.all(g.data == 0)
    out, g = at.functional.vjp(lambda t: (t * t).sum(), x, create_graph=True)
    assert g.requires_grad and out.requires_grad            # create_graph keeps the graph
    (gg,) = at.grad(g.sum(), x)
    np.testing.assert_allclose(gg.data, [2.0, 2.0])


# ---- PyTorch parity of the three workloads of docs/higher_order.md ----------------------------
def _same_grad(ours, theirs):
    """Both None (not reached), or equal to 1e-12."""
    assert (ours.grad is None) == (theirs.grad is None)
    if theirs.grad is not None:
        np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), atol=1e-12)


def _mlp_params(rng, sizes):
    return [(rng.standard_normal((a, b)) / np.sqrt(a), rng.standard_normal(b) * 0.1)
            for a, b in zip(sizes[:-1], sizes[1:])]


def _mlp(params, x, lib):
    h = x
    for i, (w, b) in enumerate(params):
        h = h @ w + b
        if i < len(params) - 1:
            h = h.tanh()
    return h


def test_wgan_gp_penalty_gradients_equal_torch(torch):
    rng = np.random.default_rng(0)
    raw = _mlp_params(rng, [4, 8, 8, 1])
    real, fake, eps = rng.standard_normal((6, 4)), rng.standard_normal((6, 4)), \
        rng.uniform(size=(6, 1))
    xh = eps * real + (1 - eps) * fake

    def penalty(params, x, grad, sqrt):
        (g,) = grad(_mlp(params, x, None).sum(), x)
        return ((sqrt((g ** 2).sum(1) + 1e-12) - 1) ** 2).mean()

    ours = [(at.Tensor(w, requires_grad=True), at.Tensor(b, requires_grad=True)) for w, b in raw]
    x = at.Tensor(xh, requires_grad=True)
    penalty(ours, x, lambda y, x: at.grad(y, x, create_graph=True), lambda t: t.sqrt()
            ).backward()
    theirs = [(torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True))
              for w, b in raw]
    xt = torch.tensor(xh, requires_grad=True)
    penalty(theirs, xt, lambda y, x: torch.autograd.grad(y, x, create_graph=True),
            torch.sqrt).backward()
    for (w, b), (wt, bt) in zip(ours, theirs):
        _same_grad(w, wt)
        _same_grad(b, bt)
    _same_grad(x, xt)


def test_hvp_equals_torch_on_an_mlp_loss(torch):
    rng = np.random.default_rng(1)
    raw = _mlp_params(rng, [5, 7, 3])
    xa, ya = rng.standard_normal((4, 5)), np.array([0, 2, 1, 2])
    flat = np.concatenate([a.ravel() for wb in raw for a in wb])
    v = rng.standard_normal(flat.size)
    shapes = [a.shape for wb in raw for a in wb]

    def unflatten(p, lib_reshape):
        out, k = [], 0
        for s in shapes:
            n = int(np.prod(s))
            out.append(lib_reshape(p[k:k + n], s))
            k += n
        return [(out[i], out[i + 1]) for i in range(0, len(out), 2)]

    def loss_at(p):
        logits = _mlp(unflatten(p, lambda t, s: t.reshape(s)), at.Tensor(xa), None)
        return -logits.log_softmax(axis=1)[np.arange(4), ya].mean()

    def loss_t(p):
        logits = _mlp(unflatten(p, lambda t, s: t.reshape(s)), torch.tensor(xa), None)
        return torch.nn.functional.cross_entropy(logits, torch.tensor(ya))

    _, hv = at.functional.hvp(loss_at, at.tensor(flat), at.tensor(v))
    _, hvt = torch.autograd.functional.hvp(loss_t, torch.tensor(flat), torch.tensor(v))
    np.testing.assert_allclose(hv.data, hvt.numpy(), atol=1e-12)


def test_d2u_dx2_of_a_tanh_mlp_equals_torch(torch):
    rng = np.random.default_rng(2)
    raw = _mlp_params(rng, [1, 16, 16, 1])
    xs = np.linspace(-1, 1, 7)[:, None]
    ours = [(at.Tensor(w, requires_grad=True), at.Tensor(b, requires_grad=True)) for w, b in raw]
    x = at.Tensor(xs, requires_grad=True)
    u = _mlp(ours, x, None)
    (du,) = at.grad(u.sum(), x, create_graph=True)
    (d2u,) = at.grad(du.sum(), x, create_graph=True)
    ((d2u + x) ** 2).mean().backward()

    theirs = [(torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True))
              for w, b in raw]
    xt = torch.tensor(xs, requires_grad=True)
    ut = _mlp(theirs, xt, None)
    (dut,) = torch.autograd.grad(ut.sum(), xt, create_graph=True)
    (d2ut,) = torch.autograd.grad(dut.sum(), xt, create_graph=True)
    ((d2ut + xt) ** 2).mean().backward()
    np.testing.assert_allclose(d2u.data, d2ut.detach().numpy(), atol=1e-12)
    for (w, b), (wt, bt) in zip(ours, theirs):
        _same_grad(w, wt)
        _same_grad(b, bt)


# ---- docs/higher_order.md runs as written -----------------------------------------------------
def test_higher_order_doc_examples_run():
    text = (DOCS / "higher_order.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 5
    namespace = {}
    for block in blocks:
        exec(compile(block, "higher_order.md", "exec"), namespace)


def test_a_module_is_twice_differentiable():
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    x = leaf(5, 3)
    (gx,) = at.grad(net(x).sum(), x, create_graph=True)
    (gx ** 2).sum().backward()
    # the output bias does not enter d(net)/dx, so only it gets no gradient
    assert [p.grad is None for p in net.parameters()] == [False, False, False, True]
