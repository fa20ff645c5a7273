"""nn.utils: gradient clipping and parameter vectors, against their formulas and torch.nn.utils."""

from __future__ import annotations

import math

import numpy as np
import pytest

import autotensor as at
from autotensor import nn
from autotensor.nn import utils

SHAPES = [(3, 4), (4,), (2, 1, 3)]


def params_with_grads(dtype=np.float64, scale=1.0, seed=0):
    r = np.random.RandomState(seed)
    params = [at.Tensor(r.randn(*s).astype(dtype), requires_grad=True) for s in SHAPES]
    for p in params:
        p.grad = (scale * r.randn(*p.shape)).astype(dtype)
    return params


def torch_twins(torch, params):
    twins = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    for t, p in zip(twins, params):
        t.grad = None if p.grad is None else torch.tensor(p.grad.copy())
    return twins


NORMS = [2.0, 1.0, 3.5, math.inf, "inf"]
MAX_NORMS = [0.5, 1e3, 0.0, math.inf]


@pytest.mark.parametrize("norm_type", NORMS, ids=str)
@pytest.mark.parametrize("max_norm", MAX_NORMS, ids=str)
def test_clip_grad_norm_follows_pytorchs_formula(norm_type, max_norm):
    params = params_with_grads()
    grads = [p.grad.copy() for p in params]
    arrays = [p.grad for p in params]
    total = utils.clip_grad_norm_(params, max_norm, norm_type=norm_type)
    flat = np.concatenate([g.ravel() for g in grads])
    p = math.inf if norm_type == "inf" else norm_type
    expected = np.abs(flat).max() if p == math.inf else (np.abs(flat) ** p).sum() ** (1 / p)
    assert isinstance(total, at.Tensor) and total.item() == pytest.approx(expected, rel=1e-12)
    scale = min(max_norm / (expected + 1e-6), 1.0)
    for q, g, a in zip(params, grads, arrays):
        assert q.grad is a                                        # changed in place
        np.testing.assert_allclose(q.grad, g * scale, rtol=1e-12)


@pytest.mark.parametrize("norm_type", NORMS, ids=str)
@pytest.mark.parametrize("max_norm", MAX_NORMS, ids=str)
def test_clip_grad_norm_equals_torch(torch, norm_type, max_norm):
    params = params_with_grads()
    twins = torch_twins(torch, params)
    ours = utils.clip_grad_norm_(params, max_norm, norm_type=norm_type)
    theirs = torch.nn.utils.clip_grad_norm_(twins, max_norm, norm_type=norm_type)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-10)
    for p, t in zip(params, twins):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_clip_grad_norm_skips_missing_grads_and_takes_one_tensor(torch):
    params = params_with_grads()
    params[1].grad = None
    twins = torch_twins(torch, params)
    assert utils.clip_grad_norm_(params, 1.0).item() == pytest.approx(
        torch.nn.utils.clip_grad_norm_(twins, 1.0).item(), rel=1e-12)
    assert params[1].grad is None
    single = params_with_grads()[0]
    twin = torch_twins(torch, [single])[0]
    assert utils.clip_grad_norm_(single, 1.0).item() == pytest.approx(
        torch.nn.utils.clip_grad_norm_(twin, 1.0).item(), rel=1e-12)
    np.testing.assert_allclose(single.grad, twin.grad.numpy(), rtol=1e-12)


def test_clip_grad_norm_without_grads_is_zero():
    p = at.Tensor(np.ones(3), requires_grad=True)
    assert utils.clip_grad_norm_([p], 1.0).item() == 0.0 and p.grad is None


def test_clip_grad_norm_of_a_nonfinite_norm():
    params = params_with_grads()
    params[0].grad[0, 0] = np.inf
    with pytest.raises(RuntimeError, match="norm of order 2.0 of the gradients is inf"):
        utils.clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    assert np.isinf(params[0].grad[0, 0])                         # nothing was scaled
    assert math.isinf(utils.clip_grad_norm_(params, 1.0).item())
    assert np.isnan(params[0].grad[0, 0]) and not params[1].grad.any()   # scaled by 0


def test_clip_grad_norm_keeps_float32_and_changes_a_tensor_grad_in_place():
    params = params_with_grads(np.float32, scale=10.0)
    params[2].grad = at.Tensor(params[2].grad)         # what create_graph=True leaves
    data = params[2].grad.data
    total = utils.clip_grad_norm_(params, 1.0)
    assert params[0].grad.dtype == np.float32 and params[2].grad.data is data
    joined = np.concatenate([params[0].grad.ravel(), params[1].grad.ravel(), data.ravel()])
    assert np.linalg.norm(joined) == pytest.approx(1.0, rel=1e-5)
    assert total.item() > 10


def test_clip_grad_value_equals_clip_and_torch(torch):
    params = params_with_grads(scale=2.0)
    expected = [np.clip(p.grad, -0.5, 0.5) for p in params]
    twins = torch_twins(torch, params)
    arrays = [p.grad for p in params]
    assert utils.clip_grad_value_(params, 0.5) is None
    torch.nn.utils.clip_grad_value_(twins, 0.5)
    for p, a, e, t in zip(params, arrays, expected, twins):
        assert p.grad is a
        np.testing.assert_array_equal(p.grad, e)
        np.testing.assert_array_equal(p.grad, t.grad.numpy())


def test_clip_grad_value_formula():
    params = params_with_grads(scale=2.0)
    before = [p.grad.copy() for p in params]
    params[1].grad = None
    utils.clip_grad_value_(params, 1.0)
    np.testing.assert_array_equal(params[0].grad, np.minimum(np.maximum(before[0], -1), 1))
    assert params[1].grad is None
    utils.clip_grad_value_(params, math.inf)
    np.testing.assert_array_equal(params[0].grad, np.minimum(np.maximum(before[0], -1), 1))


def test_parameters_to_vector_and_back(torch):
    params = params_with_grads()
    vec = utils.parameters_to_vector(params)
    theirs = torch.nn.utils.parameters_to_vector(torch_twins(torch, params))
    np.testing.assert_array_equal(vec.data, theirs.detach().numpy())
    assert vec.shape == (sum(p.size for p in params),)

    arrays = [p.data for p in params]
    new = np.arange(vec.size, dtype=np.float64)
    utils.vector_to_parameters(at.Tensor(new), params)
    twins = torch_twins(torch, params)
    torch.nn.utils.vector_to_parameters(torch.tensor(new), twins)
    for p, a, t in zip(params, arrays, twins):
        assert p.data is a                                        # written in place
        np.testing.assert_array_equal(p.data, t.detach().numpy())
    np.testing.assert_array_equal(utils.parameters_to_vector(params).data, new)


def test_parameters_to_vector_is_differentiable():
    params = params_with_grads()
    for p in params:
        p.grad = None
    weights = np.arange(sum(p.size for p in params), dtype=np.float64)
    (utils.parameters_to_vector(params) * at.Tensor(weights)).sum().backward()
    np.testing.assert_array_equal(np.concatenate([p.grad.ravel() for p in params]), weights)


def test_vector_to_parameters_keeps_each_dtype_and_checks_the_size():
    p32 = at.Tensor(np.zeros(3, np.float32), requires_grad=True)
    p64 = at.Tensor(np.zeros((1, 2)), requires_grad=True)
    utils.vector_to_parameters(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), [p32, p64])
    assert p32.dtype == np.float32 and p32.data.tolist() == [1, 2, 3]
    np.testing.assert_array_equal(p64.data, [[4.0, 5.0]])
    with pytest.raises(ValueError, match=r"vec must have shape \(5,\).*got \(4,\)"):
        utils.vector_to_parameters(np.zeros(4), [p32, p64])
    with pytest.raises(ValueError, match=r"must have shape \(5,\).*got \(5, 1\)"):
        utils.vector_to_parameters(np.zeros((5, 1)), [p32, p64])
    assert p32.data.tolist() == [1, 2, 3]                        # nothing written


def test_utils_is_exported_from_nn():
    assert nn.utils is utils and "utils" in nn.__all__
