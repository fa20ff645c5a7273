"""Optimizer classes with PyTorch's names and signatures: SGD, Adam, AdamW, RMSprop, Adagrad.

Each class keeps per-parameter state and has one update, `_update(w, g, state, group)`, whose
docstring states its equations (those of torch.optim's documentation). Where the course has the
algorithm, the update calls the matching function in `rules.py` (one implementation per
algorithm, shared with the Solver); the variants only PyTorch has (AMSGrad, centered and
momentum RMSprop) are written here, on top of those rules. `step()` reads each parameter's
`.grad`, runs the update and writes the result into `param.data` in place (views of the data
stay valid; the dtype is kept).

    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss.backward(); opt.step(); opt.zero_grad()

`params` is an iterable of Tensors, or a list of param groups: dicts with a 'params' list and
any hyperparameters that override the optimizer's defaults for that group, e.g.
`[{'params': body}, {'params': head, 'lr': 1e-3}]`.
"""

from __future__ import annotations

import copy

import numpy as np

from autotensor import Tensor, enable_grad, no_grad, validate
from autotensor.validate import is_int

from . import rules
from .checkpoint import NONNEGATIVE_STATE
from .rules import _prepare, _state

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad"]

# Keys a learning-rate scheduler adds to a param group (PyTorch's): not hyperparameters.
SCHEDULER_KEYS = ("initial_lr",)
# State that is a running maximum or average of squared gradients: never negative.
_NONNEGATIVE = (*NONNEGATIVE_STATE, "v_max")


class Optimizer:
    """Base class: param groups, per-parameter state, step, zero_grad and state_dict.

    A subclass sets `defaults` in its constructor and implements `_update(w, g, state, group)`
    -> (next_w, next state). `state_keys` names every per-parameter state entry the class may
    keep; `_state_keys(group)` those an update with that group's options keeps.
    """

    state_keys = ()

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}            # Tensor -> {state key: value}; Tensors hash by identity
        params = list(params) if not isinstance(params, Tensor) else [params]
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group):
        """Add a dict {'params': [...], hyperparameter: value, ...} to `param_groups`."""
        if not isinstance(group, dict) or "params" not in group:
            raise ValueError(f"a param group must be a dict with a 'params' key, got {group!r}")
        unknown = sorted(set(group) - set(self.defaults) - {"params", *SCHEDULER_KEYS})
        if unknown:
            raise ValueError(f"unknown hyperparameter(s) {unknown} in param group; "
                             f"{type(self).__name__} accepts {sorted(self.defaults)}")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise ValueError(f"parameter {i} of the group is a {type(p).__name__}, "
                                 "not a Tensor")
            if not p.is_leaf:
                raise ValueError(f"parameter {i} of the group is not a leaf tensor (it was "
                                 "produced by an op); optimizers update leaves only")
            if id(p) in seen:
                raise ValueError(f"parameter {i} of the group appears twice in the optimizer")
            seen.add(id(p))
        new = {**self.defaults, **group, "params": params}
        self._check(new)
        self.param_groups.append(new)

    def _check(self, group):
        """Refuse a group's bad hyperparameter, naming the optimizer, the key and the value."""
        name = type(self).__name__
        validate.learning_rate(name, "lr", group["lr"])
        validate.number(name, "weight_decay", group.get("weight_decay", 0.0), ">= 0")
        if "initial_lr" in group:
            validate.learning_rate(name, "initial_lr", group["initial_lr"])

    def _state_keys(self, group):
        """The state an update with this group's options keeps (all of these keys or none)."""
        return self.state_keys

    # ---- the update ----------------------------------------------------------------------------
    def step(self, closure=None):
        """Update every parameter that has a gradient (parameters with grad None are skipped).

        `closure` (PyTorch's signature), if given, is called first with grad mode on, to
        re-evaluate the model; `step` returns its result (else None).
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                next_w, self.state[p] = self._update(p.data, _grad_of(p),
                                                     self.state.get(p, {}), group)
                with no_grad():           # in place, as PyTorch: views and holders see it
                    p.copy_(next_w)
        return loss

    def _update(self, w, g, state, group):
        """One parameter's step: its array `w`, gradient `g` and state -> (next_w, state)."""
        raise NotImplementedError

    def _run_rule(self, rule, w, dw, state, config, group):
        """Call a rule-shaped update (`rules.py`'s signature) with the hyperparameters `config`
        and the parameter's `state`; keep the group's state keys of what it returns."""
        next_w, config = rule(w, dw, {**config, **state})
        return next_w, {k: config[k] for k in self._state_keys(group) if k in config}

    def zero_grad(self, set_to_none=True):
        """Forget every parameter's gradient: `.grad = None` (PyTorch's default), or with
        set_to_none=False zeros in place (a Tensor gradient left by create_graph=True is
        replaced by a zero array, as PyTorch detaches it)."""
        for p in self._params():
            if set_to_none or p.grad is None:
                p.grad = None
            elif isinstance(p.grad, Tensor):
                p.grad = np.zeros_like(p.grad.data)
            else:
                p.grad[...] = 0

    # ---- saving and restoring ------------------------------------------------------------------
    def _params(self):
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self):
        """{'state': {index: {key: value}}, 'param_groups': [{hyperparameters, 'params': [index]}]}.

        Parameters are numbered in group order; arrays are copies.
        """
        index = {id(p): i for i, p in enumerate(self._params())}
        state = {index[id(p)]: copy.deepcopy(s) for p, s in self.state.items()}
        groups = [{**{k: v for k, v in g.items() if k != "params"},
                   "params": [index[id(p)] for p in g["params"]]} for g in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and state saved by `state_dict()`.

        Everything is checked before anything is assigned: the group and parameter counts and
        numbering, each hyperparameter's name, type (finite numbers, bools, pairs) and range,
        the state keys (those the parameter's group keeps, or none), and every state value (a
        real array shaped like its parameter, non-negative for squared-gradient averages, or a
        step count >= 0). A scheduler's 'initial_lr' may be present or not. A mismatch raises
        a ValueError naming the entry and changes nothing.
        """
        name = type(self).__name__
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            keys = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict)
            raise ValueError(f"an optimizer state_dict is a dict with keys 'state' and "
                             f"'param_groups', got {keys}")
        groups, state = state_dict["param_groups"], state_dict["state"]
        if not isinstance(groups, (list, tuple)) or not isinstance(state, dict):
            raise ValueError(f"state_dict['param_groups'] must be a list and ['state'] a dict, "
                             f"got {type(groups).__name__} and {type(state).__name__}")
        params = self._params()
        if len(groups) != len(self.param_groups):
            raise ValueError(f"state_dict has {len(groups)} param groups, the optimizer has "
                             f"{len(self.param_groups)}")
        new_groups, group_of, first = [], [], 0
        for i, (saved, mine) in enumerate(zip(groups, self.param_groups)):
            # Same hyperparameter names: an Adam state_dict must not load into SGD.
            if not isinstance(saved, dict) or (set(saved) - set(SCHEDULER_KEYS)
                                               != set(mine) - set(SCHEDULER_KEYS)):
                keys = sorted(saved) if isinstance(saved, dict) else type(saved).__name__
                raise ValueError(f"param group {i}: state_dict has keys {keys}, a {name} "
                                 f"group has {sorted(mine)} (saved by another optimizer?)")
            count = len(mine["params"])
            if not isinstance(saved["params"], (list, tuple)) or len(saved["params"]) != count:
                got = (len(saved["params"]) if isinstance(saved["params"], (list, tuple))
                       else saved["params"])
                raise ValueError(f"param group {i}: state_dict has {got} parameters, the "
                                 f"optimizer has {count}")
            if list(saved["params"]) != list(range(first, first + count)):
                raise ValueError(f"param group {i}: state_dict numbers its parameters "
                                 f"{saved['params']}, expected {list(range(first, first + count))}"
                                 " (state_dict numbers them in group order)")
            first += count
            group = {k: _hyperparameter(f"param group {i}: {k!r}", v, self.defaults.get(k, 0.0))
                     for k, v in saved.items() if k != "params"}
            try:
                self._check({**mine, **group})
            except (ValueError, TypeError) as e:
                raise ValueError(f"param group {i}: {e}") from e
            new_groups.append(group)
            group_of += [{**mine, **group}] * count
        new_state = {}
        for i, s in state.items():
            if not is_int(i) or not 0 <= i < len(params):
                raise ValueError(f"state_dict has state for parameter {i!r}, the optimizer has "
                                 f"{len(params)} parameters (numbered 0 to {len(params) - 1})")
            if not isinstance(s, dict):
                raise ValueError(f"state of parameter {i} is a {type(s).__name__}, not a dict")
            unknown = sorted(set(s) - set(self.state_keys))
            if unknown:
                raise ValueError(f"state of parameter {i} has keys {unknown}; {name} keeps "
                                 f"only {list(self.state_keys)}")
            keys = self._state_keys(group_of[i])
            if s and set(s) != set(keys):
                raise ValueError(f"state of parameter {i} has keys {sorted(s)}; {name} with "
                                 f"these options keeps all of {list(keys)} or none")
            p = params[i]
            new_state[p] = {k: _state_value(f"state {k!r} of parameter {i}", k, v, p)
                            for k, v in s.items()}
        # Everything checked: now assign.
        for group, mine in zip(new_groups, self.param_groups):
            mine.update(group)
        self.state = new_state

    def __repr__(self):
        groups = ", ".join("{" + ", ".join(f"{k}={v}" for k, v in g.items() if k != "params")
                           + f", {len(g['params'])} params}}" for g in self.param_groups)
        return f"{type(self).__name__}([{groups}])"


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum (dampening, Nesterov) and L2 decay.

    PyTorch's equations, with b the momentum buffer (b = g on the first step, undamped):

        g = g + weight_decay * w
        b = momentum * b + (1 - dampening) * g
        w = w - lr * (g + momentum * b)      (nesterov=True)
        w = w - lr * b                        (momentum > 0)
        w = w - lr * g                        (momentum 0)

    The arithmetic is the course's rules (`rules.sgd`, `sgd_momentum`, `sgd_nesterov_momentum`),
    whose velocity is v = -lr * b: the same steps while lr is constant (docs/training.md).
    """

    state_keys = ("velocity",)

    def __init__(self, params, lr=1e-3, momentum=0.0, nesterov=False, weight_decay=0.0,
                 dampening=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov,
                                      weight_decay=weight_decay, dampening=dampening))

    def _check(self, group):
        super()._check(group)
        validate.number("SGD", "momentum", group["momentum"], "in [0, 1)")
        validate.number("SGD", "dampening", group["dampening"], "in [0, 1]")
        _flag("SGD", "nesterov", group["nesterov"])
        if group["nesterov"] and (group["momentum"] == 0 or group["dampening"] != 0):
            raise ValueError("SGD: nesterov=True needs a momentum > 0 and dampening 0, got "
                             f"momentum={group['momentum']}, dampening={group['dampening']}")

    def _update(self, w, g, state, group):
        dw = _coupled_decay(w, g, group)
        if group["dampening"] and "velocity" in state:      # the first step is not damped
            dw = (1 - float(group["dampening"])) * dw
        if group["momentum"] == 0:
            rule = rules.sgd
        else:
            rule = rules.sgd_nesterov_momentum if group["nesterov"] else rules.sgd_momentum
        config = {"learning_rate": group["lr"], "momentum": group["momentum"]}
        return self._run_rule(rule, w, dw, state, config, group)


class Adam(Optimizer):
    """Adam, with PyTorch's amsgrad and (coupled, L2) weight_decay. Per parameter: moments m
    and v, step count t, and with amsgrad the running maximum v_max of v:

        g = g + weight_decay * w;  t = t + 1
        m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g**2
        v_max = max(v_max, v)                                 (amsgrad: v_max replaces v below)
        w = w - lr * (m / (1 - beta1**t)) / (sqrt(v / (1 - beta2**t)) + eps)

    Without amsgrad this is the course rule `rules.adam`; with it, `_amsgrad` below.
    """

    state_keys = ("m", "v", "t", "v_max")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False):
        betas = tuple(betas) if isinstance(betas, (tuple, list, np.ndarray)) else betas
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad))

    def _check(self, group):
        super()._check(group)
        name = type(self).__name__
        validate.numbers(name, "betas", group["betas"], 2, "in [0, 1)")
        validate.number(name, "eps", group["eps"], "> 0")
        _flag(name, "amsgrad", group["amsgrad"])

    def _state_keys(self, group):
        return self.state_keys if group["amsgrad"] else self.state_keys[:3]

    def _update(self, w, g, state, group):
        return self._adam(w, _coupled_decay(w, g, group), state, group)

    def _adam(self, w, dw, state, group):
        b1, b2 = group["betas"]
        config = {"learning_rate": group["lr"], "beta1": b1, "beta2": b2,
                  "epsilon": group["eps"]}
        rule = _amsgrad if group["amsgrad"] else rules.adam
        return self._run_rule(rule, w, dw, state, config, group)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): the weights shrink, then Adam's
    update (above, amsgrad included) runs on the gradient alone:

        w = w * (1 - lr * weight_decay);  then Adam's step with g unchanged
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)

    def _update(self, w, g, state, group):
        if group["weight_decay"]:
            w = w * (1 - float(group["lr"]) * float(group["weight_decay"]))
        return self._adam(w, g, state, group)


class RMSprop(Optimizer):
    """RMSprop with PyTorch's alpha, centered and momentum; `decay_rate=` (the course's name)
    is read as `alpha`, and giving both is an error. Per parameter: the square average `cache`
    (v), with centered the gradient average g_avg, with momentum the buffer b:

        g = g + weight_decay * w
        v = alpha * v + (1 - alpha) * g**2
        g_avg = alpha * g_avg + (1 - alpha) * g;  v = v - g_avg**2      (centered only)
        b = momentum * b + g / (sqrt(v) + eps);  w = w - lr * b          (momentum > 0)
        w = w - lr * g / (sqrt(v) + eps)                                  (momentum 0)

    Not centered and without momentum this is the course rule `rules.rmsprop`; the variants
    are `_rmsprop_variants` below.
    """

    state_keys = ("cache", "grad_avg", "momentum_buffer")

    def __init__(self, params, lr=1e-2, alpha=None, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, *, decay_rate=None):
        super().__init__(params, dict(lr=lr, alpha=_alpha(alpha, decay_rate), eps=eps,
                                      weight_decay=weight_decay, momentum=momentum,
                                      centered=centered))

    def add_param_group(self, group):
        if isinstance(group, dict) and "decay_rate" in group:      # the course's name
            group = dict(group)
            group["alpha"] = _alpha(group.pop("alpha", None), group.pop("decay_rate"))
        super().add_param_group(group)

    def _check(self, group):
        super()._check(group)
        validate.number("RMSprop", "alpha", group["alpha"], "in [0, 1)")
        validate.number("RMSprop", "eps", group["eps"], "> 0")
        validate.number("RMSprop", "momentum", group["momentum"], "in [0, 1)")
        _flag("RMSprop", "centered", group["centered"])

    def _state_keys(self, group):
        return (("cache",) + (("grad_avg",) if group["centered"] else ())
                + (("momentum_buffer",) if group["momentum"] else ()))

    def _update(self, w, g, state, group):
        config = {"learning_rate": group["lr"], "decay_rate": group["alpha"],
                  "epsilon": group["eps"], "momentum": group["momentum"],
                  "centered": group["centered"]}
        plain = not group["centered"] and not group["momentum"]
        rule = rules.rmsprop if plain else _rmsprop_variants
        return self._run_rule(rule, w, _coupled_decay(w, g, group), state, config, group)


class Adagrad(Optimizer):
    """Adagrad with PyTorch's lr_decay and initial_accumulator_value. Per parameter: the sum
    of squared gradients `cache` (starting at initial_accumulator_value) and step count t:

        g = g + weight_decay * w;  t = t + 1
        cache = cache + g**2
        w = w - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(cache) + eps)

    The last two lines are the course rule `rules.adagrad`, given the decayed lr. eps defaults
    to the course's 1e-8 (PyTorch: 1e-10); the arguments after lr are keyword-only, because
    the course's order (eps third) and PyTorch's (lr_decay third) differ.
    """

    state_keys = ("cache", "t")

    def __init__(self, params, lr=1e-2, *, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-8):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps))

    def _check(self, group):
        super()._check(group)
        validate.number("Adagrad", "eps", group["eps"], "> 0")
        validate.number("Adagrad", "lr_decay", group["lr_decay"], ">= 0")
        validate.number("Adagrad", "initial_accumulator_value",
                        group["initial_accumulator_value"], ">= 0")

    def _update(self, w, g, state, group):
        t = state.get("t", 0) + 1
        cache = state.get("cache")
        if cache is None:
            cache = np.full_like(w, float(group["initial_accumulator_value"]))
        lr = float(group["lr"]) / (1 + (t - 1) * float(group["lr_decay"]))
        config = {"learning_rate": lr, "epsilon": group["eps"]}
        return self._run_rule(rules.adagrad, w, _coupled_decay(w, g, group),
                              {"cache": cache, "t": t}, config, group)


# ---- the variants only PyTorch has, built on the course's rules ------------------------------
def _amsgrad(w, dw, config):
    """AMSGrad (Reddi et al., 2018): Adam whose denominator uses v_max, the running maximum
    of v, so no coordinate's step size grows. Config and state as `rules.adam`, plus v_max."""
    # The moments and step count are Adam's: `rules.adam` computes them (its step is unused).
    _, config = rules.adam(w, dw, config)
    w, dw, config = _prepare(w, dw, config)
    lr, b1, b2, eps = (float(config[k]) for k in ("learning_rate", "beta1", "beta2", "epsilon"))
    t, m = config["t"], config["m"]
    v_max = np.maximum(_state(config, "v_max", w), config["v"])
    config["v_max"] = v_max
    return w - lr * (m / (1 - b1**t)) / (np.sqrt(v_max / (1 - b2**t)) + eps), config


def _rmsprop_variants(w, dw, config):
    """PyTorch's centered and/or momentum RMSprop (equations: `RMSprop`). Config as
    `rules.rmsprop` plus momentum and centered; state cache, grad_avg, momentum_buffer."""
    # The square average is `rules.rmsprop`'s cache (its step is unused).
    _, config = rules.rmsprop(w, dw, config)
    w, dw, config = _prepare(w, dw, config)
    alpha, eps = float(config["decay_rate"]), float(config["epsilon"])
    v = config["cache"]
    if config["centered"]:
        g_avg = alpha * _state(config, "grad_avg", w) + (1 - alpha) * dw
        config["grad_avg"] = g_avg
        # NOTE: v >= g_avg**2 in exact arithmetic (Cauchy-Schwarz); rounding can dip below 0
        # when the gradient barely varies, where PyTorch's sqrt gives NaN. Clamp at 0.
        v = np.maximum(v - g_avg**2, 0)
    step = dw / (np.sqrt(v) + eps)
    if config["momentum"]:
        step = float(config["momentum"]) * _state(config, "momentum_buffer", w) + step
        config["momentum_buffer"] = step
    return w - float(config["learning_rate"]) * step, config


# ---- helpers -------------------------------------------------------------------------------------
def _grad_of(p):
    """`p.grad` as an ndarray: a leaf's grad is one, or a Tensor after a backward with
    create_graph=True (its data is read; the optimizer step is never recorded)."""
    return p.grad.data if isinstance(p.grad, Tensor) else np.asarray(p.grad)


def _coupled_decay(w, g, group):
    """g + weight_decay * w: L2 regularisation folded into the gradient (PyTorch's weight_decay
    for SGD, Adam, RMSprop and Adagrad; AdamW decouples it)."""
    wd = group["weight_decay"]
    return g + float(wd) * w if wd else g


def _flag(owner, name, value):
    """A boolean option (numpy bools too); 1, 'yes' and None are refused."""
    return validate.choice(owner, name, bool(value) if isinstance(value, np.bool_) else value,
                           (False, True))


def _alpha(alpha, decay_rate):
    """RMSprop's smoothing constant from PyTorch's `alpha` or the course's `decay_rate`."""
    if decay_rate is None:
        return 0.99 if alpha is None else alpha
    if alpha is not None:
        raise ValueError(f"RMSprop: give alpha or decay_rate (the course's name for alpha), not "
                         f"both; got alpha={alpha!r}, decay_rate={decay_rate!r}")
    return validate.number("RMSprop", "decay_rate", decay_rate, "in [0, 1)")


# ---- checks of a loaded state_dict ---------------------------------------------------------------
def _hyperparameter(what, value, default):
    """A saved hyperparameter, checked against the type of the optimizer's default."""
    if isinstance(default, bool):
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{what} must be True or False, got {value!r}")
        return bool(value)
    if isinstance(default, tuple):
        if not isinstance(value, (tuple, list)) or len(value) != len(default):
            raise ValueError(f"{what} must be {len(default)} finite numbers, got {value!r}")
        return tuple(validate.number("", f"{what}[{j}]", v) for j, v in enumerate(value))
    if isinstance(default, (int, float, np.integer, np.floating)):
        return validate.number("", what, value)
    return copy.deepcopy(value)


def _state_value(what, key, value, p):
    """A saved state entry as the optimizer keeps it: an array (a copy in `p`'s dtype) or a
    step count."""
    if is_int(value):
        return validate.size("", f"{what} (a step count)", value, 0)
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{what} must be an array or a step count, got "
                         f"{type(value).__name__} {value!r}")
    if value.shape != p.shape:
        raise ValueError(f"{what} has shape {value.shape}, the parameter has shape {p.shape}")
    if value.dtype.kind not in "biuf" or not np.can_cast(value.dtype, p.dtype, "same_kind"):
        raise ValueError(f"{what} has dtype {value.dtype}, which does not cast to the "
                         f"parameter's {p.dtype}")
    # NOTE: NaN and inf are kept (a diverged run reloads as it was saved); a negative average
    # of squares cannot come from the updates and would make sqrt NaN.
    if key in _NONNEGATIVE and np.any(value < 0):
        raise ValueError(f"{what} holds negative values (it averages squared gradients)")
    return value.astype(p.dtype, copy=True)
