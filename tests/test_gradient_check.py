"""The course's numerical-gradient helpers and the stability of softmax-family ops."""

from __future__ import annotations

import numpy as np
import pytest

import autotensor as at
from autotensor.gradient_check import (
    eval_numerical_gradient,
    eval_numerical_gradient_array,
    grad_check_sparse,
    rel_error,
)


def test_eval_numerical_gradient_matches_analytic_and_restores_x():
    x = np.random.default_rng(0).standard_normal((3, 4))
    before = x.copy()
    grad = eval_numerical_gradient(lambda v: np.sum(v ** 3), x, verbose=False)
    assert rel_error(grad, 3 * x ** 2) < 1e-7       # the course expects ~1e-7 or better
    np.testing.assert_array_equal(x, before)


def test_eval_numerical_gradient_accepts_tensor_valued_f():
    x = np.random.default_rng(1).standard_normal(5)
    grad = eval_numerical_gradient(lambda v: at.Tensor(v).tanh().sum(), x, verbose=False)
    assert rel_error(grad, 1 - np.tanh(x) ** 2) < 1e-8


def test_eval_numerical_gradient_verbose_prints(capsys):
    eval_numerical_gradient(lambda v: float(np.sum(v)), np.zeros(2))
    assert capsys.readouterr().out.count("\n") == 2


def test_eval_numerical_gradient_array_against_the_tape():
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    dout = rng.standard_normal((4, 2))
    num = eval_numerical_gradient_array(lambda v: v @ w, x, dout)
    xt = at.Tensor(x, requires_grad=True)
    (xt @ w).backward(dout)
    assert rel_error(num, xt.grad) < 1e-9


def test_grad_check_sparse_reports_small_errors(capsys):
    x = np.random.default_rng(3).standard_normal((5, 5))
    errors = grad_check_sparse(lambda v: np.sum(v ** 2), x, 2 * x, num_checks=4)
    assert errors.shape == (4,) and np.all(errors < 1e-7)
    assert capsys.readouterr().out.count("relative error") == 4


def test_rel_error_is_the_course_formula():
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    assert rel_error(np.array([1.0]), np.array([3.0])) == pytest.approx(0.5)
    assert rel_error(np.zeros(1), np.full(1, 1e-9)) == pytest.approx(0.1)   # 1e-8 floor


def test_gradcheck_needs_a_grad_input():
    with pytest.raises(ValueError, match="requires_grad"):
        at.gradcheck(lambda x: x * 2, [at.Tensor(np.ones(2))])


@pytest.mark.filterwarnings("ignore:invalid value")
def test_gradcheck_fails_where_the_function_is_nan():
    # log(-1) is nan: the numerical gradient is nan and must not count as agreement.
    x = at.Tensor(np.array([-1.0, 2.0]), requires_grad=True)
    with pytest.raises(AssertionError, match=r"index \(0,\).*numerical nan"):
        at.gradcheck(lambda t: t.log(), [x])


def test_gradcheck_leaves_existing_grads_alone():
    x = at.Tensor(np.ones(2), requires_grad=True)
    x.grad = np.array([5.0, 5.0])
    at.gradcheck(lambda t: (t * 3).sum(), [x])
    np.testing.assert_array_equal(x.grad, [5.0, 5.0])


@pytest.mark.parametrize("scale", [1.0, 1000.0, -1000.0])
def test_softmax_family_is_stable_for_huge_logits(scale):
    logits = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 1.0]]) * scale
    x = at.Tensor(logits, requires_grad=True)
    p = x.softmax(axis=1)
    lp = x.log_softmax(axis=1)
    lse = x.logsumexp(axis=1)
    for t in (p, lp, lse):
        assert np.all(np.isfinite(t.data))
    np.testing.assert_allclose(p.data.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.exp(lp.data), p.data, atol=1e-12)
    (lp[np.arange(2), [0, 1]].sum() + lse.sum()).backward()
    assert np.all(np.isfinite(x.grad))


# ---- gradcheck: modules, kinks, the worst elements, fast mode, gradgradcheck --------------------
def test_gradcheck_takes_a_module_and_checks_its_parameters():
    from autotensor import nn
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x = at.Tensor(np.random.default_rng(0).standard_normal((5, 3)), requires_grad=True)
    assert at.gradcheck(net, [x])

    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(np.array([1.0, 2.0]))

        def forward(self, x):
            return _BadSquare.apply(self.w) * x

    with pytest.raises(AssertionError, match=r"parameter 'w' .* index \(\d,\)"):
        at.gradcheck(Broken(), [at.Tensor(np.array([1.0, 3.0]))])


class _BadSquare(at.Function):
    def forward(self, x):
        self.saved = x
        return x * x

    def backward(self, g):
        return g * self.saved          # wrong: should be 2 * x * g


def test_gradcheck_reports_the_worst_elements_with_tuple_indices():
    x = at.Tensor(np.arange(1.0, 7.0).reshape(2, 3), requires_grad=True)
    with pytest.raises(AssertionError) as err:
        at.gradcheck(lambda t: _BadSquare.apply(t).sum(), [x], nworst=3)
    msg = str(err.value)
    assert "at index (1, 2)" in msg                 # the largest |x| is the worst element
    assert "the 3 worst elements of input 0:" in msg
    assert msg.count("    index (") == 3 and "analytic" in msg and "numerical" in msg


def test_gradcheck_skips_and_reports_kinks_instead_of_failing():
    x = at.Tensor(np.array([0.0, 1.0, -2.0]), requires_grad=True)       # relu at 0
    with pytest.warns(UserWarning, match=r"non-differentiable.*input 0 index \(0,\)"):
        assert at.gradcheck(lambda t: t.relu(), [x])
    # A three-way max tie: each gets 1/3 (PyTorch's split), one-sided slopes say 1 and 0.
    ties = at.Tensor(np.array([[1.0, 3.0, 3.0, 3.0]]), requires_grad=True)
    with pytest.warns(UserWarning, match="non-differentiable"):
        assert at.gradcheck(lambda t: t.max(axis=1), [ties])


@pytest.mark.filterwarnings("ignore:gradcheck")
def test_gradcheck_kinks_never_hide_a_wrong_smooth_gradient():
    x = at.Tensor(np.array([0.0, 1.0, -2.0]), requires_grad=True)
    with pytest.raises(AssertionError, match=r"index \(1,\)"):
        at.gradcheck(lambda t: t.relu() + _BadSquare.apply(t), [x])


def test_gradcheck_fast_mode_and_tuple_outputs():
    x = at.Tensor(np.random.default_rng(1).standard_normal((4, 5)), requires_grad=True)
    assert at.gradcheck(lambda t: (t.tanh(), t.exp().sum(axis=0)), [x], fast_mode=True)
    with pytest.raises(AssertionError, match="random direction"):
        at.gradcheck(lambda t: _BadSquare.apply(t), [x], fast_mode=True)


def test_gradgradcheck_on_a_function_of_two_inputs():
    rng = np.random.default_rng(2)
    a = at.Tensor(rng.standard_normal((2, 3)), requires_grad=True)
    b = at.Tensor(rng.standard_normal((3, 2)), requires_grad=True)
    assert at.gradgradcheck(lambda a, b: (a @ b).sigmoid(), [a, b])
    go = [at.Tensor(rng.standard_normal((2, 2)), requires_grad=True)]
    assert at.gradgradcheck(lambda a, b: (a @ b).sigmoid(), [a, b], grad_outputs=go)


def test_gradcheck_of_a_function_that_takes_gradients_inside():
    """A gradient penalty: f(x) = |d/dx sum(tanh(x * w))|^2 needs at.grad inside f, also while
    gradcheck evaluates its numerical differences."""
    rng = np.random.default_rng(0)
    x = at.Tensor(rng.standard_normal((3, 2)), requires_grad=True)
    w = at.Tensor(rng.standard_normal((3, 2)), requires_grad=True)

    def penalty(x, w):
        (g,) = at.grad(at.tanh(x * w).sum(), [x], create_graph=True)
        return (g * g).sum()

    assert at.gradcheck(penalty, [x, w])
