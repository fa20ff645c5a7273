"""One recurrent time step, LSTM and GRU: the fused cells and their composite twins.

The layers (nn.LSTM, nn.GRU) project a whole input sequence with one matmul, then run one cell
per time step on the step's projection `xw` (N, gates * H) and the state. Gate order is
PyTorch's: i, f, g, o (LSTM); r, z, n (GRU). Shapes: h, c (N, H), w_hh (gates * H, H),
b_hh (gates * H,) or None. The LSTM cell returns its new state as ONE Tensor hc (2, N, H),
hc[0] = h', hc[1] = c' (`at.unbind(hc)` splits it in one node): a fused op has one output.
The derivation of both backwards is in docs/fused_ops.md ("Recurrent cells").
"""

from __future__ import annotations

import numpy as np

from .. import blas_threads, ops
from ..autograd import twin_backward
from ..function import Function, fused_enabled
from ..tensor import Tensor, _data


def _sigmoid_(a):
    """a = 1 / (1 + e**-a), in place; call it under np.errstate(over="ignore"). NOTE: e**-a
    overflows to inf for a << 0 and 1 / inf is exactly the 0 that sigmoid rounds to there;
    unlike 0.5 + 0.5 tanh(a / 2) it stays accurate relative to tiny values."""
    np.negative(a, out=a)
    np.exp(a, out=a)
    a += 1
    np.reciprocal(a, out=a)
    return a


def _t(w, w_t):
    """w.T for the GEMM h @ w.T: `w_t` when the caller passes it. NOTE: a C-contiguous copy
    of w.T runs ~2x faster than the transposed view in OpenBLAS's float32 GEMM at these
    shapes ((20, 200) @ (200, 800)), so a layer makes one per sequence."""
    return w.T if w_t is None else w_t


def _dtype(*arrays):
    return np.result_type(*(a for a in arrays if a is not None))


class LSTMCellFn(Function):
    """hc = (o * tanh(c'), c') with c' = f * c + i * g, where i, f, g, o = sigmoid, sigmoid,
    tanh, sigmoid of the chunks of xw + h @ w_hh.T + b_hh.

    Fused: one GEMM and the gate arithmetic in place on one (N, 4H) array. Saves the inputs
    (no copies) and the activated gates and tanh(c'). Backward, with dc = g_c + g_h * o *
    (1 - tanh(c')**2): d(gates) = [dc g i(1-i), dc c f(1-f), dc i (1-g**2), g_h tanh(c') o(1-o)],
    dxw = d(gates), dh = d(gates) @ w_hh, dc_prev = dc f, dw_hh = d(gates).T @ h,
    db_hh = sum_n d(gates). Under create_graph the gradient comes from the composite twin.
    """

    fused = True
    name = "LSTMCell"            # the graph's label

    def forward(self, xw, h, c, w_hh, b_hh, w_hh_t=None):
        H = h.shape[1]
        act = blas_threads.matmul(h, _t(w_hh, w_hh_t))
        act = act.astype(_dtype(xw, h, c, w_hh, b_hh), copy=False)
        act += xw
        if b_hh is not None:
            act += b_hh
        with np.errstate(over="ignore"):          # one errstate a step: it costs ~2 us
            _sigmoid_(act[:, :2 * H])
            _sigmoid_(act[:, 3 * H:])
        np.tanh(act[:, 2 * H:3 * H], out=act[:, 2 * H:3 * H])
        i, f, g, o = act[:, :H], act[:, H:2 * H], act[:, 2 * H:3 * H], act[:, 3 * H:]
        hc = np.empty((2, *h.shape), act.dtype)
        np.multiply(f, c, out=hc[1])
        hc[1] += i * g
        tc = np.tanh(hc[1])
        np.multiply(o, tc, out=hc[0])
        self.saved = (xw, h, c, w_hh, b_hh, act, tc)
        return hc

    def backward(self, g):
        xw, h, c, w_hh, b_hh, act, tc = self.saved
        if isinstance(g, Tensor):      # create_graph: differentiate the twin instead
            return twin_backward(self.twin, (xw, h, c, w_hh, b_hh), g)
        H = h.shape[1]
        gh, gc = g[0], g[1]
        i, f, gg, o = act[:, :H], act[:, H:2 * H], act[:, 2 * H:3 * H], act[:, 3 * H:]
        dc = gh * o
        dc *= 1 - tc * tc
        dc += gc
        d = act * (1 - act)                       # sigmoid' from the output: s (1 - s)
        d[:, 2 * H:3 * H] = 1 - gg * gg           # tanh' of the g gate
        d[:, :H] *= dc * gg
        d[:, H:2 * H] *= dc * c
        d[:, 2 * H:3 * H] *= dc * i
        d[:, 3 * H:] *= gh * tc
        dh = blas_threads.matmul(d, w_hh) if self.needs_grad(1) else None
        dc_prev = dc * f if self.needs_grad(2) else None
        dw = blas_threads.matmul(d.T, h) if self.needs_grad(3) else None
        db = d.sum(axis=0) if b_hh is not None and self.needs_grad(4) else None
        return d, dh, dc_prev, dw, db

    def twin(self, xw, h, c, w_hh, b_hh):
        return lstm_cell_composite(xw, h, c, w_hh, b_hh)


class GRUCellFn(Function):
    """h' = n + z * (h - n) with r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z) and
    n = tanh(x_n + r * h_n), where x_* are chunks of xw and h_* of h @ w_hh.T + b_hh.

    Fused: one GEMM, gate arithmetic on (N, 3H) arrays. Backward, with dn = g (1 - z)
    (1 - n**2): dxw = [dr, dz, dn] where dz = g (h - n) z (1 - z) and dr = dn h_n r (1 - r);
    d(h @ w_hh.T + b_hh) = [dr, dz, dn r]; dh = g z + that @ w_hh. Under create_graph the
    gradient comes from the composite twin.
    """

    fused = True
    name = "GRUCell"

    def forward(self, xw, h, w_hh, b_hh, w_hh_t=None):
        H = h.shape[1]
        hw = blas_threads.matmul(h, _t(w_hh, w_hh_t))
        hw = hw.astype(_dtype(xw, h, w_hh, b_hh), copy=False)
        if b_hh is not None:
            hw += b_hh
        with np.errstate(over="ignore"):
            rz = _sigmoid_(xw[:, :2 * H] + hw[:, :2 * H])
        r, z, hn = rz[:, :H], rz[:, H:], hw[:, 2 * H:]
        n = np.tanh(xw[:, 2 * H:] + r * hn)
        self.saved = (xw, h, w_hh, b_hh, rz, n, hn)
        return n + z * (h - n)

    def backward(self, g):
        xw, h, w_hh, b_hh, rz, n, hn = self.saved
        if isinstance(g, Tensor):      # create_graph: differentiate the twin instead
            return twin_backward(self.twin, (xw, h, w_hh, b_hh), g)
        H = h.shape[1]
        r, z = rz[:, :H], rz[:, H:]
        d = np.empty((g.shape[0], 3 * H), _dtype(g, rz))
        dn = d[:, 2 * H:]
        np.multiply(g, 1 - z, out=dn)
        dn *= 1 - n * n
        np.multiply(dn, hn, out=d[:, :H])
        np.multiply(g, h - n, out=d[:, H:2 * H])
        d[:, :2 * H] *= rz * (1 - rz)             # sigmoid' from the output: s (1 - s)
        dhw = d.copy()
        dhw[:, 2 * H:] *= r
        dh = g * z + blas_threads.matmul(dhw, w_hh) if self.needs_grad(1) else None
        dw = blas_threads.matmul(dhw.T, h) if self.needs_grad(2) else None
        db = dhw.sum(axis=0) if b_hh is not None and self.needs_grad(3) else None
        return d, dh, dw, db

    def twin(self, xw, h, w_hh, b_hh):
        return gru_cell_composite(xw, h, w_hh, b_hh)


# ---- the composite twins: Tensor ops, the tape derives every gradient ---------------------------
def _hidden(h, w_hh, b_hh):
    out = ops.matmul(h, ops.transpose(w_hh))
    return out if b_hh is None else out + b_hh


def lstm_cell_composite(xw, h, c, w_hh, b_hh=None):
    """The twin of LSTMCellFn: chunk, sigmoid, tanh, products; returns hc (2, N, H)."""
    i, f, g, o = ops.chunk(xw + _hidden(h, w_hh, b_hh), 4, dim=-1)
    c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
    return ops.stack([ops.sigmoid(o) * ops.tanh(c), c])


def gru_cell_composite(xw, h, w_hh, b_hh=None):
    """The twin of GRUCellFn: chunk, sigmoid, tanh, products; returns h' (N, H)."""
    xr, xz, xn = ops.chunk(xw, 3, dim=-1)
    hr, hz, hn = ops.chunk(_hidden(h, w_hh, b_hh), 3, dim=-1)
    r = ops.sigmoid(xr + hr)
    z = ops.sigmoid(xz + hz)
    n = ops.tanh(xn + r * hn)
    return n + z * (h - n)


# ---- the public functions: checks, then the fused op or (use_fused(False)) its twin ------------
def lstm_cell(xw, h, c, w_hh, b_hh=None, *, w_hh_t=None):
    """One LSTM step from the projected input xw = x @ w_ih.T + b_ih (N, 4H) and the state
    h, c (N, H): hc (2, N, H) with hc[0] = h', hc[1] = c'. w_hh (4H, H), b_hh (4H,) or None.
    w_hh_t: optionally `transposed(w_hh)`, made once for many steps (a speed hint only)."""
    _check_cell("lstm_cell", 4, xw, {"h": h, "c": c}, w_hh, b_hh, w_hh_t)
    if not fused_enabled():
        return lstm_cell_composite(xw, h, c, w_hh, b_hh)
    return LSTMCellFn.apply(xw, h, c, w_hh, b_hh, w_hh_t=w_hh_t)


def gru_cell(xw, h, w_hh, b_hh=None, *, w_hh_t=None):
    """One GRU step from the projected input xw = x @ w_ih.T + b_ih (N, 3H) and h (N, H):
    h' (N, H). w_hh (3H, H), b_hh (3H,) or None; w_hh_t as for lstm_cell."""
    _check_cell("gru_cell", 3, xw, {"h": h}, w_hh, b_hh, w_hh_t)
    if not fused_enabled():
        return gru_cell_composite(xw, h, w_hh, b_hh)
    return GRUCellFn.apply(xw, h, w_hh, b_hh, w_hh_t=w_hh_t)


def transposed(w_hh):
    """w_hh.T as a C-contiguous ndarray (no gradient): the w_hh_t the cells take."""
    return np.ascontiguousarray(_data(w_hh).T)


def _check_cell(op, gates, xw, states, w_hh, b_hh, w_hh_t):
    """A ValueError naming the argument and the shapes when they do not fit together."""
    ws = np.shape(_data(w_hh))
    if len(ws) != 2 or ws[0] != gates * ws[1]:
        raise ValueError(f"{op}: w_hh must be ({gates} * hidden_size, hidden_size), got shape "
                         f"{ws}")
    H = ws[1]
    n = np.shape(_data(xw))[0] if np.ndim(_data(xw)) == 2 else None
    expected = {"xw": (n, gates * H), **{k: (n, H) for k in states}}
    for name, x in {"xw": xw, **states}.items():
        if np.shape(_data(x)) != expected[name]:
            want = "(N, " + ("" if name != "xw" else f"{gates} * ") + f"{H})"
            raise ValueError(f"{op}: {name} must be {want} for w_hh of shape {ws}, got shape "
                             f"{np.shape(_data(x))}")
    if w_hh_t is not None and np.shape(w_hh_t) != (H, gates * H):
        raise ValueError(f"{op}: w_hh_t must be w_hh.T, of shape {(H, gates * H)}, got "
                         f"{np.shape(w_hh_t)}")
    if b_hh is not None and np.shape(_data(b_hh)) != (gates * H,):
        raise ValueError(f"{op}: b_hh must have shape ({gates * H},) for w_hh of shape {ws}, "
                         f"got {np.shape(_data(b_hh))}")
