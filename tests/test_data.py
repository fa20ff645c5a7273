"""autotensor.data: CIFAR-10 in both official formats, the safe pickle reader, the embedded
digits, minibatches. The CIFAR-10 files are small ones written here in the real layouts."""

from __future__ import annotations

import builtins
import gzip
import hashlib
import importlib.util
import io
import os
import pathlib
import pickle
import re
import shutil
import struct

import numpy as np
import pytest

from autotensor import data, safe_pickle
from autotensor.data import (
    get_CIFAR10_data,
    get_cifar10_data,
    get_digits_data,
    iterate_minibatches,
    load_CIFAR10,
    load_cifar10,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
N_PER_BATCH = 4          # records per training batch; 20 training images in all
N_TEST = 3


# ---------------------------------------------------------------- fixture writers

def make_records(n, seed):
    """n CIFAR-10 rows: uint8 (n, 3072) pixels (R, G, B planes) and labels 0..9."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, 10, n)


def all_batches():
    """{file name: (pixels, labels)} for five training batches and the test batch."""
    batches = {name: make_records(N_PER_BATCH, seed) for seed, name in enumerate(TRAIN)}
    batches["test_batch"] = make_records(N_TEST, 99)
    return batches


def write_binary(folder, batches):
    folder.mkdir(parents=True, exist_ok=True)
    for name, (pixels, labels) in batches.items():
        records = np.concatenate([labels.astype(np.uint8)[:, None], pixels], axis=1)
        (folder / f"{name}.bin").write_bytes(records.tobytes())


def write_python(folder, batches, protocol=pickle.DEFAULT_PROTOCOL):
    folder.mkdir(parents=True, exist_ok=True)
    for name, (pixels, labels) in batches.items():
        batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in labels],
                 b"data": pixels, b"filenames": [b"x.png"] * len(labels)}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=protocol)


def _py2_str(b):
    return b"U" + bytes([len(b)]) + b                     # SHORT_BINSTRING: a Python 2 str


def python2_pickle(pixels, labels):
    """The bytes Python 2's cPickle writes for the official batches (protocol 2, str keys and
    an array whose raw data is a str): opcode by opcode, since Python 3 cannot produce them."""
    out = b"\x80\x02}(" + _py2_str(b"data")
    out += b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + _py2_str(b"b")
    out += b"\x87R(K\x01J" + struct.pack("<i", len(pixels)) + b"M\x00\x0c\x86"
    out += b"cnumpy\ndtype\n" + _py2_str(b"u1") + b"K\x00K\x01\x87R"
    out += b"(K\x03" + _py2_str(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    raw = pixels.tobytes()
    out += b"\x89T" + struct.pack("<I", len(raw)) + raw + b"tb"
    out += _py2_str(b"labels") + b"](" + b"".join(b"K" + bytes([int(v)]) for v in labels)
    return out + b"eu."


def write_python2(folder, batches):
    folder.mkdir(parents=True, exist_ok=True)
    for name, (pixels, labels) in batches.items():
        (folder / name).write_bytes(python2_pickle(pixels, labels))


def pixel(row_bytes, h, w, c):
    """The documented layout, independent of any reshape: channel plane, then row-major."""
    return row_bytes[c * 1024 + h * 32 + w]


# ---------------------------------------------------------------- CIFAR-10 loading

FORMATS = {
    "binary": lambda root, b: write_binary(root / "cifar-10-batches-bin", b),
    "binary-flat": write_binary,
    "python-default": lambda root, b: write_python(root / "cifar-10-batches-py", b),
    **{f"python-protocol{p}": lambda root, b, p=p: write_python(root, b, protocol=p)
       for p in range(6)},
    "python2-cpickle": lambda root, b: write_python2(root / "cifar-10-batches-py", b),
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_load_cifar10_reads_every_format(tmp_path, fmt):
    batches = all_batches()
    FORMATS[fmt](tmp_path, batches)
    Xtr, ytr, Xte, yte = load_cifar10(tmp_path)
    assert Xtr.shape == (5 * N_PER_BATCH, 32, 32, 3) and Xte.shape == (N_TEST, 32, 32, 3)
    assert Xtr.dtype == np.float64 and ytr.dtype == np.int64 and yte.dtype == np.int64
    assert Xtr.flags.c_contiguous and Xte.flags.c_contiguous
    rows = np.concatenate([batches[n][0] for n in TRAIN])          # batch order 1..5
    np.testing.assert_array_equal(ytr, np.concatenate([batches[n][1] for n in TRAIN]))
    np.testing.assert_array_equal(yte, batches["test_batch"][1])
    rng = np.random.default_rng(1)
    for i, h, w, c in zip(rng.integers(0, len(rows), 50), *rng.integers(0, 32, (2, 50)),
                          rng.integers(0, 3, 50), strict=True):
        assert Xtr[i, h, w, c] == pixel(rows[i], h, w, c)
    np.testing.assert_array_equal(Xte.transpose(0, 3, 1, 2).reshape(N_TEST, -1),
                                  batches["test_batch"][0])


def test_both_distributions_give_identical_arrays(tmp_path):
    batches = all_batches()
    write_binary(tmp_path / "bin", batches)
    write_python2(tmp_path / "py", batches)
    for a, b in zip(load_cifar10(tmp_path / "bin"), load_cifar10(tmp_path / "py"), strict=True):
        np.testing.assert_array_equal(a, b)


def test_course_aliases_are_the_same_functions():
    assert load_CIFAR10 is load_cifar10 and get_CIFAR10_data is get_cifar10_data


def test_get_cifar10_data_splits_and_subtracts_the_training_mean(tmp_path):
    batches = all_batches()
    write_binary(tmp_path, batches)
    Xtr, ytr, Xte, yte = load_cifar10(tmp_path)
    d = get_cifar10_data(tmp_path, num_training=15, num_validation=3, num_test=2)
    assert list(d) == ["X_train", "y_train", "X_val", "y_val", "X_test", "y_test"]
    assert d["X_train"].shape == (15, 3, 32, 32) and d["X_val"].shape == (3, 3, 32, 32)
    assert d["X_test"].shape == (2, 3, 32, 32) and d["X_train"].dtype == np.float64
    mean = Xtr[:15].mean(axis=0).transpose(2, 0, 1)                 # channel-first mean image
    np.testing.assert_allclose(d["X_train"].mean(axis=0), 0, atol=1e-12)
    # validation = the images right after the training ones (the course's mask)
    np.testing.assert_allclose(d["X_val"] + mean, Xtr[15:18].transpose(0, 3, 1, 2), atol=1e-12)
    np.testing.assert_allclose(d["X_test"] + mean, Xte[:2].transpose(0, 3, 1, 2), atol=1e-12)
    np.testing.assert_array_equal(d["y_train"], ytr[:15])
    np.testing.assert_array_equal(d["y_val"], ytr[15:18])
    np.testing.assert_array_equal(d["y_test"], yte[:2])
    raw = get_cifar10_data(tmp_path, 15, 3, 2, subtract_mean=False, dtype=np.float32)
    assert raw["X_val"].dtype == np.float32 and raw["y_val"].dtype == np.int64
    np.testing.assert_array_equal(raw["X_val"], Xtr[15:18].transpose(0, 3, 1, 2))


@pytest.mark.parametrize("kwargs, match", [
    ({"num_training": 18, "num_validation": 3}, "num_training=18 \\+ num_validation=3 of 20"),
    ({"num_test": 4}, "num_test=4 of 3 test"),
    ({"num_training": 0}, "num_training must be an integer >= 1"),
    ({"num_validation": -1}, "num_validation must be an integer >= 0"),
    ({"num_test": 1.5}, "num_test must be an integer"),
    ({"dtype": np.int32}, "dtype must be float64 or float32"),
])
def test_get_cifar10_data_rejects_bad_sizes(tmp_path, kwargs, match):
    write_binary(tmp_path, all_batches())
    with pytest.raises(ValueError, match=match):
        get_cifar10_data(tmp_path, **{"num_training": 15, "num_validation": 1,
                                      "num_test": 1, **kwargs})


def test_binary_version_wins_when_both_are_present(tmp_path):
    batches = all_batches()
    write_binary(tmp_path, batches)
    for name in batches:                        # python-format names holding junk
        (tmp_path / name).write_bytes(b"not a pickle")
    np.testing.assert_array_equal(load_cifar10(tmp_path)[3], batches["test_batch"][1])


# ---------------------------------------------------------------- CIFAR-10 errors

def test_missing_dataset_names_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_batch_1.bin.*data_batch_1 .*"
                                                "cifar-10-batches-py.*cs.toronto.edu"):
        load_cifar10(tmp_path)


def test_missing_batch_file_is_named(tmp_path):
    write_binary(tmp_path, all_batches())
    os.remove(tmp_path / "test_batch.bin")
    with pytest.raises(FileNotFoundError, match="test_batch.bin is missing.*data_batch_5.bin"):
        load_cifar10(tmp_path)


@pytest.mark.parametrize("size", [3073 * N_PER_BATCH - 5, 0, 100])
def test_truncated_binary_batch_names_file_and_sizes(tmp_path, size):
    write_binary(tmp_path, all_batches())
    path = tmp_path / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:size])
    with pytest.raises(ValueError, match=f"data_batch_3.bin has {size} bytes.*3073-byte "
                                         "records.*30730000 bytes"):
        load_cifar10(tmp_path)


def test_binary_labels_out_of_range_are_refused(tmp_path):
    write_binary(tmp_path, all_batches())
    path = tmp_path / "data_batch_2.bin"
    raw = bytearray(path.read_bytes())
    raw[3073] = 200                                              # label byte of record 2
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="data_batch_2.bin: labels must be 0..9, got .*200"):
        load_cifar10(tmp_path)


def test_truncated_pickle_names_the_file(tmp_path):
    write_python(tmp_path, all_batches())
    path = tmp_path / "data_batch_4"
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises((ValueError, pickle.UnpicklingError), match="data_batch_4"):
        load_cifar10(tmp_path)


def test_malformed_pickle_opcodes_are_a_value_error(tmp_path):
    write_python(tmp_path, all_batches())
    # APPEND onto a bytes object: the unpickler itself raises AttributeError.
    (tmp_path / "data_batch_2").write_bytes(b"\x80\x02C\x01aK\x01a.")
    with pytest.raises(ValueError, match="data_batch_2 is not a readable pickle"):
        load_cifar10(tmp_path)


@pytest.mark.parametrize("batch, match", [
    ({b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]}, "uint8 of shape \\(n, 3072\\)"),
    ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "got float32 \\(2, 3072\\)"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "expected 2 integer labels"),
    ({b"data": np.zeros((2, 3072), np.uint8)}, "no 'labels' entry"),
    ([1, 2, 3], "holds a list, expected a dict"),
])
def test_malformed_python_batch_is_explained(tmp_path, batch, match):
    write_python(tmp_path, all_batches())
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump(batch, f)
    with pytest.raises(ValueError, match="test_batch.*" + match):
        load_cifar10(tmp_path)


# ---------------------------------------------------------------- the safe pickle reader

class Payload:
    """Pickles as a call of `func(*args)`: what an attacker would put in a batch file."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def payloads(marker):
    """(refused global, object whose unpickling would create `marker`)."""
    return {
        "shutil.copyfile": Payload(shutil.copyfile, str(marker.parent / "test_batch"),
                                   str(marker)),
        "builtins.exec": Payload(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
        "numpy.save": Payload(np.save, str(marker), np.zeros(1)),
        "posix.system": Payload(os.system, f"touch {marker}"),
    }


@pytest.mark.parametrize("where", ["top", "in_labels"])
@pytest.mark.parametrize("name", ["shutil.copyfile", "builtins.exec", "numpy.save",
                                  "posix.system"])
@pytest.mark.parametrize("protocol", [2, pickle.DEFAULT_PROTOCOL])
def test_crafted_pickle_runs_nothing(tmp_path, name, where, protocol):
    write_python(tmp_path, all_batches())
    marker = tmp_path / "pwned.npy"              # np.save would add .npy to other names
    evil = payloads(marker)[name]
    if where == "top":
        obj = evil
    else:
        obj = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0, evil]}
    blob = pickle.dumps(obj, protocol=protocol)
    if name != "posix.system":           # prove the payload is live for a plain unpickler
        pickle.loads(blob)
        assert marker.exists()
        marker.unlink()
    (tmp_path / "data_batch_1").write_bytes(blob)
    shown = name.replace("builtins", "(builtins|__builtin__)")   # protocol 2 says __builtin__
    with pytest.raises(pickle.UnpicklingError, match=f"data_batch_1: refused global {shown}"):
        load_cifar10(tmp_path)
    assert not marker.exists()


def test_codecs_encode_is_limited_to_latin1():
    crafted = b"\x80\x02c_codecs\nencode\nX\x02\x00\x00\x00abX\x05\x00\x00\x00rot13\x86R."
    assert pickle.loads(crafted) == "no"                        # a live call for plain pickle
    with pytest.raises(pickle.UnpicklingError, match="refused _codecs.encode.*rot13"):
        data.restricted_load(io.BytesIO(crafted))
    unknown = crafted.replace(b"\x05\x00\x00\x00rot13", b"\x06\x00\x00\x00nosuch")
    with pytest.raises(pickle.UnpicklingError, match="refused _codecs.encode.*nosuch"):
        data.restricted_load(io.BytesIO(unknown))          # not a LookupError from codecs


def test_restricted_unpickler_refuses_persistent_ids():
    crafted = b"\x80\x02X\x03\x00\x00\x00pidQ."                  # BINPERSID
    with pytest.raises(pickle.UnpicklingError, match="refused persistent id"):
        data.restricted_load(io.BytesIO(crafted))


def sample_arrays():
    """Arrays of every dtype the reader builds: both byte orders, C, Fortran and strided
    layouts, empty and 0-d, and floats whose bits (nan payload, -0.0) must survive."""
    rng = np.random.default_rng(3)
    out = []
    for code in safe_pickle._DTYPE_CODES:
        for order in "<>":
            dt = np.dtype(code).newbyteorder(order)
            a = (rng.standard_normal((3, 4, 5)) * 100).astype(dt)
            out += [a, np.asfortranarray(a), a[:, ::2], np.zeros((0, 3), dt), np.array(7, dt)]
    bits = np.array([np.nan, -0.0, np.inf, 1e-310])
    bits.view(np.uint64)[0] |= 12345                            # a nan with a payload
    return out + [bits]


def same(x, y):
    """x (from pickle.loads) and y (from safe_pickle.loads) are the same, bit for bit."""
    assert type(x) is type(y), (type(x), type(y))
    if isinstance(x, np.ndarray):
        assert x.dtype.str == y.dtype.str and x.shape == y.shape
        assert x.tobytes("A") == y.tobytes("A") and y.flags.writeable
        assert (x.flags.c_contiguous, x.flags.f_contiguous) == \
            (y.flags.c_contiguous, y.flags.f_contiguous)
    elif isinstance(x, dict):
        assert list(x) == list(y)
        for k in x:
            same(x[k], y[k])
    elif isinstance(x, (list, tuple)):
        assert len(x) == len(y)
        for a, b in zip(x, y, strict=True):
            same(a, b)
    else:
        assert x == y or x != x and y != y, (x, y)


@pytest.mark.parametrize("protocol", range(6))
def test_safe_reader_builds_what_pickle_builds(protocol):
    plain = {b"data": np.arange(12, dtype=np.uint8).reshape(2, 6), "int": [0, 255, 256, 70000,
             -5, 2**31, 2**70, -2**70], "float": [1.5, -0.0, float("inf")], "none": None,
             "bools": [True, False], "bytes": [b"", b"ab\n\\\x00\xff" * 30], 3: (1, (2, ())),
             "text": ["", "\u20ac\n\\\x00\ud800"]}
    for obj in [plain, *sample_arrays()]:
        blob = pickle.dumps(obj, protocol=protocol)
        same(pickle.loads(blob), safe_pickle.loads(blob))


def test_safe_reader_reads_python2_batches_meta():
    """batches.meta as Python 2 wrote it: str keys, a list of label names, two ints."""
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
             b"ship", b"truck"]
    blob = (b"\x80\x02}q\x01(" + _py2_str(b"num_vis") + b"q\x02M\x00\x0c"
            + _py2_str(b"num_cases_per_batch") + b"q\x03M\x10'" + _py2_str(b"label_names")
            + b"q\x04]q\x05(" + b"".join(_py2_str(n) for n in names) + b"eu.")
    meta = data.restricted_load(io.BytesIO(blob))
    assert meta == {"num_vis": 3072, "num_cases_per_batch": 10000,
                    "label_names": [n.decode() for n in names]}
    assert pickle.loads(blob, encoding="latin1") == meta


def test_safe_reader_refuses_numpy_scalars_and_keeps_error_types():
    blob = pickle.dumps([np.float64(1.0)], protocol=2)             # numpy.core.multiarray.scalar
    with pytest.raises(safe_pickle.PickleRefusedError, match="refused global numpy.*scalar"):
        safe_pickle.loads(blob)
    for error in (safe_pickle.PickleRefusedError, safe_pickle.PickleMalformedError):
        assert issubclass(error, ValueError) and issubclass(error, pickle.UnpicklingError)


# ---------------------------------------------------------------- embedded digits

UCI_CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]   # the 1,797 test images


def test_digits_shapes_dtypes_and_split_sizes():
    d = get_digits_data()
    assert list(d) == ["X_train", "y_train", "X_val", "y_val", "X_test", "y_test"]
    for split, n in [("train", 1397), ("val", 200), ("test", 200)]:
        assert d[f"X_{split}"].shape == (n, 1, 8, 8) and d[f"X_{split}"].dtype == np.float64
        assert d[f"y_{split}"].shape == (n,) and d[f"y_{split}"].dtype == np.int64
    d32 = get_digits_data(num_validation=100, num_test=50, dtype=np.float32)
    assert d32["X_train"].dtype == np.float32 and len(d32["X_train"]) == 1797 - 150


def test_digits_values_classes_and_disjoint_splits():
    d = get_digits_data(subtract_mean=False)
    X = np.concatenate([d["X_train"], d["X_val"], d["X_test"]])
    y = np.concatenate([d["y_train"], d["y_val"], d["y_test"]])
    assert X.min() == 0.0 and X.max() == 1.0
    np.testing.assert_array_equal(X * 16, np.round(X * 16))     # the source's 0..16 levels
    assert np.bincount(y).tolist() == UCI_CLASS_COUNTS
    # the three splits are a partition of the packaged images (compared as multisets of rows)
    images, labels = data._load_digits_file()
    def rows(images, labels):
        flat = np.asarray(images, dtype=np.uint8).reshape(len(images), -1)
        return sorted(zip([r.tobytes() for r in flat], labels.tolist(), strict=True))

    assert rows(X * 16, y) == rows(images, labels)


def test_digits_split_is_deterministic_and_stratified():
    a, b = get_digits_data(), get_digits_data(seed=0)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    other = get_digits_data(seed=1)
    assert not np.array_equal(a["y_val"], other["y_val"])
    for split in ("val", "test"):
        share = 200 * np.array(UCI_CLASS_COUNTS) / 1797
        assert np.all(np.abs(np.bincount(a[f"y_{split}"], minlength=10) - share) <= 1)


def test_digits_training_mean_is_subtracted_everywhere():
    raw, d = get_digits_data(subtract_mean=False), get_digits_data()
    mean = raw["X_train"].mean(axis=0)
    np.testing.assert_allclose(d["X_train"].mean(axis=0), 0, atol=1e-12)
    for split in ("train", "val", "test"):
        np.testing.assert_allclose(d[f"X_{split}"], raw[f"X_{split}"] - mean, atol=1e-15)


@pytest.mark.parametrize("kwargs, match", [
    ({"num_validation": 1000, "num_test": 797}, "leaves no training images"),
    ({"num_test": -2}, "num_test must be an integer >= 0"),
    ({"dtype": np.float16}, "dtype must be float64 or float32"),
])
def test_digits_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        get_digits_data(**kwargs)


def test_digits_file_is_loaded_without_pickle(monkeypatch):
    calls = []
    real_load = np.load
    monkeypatch.setattr(np, "load", lambda *a, **kw: calls.append(kw) or real_load(*a, **kw))
    get_digits_data()
    assert calls == [{"allow_pickle": False}]
    path = ROOT / "autotensor" / "datasets" / "digits.npz"
    with real_load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["images", "labels"]
        assert npz["images"].dtype == np.uint8 and npz["labels"].dtype == np.uint8


def test_regeneration_script_reproduces_the_packaged_file(tmp_path):
    """tools/make_digits_npz.py turns the CSV layout into exactly the shipped bytes."""
    spec = importlib.util.spec_from_file_location("make_digits", ROOT / "tools" /
                                                  "make_digits_npz.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    images, labels = data._load_digits_file()
    table = np.concatenate([images.reshape(len(images), -1), labels[:, None]], axis=1)
    csv = tmp_path / "digits.csv.gz"
    with gzip.open(csv, "wt") as f:
        np.savetxt(f, table, fmt="%d", delimiter=",")
    tool.main(["--csv", str(csv), "--out", str(tmp_path / "digits.npz")])
    shipped = (ROOT / "autotensor" / "datasets" / "digits.npz").read_bytes()
    made = (tmp_path / "digits.npz").read_bytes()
    assert hashlib.sha256(made).digest() == hashlib.sha256(shipped).digest()


# ---------------------------------------------------------------- minibatches

def test_minibatches_cover_the_data_once():
    X, y = np.arange(23 * 2).reshape(23, 2), np.arange(23)
    batches = list(iterate_minibatches(X, y, 5, rng=0))
    assert [len(yb) for _, yb in batches] == [5, 5, 5, 5, 3]
    seen = np.concatenate([yb for _, yb in batches])
    assert sorted(seen) == list(range(23)) and not np.array_equal(seen, y)
    for Xb, yb in batches:
        np.testing.assert_array_equal(Xb, X[yb])                 # rows stay paired
    plain = np.concatenate([yb for _, yb in iterate_minibatches(X, y, 5, shuffle=False)])
    np.testing.assert_array_equal(plain, y)
    dropped = list(iterate_minibatches(X, y, 5, drop_last=True, rng=0))
    assert [len(yb) for _, yb in dropped] == [5, 5, 5, 5]


def test_minibatch_order_is_reproducible():
    X, y = np.zeros((10, 1)), np.arange(10)

    def order(**kw):
        return np.concatenate([yb for _, yb in iterate_minibatches(X, y, 3, **kw)])

    np.testing.assert_array_equal(order(rng=7), order(rng=7))
    np.testing.assert_array_equal(order(rng=np.random.default_rng(7)), order(rng=7))
    np.random.seed(3)
    first = order()
    np.random.seed(3)
    np.testing.assert_array_equal(order(), first)                # the global RNG, as the course


@pytest.mark.parametrize("args, match", [
    ((np.zeros((4, 2)), np.zeros(3), 2), "differ in length: 4 and 3"),
    ((np.zeros((4, 2)), np.zeros(4), 0), "batch_size must be an integer >= 1"),
])
def test_minibatch_errors_come_at_the_call(args, match):
    with pytest.raises(ValueError, match=match):
        iterate_minibatches(*args)                  # no next(): checked before iterating


def test_root_may_start_with_a_tilde(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    batches = all_batches()
    write_binary(tmp_path / "cifar" / "cifar-10-batches-bin", batches)
    np.testing.assert_array_equal(load_cifar10("~/cifar")[3], batches["test_batch"][1])


# ---------------------------------------------------------------- the data guide

def test_data_guide_examples_run():
    """The ```python blocks of docs/data.md run offline, top to bottom (CIFAR-10 ones are
    marked ```py since they need the real dataset)."""
    pytest.importorskip("matplotlib")
    text = (ROOT / "docs" / "data.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 3
    namespace = {}
    for block in blocks:
        exec(compile(block, "docs/data.md", "exec"), namespace)
    assert namespace["grid"].shape == (44, 44, 1)


# ---------------------------------------------------------------- packaged texts

def test_load_text_gives_the_packaged_play():
    text = data.load_text("macbeth")
    assert text == data.load_text()                              # the default
    assert text.startswith("First Witch:\nWhen shall we three meet again\n")
    assert 90_000 < len(text) < 100_000 and text.isascii()
    assert len(set(text)) == 61 and "Out, damned spot!" in text


def test_load_text_refuses_an_unknown_name():
    with pytest.raises(ValueError, match=r"unknown text 'hamlet'; the packaged texts are "
                                         r"\['macbeth'\]"):
        data.load_text("hamlet")
