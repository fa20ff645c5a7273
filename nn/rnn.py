"""Multi-layer recurrent layers over a sequence: `nn.RNN`, `nn.LSTM`, `nn.GRU`.

    lstm = nn.LSTM(10, 20, num_layers=2, batch_first=True)
    output, (h_n, c_n) = lstm(x)         # x (N, L, 10) -> output (N, L, 20), h_n (2, N, 20)

PyTorch's signatures, parameter names (`weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}`,
`bias_hh_l{k}`, `_reverse` for the backward direction), shapes, registration order (so
`state_dict()` keys equal torch's), gate order and return values. Each layer projects its whole
input sequence with one matmul, then runs the step of rnn_cells.py over time (the fused LSTM
and GRU cells of autotensor/fused/rnn.py: one node per step), and every gradient is
differentiable again. Between layers, in training only, dropout draws its
masks from autotensor.random. PyTorch's `proj_size` is refused (NotImplementedError).
"""

from __future__ import annotations

import warnings
from functools import partial

import numpy as np

import autotensor as at
from autotensor import validate
from autotensor.fused.rnn import transposed
from autotensor.random import default_generator
from autotensor.tensor import _tensor

from . import functional as F
from .module import Module
from .rnn_cells import (
    NONLINEARITIES,
    check_state,
    gru_step,
    lstm_step,
    project,
    register_weights,
    reset_uniform,
    rnn_step,
)

__all__ = ["RNN", "LSTM", "GRU"]


class _RNNBase(Module):
    """The stack of layers (each one or two directions) that RNN, LSTM and GRU share."""

    GATES = 1
    IS_LSTM = False

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype=np.float64):
        super().__init__()
        owner = type(self).__name__
        self.input_size = validate.size(owner, "input_size", input_size)
        self.hidden_size = validate.size(owner, "hidden_size", hidden_size)
        self.num_layers = validate.size(owner, "num_layers", num_layers)
        self.dropout = float(validate.probability(owner, "dropout", dropout,
                                                  "the probability of zeroing an element"))
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn(f"{owner}: dropout={self.dropout} acts between layers only; with "
                          "num_layers=1 it does nothing", UserWarning, stacklevel=2)
        self.bias, self.batch_first = bool(bias), bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.proj_size = 0
        directions = ("", "_reverse") if self.bidirectional else ("",)
        self._all_weights = []
        for layer in range(self.num_layers):
            layer_in = self.input_size if layer == 0 else self.hidden_size * len(directions)
            for d in directions:
                suffix = f"_l{layer}{d}"
                register_weights(self, suffix, self.GATES, layer_in, self.hidden_size,
                                 self.bias, dtype)
                names = [f"{w}_{m}{suffix}" for w in ("weight", "bias") for m in ("ih", "hh")]
                self._all_weights.append([n for n in names if getattr(self, n) is not None])
        reset_uniform(self, self.hidden_size)

    @property
    def all_weights(self):
        """[[weight_ih, weight_hh, bias_ih, bias_hh] per layer and direction], as PyTorch."""
        return [[getattr(self, n) for n in names] for names in self._all_weights]

    def _step(self):
        raise NotImplementedError

    # ---- forward -------------------------------------------------------------------------------
    def forward(self, input, hx=None):  # noqa: A002 (PyTorch's argument name)
        x, batched = self._input(input)                 # x (L, N, input_size)
        n = x.shape[1]
        shape = (self.num_layers * (2 if self.bidirectional else 1), n, self.hidden_size)
        states = self._initial_states(hx, shape, batched, x.dtype)
        step = self._step()
        finals, k = [], 0
        for layer in range(self.num_layers):
            outputs = []
            for reverse in (False, True)[:1 + self.bidirectional]:
                w_ih, w_hh, b_ih, b_hh = self._weights(layer, reverse)
                if self.GATES > 1:       # the fused cells: w_hh.T laid out once per sequence
                    step = partial(self._step(), w_hh_t=transposed(w_hh))
                hs, final = _run(step, project(x, w_ih, b_ih), states[k], w_hh, b_hh, reverse)
                outputs.append(at.stack(hs, dim=0))
                finals.append(final)
                k += 1
            x = outputs[0] if len(outputs) == 1 else at.cat(outputs, dim=-1)
            if self.training and self.dropout > 0 and layer < self.num_layers - 1:
                x = F._inverted_dropout(x, 1.0 - self.dropout, True, _uniform)
        return self._outputs(x, finals, batched)

    def _input(self, input):  # noqa: A002
        """(x as (L, N, input_size), batched?) from (L, N, in), (N, L, in) or unbatched (L, in)."""
        owner = type(self).__name__
        x = _tensor(input)
        batched = x.ndim == 3
        if x.ndim not in (2, 3):
            layout = "(N, L, input_size)" if self.batch_first else "(L, N, input_size)"
            raise ValueError(f"{owner}: expected input of shape {layout} or unbatched (L, "
                             f"input_size), got {x.ndim}-D input of shape {x.shape}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{owner}: input has {x.shape[-1]} features, expected input_size "
                             f"{self.input_size} (input shape {x.shape})")
        if x.ndim == 2:
            x = at.unsqueeze(x, 1)
        elif self.batch_first:
            x = at.transpose(x, 0, 1)
        if x.shape[0] == 0:
            raise ValueError(f"{owner}: the input sequence is empty (input shape {x.shape})")
        return x, batched

    def _initial_states(self, hx, shape, batched, dtype):
        """Per layer and direction, the initial state (a Tensor, or an (h, c) pair for LSTM)."""
        owner = type(self).__name__
        names = ("h_0", "c_0") if self.IS_LSTM else ("h_0",)
        if hx is None:
            given = [None] * len(names)
        elif self.IS_LSTM:
            if not (isinstance(hx, (tuple, list)) and len(hx) == 2):
                raise ValueError(f"{owner}: hx must be a tuple (h_0, c_0), got "
                                 f"{type(hx).__name__}")
            given = list(hx)
        else:
            given = [hx]
        per_name = []
        for h, name in zip(given, names):
            if h is None:
                h = at.zeros(shape, dtype=dtype)
            elif batched:
                h = check_state(owner, name, h, shape)
            else:
                h = at.unsqueeze(check_state(owner, name, h, (shape[0], shape[2])), 1)
            per_name.append(at.unbind(h))
        return list(zip(*per_name)) if self.IS_LSTM else per_name[0]

    def _weights(self, layer, reverse):
        suffix = f"_l{layer}" + ("_reverse" if reverse else "")
        return tuple(getattr(self, f"{w}{suffix}")
                     for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def _outputs(self, x, finals, batched):
        """(output, h_n) or, for LSTM, (output, (h_n, c_n)), in the caller's layout."""
        if not batched:
            x = at.squeeze(x, 1)
        elif self.batch_first:
            x = at.transpose(x, 0, 1)
        parts = list(zip(*finals)) if self.IS_LSTM else [finals]
        stacked = [at.stack(p, dim=0) for p in parts]
        if not batched:
            stacked = [at.squeeze(s, 1) for s in stacked]
        return x, (tuple(stacked) if self.IS_LSTM else stacked[0])

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        defaults = dict(num_layers=1, bias=True, batch_first=False, dropout=0.0,
                        bidirectional=False)
        for name, default in defaults.items():
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        return s


def _uniform(*shape):
    """U[0, 1) from autotensor.random: the dropout masks between layers."""
    return default_generator.random(shape)


def _run(step, xw, state, w_hh, b_hh, reverse):
    """Run `step` over the time axis of xw (L, N, gates * H) from `state`: the hidden state at
    every time (in time order) and the final state (last in the direction of travel)."""
    hs = []
    steps = at.unbind(xw)          # one node: backward writes every step's gradient at once
    for xt in (reversed(steps) if reverse else steps):
        state = step(xt, state, w_hh, b_hh)
        hs.append(state[0] if isinstance(state, tuple) else state)
    return (hs[::-1] if reverse else hs), state


class RNN(_RNNBase):
    """Elman RNN: h_t = tanh(x_t @ W_ih.T + b_ih + h_{t-1} @ W_hh.T + b_hh) (or relu), per layer.

    input (L, N, input_size) ((N, L, input_size) with batch_first) or unbatched (L, input_size);
    h_0 (num_layers * num_directions, N, hidden_size) or unbatched (.., hidden_size), zeros when
    None. Returns (output (L, N, num_directions * hidden_size), h_n).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, dtype=np.float64):
        nonlinearity = validate.choice("RNN", "nonlinearity", nonlinearity,
                                       tuple(NONLINEARITIES))
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype)
        self.nonlinearity = nonlinearity

    def _step(self):
        return partial(rnn_step, act=NONLINEARITIES[self.nonlinearity])

    def extra_repr(self):
        act = "" if self.nonlinearity == "tanh" else f", nonlinearity={self.nonlinearity!r}"
        return super().extra_repr() + act


class LSTM(_RNNBase):
    """Long short-term memory: gates i, f, g, o; c_t = f*c_{t-1} + i*g, h_t = o*tanh(c_t).

    input as nn.RNN; hx = (h_0, c_0), each (num_layers * num_directions, N, hidden_size) (or
    unbatched), zeros when None. Returns (output, (h_n, c_n)).
    """

    GATES = 4
    IS_LSTM = True

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, dtype=np.float64):
        if proj_size != 0:
            raise NotImplementedError(f"LSTM: proj_size={proj_size!r} is not supported "
                                      "(autotensor has no projected LSTM); leave it at 0")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype)

    def _step(self):
        return lstm_step


class GRU(_RNNBase):
    """Gated recurrent unit: gates r, z, n; n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),
    h_t = (1 - z) * n + z * h_{t-1}.

    input, h_0 and outputs as nn.RNN. Returns (output, h_n).
    """

    GATES = 3

    def _step(self):
        return gru_step
