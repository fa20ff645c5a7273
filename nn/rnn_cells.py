"""One time step of the recurrent layers: `RNNCell`, `LSTMCell`, `GRUCell`, and the step functions
that `nn.RNN`, `nn.LSTM` and `nn.GRU` (rnn.py) run over a sequence.

Parameters have PyTorch's names, shapes and gate order, so weights copy across by state_dict key:
weight_ih (gates * hidden_size, input_size), weight_hh (gates * hidden_size, hidden_size),
bias_ih and bias_hh (gates * hidden_size,). Gate order: i, f, g, o (LSTM); r, z, n (GRU).

The LSTM and GRU steps are the fused cells of autotensor/fused/rnn.py (one node per step,
a hand-written backward; under create_graph, or inside `at.use_fused(False)`, their composite
twins of Tensor ops). The Elman step is written with Tensor ops. A step takes `xw`, the input
already projected (x @ weight_ih.T + bias_ih): the layers project a whole sequence with one
matmul.
"""

from __future__ import annotations

import math

import numpy as np

import autotensor as at
from autotensor import fused, validate
from autotensor.random import default_generator
from autotensor.tensor import _tensor

from .module import Module, Parameter

__all__ = ["RNNCell", "LSTMCell", "GRUCell"]

NONLINEARITIES = {"tanh": at.tanh, "relu": at.relu}


# ---- the steps ---------------------------------------------------------------------------------
def project(x, w, b):
    """x @ w.T + b (b may be None): PyTorch's (out, in) weight layout. A sequence (L, N, in)
    is flattened to (L * N, in) first: w's gradient is then one GEMM, not L summed ones."""
    if x.ndim == 3:
        return at.reshape(project(at.reshape(x, (-1, x.shape[2])), w, b),
                          (*x.shape[:2], w.shape[0]))
    out = x @ w.T
    return out if b is None else out + b


def rnn_step(xw, h, w_hh, b_hh, act):
    """h' = act(xw + h @ w_hh.T + b_hh)."""
    return act(xw + project(h, w_hh, b_hh))


def lstm_step(xw, state, w_hh, b_hh, w_hh_t=None):
    """(h, c) -> (h', c'): i, f, g, o = chunks of xw + h @ w_hh.T + b_hh;
    c' = sigmoid(f) * c + sigmoid(i) * tanh(g), h' = sigmoid(o) * tanh(c').
    w_hh_t: fused.rnn.transposed(w_hh), made once per sequence (a speed hint)."""
    return at.unbind(fused.lstm_cell(xw, *state, w_hh, b_hh, w_hh_t=w_hh_t))


def gru_step(xw, h, w_hh, b_hh, w_hh_t=None):
    """h' = (1 - z) * n + z * h with r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z) and
    n = tanh(x_n + r * h_n), where x_* are chunks of xw and h_* of h @ w_hh.T + b_hh."""
    return fused.gru_cell(xw, h, w_hh, b_hh, w_hh_t=w_hh_t)


# ---- shared by the cells and the layers --------------------------------------------------------
def reset_uniform(module, hidden_size):
    """Every parameter of `module` from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) (PyTorch's
    init of its recurrent modules), drawn from autotensor.random in registration order."""
    bound = 1.0 / math.sqrt(hidden_size)
    for p in module.parameters():
        p.data[...] = default_generator.uniform(-bound, bound, p.shape)


def register_weights(module, suffix, gates, input_size, hidden_size, bias, dtype):
    """weight_ih{suffix}, weight_hh{suffix}, bias_ih{suffix}, bias_hh{suffix}, in PyTorch's
    order; the biases are registered as None when bias=False (absent from state_dict)."""
    g = gates * hidden_size
    module.register_parameter(f"weight_ih{suffix}", Parameter(np.empty((g, input_size), dtype)))
    module.register_parameter(f"weight_hh{suffix}", Parameter(np.empty((g, hidden_size), dtype)))
    for name in (f"bias_ih{suffix}", f"bias_hh{suffix}"):
        module.register_parameter(name, Parameter(np.empty(g, dtype)) if bias else None)


def check_state(owner, name, h, shape):
    """`h` as a Tensor of exactly `shape`, or a ValueError naming both shapes."""
    h = _tensor(h)
    if h.shape != tuple(shape):
        raise ValueError(f"{owner}: expected {name} of shape {tuple(shape)}, got {h.shape}")
    return h


# ---- the cells ---------------------------------------------------------------------------------
class _Cell(Module):
    """What the three cells share: sizes, parameters, input and state checks."""

    GATES = 1

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float64):
        super().__init__()
        owner = type(self).__name__
        self.input_size = validate.size(owner, "input_size", input_size)
        self.hidden_size = validate.size(owner, "hidden_size", hidden_size)
        self.bias = bool(bias)
        register_weights(self, "", self.GATES, self.input_size, self.hidden_size, self.bias,
                         dtype)
        reset_uniform(self, self.hidden_size)

    def _input(self, input):  # noqa: A002
        """(x as (N, input_size), batched?) from an (N, input_size) or (input_size,) input."""
        owner = type(self).__name__
        x = _tensor(input)
        if x.ndim not in (1, 2):
            raise ValueError(f"{owner}: expected input of shape (N, {self.input_size}) or "
                             f"({self.input_size},), got {x.shape}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{owner}: input has {x.shape[-1]} features, expected input_size "
                             f"{self.input_size} (input shape {x.shape})")
        return (x, True) if x.ndim == 2 else (at.unsqueeze(x, 0), False)

    def _state(self, h, name, n, batched, dtype):
        """A state of shape (n, hidden_size) (zeros when h is None) from the caller's h."""
        if h is None:
            return at.zeros((n, self.hidden_size), dtype=dtype)
        shape = (n, self.hidden_size) if batched else (self.hidden_size,)
        h = check_state(type(self).__name__, name, h, shape)
        return h if batched else at.unsqueeze(h, 0)

    def _xw(self, x):
        return project(x, self.weight_ih, self.bias_ih)

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


def _unbatch(t, batched):
    return t if batched else at.squeeze(t, 0)


class RNNCell(_Cell):
    """h' = tanh(x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh) (or relu).

    input (N, input_size) or (input_size,); hx of the matching (N, hidden_size) or
    (hidden_size,), zeros when None. Returns h'.
    """

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh",
                 dtype=np.float64):
        nonlinearity = validate.choice("RNNCell", "nonlinearity", nonlinearity,
                                       tuple(NONLINEARITIES))
        super().__init__(input_size, hidden_size, bias, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):  # noqa: A002 (PyTorch's argument name)
        x, batched = self._input(input)
        h = self._state(hx, "hx", x.shape[0], batched, x.dtype)
        h = rnn_step(self._xw(x), h, self.weight_hh, self.bias_hh,
                     NONLINEARITIES[self.nonlinearity])
        return _unbatch(h, batched)

    def extra_repr(self):
        act = "" if self.nonlinearity == "tanh" else f", nonlinearity={self.nonlinearity!r}"
        return super().extra_repr() + act


class LSTMCell(_Cell):
    """(h', c') from input and hx = (h, c): gates i, f, g, o; c' = f*c + i*g, h' = o*tanh(c').

    input (N, input_size) or (input_size,); h and c of the matching (N, hidden_size) or
    (hidden_size,), zeros when hx is None. Returns (h', c').
    """

    GATES = 4

    def forward(self, input, hx=None):  # noqa: A002
        x, batched = self._input(input)
        if hx is None:
            hx = (None, None)
        elif not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise ValueError(f"LSTMCell: hx must be a tuple (h, c), got {type(hx).__name__}")
        state = tuple(self._state(s, name, x.shape[0], batched, x.dtype)
                      for s, name in zip(hx, ("h", "c")))
        h, c = lstm_step(self._xw(x), state, self.weight_hh, self.bias_hh)
        return _unbatch(h, batched), _unbatch(c, batched)


class GRUCell(_Cell):
    """h' = (1 - z) * n + z * h, gates r, z, n with n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).

    input (N, input_size) or (input_size,); hx of the matching (N, hidden_size) or
    (hidden_size,), zeros when None. Returns h'.
    """

    GATES = 3

    def forward(self, input, hx=None):  # noqa: A002
        x, batched = self._input(input)
        h = self._state(hx, "hx", x.shape[0], batched, x.dtype)
        return _unbatch(gru_step(self._xw(x), h, self.weight_hh, self.bias_hh), batched)
