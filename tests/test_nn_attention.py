"""F.scaled_dot_product_attention and nn.MultiheadAttention against PyTorch in float64.

Outputs and every gradient (inputs, float masks, parameters) are compared at relative error
1e-10 of each array's scale; numerical gradchecks run without torch.
"""

from __future__ import annotations

import numpy as np
import pytest

import autotensor as at
from autotensor import nn
from autotensor.nn import functional as F


def _close(a, b, rel=1e-10):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    err = np.max(np.abs(a - b), initial=0) / max(np.max(np.abs(b), initial=0), 1e-300)
    assert err <= rel, f"relative error {err:.3g} > {rel:g}"


def _keep_mask(rng, shape):
    """A random bool mask with at least one True in every row (no fully masked query)."""
    m = rng.random(shape) < 0.6
    m[..., 0] = True
    return m


# name -> (q, k, v shapes, mask kind, keyword arguments)
SDPA_CASES = {
    "3d": ((2, 3, 4), (2, 5, 4), (2, 5, 3), None, {}),
    "4d": ((2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 5), None, {}),
    "bool-3d": ((2, 3, 4), (2, 5, 4), (2, 5, 3), "bool", {}),
    "bool-4d-broadcast": ((2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 5), "bool-LS", {}),
    "float-3d": ((2, 3, 4), (2, 5, 4), (2, 5, 3), "float", {}),
    "float-4d": ((2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 5), "float", {}),
    "causal-3d": ((2, 5, 4), (2, 5, 4), (2, 5, 3), None, {"is_causal": True}),
    "causal-4d-rect": ((2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 5), None, {"is_causal": True}),
    "scale": ((2, 3, 4), (2, 5, 4), (2, 5, 3), "float", {"scale": 0.37}),
    "gqa": ((2, 4, 3, 8), (2, 2, 5, 8), (2, 2, 5, 8), None, {"enable_gqa": True}),
}


@pytest.mark.parametrize("name", sorted(SDPA_CASES))
def test_sdpa_matches_torch(torch, name):
    qs, ks, vs, mask_kind, kwargs = SDPA_CASES[name]
    rng = np.random.default_rng(len(name))
    arrays = [rng.standard_normal(s) for s in (qs, ks, vs)]
    L, S = qs[-2], ks[-2]
    mask_shape = (L, S) if mask_kind == "bool-LS" else (*qs[:-1], S)
    if mask_kind and mask_kind.startswith("bool"):
        mask_a = _keep_mask(rng, mask_shape)
        mask_t = torch.tensor(mask_a)
    elif mask_kind == "float":
        arrays.append(rng.standard_normal(mask_shape))      # a differentiable float mask
    ours = [at.Tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    if mask_kind and mask_kind.startswith("bool"):
        out_a = F.scaled_dot_product_attention(*ours, attn_mask=mask_a)
        out_t = torch.nn.functional.scaled_dot_product_attention(*theirs, attn_mask=mask_t)
    else:
        extra_a = {"attn_mask": ours.pop()} if mask_kind == "float" else {}
        extra_t = {"attn_mask": theirs.pop()} if mask_kind == "float" else {}
        out_a = F.scaled_dot_product_attention(*ours, **extra_a, **kwargs)
        out_t = torch.nn.functional.scaled_dot_product_attention(*theirs, **extra_t, **kwargs)
        ours, theirs = ours + list(extra_a.values()), theirs + list(extra_t.values())
    _close(out_a.data, out_t.detach().numpy())
    g = rng.standard_normal(out_a.shape)
    out_a.backward(g)
    out_t.backward(torch.tensor(g))
    for a, t in zip(ours, theirs):
        _close(a.grad, t.grad.numpy())


def test_sdpa_gradcheck_first_and_second_order():
    rng = np.random.default_rng(0)
    q, k, v = (at.Tensor(rng.standard_normal(s), requires_grad=True)
               for s in ((2, 2, 3, 4), (2, 2, 4, 4), (2, 2, 4, 2)))
    keep = _keep_mask(rng, (3, 4))

    def fn(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=keep)

    assert at.gradcheck(fn, [q, k, v], atol=1e-6, rtol=1e-5)
    assert at.gradgradcheck(fn, [q, k, v], atol=1e-6, rtol=1e-5)


def test_sdpa_bad_arguments():
    q = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="not both"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((3, 3), bool), is_causal=True)
    with pytest.raises(ValueError, match=r"\(2, 3, 4\), \(2, 3, 5\)"):
        F.scaled_dot_product_attention(q, np.zeros((2, 3, 5)), q)
    with pytest.raises(TypeError, match="attn_mask must be a bool or floating"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((3, 3), int))
    with pytest.raises(ValueError, match="dropout_p"):
        F.scaled_dot_product_attention(q, q, q, dropout_p=1.5)
    with pytest.raises(ValueError, match="multiple"):
        F.scaled_dot_product_attention(np.zeros((1, 3, 2, 4)), np.zeros((1, 2, 2, 4)),
                                       np.zeros((1, 2, 2, 4)), enable_gqa=True)


def test_sdpa_dropout_zeroes_weights_and_keeps_the_expectation():
    np.random.seed(0)
    q = k = np.zeros((1, 4, 2))           # uniform weights 1/4
    v = np.ones((1, 4, 1))
    outs = [F.scaled_dot_product_attention(q, k, v, dropout_p=0.5).data for _ in range(400)]
    assert np.any(np.array(outs) != 1.0)
    assert abs(np.mean(outs) - 1.0) < 0.05


# ---- MultiheadAttention --------------------------------------------------------------------
def _pair(torch, batch_first, bias=True, e=8, heads=2):
    """An autotensor MHA holding a torch MHA's weights (out_proj.weight transposed)."""
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(e, heads, bias=bias, batch_first=batch_first,
                                         dtype=torch.float64)
    ours = nn.MultiheadAttention(e, heads, bias=bias, batch_first=batch_first)
    state = {k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()}
    state["out_proj.weight"] = state["out_proj.weight"].T
    ours.load_state_dict(state)
    with torch.no_grad():                  # biases off zero, so their gradients mean something
        for p in theirs.parameters():
            if p.ndim == 1:
                p.copy_(torch.randn(p.shape, dtype=torch.float64) * 0.3)
    for name, p in theirs.named_parameters():
        if p.ndim == 1:
            dict(ours.named_parameters())[name].data[...] = p.detach().numpy()
    return ours, theirs


# name -> (batch_first, self-attention, bias, masks, need_weights, average_attn_weights)
MHA_CASES = {
    "self": (False, True, True, (), True, True),
    "self-batch-first": (True, True, True, (), True, True),
    "cross": (False, False, True, (), True, True),
    "cross-batch-first-no-bias": (True, False, False, (), True, True),
    "no-weights": (True, False, True, (), False, True),
    "per-head-weights": (False, False, True, (), True, False),
    "padding-bool": (True, False, True, ("kpm-bool",), True, True),
    "padding-float": (False, False, True, ("kpm-float",), True, False),
    "attn-bool": (True, True, True, ("attn-bool",), True, True),
    "attn-float-per-head": (False, False, True, ("attn-float-3d",), True, True),
    "causal-and-padding": (True, True, True, ("causal", "kpm-bool"), False, True),
}


def _mha_masks(torch, rng, kinds, n, length, s, heads):
    ours, theirs = {}, {}
    for kind in kinds:
        if kind == "kpm-bool":
            m = rng.random((n, s)) < 0.3
            m[:, 0] = False                       # never every key of a sample
            ours["key_padding_mask"], theirs["key_padding_mask"] = m, torch.tensor(m)
        elif kind == "kpm-float":
            m = rng.standard_normal((n, s))
            ours["key_padding_mask"], theirs["key_padding_mask"] = m, torch.tensor(m)
        elif kind == "attn-bool":
            m = rng.random((length, s)) < 0.3
            m[:, 0] = False
            ours["attn_mask"], theirs["attn_mask"] = m, torch.tensor(m)
        elif kind == "attn-float-3d":
            m = rng.standard_normal((n * heads, length, s))
            ours["attn_mask"], theirs["attn_mask"] = m, torch.tensor(m)
        elif kind == "causal":
            m = np.triu(np.ones((length, s), bool), 1)
            ours.update(attn_mask=m, is_causal=True)
            theirs.update(attn_mask=torch.tensor(m), is_causal=True)
    return ours, theirs


@pytest.mark.parametrize("name", sorted(MHA_CASES))
def test_multihead_attention_matches_torch(torch, name):
    batch_first, self_attn, bias, kinds, need_weights, average = MHA_CASES[name]
    ours, theirs = _pair(torch, batch_first, bias)
    rng = np.random.default_rng(len(name))
    n, length, s, e = 3, 4, 4 if self_attn else 6, 8
    shape = (lambda t: (n, t, e)) if batch_first else (lambda t: (t, n, e))
    arrays = [rng.standard_normal(shape(length))]
    arrays += arrays * 2 if self_attn else [rng.standard_normal(shape(s)) for _ in range(2)]
    xs_a = [at.Tensor(a, requires_grad=True) for a in arrays[:1 if self_attn else 3]]
    xs_t = [torch.tensor(a, requires_grad=True) for a in arrays[:1 if self_attn else 3]]
    args_a, args_t = (xs_a * 3, xs_t * 3) if self_attn else (xs_a, xs_t)
    masks_a, masks_t = _mha_masks(torch, rng, kinds, n, length, s, 2)
    out_a, w_a = ours(*args_a, need_weights=need_weights, average_attn_weights=average,
                      **masks_a)
    out_t, w_t = theirs(*args_t, need_weights=need_weights, average_attn_weights=average,
                        **masks_t)
    _close(out_a.data, out_t.detach().numpy())
    assert (w_a is None) == (w_t is None) == (not need_weights)
    g = rng.standard_normal(out_a.shape)
    loss_a, loss_t = (out_a * g).sum(), (out_t * torch.tensor(g)).sum()
    if need_weights:
        _close(w_a.data, w_t.detach().numpy())
        gw = rng.standard_normal(w_a.shape)
        loss_a, loss_t = loss_a + (w_a * gw).sum(), loss_t + (w_t * torch.tensor(gw)).sum()
    loss_a.backward()
    loss_t.backward()
    for a, t in zip(xs_a, xs_t):
        _close(a.grad, t.grad.numpy())
    params_t = dict(theirs.named_parameters())
    for name_, p in ours.named_parameters():
        want = params_t[name_].grad.numpy()
        _close(p.grad, want.T if name_ == "out_proj.weight" else want)


def test_multihead_attention_parameters_are_torchs(torch):
    ours = nn.MultiheadAttention(12, 3)
    theirs = torch.nn.MultiheadAttention(12, 3)
    shapes = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    shapes["out_proj.weight"] = shapes["out_proj.weight"][::-1]
    assert {k: v.shape for k, v in ours.state_dict().items()} == shapes
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_multihead_attention_init_draws_from_the_global_generator():
    at.manual_seed(5)
    a = nn.MultiheadAttention(16, 4)
    at.manual_seed(5)
    b = nn.MultiheadAttention(16, 4)
    np.testing.assert_array_equal(a.in_proj_weight.data, b.in_proj_weight.data)
    bound = np.sqrt(6 / (16 + 48))
    assert np.abs(a.in_proj_weight.data).max() <= bound
    assert np.abs(a.in_proj_weight.data).max() > 0.9 * bound
    assert np.abs(a.out_proj.weight.data).max() <= 1 / 4
    assert not a.in_proj_bias.data.any() and not a.out_proj.bias.data.any()


def test_multihead_attention_unbatched_and_gradcheck():
    at.manual_seed(0)
    m = nn.MultiheadAttention(4, 2)
    rng = np.random.default_rng(1)
    x = at.Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    kpm = np.array([False, True, False])
    out, w = m(x, x, x, key_padding_mask=kpm)
    assert out.shape == (3, 4) and w.shape == (3, 3) and np.all(w.data[:, 1] == 0)
    assert at.gradcheck(lambda x, *ps: m(x, x, x, key_padding_mask=kpm)[0],
                        [x, *m.parameters()], atol=1e-6, rtol=1e-5)


def test_multihead_attention_dropout_only_in_training():
    at.manual_seed(0)
    m = nn.MultiheadAttention(4, 2, dropout=0.5)
    x = np.random.default_rng(0).standard_normal((5, 2, 4))
    np.random.seed(0)
    train = m(x, x, x)[1].data
    m.eval()
    a, b = m(x, x, x)[1].data, m(x, x, x)[1].data
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(train, a)


def test_multihead_attention_bad_arguments():
    with pytest.raises(ValueError, match="divisible"):
        nn.MultiheadAttention(10, 3)
    with pytest.raises(ValueError, match="kdim=4 is not supported"):
        nn.MultiheadAttention(8, 2, kdim=4)
    m = nn.MultiheadAttention(8, 2)
    x = np.zeros((4, 2, 8))
    with pytest.raises(ValueError, match="embed_dim 8"):
        m(np.zeros((4, 2, 6)), x, x)
    with pytest.raises(ValueError, match="needs attn_mask"):
        m(x, x, x, is_causal=True)
    with pytest.raises(ValueError, match=r"attn_mask must have shape \(L, S\) = \(4, 4\)"):
        m(x, x, x, attn_mask=np.zeros((3, 4), bool))
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(N, S\)"):
        m(x, x, x, key_padding_mask=np.zeros((4, 2), bool))
