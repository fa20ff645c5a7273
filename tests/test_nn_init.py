"""nn.init with PyTorch's names: gains against torch, the statistics of each fill against
torch's formulas on large tensors, the fan conventions (Linear (in, out), conv as torch), in-place
filling under no_grad, and draws from autotensor's global generator."""

from __future__ import annotations

import math

import numpy as np
import pytest

import autotensor as at
from autotensor import nn
from autotensor.nn import init

GAINS = [("linear", None), ("conv2d", None), ("conv_transpose3d", None), ("sigmoid", None),
         ("tanh", None), ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2),
         ("leaky_relu", 0), ("leaky_relu", math.sqrt(5)), ("selu", None)]


@pytest.mark.parametrize("nonlinearity, param", GAINS)
def test_calculate_gain_is_torchs(torch, nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(
        torch.nn.init.calculate_gain(nonlinearity, param), rel=1e-15)


def test_calculate_gain_refuses_what_torch_refuses():
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="negative_slope True is not a valid number"):
        init.calculate_gain("leaky_relu", True)


def _torch_fans(torch, shape):
    """torch's (fan_in, fan_out) of a torch-layout shape."""
    return torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))


# (autotensor shape, the same weight's shape in torch): Linear weights are transposed here.
LAYOUTS = [((300, 200), (200, 300)),            # nn.Linear(300, 200).weight
           ((64, 32, 3, 3), (64, 32, 3, 3)),    # conv weight (out, in, kh, kw)
           ((40, 30, 5), (40, 30, 5))]


@pytest.mark.parametrize("ours, theirs", LAYOUTS)
def test_fans_read_the_layout_as_torch_reads_the_same_weight(torch, ours, theirs):
    assert init.fans(ours) == _torch_fans(torch, theirs)


def _filled(fn, shape, **kw):
    t = nn.Parameter(np.zeros(shape))
    at.manual_seed(0)
    assert fn(t, **kw) is t
    return t.data


@pytest.mark.parametrize("ours, theirs", LAYOUTS)
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("a, nonlinearity", [(0, "leaky_relu"), (math.sqrt(5), "leaky_relu"),
                                             (0, "relu"), (0, "tanh")])
def test_kaiming_statistics_follow_torchs_formula(torch, ours, theirs, mode, a, nonlinearity):
    fan_in, fan_out = _torch_fans(torch, theirs)
    std = torch.nn.init.calculate_gain(nonlinearity, a) / math.sqrt(
        fan_in if mode == "fan_in" else fan_out)
    bound = math.sqrt(3.0) * std
    u = _filled(init.kaiming_uniform_, ours, a=a, mode=mode, nonlinearity=nonlinearity)
    assert np.abs(u).max() <= bound and np.abs(u).max() > 0.999 * bound
    assert u.std() == pytest.approx(std, rel=0.02) and abs(u.mean()) < 0.02 * std
    n = _filled(init.kaiming_normal_, ours, a=a, mode=mode, nonlinearity=nonlinearity)
    assert n.std() == pytest.approx(std, rel=0.02) and abs(n.mean()) < 0.02 * std


@pytest.mark.parametrize("ours, theirs", LAYOUTS)
def test_xavier_statistics_follow_torchs_formula(torch, ours, theirs):
    fan_in, fan_out = _torch_fans(torch, theirs)
    std = 1.7 * math.sqrt(2.0 / (fan_in + fan_out))
    u = _filled(init.xavier_uniform_, ours, gain=1.7)
    assert np.abs(u).max() <= math.sqrt(3) * std and u.std() == pytest.approx(std, rel=0.02)
    n = _filled(init.xavier_normal_, ours, gain=1.7)
    assert n.std() == pytest.approx(std, rel=0.02) and abs(n.mean()) < 0.02 * std


def test_kaiming_on_a_linear_weight_draws_what_torch_draws_for_its_linear(torch):
    """The documented choice: the stored (in, out) weight reads fan_in = in_features."""
    lin, t_lin = nn.Linear(400, 100), torch.nn.Linear(400, 100).double()
    init.kaiming_normal_(lin.weight, nonlinearity="relu")
    torch.manual_seed(0)
    torch.nn.init.kaiming_normal_(t_lin.weight, nonlinearity="relu")
    ours, theirs = lin.weight.data.std(), t_lin.weight.detach().numpy().std()
    assert ours == pytest.approx(math.sqrt(2 / 400), rel=0.02)
    assert ours == pytest.approx(theirs, rel=0.04)


def test_uniform_normal_constant_and_eye():
    u = _filled(init.uniform_, (500, 400), a=-2.0, b=3.0)
    assert u.min() >= -2 and u.max() < 3 and u.mean() == pytest.approx(0.5, abs=0.01)
    n = _filled(init.normal_, (500, 400), mean=1.5, std=0.3)
    assert n.mean() == pytest.approx(1.5, abs=0.003) and n.std() == pytest.approx(0.3, rel=0.01)
    np.testing.assert_array_equal(_filled(init.constant_, (2, 3), val=0.25), np.full((2, 3), .25))
    np.testing.assert_array_equal(_filled(init.ones_, (4,)), np.ones(4))
    np.testing.assert_array_equal(_filled(init.zeros_, (4, 1, 2)), np.zeros((4, 1, 2)))
    np.testing.assert_array_equal(_filled(init.eye_, (3, 5)), np.eye(3, 5))
    with pytest.raises(ValueError, match="only tensors with 2 dimensions"):
        init.eye_(at.Tensor(np.zeros((2, 2, 2))))


def test_trunc_normal_matches_torchs_distribution(torch):
    ours = _filled(init.trunc_normal_, (400, 500), mean=0.5, std=2.0, a=-1.0, b=3.0)
    theirs = torch.nn.init.trunc_normal_(torch.empty(400, 500, dtype=torch.float64), mean=0.5,
                                         std=2.0, a=-1.0, b=3.0).numpy()
    assert ours.min() >= -1 and ours.max() <= 3
    assert ours.mean() == pytest.approx(theirs.mean(), abs=0.01)
    assert ours.std() == pytest.approx(theirs.std(), rel=0.01)


def test_trunc_normal_statistics_without_torch():
    """N(0, 1) truncated to [-2, 2]: mean 0, variance 1 - 2 * 2 * phi(2) / (2 * Phi(2) - 1)."""
    x = _filled(init.trunc_normal_, (400, 500))
    phi = math.exp(-2.0) / math.sqrt(2 * math.pi)
    mass = math.erf(2 / math.sqrt(2))
    assert x.min() >= -2 and x.max() <= 2 and abs(x.mean()) < 0.01
    assert x.var() == pytest.approx(1 - 4 * phi / mass, rel=0.01)
    with pytest.raises(ValueError, match="holds only"):
        init.trunc_normal_(at.Tensor(np.zeros(3)), mean=0, std=1, a=10, b=11)


@pytest.mark.parametrize("shape", [(30, 50), (50, 30), (8, 3, 3, 3), (20, 20)])
def test_orthogonal_rows_or_columns_are_orthonormal(shape):
    q = _filled(init.orthogonal_, shape, gain=2.0).reshape(shape[0], -1) / 2.0
    small = q @ q.T if q.shape[0] <= q.shape[1] else q.T @ q
    np.testing.assert_allclose(small, np.eye(len(small)), atol=1e-12)
    with pytest.raises(ValueError, match="2 or more dimensions"):
        init.orthogonal_(at.Tensor(np.zeros(4)))


def test_fills_in_place_under_no_grad_and_keeps_the_parameter():
    p = nn.Parameter(np.zeros((3, 4), np.float32))
    array = p.data
    init.kaiming_uniform_(p)              # a leaf that requires grad: allowed, as in torch
    assert p.data is array and p.dtype == np.float32 and p.requires_grad and p._node is None
    assert np.any(array != 0)
    a = np.zeros((5, 6))
    assert init.xavier_normal_(a) is a and np.any(a != 0)       # ndarrays too
    with pytest.raises(TypeError, match="expected a Tensor, Parameter or ndarray, got list"):
        init.normal_([1.0, 2.0])


def test_draws_come_from_autotensors_generator():
    first = _filled(init.normal_, (3, 3))
    again = _filled(init.normal_, (3, 3))                # _filled reseeds with at.manual_seed(0)
    np.testing.assert_array_equal(first, again)
    at.manual_seed(0)
    np.testing.assert_array_equal(first, at.randn(3, 3).data)   # the same stream as at.randn
    mine = init.uniform_(at.Tensor(np.zeros(4)), generator=np.random.default_rng(5)).data
    np.testing.assert_array_equal(mine, np.random.default_rng(5).uniform(0, 1, 4))
    with pytest.raises(TypeError, match="generator must be a np.random.Generator"):
        init.uniform_(at.Tensor(np.zeros(4)), generator=5)


def test_empty_tensors_and_bad_modes():
    empty = at.Tensor(np.zeros((0, 3)))
    assert init.kaiming_normal_(empty) is empty
    with pytest.raises(ValueError, match="mode must be 'fan_in' or 'fan_out'"):
        init.kaiming_uniform_(at.Tensor(np.zeros((3, 3))), mode="fan_avg")
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(at.Tensor(np.zeros(3)))


def test_the_course_initialisers_still_work():
    w = np.zeros((30, 20))
    np.random.seed(0)
    init.gaussian(w, 0.5)
    np.random.seed(0)
    np.testing.assert_array_equal(w, 0.5 * np.random.randn(30, 20))
    assert init.kaiming_normal(np.zeros((4, 3)), rng=np.random.default_rng(0)).shape == (4, 3)
