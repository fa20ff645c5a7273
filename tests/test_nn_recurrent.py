"""nn.Embedding / F.embedding and the recurrent layers (RNN, LSTM, GRU and their cells).

Against PyTorch in float64 (weights copied by state_dict key): outputs, final states and the
gradients of the input, the initial states and every parameter. Numerical gradchecks (first
and second order), dropout between layers, init and bad arguments run without torch.
"""

from __future__ import annotations

import numpy as np
import pytest

import autotensor as at
from autotensor import nn
from autotensor.nn import functional as F

RTOL, ATOL = 1e-10, 1e-12
MODES = {"RNN": 1, "LSTM": 4, "GRU": 3}


def close(ours, theirs, what):
    ours = ours.data if isinstance(ours, at.Tensor) else np.asarray(ours)
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs torch {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL, err_msg=what)


def copy_weights(ours, theirs):
    """Load torch's weights into ours by key; the keys and their order must be torch's."""
    state = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert list(ours.state_dict()) == list(state)
    ours.load_state_dict(state)


def leaf(torch, array):
    """The same float64 array as an autotensor leaf and a torch leaf, both requiring grad."""
    return (at.Tensor(array.copy(), requires_grad=True),
            torch.tensor(array.copy(), requires_grad=True))


def upstream(tensors, rng):
    """Random upstream gradients u_i, one per output: both libraries backward sum(t_i * u_i)."""
    return [rng.standard_normal(tuple(t.shape)) for t in tensors]


# ---- the multi-layer modules vs torch ------------------------------------------------------
CONFIGS = [
    pytest.param(dict(), id="1-layer"),
    pytest.param(dict(num_layers=2), id="2-layers"),
    pytest.param(dict(bidirectional=True), id="bidirectional"),
    pytest.param(dict(num_layers=2, bidirectional=True, batch_first=True), id="2-bi-batch-first"),
    pytest.param(dict(batch_first=True), id="batch-first"),
    pytest.param(dict(num_layers=2, bias=False), id="no-bias"),
]


def run_layer(torch, mode, kwargs, batched=True, given_h0=True, seed=0):
    """Our layer and torch's on the same input and states; everything compared."""
    rng = np.random.default_rng(seed)
    theirs = getattr(torch.nn, mode)(3, 4, dtype=torch.float64, **kwargs)
    ours = getattr(nn, mode)(3, 4, **kwargs)
    copy_weights(ours, theirs)
    layers = kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)
    L, N = 5, 2
    if batched:
        x_shape = (N, L, 3) if kwargs.get("batch_first") else (L, N, 3)
        h_shape = (layers, N, 4)
    else:
        x_shape, h_shape = (L, 3), (layers, 4)
    x, tx = leaf(torch, rng.standard_normal(x_shape))
    states = [leaf(torch, rng.standard_normal(h_shape)) for _ in range(2 if mode == "LSTM" else 1)]
    if not given_h0:
        hx = thx = None
    elif mode == "LSTM":
        hx, thx = (states[0][0], states[1][0]), (states[0][1], states[1][1])
    else:
        hx, thx = states[0]
    out, h_n = ours(x, hx)
    tout, th_n = theirs(tx, thx)
    outs = [out, *(h_n if mode == "LSTM" else (h_n,))]
    touts = [tout, *(th_n if mode == "LSTM" else (th_n,))]
    us = upstream(touts, rng)
    for o, t, name in zip(outs, touts, ("output", "h_n", "c_n")):
        close(o, t, f"{mode} {name}")
    sum(at.sum(o * u) for o, u in zip(outs, us)).backward()
    sum((t * torch.tensor(u)).sum() for t, u in zip(touts, us)).backward()
    close(x.grad, tx.grad, f"{mode} input grad")
    if given_h0:
        for (s, ts), name in zip(states, ("h_0", "c_0")):
            close(s.grad, ts.grad, f"{mode} {name} grad")
    tparams = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        close(p.grad, tparams[name].grad, f"{mode} grad of {name}")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kwargs", CONFIGS)
def test_layer_matches_torch(torch, mode, kwargs):
    run_layer(torch, mode, kwargs)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batched, given_h0", [(True, False), (False, True), (False, False)])
def test_layer_matches_torch_unbatched_and_default_h0(torch, mode, batched, given_h0):
    run_layer(torch, mode, dict(num_layers=2, bidirectional=True), batched, given_h0, seed=1)


def test_relu_rnn_matches_torch(torch):
    run_layer(torch, "RNN", dict(num_layers=2, nonlinearity="relu"), seed=2)


def test_dropout_zero_and_eval_mode_match_torch(torch):
    # p = 0 in training, and p > 0 in eval mode, are both the plain stack.
    run_layer(torch, "LSTM", dict(num_layers=2, dropout=0.0))
    rng = np.random.default_rng(3)
    theirs = torch.nn.GRU(3, 4, num_layers=3, dropout=0.5, dtype=torch.float64).eval()
    ours = nn.GRU(3, 4, num_layers=3, dropout=0.5).eval()
    copy_weights(ours, theirs)
    x = rng.standard_normal((6, 2, 3))
    close(ours(x)[0], theirs(torch.tensor(x))[0], "GRU output in eval mode")


def test_second_order_through_an_lstm_matches_torch(torch):
    # A gradient penalty: d/dtheta of |d loss / dx|^2 runs backward through the recorded backward.
    rng = np.random.default_rng(4)
    theirs = torch.nn.LSTM(3, 4, num_layers=2, dtype=torch.float64)
    ours = nn.LSTM(3, 4, num_layers=2)
    copy_weights(ours, theirs)
    x, tx = leaf(torch, rng.standard_normal((4, 2, 3)))
    (gx,) = at.grad(at.sum(at.tanh(ours(x)[0])), [x], create_graph=True)
    (tgx,) = torch.autograd.grad(torch.tanh(theirs(tx)[0]).sum(), [tx], create_graph=True)
    at.sum(gx * gx).backward()
    (tgx * tgx).sum().backward()
    close(gx, tgx, "d loss / dx")
    tparams = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        close(p.grad, tparams[name].grad, f"second-order grad of {name}")


# ---- the cells vs torch --------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("given_h", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_cell_matches_torch(torch, mode, batched, given_h, bias):
    rng = np.random.default_rng(5)
    theirs = getattr(torch.nn, f"{mode}Cell")(3, 4, bias=bias, dtype=torch.float64)
    ours = getattr(nn, f"{mode}Cell")(3, 4, bias=bias)
    copy_weights(ours, theirs)
    x, tx = leaf(torch, rng.standard_normal((2, 3) if batched else (3,)))
    h_shape = (2, 4) if batched else (4,)
    states = [leaf(torch, rng.standard_normal(h_shape)) for _ in range(2 if mode == "LSTM" else 1)]
    if not given_h:
        hx = thx = None
    elif mode == "LSTM":
        hx, thx = tuple(s[0] for s in states), tuple(s[1] for s in states)
    else:
        hx, thx = states[0]
    outs, touts = ours(x, hx), theirs(tx, thx)
    outs = list(outs) if mode == "LSTM" else [outs]
    touts = list(touts) if mode == "LSTM" else [touts]
    us = upstream(touts, rng)
    for o, t in zip(outs, touts):
        close(o, t, f"{mode}Cell output")
    sum(at.sum(o * u) for o, u in zip(outs, us)).backward()
    sum((t * torch.tensor(u)).sum() for t, u in zip(touts, us)).backward()
    close(x.grad, tx.grad, f"{mode}Cell input grad")
    if given_h:
        for s, ts in states:
            close(s.grad, ts.grad, f"{mode}Cell state grad")
    tparams = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        close(p.grad, tparams[name].grad, f"{mode}Cell grad of {name}")


def test_relu_rnn_cell_matches_torch(torch):
    theirs = torch.nn.RNNCell(3, 4, nonlinearity="relu", dtype=torch.float64)
    ours = nn.RNNCell(3, 4, nonlinearity="relu")
    copy_weights(ours, theirs)
    x = np.random.default_rng(6).standard_normal((5, 3))
    close(ours(x), theirs(torch.tensor(x)), "relu RNNCell output")


# ---- numerical checks (no torch) -----------------------------------------------------------
@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_gradcheck_small_layers_inputs_and_parameters(mode):
    at.manual_seed(0)
    rng = np.random.default_rng(7)
    m = getattr(nn, mode)(2, 3, num_layers=2, bidirectional=True, batch_first=True)
    x = at.Tensor(rng.standard_normal((2, 3, 2)), requires_grad=True)
    h0 = at.Tensor(rng.standard_normal((4, 2, 3)), requires_grad=True)
    if mode == "LSTM":
        c0 = at.Tensor(rng.standard_normal((4, 2, 3)), requires_grad=True)

        def fn(x, h, c, *params):
            out, (h_n, c_n) = m(x, (h, c))
            return out, h_n, c_n
        inputs = [x, h0, c0]
    else:
        def fn(x, h, *params):
            return m(x, h)
        inputs = [x, h0]
    # The module's own Parameters are passed as inputs: perturbing them perturbs the module.
    assert at.gradcheck(fn, [*inputs, *m.parameters()], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_gradgradcheck_cells(mode):
    at.manual_seed(1)
    rng = np.random.default_rng(8)
    cell = getattr(nn, f"{mode}Cell")(2, 2)
    x = at.Tensor(rng.standard_normal((2, 2)), requires_grad=True)
    h = at.Tensor(rng.standard_normal((2, 2)), requires_grad=True)
    params = list(cell.parameters())
    if mode == "LSTM":
        c = at.Tensor(rng.standard_normal((2, 2)), requires_grad=True)
        fn, inputs = (lambda x, h, c, *ps: cell(x, (h, c))), [x, h, c, *params]
    else:
        fn, inputs = (lambda x, h, *ps: cell(x, h)), [x, h, *params]
    # The cell's own Parameters are passed as inputs: perturbing them perturbs the cell.
    assert at.gradgradcheck(fn, inputs, atol=1e-6, rtol=1e-5)


# ---- dropout between layers ----------------------------------------------------------------
def identity_rnn(p, layers=2):
    """A relu RNN whose layers pass a positive input through unchanged: output = the dropout
    masks applied between layers, times the input."""
    m = nn.RNN(6, 6, num_layers=layers, nonlinearity="relu", dropout=p)
    for name, param in m.named_parameters():
        param.data[...] = np.eye(6) if name.startswith("weight_ih") else 0.0
    return m


def test_dropout_between_layers_statistics_and_modes():
    p = 0.3
    m = identity_rnn(p)
    x = np.random.default_rng(9).uniform(0.5, 1.5, (60, 50, 6))
    at.manual_seed(0)
    out = m(x)[0].data
    ratio = out / x
    dropped = ratio == 0
    assert np.allclose(ratio[~dropped], 1 / (1 - p), rtol=1e-12)
    # One mask between the two layers (not after the last): a fraction p dropped, within
    # 5 standard deviations of 18000 draws.
    assert abs(dropped.mean() - p) < 5 * np.sqrt(p * (1 - p) / x.size)
    at.manual_seed(0)
    assert np.array_equal(m(x)[0].data, out), "at.manual_seed makes the masks repeatable"
    assert not np.array_equal(m(x)[0].data, out), "each call draws new masks"
    m.eval()
    np.testing.assert_array_equal(m(x)[0].data, x)
    assert np.array_equal(identity_rnn(0.0).train()(x)[0].data, x)


def test_dropout_with_one_layer_warns_as_torch_does():
    with pytest.warns(UserWarning, match="num_layers=1"):
        nn.LSTM(2, 3, dropout=0.2)


# ---- init, registration, dtype -------------------------------------------------------------
def test_init_is_uniform_within_one_over_sqrt_hidden_and_seeded():
    at.manual_seed(3)
    m = nn.GRU(20, 100, num_layers=2)
    values = np.concatenate([p.data.ravel() for p in m.parameters()])
    bound = 1 / np.sqrt(100)
    assert np.abs(values).max() <= bound and np.abs(values).max() > 0.99 * bound
    assert abs(values.mean()) < 0.01 * bound and abs(values.std() - bound / np.sqrt(3)) < 1e-3
    at.manual_seed(3)
    assert all(np.array_equal(a, b) for a, b in zip(
        nn.GRU(20, 100, num_layers=2).state_dict().values(), m.state_dict().values()))
    cell = nn.LSTMCell(3, 16)
    assert [(n, p.shape) for n, p in cell.named_parameters()] == [
        ("weight_ih", (64, 3)), ("weight_hh", (64, 16)), ("bias_ih", (64,)), ("bias_hh", (64,))]


def test_all_weights_and_repr():
    m = nn.LSTM(3, 4, num_layers=2, bidirectional=True, bias=False)
    assert [[tuple(w.shape) for w in ws] for ws in m.all_weights] == [
        [(16, 3), (16, 4)], [(16, 3), (16, 4)], [(16, 8), (16, 4)], [(16, 8), (16, 4)]]
    assert repr(m) == "LSTM(3, 4, num_layers=2, bias=False, bidirectional=True)"
    assert repr(nn.RNNCell(2, 5, nonlinearity="relu")) == "RNNCell(2, 5, nonlinearity='relu')"


def test_float32_stays_float32():
    m = nn.LSTM(3, 4, num_layers=2, dtype=np.float32)
    x = at.Tensor(np.ones((5, 2, 3), np.float32), requires_grad=True)
    out, (h, c) = m(x)
    at.sum(out).backward()
    assert out.dtype == h.dtype == c.dtype == x.grad.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in m.parameters())


# ---- embeddings ----------------------------------------------------------------------------
@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding_matches_torch(torch, padding_idx):
    theirs = torch.nn.Embedding(6, 3, padding_idx=padding_idx, dtype=torch.float64)
    with torch.no_grad():                                     # a nonzero padding row: its value
        theirs.weight[4] = torch.tensor([1.0, -2.0, 0.5])     # passes, its gradient does not
    ours = nn.Embedding(6, 3, padding_idx=padding_idx)
    copy_weights(ours, theirs)
    assert ours.padding_idx == theirs.padding_idx
    idx = np.array([[0, 2, 4, 2], [5, 4, 4, 1]])               # repeated: gradients accumulate
    out, tout = ours(at.tensor(idx)), theirs(torch.tensor(idx))
    close(out, tout, "embedding output")
    u = np.random.default_rng(10).standard_normal(out.shape)
    at.sum(out * u).backward()
    (tout * torch.tensor(u)).sum().backward()
    close(ours.weight.grad, theirs.weight.grad, "embedding weight grad")
    tw = theirs.weight.detach().numpy()
    close(F.embedding(idx, tw, padding_idx=padding_idx),
          torch.nn.functional.embedding(torch.tensor(idx), theirs.weight, padding_idx), "F")


def test_embedding_init_lookup_and_from_pretrained():
    at.manual_seed(0)
    e = nn.Embedding(400, 50, padding_idx=3)
    w = e.weight.data
    assert w.shape == (400, 50) and not w[3].any()
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02        # N(0, 1)
    assert e(np.int64(7)).shape == (50,) and e(np.zeros((2, 0, 3), int)).shape == (2, 0, 3, 50)
    table = np.arange(6.0).reshape(3, 2)
    frozen = nn.Embedding.from_pretrained(table)
    assert not frozen.weight.requires_grad
    np.testing.assert_array_equal(frozen(np.array([2, 0])).data, table[[2, 0]])
    assert nn.Embedding.from_pretrained(table, freeze=False).weight.requires_grad


# ---- bad arguments -------------------------------------------------------------------------
def test_embedding_refuses_bad_indices_and_options():
    e = nn.Embedding(5, 2)
    with pytest.raises(ValueError, match=r"\[0, 5\).*from 0 to 5"):
        e(np.array([0, 5]))
    with pytest.raises(ValueError, match=r"\[0, 5\).*from -1"):
        e(np.array([-1, 2]))
    with pytest.raises(TypeError, match="integer indices.*float64"):
        e(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(5, 2, padding_idx=5)
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(5, 2, padding_idx=-6)
    for option in (dict(max_norm=1.0), dict(sparse=True), dict(scale_grad_by_freq=True)):
        with pytest.raises(NotImplementedError, match=next(iter(option))):
            nn.Embedding(5, 2, **option)
        with pytest.raises(NotImplementedError, match=next(iter(option))):
            F.embedding(np.array([1]), e.weight, **option)
    with pytest.raises(ValueError, match="weight must have shape"):
        F.embedding(np.array([1]), np.ones(3))


@pytest.mark.parametrize("mode", MODES)
def test_layers_refuse_bad_inputs_and_states(mode):
    m = getattr(nn, mode)(3, 4, num_layers=2)
    with pytest.raises(ValueError, match=r"\(L, N, input_size\).*4-D"):
        m(np.ones((5, 2, 3, 1)))
    with pytest.raises(ValueError, match=r"2-D|1-D"):
        m(np.ones(3))
    with pytest.raises(ValueError, match="input has 2 features, expected input_size 3"):
        m(np.ones((5, 2, 2)))
    with pytest.raises(ValueError, match="empty"):
        m(np.ones((0, 2, 3)))
    wrong = np.ones((1, 2, 4))
    hx = (wrong, np.ones((2, 2, 4))) if mode == "LSTM" else wrong
    with pytest.raises(ValueError, match=r"h_0 of shape \(2, 2, 4\), got \(1, 2, 4\)"):
        m(np.ones((5, 2, 3)), hx)
    unbatched = (np.ones((2, 2, 4)),) * 2 if mode == "LSTM" else np.ones((2, 2, 4))
    with pytest.raises(ValueError, match=r"shape \(2, 4\), got \(2, 2, 4\)"):
        m(np.ones((5, 3)), unbatched)
    if mode == "LSTM":
        with pytest.raises(ValueError, match="c_0 of shape"):
            m(np.ones((5, 2, 3)), (np.ones((2, 2, 4)), np.ones((2, 3, 4))))
        with pytest.raises(ValueError, match=r"tuple \(h_0, c_0\)"):
            m(np.ones((5, 2, 3)), np.ones((2, 2, 4)))


def test_constructors_refuse_bad_arguments():
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNNCell(3, 4, nonlinearity="gelu")
    with pytest.raises(NotImplementedError, match="proj_size"):
        nn.LSTM(3, 4, proj_size=2)
    with pytest.raises(ValueError, match="dropout"):
        nn.GRU(3, 4, num_layers=2, dropout=1.5)
    with pytest.raises(ValueError, match="hidden_size"):
        nn.LSTM(3, 0)
    with pytest.raises(ValueError, match="num_layers"):
        nn.GRU(3, 4, num_layers=2.0)


@pytest.mark.parametrize("mode", MODES)
def test_cells_refuse_bad_inputs_and_states(mode):
    cell = getattr(nn, f"{mode}Cell")(3, 4)
    with pytest.raises(ValueError, match=r"\(N, 3\) or \(3,\), got \(2, 2, 3\)"):
        cell(np.ones((2, 2, 3)))
    with pytest.raises(ValueError, match="input has 5 features, expected input_size 3"):
        cell(np.ones((2, 5)))
    h = np.ones((3, 4))
    with pytest.raises(ValueError, match=r"of shape \(2, 4\), got \(3, 4\)"):
        cell(np.ones((2, 3)), (h, h) if mode == "LSTM" else h)
    with pytest.raises(ValueError, match=r"of shape \(4,\), got \(3, 4\)"):
        cell(np.ones(3), (h, h) if mode == "LSTM" else h)
    if mode == "LSTM":
        with pytest.raises(ValueError, match=r"tuple \(h, c\)"):
            cell(np.ones((2, 3)), np.ones((2, 4)))
