"""Conv and pool geometry: sizes, output shapes and argument checks, in one place.

Every caller imports from here: the fused ops and their twins, the kernels, the course's
naive layers (`nn.layers`), `nn.Conv2d` / `nn.MaxPool2d` and `nn.models`. A new conv or
pool variant extends this module (its own size rule beside `out_size`, its own check
beside `check_conv2d`), never re-derives a size next to its use.

Shapes: x (N, C, H, W), conv weights w (F, C / groups, HH, WW), transposed-conv weights
(C, F / groups, HH, WW); kernel sizes, strides, pads and dilations are (h, w) pairs once
checked.
"""

from __future__ import annotations

import numpy as np

from ..validate import is_int


def pair(v, name, minimum):
    """An int or an (h, w) pair as a tuple of two ints >= minimum; ValueError naming `name`
    otherwise. The one validator of kernel sizes, strides and pads."""
    hw = (v, v) if is_int(v) else tuple(v) if isinstance(v, (tuple, list)) else None
    if hw is None or len(hw) != 2 or not all(is_int(p) for p in hw):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    if min(hw) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v!r}")
    return int(hw[0]), int(hw[1])


# ---- output sizes ------------------------------------------------------------------------------
def out_size(size, kernel, stride, pad=0, dilation=1, ceil_mode=False):
    """Number of window positions along one axis of length `size` (PyTorch's formula).

    NOTE: floor division by default, as in PyTorch: windows that do not fit are dropped. With
    ceil_mode (pooling) a last partial window is kept if it starts inside the input or the
    left padding, as PyTorch does.
    """
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    return out - 1 if (out - 1) * stride >= size + pad else out


def conv2d_output_shape(x_shape, w_shape, stride, pad, dilation=(1, 1)):
    """(N, F, Ho, Wo) for x (N, C, H, W) and w (F, C, HH, WW); stride, pad, dilation: pairs."""
    (N, _, H, W), (F, _, HH, WW) = x_shape, w_shape
    return (N, F, out_size(H, HH, stride[0], pad[0], dilation[0]),
            out_size(W, WW, stride[1], pad[1], dilation[1]))


def conv_transpose2d_output_shape(x_shape, w_shape, stride, pad, output_padding=(0, 0),
                                  dilation=(1, 1), groups=1):
    """(N, F, Ho, Wo) for x (N, C, H, W) and w (C, F/groups, HH, WW), as PyTorch:
    Ho = (H - 1) * sh - 2 * ph + dh * (HH - 1) + oph + 1."""
    (N, _, H, W), (_, Fg, HH, WW) = x_shape, w_shape
    return (N, Fg * groups,
            *((n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, k, s, p, op, d in zip(
                (H, W), (HH, WW), stride, pad, output_padding, dilation)))


def pool2d_output_shape(x_shape, kernel, stride, pad=(0, 0), dilation=(1, 1), ceil_mode=False):
    """x_shape with its last two axes (H, W) replaced by (Ho, Wo); every argument a pair."""
    *lead, H, W = x_shape
    return (*lead, *(out_size(n, k, s, p, d, ceil_mode)
                     for n, k, s, p, d in zip((H, W), kernel, stride, pad, dilation)))


def avg_pool_divisor(size, kernel, stride, pad, out, count_include_pad):
    """The divisor of each of the `out` windows along one axis, as PyTorch's avg_pool2d: the
    window clipped to the padded input (count_include_pad) or to the input itself."""
    start = np.arange(out) * stride - pad
    end = np.minimum(start + kernel, size + pad)
    if count_include_pad:
        return end - start
    return np.minimum(end, size) - np.maximum(start, 0)


def pool_padding(x_shape, kernel, stride, pad, dilation, ceil_mode):
    """((top, bottom), (left, right)): `pad` on both sides, plus at the end what ceil_mode's
    last partial window needs, so a plain floor-mode pass over the padded input computes
    PyTorch's pooling."""
    out = pool2d_output_shape(x_shape, kernel, stride, pad, dilation, ceil_mode)[-2:]
    need = [(o - 1) * s + d * (k - 1) + 1 for o, k, s, d in zip(out, kernel, stride, dilation)]
    return tuple((p, p + max(0, n - (size + 2 * p)))
                 for p, n, size in zip(pad, need, x_shape[-2:]))


def adaptive_windows(size, out):
    """[(start, end)] of the `out` windows over `size` as PyTorch's adaptive pooling:
    start = floor(i * size / out), end = ceil((i + 1) * size / out)."""
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def arg_dtype(kh, kw):
    """The smallest integer type holding a window offset i*kw + j (less memory traffic)."""
    return np.uint8 if kh * kw <= 256 else np.int32


# ---- argument checks ---------------------------------------------------------------------------
def conv2d_args(stride, pad, op="conv2d"):
    """(stride, pad) as (h, w) pairs: stride >= 1, pad >= 0."""
    return pair(stride, f"{op}: stride", 1), pair(pad, f"{op}: pad", 0)


def pool2d_args(kernel_size, stride, op="max_pool2d"):
    """(kernel, stride) as (h, w) pairs, both >= 1; stride None means stride = kernel_size."""
    kernel = pair(kernel_size, f"{op}: kernel_size", 1)
    return kernel, kernel if stride is None else pair(stride, f"{op}: stride", 1)


def conv_padding(padding, kernel, dilation, stride, op="conv2d", name="padding"):
    """(pad, extra): PyTorch's `padding` (an int, a pair, 'valid' or 'same') as a symmetric
    (h, w) pad plus an (h, w) extra on the bottom/right only. 'same' keeps the input size
    (stride 1 only); an odd total d * (k - 1) puts its extra pixel at the end, as PyTorch."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding != "same":
            raise ValueError(f"{op}: padding must be an int, a pair, 'valid' or 'same', got "
                             f"{padding!r}")
        if stride != (1, 1):
            raise ValueError(f"{op}: padding='same' needs stride=1, got stride={stride}")
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple(t // 2 for t in total), tuple(t % 2 for t in total)
    return pair(padding, f"{op}: {name}", 0), (0, 0)


def check_groups(in_channels, out_channels, groups, op="conv2d"):
    """groups as an int >= 1 dividing both channel counts; ValueError naming them otherwise."""
    if not is_int(groups) or groups < 1:
        raise ValueError(f"{op}: groups must be an integer >= 1, got {groups!r}")
    for name, c in (("in_channels", in_channels), ("out_channels", out_channels)):
        if c % groups:
            raise ValueError(f"{op}: groups={groups} does not divide {name}={c}")
    return int(groups)


def check_conv2d(x_shape, w_shape, b_shape, stride, pad, op="conv2d", dilation=1, groups=1):
    """(stride, pad) as (h, w) pairs after checking every conv argument; b_shape None for no
    bias; w is (F, C / groups, HH, WW). A ValueError starting with `op` and naming the
    argument and the shapes otherwise."""
    stride, pad = conv2d_args(stride, pad, op)
    dilation = pair(dilation, f"{op}: dilation", 1)
    xs, ws = tuple(x_shape), tuple(w_shape)
    if len(xs) != 4 or len(ws) != 4:
        raise ValueError(f"{op}: x must be (N, C, H, W) and w (F, C, HH, WW), got x of shape "
                         f"{xs} and w of shape {ws}")
    groups = check_groups(xs[1], ws[0], groups, op)
    if xs[1] != ws[1] * groups:
        per = "" if groups == 1 else f" (w.shape[1] * groups={groups})"
        raise ValueError(f"{op}: x has C={xs[1]} channels (shape {xs}) but w expects "
                         f"C={ws[1] * groups}{per} (shape {ws})")
    if b_shape is not None and tuple(b_shape) != (ws[0],):
        raise ValueError(f"{op}: b must have shape ({ws[0]},) for w of shape {ws}, got "
                         f"{tuple(b_shape)}")
    hp, wp = xs[2] + 2 * pad[0], xs[3] + 2 * pad[1]
    kh, kw = (d * (k - 1) + 1 for k, d in zip(ws[2:], dilation))
    if kh > hp or kw > wp:
        dil = "" if dilation == (1, 1) else f" (dilated by {dilation}: {(kh, kw)})"
        raise ValueError(f"{op}: kernel {ws[2:]}{dil} is larger than the padded input "
                         f"({hp}, {wp}) (x of shape {xs}, pad {pad})")
    return stride, pad


def check_conv_transpose2d(x_shape, w_shape, b_shape, stride, pad, output_padding, dilation,
                           groups, op="conv_transpose2d"):
    """(stride, pad, output_padding, dilation) as pairs after checking every argument of a
    transposed conv: x (N, C, H, W), w (C, F / groups, HH, WW), b (F,) or None."""
    stride, pad = pair(stride, f"{op}: stride", 1), pair(pad, f"{op}: padding", 0)
    dilation = pair(dilation, f"{op}: dilation", 1)
    output_padding = pair(output_padding, f"{op}: output_padding", 0)
    xs, ws = tuple(x_shape), tuple(w_shape)
    if len(xs) != 4 or len(ws) != 4:
        raise ValueError(f"{op}: x must be (N, C, H, W) and w (C, F / groups, HH, WW), got x "
                         f"of shape {xs} and w of shape {ws}")
    groups = check_groups(ws[0], ws[1] * groups, groups, op)
    if xs[1] != ws[0]:
        raise ValueError(f"{op}: x has C={xs[1]} channels (shape {xs}) but w expects "
                         f"C={ws[0]} (shape {ws})")
    if b_shape is not None and tuple(b_shape) != (ws[1] * groups,):
        raise ValueError(f"{op}: b must have shape ({ws[1] * groups},) for w of shape {ws} and "
                         f"groups={groups}, got {tuple(b_shape)}")
    for op_, s, d in zip(output_padding, stride, dilation):
        if op_ >= s and op_ >= d:
            raise ValueError(f"{op}: output_padding {output_padding} must be smaller than "
                             f"stride {stride} or dilation {dilation}")
    out = conv_transpose2d_output_shape(xs, ws, stride, pad, output_padding, dilation, groups)
    if min(out[2:]) < 1:
        raise ValueError(f"{op}: the output size {out[2:]} is empty (x of shape {xs}, w of "
                         f"shape {ws}, padding {pad})")
    return stride, pad, output_padding, dilation


def check_pool2d(x_shape, kernel_size, stride, op="max_pool2d"):
    """(kernel, stride) as (h, w) pairs after checking every pooling argument; stride None
    means stride = kernel_size. A ValueError starting with `op` naming the argument and the
    shapes otherwise."""
    kernel, stride = pool2d_args(kernel_size, stride, op)
    xs = tuple(x_shape)
    if len(xs) != 4:
        raise ValueError(f"{op}: x must be (N, C, H, W), got shape {xs}")
    if kernel[0] > xs[2] or kernel[1] > xs[3]:
        raise ValueError(f"{op}: kernel {kernel} is larger than the input {xs[2:]} "
                         f"(x of shape {xs})")
    return kernel, stride


def check_pool2d_padded(x_shape, kernel_size, stride, padding, dilation=1, ceil_mode=False,
                        op="max_pool2d"):
    """(kernel, stride, pad, dilation) as pairs for PyTorch's pooling arguments: padding at
    most half the kernel, as PyTorch requires, and at least one output position."""
    kernel, stride = pool2d_args(kernel_size, stride, op)
    pad, dilation = pair(padding, f"{op}: padding", 0), pair(dilation, f"{op}: dilation", 1)
    xs = tuple(x_shape)
    if len(xs) != 4:
        raise ValueError(f"{op}: x must be (C, H, W) or (N, C, H, W), got shape {xs}")
    if pad[0] > kernel[0] // 2 or pad[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding {pad} must be at most half of kernel_size {kernel}")
    out = pool2d_output_shape(xs, kernel, stride, pad, dilation, ceil_mode)
    if min(out[2:]) < 1:
        raise ValueError(f"{op}: kernel {kernel} (dilation {dilation}) is larger than the "
                         f"input {xs[2:]} padded by {pad} (x of shape {xs})")
    return kernel, stride, pad, dilation


def adaptive_output_size(x_shape, output_size, op):
    """PyTorch's adaptive `output_size` (an int, or a pair whose None entries keep the input's
    size) as an (h, w) pair of ints >= 1."""
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        output_size = tuple(n if s is None else s for s, n in zip(output_size, x_shape[-2:]))
    return pair(output_size, f"{op}: output_size", 1)
