"""Normalisation: BatchNorm1d/2d, LayerNorm, GroupNorm and their F functions against PyTorch in
float64 (outputs, every gradient, running statistics over several steps, state_dicts), numerical
gradient checks that run without torch, the course's forms kept, and bad arguments refused."""

from __future__ import annotations

import numpy as np
import pytest

import autotensor as at
from autotensor import nn
from autotensor.gradient_check import eval_numerical_gradient_array, rel_error
from autotensor.nn import functional as F
from autotensor.nn import layers as L
from autotensor.nn.models import FullyConnectedNet

TOL = 1e-10


def _close(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    err = np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))) if a.size else 0.0
    assert err < TOL, f"{what}: relative error {err:.2e}"


def _copy_from_torch(mine, theirs):
    mine.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def _randomize_torch(theirs, rng, torch):
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape))))


def _step(mine, theirs, x, g, torch):
    """One forward and backward on both; compare the output and every gradient."""
    xa = at.Tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    out_a, out_t = mine(xa), theirs(xt)
    _close(out_a.data, out_t.detach().numpy(), "output")
    out_a.backward(g)
    out_t.backward(torch.tensor(g))
    _close(xa.grad, xt.grad.numpy(), "input gradient")
    for (name, p), (name_t, pt) in zip(mine.named_parameters(), theirs.named_parameters()):
        assert name == name_t
        _close(p.grad, pt.grad.numpy(), f"{name} gradient")
    mine.zero_grad()
    theirs.zero_grad()


def _same_state(mine, theirs):
    ours, torchs = mine.state_dict(), theirs.state_dict()
    assert list(ours) == list(torchs)
    for k in ours:
        _close(ours[k], torchs[k].numpy(), k)
        assert ours[k].dtype == torchs[k].numpy().dtype, k


# ---- BatchNorm against PyTorch -------------------------------------------------------------------
BN_CASES = [
    ("BatchNorm1d", (8, 3), {}),
    ("BatchNorm1d", (5, 3, 4), {}),                    # (N, C, L)
    ("BatchNorm1d", (6, 3), {"momentum": None}),       # cumulative average
    ("BatchNorm1d", (4, 3, 2), {"momentum": 0.5, "eps": 1e-3}),
    ("BatchNorm1d", (6, 3), {"affine": False}),
    ("BatchNorm2d", (3, 3, 4, 5), {}),
    ("BatchNorm2d", (2, 3, 3, 3), {"momentum": None}),
    ("BatchNorm2d", (2, 3, 2, 3), {"affine": False, "momentum": 0.0}),
]


@pytest.mark.parametrize("name, shape, kw", BN_CASES,
                         ids=[f"{n}-{len(s)}d-{k}" for n, s, k in BN_CASES])
def test_batchnorm_trains_and_evaluates_like_torch(torch, name, shape, kw):
    rng = np.random.default_rng(0)
    theirs = getattr(torch.nn, name)(3, **kw).double()
    mine = getattr(nn, name)(3, **kw)
    _randomize_torch(theirs, rng, torch)
    _copy_from_torch(mine, theirs)
    for _ in range(4):                         # train: the running statistics move each step
        _step(mine, theirs, 2 * rng.standard_normal(shape) + 1, rng.standard_normal(shape),
              torch)
        _same_state(mine, theirs)
    assert int(mine.num_batches_tracked) == 4
    mine.eval()
    theirs.eval()
    _step(mine, theirs, rng.standard_normal(shape), rng.standard_normal(shape), torch)
    _same_state(mine, theirs)                  # eval leaves them alone


def test_batchnorm_without_running_stats_is_torch(torch):
    rng = np.random.default_rng(1)
    theirs = torch.nn.BatchNorm2d(2, track_running_stats=False).double()
    mine = nn.BatchNorm2d(2, track_running_stats=False)
    _randomize_torch(theirs, rng, torch)
    _copy_from_torch(mine, theirs)
    assert list(mine.state_dict()) == list(theirs.state_dict()) == ["weight", "bias"]
    for mode in ("train", "eval"):             # batch statistics in both modes
        getattr(mine, mode)()
        getattr(theirs, mode)()
        _step(mine, theirs, rng.standard_normal((3, 2, 2, 2)),
              rng.standard_normal((3, 2, 2, 2)), torch)


def test_batchnorm_in_a_model_keeps_torchs_state_dict_over_training(torch):
    """An MLP with BatchNorm1d trained a few SGD steps here and in torch: same state_dict."""
    rng = np.random.default_rng(2)
    t_model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6),
                                  torch.nn.ReLU(), torch.nn.Linear(6, 3)).double()
    m_model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    state = {k: v.numpy().T if k.endswith("0.weight") or k.endswith("3.weight") else v.numpy()
             for k, v in t_model.state_dict().items()}     # Linear weights are (in, out) here
    m_model.load_state_dict(state)
    t_opt = torch.optim.SGD(t_model.parameters(), lr=0.1)
    for _ in range(3):
        x, y = rng.standard_normal((8, 4)), rng.integers(0, 3, 8)
        t_loss = torch.nn.functional.cross_entropy(t_model(torch.tensor(x)), torch.tensor(y))
        t_opt.zero_grad()
        t_loss.backward()
        t_opt.step()
        m_model.zero_grad()
        loss = F.softmax_cross_entropy(m_model(x), y)
        loss.backward()
        with at.no_grad():
            for p in m_model.parameters():
                p -= 0.1 * p.grad
        _close(loss.item(), t_loss.item(), "loss")
    ours = m_model.state_dict()
    for k, v in t_model.state_dict().items():
        want = v.numpy().T if k in ("0.weight", "3.weight") else v.numpy()
        _close(ours[k], want, k)
    assert ours["1.num_batches_tracked"] == 3


def test_batchnorm_defaults_and_names_are_torchs():
    bn = nn.BatchNorm2d(4)
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    assert [n for n, _ in bn.named_buffers()] == ["running_mean", "running_var",
                                                  "num_batches_tracked"]
    np.testing.assert_array_equal(bn.running_mean, np.zeros(4))
    np.testing.assert_array_equal(bn.running_var, np.ones(4))
    assert bn.num_batches_tracked.shape == () and bn.num_batches_tracked.dtype == np.int64
    assert (bn.eps, bn.momentum, bn.affine, bn.track_running_stats) == (1e-5, 0.1, True, True)
    assert repr(bn) == "BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, " \
                       "track_running_stats=True)"
    plain = nn.BatchNorm1d(3, affine=False)
    assert plain.weight is None and plain.bias is None and list(plain.parameters()) == []


def test_batchnorm_running_update_by_hand():
    """running = (1 - m) * running + m * batch, the UNBIASED batch variance."""
    x = np.arange(12.0).reshape(4, 3) ** 1.5
    bn = nn.BatchNorm1d(3, momentum=0.25)
    bn(x)
    np.testing.assert_allclose(bn.running_mean, 0.25 * x.mean(0), rtol=1e-14)
    np.testing.assert_allclose(bn.running_var, 0.75 + 0.25 * x.var(0, ddof=1), rtol=1e-14)
    cumulative = nn.BatchNorm1d(3, momentum=None)
    for k in range(3):
        cumulative(x + k)
    np.testing.assert_allclose(cumulative.running_mean, x.mean(0) + 1, rtol=1e-14)


def test_batchnorm_numerical_gradients_without_torch():
    rng = np.random.default_rng(3)
    for m, shape in ((nn.BatchNorm1d(2), (5, 2, 3)), (nn.BatchNorm2d(2, affine=False),
                                                      (3, 2, 2, 2))):
        x = at.Tensor(rng.standard_normal(shape) * 2 + 1, requires_grad=True)
        assert at.gradcheck(lambda x, *ps, m=m: m(x), [x, *m.parameters()], atol=1e-6,
                            rtol=1e-5)


def test_batchnorm_float32_stays_float32():
    bn = nn.BatchNorm1d(3, dtype=np.float32)
    out = bn(np.random.default_rng(0).standard_normal((4, 3, 2)).astype(np.float32))
    assert out.dtype == np.float32 and bn.running_var.dtype == np.float32


def test_the_course_batch_norm_keeps_its_convention():
    """F.batch_norm and nn.layers: momentum 0.9 on the OLD value, biased variance, zeros start."""
    x = np.arange(12.0).reshape(4, 3) ** 1.5
    rm, rv = np.zeros(3), np.zeros(3)
    F.batch_norm(x, np.ones(3), np.zeros(3), rm, rv)
    np.testing.assert_allclose(rm, 0.1 * x.mean(0), rtol=1e-14)
    np.testing.assert_allclose(rv, 0.1 * x.var(0), rtol=1e-14)
    bn_param = {"mode": "train"}
    L.batchnorm_forward(x, np.ones(3), np.zeros(3), bn_param)
    np.testing.assert_allclose(bn_param["running_var"], 0.1 * x.var(0), rtol=1e-14)


# ---- LayerNorm and GroupNorm against PyTorch -----------------------------------------------------
NORM_CASES = [
    ("LayerNorm", (5,), {}, (4, 5)),
    ("LayerNorm", ((3, 4),), {}, (2, 3, 4)),
    ("LayerNorm", ([4],), {"bias": False, "eps": 1e-3}, (2, 3, 4)),
    ("LayerNorm", (4,), {"elementwise_affine": False}, (3, 4)),
    ("LayerNorm", ((2, 3),), {}, (2, 3)),                   # no batch axis, as torch allows
    ("GroupNorm", (2, 4), {}, (3, 4, 2, 3)),
    ("GroupNorm", (3, 6), {"eps": 1e-3}, (2, 6, 5)),
    ("GroupNorm", (1, 3), {"affine": False}, (2, 3, 4)),
    ("GroupNorm", (4, 4), {}, (2, 4, 3)),                    # one channel a group
]


@pytest.mark.parametrize("name, args, kw, shape", NORM_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(NORM_CASES)])
def test_layer_and_group_norm_match_torch(torch, name, args, kw, shape):
    rng = np.random.default_rng(4)
    theirs = getattr(torch.nn, name)(*args, **kw).double()
    mine = getattr(nn, name)(*args, **kw)
    _randomize_torch(theirs, rng, torch)
    _copy_from_torch(mine, theirs)
    assert [n for n, _ in mine.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    for mode in ("train", "eval"):             # the same in both modes
        getattr(mine, mode)()
        getattr(theirs, mode)()
        _step(mine, theirs, 3 * rng.standard_normal(shape) - 1, rng.standard_normal(shape),
              torch)
    _same_state(mine, theirs)


def test_functional_forms_match_torch(torch):
    rng = np.random.default_rng(5)
    TF = torch.nn.functional
    x, w, b = rng.standard_normal((3, 2, 4)), rng.standard_normal((2, 4)), rng.standard_normal(
        (2, 4))
    for args in [((2, 4), w, b), ((4,), w[0], None), (4, None, b[0]), ([2, 4],)]:
        ours = F.layer_norm(x, *args, eps=1e-4)
        # NOTE: an int normalized_shape is accepted here as nn.LayerNorm takes it; torch's
        # F.layer_norm wants a tuple.
        t_args = [torch.tensor(a) if isinstance(a, np.ndarray) else a for a in args]
        t_args[0] = (t_args[0],) if isinstance(t_args[0], int) else t_args[0]
        theirs = TF.layer_norm(torch.tensor(x), *t_args, eps=1e-4)
        _close(ours.data, theirs.numpy(), f"layer_norm{args[0]}")
    x = rng.standard_normal((2, 6, 3, 2))
    _close(F.group_norm(x, 3, np.arange(6.0), -np.arange(6.0)).data,
           TF.group_norm(torch.tensor(x), 3, torch.arange(6.0).double(),
                         -torch.arange(6.0).double()).numpy(), "group_norm")


def test_the_course_layer_norm_form_still_works():
    rng = np.random.default_rng(6)
    x, gamma, beta = rng.standard_normal((4, 5)), rng.standard_normal(5), rng.standard_normal(5)
    want = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-3) * gamma + beta
    for out in (F.layer_norm(x, gamma, beta, 1e-3), F.layer_norm(x, gamma, beta, eps=1e-3),
                F.layer_norm(x, gamma=gamma, beta=beta, eps=1e-3),
                F.layer_norm(x, (5,), gamma, beta, 1e-3)):      # the torch form, same numbers
        np.testing.assert_allclose(out.data, want, rtol=1e-12)
    out, cache = L.layernorm_forward(x, gamma, beta, {"eps": 1e-3})
    np.testing.assert_allclose(out, want, rtol=1e-12)


# ---- the course's spatial group norm -------------------------------------------------------------
def test_spatial_groupnorm_as_the_notebook_checks_it():
    """Forward statistics, then every gradient against a numerical one, gamma (1, C, 1, 1)."""
    np.random.seed(231)
    N, C, H, W, G = 2, 6, 4, 5, 2
    x = 4 * np.random.randn(N, C, H, W) + 10
    gamma, beta = np.ones((1, C, 1, 1)), np.zeros((1, C, 1, 1))
    out, _ = L.spatial_groupnorm_forward(x, gamma, beta, G, {})
    grouped = out.reshape(N, G, -1)
    np.testing.assert_allclose(grouped.mean(axis=2), 0, atol=1e-12)
    np.testing.assert_allclose(grouped.std(axis=2), 1, atol=1e-5)      # eps inside the sqrt
    gamma, beta = np.random.randn(1, C, 1, 1), np.random.randn(1, C, 1, 1)
    dout = np.random.randn(N, C, H, W)
    _, cache = L.spatial_groupnorm_forward(x, gamma, beta, G, {})
    dx, dgamma, dbeta = L.spatial_groupnorm_backward(dout, cache)
    assert dgamma.shape == dbeta.shape == (1, C, 1, 1)

    def fx(x):
        return L.spatial_groupnorm_forward(x, gamma, beta, G, {})[0]

    def fg(g):
        return L.spatial_groupnorm_forward(x, g, beta, G, {})[0]

    def fb(b):
        return L.spatial_groupnorm_forward(x, gamma, b, G, {})[0]

    for got, f, a in ((dx, fx, x), (dgamma, fg, gamma), (dbeta, fb, beta)):
        assert rel_error(got, eval_numerical_gradient_array(f, a, dout)) < 1e-7


def test_spatial_groupnorm_equals_torch_group_norm(torch):
    rng = np.random.default_rng(7)
    x, g, b = rng.standard_normal((2, 4, 3, 3)), rng.standard_normal(4), rng.standard_normal(4)
    out, _ = L.spatial_groupnorm_forward(x, g.reshape(1, 4, 1, 1), b.reshape(1, 4, 1, 1), 2,
                                         {"eps": 1e-4})
    want = torch.nn.functional.group_norm(torch.tensor(x), 2, torch.tensor(g), torch.tensor(b),
                                          eps=1e-4)
    _close(out, want.numpy(), "spatial_groupnorm_forward")


# ---- bad arguments -------------------------------------------------------------------------------
@pytest.mark.parametrize("call, match", [
    (lambda: nn.BatchNorm1d(3)(np.zeros((2, 4))), r"BatchNorm1d\(3\).*\(N, C\) or \(N, C, L\)"),
    (lambda: nn.BatchNorm1d(3)(np.zeros((1, 3))), "more than 1 value per channel"),
    (lambda: nn.BatchNorm2d(3)(np.zeros((2, 3, 4))), r"\(N, C, H, W\)"),
    (lambda: nn.BatchNorm1d(3, momentum=2), "momentum must be a finite number in"),
    (lambda: nn.BatchNorm1d(3, affine=1), "affine must be True or False"),
    (lambda: nn.BatchNorm1d(3, track_running_stats="no"), "track_running_stats must be"),
    (lambda: nn.LayerNorm((3, 0)), r"normalized_shape\[1\] must be an integer >= 1"),
    (lambda: nn.LayerNorm(3.5), "normalized_shape must be an int or a non-empty tuple"),
    (lambda: nn.LayerNorm(4)(np.zeros((2, 3))), r"normalized_shape \(4,\) must equal"),
    (lambda: F.layer_norm(np.zeros((2, 3)), 3, np.ones(4)), r"weight must have shape"),
    (lambda: F.layer_norm(np.zeros((2, 3)), np.ones(3)), "needs normalized_shape"),
    (lambda: nn.GroupNorm(4, 6), r"num_channels \(6\) must be divisible by num_groups \(4\)"),
    (lambda: nn.GroupNorm(0, 6), "num_groups must be an integer >= 1"),
    (lambda: F.group_norm(np.zeros((2, 6, 3)), 4), "C divisible by num_groups 4"),
    (lambda: F.group_norm(np.zeros((2, 6)), 2, np.ones(3)), r"weight must have shape \(6,\)"),
    (lambda: L.spatial_groupnorm_forward(np.zeros((2, 6, 2, 2)), np.ones(6), np.ones(6), 4, {}),
     "C divisible by G=4"),
    (lambda: L.spatial_groupnorm_forward(np.zeros((2, 6, 2, 2)), np.ones((6, 1)), np.ones(6),
                                         2, {}), r"gamma must have shape \(1, 6, 1, 1\)"),
    (lambda: L.spatial_groupnorm_forward(np.zeros((2, 6, 2, 2)), np.ones(6), np.ones(6), 2,
                                         {"eps": -1}), r"gn_param\['eps'\] must be"),
])
def test_bad_arguments_are_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---- the course completed: FullyConnectedNet's older spellings -----------------------------------
def _fc(**kw):
    np.random.seed(0)
    return FullyConnectedNet([5, 4], input_dim=6, num_classes=3, dtype=np.float64, seed=1, **kw)


def test_fully_connected_net_accepts_the_older_spellings():
    x, y = np.random.default_rng(0).standard_normal((4, 6)), np.array([0, 2, 1, 1])
    pairs = [({"dropout": 0.6, "use_batchnorm": True},            # 2018-2019 / 2016-2017
              {"dropout_keep_ratio": 0.6, "normalization": "batchnorm"}),
             ({"dropout": 0}, {}),                                 # 2016-2017's "no dropout"
             ({"dropout": 1, "use_batchnorm": False}, {})]         # 2018-2019's "no dropout"
    for old, new in pairs:
        a, b = _fc(**old), _fc(**new)
        assert (a.use_dropout, a.normalization) == (b.use_dropout, b.normalization)
        assert a.dropout_param == b.dropout_param
        loss_a, grads_a = a.loss(x, y)
        loss_b, grads_b = b.loss(x, y)
        assert loss_a == loss_b and grads_a.keys() == grads_b.keys()


@pytest.mark.parametrize("kw, match", [
    ({"dropout": 0.5, "dropout_keep_ratio": 0.5}, "dropout_keep_ratio or the older dropout"),
    ({"use_batchnorm": True, "normalization": "layernorm"}, "normalization or the older"),
    ({"dropout": 1.5}, r"dropout must be a finite number in \[0, 1\]"),
    ({"use_batchnorm": "yes"}, "use_batchnorm must be True or False"),
])
def test_fully_connected_net_refuses_both_spellings(kw, match):
    with pytest.raises(ValueError, match=match):
        _fc(**kw)


def _old_state(model):
    """model's state_dict as autotensor saved it before 2026-12-03: the norms' weight/bias
    under the course's names gamma/beta, and no num_batches_tracked."""
    old = {}
    for k, v in model.state_dict().items():
        head, _, leaf = k.rpartition(".")
        if leaf == "num_batches_tracked":
            continue
        if head in ("1", "2") and leaf in ("weight", "bias"):
            leaf = {"weight": "gamma", "bias": "beta"}[leaf]
        old[f"{head}.{leaf}"] = v + 1.5          # values the fresh model does not have
    return old


def test_a_state_dict_saved_with_the_old_gamma_beta_names_loads_strictly():
    def model():
        return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.LayerNorm(4))
    old = _old_state(model())
    m = model()
    m[1].num_batches_tracked[...] = 7
    assert m.load_state_dict(old) == ([], [])
    new = m.state_dict()
    for k in ("1.weight", "1.bias", "2.weight", "2.bias"):
        assert np.array_equal(new[k], old[k.replace("weight", "gamma").replace("bias", "beta")])
    for k in ("0.weight", "0.bias", "1.running_mean", "1.running_var"):
        assert np.array_equal(new[k], old[k])
    assert int(new["1.num_batches_tracked"]) == 7          # an old state has no count: kept


def test_old_names_beside_todays_are_refused_as_unexpected_and_change_nothing():
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    state = m.state_dict()
    before = {k: v.copy() for k, v in state.items()}
    state["1.gamma"] = np.zeros(4)
    with pytest.raises(ValueError, match=r"unexpected keys \['1.gamma'\]"):
        m.load_state_dict({k: v + 1 for k, v in state.items()})
    assert all(np.array_equal(m.state_dict()[k], v) for k, v in before.items())
