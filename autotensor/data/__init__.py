"""Datasets: CIFAR-10 from either official distribution, the embedded 8x8 digits, minibatches.

    load_cifar10(root)        -> Xtr (50000, 32, 32, 3), ytr, Xte (10000, 32, 32, 3), yte
    get_cifar10_data(root)    -> dict X_train, y_train, X_val, y_val, X_test, y_test;
                                 X (N, 3, 32, 32), training mean image subtracted
    get_digits_data()         -> the same dict for the digits shipped inside the package,
                                 X (N, 1, 8, 8); no download, works offline
    iterate_minibatches(X, y, batch_size)  -> yields (Xb, yb)
    Dataset, TensorDataset, DataLoader, samplers, default_collate
                              -> PyTorch's data vocabulary (dataloader.py)
    load_text("macbeth")      -> a packaged plain text as one str (text.py)

`load_CIFAR10` and `get_CIFAR10_data` are the course's spellings of the first two (same
functions; unlike the course, the dataset folder is an argument). See docs/data.md.

Nothing here unpickles: the CIFAR-10 binary files are read with np.frombuffer, the python files
by `autotensor.safe_pickle`, a reader of the pickle opcodes that builds plain data and numeric
arrays itself (docs/reliability.md), and the digits with np.load(allow_pickle=False).
"""

from __future__ import annotations

import importlib.resources
import io
import os

import numpy as np

from autotensor import safe_pickle

from .dataloader import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
    TensorDataset,
    default_collate,
    default_convert,
)
from .text import load_text

__all__ = ["load_cifar10", "get_cifar10_data", "load_CIFAR10", "get_CIFAR10_data",
           "get_digits_data", "iterate_minibatches", "Dataset", "TensorDataset", "DataLoader",
           "Sampler", "SequentialSampler", "RandomSampler", "BatchSampler", "default_collate",
           "default_convert", "load_text"]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
_PIXELS = 3 * 32 * 32                  # one image: R, G, B planes of 32x32, each row-major
_RECORD = 1 + _PIXELS                  # binary record: 1 label byte + 3072 pixel bytes
_TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
_TEST_FILE = "test_batch"
_FLOATS = (np.dtype(np.float64), np.dtype(np.float32))


# ---------------------------------------------------------------- argument checks

def _check_count(name, value, low=0):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_dtype(dtype):
    dt = np.dtype(dtype)
    if dt not in _FLOATS:
        raise ValueError(f"dtype must be float64 or float32, got {dt}")
    return dt


# ---------------------------------------------------------------- CIFAR-10: binary version

def _read_binary_batch(path):
    """One `*.bin` batch as (X uint8 (n, 3, 32, 32), y int64 (n,)); no pickle involved."""
    size = os.path.getsize(path)
    if size == 0 or size % _RECORD:
        raise ValueError(
            f"CIFAR-10 file {path} has {size} bytes, which is not a whole, non-zero number of "
            f"{_RECORD}-byte records (1 label byte + {_PIXELS} pixel bytes); an official batch "
            f"has {10000 * _RECORD} bytes (10000 records): the file looks truncated or is not "
            f"a CIFAR-10 binary batch")
    with open(path, "rb") as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8).reshape(-1, _RECORD)
    return raw[:, 1:].reshape(-1, 3, 32, 32), raw[:, 0].astype(np.int64)


# ---------------------------------------------------------------- CIFAR-10: python version

def restricted_load(f):
    """The batch pickled in the open binary file `f`, read by `autotensor.safe_pickle`.

    Builds dicts, lists, tuples, strings, bytes, numbers and numeric numpy arrays, nothing else:
    any other global, opcode or array state raises a ValueError (PickleRefusedError or
    PickleMalformedError, also pickle.UnpicklingError). Python 2 strings are read as latin-1
    text, as pickle.load(encoding="latin1") reads the official files.
    """
    return safe_pickle.loads(f.read())


def _entry(batch, key, path):
    # Python 2 pickles read with latin-1 give str keys; Python 3 ones keep bytes keys.
    for k in (key, key.encode()):
        if k in batch:
            return batch[k]
    keys = ", ".join(repr(k)[:40] for k in list(batch)[:10]) + (", ..." if len(batch) > 10 else "")
    raise ValueError(f"CIFAR-10 file {path} has no {key!r} entry (keys: [{keys}])")


def _labels(labels, n, path):
    """The labels entry as int64 (n,): a list of ints (the official files) or an int array."""
    if isinstance(labels, list) and all(type(v) is int and -2**63 <= v < 2**63 for v in labels):
        labels = np.array(labels, dtype=np.int64)
    if not (isinstance(labels, np.ndarray) and labels.shape == (n,)
            and labels.dtype.kind in "iu"):
        if isinstance(labels, np.ndarray):
            got = f"{labels.dtype} {labels.shape}"
        elif isinstance(labels, list):
            bad = next(v for v in labels if not (type(v) is int and -2**63 <= v < 2**63))
            got = f"a list of {len(labels)} holding {type(bad).__name__} {bad!r:.40}"
        else:
            got = f"a {type(labels).__name__}"
        raise ValueError(f"CIFAR-10 file {path}: expected {n} integer labels, got {got}")
    return labels.astype(np.int64)


def _read_python_batch(path):
    """One pickled batch as (X uint8 (n, 3, 32, 32), y int64 (n,)); see safe_pickle."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        batch = safe_pickle.loads(raw)
    except safe_pickle.PickleRefusedError as err:
        raise safe_pickle.PickleRefusedError(f"CIFAR-10 file {path}: {err}") from None
    except safe_pickle.PickleMalformedError as err:
        raise safe_pickle.PickleMalformedError(
            f"CIFAR-10 file {path} is not a readable pickle: {err}") from None
    if not isinstance(batch, dict):
        raise ValueError(f"CIFAR-10 file {path} holds a {type(batch).__name__}, expected a dict")
    data, labels = _entry(batch, "data", path), _entry(batch, "labels", path)
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == _PIXELS and data.shape[0] > 0):
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data)
        raise ValueError(f"CIFAR-10 file {path}: 'data' must be uint8 of shape (n, {_PIXELS}), "
                         f"got {got}")
    return data.reshape(-1, 3, 32, 32), _labels(labels, data.shape[0], path)


# ---------------------------------------------------------------- CIFAR-10: finding and loading

def _locate(root):
    """(folder, reader, suffix) of the CIFAR-10 batches under `root`; binary wins over python."""
    root = os.path.expanduser(os.fspath(root))
    folders = [root, os.path.join(root, "cifar-10-batches-bin"),
               os.path.join(root, "cifar-10-batches-py")]
    for folder in folders:
        if os.path.isfile(os.path.join(folder, "data_batch_1.bin")):
            return folder, _read_binary_batch, ".bin"
        if os.path.isfile(os.path.join(folder, "data_batch_1")):
            return folder, _read_python_batch, ""
    raise FileNotFoundError(
        f"no CIFAR-10 batches found: looked for data_batch_1.bin (binary version) and "
        f"data_batch_1 (python version) in {', '.join(folders)}. Download and unpack either "
        f"distribution from {CIFAR10_URL}")


def _read_split(folder, reader, names):
    xs, ys = [], []
    for name in names:
        path = os.path.join(folder, name)
        x, y = reader(path)
        if y.min() < 0 or y.max() > 9:
            raise ValueError(f"CIFAR-10 file {path}: labels must be 0..9, got "
                             f"{y.min()}..{y.max()}")
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def _load_uint8(root):
    """(Xtr, ytr, Xte, yte) with X uint8 channel-first (N, 3, 32, 32) and y int64."""
    folder, reader, suffix = _locate(root)
    train, test = [n + suffix for n in _TRAIN_FILES], [_TEST_FILE + suffix]
    for name in train + test:                    # all six present before reading any
        if not os.path.isfile(os.path.join(folder, name)):
            raise FileNotFoundError(f"CIFAR-10 file {os.path.join(folder, name)} is missing "
                                    f"(expected {', '.join(train + test)} in {folder})")
    Xtr, ytr = _read_split(folder, reader, train)
    Xte, yte = _read_split(folder, reader, test)
    return Xtr, ytr, Xte, yte


def load_cifar10(root):
    """All of CIFAR-10 as the course returns it: (Xtr, ytr, Xte, yte).

    X is float64 of shape (N, 32, 32, 3) (channels last, values 0..255), y int64 labels 0..9,
    50000 training images (data_batch_1..5 in order) and 10000 test images. `root` holds the
    binary version (`data_batch_1.bin`, ...) or the python version (`data_batch_1`, ...),
    directly or in its `cifar-10-batches-bin` / `cifar-10-batches-py` folder.
    """
    Xtr, ytr, Xte, yte = _load_uint8(root)
    return (Xtr.transpose(0, 2, 3, 1).astype(np.float64, order="C"), ytr,
            Xte.transpose(0, 2, 3, 1).astype(np.float64, order="C"), yte)


def _finish(splits, subtract_mean, dtype):
    """Convert to float, subtract the training mean image, name the keys as the course does."""
    out = {f"X_{k}": x.astype(np.float64) for k, (x, _) in splits.items()}
    if subtract_mean:
        mean_image = out["X_train"].mean(axis=0)
        for k in out:
            out[k] -= mean_image
    out = {k: v.astype(dtype, copy=False) for k, v in out.items()}
    out.update({f"y_{k}": y.astype(np.int64) for k, (_, y) in splits.items()})
    return {k: out[k] for k in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test")}


def get_cifar10_data(root, num_training=49000, num_validation=1000, num_test=1000,
                     subtract_mean=True, dtype=np.float64):
    """CIFAR-10 split and preprocessed as the course's `get_CIFAR10_data`.

    Returns a dict X_train, y_train, X_val, y_val, X_test, y_test; X is float (dtype) of shape
    (N, 3, 32, 32), channel-first, with the mean image of X_train subtracted from all three
    splits when `subtract_mean`. Training images are the first `num_training` of the training
    batches, validation the `num_validation` right after them, test the first `num_test`
    of test_batch. y is int64.
    """
    num_training = _check_count("num_training", num_training, low=1)
    num_validation = _check_count("num_validation", num_validation)
    num_test = _check_count("num_test", num_test)
    dtype = _check_dtype(dtype)
    Xtr, ytr, Xte, yte = _load_uint8(root)
    if num_training + num_validation > len(ytr) or num_test > len(yte):
        raise ValueError(
            f"asked for num_training={num_training} + num_validation={num_validation} of "
            f"{len(ytr)} training images and num_test={num_test} of {len(yte)} test images")
    val = slice(num_training, num_training + num_validation)
    return _finish({"train": (Xtr[:num_training], ytr[:num_training]),
                    "val": (Xtr[val], ytr[val]),
                    "test": (Xte[:num_test], yte[:num_test])}, subtract_mean, dtype)


# The course's spellings.
load_CIFAR10 = load_cifar10
get_CIFAR10_data = get_cifar10_data


# ---------------------------------------------------------------- embedded digits

DIGITS_COUNT = 1797


def _load_digits_file():
    """(images uint8 (1797, 8, 8) 0..16, labels uint8 (1797,)) from the packaged .npz."""
    resource = importlib.resources.files("autotensor").joinpath("datasets/digits.npz")
    with resource.open("rb") as f, np.load(io.BytesIO(f.read()), allow_pickle=False) as npz:
        images, labels = npz["images"], npz["labels"]
    if images.shape != (DIGITS_COUNT, 8, 8) or labels.shape != (DIGITS_COUNT,) \
            or images.max() > 16 or labels.max() > 9:
        raise ValueError(f"{resource} is damaged: images {images.shape}, labels {labels.shape}; "
                         f"regenerate it with tools/make_digits_npz.py")
    return images, labels


def _stratified_order(labels, rng):
    """A random order of all samples in which every prefix has each class in proportion.

    Each sample gets the key (rank within its class + 0.5) / class size, its rank taken in a
    random shuffle; sorting by that key interleaves the classes evenly, so the first 200 hold
    each class to within one of 200 * its share.
    """
    perm = rng.permutation(len(labels))
    shuffled = labels[perm]
    key = np.empty(len(labels))
    for c in np.unique(shuffled):
        members = np.flatnonzero(shuffled == c)
        key[members] = (np.arange(len(members)) + 0.5) / len(members)
    return perm[np.argsort(key, kind="stable")]


def get_digits_data(num_validation=200, num_test=200, subtract_mean=True, seed=0,
                    dtype=np.float64):
    """The embedded 8x8 handwritten digits, split and preprocessed like `get_cifar10_data`.

    Returns a dict X_train, y_train, X_val, y_val, X_test, y_test. X has shape (N, 1, 8, 8),
    pixel values scaled to [0, 1] (value / 16), with the mean image of X_train subtracted when
    `subtract_mean`; y int64 digits 0..9. The 1,797 images are split into validation, test
    and training (by default 200 / 200 / 1,397) by a fixed, class-stratified permutation drawn
    from `seed`: the same seed always gives the same split. Data: UCI Optical Recognition of
    Handwritten Digits (E. Alpaydin, C. Kaynak), CC BY 4.0; see docs/data.md.
    """
    num_validation = _check_count("num_validation", num_validation)
    num_test = _check_count("num_test", num_test)
    if num_validation + num_test >= DIGITS_COUNT:
        raise ValueError(f"num_validation={num_validation} + num_test={num_test} leaves no "
                         f"training images out of {DIGITS_COUNT}")
    dtype = _check_dtype(dtype)
    images, labels = _load_digits_file()
    order = _stratified_order(labels, np.random.default_rng(seed))
    val, test = order[:num_validation], order[num_validation:num_validation + num_test]
    X = (images.astype(np.float64) / 16.0)[:, None]          # (N, 1, 8, 8) in [0, 1]
    train = order[num_validation + num_test:]
    return _finish({"train": (X[train], labels[train]), "val": (X[val], labels[val]),
                    "test": (X[test], labels[test])}, subtract_mean, dtype)


# ---------------------------------------------------------------- minibatches

def iterate_minibatches(X, y, batch_size, shuffle=True, rng=None, drop_last=False):
    """Yield (X[idx], y[idx]) for consecutive minibatches covering the data once (one epoch).

    With `shuffle` the order is a random permutation: from `rng` (an int seed or a
    np.random.Generator) or, when rng is None, from numpy's global RNG, so np.random.seed(...)
    reproduces it as in the course. The last batch is smaller unless `drop_last`.
    """
    if len(X) != len(y):
        raise ValueError(f"X and y differ in length: {len(X)} and {len(y)}")
    batch_size = _check_count("batch_size", batch_size, low=1)
    n = len(y)
    if not shuffle:
        order = np.arange(n)
    elif rng is None:
        order = np.random.permutation(n)
    else:
        order = np.random.default_rng(rng).permutation(n)
    stop = n - n % batch_size if drop_last else n
    # A generator inside, so the checks above run at the call, not at the first next().
    return ((X[order[i:i + batch_size]], y[order[i:i + batch_size]])
            for i in range(0, stop, batch_size))
