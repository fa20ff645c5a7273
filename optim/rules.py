"""The course's first-order update rules: `rule(w, dw, config=None) -> (next_w, config)`.

`w` is a weight array, `dw` its gradient, `config` a dict of hyperparameters and per-weight state
(velocity, moment estimates, ...). A missing hyperparameter takes the course's default and is
written into `config` (`setdefault`), so the returned config carries everything needed for the
next call. Rules never modify `w` or `dw`; they return a new `next_w` and store new state arrays
in `config`.

dtypes: `next_w` and every state array keep `w`'s dtype (float32 weights stay float32). The
hyperparameters are read as Python floats, because a numpy float64 scalar (say a learning rate
drawn by `np.random.uniform`) would otherwise upcast float32 arrays.

These functions are the single implementation of each algorithm: the optimizer classes in
`optimizers.py` and the `Solver` call them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["sgd", "sgd_momentum", "sgd_nesterov_momentum", "rmsprop", "adam", "adagrad"]

# The hyperparameters each rule reads from `config`, with the range each accepts (see
# `autotensor.validate.RANGES`); every other key a rule keeps there is its per-weight state.
# The Solver refuses an optim_config key not listed for its rule ({'lr': 0.1} for sgd, say).
HYPERPARAMETERS = {
    "sgd": {"learning_rate": ">= 0"},
    "sgd_momentum": {"learning_rate": ">= 0", "momentum": "in [0, 1)"},
    "sgd_nesterov_momentum": {"learning_rate": ">= 0", "momentum": "in [0, 1)"},
    "rmsprop": {"learning_rate": ">= 0", "decay_rate": "in [0, 1)", "epsilon": "> 0"},
    "adam": {"learning_rate": ">= 0", "beta1": "in [0, 1)", "beta2": "in [0, 1)",
             "epsilon": "> 0"},
    "adagrad": {"learning_rate": ">= 0", "epsilon": "> 0"},
}


def _prepare(w, dw, config):
    """Check shapes, cast `dw` to `w`'s dtype, return a config dict (new if None)."""
    w = np.asarray(w)
    dw = np.asarray(dw)
    if not np.issubdtype(w.dtype, np.floating):
        raise ValueError(f"update rules need a floating-point weight array, got dtype {w.dtype}")
    if w.shape != dw.shape:
        raise ValueError(f"weight shape {w.shape} and gradient shape {dw.shape} differ")
    return w, dw.astype(w.dtype, copy=False), ({} if config is None else config)


def _state(config, key, w):
    """The state array `config[key]`, created as zeros like `w` on first use."""
    s = config.get(key)
    if s is None:
        return np.zeros_like(w)
    s = np.asarray(s)
    if s.shape != w.shape:
        raise ValueError(f"config[{key!r}] has shape {s.shape}, weight has shape {w.shape}")
    return s.astype(w.dtype, copy=False)


def sgd(w, dw, config=None):
    """Vanilla stochastic gradient descent: next_w = w - learning_rate * dw.

    config: learning_rate (1e-2).
    """
    w, dw, config = _prepare(w, dw, config)
    config.setdefault("learning_rate", 1e-2)
    lr = float(config["learning_rate"])
    return w - lr * dw, config


def sgd_momentum(w, dw, config=None):
    """SGD with momentum: v = momentum * v - learning_rate * dw; next_w = w + v.

    config: learning_rate (1e-2), momentum (0.9), velocity (zeros like w).
    """
    w, dw, config = _prepare(w, dw, config)
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    lr, mu = float(config["learning_rate"]), float(config["momentum"])
    v = mu * _state(config, "velocity", w) - lr * dw
    config["velocity"] = v
    return w + v, config


def sgd_nesterov_momentum(w, dw, config=None):
    """Nesterov momentum in the course-notes form, with `dw` taken at the stored weights:

        v_prev = v;  v = momentum * v - learning_rate * dw
        next_w = w - momentum * v_prev + (1 + momentum) * v

    config: learning_rate (1e-2), momentum (0.9), velocity (zeros like w).
    """
    w, dw, config = _prepare(w, dw, config)
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    lr, mu = float(config["learning_rate"]), float(config["momentum"])
    v_prev = _state(config, "velocity", w)
    v = mu * v_prev - lr * dw
    config["velocity"] = v
    return w - mu * v_prev + (1 + mu) * v, config


def rmsprop(w, dw, config=None):
    """RMSProp: cache = decay_rate * cache + (1 - decay_rate) * dw**2;
    next_w = w - learning_rate * dw / (sqrt(cache) + epsilon).

    config: learning_rate (1e-2), decay_rate (0.99), epsilon (1e-8), cache (zeros like w).
    """
    w, dw, config = _prepare(w, dw, config)
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("decay_rate", 0.99)
    config.setdefault("epsilon", 1e-8)
    lr, rho = float(config["learning_rate"]), float(config["decay_rate"])
    eps = float(config["epsilon"])
    cache = rho * _state(config, "cache", w) + (1 - rho) * dw**2
    config["cache"] = cache
    # NOTE: epsilon is added outside the square root (the course's form, and PyTorch's).
    return w - lr * dw / (np.sqrt(cache) + eps), config


def adam(w, dw, config=None):
    """Adam with bias correction; `t` is incremented first, so the first step uses t = 1:

        t += 1;  m = beta1 * m + (1 - beta1) * dw;  v = beta2 * v + (1 - beta2) * dw**2
        next_w = w - learning_rate * (m / (1 - beta1**t)) / (sqrt(v / (1 - beta2**t)) + epsilon)

    config: learning_rate (1e-3), beta1 (0.9), beta2 (0.999), epsilon (1e-8), m and v (zeros
    like w), t (0).
    """
    w, dw, config = _prepare(w, dw, config)
    config.setdefault("learning_rate", 1e-3)
    config.setdefault("beta1", 0.9)
    config.setdefault("beta2", 0.999)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("t", 0)
    lr, b1, b2 = float(config["learning_rate"]), float(config["beta1"]), float(config["beta2"])
    eps = float(config["epsilon"])
    t = int(config["t"]) + 1
    m = b1 * _state(config, "m", w) + (1 - b1) * dw
    v = b2 * _state(config, "v", w) + (1 - b2) * dw**2
    config["t"], config["m"], config["v"] = t, m, v
    m_hat = m / (1 - b1**t)
    v_hat = v / (1 - b2**t)
    return w - lr * m_hat / (np.sqrt(v_hat) + eps), config


def adagrad(w, dw, config=None):
    """Adagrad: cache = cache + dw**2; next_w = w - learning_rate * dw / (sqrt(cache) + epsilon).

    config: learning_rate (1e-2), epsilon (1e-8), cache (zeros like w).
    """
    w, dw, config = _prepare(w, dw, config)
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("epsilon", 1e-8)
    lr, eps = float(config["learning_rate"]), float(config["epsilon"])
    cache = _state(config, "cache", w) + dw**2
    config["cache"] = cache
    # NOTE: epsilon outside the square root, as in rmsprop.
    return w - lr * dw / (np.sqrt(cache) + eps), config
