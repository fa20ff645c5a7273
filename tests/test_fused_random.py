"""Fused ops vs composite twins vs numerical gradients on randomly drawn geometries, end to end
through each kernel set.

tests/test_fused.py holds hand-picked rows and tests the kernels directly. Here a seeded
generator draws more geometries (strides 1-3, pads 0-3, non-square kernels and windows, odd
sizes, N = 1 often), and every one runs through the public fused ops twice: with the numba
kernels, and with their numpy twins (the set `AUTOTENSOR_NUMBA=0` selects), swapped in where
the fused ops look them up. Each draw is checked fused == twin (forward, every gradient,
running statistics) in float64 and float32, and fused == numerical gradients in float64.
"""

from __future__ import annotations

import collections
import inspect

import numpy as np
import pytest

import autotensor as at
from autotensor import fused
from autotensor.fused import kernels

TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=2e-4, atol=2e-4)}
DTYPES = [np.float64, np.float32]
KERNEL_SETS = {"numba": kernels.NUMBA_KERNELS, "numpy": kernels.NUMPY_KERNELS}


@pytest.fixture(params=sorted(KERNEL_SETS))
def kernel_calls(request, monkeypatch):
    """Route the fused ops through one kernel set; counts the calls to prove it was used."""
    calls = collections.Counter()
    for name, fn in KERNEL_SETS[request.param].items():
        def counted(*args, _fn=fn, _name=name, **kwargs):
            calls[_name] += 1
            return _fn(*args, **kwargs)
        monkeypatch.setattr(kernels, name, counted)
    return calls


def test_every_numba_kernel_has_a_numpy_twin_with_its_signature():
    assert KERNEL_SETS["numba"] is not None, "numba is a dependency: its kernels must load"
    assert set(KERNEL_SETS["numba"]) == set(KERNEL_SETS["numpy"])
    for name, fn in KERNEL_SETS["numba"].items():
        assert inspect.signature(fn) == inspect.signature(KERNEL_SETS["numpy"][name]), name


# ---- random geometries (seeded: the same draws on every run) -----------------------------------
def conv_geometries(count, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(count):
        n = int(rng.choice([1, 1, 2, 3]))
        c, f = (int(v) for v in rng.integers(1, 4, 2))
        kh, kw = (int(v) for v in rng.integers(1, 6, 2))
        stride = tuple(int(v) for v in rng.integers(1, 4, 2))
        pad = tuple(int(v) for v in rng.integers(0, 4, 2))
        # any input at least 1 wide whose padded size fits the kernel, up to a few windows more
        h = int(rng.integers(max(1, kh - 2 * pad[0]), kh - 2 * pad[0] + 8))
        w = int(rng.integers(max(1, kw - 2 * pad[1]), kw - 2 * pad[1] + 8))
        rows.append(((n, c, h, w), (f, c, kh, kw), stride, pad, bool(rng.random() < 0.7)))
    return rows


def pool_geometries(count, seed=1):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(count):
        n, c = int(rng.choice([1, 1, 2, 3])), int(rng.integers(1, 4))
        kernel = tuple(int(v) for v in rng.integers(1, 5, 2))
        stride = tuple(int(v) for v in rng.integers(1, 4, 2))
        if rng.random() < 0.3:
            stride = kernel                            # the tiling (reshape) fast path
        h, w = (int(k + rng.integers(0, 7)) for k in kernel)
        rows.append(((n, c, h, w), kernel, stride))
    return rows


def bn_geometries(count, seed=2):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(count):
        if rng.random() < 0.5:
            shape = (int(rng.integers(2, 9)), int(rng.integers(1, 7)))
        else:
            shape = (int(rng.choice([1, 2, 3])),) + tuple(int(v) for v in rng.integers(1, 5, 3))
            shape = shape if shape[0] * shape[2] * shape[3] > 1 else shape[:2] + (2, shape[3])
        rows.append((shape, bool(rng.random() < 0.7)))
    return rows


CONV = conv_geometries(14)
POOL = pool_geometries(12)
BN = bn_geometries(10)


def test_the_draws_cover_what_the_issue_lists():
    strides = {s for row in CONV for s in row[2]}
    pads = {p for row in CONV for p in row[3]}
    assert {1, 2, 3} <= strides and {0, 1, 2, 3} <= pads
    assert any(ws[2] != ws[3] for _, ws, *_ in CONV), "a non-square kernel"
    assert any(xs[0] == 1 for xs, *_ in CONV) and any(xs[0] == 1 for xs, *_ in POOL)
    assert any(k != s for _, k, s in POOL) and any(k == s for _, k, s in POOL)
    assert any(k[0] != k[1] for _, k, _ in POOL)
    assert {len(s) for s, _ in BN} == {2, 4} and {t for _, t in BN} == {True, False}


# ---- helpers -----------------------------------------------------------------------------------
def fused_and_twin(make_fn, arrays, dtype):
    """[out, grads...] under the fused op and under the twin, for one random upstream grad.

    `make_fn()` gives the function of Tensors to run, afresh for each path (batch norm's
    running statistics must not be shared between the two)."""
    results = []
    for fused_on in (True, False):
        ts = [at.Tensor(a.astype(dtype), requires_grad=True) for a in arrays]
        fn = make_fn()
        with at.use_fused(fused_on):
            out = fn(*ts)
        assert getattr(out._node, "fused", False) == fused_on
        out.backward(np.random.default_rng(3).standard_normal(out.shape).astype(dtype))
        assert out.dtype == dtype and all(t.grad.dtype == dtype for t in ts)
        results.append([out.data] + [t.grad for t in ts])
    return results


def assert_agree(results, dtype):
    (f, t) = results
    for i, (a, b) in enumerate(zip(f, t)):
        np.testing.assert_allclose(a, b, **TOL[dtype], err_msg=f"fused vs twin, item {i}")


def gradcheck_fused(fn, arrays):
    ts = [at.Tensor(a.astype(np.float64), requires_grad=True) for a in arrays]
    with at.use_fused(True):
        assert at.gradcheck(fn, ts, eps=1e-6, atol=1e-6, rtol=1e-5)


# ---- conv2d ------------------------------------------------------------------------------------
def conv_inputs(row, seed):
    xs, ws, _, _, bias = row
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(xs), rng.standard_normal(ws)]
    return arrays + [rng.standard_normal(ws[0])] if bias else arrays


@pytest.mark.parametrize("row", CONV, ids=lambda r: f"x{r[0]}w{r[1]}s{r[2]}p{r[3]}")
def test_conv2d_random_geometry(row, kernel_calls):
    xs, ws, stride, pad, _ = row
    fn = lambda *t: fused.conv2d(*t, stride=stride, pad=pad)      # noqa: E731
    for dtype in DTYPES:
        results = fused_and_twin(lambda: fn, conv_inputs(row, 4), dtype)
        assert results[0][0].shape == (xs[0], ws[0], (xs[2] + 2 * pad[0] - ws[2]) // stride[0]
                                       + 1, (xs[3] + 2 * pad[1] - ws[3]) // stride[1] + 1)
        assert_agree(results, dtype)
    gradcheck_fused(fn, conv_inputs(row, 5))
    assert kernel_calls["im2col"] and kernel_calls["col2im"]


@pytest.fixture
def batch_split(monkeypatch):
    """Every conv of two or more samples cut into 3 slices (at most N) run on worker threads,
    whatever its size; returns the slice counts each call of the runner got."""
    from autotensor import blas_threads
    from autotensor.fused import conv_algorithms
    monkeypatch.setattr(conv_algorithms, "SPLIT_MIN_MACS", 0)
    monkeypatch.setattr(blas_threads, "available", lambda: True)
    monkeypatch.setattr(blas_threads, "count", lambda: 3)
    counts, run = [], conv_algorithms.run

    def counted(part, slices):
        counts.append(len(slices))
        return run(part, slices)
    monkeypatch.setattr(conv_algorithms, "run", counted)
    return counts


SPLIT_CONV = [row for row in CONV if row[0][0] >= 2]


@pytest.mark.parametrize("row", SPLIT_CONV, ids=lambda r: f"x{r[0]}w{r[1]}s{r[2]}p{r[3]}")
def test_conv2d_batch_split_equals_twin_and_one_piece(row, kernel_calls, batch_split):
    """The threaded path (conv_algorithms) three ways: == twin, == numerical, == unsplit."""
    xs, ws, stride, pad, _ = row
    fn = lambda *t: fused.conv2d(*t, stride=stride, pad=pad)      # noqa: E731
    for dtype in DTYPES:
        batch_split.clear()
        results = fused_and_twin(lambda: fn, conv_inputs(row, 8), dtype)
        assert_agree(results, dtype)
        assert batch_split == [min(3, xs[0])] * 2, "forward and backward were not split"
        with pytest.MonkeyPatch.context() as mp:           # the same conv in one piece
            from autotensor.fused import conv_algorithms
            mp.setattr(conv_algorithms, "SPLIT_MIN_MACS", float("inf"))
            whole = fused_and_twin(lambda: fn, conv_inputs(row, 8), dtype)[0]
        for a, b in zip(results[0], whole):
            np.testing.assert_allclose(a, b, **TOL[dtype])
    gradcheck_fused(fn, conv_inputs(row, 9))
    assert kernel_calls["im2col"] and kernel_calls["col2im"]


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_batch_split_works_in_a_forked_child(batch_split, monkeypatch):
    """The parent's worker threads do not exist after a fork: the child makes its own.
    (numpy kernels: numba's OpenMP layer itself refuses to run in a forked child.)"""
    import os
    for name in ("im2col", "col2im"):
        monkeypatch.setattr(kernels, name, KERNEL_SETS["numpy"][name])
    x, w = np.random.default_rng(0).standard_normal((4, 2, 5, 5)), np.ones((3, 2, 3, 3))
    ref = fused.conv2d(x, w, pad=1).data               # the parent's pool now has threads
    pid = os.fork()
    if pid == 0:                                       # child: exit 0 only if it matches
        ok = np.allclose(fused.conv2d(x, w, pad=1).data, ref)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert batch_split == [3]                          # the parent split too


# ---- grouped conv2d: per-group GEMMs, in one piece and split over threads ---------------------
def grouped_geometries(count, seed=3):
    """conv_geometries' rows with G in 2..4 groups of 1-3 input and output channels each."""
    rng = np.random.default_rng(seed)
    rows = []
    for (n, _, h, w), (_, _, kh, kw), stride, pad, bias in conv_geometries(count, seed):
        g, cg, fg = (int(v) for v in rng.integers((2, 1, 1), (5, 4, 4)))
        rows.append(((max(n, 2), g * cg, h, w), (g * fg, cg, kh, kw), stride, pad, bias, g))
    return rows


GROUPED = grouped_geometries(6)


@pytest.mark.parametrize("split", [False, True], ids=["one-piece", "split"])
@pytest.mark.parametrize("row", GROUPED, ids=lambda r: f"x{r[0]}w{r[1]}s{r[2]}p{r[3]}g{r[5]}")
def test_grouped_conv2d_random_geometry(row, split, kernel_calls, monkeypatch):
    """fused == twin (float64, float32) and == numerical, through both kernel sets, with the
    batch in one piece and cut into slices on worker threads (conv_algorithms)."""
    from autotensor import blas_threads
    from autotensor.fused import conv_algorithms
    if split:
        monkeypatch.setattr(conv_algorithms, "SPLIT_MIN_MACS", 0)
        monkeypatch.setattr(blas_threads, "available", lambda: True)
        monkeypatch.setattr(blas_threads, "count", lambda: 2)
    *geometry, groups = row
    xs, ws, stride, pad, _ = geometry
    fn = lambda *t: fused.conv2d(*t, stride=stride, padding=pad, groups=groups)   # noqa: E731
    for dtype in DTYPES:
        assert_agree(fused_and_twin(lambda: fn, conv_inputs(geometry, 10), dtype), dtype)
    gradcheck_fused(fn, conv_inputs(geometry, 11))
    assert kernel_calls["im2col"] and kernel_calls["col2im"]


# ---- max_pool2d --------------------------------------------------------------------------------
def pool_input(xs, seed):
    """Distinct values (no ties), so the numerical gradient is well defined."""
    rng = np.random.default_rng(seed)
    return rng.permutation(int(np.prod(xs))).reshape(xs) / 7.0


@pytest.mark.parametrize("row", POOL, ids=lambda r: f"x{r[0]}k{r[1]}s{r[2]}")
def test_max_pool2d_random_geometry(row, kernel_calls):
    xs, kernel, stride = row
    fn = lambda x: fused.max_pool2d(x, kernel, stride)             # noqa: E731
    for dtype in DTYPES:
        assert_agree(fused_and_twin(lambda: fn, [pool_input(xs, 6)], dtype), dtype)
    gradcheck_fused(fn, [pool_input(xs, 7)])
    assert kernel_calls["maxpool_forward"] and kernel_calls["maxpool_backward"]


# ---- batch_norm --------------------------------------------------------------------------------
def bn_inputs(shape, seed):
    rng = np.random.default_rng(seed)
    d = shape[1]
    return [rng.standard_normal(shape) * 2 + 3, rng.standard_normal(d) + 1, rng.standard_normal(d)]


@pytest.mark.parametrize("row", BN, ids=lambda r: f"x{r[0]}train{r[1]}")
def test_batch_norm_random_geometry(row, kernel_calls):
    shape, training = row
    d = shape[1]
    for dtype in DTYPES:
        stats = []

        def make_fn(stats=stats):
            rm, rv = np.linspace(-1, 1, d), np.linspace(0.5, 2, d)     # fresh for each path
            stats.append((rm, rv))
            return lambda x, g, b: fused.batch_norm(x, g, b, rm, rv, training=training,
                                                    momentum=0.8)

        assert_agree(fused_and_twin(make_fn, bn_inputs(shape, 8), dtype), dtype)
        (rm_f, rv_f), (rm_t, rv_t) = stats
        if training:
            assert not np.array_equal(rm_f, np.linspace(-1, 1, d)), "no update in training"
        np.testing.assert_allclose(rm_f, rm_t, **TOL[dtype], err_msg="running mean")
        np.testing.assert_allclose(rv_f, rv_t, **TOL[dtype], err_msg="running var")
    rm, rv = np.linspace(-1, 1, d), np.linspace(0.5, 2, d)
    gradcheck_fused(lambda x, g, b: fused.batch_norm(x, g, b, rm.copy(), rv.copy(),
                                                     training=training), bn_inputs(shape, 9))
    assert kernel_calls["bn_forward"] and kernel_calls["bn_backward"]
