"""Creation functions (autotensor/creation.py) and the global generator (autotensor/random.py).

Each behaviour is checked on its own and, with the `torch` fixture, against PyTorch: the same
values, shapes and dtypes, except float32 where torch defaults to it (autotensor's default is
float64, a documented difference).
"""

from __future__ import annotations

import math
import pathlib
import re
from fractions import Fraction

import numpy as np
import pytest

import autotensor as at
from autotensor import creation

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"


def _np_dtype(torch, t):
    """numpy's name for a torch tensor's dtype."""
    return np.dtype(str(t.dtype).removeprefix("torch."))


# ---------------------------------------------------------------- zeros, ones, full, eye

@pytest.mark.parametrize("make, value", [(at.zeros, 0.0), (at.ones, 1.0)])
def test_zeros_ones_take_both_size_spellings(make, value):
    for args in [(2, 3), ((2, 3),), ([2, 3],), (np.int64(2), 3)]:
        t = make(*args)
        assert isinstance(t, at.Tensor) and t.shape == (2, 3) and t.dtype == np.float64
        assert (t.data == value).all() and not t.requires_grad
    assert make().shape == () and make(0).shape == (0,)
    assert make(2, dtype=np.float32).dtype == np.float32
    assert make(2, dtype="int32").dtype == np.int32
    assert make(2, requires_grad=True).requires_grad


@pytest.mark.parametrize("make", [at.zeros, at.ones, at.rand, at.randn])
def test_bad_sizes_name_the_function(make):
    name = make.__name__
    with pytest.raises(ValueError, match=f"{name}: size must be >= 0, got -1"):
        make(2, -1)
    with pytest.raises(TypeError, match=f"{name}: size must be an integer, got float 2.0"):
        make(2.0)
    with pytest.raises(TypeError, match=f"{name}: size must be an integer, got bool"):
        make(True)


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="only floating-point tensors can require grad"):
        at.zeros(2, dtype=np.int64, requires_grad=True)


def test_full_infers_the_dtype_from_the_value():
    assert at.full((2,), 3).dtype == np.int64
    assert at.full((2,), 3.5).dtype == np.float64
    assert at.full((2,), True).dtype == np.bool_
    assert at.full((2,), 1 + 2j).dtype == np.complex128
    assert at.full((2,), 3, dtype=np.float32).dtype == np.float32
    assert at.full([2, 2], at.tensor(4.0)).data.tolist() == [[4.0, 4.0], [4.0, 4.0]]
    np.testing.assert_array_equal(at.full((2, 3), 7.0).data, np.full((2, 3), 7.0))
    assert at.full((), 2.0).shape == ()


def test_full_refuses_what_torch_refuses():
    with pytest.raises(TypeError, match=r"full: size must be a tuple of ints, e.g. \(3,\)"):
        at.full(3, 1.0)
    with pytest.raises(ValueError, match=r"fill_value must be a number, got an array of shape"):
        at.full((2,), np.ones(2))


def test_full_matches_torch(torch):
    for value in [3, 2.5, False, -7]:
        ours, theirs = at.full((2, 3), value), torch.full((2, 3), value)
        np.testing.assert_array_equal(ours.data, theirs.numpy())
        if not isinstance(value, float):                  # torch's float default is float32
            assert ours.dtype == _np_dtype(torch, theirs)


def test_eye():
    np.testing.assert_array_equal(at.eye(3).data, np.eye(3))
    np.testing.assert_array_equal(at.eye(2, 4).data, np.eye(2, 4))
    assert at.eye(0).shape == (0, 0) and at.eye(3, dtype=np.int64).dtype == np.int64
    with pytest.raises(ValueError, match="eye: n must be >= 0, got -1"):
        at.eye(-1)
    with pytest.raises(TypeError, match="eye: m must be an integer"):
        at.eye(2, 2.5)


def test_eye_matches_torch(torch):
    for args in [(3,), (2, 5), (4, 1), (0,)]:
        np.testing.assert_array_equal(at.eye(*args).data, torch.eye(*args).numpy())


# ---------------------------------------------------------------- arange, linspace

@pytest.mark.parametrize("args, expected", [
    ((5,), [0, 1, 2, 3, 4]),
    ((1, 4), [1, 2, 3]),
    ((10, 0, -3), [10, 7, 4, 1]),
    ((0, 0), []),
    ((2, 2.5, 0.5), [2.0]),
])
def test_arange_excludes_the_end(args, expected):
    assert at.arange(*args).data.tolist() == expected


def test_arange_dtype_follows_torchs_rule():
    assert at.arange(5).dtype == np.int64                      # all integers
    assert at.arange(np.int32(1), 5).dtype == np.int64
    assert at.arange(5.0).dtype == np.float64                  # any float: the default float
    assert at.arange(0, 5, 0.5).dtype == np.float64
    assert at.arange(5, dtype=np.float32).dtype == np.float32
    assert at.arange(end=3).data.tolist() == [0, 1, 2]
    t = at.arange(3.0, requires_grad=True)
    assert t.requires_grad and t.is_leaf


def test_arange_float_steps():
    """ceil((end - start) / step) values start + i * step, within two roundings."""
    for args in [(0, 1, 0.1), (0, 1, 0.3), (-2.5, 3.75, 0.25), (1, 0, -0.1), (1e6, 1e6 + 1e4, 0.1)]:
        start, end, step = args
        t = at.arange(*args).data
        assert len(t) == math.ceil((end - start) / step) == len(np.arange(*args))
        exact = [float(Fraction(start) + i * Fraction(step)) for i in range(len(t))]
        np.testing.assert_allclose(t, exact, rtol=0, atol=2**-52 * max(abs(start), abs(end)))


def test_arange_errors():
    with pytest.raises(ValueError, match="arange: step must be nonzero"):
        at.arange(0, 5, 0)
    with pytest.raises(ValueError, match="end=0 lies on the wrong side of start=5 for step=1"):
        at.arange(5, 0)
    with pytest.raises(ValueError, match="lies on the wrong side"):
        at.arange(0, 5, -1)
    with pytest.raises(ValueError, match="arange: end must be a finite real number, got inf"):
        at.arange(float("inf"))
    with pytest.raises(ValueError, match="arange: step must be a finite real number"):
        at.arange(0, 5, "1")


def test_arange_matches_torch(torch):
    for args in [(7,), (2, 9), (9, 2, -2), (0, 1, 0.1), (-1.5, 2.0, 0.35), (5.0,), (0, 0),
                 (1e6, 1e6 + 1e4, 0.1), (3.0, -7.25, -0.125)]:
        ours = at.arange(*args)
        if torch.arange(*args).dtype == torch.int64:
            theirs = torch.arange(*args)
            assert ours.dtype == np.int64
            np.testing.assert_array_equal(ours.data, theirs.numpy())
        else:                               # torch's default float, float64 here: compare so
            theirs = torch.arange(*args, dtype=torch.float64).numpy()
            assert ours.dtype == np.float64 and ours.shape == theirs.shape
            # NOTE: torch's vectorised kernel rounds some values differently (one ulp).
            np.testing.assert_allclose(ours.data, theirs, rtol=4e-16, atol=4e-16)


def test_linspace_endpoints_and_counts():
    t = at.linspace(-3.7, 11.3, 97)
    assert t.shape == (97,) and t.dtype == np.float64
    assert t.data[0] == -3.7 and t.data[-1] == 11.3                  # both exact
    np.testing.assert_allclose(t.data, np.linspace(-3.7, 11.3, 97), rtol=0, atol=1e-14)
    assert at.linspace(0, 1, 5).data.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert at.linspace(2, 7, 1).data.tolist() == [2.0]
    assert at.linspace(2, 7, 2).data.tolist() == [2.0, 7.0]
    assert at.linspace(0, 1, 0).shape == (0,)
    assert at.linspace(1, 0, 3).data.tolist() == [1.0, 0.5, 0.0]
    assert at.linspace(0, 1, 3, dtype=np.float32).dtype == np.float32
    with pytest.raises(ValueError, match="linspace: steps must be >= 0, got -1"):
        at.linspace(0, 1, -1)
    with pytest.raises(TypeError, match="linspace: steps must be an integer"):
        at.linspace(0, 1, 2.0)


def test_linspace_matches_torch(torch):
    for args in [(-3.7, 11.3, 97), (0, 1, 10), (1e-3, 1e3, 33), (5, -5, 8), (2, 2, 4), (0, 1, 1),
                 (0, 1, 0)]:
        ours = at.linspace(*args).data
        theirs = torch.linspace(*args, dtype=torch.float64).numpy()
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
        # NOTE: torch's vectorised kernel rounds a few values differently (one ulp).
        np.testing.assert_allclose(ours, theirs, rtol=4e-16, atol=0)
        np.testing.assert_array_equal(ours[[0, -1]] if len(ours) else ours,
                                      theirs[[0, -1]] if len(theirs) else theirs)


# ---------------------------------------------------------------- random creation

def test_random_shapes_dtypes_and_ranges():
    u = at.rand(1000, generator=np.random.default_rng(0))
    assert u.shape == (1000,) and u.dtype == np.float64
    assert 0.0 <= u.data.min() and u.data.max() < 1.0 and 0.4 < u.data.mean() < 0.6
    z = at.randn((200, 5), generator=np.random.default_rng(1), dtype=np.float32)
    assert z.shape == (200, 5) and z.dtype == np.float32 and abs(z.data.mean()) < 0.15
    k = at.randint(3, 7, (1000,), generator=np.random.default_rng(2))
    assert k.dtype == np.int64 and set(k.data.tolist()) == {3, 4, 5, 6}
    assert at.rand(2, requires_grad=True).requires_grad
    assert at.randint(5, (2,), dtype=np.float64).dtype == np.float64


def test_random_functions_refuse_integer_dtypes_and_bad_generators():
    for make in (at.rand, at.randn):
        with pytest.raises(TypeError, match=f"{make.__name__}: dtype must be a floating-point"):
            make(2, dtype=np.int64)
        with pytest.raises(TypeError, match="generator must be a np.random.Generator"):
            make(2, generator=0)
    with pytest.raises(TypeError, match="randint: generator must be a np.random.Generator"):
        at.randint(5, (2,), generator=np.random.RandomState(0))


def test_randint_takes_torchs_argument_forms():
    g = np.random.default_rng
    assert at.randint(10, (3,), generator=g(0)).data.tolist() == \
        g(0).integers(0, 10, (3,)).tolist()
    assert at.randint(2, 10, (3,), generator=g(0)).data.tolist() == \
        g(0).integers(2, 10, (3,)).tolist()
    assert at.randint(10, size=(2, 2)).shape == (2, 2)
    assert at.randint(high=4, size=[5]).shape == (5,)
    assert at.randint(low=1, high=2, size=(3,)).data.tolist() == [1, 1, 1]
    with pytest.raises(TypeError, match=r"randint: missing the size tuple"):
        at.randint(10)
    with pytest.raises(TypeError, match=r"randint: size must be a tuple of ints"):
        at.randint(0, 10, 3)
    with pytest.raises(ValueError, match="low must be less than high, got low=5, high=5"):
        at.randint(5, 5, (1,))
    with pytest.raises(TypeError, match="randint: high must be an integer"):
        at.randint(0, 2.5, (1,))


def test_randn_keeps_its_rng_argument():
    """Existing code passes rng=: the same numbers as before (rng.standard_normal)."""
    t = at.randn(3, 4, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(t.data, np.random.default_rng(5).standard_normal((3, 4)))
    legacy = at.randn(2, rng=np.random.RandomState(5))               # any standard_normal
    np.testing.assert_array_equal(legacy.data, np.random.RandomState(5).standard_normal(2))
    np.testing.assert_array_equal(at.randn(3, generator=np.random.default_rng(5)).data,
                                  np.random.default_rng(5).standard_normal(3))
    with pytest.raises(TypeError, match="pass generator= or rng= .* not both"):
        at.randn(2, rng=np.random.default_rng(0), generator=np.random.default_rng(0))


def test_the_old_import_path_still_works():
    from autotensor.tensor import ones, randn, zeros
    assert zeros is at.zeros and ones is at.ones and randn is at.randn
    with pytest.raises(ImportError, match="cannot import name 'nothing'"):
        from autotensor.tensor import nothing  # noqa: F401


def test_like_functions_copy_shape_and_dtype():
    x = at.Tensor(np.ones((2, 3), np.float32))
    for make in (at.zeros_like, at.ones_like, at.rand_like, at.randn_like):
        t = make(x)
        assert t.shape == (2, 3) and t.dtype == np.float32, make.__name__
        assert make(x, dtype=np.float64).dtype == np.float64
    assert at.zeros_like(np.arange(4)).dtype == np.int64
    assert at.ones_like(x).data.sum() == 6 and at.zeros_like(x).data.sum() == 0
    assert at.full_like(np.arange(3), 2.7).data.tolist() == [2, 2, 2]     # input's dtype
    assert at.full_like(x, 2.5, dtype=np.float64).data.tolist() == [[2.5] * 3] * 2
    with pytest.raises(TypeError, match="randn_like: dtype must be a floating-point type"):
        at.randn_like(np.arange(3))
    g = np.random.default_rng
    np.testing.assert_array_equal(at.randn_like(np.zeros(3), generator=g(0)).data,
                                  g(0).standard_normal(3))
    assert at.randn_like(x, requires_grad=True).requires_grad


def test_every_creation_function_is_exported():
    for name in creation.__all__:
        assert getattr(at, name) is getattr(creation, name), name
        assert name in at.__all__


# ---------------------------------------------------------------- the global generator

@pytest.fixture
def restore_rng():
    """Leave the global generator and numpy's global RNG as the test found them."""
    state, np_state = at.get_rng_state(), np.random.get_state()
    seed = at.initial_seed()
    yield
    at.set_rng_state(state)
    np.random.set_state(np_state)
    at.random._initial_seed = seed


def _draw():
    return (at.rand(3).data, at.randn(2, 2).data, at.randint(100, (4,)).data,
            at.randn_like(np.zeros(2)).data, at.rand_like(np.zeros(2)).data)


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_manual_seed_makes_every_random_function_repeatable(restore_rng):
    at.manual_seed(7)
    first = _draw()
    at.manual_seed(7)
    assert _same(_draw(), first)
    at.manual_seed(8)
    assert not _same(_draw(), first)


def test_manual_seed_reseeds_in_place_and_returns_the_generator(restore_rng):
    g = at.random.default_generator
    assert at.manual_seed(3) is g and at.default_generator is g
    assert g.random() == np.random.default_rng(3).random()     # PCG64 seeded with 3
    assert at.initial_seed() == 3


def test_manual_seed_seeds_numpys_global_rng_too(restore_rng):
    """So modules and dropout (numpy's RNG, as the course needs) repeat after at.manual_seed."""
    at.manual_seed(11)
    a = np.random.randn(3)
    at.manual_seed(11)
    np.testing.assert_array_equal(np.random.randn(3), a)
    np.random.seed(11)
    np.testing.assert_array_equal(np.random.randn(3), a)


def test_manual_seed_accepts_torchs_range(restore_rng):
    at.manual_seed(-1)
    assert at.initial_seed() == 2**64 - 1
    at.manual_seed(np.uint64(2**64 - 1))
    assert at.initial_seed() == 2**64 - 1
    for bad, error in [(2**64, ValueError), (-2**63 - 1, ValueError), (1.5, TypeError),
                       (True, TypeError), ("0", TypeError)]:
        with pytest.raises(error, match="manual_seed: seed must"):
            at.manual_seed(bad)


def test_seed_picks_a_fresh_seed(restore_rng):
    s = at.seed()
    assert isinstance(s, int) and 0 <= s < 2**64 and at.initial_seed() == s
    assert at.seed() != s


def test_rng_state_round_trip(restore_rng):
    at.manual_seed(0)
    at.rand(5)
    state = at.get_rng_state()
    first = _draw()
    at.set_rng_state(state)
    assert _same(_draw(), first)
    state["state"]["state"] = 0                  # a copy: changing it changes nothing
    at.set_rng_state(at.get_rng_state())
    with pytest.raises(ValueError, match="set_rng_state: expected a state returned by"):
        at.set_rng_state(b"bytes")
    with pytest.raises(ValueError, match="set_rng_state: not a PCG64 state"):
        at.set_rng_state({"bit_generator": "PCG64", "state": {}})


def test_an_explicit_generator_leaves_the_global_one_alone(restore_rng):
    at.manual_seed(1)
    expected = at.rand(3).data
    at.manual_seed(1)
    at.randn(10, generator=np.random.default_rng(0))
    at.randint(5, (10,), generator=np.random.default_rng(0))
    np.testing.assert_array_equal(at.rand(3).data, expected)


# ---------------------------------------------------------------- the guide's example

def test_ops_guide_creation_example_runs(restore_rng):
    """The ```py blocks of docs/ops.md's "Creating tensors" section run as written."""
    text = (DOCS / "ops.md").read_text()
    section = text[text.index("## Creating tensors"):]
    blocks = re.findall(r"```py\n(.*?)```", section, flags=re.S)
    assert blocks
    namespace = {}
    for block in blocks:
        exec(compile(block, "docs/ops.md", "exec"), namespace)
