"""Fused ops: fused == composite twin on every fused row of autotensor/op_table.py, and what is
not table-shaped: running statistics, ties, kernels (numba and numpy), errors, float32 details.

The numerical gradient check of each fused row and of its twin is tests/test_ops_gradcheck.py's
(the one gradcheck over the whole table).
"""

from __future__ import annotations

import math
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

import autotensor as at
from autotensor import fused
from autotensor.fused import kernels
from autotensor.op_table import ROWS, fused_and_twin

TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=2e-4, atol=2e-4)}
DTYPES = [np.float64, np.float32]
FUSED_ROWS = [r for r in ROWS if r.twin is not None]


# ---- fused == twin on the table's rows ---------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("row", FUSED_ROWS, ids=[r.id for r in FUSED_ROWS])
def test_fused_equals_twin(row, dtype):
    (out_f, grads_f), (out_t, grads_t) = fused_and_twin(row, dtype)
    assert out_f._node.fused and not out_t._node.fused
    names = ["out"] + [f"grad{i}" for i in range(len(grads_f))]
    for name, a, b in zip(names, [out_f.data] + grads_f, [out_t.data] + grads_t):
        assert a.dtype == b.dtype == dtype, f"{name} became {a.dtype} / {b.dtype}"
        np.testing.assert_allclose(a, b, **TOL[dtype], err_msg=f"fused vs twin: {name}")
    # The public function under use_fused(False) runs exactly the twin.
    with at.use_fused(False):
        out = row.fn(*row.sample(dtype))
    assert not out._node.fused, "use_fused(False) did not pick the composite twin"
    np.testing.assert_array_equal(out.data, out_t.data)


# ---- conv2d ------------------------------------------------------------------------------------
def conv_reference(x, w, b, stride, pad):
    """Direct definition via a window view, independent of im2col."""
    (sh, sw), (ph, pw) = stride, pad
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = np.lib.stride_tricks.sliding_window_view(xp, w.shape[2:], axis=(2, 3))[:, :, ::sh, ::sw]
    return np.einsum("nchwij,fcij->nfhw", win, w) + b.reshape(1, -1, 1, 1)


def test_conv2d_matches_definition_and_floor_output_size():
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, 3, 10, 9)), rng.standard_normal((4, 3, 3, 2)), \
        rng.standard_normal(4)
    out = fused.conv2d(x, w, b, stride=(3, 2), pad=(1, 2))
    assert out.shape == (2, 4, (10 + 2 - 3) // 3 + 1, (9 + 4 - 2) // 2 + 1)
    np.testing.assert_allclose(out.data, conv_reference(x, w, b, (3, 2), (1, 2)), rtol=1e-12)


def test_conv2d_only_some_inputs_need_grad():
    rng = np.random.default_rng(4)
    x = at.Tensor(rng.standard_normal((2, 3, 6, 6)))                 # data: no gradient
    w = at.Tensor(rng.standard_normal((2, 3, 3, 3)), requires_grad=True)
    fused.conv2d(x, w, rng.standard_normal(2), pad=1).sum().backward()
    with at.use_fused(False):
        w2 = at.Tensor(w.data, requires_grad=True)
        (fused.conv2d(x, w2, None, pad=1).sum()).backward()
    np.testing.assert_allclose(w.grad, w2.grad, rtol=1e-10)
    assert x.grad is None


def test_conv2d_retain_graph_second_backward_is_identical():
    rng = np.random.default_rng(5)
    x = at.Tensor(rng.standard_normal((2, 3, 8, 8)), requires_grad=True)
    w = at.Tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    out = fused.conv2d(x, w, pad=1)
    out.sum().backward(retain_graph=True)
    g1 = (x.grad.copy(), w.grad.copy())
    fused.conv2d(x.detach(), w.detach() * 2, pad=1)      # other convs reuse free pooled memory
    x.grad = w.grad = None
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, g1[0])
    np.testing.assert_array_equal(w.grad, g1[1])


def test_exported_twins_and_fused_functions_take_the_public_arguments():
    rng = np.random.default_rng(20)
    x, w, b = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((4, 3, 3, 2)), \
        rng.standard_normal(4)
    ref = fused.conv2d(x, w, b, stride=2, pad=(1, 0)).data
    for impl in (fused.conv2d_composite, fused.conv.conv2d_fused):
        np.testing.assert_allclose(impl(x, w, b, stride=2, pad=(1, 0)).data, ref, rtol=1e-12)
    ref = fused.max_pool2d(x, 3, 2).data
    for impl in (fused.max_pool2d_composite, fused.pool.max_pool2d_fused):
        np.testing.assert_array_equal(impl(x, 3, 2).data, ref)
    rm, rv = np.zeros(3), np.ones(3)
    out = fused.batch_norm_composite(x, np.ones(3), np.zeros(3), rm, rv, training=True)
    np.testing.assert_allclose(out.data, fused.batch_norm(x, np.ones(3), np.zeros(3)).data,
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("xs,ws,groups", [((2, 6, 5, 5), (6, 1, 3, 3), 6),
                                           ((2, 4, 5, 5), (6, 2, 3, 3), 2)])
def test_grouped_conv2d_does_the_grouped_work_not_a_block_diagonal_conv(xs, ws, groups):
    """The fused node holds w itself as (F, C/G*HH*WW) (its GEMMs view it as (G, F/G, ...))
    and columns of C*HH*WW rows per sample: no (F, C, HH, WW) block-diagonal kernel (groups
    times the GEMM work) anywhere."""
    rng = np.random.default_rng(7)
    x, w, b = (at.Tensor(rng.standard_normal(s), requires_grad=True)
               for s in (xs, ws, (ws[0],)))
    out = fused.conv2d(x, w, b, padding=1, groups=groups)
    node = out._node
    assert isinstance(node, fused.conv.Conv2dFn) and node.parents[1] is w
    cols, wb, bias = node.saved
    F, Cg, HH, WW = ws
    assert cols.shape == (xs[0], xs[1] * HH * WW, xs[2] * xs[3])
    assert wb.shape == (F, Cg * HH * WW) and bias.shape == (F,)
    out.backward(np.ones(out.shape))
    assert w.grad.shape == ws
    x = at.Tensor(rng.standard_normal((2, xs[1], 3, 3)), requires_grad=True)
    wt = at.Tensor(rng.standard_normal((xs[1], 2, 3, 3)), requires_grad=True)
    out = fused.conv_transpose2d(x, wt, groups=groups)
    assert isinstance(out._node, fused.conv_transpose.ConvTranspose2dFn)
    assert out._node.parents[1] is wt and out.shape == (2, 2 * groups, 5, 5)


# ---- max_pool2d --------------------------------------------------------------------------------
@pytest.mark.parametrize("stride", [2, 1])
def test_max_pool2d_ties_go_to_first_maximum(stride):
    x = np.zeros((1, 1, 4, 4))
    for fused_on in (True, False):
        t = at.Tensor(x, requires_grad=True)
        with at.use_fused(fused_on):
            fused.max_pool2d(t, 2, stride).sum().backward()
        expected = np.zeros((4, 4))
        expected[0:4 - 1:stride, 0:4 - 1:stride] = 1       # each window's top-left element
        np.testing.assert_array_equal(t.grad[0, 0], expected)


# ---- batch_norm --------------------------------------------------------------------------------
def bn_arrays(xs, seed):
    rng = np.random.default_rng(seed)
    d = xs[1]
    return [rng.standard_normal(xs) * 2 + 3, rng.standard_normal(d) + 1, rng.standard_normal(d)]


def bn_stats(d, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(d), rng.uniform(0.5, 2, d)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs", [(8, 5), (4, 3, 3, 2), (1, 2, 3, 3), (50, 16, 4, 4)], ids=str)
def test_batch_norm_running_stats_fused_equal_twin(xs, dtype):
    # The table's rows pass no running statistics (they are outputs, not differentiable):
    # here both paths update their own copy once, in place, and must agree.
    x, gamma, beta = [a.astype(dtype) for a in bn_arrays(xs, 9)]
    stats = {}
    for fused_on in (True, False):
        stats[fused_on] = bn_stats(xs[1], 8)
        with at.use_fused(fused_on):
            fused.batch_norm(x, gamma, beta, *stats[fused_on], training=True)
    assert not np.array_equal(stats[True][0], bn_stats(xs[1], 8)[0]), "running mean not updated"
    for a, b in zip(stats[True], stats[False]):
        assert a.dtype == b.dtype == np.float64
        np.testing.assert_allclose(a, b, **TOL[dtype])


@pytest.mark.parametrize("fused_on", [True, False])
@pytest.mark.parametrize("xs", [(10, 4), (6, 4, 3, 5)])
def test_batch_norm_running_stats_and_eval_mode(xs, fused_on):
    x, gamma, beta = bn_arrays(xs, 12)
    axes = (0,) if len(xs) == 2 else (0, 2, 3)
    rm, rv = bn_stats(xs[1], 13)
    rm0, rv0 = rm.copy(), rv.copy()
    with at.use_fused(fused_on):
        out = fused.batch_norm(x, gamma, beta, rm, rv, training=True, momentum=0.8)
        np.testing.assert_allclose(rm, 0.8 * rm0 + 0.2 * x.mean(axis=axes), rtol=1e-12)
        np.testing.assert_allclose(rv, 0.8 * rv0 + 0.2 * x.var(axis=axes), rtol=1e-12)
        shape = (1, -1) + (1,) * (len(xs) - 2)
        xhat = (x - x.mean(axis=axes).reshape(shape)) / np.sqrt(
            x.var(axis=axes).reshape(shape) + 1e-5)
        np.testing.assert_allclose(out.data, xhat * gamma.reshape(shape) + beta.reshape(shape),
                                   rtol=1e-10, atol=1e-12)
        before = (rm.copy(), rv.copy())
        out = fused.batch_norm(x, gamma, beta, rm, rv, training=False)
        np.testing.assert_array_equal(rm, before[0])            # eval mode leaves them alone
        expected = (x - rm.reshape(shape)) / np.sqrt(rv.reshape(shape) + 1e-5)
        np.testing.assert_allclose(out.data, expected * gamma.reshape(shape)
                                   + beta.reshape(shape), rtol=1e-10, atol=1e-12)


def test_batch_norm_float32_with_float64_running_stats_stays_float32():
    x, gamma, beta = [a.astype(np.float32) for a in bn_arrays((6, 3, 2, 2), 14)]
    rm, rv = np.zeros(3), np.ones(3)
    for training in (True, False):
        out = fused.batch_norm(at.Tensor(x, requires_grad=True), gamma, beta, rm, rv, training)
        assert out.dtype == np.float32
    assert rm.dtype == np.float64 and np.all(rm != 0)


# ---- kernels: numba and numpy, contiguous and not -----------------------------------------------
KERNEL_SETS = {"numpy": kernels.NUMPY_KERNELS, "numba": kernels.NUMBA_KERNELS}


def test_numba_kernels_present_and_env_switch_selects_numpy():
    assert kernels.NUMBA_KERNELS is not None, "numba is a dependency: its kernels must load"
    code = "from autotensor.fused import kernels; print(kernels.BACKEND)"
    for env, expected in (("0", "numpy"), ("1", "numba")):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**os.environ, "AUTOTENSOR_NUMBA": env}, check=True)
        assert out.stdout.strip() == expected


@pytest.mark.parametrize("kset", ["numpy", "numba"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_erf_kernels_equal_math_erf(kset, dtype):
    x = np.concatenate([np.linspace(-7, 7, 201), [0.0, -0.0, 1e-300, 30.0, -30.0, np.inf,
                                                  -np.inf, np.nan]]).astype(dtype)
    out = KERNEL_SETS[kset]["erf"](x)
    assert out.dtype == dtype and out.shape == x.shape
    want = np.array([math.erf(v) for v in x.astype(np.float64)])
    np.testing.assert_allclose(out, want, rtol=1e-15 if dtype == np.float64 else 1e-6,
                               atol=0)


def test_numba_cache_falls_back_to_a_writable_dir(monkeypatch):
    from autotensor.fused import kernels_numba
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setattr(kernels_numba.os, "access", lambda path, mode: False)
    kernels_numba._prepare_environment()             # the package dir is "read-only" now
    cache = os.environ["NUMBA_CACHE_DIR"]
    assert os.path.basename(cache).startswith("autotensor-numba-")
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/somewhere/else")
    kernels_numba._prepare_environment()             # a user's choice is kept
    assert os.environ["NUMBA_CACHE_DIR"] == "/somewhere/else"


def test_thread_setup_leaves_no_environment_behind():
    code = ("import os; import autotensor.fused, numba; "
            "print('OMP_WAIT_POLICY' in os.environ, numba.threading_layer())")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY",
                                                             "NUMBA_THREADING_LAYER")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout.split()
    assert out[0] == "False" and out[1] in ("omp", "workqueue", "tbb")


def noncontiguous(a):
    """The same values as `a` in a strided, non-contiguous array."""
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


KERNEL_GEOMETRY = [((2, 3, 7, 8), (3, 3), (1, 1), (1, 1)), ((1, 2, 9, 6), (4, 3), (3, 2), (2, 0)),
                   ((2, 2, 5, 5), (5, 5), (1, 1), (0, 0)), ((3, 1, 8, 7), (2, 4), (2, 3), (3, 2)),
                   ((8, 8, 24, 23), (3, 3), (1, 1), (1, 1))]    # large enough for many threads


@pytest.mark.parametrize("backend", KERNEL_SETS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geom", KERNEL_GEOMETRY, ids=str)
def test_im2col_col2im_kernels(geom, dtype, backend):
    ks = KERNEL_SETS[backend]
    xs, (HH, WW), stride, pad = geom
    N, C, H, W = xs
    Ho, Wo = (H + 2 * pad[0] - HH) // stride[0] + 1, (W + 2 * pad[1] - WW) // stride[1] + 1
    rng = np.random.default_rng(15)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal((1, C, HH, WW)).astype(dtype)
    for xin in (x, noncontiguous(x)):
        cols = ks["im2col"](xin, HH, WW, stride, pad, Ho, Wo,
                            np.full((N, C * HH * WW, Ho * Wo), np.nan, dtype))
        assert cols.dtype == dtype
        # Columns times the flattened kernel is the convolution by its definition.
        conv = (w.reshape(1, -1) @ cols).reshape(N, 1, Ho, Wo)
        np.testing.assert_allclose(conv, conv_reference(x, w, np.zeros(1), stride, pad),
                                   **TOL[dtype])
    # col2im is the adjoint of im2col: <im2col(x), c> == <x, col2im(c)>.
    c = rng.standard_normal((N, C * HH * WW, Ho * Wo)).astype(dtype)
    for cin in (c, noncontiguous(c)):
        dx = ks["col2im"](cin, C, H, W, HH, WW, stride, pad, Ho, Wo)
        assert dx.shape == xs and dx.dtype == dtype
        np.testing.assert_allclose(np.vdot(cols, c), np.vdot(x, dx), rtol=1e-4 if
                                   dtype == np.float32 else 1e-12)
    # out=: written into a slice of a larger array (how conv_algorithms' slices use it).
    big = np.full((N + 1,) + xs[1:], np.nan, dtype)
    assert ks["col2im"](c, C, H, W, HH, WW, stride, pad, Ho, Wo, out=big[1:]) is not None
    np.testing.assert_array_equal(big[1:], ks["col2im"](c, C, H, W, HH, WW, stride, pad, Ho, Wo))
    assert np.isnan(big[0]).all()


@pytest.mark.parametrize("backend", KERNEL_SETS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geom", [((2, 3, 8, 8), 2, 2, 2, 2), ((2, 2, 9, 7), 3, 2, 2, 1),
                                  ((1, 2, 10, 9), 2, 3, 3, 2), ((4, 8, 64, 64), 3, 3, 2, 2)],
                         ids=str)
def test_maxpool_kernels(geom, dtype, backend):
    ks = KERNEL_SETS[backend]
    xs, kh, kw, sh, sw = geom
    rng = np.random.default_rng(16)
    x = rng.standard_normal(xs).astype(dtype)
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    flat = win.reshape(win.shape[:4] + (-1,))
    g = rng.standard_normal(flat.shape[:4]).astype(dtype)
    ref_dx = np.zeros_like(x)
    n, c, ho, wo = np.indices(flat.shape[:4])
    k = flat.argmax(-1)
    np.add.at(ref_dx, (n, c, ho * sh + k // kw, wo * sw + k % kw), g)
    for xin, gin in ((x, g), (noncontiguous(x), noncontiguous(g))):
        out, arg = ks["maxpool_forward"](xin, kh, kw, sh, sw)
        np.testing.assert_array_equal(out, flat.max(-1))
        np.testing.assert_array_equal(arg, k)
        dx = ks["maxpool_backward"](gin, noncontiguous(arg), *xs[2:], kh, kw, sh, sw)
        assert dx.dtype == dtype
        np.testing.assert_allclose(dx, ref_dx, **TOL[dtype])


@pytest.mark.parametrize("backend", KERNEL_SETS)
def test_maxpool_kernel_nan_is_the_maximum(backend):
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = np.nan
    out, arg = KERNEL_SETS[backend]["maxpool_forward"](x, 2, 2, 2, 2)
    assert np.isnan(out[0, 0, 0, 0]) and arg[0, 0, 0, 0] == 1
    assert out[0, 0, 1, 1] == 15


# (x shape, float64 mean/var given for eval mode?)
BN_KERNEL_ROWS = [((7, 5), False), ((600, 260), False), ((4, 3, 2, 6), False), ((5, 4), True),
                  ((60, 40, 8, 8), False), ((3, 2, 4, 4), True)]


@pytest.mark.parametrize("backend", KERNEL_SETS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("row", BN_KERNEL_ROWS, ids=str)
def test_batch_norm_kernels(row, dtype, backend):
    """Both code paths of each set, (N, D) rows and (N, C, H, W) planes, small and large
    enough to run on several threads (kernels_numba.PARALLEL_MIN), against the formulas."""
    ks = KERNEL_SETS[backend]
    xs, eval_mode = row
    rng = np.random.default_rng(17)
    x = (rng.standard_normal(xs) * 3 + 2).astype(dtype)
    g = rng.standard_normal(xs).astype(dtype)
    gamma, beta = rng.standard_normal(xs[1]), rng.standard_normal(xs[1])
    axes = (0,) if len(xs) == 2 else (0, 2, 3)
    shape = (1, -1) + (1,) * (len(xs) - 2)
    x64 = x.astype(np.float64)
    if eval_mode:
        stats = (rng.standard_normal(xs[1]), rng.uniform(0.5, 2, xs[1]))
        mean, var = stats
    else:
        stats = ()
        mean, var = x64.mean(axis=axes), x64.var(axis=axes)
    istd = 1 / np.sqrt(var + 1e-5)
    xhat = (x64 - mean.reshape(shape)) * istd.reshape(shape)
    m = x.size // xs[1]
    for xin, gin in ((x, g), (noncontiguous(x), noncontiguous(g))):
        out, mu, v = ks["bn_forward"](xin, gamma, beta, 1e-5, *stats)
        assert out.dtype == dtype and out.shape == xs
        np.testing.assert_allclose(mu, mean, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(v, var, rtol=1e-12)
        np.testing.assert_allclose(out, xhat * gamma.reshape(shape) + beta.reshape(shape),
                                   **TOL[dtype])
        dx, dgamma, dbeta = ks["bn_backward"](gin, xin, gamma, mu, v, 1e-5, not eval_mode)
        np.testing.assert_allclose(dbeta, g.sum(axis=axes, dtype=np.float64), rtol=1e-9)
        np.testing.assert_allclose(dgamma, (g * xhat).sum(axis=axes), rtol=1e-9, atol=1e-9)
        k = (gamma * istd).reshape(shape)
        expected = k * g if eval_mode else k * (g - dbeta.reshape(shape) / m
                                                - xhat * dgamma.reshape(shape) / m)
        assert dx.dtype == dtype and dx.shape == xs
        np.testing.assert_allclose(dx, expected, **TOL[dtype])
        assert ks["bn_backward"](gin, xin, gamma, mu, v, 1e-5, True, need_dx=False)[0] is None


def test_pooled_buffers_are_reused_only_when_free():
    a = kernels.pooled_empty((300, 301), np.float64)
    b = kernels.pooled_empty((300, 301), np.float64)
    assert not np.shares_memory(a, b)              # `a` is alive: never handed out twice
    base = a.base
    del a
    c = kernels.pooled_empty((300, 301), np.float64)
    assert c.base is base                          # `a` died: its memory comes back
    assert not np.shares_memory(b, c)


# ---- bad input ---------------------------------------------------------------------------------
X, Wt = np.zeros((2, 3, 8, 8)), np.zeros((4, 3, 3, 3))
BAD = [
    (lambda: fused.conv2d(X, np.zeros((4, 2, 3, 3))), r"C=3 channels.*expects C=2"),
    (lambda: fused.conv2d(X[0, 0], Wt), r"input must be \(C, H, W\) or \(N, C, H, W\)"),
    (lambda: fused.conv2d(X, Wt[0]), r"w \(F, C, HH, WW\)"),
    (lambda: fused.conv2d(X, np.zeros((4, 3, 9, 3))), "larger than the padded input"),
    (lambda: fused.conv2d(X, np.zeros((4, 3, 11, 3)), pad=1), r"padded input \(10, 10\)"),
    (lambda: fused.conv2d(X, Wt, stride=0), "stride must be >= 1"),
    (lambda: fused.conv2d(X, Wt, stride=(1, -2)), "stride must be >= 1"),
    (lambda: fused.conv2d(X, Wt, pad=-1), "pad must be >= 0"),
    (lambda: fused.conv2d(X, Wt, pad=1.5), "pad must be an int or a pair"),
    (lambda: fused.conv2d(X, Wt, stride=(1, 2, 3)), "stride must be an int or a pair"),
    (lambda: fused.conv2d(X, Wt, stride=True), "stride must be an int or a pair"),
    (lambda: fused.conv2d(X, Wt, np.zeros(3)), r"b must have shape \(4,\)"),
    (lambda: fused.max_pool2d(X, 9), "larger than the input"),
    (lambda: fused.max_pool2d(X[0, 0]), r"input must be \(C, H, W\) or \(N, C, H, W\)"),
    (lambda: fused.max_pool2d(X, 0), "kernel_size must be >= 1"),
    (lambda: fused.max_pool2d(X, 2, stride=0), "stride must be >= 1"),
    (lambda: fused.batch_norm(np.zeros((4, 3, 2)), np.ones(3), np.zeros(3)), "x must be"),
    (lambda: fused.batch_norm(np.zeros((4, 3)), np.ones(4), np.zeros(3)),
     r"gamma must have shape \(3,\)"),
    (lambda: fused.batch_norm(X, np.ones(3), np.zeros(4)), r"beta must have shape \(3,\)"),
    (lambda: fused.batch_norm(X, np.ones(3), np.zeros(3), np.zeros(4), np.ones(3)),
     "running_mean must be an ndarray of shape"),
    (lambda: fused.batch_norm(X, np.ones(3), np.zeros(3), training=False), "eval mode"),
    (lambda: fused.batch_norm(np.zeros((1, 3)), np.ones(3), np.zeros(3)),
     "more than one value per feature"),
    (lambda: fused.batch_norm(X, np.ones(3), np.zeros(3), momentum=1.5), "momentum"),
]


@pytest.mark.parametrize("fused_on", [True, False])
@pytest.mark.parametrize("call,message", BAD, ids=[m for _, m in BAD])
def test_bad_input_raises_clear_value_error(call, message, fused_on):
    with at.use_fused(fused_on), pytest.raises(ValueError, match=message):
        call()


# ---- docs --------------------------------------------------------------------------------------
def test_fused_ops_doc_examples_run():
    """docs/fused_ops.md's python blocks form one program; run it top to bottom."""
    page = pathlib.Path(__file__).resolve().parents[1] / "docs" / "fused_ops.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    runnable = [b for b in blocks if not b.lstrip().startswith("def conv2d(")]   # excerpt
    assert len(runnable) >= 3
    namespace = {}
    for block in runnable:
        exec(compile(block, "fused_ops.md", "exec"), namespace)


@pytest.mark.parametrize("window", [(2, 2, 2, 2), (3, 3, 2, 2), (2, 3, 1, 2)])
def test_maxpool_kernels_agree_on_random_ties_and_nans(window):
    # The 2x2/stride-2 numba kernel is unrolled separately from the general one: both must
    # pick the same element as the numpy twin when ties and NaNs are everywhere.
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.integers(0, 3, (2, 3, 7, 8)).astype(np.float64)
        x[rng.random(x.shape) < 0.1] = np.nan
        (out0, arg0), *others = [kernel_set["maxpool_forward"](x, *window)
                                 for kernel_set in KERNEL_SETS.values()]
        for out, arg in others:
            np.testing.assert_array_equal(out, out0)
            np.testing.assert_array_equal(arg, arg0)


@pytest.mark.parametrize("hw", [(6, 8), (7, 9), (5, 4)])      # odd sizes: rows/cols in no window
@pytest.mark.parametrize("window", [(2, 2, 2, 2), (3, 3, 2, 2), (2, 3, 1, 2)])
def test_maxpool_backward_kernels_agree(window, hw):
    x = np.random.default_rng(1).integers(0, 3, (2, 3) + hw).astype(np.float64)
    results = []
    for kernel_set in KERNEL_SETS.values():
        out, arg = kernel_set["maxpool_forward"](x, *window)
        g = np.random.default_rng(2).standard_normal(out.shape)
        results.append(kernel_set["maxpool_backward"](g, arg, *hw, *window))
    for dx in results[1:]:     # overlapping windows may sum in another order: not bit-equal
        np.testing.assert_allclose(dx, results[0], rtol=1e-12, atol=1e-15)


def test_batch_norm_eval_gradient_unchanged_by_a_later_training_update():
    """The eval-mode node saves copies of the running statistics, not the live buffers."""
    rng = np.random.default_rng(0)
    x = at.Tensor(rng.standard_normal((6, 3)), requires_grad=True)
    gamma, beta = at.Tensor(np.ones(3), requires_grad=True), at.Tensor(np.zeros(3))
    mean, var = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    expected = np.ones((6, 3)) / np.sqrt(var + 1e-5)
    out = at.fused.batch_norm(x, gamma, beta, mean, var, training=False)
    at.fused.batch_norm(at.Tensor(rng.standard_normal((6, 3)) * 5), gamma, beta, mean, var)
    out.sum().backward()
    np.testing.assert_allclose(x.grad, expected, rtol=1e-12)
