"""torch.utils.data's vocabulary: Dataset, TensorDataset, samplers, default_collate, DataLoader.

    train = TensorDataset(X, y)                      # Tensors or ndarrays, same first dimension
    loader = DataLoader(train, batch_size=64, shuffle=True)
    for xb, yb in loader:                            # Tensors (64, ...) and int64 (64,)
        ...

As in PyTorch, a DataLoader draws indices from a sampler (SequentialSampler, or RandomSampler
with `shuffle=True`: a new permutation each epoch), groups them with a BatchSampler, fetches
`dataset[i]` for each and merges the samples with `collate_fn` (default_collate: stack along a
new first axis). `batch_size=None` turns batching off. Loading runs in the calling process:
there are no worker processes (docs/data.md lists this and the other differences).
"""

from __future__ import annotations

import collections.abc
import math

import numpy as np

from autotensor import ops
from autotensor.random import generator_or_default
from autotensor.tensor import Tensor

__all__ = ["Dataset", "TensorDataset", "Sampler", "SequentialSampler", "RandomSampler",
           "BatchSampler", "default_collate", "default_convert", "DataLoader"]


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} should be a positive integer value, but got {name}={value!r}")
    return int(value)


def _bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} should be a boolean value, but got {name}={value!r}")
    return bool(value)


# ---------------------------------------------------------------- datasets

class Dataset:
    """A map-style dataset: subclasses define `__getitem__(index)` and `__len__()`."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __len__")


class TensorDataset(Dataset):
    """Sample i is `tuple(t[i] for t in tensors)`; every tensor has the same first dimension.

    Accepts Tensors and ndarrays (wrapped as Tensors without a copy), kept in `.tensors`.
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        for i, t in enumerate(tensors):
            if not isinstance(t, (Tensor, np.ndarray)):
                raise TypeError(f"TensorDataset: argument {i} must be a Tensor or an ndarray, "
                                f"got {type(t).__name__}")
            if t.ndim == 0:
                raise ValueError(f"TensorDataset: argument {i} is 0-d; every tensor needs a "
                                 f"first dimension indexing the samples")
        if len({t.shape[0] for t in tensors}) > 1:
            shapes = ", ".join(str(tuple(t.shape)) for t in tensors)
            raise ValueError(f"TensorDataset: every tensor must have the same first dimension "
                             f"(the number of samples), got shapes {shapes}")
        self.tensors = tuple(t if isinstance(t, Tensor) else Tensor(t) for t in tensors)

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


# ---------------------------------------------------------------- samplers

class Sampler:
    """Base of the samplers: iterating one yields dataset indices (or lists of them)."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


class SequentialSampler(Sampler):
    """The indices 0, 1, ..., len(data_source) - 1, in order."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """Random indices: a new permutation at each iteration, or draws with `replacement`.

    `num_samples` (default len(data_source)) indices per iteration; without replacement, more
    than len(data_source) come from successive permutations. The randomness comes from
    `generator` (a np.random.Generator) or the global generator (at.manual_seed).
    """

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.data_source = data_source
        self.replacement = _bool("replacement", replacement)
        self._num_samples = num_samples
        self.generator = generator
        generator_or_default(generator, "RandomSampler")            # checks it
        _positive_int("num_samples", self.num_samples)

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        # A generator function: the draw happens when an epoch starts, not when iter() is called.
        rng = generator_or_default(self.generator, "RandomSampler")
        n = len(self.data_source)
        if self.replacement:
            yield from rng.integers(0, n, self.num_samples).tolist()
            return
        whole, rest = divmod(self.num_samples, n)
        for _ in range(whole):
            yield from rng.permutation(n).tolist()
        if rest:
            yield from rng.permutation(n)[:rest].tolist()

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Lists of `batch_size` indices from `sampler`; the last one shorter unless `drop_last`."""

    def __init__(self, sampler, batch_size, drop_last):
        self.sampler = sampler
        self.batch_size = _positive_int("batch_size", batch_size)
        self.drop_last = _bool("drop_last", drop_last)

    def __iter__(self):
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)


# ---------------------------------------------------------------- collation

_COLLATE_TYPES = "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or " \
                 "lists; found {}"


def _is_text(x):
    return isinstance(x, (str, bytes, np.str_, np.bytes_))


def _numeric_array(x):
    """True for an ndarray or numpy scalar of numbers or bools (not strings or objects)."""
    return isinstance(x, (np.ndarray, np.generic)) and x.dtype.kind not in "SUOV"


def _stack_shapes(batch):
    """A ValueError naming the first sample whose shape differs from sample 0's."""
    first = np.shape(batch[0])
    for i, x in enumerate(batch):
        if np.shape(x) != first:
            raise ValueError(f"default_collate: samples must have equal shapes to be stacked, "
                             f"got {first} at index 0 and {np.shape(x)} at index {i}")


def _rebuild(elem, values):
    """A container of elem's type holding `values`, or the plain one when that type can't."""
    try:
        return type(elem)(values)
    except TypeError:
        return values


def default_collate(batch):
    """Merge a list of samples into one batch, as torch's default_collate.

    Tensors and numeric ndarrays are stacked along a new first axis into a Tensor (Tensors with
    `at.stack`, so the graph is kept); Python ints become an int64 Tensor, floats float64, bools
    bool; strings stay a list. Dicts, named tuples, tuples and lists are collated field by
    field: a dict gives a dict of batches, a tuple or list a list of batches (as torch).
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        _stack_shapes(batch)
        return ops.stack(batch)
    if isinstance(elem, (np.ndarray, np.generic)) and not _is_text(elem):
        if not _numeric_array(elem):
            raise TypeError(_COLLATE_TYPES.format(elem.dtype))
        _stack_shapes(batch)
        return Tensor(np.stack([np.asarray(x) for x in batch]))
    if isinstance(elem, float):
        return Tensor(np.array(batch, dtype=np.float64))
    if isinstance(elem, int):                       # bools too: all-bool batches stay bool
        return Tensor(np.array(batch))
    if _is_text(elem):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        return _rebuild(elem, {key: default_collate([d[key] for d in batch]) for key in elem})
    if isinstance(elem, collections.abc.Sequence):
        sizes = {len(x) for x in batch}
        if len(sizes) > 1:
            raise ValueError(f"default_collate: each sample must have the same number of "
                             f"fields, got lengths {sorted(sizes)}")
        fields = [default_collate(f) for f in zip(*batch)]       # f: a tuple, as torch
        if isinstance(elem, tuple) and hasattr(elem, "_fields"):           # a namedtuple
            return type(elem)(*fields)
        return fields if isinstance(elem, tuple) else _rebuild(elem, fields)
    raise TypeError(_COLLATE_TYPES.format(type(elem)))


def default_convert(data):
    """What a DataLoader with `batch_size=None` returns for a sample, as torch's default_convert.

    Numeric ndarrays and numpy scalars become Tensors; dicts, named tuples, tuples and lists
    are converted field by field (a tuple becomes a list); everything else is left unchanged.
    """
    if _numeric_array(data):
        return Tensor(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        return _rebuild(data, {key: default_convert(v) for key, v in data.items()})
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(v) for v in data))
    if isinstance(data, collections.abc.Sequence) and not _is_text(data):
        fields = [default_convert(v) for v in data]
        return fields if isinstance(data, tuple) else _rebuild(data, fields)
    return data


# ---------------------------------------------------------------- the loader

class DataLoader:
    """Iterate over `dataset` in batches, as torch.utils.data.DataLoader (in this process).

    Each iteration is one epoch: `len(loader)` batches of `batch_size` samples merged by
    `collate_fn` (default_collate), the last one smaller unless `drop_last`. `shuffle=True`
    draws a new order each epoch from `generator` (a np.random.Generator) or, when None, from
    the global generator (at.manual_seed). `sampler` (indices) or `batch_sampler` (lists of
    indices) replace the default order. `batch_size=None` yields single samples, with numpy
    data converted to Tensors. `num_workers` must be 0; `pin_memory` and `worker_init_fn` are
    accepted for PyTorch code and have nothing to do here.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, *,
                 worker_init_fn=None, generator=None):
        if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
            raise TypeError(f"DataLoader: dataset must be a map-style dataset (with __getitem__ "
                            f"and __len__), got {type(dataset).__name__}")
        if isinstance(num_workers, bool) or num_workers != 0:
            raise ValueError(f"DataLoader: num_workers={num_workers!r}, but autotensor loads "
                             f"in the calling process only: pass num_workers=0 "
                             f"(see docs/data.md)")
        shuffle = False if shuffle is None else _bool("shuffle", shuffle)
        generator_or_default(generator, "DataLoader")                 # checks it
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if sampler is None:
            sampler = RandomSampler(dataset, generator=generator) if shuffle \
                else SequentialSampler(dataset)
        if batch_size is not None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.dataset, self.batch_size, self.drop_last = dataset, batch_size, drop_last
        self.sampler, self.batch_sampler, self.generator = sampler, batch_sampler, generator
        self.num_workers, self.pin_memory, self.worker_init_fn = 0, pin_memory, worker_init_fn
        if collate_fn is None:
            collate_fn = default_collate if batch_sampler is not None else default_convert
        self.collate_fn = collate_fn

    def __iter__(self):
        if self.batch_sampler is None:
            return (self.collate_fn(self.dataset[i]) for i in self.sampler)
        return (self.collate_fn([self.dataset[i] for i in batch])
                for batch in self.batch_sampler)

    def __len__(self):
        return len(self.sampler if self.batch_sampler is None else self.batch_sampler)
