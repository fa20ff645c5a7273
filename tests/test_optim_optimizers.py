"""Optimizer classes: same steps as the rules, param groups, state_dict, errors; schedules."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import autotensor as at
from autotensor import optim
from autotensor.optim import rules

SHAPES = [(3, 4), (4,)]


def make_params(dtype=np.float64, seed=0):
    r = np.random.RandomState(seed)
    return [at.Tensor(r.randn(*s).astype(dtype), requires_grad=True) for s in SHAPES]


def grads_at(step, dtype=np.float64):
    r = np.random.RandomState(100 + step)
    return [r.randn(*s).astype(dtype) for s in SHAPES]


# (optimizer factory, the rule it must reproduce, that rule's config)
CASES = [
    ("sgd", lambda ps: optim.SGD(ps, lr=0.1), rules.sgd, {"learning_rate": 0.1}),
    ("momentum", lambda ps: optim.SGD(ps, lr=0.1, momentum=0.8), rules.sgd_momentum,
     {"learning_rate": 0.1, "momentum": 0.8}),
    ("nesterov", lambda ps: optim.SGD(ps, lr=0.1, momentum=0.8, nesterov=True),
     rules.sgd_nesterov_momentum, {"learning_rate": 0.1, "momentum": 0.8}),
    ("adam", lambda ps: optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-7), rules.adam,
     {"learning_rate": 0.01, "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-7}),
    ("rmsprop", lambda ps: optim.RMSprop(ps, lr=0.01, decay_rate=0.9), rules.rmsprop,
     {"learning_rate": 0.01, "decay_rate": 0.9, "epsilon": 1e-8}),
    ("adagrad", lambda ps: optim.Adagrad(ps, lr=0.05, eps=1e-6), rules.adagrad,
     {"learning_rate": 0.05, "epsilon": 1e-6}),
]


@pytest.mark.parametrize("name, make, rule, config", CASES, ids=[c[0] for c in CASES])
def test_class_matches_rule_step_by_step(name, make, rule, config):
    params = make_params()
    opt = make(params)
    ws = [p.data.copy() for p in params]
    configs = [copy.deepcopy(config) for _ in params]
    for step in range(6):
        for p, g in zip(params, grads_at(step)):
            p.grad = g
        opt.step()
        for i, g in enumerate(grads_at(step)):
            ws[i], configs[i] = rule(ws[i], g, configs[i])
            np.testing.assert_array_equal(params[i].data, ws[i])


@pytest.mark.parametrize("name, make, rule, config", CASES, ids=[c[0] for c in CASES])
def test_float32_in_place_and_grad_none_skipped(name, make, rule, config):
    params = make_params(np.float32)
    arrays = [p.data for p in params]
    frozen = params[1].data.copy()
    opt = make(params)
    for step in range(3):
        params[0].grad = grads_at(step, np.float32)[0]      # params[1].grad stays None
        opt.step()
    assert params[0].data is arrays[0] and params[0].dtype == np.float32
    np.testing.assert_array_equal(params[1].data, frozen)
    assert all(v.dtype == np.float32 for s in opt.state.values() for v in s.values()
               if isinstance(v, np.ndarray))
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_trains_a_tiny_softmax_classifier():
    r = np.random.RandomState(0)
    X = r.randn(60, 3)
    y = (X[:, 0] > 0).astype(int)
    W = at.Tensor(np.zeros((3, 2)), requires_grad=True)
    b = at.Tensor(np.zeros(2), requires_grad=True)
    opt = optim.Adam([W, b], lr=0.1)
    for _ in range(30):
        loss = -(at.Tensor(X) @ W + b).log_softmax(axis=1)[np.arange(60), y].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert np.mean(np.argmax(X @ W.data + b.data, axis=1) == y) > 0.95


def test_param_groups_have_their_own_lr():
    a, b = make_params()
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert opt.param_groups[1]["momentum"] == 0.9
    a0, b0 = a.data.copy(), b.data.copy()
    a.grad, b.grad = np.ones_like(a0), np.ones_like(b0)
    opt.step()
    np.testing.assert_allclose(a.data, a0 - 0.1)
    np.testing.assert_allclose(b.data, b0 - 0.5)


def test_weight_decay_adds_l2_gradient():
    (p,), (q,) = [make_params()[0]], [make_params()[0]]
    g = grads_at(0)[0]
    opt_wd = optim.SGD([p], lr=0.1, weight_decay=0.01)
    opt = optim.SGD([q], lr=0.1)
    p.grad, q.grad = g, g + 0.01 * q.data
    opt_wd.step()
    opt.step()
    np.testing.assert_allclose(p.data, q.data, rtol=1e-15)


@pytest.mark.parametrize("name, make, rule, config", CASES, ids=[c[0] for c in CASES])
def test_state_dict_resumes_exactly(name, make, rule, config):
    params, twin = make_params(), make_params()
    opt = make(params)
    for step in range(3):
        for p, g in zip(params, grads_at(step)):
            p.grad = g
        opt.step()
    saved = opt.state_dict()
    for p, t in zip(params, twin):
        t.data[...] = p.data
    opt2 = make(twin)
    opt2.load_state_dict(saved)
    # The saved state is a copy: stepping the original does not change it.
    snapshot = copy.deepcopy(saved)
    for step in range(3, 6):
        for o, ps in ((opt, params), (opt2, twin)):
            for p, g in zip(ps, grads_at(step)):
                p.grad = g
            o.step()
    for p, t in zip(params, twin):
        np.testing.assert_array_equal(p.data, t.data)
    for i, s in snapshot["state"].items():
        for k, v in s.items():
            np.testing.assert_array_equal(v, saved["state"][i][k])


def sgd_after_one_step():
    params = make_params()
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    for p, g in zip(params, grads_at(0)):
        p.grad = g
    opt.step()
    return params, opt


def test_load_state_dict_validates_before_assigning():
    params, opt = sgd_after_one_step()
    good = opt.state_dict()
    bad = copy.deepcopy(good)
    bad["state"][1]["velocity"] = np.zeros(7)
    bad["param_groups"][0]["lr"] = 123.0
    before = copy.deepcopy(opt.state_dict())
    with pytest.raises(ValueError, match=r"velocity.*\(7,\)"):
        opt.load_state_dict(bad)
    after = opt.state_dict()
    assert after["param_groups"][0]["lr"] == before["param_groups"][0]["lr"] == 0.1
    np.testing.assert_array_equal(after["state"][0]["velocity"], before["state"][0]["velocity"])
    with pytest.raises(ValueError, match="param groups"):
        optim.SGD([{"params": params[:1]}, {"params": params[1:]}], lr=0.1).load_state_dict(good)


@pytest.mark.parametrize("edit, match", [
    (lambda sd: sd.pop("state"), "keys 'state' and 'param_groups'"),
    (lambda sd: sd["param_groups"][0].update(lr=-1.0), "learning rate must be >= 0"),
    (lambda sd: sd["param_groups"][0].update(betas=(0.9, 0.999)), "another optimizer"),
    (lambda sd: sd["state"][0].update(m=np.zeros((3, 4))), r"\['m'\].*\['velocity'\]"),
])
def test_load_state_dict_refuses_foreign_or_invalid_dicts(edit, match):
    _, opt = sgd_after_one_step()
    bad = opt.state_dict()
    edit(bad)
    before = opt.state_dict()
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(bad)
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"]
    np.testing.assert_array_equal(after["state"][0]["velocity"], before["state"][0]["velocity"])


def test_an_adam_state_dict_does_not_load_into_sgd():
    params = make_params()
    adam = optim.Adam(params, lr=0.1)
    for p, g in zip(params, grads_at(0)):
        p.grad = g
    adam.step()
    with pytest.raises(ValueError, match="betas.*another optimizer"):
        optim.SGD(params, lr=0.1).load_state_dict(adam.state_dict())


def test_constructor_errors():
    params = make_params()
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="ndarray"):
        optim.Adam([np.zeros(3)])
    with pytest.raises(ValueError, match="leaf"):
        optim.Adam([params[0] * 2])
    with pytest.raises(ValueError, match="twice"):
        optim.Adam([params[0], params[0]])
    with pytest.raises(ValueError, match="learning_rate"):
        optim.Adam([{"params": params, "learning_rate": 0.1}])
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD(params, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="learning rate"):
        optim.SGD(params, lr=-1)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(params, betas=(0.9, 1.0))


# PyTorch's update equations as its torch.optim documentation states them (constant lr, no
# dampening, no amsgrad, Adagrad without lr decay), in numpy: one step for one parameter.
def torch_sgd(p, g, s, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    g = g + weight_decay * p
    if momentum:
        s["b"] = g.copy() if "b" not in s else momentum * s["b"] + g
        g = g + momentum * s["b"] if nesterov else s["b"]
    return p - lr * g


def torch_adam(p, g, s, lr, b1=0.9, b2=0.999, eps=1e-8):
    s["t"] = s.get("t", 0) + 1
    s["m"] = b1 * s.get("m", 0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0) + (1 - b2) * g * g
    mhat, vhat = s["m"] / (1 - b1 ** s["t"]), s["v"] / (1 - b2 ** s["t"])
    return p - lr * mhat / (np.sqrt(vhat) + eps)


def torch_rmsprop(p, g, s, lr, alpha=0.99, eps=1e-8):
    s["v"] = alpha * s.get("v", 0) + (1 - alpha) * g * g
    return p - lr * g / (np.sqrt(s["v"]) + eps)


def torch_adagrad(p, g, s, lr, eps=1e-8):
    s["sum"] = s.get("sum", 0) + g * g
    return p - lr * g / (np.sqrt(s["sum"]) + eps)


PYTORCH_CASES = [   # (ours, PyTorch's equations, torch.optim's class and arguments)
    (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
     lambda p, g, s: torch_sgd(p, g, s, 0.1, 0.9, weight_decay=0.01),
     ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.01))),
    (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
     lambda p, g, s: torch_sgd(p, g, s, 0.1, 0.9, nesterov=True),
     ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True))),
    (lambda ps: optim.Adam(ps, lr=0.01), lambda p, g, s: torch_adam(p, g, s, 0.01),
     ("Adam", dict(lr=0.01))),
    (lambda ps: optim.RMSprop(ps, lr=0.01), lambda p, g, s: torch_rmsprop(p, g, s, 0.01),
     ("RMSprop", dict(lr=0.01, alpha=0.99, eps=1e-8))),
    (lambda ps: optim.Adagrad(ps, lr=0.1), lambda p, g, s: torch_adagrad(p, g, s, 0.1),
     ("Adagrad", dict(lr=0.1, eps=1e-8))),
]


@pytest.mark.parametrize("mine,equations,torch_class", PYTORCH_CASES,
                         ids=["sgd-wd", "nesterov", "adam", "rmsprop", "adagrad"])
def test_same_trajectories_as_pytorch(mine, equations, torch_class):
    """Five steps follow PyTorch's documented equations; and torch.optim itself, when torch
    is importable (it is not a dependency)."""
    params = make_params()
    expected = [p.data.copy() for p in params]
    states = [{} for _ in params]
    opt = mine(params)
    for step in range(5):
        for p, g in zip(params, grads_at(step)):
            p.grad = g
        opt.step()
        expected = [equations(e, g, s) for e, g, s in zip(expected, grads_at(step), states)]
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p.data, e, rtol=1e-12, atol=1e-14)
    try:
        import torch
    except ImportError:
        return
    tparams = [torch.tensor(p.data.copy(), requires_grad=True) for p in make_params()]
    topt = getattr(torch.optim, torch_class[0])(tparams, **torch_class[1])
    for step in range(5):
        for t, g in zip(tparams, grads_at(step)):
            t.grad = torch.tensor(g)
        topt.step()
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-10, atol=1e-12)


# ---- schedules ---------------------------------------------------------------------------------
def lrs_over(sched, epochs):
    out = []
    for _ in range(epochs):
        sched.step()
        out.append(sched.get_last_lr())
    return out


def test_step_exponential_cosine_values():
    a, b = make_params()
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    got = lrs_over(optim.StepLR(opt, step_size=2, gamma=0.5), 5)
    assert got == [[0.1 * 0.5 ** (e // 2), 1.0 * 0.5 ** (e // 2)] for e in range(1, 6)]

    opt = optim.Adam([a], lr=0.2)
    got = lrs_over(optim.ExponentialLR(opt, gamma=0.9), 4)
    assert [g[0] for g in got] == pytest.approx([0.2 * 0.9**e for e in range(1, 5)], rel=1e-15)

    opt = optim.RMSprop([a], lr=0.1)
    got = [g[0] for g in lrs_over(optim.CosineAnnealingLR(opt, T_max=4, eta_min=0.01), 6)]
    expected = [0.01 + 0.09 * (1 + math.cos(math.pi * min(e, 4) / 4)) / 2 for e in range(1, 7)]
    assert got == pytest.approx(expected, rel=1e-15)
    assert got[3] == pytest.approx(0.01) and got[5] == pytest.approx(0.01)   # held at eta_min


def test_schedule_state_dict_resumes():
    a, _ = make_params()
    opt = optim.SGD([a], lr=0.1)
    sched = optim.CosineAnnealingLR(opt, T_max=10)
    lrs_over(sched, 3)
    state = sched.state_dict()
    opt2 = optim.SGD([make_params()[0]], lr=0.1)
    sched2 = optim.CosineAnnealingLR(opt2, T_max=10)
    sched2.load_state_dict(state)
    assert lrs_over(sched, 4) == lrs_over(sched2, 4)
    with pytest.raises(ValueError, match="unknown keys"):
        sched2.load_state_dict({"bogus": 1})


def test_schedule_errors():
    opt = optim.SGD(make_params(), lr=0.1)
    with pytest.raises(ValueError, match="step_size"):
        optim.StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="T_max"):
        optim.CosineAnnealingLR(opt, T_max=2.5)
    with pytest.raises(ValueError, match="optimizer"):
        optim.ExponentialLR(object(), gamma=0.9)
