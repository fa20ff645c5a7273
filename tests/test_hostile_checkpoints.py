"""Hostile and malformed checkpoints and state dicts: every load is all-or-nothing.

Each row of each table is one bad input. The test asserts the exception type, a fragment of
its message (which names the file, when there is one, and the entry), and that the solver /
model / optimizer / schedule is bit-for-bit what it was before the failed load (the global RNG
included).
"""

from __future__ import annotations

import copy
import gc
import io
import json
import os
import struct
import warnings
import zipfile
import zlib

import numpy as np
import pytest

import autotensor as at
from autotensor import nn, optim
from autotensor.nn import functional as F
from autotensor.optim import checkpoint


# ---- what "nothing changed" means ---------------------------------------------------------------
def fingerprint(obj):
    """A hashable, bit-exact picture of nested state (dtype, shape and bytes of every array)."""
    if isinstance(obj, at.Tensor):
        return ("tensor", fingerprint(obj.data))
    if isinstance(obj, np.ndarray):
        return ("array", obj.dtype.str, obj.shape, obj.tobytes())
    if isinstance(obj, dict):
        return ("dict", tuple((repr(k), fingerprint(v)) for k, v in obj.items()))
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, tuple(fingerprint(v) for v in obj))
    if isinstance(obj, float):
        return ("float", obj.hex())
    return (type(obj).__name__, repr(obj))


def solver_state(solver):
    model = solver.model
    inner = (model.module.state_dict() if isinstance(model, optim.ModuleModel)
             else copy.deepcopy(getattr(model, "bn_params", None)))
    return fingerprint({"params": dict(model.params), "inner": inner, "epoch": solver.epoch,
                        "best_val_acc": solver.best_val_acc, "best": solver.best_params,
                        "configs": solver.optim_configs, "loss": solver.loss_history,
                        "train": solver.train_acc_history, "val": solver.val_acc_history,
                        "rng": np.random.get_state()})


# ---- the checkpoints the rows start from --------------------------------------------------------
def make_data(seed=1):
    r = np.random.RandomState(seed)
    X = r.randn(60, 4)
    y = np.argmax(X @ r.randn(4, 3), axis=1)
    return {"X_train": X[:40], "y_train": y[:40], "X_val": X[40:], "y_val": y[40:]}


KW = dict(update_rule="adam", optim_config={"learning_rate": 0.05}, batch_size=20,
          num_epochs=1, num_train_samples=20, verbose=False)


def course_solver(seed=2):
    """A FullyConnectedNet with batch norm whose running statistics do not exist yet."""
    np.random.seed(seed)
    model = nn.models.FullyConnectedNet([6], input_dim=4, num_classes=3,
                                        normalization="batchnorm", dtype=np.float64)
    return optim.Solver(model, make_data(), **KW)


class BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.bn, self.fc2 = nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, 3)

    def forward(self, x):
        return self.fc2(F.relu(self.bn(self.fc1(x))))


def module_solver(seed=3):
    np.random.seed(seed)
    return optim.Solver(optim.ModuleModel(BNNet(), F.softmax_cross_entropy), make_data(), **KW)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """{kind: (arrays, meta)} of a valid one-epoch checkpoint of each solver kind."""
    out = {}
    for kind, make in (("course", course_solver), ("module", module_solver)):
        path = tmp_path_factory.mktemp(kind) / "good.npz"
        solver = make(seed=0)
        solver.train()
        solver.save_checkpoint(path)
        out[kind] = checkpoint.load_checkpoint(path)
    return out


# ---- writing hostile files by hand (save_checkpoint refuses to) ----------------------------------
def npy(a):
    b = io.BytesIO()
    np.lib.format.write_array(b, np.asarray(a), allow_pickle=True)
    return b.getvalue()


def raw_npy(header, data=b"", version=b"\x01\x00"):
    """A .npy entry with a header written verbatim."""
    h = header.encode("latin1")
    size = struct.pack("<H" if version == b"\x01\x00" else "<I", len(h))
    return b"\x93NUMPY" + version + size + h + data


def header(shape, descr="<f8"):
    return f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {shape!r}, }}"


def entries_of(arrays, meta):
    """[(zip name, bytes)] of a checkpoint; meta is a dict, or bytes taken as its JSON text."""
    text = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    return ([(f"{k}.npy", npy(a)) for k, a in arrays.items()]
            + [(f"{checkpoint.META_KEY}.npy", npy(np.frombuffer(text, np.uint8)))])


def write_zip(path, entries, compression=zipfile.ZIP_STORED):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")            # zipfile warns about duplicate names
        with zipfile.ZipFile(path, "w", compression) as z:
            for name, data in entries:
                z.writestr(name, data)
    return path


def patch_central_directory(path, offset, fmt, value):
    """Overwrite a field of the first central-directory record (see the zip spec)."""
    raw = bytearray(path.read_bytes())
    at_ = raw.find(b"PK\x01\x02")
    struct.pack_into(fmt, raw, at_ + offset, *value)
    path.write_bytes(bytes(raw))
    return path


# ---- rows: the file itself ----------------------------------------------------------------------
def _good(a, m, p):
    return write_zip(p, entries_of(a, m))


def _replace(name, data):
    """The good entries with `name` replaced by raw bytes `data`."""
    def make(a, m, p):
        return write_zip(p, [(n, data if n == name else d) for n, d in entries_of(a, m)])
    return make


def _extra(name, data):
    def make(a, m, p):
        return write_zip(p, entries_of(a, m) + [(name, data)])
    return make


def _meta_text(text):
    def make(a, m, p):
        return write_zip(p, entries_of(a, text))
    return make


def _truncated(a, m, p):
    raw = _good(a, m, p).read_bytes()
    p.write_bytes(raw[:len(raw) // 2])
    return p


def _flipped(a, m, p):
    raw = bytearray(_good(a, m, p).read_bytes())
    raw[raw.find(npy(a["params/W1"])) + 100] ^= 0x40
    p.write_bytes(bytes(raw))
    return p


def _zip_bomb(a, m, p):
    """A ~32 KiB file whose one entry inflates to 32 MiB (never inflated: refused first)."""
    info = zipfile.ZipInfo("params/W1.npy")
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(p, "w") as z:
        z.writestr(info, raw_npy(header((4 << 20,))) + bytes(32 << 20), compresslevel=1)
    return p


def _declared_too_big(a, m, p):
    """The first entry's compressed and uncompressed sizes claim 1 GiB."""
    return patch_central_directory(_good(a, m, p), 20, "<II", (1 << 30, 1 << 30))


def _encrypted(a, m, p):
    return patch_central_directory(_good(a, m, p), 8, "<H", (0x1,))


FILE_ROWS = [
    # (id, make(arrays, meta, path) -> path, message fragment)
    ("truncated", _truncated, "truncated or corrupted"),
    ("empty", lambda a, m, p: (p.write_bytes(b""), p)[1], "is empty"),
    ("not-a-zip", lambda a, m, p: (p.write_text("hello"), p)[1], "not an .npz archive"),
    ("crc", _flipped, "CRC"),
    ("compressed", lambda a, m, p: write_zip(p, entries_of(a, m), zipfile.ZIP_DEFLATED),
     "compressed"),
    ("zip-bomb", _zip_bomb, r"\['params/W1.npy'\] are compressed"),
    ("duplicate-entry", _extra("params/W1.npy", npy(np.zeros((4, 6)))),
     r"duplicate entries \['params/W1.npy'\]"),
    ("sizes-beyond-file", _declared_too_big, "entries declare"),
    ("encrypted", _encrypted, "encrypted"),
    ("not-npy-entry", _extra("params/evil.pkl", b"\x80\x04K\x01."), "not .npy arrays"),
    ("directory-entry", _extra("params/", b""), "not .npy arrays"),
    ("2**40-elements", _replace("params/W1.npy", raw_npy(header((1 << 40,)), bytes(8))),
     r"'params/W1.npy' declares shape \(1099511627776,\)"),
    ("2**40-elements-v2", _replace("params/W1.npy", raw_npy(header((1 << 20, 1 << 20)),
                                                            bytes(8), b"\x02\x00")),
     "'params/W1.npy' declares shape"),
    ("negative-shape", _replace("params/W1.npy", raw_npy(header((-1, 6)), bytes(8))),
     r"declares shape \(-1, 6\)"),
    ("trailing-bytes", _replace("params/W1.npy", raw_npy(header((2,)), bytes(24))),
     "stores 24 bytes"),
    ("short-data", _replace("params/W1.npy", raw_npy(header((4, 6)), bytes(8))),
     "stores 8 bytes"),
    ("object-array", _replace("params/W1.npy", npy(np.array([{"a": 1}], dtype=object))),
     "object array"),
    ("string-array", _replace("params/W1.npy", npy(np.array(["abc"]))),
     "'params/W1.npy' has dtype <U3"),
    ("structured-array", _replace("params/W1.npy", npy(np.zeros(2, "f8,i4"))),
     "numeric arrays only"),
    ("datetime-array", _replace("params/W1.npy", npy(np.zeros(2, "M8[s]"))),
     "numeric arrays only"),
    ("header-not-a-dict", _replace("params/W1.npy", raw_npy("[1, 2, 3]")),
     "'params/W1.npy' has a malformed .npy header"),
    ("header-bad-magic", _replace("params/W1.npy", b"\x93NUMPX\x01\x00" + bytes(80)),
     "malformed .npy header"),
    ("header-version-9", _replace("params/W1.npy", raw_npy(header((1,)), bytes(8), b"\x09\x00")),
     "unsupported .npy format version"),
    ("header-huge", _replace("params/W1.npy", raw_npy(header((1,)) + " " * 20000, bytes(8),
                                                      b"\x02\x00")), "malformed .npy header"),
    ("header-deep-literal", _replace("params/W1.npy", raw_npy("(" * 5000 + ")" * 5000)),
     "malformed .npy header"),
    ("header-bad-descr", _replace("params/W1.npy", raw_npy(header((1,), "<q9"), bytes(8))),
     "malformed .npy header"),
    ("no-meta", lambda a, m, p: write_zip(p, entries_of(a, m)[:-1]), "no '__meta__'"),
    ("meta-float", _replace("__meta__.npy", npy(np.zeros(3))), "expected 1-d uint8"),
    ("meta-not-json", _meta_text(b'{"epoch": 1,'), "not valid JSON"),
    ("meta-not-utf8", _meta_text(b'{"a": "\xff"}'), "not valid JSON"),
    ("meta-a-list", _meta_text(b"[1, 2]"), "expected a JSON object"),
    ("meta-deep", _meta_text(b"[" * 100_000 + b"]" * 100_000), "nests 100000 levels"),
    ("meta-deep-in-object", _meta_text(b'{"a": ' + b"{" * 17 + b"}" * 17 + b"}"),
     "nests 18 levels"),
    ("meta-too-big", _meta_text(b'{"a": "' + b"x" * (16 << 20) + b'"}'), "more than the"),
    ("meta-duplicate-key", _meta_text(b'{"epoch": 1, "epoch": 2}'),
     r"duplicate keys \['epoch'\]"),
    ("meta-5000-digits", _meta_text(b'{"epoch": ' + b"9" * 5000 + b"}"), "refused"),
]


@pytest.mark.parametrize("make, match", [r[1:] for r in FILE_ROWS], ids=[r[0] for r in FILE_ROWS])
def test_hostile_file_changes_nothing(saved, tmp_path, make, match):
    path = make(*copy.deepcopy(saved["course"]), tmp_path / "hostile.npz")
    solver = course_solver()
    before = solver_state(solver)
    with pytest.raises(ValueError, match=match) as info:
        solver.load_checkpoint(path)
    assert "hostile.npz" in str(info.value)
    assert solver_state(solver) == before


# ---- rows: a readable file with wrong contents --------------------------------------------------
def _set(key, value):
    def edit(a, m):
        (a if "/" in key else m)[key] = value
    return edit


def _meta(*path, value):
    """Set meta[path[0]][path[1]]... = value."""
    def edit(a, m):
        d = m
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return edit


def _pop(key):
    return lambda a, m: (a if "/" in key else m).pop(key)


def _both_buffers(shape):
    def edit(a, m):
        a["buffers/bn_params.0.running_mean"] = np.zeros(shape)
        a["buffers/bn_params.0.running_var"] = np.ones(shape)
    return edit


def _rename_buffer(new):
    def edit(a, m):
        a[f"buffers/{new}"] = a.pop("buffers/bn_params.0.running_mean")
        m["buffer_names"] = [new if n.endswith("0.running_mean") else n
                             for n in m["buffer_names"]]
    return edit


NAN = float("nan")
COURSE_ROWS = [
    # (id, edit(arrays, meta), message fragment); the course model is FullyConnectedNet + adam
    ("format", _meta("format", value="other"), "not a autotensor.Solver checkpoint"),
    ("version-2", _meta("version", value=2), "of version 1"),
    ("missing-meta-key", _pop("best_names"), r"missing keys \['best_names'\]"),
    ("unknown-meta-key", _meta("evil", value=1), r"unknown keys \['evil'\]"),
    ("epoch-negative", _meta("epoch", value=-1), "'epoch' must be an integer >= 0, got -1"),
    ("epoch-float", _meta("epoch", value=1.5), "'epoch' must be an integer"),
    ("epoch-bool", _meta("epoch", value=True), "'epoch' must be an integer"),
    ("epoch-string", _meta("epoch", value="1"), "'epoch' must be an integer"),
    ("best-acc-nan", _meta("best_val_acc", value=NAN), "'best_val_acc' must be a finite"),
    ("best-acc-2", _meta("best_val_acc", value=2.0),
     r"'best_val_acc' must be a finite number in \[0, 1\]"),
    ("best-acc-string", _meta("best_val_acc", value="0.5"), "'best_val_acc' must be a finite"),
    ("lr-decay-zero", _meta("lr_decay", value=0), "'lr_decay' must be a finite number > 0"),
    ("batch-size-zero", _meta("batch_size", value=0), "'batch_size' must be an integer >= 1"),
    ("val-samples-zero", _meta("num_val_samples", value=0), "'num_val_samples' must be"),
    ("update-rule", _meta("update_rule", value="sgd"), "update rule 'sgd'"),
    ("update-rule-list", _meta("update_rule", value=["adam"]), r"update rule \['adam'\]"),
    ("param-names-dup", _meta("param_names", value=["W1", "W1"]), "list of distinct names"),
    ("param-names-dict", _meta("param_names", value={"W1": 1}), "list of distinct names"),
    ("param-names-extra", lambda a, m: m["param_names"].append("W9"), "differ from the model"),
    ("best-names-partial", _meta("best_names", value=["W1"]), "best params"),
    ("buffer-names-int", _meta("buffer_names", value=[1]), "list of distinct names"),
    ("scalars-missing-param", lambda a, m: m["optim_scalars"].pop("W1"),
     "'optim_scalars' must map each parameter"),
    ("scalars-not-object", _meta("optim_scalars", "W1", value=[1]),
     r"optim_scalars\['W1'\] must be an object"),
    ("lr-negative", _meta("optim_scalars", "W1", "learning_rate", value=-1.0),
     "optim config W1.learning_rate must be a finite number >= 0"),
    ("lr-string", _meta("optim_scalars", "W1", "learning_rate", value="0.1"),
     'W1.learning_rate must be a finite number >= 0, got the string "0.1"'),
    ("lr-nan", _meta("optim_scalars", "b1", "learning_rate", value=NAN),
     "b1.learning_rate must be a finite number >= 0, got nan"),
    ("lr-inf", _meta("optim_scalars", "W2", "learning_rate", value=float("inf")),
     "W2.learning_rate must be a finite number"),
    ("lr-bool", _meta("optim_scalars", "W2", "learning_rate", value=True), "finite number"),
    ("lr-null", _meta("optim_scalars", "W2", "learning_rate", value=None), "finite number"),
    ("beta1-one", _meta("optim_scalars", "W1", "beta1", value=1.0),
     r"W1.beta1 must be a finite number in \[0, 1\)"),
    ("epsilon-zero", _meta("optim_scalars", "W1", "epsilon", value=0.0),
     "W1.epsilon must be a finite number > 0"),
    ("t-negative", _meta("optim_scalars", "W1", "t", value=-1), "W1.t must be an integer >= 0"),
    ("t-float", _meta("optim_scalars", "W1", "t", value=2.5), "W1.t must be an integer"),
    ("custom-scalar-list", _meta("optim_scalars", "W1", "extra", value=[1, 2]),
     "W1.extra must be a finite number"),
    ("arrays-not-list", _meta("optim_arrays", "W1", value="m"), r"optim_arrays\['W1'\]"),
    ("arrays-overlap-scalars", _meta("optim_arrays", "W1", value=["m", "v", "t"]),
     r"optim_arrays\['W1'\]"),
    ("optim-array-missing", _pop("optim/W1/v"), "'optim/W1/v' is missing"),
    ("optim-array-shape", _set("optim/W1/m", np.zeros((6, 4))), r"'optim/W1/m' has shape \(6, 4\)"),
    ("optim-array-complex", _set("optim/W1/m", np.zeros((4, 6), complex)),
     "'optim/W1/m' has dtype complex128, expected real numbers"),
    ("optim-array-string", _set("optim/b1/m", np.array(["a"] * 6)),
     "entry 'optim/b1/m.npy' has dtype <U1"),
    ("optim-v-negative", _set("optim/W1/v", -np.ones((4, 6))), "'optim/W1/v' holds negative"),
    ("params-shape", _set("params/W1", np.zeros((5, 6))), r"'params/W1' has shape \(5, 6\)"),
    ("params-int", _set("params/W1", np.zeros((4, 6), int)), "'params/W1' has dtype int64"),
    ("params-complex", _set("params/b1", np.zeros(6, complex)), "'params/b1' has dtype complex"),
    ("params-bool", _set("params/b1", np.zeros(6, bool)), "'params/b1' has dtype bool"),
    ("params-missing", _pop("params/W2"), "'params/W2' is missing"),
    ("best-shape", _set("best/W2", np.zeros(3)), r"'best/W2' has shape \(3,\)"),
    ("history-2d", _set("history/loss", np.zeros((2, 2))), "'history/loss' has shape"),
    ("history-int", _set("history/loss", np.zeros(2, int)), "'history/loss' has dtype int64"),
    ("history-acc-above-1", _set("history/val_acc", np.array([0.5, 1.5])),
     "'history/val_acc' holds values outside"),
    ("history-acc-nan", _set("history/train_acc", np.array([0.5, NAN])),
     "'history/train_acc' holds values outside"),
    ("history-lengths", _set("history/val_acc", np.array([0.5])), "lengths 2 and 1"),
    ("rng-kind", _meta("rng", "kind", value="PCG64"), "rng kind 'PCG64'"),
    ("rng-pos-625", _meta("rng", "pos", value=625), "rng pos 625"),
    ("rng-pos-negative", _meta("rng", "pos", value=-1), "rng pos must be an integer >= 0"),
    ("rng-has-gauss-2", _meta("rng", "has_gauss", value=2), "has_gauss 2"),
    ("rng-cached-nan", _meta("rng", "cached_gaussian", value=NAN), "cached_gaussian must be"),
    ("rng-field-missing", lambda a, m: m["rng"].pop("pos"), "'rng' must hold exactly"),
    ("rng-keys-zero", _set("rng/keys", np.zeros(624, np.uint32)), "'rng/keys'.*nonzero"),
    ("rng-keys-int64", _set("rng/keys", np.ones(624, np.int64)), "'rng/keys' has dtype int64"),
    ("rng-keys-short", _set("rng/keys", np.ones(10, np.uint32)), r"'rng/keys' has shape \(10,\)"),
    ("buffer-string", _set("buffers/bn_params.0.running_mean", np.array(["x"] * 6)),
     "entry 'buffers/bn_params.0.running_mean.npy' has dtype <U1"),
    ("buffer-int", _set("buffers/bn_params.0.running_var", np.ones(6, int)), "has dtype int64"),
    ("buffer-wrong-shape-both", _both_buffers(7), r"has shape \(7,\), the model expects \(6,\)"),
    ("buffer-scalar-both", _both_buffers(()), r"has shape \(\), the model expects \(6,\)"),
    ("buffer-sibling-mismatch", _set("buffers/bn_params.0.running_var", np.ones(5)),
     r"'bn_params.0.running_var' has shape \(5,\)"),
    ("buffer-unknown-key", _rename_buffer("bn_params.0.foo"), "'bn_params.0.foo' does not exist"),
    ("buffer-non-canonical", _rename_buffer("bn_params.00.running_mean"), "does not exist"),
    ("buffer-out-of-range", _rename_buffer("bn_params.5.running_mean"), "does not exist"),
    ("buffer-not-listed", lambda a, m: m["buffer_names"].pop(), "unexpected array"),
    ("unexpected-array", _set("params/evil", np.zeros(1)), r"unexpected array\(s\)"),
]


def _write_raw(arrays, meta, path):
    """Like save_checkpoint without its checks (a hostile writer)."""
    return write_zip(path, entries_of(arrays, meta))


@pytest.mark.parametrize("edit, match", [r[1:] for r in COURSE_ROWS],
                         ids=[r[0] for r in COURSE_ROWS])
def test_bad_course_checkpoint_changes_nothing(saved, tmp_path, edit, match):
    arrays, meta = copy.deepcopy(saved["course"])
    edit(arrays, meta)
    path = _write_raw(arrays, meta, tmp_path / "bad.npz")
    solver = course_solver()
    before = solver_state(solver)
    with pytest.raises(ValueError, match=match) as info:
        solver.load_checkpoint(path)
    assert "bad.npz" in str(info.value)
    assert solver_state(solver) == before


def _rename_module_buffer(a, m):
    a["buffers/bn.evil"] = a.pop("buffers/bn.running_var")
    m["buffer_names"] = ["bn.running_mean", "bn.evil", "bn.num_batches_tracked"]


MODULE_ROWS = [
    ("buffer-string", _set("buffers/bn.running_mean", np.array(["a"] * 5)),
     "entry 'buffers/bn.running_mean.npy' has dtype <U1"),
    ("buffer-shape", _set("buffers/bn.running_var", np.ones(4)),
     r"'bn.running_var' has shape \(5,\) in the model but \(4,\)"),
    ("buffer-missing", _pop("buffers/bn.running_var"), "'buffers/bn.running_var' is missing"),
    ("buffer-unknown", _rename_module_buffer, "differ from the module"),
    ("param-complex", _set("params/fc1.weight", np.zeros((4, 5), complex)), "has dtype complex"),
    ("param-late-shape", _set("params/fc2.bias", np.zeros(4)), r"'params/fc2.bias' has shape"),
    ("rng-late", _meta("rng", "pos", value=999), "rng pos 999"),
]


@pytest.mark.parametrize("edit, match", [r[1:] for r in MODULE_ROWS],
                         ids=[r[0] for r in MODULE_ROWS])
def test_bad_module_model_checkpoint_changes_nothing(saved, tmp_path, edit, match):
    arrays, meta = copy.deepcopy(saved["module"])
    edit(arrays, meta)
    path = _write_raw(arrays, meta, tmp_path / "mm.npz")
    solver = module_solver()
    solver.model.loss(make_data()["X_train"], make_data()["y_train"])   # buffers move
    before = solver_state(solver)
    with pytest.raises(ValueError, match=match) as info:
        solver.load_checkpoint(path)
    assert "mm.npz" in str(info.value)
    assert solver_state(solver) == before


def test_module_model_buffers_go_through_the_checked_path():
    """The issue's case without a file: a string buffer after valid ones writes nothing."""
    model = optim.ModuleModel(BNNet(), F.softmax_cross_entropy)
    before = fingerprint(model.module.state_dict())
    with pytest.raises(ValueError, match="'bn.running_var' has dtype <U1"):
        model.load_buffers({"bn.running_mean": np.ones(5), "bn.running_var": np.array(["x"] * 5),
                            "bn.num_batches_tracked": np.array(0)})
    with pytest.raises(ValueError, match="'fc2.bias' has dtype <U1"):
        model.params = {**{k: v + 1 for k, v in model.params.items()},
                        "fc2.bias": np.array(["x"] * 3)}
    assert fingerprint(model.module.state_dict()) == before


def test_course_model_buffers_that_exist_are_checked_like_a_state_dict():
    np.random.seed(5)
    model = nn.models.FullyConnectedNet([6], input_dim=4, num_classes=3,
                                        normalization="batchnorm", dtype=np.float64)
    model.loss(make_data()["X_train"], make_data()["y_train"])   # creates the statistics
    buffers = {k: v + 1 for k, v in model.buffers.items()}
    before = fingerprint(copy.deepcopy(model.bn_params))
    for bad, match in [(np.ones(6, complex), "complex128"), (np.array(["x"] * 6), "<U1"),
                       (np.zeros((6, 1)), r"shape \(6, 1\)")]:
        with pytest.raises(ValueError, match=rf"'bn_params.0.running_var' has (dtype )?{match}"):
            model.load_buffers({**buffers, "bn_params.0.running_var": bad})
        assert fingerprint(copy.deepcopy(model.bn_params)) == before
    model.load_buffers({k: v.astype(np.float32) for k, v in buffers.items()})
    assert model.bn_params[0]["running_var"].dtype == np.float64       # the model's dtype kept


# ---- rows: Module.load_state_dict ---------------------------------------------------------------
class CountingNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.bn = nn.Linear(3, 2), nn.BatchNorm1d(2)
        self.register_buffer("steps", np.zeros((), np.int64))

    def forward(self, x):
        return self.bn(self.fc(x))


def _entry(key, value):
    return lambda sd: sd.update({key: value})


STATE_DICT_ROWS = [
    # (id, edit(state dict), message fragment); "steps" is last in the order, "fc.weight" first
    ("late-string", _entry("steps", np.array("abc")), "'steps' has dtype <U3"),
    ("late-float-into-int", _entry("steps", np.array(1.5)), "'steps' has dtype float64"),
    ("complex", _entry("bn.running_var", np.ones(2, complex)),
     "'bn.running_var' has dtype complex128"),
    ("object", _entry("bn.weight", np.array([None, None])), "'bn.weight' has dtype object"),
    ("none", _entry("bn.bias", None), "'bn.bias' has shape"),
    ("dict-value", _entry("bn.bias", {"a": 1}), "'bn.bias' has shape"),
    ("ragged", _entry("fc.weight", [[1.0, 2.0], [3.0]]), "'fc.weight' is not an array"),
    ("strings-list", _entry("fc.bias", ["1", "2"]), "'fc.bias' has dtype <U1"),
    ("datetime", _entry("fc.bias", np.zeros(2, "M8[s]")), "'fc.bias' has dtype datetime64"),
    ("late-shape", _entry("bn.running_mean", np.zeros(3)), r"'bn.running_mean' has shape \(2,\)"),
    ("tensor-shape", _entry("fc.bias", at.Tensor(np.zeros(3))), r"'fc.bias' has shape \(2,\)"),
    ("missing", lambda sd: sd.pop("bn.weight"), r"missing keys \['bn.weight'\]"),
    ("unexpected", _entry("evil", np.zeros(1)), r"unexpected keys \['evil'\]"),
]


@pytest.mark.parametrize("edit, match", [r[1:] for r in STATE_DICT_ROWS],
                         ids=[r[0] for r in STATE_DICT_ROWS])
def test_bad_state_dict_changes_nothing(edit, match):
    net, other = CountingNet(), CountingNet()
    state = {k: v + 1 for k, v in other.state_dict().items()}     # every entry differs
    edit(state)
    before = fingerprint(net.state_dict())
    with pytest.raises(ValueError, match=match) as info:
        net.load_state_dict(state)
    assert "load_state_dict for CountingNet" in str(info.value)
    assert fingerprint(net.state_dict()) == before


def test_state_dict_that_is_not_a_dict():
    net = CountingNet()
    with pytest.raises(ValueError, match="expected a dict of arrays, got list"):
        net.load_state_dict([("fc.weight", np.zeros((3, 2)))])


def test_valid_casts_still_load():
    """int and bool into float, float64 into float32: allowed, as before."""
    net = CountingNet().astype(np.float32)
    state = net.state_dict()
    state["fc.weight"] = np.ones((3, 2), np.int64)
    state["fc.bias"] = np.array([True, False])
    state["bn.weight"] = np.full(2, 0.5)
    net.load_state_dict(state)
    assert net.fc.weight.dtype == np.float32 and net.fc.bias.data.tolist() == [1.0, 0.0]
    assert net.bn.weight.data.tolist() == [0.5, 0.5]


# ---- rows: optimizer state_dict -----------------------------------------------------------------
def _stepped(make):
    np.random.seed(4)
    params = [at.Tensor(np.random.randn(3, 2), requires_grad=True),
              at.Tensor(np.random.randn(2), requires_grad=True)]
    opt = make(params)
    for p in params:
        p.grad = np.random.randn(*p.shape)
    opt.step()
    return params, opt


def SGD(ps):
    return optim.SGD(ps, lr=0.1, momentum=0.9)


def ADAM(ps):
    return optim.Adam(ps, lr=0.01)


def _group(key, value):
    return lambda sd: sd["param_groups"][0].update({key: value})


def _state(i, key, value):
    return lambda sd: sd["state"][i].update({key: value})


OPTIMIZER_ROWS = [
    # (id, optimizer, edit(state dict), message fragment)
    ("lr-string", SGD, _group("lr", "0.1"), "param group 0: 'lr' must be a finite number"),
    ("lr-nan", SGD, _group("lr", NAN), "'lr' must be a finite number, got nan"),
    ("lr-inf", ADAM, _group("lr", float("inf")), "'lr' must be a finite number"),
    ("lr-negative", SGD, _group("lr", -1.0), "param group 0: .*(lr|learning rate)"),
    ("lr-bool", SGD, _group("lr", True), "'lr' must be a finite number"),
    ("lr-complex", ADAM, _group("lr", 0.1 + 1j), "'lr' must be a finite number"),
    ("lr-none", SGD, _group("lr", None), "'lr' must be a finite number"),
    ("momentum-nan", SGD, _group("momentum", NAN), "'momentum' must be a finite number"),
    ("momentum-negative", SGD, _group("momentum", -0.5), "param group 0: .*momentum"),
    ("nesterov-string", SGD, _group("nesterov", "yes"), "'nesterov' must be True or False"),
    ("weight-decay-negative", SGD, _group("weight_decay", -1.0), "param group 0: .*weight_decay"),
    ("weight-decay-nan", ADAM, _group("weight_decay", NAN), "'weight_decay' must be a finite"),
    ("betas-one-value", ADAM, _group("betas", (0.9,)), "'betas' must be 2 finite numbers"),
    ("betas-strings", ADAM, _group("betas", "ab"), "'betas' must be 2 finite numbers"),
    ("betas-nan", ADAM, _group("betas", (NAN, 0.9)), r"'betas'\[0\] must be a finite number"),
    ("betas-out-of-range", ADAM, _group("betas", (1.0, 0.999)), "param group 0: .*betas"),
    ("eps-nan", ADAM, _group("eps", NAN), "'eps' must be a finite number"),
    ("group-missing-key", ADAM, lambda sd: sd["param_groups"][0].pop("eps"), "another optimizer"),
    ("group-not-dict", SGD, lambda sd: sd["param_groups"].__setitem__(0, [1]), "param group 0"),
    ("groups-not-list", SGD, lambda sd: sd.update(param_groups="x"), "must be a list"),
    ("groups-count", SGD, lambda sd: sd["param_groups"].append({}), "2 param groups"),
    ("group-numbering", SGD, _group("params", [1, 0]), r"numbers its parameters \[1, 0\]"),
    ("group-params-count", SGD, _group("params", [0]), "state_dict has 1 parameters"),
    ("state-not-dict", SGD, lambda sd: sd.update(state=[1]), "must be a list and"),
    ("state-index-string", SGD, lambda sd: sd["state"].update({"0": sd["state"].pop(0)}),
     "state for parameter '0'"),
    ("state-index-range", SGD, lambda sd: sd["state"].update({5: sd["state"].pop(0)}),
     "state for parameter 5"),
    ("state-index-bool", SGD, lambda sd: sd.update(state={True: sd["state"][1]}),
     "parameter True"),
    ("state-entry-list", SGD, lambda sd: sd["state"].update({1: [1]}),
     "state of parameter 1 is a list"),
    ("state-unknown-key", SGD, _state(0, "m", np.zeros((3, 2))), r"\['m'\]; SGD keeps only"),
    ("state-partial", ADAM, lambda sd: sd["state"][1].pop("v"), "all of"),
    ("velocity-string", SGD, _state(1, "velocity", np.array(["a", "b"])),
     "state 'velocity' of parameter 1 has dtype <U1"),
    ("velocity-complex", SGD, _state(0, "velocity", np.zeros((3, 2), complex)),
     "has dtype complex128"),
    ("velocity-list", SGD, _state(0, "velocity", [[0.0] * 2] * 3),
     "must be an array or a step count"),
    ("velocity-shape", SGD, _state(1, "velocity", np.zeros(7)), r"has shape \(7,\)"),
    ("velocity-string-scalar", SGD, _state(1, "velocity", "abc"), "array or a step count"),
    ("adam-t-negative", ADAM, _state(1, "t", -1),
     r"'t' of parameter 1 \(a step count\) must be an integer >= 0"),
    ("adam-t-float", ADAM, _state(0, "t", 1.5), "'t' of parameter 0 must be an array or"),
    ("adam-t-string", ADAM, _state(0, "t", "3"), "'t' of parameter 0 must be an array or"),
    ("adam-v-negative", ADAM, _state(0, "v", -np.ones((3, 2))), "'v' of parameter 0 holds neg"),
    ("adam-m-object", ADAM, _state(1, "m", np.array([None, 1])), "has dtype object"),
]


@pytest.mark.parametrize("make, edit, match", [r[1:] for r in OPTIMIZER_ROWS],
                         ids=[r[0] for r in OPTIMIZER_ROWS])
def test_bad_optimizer_state_dict_changes_nothing(make, edit, match):
    _, source = _stepped(make)
    state_dict = source.state_dict()
    edit(state_dict)
    params, opt = _stepped(make)
    opt.param_groups[0]["lr"] = 0.123                 # differs from the loaded one
    before = fingerprint((opt.state_dict(), params))
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(state_dict)
    assert fingerprint((opt.state_dict(), params)) == before


# ---- rows: schedule state_dict ------------------------------------------------------------------
def STEP(opt):
    return optim.StepLR(opt, step_size=2, gamma=0.5)


def COS(opt):
    return optim.CosineAnnealingLR(opt, T_max=5, eta_min=0.01)


SCHEDULE_ROWS = [
    ("not-a-dict", STEP, lambda s: [1], "StepLR state_dict is a dict"),
    ("unknown-key", STEP, lambda s: {**s, "evil": 1}, r"unknown keys \['evil'\]"),
    ("last-epoch-negative", STEP, lambda s: {**s, "last_epoch": -1},
     "'last_epoch' must be an integer >= 0"),
    ("last-epoch-float", STEP, lambda s: {**s, "last_epoch": 1.5}, "'last_epoch' must be an int"),
    ("last-epoch-bool", COS, lambda s: {**s, "last_epoch": True}, "'last_epoch' must be an int"),
    ("base-lrs-length", STEP, lambda s: {**s, "base_lrs": [0.1, 0.2]}, "one lr per param group"),
    ("base-lrs-string", STEP, lambda s: {**s, "base_lrs": "0.1"}, "one lr per param group"),
    ("base-lrs-nan", COS, lambda s: {**s, "base_lrs": [NAN]}, r"'base_lrs'\[0\] must be a finite"),
    ("base-lrs-negative", COS, lambda s: {**s, "base_lrs": [-0.1]},
     r"'base_lrs'\[0\] must be a finite number >="),
    ("step-size-zero", STEP, lambda s: {**s, "step_size": 0},
     "'step_size' must be an integer >= 1"),
    ("step-size-float", STEP, lambda s: {**s, "step_size": 2.0}, "'step_size' must be an int"),
    ("gamma-string", STEP, lambda s: {**s, "gamma": "0.5"}, "'gamma' must be a finite number"),
    ("gamma-zero", STEP, lambda s: {**s, "gamma": 0.0}, "'gamma' must be a finite number > 0"),
    ("t-max-zero", COS, lambda s: {**s, "T_max": 0}, "'T_max' must be an integer >= 1"),
    ("eta-min-nan", COS, lambda s: {**s, "eta_min": NAN}, "'eta_min' must be a finite number"),
    ("late-bad-entry", COS, lambda s: {"last_epoch": 3, "base_lrs": [0.2], "eta_min": -1.0},
     "'eta_min' must be a finite number >= 0"),
]


@pytest.mark.parametrize("make, edit, match", [r[1:] for r in SCHEDULE_ROWS],
                         ids=[r[0] for r in SCHEDULE_ROWS])
def test_bad_schedule_state_dict_changes_nothing(make, edit, match):
    opt = optim.SGD([at.Tensor(np.ones(2), requires_grad=True)], lr=0.1)
    sched = make(opt)
    sched.step()
    bad = edit(copy.deepcopy(sched.state_dict()))
    before = fingerprint((sched.state_dict(), opt.param_groups[0]["lr"]))
    with pytest.raises(ValueError, match=match):
        sched.load_state_dict(bad)
    assert fingerprint((sched.state_dict(), opt.param_groups[0]["lr"])) == before


def test_the_tables_cover_enough_cases():
    rows = (FILE_ROWS, COURSE_ROWS, MODULE_ROWS, STATE_DICT_ROWS, OPTIMIZER_ROWS, SCHEDULE_ROWS)
    assert sum(map(len, rows)) >= 150
    for table in rows:
        ids = [r[0] for r in table]
        assert len(set(ids)) == len(ids)


# ---- handles ------------------------------------------------------------------------------------
def _open_fds():
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None


@pytest.mark.parametrize("make", [_truncated, _flipped, _zip_bomb,
                                  _replace("params/W1.npy", raw_npy("[1]"))],
                         ids=["truncated", "crc", "compressed", "bad-header"])
def test_failed_loads_close_the_file(saved, tmp_path, make):
    path = make(*copy.deepcopy(saved["course"]), tmp_path / "h.npz")
    fds = _open_fds()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError):
            checkpoint.load_checkpoint(path)
        gc.collect()                          # an unclosed file warns when it is collected
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert _open_fds() == fds


def test_zip_bomb_is_refused_without_inflating(saved, tmp_path, monkeypatch):
    path = _zip_bomb(*copy.deepcopy(saved["course"]), tmp_path / "bomb.npz")
    assert os.path.getsize(path) < 1 << 20
    monkeypatch.setattr(zlib, "decompressobj", None)     # inflating would now crash loudly
    with pytest.raises(ValueError, match="compressed"):
        checkpoint.load_checkpoint(path)
