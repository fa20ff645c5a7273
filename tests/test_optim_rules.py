"""optim.rules: the course's update rules against independent scalar formulas and the course
notebook's reference values; defaults, state handling, dtypes and input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autotensor import optim
from autotensor.gradient_check import rel_error
from autotensor.optim import rules

N, D = 4, 5
W = np.linspace(-0.4, 0.6, num=N * D).reshape(N, D)        # the course notebook's inputs
DW = np.linspace(-0.6, 0.4, num=N * D).reshape(N, D)


def elementwise(fn, *arrays):
    """Apply a scalar Python function element by element (an independent reference)."""
    out = [fn(*vals) for vals in zip(*(a.ravel().tolist() for a in arrays))]
    return [np.array([o[i] for o in out]).reshape(arrays[0].shape) for i in range(len(out[0]))]


def test_sgd():
    next_w, config = rules.sgd(W, DW, {"learning_rate": 0.1})
    (expected,) = elementwise(lambda w, g: (w - 0.1 * g,), W, DW)
    assert rel_error(next_w, expected) < 1e-12
    assert config["learning_rate"] == 0.1


def test_sgd_momentum_matches_formula_and_course_values():
    v = np.linspace(0.6, 0.9, num=N * D).reshape(N, D)
    next_w, config = rules.sgd_momentum(W, DW, {"learning_rate": 1e-3, "velocity": v})

    def ref(w, g, v):
        v = 0.9 * v - 1e-3 * g
        return w + v, v
    expected_w, expected_v = elementwise(ref, W, DW, v)
    assert rel_error(next_w, expected_w) < 1e-12
    assert rel_error(config["velocity"], expected_v) < 1e-12
    # Corner values printed by the course notebook for these inputs.
    assert next_w[0, 0] == pytest.approx(0.1406, abs=1e-8)
    assert next_w[-1, -1] == pytest.approx(1.4096, abs=1e-8)
    assert config["velocity"][0, 0] == pytest.approx(0.5406, abs=1e-8)


def test_sgd_nesterov_momentum():
    v = np.linspace(0.6, 0.9, num=N * D).reshape(N, D)
    next_w, config = rules.sgd_nesterov_momentum(W, DW, {"learning_rate": 1e-2, "velocity": v,
                                                         "momentum": 0.8})

    def ref(w, g, v_prev):
        v = 0.8 * v_prev - 1e-2 * g
        return w - 0.8 * v_prev + 1.8 * v, v
    expected_w, expected_v = elementwise(ref, W, DW, v)
    assert rel_error(next_w, expected_w) < 1e-12
    assert rel_error(config["velocity"], expected_v) < 1e-12


def test_nesterov_equals_lookahead_gradient_form():
    """On a quadratic, the course form with dw taken at w equals classic Nesterov, which takes
    the gradient at the look-ahead point, written in the variable w = x + mu * v."""
    A = np.diag([1.0, 3.0, 10.0])
    grad = lambda x: A @ x          # noqa: E731
    lr, mu = 0.05, 0.9
    x, v_classic = np.array([1.0, -2.0, 0.5]), np.zeros(3)
    w, config = x.copy(), {"learning_rate": lr, "momentum": mu}
    for _ in range(20):
        v_classic = mu * v_classic - lr * grad(x + mu * v_classic)
        x = x + v_classic
        w, config = rules.sgd_nesterov_momentum(w, grad(w), config)
        assert rel_error(w, x + mu * v_classic) < 1e-10


def test_rmsprop_matches_formula_and_course_values():
    cache = np.linspace(0.6, 0.9, num=N * D).reshape(N, D)
    next_w, config = rules.rmsprop(W, DW, {"learning_rate": 1e-2, "cache": cache})

    def ref(w, g, c):
        c = 0.99 * c + 0.01 * g * g
        return w - 1e-2 * g / (math.sqrt(c) + 1e-8), c
    expected_w, expected_cache = elementwise(ref, W, DW, cache)
    assert rel_error(next_w, expected_w) < 1e-12
    assert rel_error(config["cache"], expected_cache) < 1e-12
    assert next_w[0, 0] == pytest.approx(-0.39223849, abs=1e-8)
    assert config["cache"][0, 0] == pytest.approx(0.5976, abs=1e-8)


def test_adam_matches_formula_and_course_values():
    m = np.linspace(0.6, 0.9, num=N * D).reshape(N, D)
    v = np.linspace(0.7, 0.5, num=N * D).reshape(N, D)
    next_w, config = rules.adam(W, DW, {"learning_rate": 1e-2, "m": m, "v": v, "t": 5})

    def ref(w, g, m, v):
        t = 6                          # incremented before use
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        m_hat, v_hat = m / (1 - 0.9**t), v / (1 - 0.999**t)
        return w - 1e-2 * m_hat / (math.sqrt(v_hat) + 1e-8), m, v
    expected_w, expected_m, expected_v = elementwise(ref, W, DW, m, v)
    assert rel_error(next_w, expected_w) < 1e-12
    assert rel_error(config["m"], expected_m) < 1e-12
    assert rel_error(config["v"], expected_v) < 1e-12
    assert config["t"] == 6
    assert next_w[0, 0] == pytest.approx(-0.40094747, abs=1e-8)
    assert config["m"][0, 0] == pytest.approx(0.48, abs=1e-12)
    assert config["v"][0, 0] == pytest.approx(0.69966, abs=1e-12)


def test_adam_first_step_is_about_lr_times_sign():
    """Bias correction makes the very first step lr * g / (|g| + eps)."""
    next_w, config = rules.adam(W, DW)
    assert config["t"] == 1
    expected = W - 1e-3 * DW / (np.abs(DW) + 1e-8)
    assert rel_error(next_w, expected) < 1e-9


def test_adagrad():
    cache = np.linspace(0.1, 0.3, num=N * D).reshape(N, D)
    next_w, config = rules.adagrad(W, DW, {"cache": cache})

    def ref(w, g, c):
        c = c + g * g
        return w - 1e-2 * g / (math.sqrt(c) + 1e-8), c
    expected_w, expected_cache = elementwise(ref, W, DW, cache)
    assert rel_error(next_w, expected_w) < 1e-12
    assert rel_error(config["cache"], expected_cache) < 1e-12


DEFAULTS = [
    (rules.sgd, {"learning_rate": 1e-2}),
    (rules.sgd_momentum, {"learning_rate": 1e-2, "momentum": 0.9}),
    (rules.sgd_nesterov_momentum, {"learning_rate": 1e-2, "momentum": 0.9}),
    (rules.rmsprop, {"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8}),
    (rules.adam, {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}),
    (rules.adagrad, {"learning_rate": 1e-2, "epsilon": 1e-8}),
]
STATE = {rules.sgd: (), rules.sgd_momentum: ("velocity",),
         rules.sgd_nesterov_momentum: ("velocity",), rules.rmsprop: ("cache",),
         rules.adam: ("m", "v"), rules.adagrad: ("cache",)}


@pytest.mark.parametrize("rule, defaults", DEFAULTS, ids=lambda x: getattr(x, "__name__", ""))
def test_defaults_and_state_created(rule, defaults):
    _, config = rule(W, DW)                      # config=None
    for key, value in defaults.items():
        assert config[key] == value, key
    for key in STATE[rule]:
        assert config[key].shape == W.shape
    # An explicit config is filled in and returned (the same dict, as in the course).
    mine = {"learning_rate": 0.5}
    _, out = rule(W, DW, mine)
    assert out is mine and mine["learning_rate"] == 0.5


@pytest.mark.parametrize("rule", [r for r, _ in DEFAULTS], ids=lambda r: r.__name__)
def test_inputs_untouched_and_float32_kept(rule):
    w32, dw32 = W.astype(np.float32), DW.astype(np.float32)
    w_copy, dw_copy = w32.copy(), dw32.copy()
    # A numpy float64 learning rate (as np.random.uniform gives) must not upcast float32.
    config = {"learning_rate": np.float64(1e-2)}
    for _ in range(3):
        next_w, config = rule(w32, dw32, config)
        assert next_w.dtype == np.float32
        assert all(config[k].dtype == np.float32 for k in STATE[rule])
    np.testing.assert_array_equal(w32, w_copy)
    np.testing.assert_array_equal(dw32, dw_copy)
    assert next_w is not w32


@pytest.mark.parametrize("rule", [r for r, _ in DEFAULTS], ids=lambda r: r.__name__)
def test_bad_inputs_raise(rule):
    with pytest.raises(ValueError, match=r"\(4, 5\).*\(5, 4\)"):
        rule(W, DW.T)
    with pytest.raises(ValueError, match="floating"):
        rule(np.arange(3), np.ones(3))
    if STATE[rule]:
        with pytest.raises(ValueError, match=STATE[rule][0]):
            rule(W, DW, {STATE[rule][0]: np.zeros(3)})


def test_rules_exported_at_package_level():
    for name in rules.__all__:
        assert getattr(optim, name) is getattr(rules, name)
