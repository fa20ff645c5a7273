"""Convolution and pooling with PyTorch's arguments, against PyTorch in float64: forward values
and every gradient to ~1e-10, with the fused ops on and off; modules with torch's weights;
geometry errors named. Numerical (gradcheck) coverage is in the op table (test_ops_gradcheck)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from torch_compare import assert_matches_torch

import autotensor as at
from autotensor import nn
from autotensor.nn import functional as F

RTOL, ATOL = 1e-10, 1e-12
FUSED = pytest.mark.parametrize("fused", [True, False], ids=["fused", "twin"])


def draw(*shapes, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


# ---- conv2d -------------------------------------------------------------------------------------
CONV = [  # x, w, stride, padding, dilation, groups
    ((2, 3, 7, 8), (4, 3, 3, 3), 1, 1, 1, 1),
    ((2, 3, 7, 8), (4, 3, 4, 2), 1, "same", 1, 1),           # even kernels: extra at the end
    ((1, 2, 6, 9), (3, 2, 2, 3), 1, "same", (2, 3), 1),      # dilated 'same'
    ((2, 2, 5, 6), (3, 2, 3, 3), 1, "valid", 1, 1),
    ((2, 4, 9, 7), (6, 2, 3, 2), (2, 1), (1, 2), 1, 2),      # groups
    ((1, 6, 8, 8), (6, 1, 3, 3), 2, 1, 1, 6),                # depthwise
    ((1, 4, 8, 8), (8, 1, 3, 3), 1, 1, 1, 4),                # depthwise multiplier 2
    ((2, 3, 11, 10), (2, 3, 3, 2), (3, 2), (2, 0), (2, 3), 1),
    ((1, 4, 9, 11), (4, 2, 2, 3), 2, 3, 2, 2),
    ((1, 1, 5, 5), (1, 1, 5, 5), 1, 0, 1, 1),                # kernel == input
    ((3, 8, 10, 9), (8, 1, 3, 3), 2, (1, 2), 1, 8),          # depthwise, N=3, stride 2
    ((2, 6, 9, 9), (9, 2, 3, 2), (1, 2), 2, 2, 3),           # G=3, dilated, strided
    ((2, 4, 7, 7), (4, 2, 1, 1), 2, 0, 1, 2),                # G=2, 1x1, stride 2
]


@FUSED
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("xs,ws,stride,padding,dilation,groups", CONV)
def test_conv2d_matches_torch(torch, fused, bias, xs, ws, stride, padding, dilation, groups):
    arrays = draw(xs, ws, (ws[0],))[:3 if bias else 2]
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    assert_matches_torch(
        torch, lambda x, w, *b: F.conv2d(x, w, *b, **kw),
        lambda x, w, *b: torch.nn.functional.conv2d(x, w, *b, **kw), arrays, fused=fused)


def test_conv2d_keeps_the_course_alias_pad():
    x, w = draw((1, 2, 5, 5), (3, 2, 3, 3))
    np.testing.assert_array_equal(F.conv2d(x, w, pad=1).data, F.conv2d(x, w, padding=1).data)
    with pytest.raises(TypeError, match="not both"):
        F.conv2d(x, w, padding=1, pad=1)


# ---- conv_transpose2d --------------------------------------------------------------------------
CONV_T = [  # x, w, stride, padding, output_padding, groups, dilation
    ((2, 3, 4, 5), (3, 2, 3, 3), 1, 0, 0, 1, 1),
    ((2, 3, 4, 5), (3, 4, 3, 2), 2, 1, 1, 1, 1),
    ((1, 4, 3, 4), (4, 1, 2, 3), (2, 3), (0, 1), (1, 2), 2, 1),
    ((1, 2, 5, 3), (2, 3, 3, 3), 1, 2, 1, 1, (2, 3)),        # output_padding < dilation only
    ((2, 6, 4, 4), (6, 1, 3, 3), 3, 4, 2, 6, 2),             # depthwise, padding > kernel - 1
    ((1, 2, 5, 5), (2, 2, 4, 4), 2, 1, 0, 1, 1),             # the DCGAN up-sampling block
]


@FUSED
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("xs,ws,stride,padding,output_padding,groups,dilation", CONV_T)
def test_conv_transpose2d_matches_torch(torch, fused, bias, xs, ws, stride, padding,
                                        output_padding, groups, dilation):
    arrays = draw(xs, ws, (ws[1] * groups,))[:3 if bias else 2]
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups,
              dilation=dilation)
    assert_matches_torch(
        torch, lambda x, w, *b: F.conv_transpose2d(x, w, *b, **kw),
        lambda x, w, *b: torch.nn.functional.conv_transpose2d(x, w, *b, **kw), arrays, fused=fused)


def test_conv_transpose2d_second_order_matches_torch(torch):
    # A gradient penalty through the fused op: d/dw |d out / d x|^2, as WGAN-GP computes it.
    x, w = draw((1, 2, 3, 4), (2, 3, 3, 2))
    xt, wt = at.Tensor(x, requires_grad=True), at.Tensor(w, requires_grad=True)
    (gx,) = at.grad((F.conv_transpose2d(xt, wt, stride=2, padding=1) ** 2).sum(), [xt],
                    create_graph=True)
    (gx ** 2).sum().backward()
    tx, tw = (torch.tensor(a, requires_grad=True) for a in (x, w))
    (tgx,) = torch.autograd.grad(
        (torch.nn.functional.conv_transpose2d(tx, tw, stride=2, padding=1) ** 2).sum(), [tx],
        create_graph=True)
    (tgx ** 2).sum().backward()
    np.testing.assert_allclose(gx.data, tgx.detach().numpy(), rtol=RTOL, atol=ATOL)
    for ours, theirs in ((xt, tx), (wt, tw)):
        np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=RTOL, atol=ATOL)


# ---- pooling -----------------------------------------------------------------------------------
def distinct(shape, seed=2):
    """No ties: every window has one maximum."""
    return np.random.default_rng(seed).permutation(math.prod(shape)).reshape(shape) * 0.01


MAX_POOL = [  # x, kernel, stride, padding, dilation, ceil_mode
    ((2, 3, 8, 8), 2, None, 0, 1, False),
    ((2, 3, 9, 7), 3, 2, 1, 1, False),
    ((1, 2, 9, 8), (3, 2), (2, 1), (1, 0), 1, False),
    ((2, 2, 9, 10), 3, 2, 1, 2, False),
    ((1, 2, 7, 8), 2, 2, 0, 1, True),
    ((2, 2, 8, 9), 3, 2, 1, (1, 2), True),
    ((1, 1, 5, 5), 5, 1, 2, 1, False),
]


@FUSED
@pytest.mark.parametrize("xs,kernel,stride,padding,dilation,ceil_mode", MAX_POOL)
def test_max_pool2d_matches_torch(torch, fused, xs, kernel, stride, padding, dilation,
                                  ceil_mode):
    args = (kernel, stride, padding, dilation, ceil_mode)
    assert_matches_torch(
        torch, lambda x: F.max_pool2d(x, *args),
        lambda x: torch.nn.functional.max_pool2d(x, *args), [distinct(xs)], fused=fused)
    _, ours = F.max_pool2d(distinct(xs), *args, return_indices=True)
    _, theirs = torch.nn.functional.max_pool2d(torch.tensor(distinct(xs)), *args,
                                               return_indices=True)
    np.testing.assert_array_equal(ours, theirs.numpy())


def test_dilated_max_pool2d_differentiates_twice():
    # No fused kernel has dilation, so no fused row in the op table: checked here instead.
    x = at.Tensor(distinct((1, 2, 8, 7)), requires_grad=True)
    fn = lambda t: F.max_pool2d(t, (3, 2), 2, (1, 0), (2, 3), ceil_mode=True)   # noqa: E731
    assert at.gradcheck(fn, [x], atol=1e-6, rtol=1e-5)
    assert at.gradgradcheck(fn, [x], atol=1e-6, rtol=1e-5)


AVG_POOL = [  # x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override
    ((2, 3, 8, 8), 2, None, 0, False, True, None),
    ((2, 2, 9, 7), 3, 2, 1, False, True, None),
    ((2, 2, 9, 7), 3, 2, 1, False, False, None),
    ((1, 2, 7, 8), (3, 2), 2, (1, 1), True, True, None),
    ((1, 2, 7, 8), (3, 2), 2, (1, 1), True, False, None),
    ((1, 2, 6, 6), 3, 2, 0, True, True, None),
    ((1, 2, 6, 5), 2, 1, 1, False, True, 3),
]


@pytest.mark.parametrize("xs,kernel,stride,padding,ceil_mode,count_include_pad,divisor", AVG_POOL)
def test_avg_pool2d_matches_torch(torch, xs, kernel, stride, padding, ceil_mode,
                                  count_include_pad, divisor):
    args = (kernel, stride, padding, ceil_mode, count_include_pad, divisor)
    assert_matches_torch(
        torch, lambda x: F.avg_pool2d(x, *args),
        lambda x: torch.nn.functional.avg_pool2d(x, *args), draw(xs), fused=True)


@pytest.mark.parametrize("xs,size", [((2, 3, 7, 5), (3, 2)), ((1, 2, 5, 9), 4),
                                     ((1, 2, 6, 6), (None, 4)), ((2, 2, 3, 3), 5),
                                     ((1, 1, 8, 8), 1)])
def test_adaptive_pools_match_torch(torch, xs, size):
    assert_matches_torch(
        torch, lambda x: F.adaptive_avg_pool2d(x, size),
        lambda x: torch.nn.functional.adaptive_avg_pool2d(x, size), draw(xs), fused=True)
    assert_matches_torch(
        torch, lambda x: F.adaptive_max_pool2d(x, size),
        lambda x: torch.nn.functional.adaptive_max_pool2d(x, size), [distinct(xs)], fused=True)
    _, ours = F.adaptive_max_pool2d(distinct(xs), size, return_indices=True)
    _, theirs = torch.nn.functional.adaptive_max_pool2d(torch.tensor(distinct(xs)), size,
                                                        return_indices=True)
    np.testing.assert_array_equal(ours, theirs.numpy())


def test_max_pool_ties_send_the_gradient_to_the_first_maximum_as_torch(torch):
    x = np.random.default_rng(3).integers(0, 3, (2, 2, 7, 7)).astype(np.float64)
    for fused in (True, False):
        assert_matches_torch(
            torch, lambda t: F.max_pool2d(t, 3, 2, 1),
            lambda t: torch.nn.functional.max_pool2d(t, 3, 2, 1), [x], fused=fused)
    assert_matches_torch(
        torch, lambda t: F.adaptive_max_pool2d(t, (3, 2)),
        lambda t: torch.nn.functional.adaptive_max_pool2d(t, (3, 2)), [x], fused=True)


# ---- modules, unbatched inputs -------------------------------------------------------------------
def copy_params(ours, theirs):
    for name, p in theirs.named_parameters():
        getattr(ours, name).data[...] = p.detach().numpy()


MODULES = [
    (lambda m: m.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), (2, 4, 7, 7)),
    (lambda m: m.Conv2d(3, 4, (2, 3), padding="same", dilation=2, bias=False), (2, 3, 6, 7)),
    (lambda m: m.Conv2d(4, 4, 3, stride=2, padding=1, groups=4), (2, 4, 7, 7)),   # depthwise
    (lambda m: m.ConvTranspose2d(4, 6, 4, stride=2, padding=1, groups=2), (2, 4, 3, 3)),
    (lambda m: m.ConvTranspose2d(3, 2, 3, stride=2, output_padding=1, dilation=2), (1, 3, 4, 3)),
    (lambda m: m.MaxPool2d(3, 2, padding=1, ceil_mode=True), (2, 3, 8, 7)),
    (lambda m: m.AvgPool2d(3, 2, padding=1, count_include_pad=False), (2, 3, 8, 7)),
    (lambda m: m.AdaptiveAvgPool2d((2, None)), (2, 3, 5, 4)),
    (lambda m: m.AdaptiveMaxPool2d(3), (2, 3, 7, 5)),
]


@pytest.mark.parametrize("make,xs", MODULES)
@pytest.mark.parametrize("unbatched", [False, True])
def test_modules_match_torch(torch, make, xs, unbatched):
    ours, theirs = make(nn), make(torch.nn).double()
    copy_params(ours, theirs)
    x = distinct(xs[1:] if unbatched else xs)
    assert_matches_torch(torch, ours, theirs, [x], params=[
        (name, getattr(ours, name), p) for name, p in theirs.named_parameters()])
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]


@pytest.mark.parametrize("cls,args,shape", [(nn.Conv2d, (4, 6, (3, 2)), (6, 2, 3, 2)),
                                            (nn.ConvTranspose2d, (4, 6, (3, 2)), (4, 3, 3, 2))])
def test_conv_init_is_torch_default_and_seeded_by_manual_seed(cls, args, shape):
    at.manual_seed(0)
    m = cls(*args, groups=2)
    assert m.weight.shape == shape and m.bias.shape == (6,)
    bound = 1 / math.sqrt(shape[1] * 6)            # fan_in = weight.shape[1] * kh * kw
    for p in (m.weight.data, m.bias.data):
        assert np.abs(p).max() <= bound and np.abs(p).max() > 0.5 * bound
    at.manual_seed(0)
    np.testing.assert_array_equal(cls(*args, groups=2).weight.data, m.weight.data)


# ---- bad arguments -----------------------------------------------------------------------------
X, W = np.zeros((1, 4, 6, 6)), np.zeros((6, 2, 3, 3))
BAD = [
    (lambda: F.conv2d(X, np.zeros((6, 4, 3, 3)), groups=3), ValueError,
     "conv2d: groups=3 does not divide in_channels=4"),
    (lambda: F.conv2d(X, np.zeros((5, 2, 3, 3)), groups=2), ValueError,
     "conv2d: groups=2 does not divide out_channels=5"),
    (lambda: F.conv2d(X, W), ValueError, r"w expects C=2 \(shape"),
    (lambda: F.conv2d(X, W, groups=2, stride=2, padding="same"), ValueError,
     "padding='same' needs stride=1"),
    (lambda: F.conv2d(X, W, groups=2, padding="full"), ValueError, "'valid' or 'same'"),
    (lambda: F.conv2d(X, W, groups=2, dilation=3), ValueError, r"dilated by \(3, 3\)"),
    (lambda: F.conv2d(X, W, groups=2, dilation=0), ValueError, "conv2d: dilation must be >= 1"),
    (lambda: F.conv2d(np.zeros((4, 6)), W), ValueError, r"conv2d: input must be \(C, H, W\)"),
    (lambda: F.conv_transpose2d(X, np.zeros((4, 2, 3, 3)), stride=2, output_padding=2),
     ValueError, "output_padding .* must be smaller than stride"),
    (lambda: F.conv_transpose2d(X, np.zeros((3, 2, 3, 3))), ValueError, "w expects C=3"),
    (lambda: F.conv_transpose2d(X, np.zeros((4, 2, 3, 3)), np.zeros(2), groups=2), ValueError,
     r"b must have shape \(4,\)"),
    (lambda: F.max_pool2d(X, 3, padding=2), ValueError, "padding .* at most half"),
    (lambda: F.avg_pool2d(X, 7), ValueError, "avg_pool2d: kernel .* is larger"),
    (lambda: F.avg_pool2d(X, 2, divisor_override=0), ValueError, "divisor_override"),
    (lambda: F.adaptive_avg_pool2d(X, (0, 2)), ValueError, "output_size must be >= 1"),
    (lambda: nn.Conv2d(4, 6, 3, groups=4), ValueError,
     "Conv2d: groups=4 does not divide out_channels=6"),
    (lambda: nn.Conv2d(4, 6, 3, padding_mode="reflect"), NotImplementedError, "padding_mode"),
    (lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, output_padding=2), ValueError,
     "output_padding"),
]


@pytest.mark.parametrize("call,error,message", BAD)
def test_bad_arguments_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()
