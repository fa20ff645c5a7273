"""The fused LSTM and GRU cells (autotensor/fused/rnn.py) and at.unbind.

The op table's rows give fused == twin (tests/test_fused.py, float64 and float32) and the
numerical checks at first and second order (tests/test_ops_gradcheck.py). Here: whole layers
fused against their twins and against PyTorch in float32 and float64, create_graph through
the fused cells, saturated gates, the layout hint, unbind's semantics and bad arguments.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import autotensor as at
from autotensor import fused, nn
from autotensor.autograd import graph_nodes
from autotensor.fused.rnn import transposed

TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-4, atol=2e-5)}
DTYPES = [np.float64, np.float32]


def run(module, x, fused_on, hx=None):
    """Outputs (output and final states) and the gradients of x and every parameter."""
    module.zero_grad()
    x = at.Tensor(x.copy(), requires_grad=True)
    with at.use_fused(fused_on):
        out, state = module(x, hx)
        states = state if isinstance(state, tuple) else (state,)
        rng = np.random.default_rng(1)
        loss = sum(at.sum(t * rng.standard_normal(t.shape).astype(t.dtype))
                   for t in (out, *states))
        loss.backward()
    return [out.data, *(s.data for s in states), x.grad,
            *(p.grad for p in module.parameters())], out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("kwargs", [dict(num_layers=2), dict(bidirectional=True, bias=False)],
                         ids=["2-layers", "bi-no-bias"])
def test_layer_fused_equals_twin(mode, kwargs, dtype):
    at.manual_seed(0)
    layer = getattr(nn, mode)(5, 6, dtype=dtype, **kwargs)
    x = np.random.default_rng(0).standard_normal((7, 3, 5)).astype(dtype)
    fast, out_f = run(layer, x, True)
    slow, out_t = run(layer, x, False)
    names = [r.name for r in graph_nodes(out_f._node)]
    assert names.count(f"{mode}Cell") == 7 * len(layer.all_weights)     # one node a step
    assert f"{mode}Cell" not in [r.name for r in graph_nodes(out_t._node)]
    for i, (a, b) in enumerate(zip(fast, slow)):
        assert a.dtype == b.dtype == dtype, f"item {i} became {a.dtype} / {b.dtype}"
        np.testing.assert_allclose(a, b, **TOL[dtype], err_msg=f"fused vs twin: item {i}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_layer_matches_torch_in_both_dtypes(torch, mode, dtype):
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    theirs = getattr(torch.nn, mode)(4, 5, num_layers=2, dtype=tdtype)
    ours = getattr(nn, mode)(4, 5, num_layers=2, dtype=dtype)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(2).standard_normal((6, 2, 4)).astype(dtype)
    ours_out = run(ours, x, True)[0]
    tx = torch.tensor(x, requires_grad=True)
    out, state = theirs(tx)
    states = state if isinstance(state, tuple) else (state,)
    rng = np.random.default_rng(1)
    sum((t * torch.tensor(rng.standard_normal(tuple(t.shape)).astype(dtype))).sum()
        for t in (out, *states)).backward()
    theirs_out = [out, *states, tx.grad, *(p.grad for p in theirs.parameters())]
    for i, (a, b) in enumerate(zip(ours_out, theirs_out)):
        np.testing.assert_allclose(a, b.detach().numpy(), **TOL[dtype], err_msg=f"item {i}")


def test_second_order_through_fused_cells_equals_the_twins():
    # create_graph differentiates the twin inside each fused node: the gradient-norm penalty
    # of a 2-layer LSTM and its gradient w.r.t. the weights equal the all-composite graph's.
    at.manual_seed(3)
    lstm = nn.LSTM(3, 4, num_layers=2)
    x = at.Tensor(np.random.default_rng(3).standard_normal((4, 2, 3)), requires_grad=True)
    results = []
    for on in (True, False):
        lstm.zero_grad()
        with at.use_fused(on):
            out, _ = lstm(x)
            (gx,) = at.grad(at.sum(out * out), [x], create_graph=True)
            at.sum(gx * gx).backward()
        results.append([p.grad.copy() for p in lstm.parameters()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_saturated_gates_stay_finite_and_warn_nothing(dtype):
    rng = np.random.default_rng(4)
    xw = at.Tensor((rng.choice([-1, 1], (3, 8)) * 1e3).astype(dtype), requires_grad=True)
    h, c = (at.Tensor(rng.standard_normal((3, 2)).astype(dtype)) for _ in range(2))
    w = at.Tensor(rng.standard_normal((8, 2)).astype(dtype), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hc = fused.lstm_cell(xw, h, c, w)
        hc.backward(np.ones(hc.shape, dtype))
    with at.use_fused(False):
        twin = fused.lstm_cell(xw, h, c, w)
    np.testing.assert_allclose(hc.data, twin.data, **TOL[dtype])
    assert np.all(np.isfinite(xw.grad)) and np.all(np.isfinite(w.grad))


@pytest.mark.parametrize("cell, gates, states", [(fused.lstm_cell, 4, 2), (fused.gru_cell, 3, 1)])
def test_the_layout_hint_changes_nothing(cell, gates, states):
    rng = np.random.default_rng(5)
    xw, *hs = (rng.standard_normal((2, n)) for n in (gates * 3, *[3] * states))
    w = at.Tensor(rng.standard_normal((gates * 3, 3)))
    b = rng.standard_normal(gates * 3)
    np.testing.assert_array_equal(cell(xw, *hs, w, b).data,
                                  cell(xw, *hs, w, b, w_hh_t=transposed(w)).data)
    assert transposed(w).flags.c_contiguous


def test_cells_refuse_mismatched_shapes_naming_the_argument():
    xw, h, c, w = np.zeros((2, 8)), np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((8, 2))
    with pytest.raises(ValueError, match=r"lstm_cell: w_hh must be .*got shape \(8, 3\)"):
        fused.lstm_cell(xw, h, c, np.zeros((8, 3)))
    with pytest.raises(ValueError, match=r"lstm_cell: c must be \(N, 2\).*\(3, 2\)"):
        fused.lstm_cell(xw, h, np.zeros((3, 2)), w)
    with pytest.raises(ValueError, match=r"lstm_cell: xw must be \(N, 4 \* 2\)"):
        fused.lstm_cell(np.zeros((2, 6)), h, c, w)
    with pytest.raises(ValueError, match=r"lstm_cell: b_hh must have shape \(8,\)"):
        fused.lstm_cell(xw, h, c, w, np.zeros(6))
    with pytest.raises(ValueError, match=r"gru_cell: w_hh_t must be w_hh.T, of shape \(2, 6\)"):
        fused.gru_cell(np.zeros((2, 6)), h, np.zeros((6, 2)), w_hh_t=np.zeros((6, 2)))
    with pytest.raises(ValueError, match=r"gru_cell: h must be \(N, 2\)"):
        fused.gru_cell(np.zeros((2, 6)), np.zeros((2, 3)), np.zeros((6, 2)))


# ---- unbind ------------------------------------------------------------------------------------
def test_unbind_matches_torch(torch):
    x = np.arange(24.0).reshape(2, 3, 4)
    for dim in (0, 1, -1):
        ours, theirs = at.unbind(at.Tensor(x), dim), torch.unbind(torch.tensor(x), dim)
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a.data, b.numpy())
    assert at.Tensor(x).unbind(1)[2].shape == (2, 4)
    assert at.unbind(at.zeros((0, 3))) == torch.unbind(torch.zeros(0, 3)) == ()


def test_unbind_is_one_node_and_its_gradient_one_array():
    x = at.Tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    parts = at.unbind(x, 1)
    assert len({id(p._node.source) for p in parts}) == 1
    (parts[0] * 2 + parts[3]).sum().backward()        # parts 1 and 2 get no gradient
    np.testing.assert_array_equal(x.grad, np.tile([2.0, 0.0, 0.0, 1.0], (3, 1)))


def test_unbind_refuses_bad_dims():
    with pytest.raises(ValueError, match="0-d"):
        at.unbind(at.tensor(1.0))
    with pytest.raises(ValueError, match="dim=2 is out of range"):
        at.unbind(at.zeros((2, 3)), 2)
