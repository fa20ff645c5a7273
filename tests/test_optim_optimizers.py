"""Optimizer classes: same steps as the rules, param groups, state_dict, errors; schedules."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import autotensor as at
from autotensor import nn, optim
from autotensor.optim import rules

SHAPES = [(3, 4), (4,)]
NAN = float("nan")


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


# ---- PyTorch's vocabulary: every option, against the documented equations and torch.optim ------
# PyTorch's update equations as torch.optim's documentation states them, in numpy: one step for
# one parameter `p` with gradient `g` and state dict `s`. These are the spec.
def eq_sgd(p, g, s, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    g = g + weight_decay * p
    if momentum:
        s["b"] = g.copy() if "b" not in s else momentum * s["b"] + (1 - dampening) * g
        g = g + momentum * s["b"] if nesterov else s["b"]
    return p - lr * g


def eq_adam(p, g, s, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
            decoupled=False):
    b1, b2 = betas
    if decoupled:
        p = p * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    s["t"] = s.get("t", 0) + 1
    s["m"] = b1 * s.get("m", 0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0) + (1 - b2) * g * g
    v = s["v"]
    if amsgrad:
        s["v_max"] = v = np.maximum(s.get("v_max", 0), s["v"])
    return p - lr * (s["m"] / (1 - b1 ** s["t"])) / (np.sqrt(v / (1 - b2 ** s["t"])) + eps)


def eq_adamw(p, g, s, weight_decay=1e-2, **kw):
    return eq_adam(p, g, s, weight_decay=weight_decay, decoupled=True, **kw)


def eq_rmsprop(p, g, s, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
               centered=False):
    g = g + weight_decay * p
    s["v"] = alpha * s.get("v", 0) + (1 - alpha) * g * g
    v = s["v"]
    if centered:
        s["g_avg"] = alpha * s.get("g_avg", 0) + (1 - alpha) * g
        v = v - s["g_avg"] ** 2
    if momentum:
        s["b"] = momentum * s.get("b", 0) + g / (np.sqrt(v) + eps)
        return p - lr * s["b"]
    return p - lr * g / (np.sqrt(v) + eps)


def eq_adagrad(p, g, s, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
               eps=1e-10):
    s["t"] = s.get("t", 0) + 1
    g = g + weight_decay * p
    clr = lr / (1 + (s["t"] - 1) * lr_decay)
    s["sum"] = s.get("sum", initial_accumulator_value) + g * g
    return p - clr * g / (np.sqrt(s["sum"]) + eps)


# (id, class name, keyword arguments, the equations): the class and arguments are the same in
# optim and torch.optim (Adagrad's eps is given: the defaults differ on purpose).
VOCAB = [
    ("sgd", "SGD", dict(lr=0.1), eq_sgd),
    ("sgd-momentum", "SGD", dict(lr=0.1, momentum=0.9), eq_sgd),
    ("sgd-dampening", "SGD", dict(lr=0.1, momentum=0.9, dampening=0.3), eq_sgd),
    ("sgd-dampening-wd", "SGD", dict(lr=0.05, momentum=0.5, dampening=0.5, weight_decay=0.1),
     eq_sgd),
    ("sgd-nesterov-wd", "SGD", dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.01),
     eq_sgd),
    ("adam", "Adam", dict(lr=0.01), eq_adam),
    ("adam-wd", "Adam", dict(lr=0.01, weight_decay=0.1), eq_adam),
    ("adam-amsgrad", "Adam", dict(lr=0.01, amsgrad=True), eq_adam),
    ("adam-amsgrad-wd-betas", "Adam", dict(lr=0.02, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.05,
                                           amsgrad=True), eq_adam),
    ("adamw", "AdamW", dict(lr=0.01), eq_adamw),
    ("adamw-wd", "AdamW", dict(lr=0.01, weight_decay=0.3), eq_adamw),
    ("adamw-amsgrad", "AdamW", dict(lr=0.01, betas=(0.5, 0.7), amsgrad=True), eq_adamw),
    ("rmsprop", "RMSprop", dict(lr=0.01), eq_rmsprop),
    ("rmsprop-alpha-wd", "RMSprop", dict(lr=0.01, alpha=0.9, weight_decay=0.1), eq_rmsprop),
    ("rmsprop-centered", "RMSprop", dict(lr=0.01, centered=True), eq_rmsprop),
    ("rmsprop-momentum", "RMSprop", dict(lr=0.01, momentum=0.9), eq_rmsprop),
    ("rmsprop-centered-momentum", "RMSprop", dict(lr=0.01, alpha=0.8, momentum=0.5,
                                                  centered=True, eps=1e-6), eq_rmsprop),
    ("adagrad", "Adagrad", dict(lr=0.1, eps=1e-10), eq_adagrad),
    ("adagrad-lr-decay-wd", "Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, eps=1e-10),
     eq_adagrad),
    ("adagrad-initial-accumulator", "Adagrad", dict(lr=0.1, initial_accumulator_value=0.5,
                                                    eps=1e-8), eq_adagrad),
]
STEPS = 10


def run_ours(name, kwargs, steps=STEPS, dtype=np.float64, grad=lambda g: g):
    params = make_params(dtype)
    opt = getattr(optim, name)(params, **kwargs)
    for step in range(steps):
        for p, g in zip(params, grads_at(step, dtype)):
            p.grad = grad(g)
        opt.step()
    return params, opt


@pytest.mark.parametrize("name, kwargs, equations", [v[1:] for v in VOCAB],
                         ids=[v[0] for v in VOCAB])
def test_each_option_follows_the_documented_equations(name, kwargs, equations):
    params, _ = run_ours(name, kwargs)
    expected, states = [p.data.copy() for p in make_params()], [{} for _ in SHAPES]
    for step in range(STEPS):
        expected = [equations(e, g, s, **kwargs)
                    for e, g, s in zip(expected, grads_at(step), states)]
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p.data, e, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name, kwargs", [v[1:3] for v in VOCAB], ids=[v[0] for v in VOCAB])
def test_each_option_equals_torch_optim(torch, name, kwargs):
    params, _ = run_ours(name, kwargs)
    tparams = [torch.tensor(p.data.copy(), requires_grad=True) for p in make_params()]
    topt = getattr(torch.optim, name)(tparams, **kwargs)
    for step in range(STEPS):
        for t, g in zip(tparams, grads_at(step)):
            t.grad = torch.tensor(g)
        topt.step()
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_defaults_are_pytorchs_except_adagrad_eps(torch):
    ps = make_params()
    for name in ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad"):
        ours = getattr(optim, name)(ps).defaults
        theirs = getattr(torch.optim, name)([torch.zeros(1, requires_grad=True)]).defaults
        for key, value in ours.items():
            expected = 1e-8 if (name, key) == ("Adagrad", "eps") else theirs[key]
            assert value == expected, (name, key)
    assert torch.optim.Adagrad([torch.zeros(1)]).defaults["eps"] == 1e-10


@pytest.mark.parametrize("name, kwargs", [v[1:3] for v in VOCAB], ids=[v[0] for v in VOCAB])
def test_each_option_resumes_from_state_dict_exactly(name, kwargs):
    params, opt = run_ours(name, kwargs, steps=4)
    twin = make_params()
    for p, t in zip(params, twin):
        t.data[...] = p.data
    opt2 = getattr(optim, name)(twin, **kwargs)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    for step in range(4, 8):
        for o, ps in ((opt, params), (opt2, twin)):
            for p, g in zip(ps, grads_at(step)):
                p.grad = g
            o.step()
    for p, t in zip(params, twin):
        np.testing.assert_array_equal(p.data, t.data)


@pytest.mark.parametrize("name, kwargs", [v[1:3] for v in VOCAB], ids=[v[0] for v in VOCAB])
def test_each_option_keeps_float32_and_updates_in_place(name, kwargs):
    params = make_params(np.float32)
    arrays = [p.data for p in params]
    opt = getattr(optim, name)(params, **kwargs)
    for step in range(3):
        for p, g in zip(params, grads_at(step, np.float32)):
            p.grad = g
        opt.step()
    assert all(p.data is a and p.dtype == np.float32 for p, a in zip(params, arrays))
    assert all(v.dtype == np.float32 for s in opt.state.values() for v in s.values()
               if isinstance(v, np.ndarray))
    expected, _ = run_ours(name, kwargs, steps=3)
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p.data, e.data, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name, kwargs, keys", [
    ("Adam", {}, ["m", "t", "v"]),
    ("Adam", {"amsgrad": True}, ["m", "t", "v", "v_max"]),
    ("RMSprop", {}, ["cache"]),
    ("RMSprop", {"centered": True, "momentum": 0.9}, ["cache", "grad_avg", "momentum_buffer"]),
    ("Adagrad", {}, ["cache", "t"]),
    ("SGD", {"momentum": 0.9, "dampening": 0.1}, ["velocity"]),
])
def test_the_state_each_option_keeps(name, kwargs, keys):
    _, opt = run_ours(name, kwargs, steps=2)
    assert all(sorted(s) == keys for s in opt.state.values())


def test_a_tensor_gradient_steps_like_its_array():
    """After backward(create_graph=True) a leaf's .grad is a Tensor: step reads its data."""
    by_array, _ = run_ours("Adam", {"lr": 0.1, "amsgrad": True})
    by_tensor, _ = run_ours("Adam", {"lr": 0.1, "amsgrad": True}, grad=at.Tensor)
    for a, b in zip(by_array, by_tensor):
        np.testing.assert_array_equal(a.data, b.data)


def test_zero_grad_set_to_none_false_zeros_in_place():
    params, opt = run_ours("SGD", {"lr": 0.1}, steps=1)
    grads = [p.grad for p in params]
    params[1].grad = at.Tensor(np.ones(4))
    opt.zero_grad(set_to_none=False)
    assert params[0].grad is grads[0] and not params[0].grad.any()
    assert isinstance(params[1].grad, np.ndarray) and not params[1].grad.any()
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_step_calls_the_closure_and_returns_its_loss():
    w = at.Tensor(np.array([1.0, -2.0]), requires_grad=True)
    opt = optim.SGD([w], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    with at.no_grad():                          # the closure still records (PyTorch's rule)
        loss = opt.step(closure)
    assert loss.item() == 5.0
    np.testing.assert_allclose(w.data, [0.8, -1.6])
    assert opt.step() is None


def test_rmsprop_decay_rate_is_alpha():
    a = optim.RMSprop(make_params(), decay_rate=0.9)
    b = optim.RMSprop(make_params(), alpha=0.9)
    c = optim.RMSprop(make_params(), 1e-2, 0.9)                  # third positional: alpha
    assert a.param_groups[0]["alpha"] == b.param_groups[0]["alpha"] == 0.9
    assert c.defaults == b.defaults and "decay_rate" not in a.defaults
    group = optim.RMSprop([{"params": make_params()[:1], "decay_rate": 0.5}])
    assert group.param_groups[0]["alpha"] == 0.5
    with pytest.raises(ValueError, match="not both"):
        optim.RMSprop(make_params(), alpha=0.9, decay_rate=0.9)
    with pytest.raises(ValueError, match="not both"):
        optim.RMSprop([{"params": make_params(), "alpha": 0.9, "decay_rate": 0.9}])


def test_rmsprop_centered_clamps_a_rounding_negative_variance():
    """A constant gradient: v - g_avg**2 is 0 up to rounding; PyTorch can take sqrt(< 0)."""
    w = at.Tensor(np.zeros(3), requires_grad=True)
    opt = optim.RMSprop([w], lr=0.01, alpha=0.5, centered=True)
    for _ in range(200):
        w.grad = np.full(3, 0.1)
        opt.step()
    assert np.all(np.isfinite(w.data))


def test_sgd_dampening_leaves_the_first_step_undamped():
    w = at.Tensor(np.zeros(2), requires_grad=True)
    opt = optim.SGD([w], lr=1.0, momentum=0.5, dampening=0.5)
    w.grad = np.ones(2)
    opt.step()
    np.testing.assert_array_equal(w.data, [-1.0, -1.0])      # b = g
    opt.step()
    np.testing.assert_array_equal(w.data, [-2.0, -2.0])      # b = 0.5 * 1 + 0.5 * 1


def test_adamw_decays_the_weights_not_the_gradient():
    """With a zero gradient Adam's step is 0, so only the decoupled decay moves the weights."""
    w = at.Tensor(np.array([1.0, -2.0]), requires_grad=True)
    opt = optim.AdamW([w], lr=0.1, weight_decay=0.5)
    w.grad = np.zeros(2)
    opt.step()
    np.testing.assert_allclose(w.data, [0.95, -1.9], rtol=1e-15)
    coupled = at.Tensor(np.array([1.0, -2.0]), requires_grad=True)
    adam = optim.Adam([coupled], lr=0.1, weight_decay=0.5)
    coupled.grad = np.zeros(2)
    adam.step()
    np.testing.assert_allclose(coupled.data, [0.9, -1.9], rtol=1e-6)    # a full Adam step


@pytest.mark.parametrize("make, edit, match", [
    (lambda ps: optim.Adam(ps, amsgrad=True), lambda sd: sd["state"][0].pop("v_max"),
     r"all of \['m', 'v', 't', 'v_max'\]"),
    (lambda ps: optim.Adam(ps), lambda sd: sd["param_groups"][0].update(amsgrad=True),
     r"keeps all of \['m', 'v', 't', 'v_max'\] or none"),
    (lambda ps: optim.Adam(ps, amsgrad=True),
     lambda sd: sd["state"][1].update(v_max=-np.ones(4)), "'v_max' of parameter 1 holds neg"),
    (lambda ps: optim.Adam(ps), lambda sd: sd["param_groups"][0].update(amsgrad="yes"),
     "'amsgrad' must be True or False"),
    (lambda ps: optim.RMSprop(ps, centered=True),
     lambda sd: sd["param_groups"][0].update(centered=False), r"keeps all of \['cache'\]"),
    (lambda ps: optim.RMSprop(ps), lambda sd: sd["param_groups"][0].update(momentum=1.5),
     "momentum must be a finite number in"),
    (lambda ps: optim.Adagrad(ps), lambda sd: sd["state"][0].update(t=-1), "'t' of parameter 0"),
    (lambda ps: optim.Adagrad(ps), lambda sd: sd["param_groups"][0].update(lr_decay=-1.0),
     "lr_decay must be a finite number >= 0"),
    (lambda ps: optim.SGD(ps, momentum=0.9), lambda sd: sd["param_groups"][0].update(
        dampening=0.5, nesterov=True), "dampening 0"),
    (lambda ps: optim.AdamW(ps), lambda sd: sd["param_groups"][0].update(initial_lr=NAN),
     "'initial_lr' must be a finite"),
], ids=["amsgrad-missing-v-max", "amsgrad-switched-on", "v-max-negative", "amsgrad-string",
        "centered-switched-off", "rmsprop-momentum", "adagrad-t", "adagrad-lr-decay",
        "nesterov-dampening", "initial-lr-nan"])
def test_load_state_dict_checks_the_new_options(make, edit, match):
    params = make_params()
    opt = make(params)
    for p, g in zip(params, grads_at(0)):
        p.grad = g
    opt.step()
    bad = opt.state_dict()
    edit(bad)
    before = copy.deepcopy(opt.state_dict())
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(bad)
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"]
    for i, s in before["state"].items():
        for k, v in s.items():
            np.testing.assert_array_equal(after["state"][i][k], v)


def test_a_scheduled_optimizers_state_dict_loads_anywhere():
    """A scheduler adds 'initial_lr' to the groups (PyTorch's key); loading ignores its
    absence on either side."""
    params = make_params()
    opt = optim.SGD(params, lr=0.1)
    optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5).step()
    fresh = optim.SGD(make_params(), lr=0.3)
    fresh.load_state_dict(opt.state_dict())
    assert fresh.param_groups[0]["lr"] == 0.05 and fresh.param_groups[0]["initial_lr"] == 0.1
    opt.load_state_dict(optim.SGD(make_params(), lr=0.2).state_dict())
    assert opt.param_groups[0]["lr"] == 0.2 and opt.param_groups[0]["initial_lr"] == 0.1


def test_step_while_a_retained_graph_holds_the_weights():
    """A step writes in place like PyTorch's (the graph keeps its hold on the weights), and a
    later backward through that graph is refused, naming the in-place write."""
    lin = nn.Linear(3, 1)
    opt = optim.SGD(lin.parameters(), lr=0.1)
    loss = (lin(at.Tensor(np.random.default_rng(0).standard_normal((4, 3)))) ** 2).sum()
    loss.backward(retain_graph=True)
    before = lin.weight.data.copy()
    opt.step()
    np.testing.assert_allclose(lin.weight.data, before - 0.1 * lin.weight.grad)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()
