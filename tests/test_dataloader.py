"""Dataset, TensorDataset, samplers, default_collate and DataLoader (autotensor/data/dataloader.py).

Every behaviour has a test that runs without torch; with the `torch` fixture the same loaders
are compared with torch.utils.data: the same batches (values, dtypes, structure), lengths and
errors.
"""

from __future__ import annotations

import collections
import math
import pathlib
import re

import numpy as np
import pytest

import autotensor as at
from autotensor import nn, optim
from autotensor.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
    TensorDataset,
    default_collate,
    default_convert,
    get_digits_data,
)

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"
Point = collections.namedtuple("Point", "x y")


@pytest.fixture
def restore_rng():
    state, np_state = at.get_rng_state(), np.random.get_state()
    yield
    at.set_rng_state(state)
    np.random.set_state(np_state)


def _xy(n=10, d=3):
    X = np.arange(n * d, dtype=np.float64).reshape(n, d)
    return X, np.arange(n) % 4


def _as_plain(obj):
    """Our batch with Tensors replaced by their arrays (to compare with torch's)."""
    if isinstance(obj, at.Tensor):
        return obj.data
    if isinstance(obj, dict):
        return type(obj)((k, _as_plain(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(*map(_as_plain, obj)) if hasattr(obj, "_fields") \
            else type(obj)(map(_as_plain, obj))
    return obj


def _assert_same(ours, theirs, torch):
    """Our (plain) batch equals torch's: structure, container types, values and dtypes."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, np.ndarray), type(ours)
        assert ours.dtype == np.dtype(str(theirs.dtype).removeprefix("torch.")), \
            (ours.dtype, theirs.dtype)
        np.testing.assert_array_equal(ours, theirs.numpy())
        return
    assert type(ours) is type(theirs), (type(ours), type(theirs))
    if isinstance(theirs, dict):
        assert list(ours) == list(theirs)
        for k in theirs:
            _assert_same(ours[k], theirs[k], torch)
    elif isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _assert_same(a, b, torch)
    else:
        assert ours == theirs


class ListDataset(Dataset):
    """A map-style dataset over a list of arbitrary samples."""

    def __init__(self, samples):
        self.samples = samples

    def __getitem__(self, i):
        return self.samples[i]

    def __len__(self):
        return len(self.samples)


# ---------------------------------------------------------------- datasets

def test_tensor_dataset_indexes_every_tensor_along_the_first_axis():
    X, y = _xy()
    ds = TensorDataset(at.Tensor(X), y)
    assert len(ds) == 10 and isinstance(ds, Dataset)
    x3, y3 = ds[3]
    assert isinstance(x3, at.Tensor) and isinstance(y3, at.Tensor)
    np.testing.assert_array_equal(x3.data, X[3])
    assert y3.item() == 3 and y3.dtype == np.int64
    assert ds.tensors[1].data is y                              # wrapped, not copied
    np.testing.assert_array_equal(ds[1:3][0].data, X[1:3])


def test_tensor_dataset_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"same first dimension .* got shapes \(10, 3\), \(9,\)"):
        TensorDataset(np.zeros((10, 3)), np.zeros(9))
    with pytest.raises(ValueError, match="needs at least one tensor"):
        TensorDataset()
    with pytest.raises(TypeError, match="argument 1 must be a Tensor or an ndarray, got list"):
        TensorDataset(np.zeros(3), [1, 2, 3])
    with pytest.raises(ValueError, match="argument 0 is 0-d"):
        TensorDataset(np.array(1.0))


def test_dataset_base_asks_subclasses_for_the_protocol():
    class Empty(Dataset):
        pass
    with pytest.raises(NotImplementedError, match="Empty must define __getitem__"):
        Empty()[0]
    with pytest.raises(NotImplementedError, match="Empty must define __len__"):
        len(Empty())
    with pytest.raises(NotImplementedError, match="must define __iter__"):
        iter(Sampler())


def test_tensor_dataset_matches_torch(torch):
    X, y = _xy()
    ours = TensorDataset(X, y)
    theirs = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    assert len(ours) == len(theirs)
    for i in (0, 7, -1):
        _assert_same(_as_plain(list(ours[i])), list(theirs[i]), torch)


# ---------------------------------------------------------------- batching without shuffle

@pytest.mark.parametrize("n, batch_size, drop_last, count", [
    (10, 3, False, 4), (10, 3, True, 3), (9, 3, False, 3), (9, 3, True, 3),
    (2, 5, False, 1), (2, 5, True, 0), (0, 4, False, 0), (1, 1, False, 1),
])
def test_batches_cover_the_data_in_order(n, batch_size, drop_last, count):
    X, y = _xy(n)
    loader = DataLoader(TensorDataset(X, y), batch_size=batch_size, drop_last=drop_last)
    batches = list(loader)
    assert len(loader) == len(batches) == count
    if not batches:
        return
    xs = np.concatenate([xb.data for xb, _ in batches])
    ys = np.concatenate([yb.data for _, yb in batches])
    kept = count * batch_size if drop_last else n
    np.testing.assert_array_equal(xs, X[:kept])
    np.testing.assert_array_equal(ys, y[:kept])
    assert all(yb.dtype == np.int64 and xb.dtype == np.float64 for xb, yb in batches)
    assert all(len(yb) == batch_size for _, yb in batches[:-1])


def test_default_batch_size_is_one():
    X, y = _xy(4)
    loader = DataLoader(TensorDataset(X, y))
    assert len(loader) == 4 and loader.batch_size == 1
    xb, yb = next(iter(loader))
    assert xb.shape == (1, 3) and yb.shape == (1,)


@pytest.mark.parametrize("n", [0, 1, 7, 16, 17])
@pytest.mark.parametrize("batch_size", [1, 4, 16, 20])
@pytest.mark.parametrize("drop_last", [False, True])
def test_lengths_match_torch(torch, n, batch_size, drop_last):
    ours = DataLoader(ListDataset(list(range(n))), batch_size=batch_size, drop_last=drop_last)
    theirs = torch.utils.data.DataLoader(list(range(n)), batch_size=batch_size,
                                         drop_last=drop_last)
    assert len(ours) == len(theirs) == len(list(theirs)) == len(list(ours))
    expected = n // batch_size if drop_last else math.ceil(n / batch_size)
    assert len(ours) == expected


@pytest.mark.parametrize("batch_size, drop_last", [(1, False), (3, False), (3, True), (10, True)])
def test_unshuffled_batches_match_torch(torch, batch_size, drop_last):
    X, y = _xy(10)
    Xf = X.astype(np.float32)
    ours = DataLoader(TensorDataset(Xf, y), batch_size=batch_size, drop_last=drop_last)
    theirs = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(Xf), torch.from_numpy(y)),
        batch_size=batch_size, drop_last=drop_last)
    ours, theirs = [_as_plain(b) for b in ours], list(theirs)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        _assert_same(a, b, torch)


# ---------------------------------------------------------------- collation

SAMPLES = {
    "ints": [1, 2, 3],
    "floats": [1.5, 2.0, -3.25],
    "bools": [True, False, True],
    "strings": ["a", "bb", "c"],
    "bytes": [b"a", b"b", b"c"],
    "numpy float32 scalars": [np.float32(1.5), np.float32(2.5), np.float32(0)],
    "numpy int32 scalars": [np.int32(1), np.int32(-2), np.int32(7)],
    "0-d arrays": [np.array(1.0), np.array(2.0), np.array(3.0)],
    "int32 arrays": [np.full((2, 2), i, np.int32) for i in range(3)],
    "uint8 images": [np.full((1, 2, 2), i, np.uint8) for i in range(3)],
    "tuples": [(np.ones(2) * i, i) for i in range(3)],
    "lists": [[i, float(i), "s"] for i in range(3)],
    "dicts": [{"image": np.ones(3) * i, "label": i, "name": f"n{i}"} for i in range(3)],
    "ordered dicts": [collections.OrderedDict(b=i, a=float(i)) for i in range(3)],
    "named tuples": [Point(np.float32(i), i) for i in range(3)],
    "nested": [{"pair": (i, [float(i), 2.0]), "meta": {"id": i}} for i in range(3)],
    "empty tuples": [(), (), ()],
}


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_default_collate_matches_torch(torch, kind):
    ours = _as_plain(default_collate(SAMPLES[kind]))
    theirs = torch.utils.data.default_collate(SAMPLES[kind])
    _assert_same(ours, theirs, torch)


def test_default_collate_of_tensors_matches_torch(torch):
    xs = [np.arange(6, dtype=np.float32).reshape(2, 3) + i for i in range(4)]
    ours = default_collate([at.Tensor(x) for x in xs])
    _assert_same(ours.data, torch.utils.data.default_collate([torch.from_numpy(x) for x in xs]),
                 torch)


def test_default_collate_types_and_shapes():
    b = default_collate([(np.zeros((2, 3), np.float32), 4), (np.ones((2, 3), np.float32), 5)])
    assert isinstance(b, list) and len(b) == 2                  # tuples give a list, as torch
    assert b[0].shape == (2, 2, 3) and b[0].dtype == np.float32  # the array's dtype is kept
    assert b[1].dtype == np.int64 and b[1].data.tolist() == [4, 5]   # labels stay integers
    assert default_collate([1.5, 2]).dtype == np.float64
    assert default_collate([True, False]).dtype == np.bool_
    assert default_collate(["x", "y"]) == ["x", "y"]
    d = default_collate([{"a": 1, "b": "u"}, {"a": 2, "b": "v"}])
    assert d["a"].data.tolist() == [1, 2] and d["b"] == ["u", "v"]
    p = default_collate([Point(1, 2.0), Point(3, 4.0)])
    assert isinstance(p, Point) and p.x.data.tolist() == [1, 3] and p.y.dtype == np.float64
    assert isinstance(default_collate([collections.OrderedDict(a=1)]), collections.OrderedDict)


def test_default_collate_keeps_the_graph_of_tensors():
    w = at.Tensor(np.ones(3), requires_grad=True)
    batch = default_collate([w * 2.0, w * 3.0])
    batch.sum().backward()
    np.testing.assert_array_equal(w.grad, np.full(3, 5.0))


def test_default_collate_errors():
    with pytest.raises(ValueError, match=r"equal shapes .* got \(2,\) at index 0 and \(3,\) "
                                         r"at index 2"):
        default_collate([np.zeros(2), np.zeros(2), np.zeros(3)])
    with pytest.raises(ValueError, match=r"equal shapes .* got \(2,\) at index 0 and \(1,\)"):
        default_collate([at.zeros(2), at.zeros(1)])
    with pytest.raises(ValueError, match=r"same number of fields, got lengths \[1, 2\]"):
        default_collate([(1, 2), (3,)])
    with pytest.raises(TypeError, match="batch must contain tensors, numpy arrays, numbers, "
                                        "dicts or lists; found <class 'object'>"):
        default_collate([object(), object()])
    with pytest.raises(TypeError, match="found <U1"):
        default_collate([np.array(["a"]), np.array(["b"])])
    with pytest.raises(TypeError, match="found <class 'complex'>"):
        default_collate([1j, 2j])


@pytest.mark.parametrize("sample", [
    np.arange(3), np.float32(2.5), 7, 2.5, "text", (np.zeros(2), 1), [np.ones(1), "x"],
    {"a": np.ones(2), "b": 3}, Point(np.int64(1), 2.0), np.array(["a", "b"]),
])
def test_default_convert_matches_torch(torch, sample):
    ours = _as_plain(default_convert(sample))
    theirs = torch.utils.data.default_convert(sample)
    if isinstance(sample, np.ndarray) and sample.dtype.kind == "U":
        assert ours is sample and theirs is sample              # strings: left alone
        return
    _assert_same(ours, theirs, torch)


def test_default_convert_types():
    assert isinstance(default_convert(np.arange(3)), at.Tensor)
    assert default_convert(np.float32(1.0)).dtype == np.float32
    assert default_convert((np.zeros(1), 2))[1] == 2             # a list; numbers unchanged
    assert isinstance(default_convert((1, 2)), list)
    t = at.ones(2)
    assert default_convert(t) is t


def test_custom_collate_fn():
    X, y = _xy(6)
    loader = DataLoader(TensorDataset(X, y), batch_size=4, collate_fn=lambda batch: len(batch))
    assert list(loader) == [4, 2]


@pytest.mark.parametrize("kind", ["dicts", "tuples", "nested", "named tuples"])
def test_loader_collates_structured_samples_like_torch(torch, kind):
    samples = SAMPLES[kind] * 3
    ours = [_as_plain(b) for b in DataLoader(ListDataset(samples), batch_size=4)]
    theirs = list(torch.utils.data.DataLoader(samples, batch_size=4))
    assert len(ours) == len(theirs) == 3
    for a, b in zip(ours, theirs):
        _assert_same(a, b, torch)


# ---------------------------------------------------------------- batch_size=None

def test_batch_size_none_yields_converted_samples():
    X, y = _xy(3)
    loader = DataLoader(TensorDataset(X, y), batch_size=None)
    assert len(loader) == 3 and loader.batch_sampler is None
    samples = list(loader)
    assert isinstance(samples[0], list) and samples[0][0].shape == (3,)
    arrays = DataLoader(ListDataset([np.ones(2), np.zeros(2)]), batch_size=None)
    assert [type(s) for s in arrays] == [at.Tensor, at.Tensor]


def test_batch_size_none_matches_torch(torch):
    samples = [(np.arange(3) + i, float(i)) for i in range(4)]
    ours = [_as_plain(s) for s in DataLoader(ListDataset(samples), batch_size=None)]
    theirs = list(torch.utils.data.DataLoader(samples, batch_size=None))
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        _assert_same(a, b, torch)


# ---------------------------------------------------------------- shuffling

def _order(loader):
    return np.concatenate([yb.data for _, yb in loader]).tolist()


def _index_loader(n=20, **kwargs):
    return DataLoader(TensorDataset(np.zeros((n, 1)), np.arange(n)), **kwargs)


def test_shuffle_draws_a_new_permutation_each_epoch():
    loader = _index_loader(batch_size=6, shuffle=True, generator=np.random.default_rng(0))
    first, second = _order(loader), _order(loader)
    assert sorted(first) == sorted(second) == list(range(20))
    assert first != second and first != list(range(20))
    assert len(loader) == 4


def test_shuffle_is_repeatable_with_a_generator():
    a = _index_loader(batch_size=6, shuffle=True, generator=np.random.default_rng(3))
    b = _index_loader(batch_size=6, shuffle=True, generator=np.random.default_rng(3))
    assert [_order(a) for _ in range(3)] == [_order(b) for _ in range(3)]
    g = np.random.default_rng(3)
    assert _order(_index_loader(batch_size=6, shuffle=True, generator=np.random.default_rng(3))) \
        == g.permutation(20).tolist()


def test_shuffle_without_generator_uses_the_global_one(restore_rng):
    loader = _index_loader(batch_size=5, shuffle=True)
    at.manual_seed(5)
    first = [_order(loader), _order(loader)]
    at.manual_seed(5)
    assert [_order(loader), _order(loader)] == first
    at.manual_seed(5)
    assert first[0] == np.random.default_rng(5).permutation(20).tolist()   # PCG64 seeded 5


def test_shuffle_with_drop_last_drops_a_random_remainder():
    loader = _index_loader(n=10, batch_size=4, shuffle=True, drop_last=True,
                           generator=np.random.default_rng(1))
    orders = [_order(loader) for _ in range(5)]
    assert len(loader) == 2 and all(len(o) == 8 and len(set(o)) == 8 for o in orders)
    assert len({tuple(sorted(o)) for o in orders}) > 1


# ---------------------------------------------------------------- samplers

def test_samplers():
    data = list(range(7))
    assert list(SequentialSampler(data)) == data and len(SequentialSampler(data)) == 7
    perm = list(RandomSampler(data, generator=np.random.default_rng(0)))
    assert sorted(perm) == data
    more = list(RandomSampler(data, num_samples=16, generator=np.random.default_rng(0)))
    assert len(more) == 16 and sorted(more[:7]) == data and sorted(more[7:14]) == data
    drawn = list(RandomSampler(data, replacement=True, num_samples=50,
                               generator=np.random.default_rng(0)))
    assert len(drawn) == 50 and set(drawn) <= set(data)
    assert all(isinstance(i, int) for i in drawn)
    batches = BatchSampler(SequentialSampler(data), 3, drop_last=False)
    assert list(batches) == [[0, 1, 2], [3, 4, 5], [6]] and len(batches) == 3
    assert list(BatchSampler(data, 3, True)) == [[0, 1, 2], [3, 4, 5]]


def test_sampler_errors_use_torchs_words():
    with pytest.raises(ValueError, match="num_samples should be a positive integer value, but "
                                         "got num_samples=0"):
        RandomSampler([])
    with pytest.raises(ValueError, match="replacement should be a boolean value"):
        RandomSampler([1], replacement=1)
    with pytest.raises(ValueError, match="batch_size should be a positive integer value, but "
                                         "got batch_size=0"):
        BatchSampler([1], 0, False)
    with pytest.raises(ValueError, match="drop_last should be a boolean value"):
        BatchSampler([1], 1, "no")
    with pytest.raises(TypeError, match="RandomSampler: generator must be a np.random.Generator"):
        RandomSampler([1], generator=7)


def test_sampler_and_batch_sampler_arguments():
    ds = TensorDataset(np.zeros((6, 1)), np.arange(6))
    picked = DataLoader(ds, batch_size=2, sampler=[5, 0, 3])
    assert _order(picked) == [5, 0, 3] and len(picked) == 2
    grouped = DataLoader(ds, batch_sampler=[[4, 1], [2], [0, 5, 3]])
    assert [yb.data.tolist() for _, yb in grouped] == [[4, 1], [2], [0, 5, 3]]
    assert len(grouped) == 3 and grouped.batch_size is None


def test_sampler_arguments_match_torch(torch):
    X, y = _xy(6)
    ds = TensorDataset(X, y)
    tds = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    for kwargs in [{"batch_size": 2, "sampler": [5, 0, 3]},
                   {"batch_sampler": [[4, 1], [2], [0, 5, 3]]}]:
        ours = [_as_plain(b) for b in DataLoader(ds, **kwargs)]
        theirs = list(torch.utils.data.DataLoader(tds, **kwargs))
        assert len(ours) == len(theirs) == len(DataLoader(ds, **kwargs))
        for a, b in zip(ours, theirs):
            _assert_same(a, b, torch)


# ---------------------------------------------------------------- arguments refused

@pytest.mark.parametrize("kwargs, error, message", [
    ({"shuffle": True, "sampler": [0]}, ValueError, "sampler option is mutually exclusive with "
                                                    "shuffle"),
    ({"batch_sampler": [[0]], "batch_size": 2}, ValueError, "batch_sampler option is mutually"),
    ({"batch_sampler": [[0]], "shuffle": True}, ValueError, "batch_sampler option is mutually"),
    ({"batch_sampler": [[0]], "drop_last": True}, ValueError, "batch_sampler option is"),
    ({"batch_sampler": [[0]], "sampler": [0]}, ValueError, "batch_sampler option is mutually"),
    ({"batch_size": None, "drop_last": True}, ValueError, "batch_size=None option disables "
                                                          "auto-batching"),
    ({"batch_size": 0}, ValueError, "batch_size should be a positive integer value"),
    ({"batch_size": 2.0}, ValueError, "batch_size should be a positive integer value"),
    ({"drop_last": None}, ValueError, "drop_last should be a boolean value"),
])
def test_refused_combinations_match_torch(torch, kwargs, error, message):
    with pytest.raises(error, match=message):
        DataLoader(ListDataset([0, 1]), **kwargs)
    with pytest.raises(error):
        torch.utils.data.DataLoader([0, 1], **kwargs)


def test_refused_arguments():
    ds = ListDataset([0, 1])
    with pytest.raises(ValueError, match=r"num_workers=2, but autotensor loads in the calling "
                                         r"process only: pass num_workers=0"):
        DataLoader(ds, num_workers=2)
    with pytest.raises(ValueError, match="sampler option is mutually exclusive with shuffle"):
        DataLoader(ds, shuffle=True, sampler=[0])
    with pytest.raises(ValueError, match="shuffle should be a boolean value"):
        DataLoader(ds, shuffle="yes")
    with pytest.raises(TypeError, match="DataLoader: generator must be a np.random.Generator"):
        DataLoader(ds, shuffle=True, generator=0)
    with pytest.raises(TypeError, match="must be a map-style dataset .* got generator"):
        DataLoader(i for i in range(3))
    assert DataLoader(ds, shuffle=None, pin_memory=True, worker_init_fn=print).num_workers == 0


# ---------------------------------------------------------------- in a training loop

def test_a_model_trains_from_a_loader(restore_rng):
    """The digits, a TensorDataset and a shuffled DataLoader: the training loss falls."""
    at.manual_seed(0)
    data = get_digits_data()
    X = data["X_train"].reshape(len(data["X_train"]), -1)
    loader = DataLoader(TensorDataset(X, data["y_train"]), batch_size=64, shuffle=True)
    model = nn.Linear(64, 10)
    opt = optim.SGD(model.parameters(), lr=0.5)
    losses = []
    for _ in range(3):
        for xb, yb in loader:
            loss = nn.functional.softmax_cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert len(losses) == 3 * len(loader) == 3 * math.ceil(len(X) / 64)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


# ---------------------------------------------------------------- the guide's examples

def test_data_guide_loader_examples_run(restore_rng):
    """The ```py blocks of docs/data.md's "Dataset and DataLoader" section run as written."""
    text = (DOCS / "data.md").read_text()
    start = text.index("## Dataset and DataLoader")
    section = text[start:text.index("\n## ", start + 1)]
    blocks = re.findall(r"```py\n(.*?)```", section, flags=re.S)
    assert blocks
    namespace = {}
    for block in blocks:
        exec(compile(block, "docs/data.md", "exec"), namespace)
