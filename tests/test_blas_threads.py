"""autotensor/blas_threads.py: the engine's matrix products, split across its own threads."""

from __future__ import annotations

import numpy as np
import pytest

import autotensor as at
from autotensor import blas_threads


@pytest.fixture
def split_everything(monkeypatch):
    """Every product cut into 3 blocks (fewer where the axis is shorter), whatever its size;
    returns the slice lists `run` got."""
    monkeypatch.setattr(blas_threads, "SPLIT_MIN_MACS", 0)
    monkeypatch.setattr(blas_threads, "count", lambda: 3)
    calls, run = [], blas_threads.run

    def counted(part, slices):
        calls.append(slices)
        return run(part, slices)
    monkeypatch.setattr(blas_threads, "run", counted)
    return calls


SHAPES = [((7, 5), (5, 4), 3),           # taller than wide: rows split
          ((2, 5), (5, 9), 3),           # wider than tall: columns split
          ((4, 3, 5), (4, 5, 2), 3),     # a stack: its first axis split
          ((1, 6), (6, 1), 1),           # one row, one column: a single block
          ((4, 3, 5), (5, 2), 0),        # a broadcast stack: numpy's matmul as it is
          ((5,), (5, 3), 0), ((2, 5), (5,), 0), ((5,), (5,), 0)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sa, sb, blocks", SHAPES)
def test_matmul_equals_numpy_and_splits_where_the_rule_says(sa, sb, blocks, dtype,
                                                            split_everything):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(sa).astype(dtype), rng.standard_normal(sb).astype(dtype)
    out = blas_threads.matmul(a, b)
    want = np.matmul(a, b)
    assert out.shape == want.shape and out.dtype == want.dtype
    np.testing.assert_allclose(out, want, rtol=1e-5 if dtype == np.float32 else 1e-13)
    if not blas_threads.available():
        return
    assert [len(s) for s in split_everything] == ([blocks] if blocks else [])


def test_matmul_of_other_dtypes_and_lists_is_numpys(split_everything):
    ints = np.arange(12).reshape(3, 4)
    assert np.array_equal(blas_threads.matmul(ints, ints.T), ints @ ints.T)
    mixed = blas_threads.matmul(ints.astype(np.float32), np.ones((4, 2)))
    assert mixed.dtype == np.float64 and np.array_equal(mixed, np.full((3, 2), [[6], [22],
                                                                             [38]]))
    assert split_everything == []          # only same-dtype float products are split
    assert np.array_equal(blas_threads.matmul([[1.0, 2.0]], [[3.0], [4.0]]), [[11.0]])


def test_the_matmul_op_split_or_whole_gives_the_same_values_and_gradients(split_everything):
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((6, 5)), rng.standard_normal((5, 4))]

    def grads():
        x, w = (at.Tensor(a.copy(), requires_grad=True) for a in arrays)
        out = x @ w
        (out * out).sum().backward()
        return out.data, x.grad, w.grad
    split = grads()
    assert split_everything, "the products were not split"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(blas_threads, "SPLIT_MIN_MACS", float("inf"))
        whole = grads()
    for s, w in zip(split, whole):
        np.testing.assert_allclose(s, w, rtol=1e-13)


def test_matmul_shape_errors_are_numpys():
    with pytest.raises(ValueError, match="matmul"):
        blas_threads.matmul(np.ones((2, 3)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="could not be broadcast"):
        blas_threads.matmul(np.ones((2, 2, 3)), np.ones((3, 3, 2)))


@pytest.mark.parametrize("runner", ["blas_threads", "conv_algorithms"])
def test_run_restores_blas_threads_and_raises_what_a_slice_raised(runner):
    """Both runners: blas_threads.run, and the conv batch slices' wrapper around it."""
    from autotensor.fused import conv_algorithms
    run = {"blas_threads": blas_threads.run, "conv_algorithms": conv_algorithms.run}[runner]
    before = blas_threads.count()
    seen = []

    def part(s):
        seen.append((s.start, blas_threads.count()))
        if s.start == 2:
            raise RuntimeError("slice failed")
    with pytest.raises(RuntimeError, match="slice failed"):
        run(part, blas_threads.split(6, 3))
    assert sorted(seen) == [(0, 1), (2, 1), (4, 1)] if blas_threads.available() else seen
    assert blas_threads.count() == before


def test_split_cuts_near_equal_slices():
    assert blas_threads.split(7, 3) == [slice(0, 2), slice(2, 4), slice(4, 7)]
    assert blas_threads.split(2, 3) == [slice(0, 1), slice(1, 2)]
    assert blas_threads.split(0, 3) == [slice(0, 0)]


def test_a_worker_keeps_no_reference_to_its_last_task():
    """A part holds views of pooled buffers (the conv's columns), reused only once nothing
    views them: an idle worker holding its last task kept 30 MiB more alive per conv."""
    import gc
    import weakref

    class Held:
        pass
    held = Held()
    alive = weakref.ref(held)

    def part(s, held=held):
        pass
    blas_threads.run(part, blas_threads.split(4, 2))
    del part, held
    gc.collect()
    assert alive() is None


def test_set_num_threads_sets_blas_and_numba_and_ops_still_agree():
    from autotensor.fused import kernels
    before = at.get_num_threads()
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((3, 2, 6, 6)), rng.standard_normal((4, 2, 3, 3))
    from autotensor.nn import functional as F
    want = F.conv2d(at.Tensor(x), at.Tensor(w), padding=1).data
    try:
        at.set_num_threads(1)
        if blas_threads.available():
            assert at.get_num_threads() == blas_threads.count() == 1
        if kernels.numba is not None:
            assert kernels.numba.get_num_threads() == 1
        got = F.conv2d(at.Tensor(x), at.Tensor(w), padding=1).data
        np.testing.assert_allclose(got, want, rtol=1e-12)
        at.set_num_threads(np.int64(before))          # numpy integers are integers too
        assert at.get_num_threads() == before
    finally:
        at.set_num_threads(before)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", None])
def test_set_num_threads_refuses_what_is_not_a_positive_integer(bad):
    before = at.get_num_threads()
    with pytest.raises(ValueError, match=r"set_num_threads: num must be an integer >= 1, got"):
        at.set_num_threads(bad)
    assert at.get_num_threads() == before
