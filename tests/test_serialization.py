"""at.save / at.load: safetensors files that round-trip state dicts and whole checkpoints,
read by other safetensors readers (and torch), written atomically, and read as hostile input."""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
from safetensors.numpy import load as reference_load
from safetensors.numpy import load_file as reference_load_file

import autotensor as at
from autotensor import nn, optim, serialization
from autotensor.nn import functional as F


def fingerprint(obj):
    """A bit-exact picture of nested state: types, dict key types and order, array bytes."""
    if isinstance(obj, np.ndarray):
        return ("array", obj.dtype.str, obj.shape, obj.tobytes())
    if isinstance(obj, dict):
        return ("dict", tuple((type(k).__name__, k, fingerprint(v)) for k, v in obj.items()))
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, tuple(fingerprint(v) for v in obj))
    if isinstance(obj, float):
        return ("float", obj.hex())
    return (type(obj).__name__, repr(obj))


def trained_net_and_optimizer():
    np.random.seed(0)
    net = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))
    opt = optim.Adam([{"params": net[0].parameters()},
                      {"params": list(net[1].parameters()) + list(net[3].parameters()),
                       "lr": 1e-2}], lr=1e-3)
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    x, y = np.random.randn(8, 4), np.array([0, 1, 2, 0, 1, 2, 0, 1])
    for _ in range(3):
        loss = F.softmax_cross_entropy(net(at.Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return net, opt, sched


# ---- round trips ------------------------------------------------------------------------------
def test_a_state_dict_round_trips_in_order_and_loads_into_the_module(tmp_path):
    net, _, _ = trained_net_and_optimizer()
    state = net.state_dict()
    path = at.save(state, tmp_path / "m.safetensors")
    assert path == str(tmp_path / "m.safetensors")
    loaded = at.load(tmp_path / "m.safetensors")
    assert fingerprint(loaded) == fingerprint(state)              # same keys, order, bytes
    assert all(a.flags.writeable for a in loaded.values())
    other = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))
    other.load_state_dict(loaded)
    assert fingerprint(other.state_dict()) == fingerprint(state)


def test_a_flat_state_dict_is_exactly_those_tensors_for_any_reader(tmp_path):
    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "scalar": np.array(2.5),
              "empty": np.zeros((0, 4)), "mask": np.array([True, False]),
              "half": np.array([1.5, -2.0], np.float16), "u": np.arange(3, dtype=np.uint16),
              "i8": np.array([-1, 2], np.int8), "big": np.arange(4, dtype=np.uint64) << 60,
              "t": np.arange(12.0).reshape(3, 4).T,                       # not contiguous
              "be": np.arange(3, dtype=">i4"), "fortran": np.asfortranarray(np.eye(3))}
    arrays["tensor"] = at.randn(2, 2)
    path = at.save(arrays, tmp_path / "flat.safetensors")
    theirs = reference_load_file(path)
    assert sorted(theirs) == sorted(arrays)
    for name, a in arrays.items():
        a = a.data if isinstance(a, at.Tensor) else a
        assert theirs[name].dtype == a.dtype.newbyteorder("=") and theirs[name].shape == a.shape
        np.testing.assert_array_equal(theirs[name], a)
    ours = at.load(path)
    assert list(ours) == list(arrays)
    for name, a in ours.items():
        np.testing.assert_array_equal(a, theirs[name])
        assert a.dtype == theirs[name].dtype and type(a) is np.ndarray       # never a Tensor


def test_a_whole_checkpoint_round_trips_bit_for_bit(tmp_path):
    net, opt, sched = trained_net_and_optimizer()
    at.manual_seed(7)
    at.randn(3)
    ckpt = {"model": net.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "epoch": 3, "iteration": 120,
            "rng": at.get_rng_state(), "numpy_rng": np.random.get_state(),
            "extra": {"nan": float("nan"), "inf": float("-inf"), "none": None, "flag": True,
                      "name": "run-1", 7: [1, (2.5, "x")], "huge": 2**100, "np": np.float32(1.5),
                      "empty": {}, "tuple": ()}}
    at.save(ckpt, tmp_path / "ckpt.safetensors")
    loaded = at.load(tmp_path / "ckpt.safetensors")
    expected = dict(ckpt, extra=dict(ckpt["extra"], np=1.5))       # numpy scalars: Python's
    assert fingerprint(loaded) == fingerprint(expected)
    assert list(loaded["optimizer"]["state"]) == [0, 1, 2, 3, 4, 5]       # int keys stay ints
    # Every part loads back where it came from.
    net2, opt2, sched2 = trained_net_and_optimizer()
    net2.load_state_dict(loaded["model"])
    opt2.load_state_dict(loaded["optimizer"])
    sched2.load_state_dict(loaded["scheduler"])
    np.random.set_state(loaded["numpy_rng"])
    at.set_rng_state(loaded["rng"])
    assert fingerprint(opt2.state_dict()) == fingerprint(opt.state_dict())
    assert sched2.state_dict() == sched.state_dict()
    # Nested tensors are stored flat, under their dotted paths.
    names = set(reference_load_file(tmp_path / "ckpt.safetensors"))
    assert {"model.0.weight", "optimizer.state.0.m", "numpy_rng.1"} <= names


def test_torch_state_dict_loads_and_gives_torch_outputs(torch, tmp_path):
    """A torch nn.Sequential of Linear layers saved with safetensors.torch: at.load reads it,
    and with the Linear weights transposed (torch keeps (out, in), autotensor (in, out)) the
    same model gives torch's outputs; and at.save's file loads into torch."""
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
                                 torch.nn.Linear(8, 3)).double()
    save_file(theirs.state_dict(), str(tmp_path / "torch.safetensors"))
    state = at.load(tmp_path / "torch.safetensors")
    assert sorted(state) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    ours = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).astype(np.float64)
    ours.load_state_dict({k: v.T if k.endswith("weight") else v for k, v in state.items()})
    x = np.random.default_rng(0).standard_normal((5, 4))
    expected = theirs(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(ours(at.Tensor(x)).data, expected, rtol=1e-12, atol=1e-12)

    at.save({k: v.T if k.endswith("weight") else v for k, v in ours.state_dict().items()},
            tmp_path / "ours.safetensors")
    back = load_file(str(tmp_path / "ours.safetensors"))
    for k, v in theirs.state_dict().items():
        assert back[k].dtype == torch.float64 and torch.equal(back[k], v)


# ---- what save refuses, before writing anything ------------------------------------------------
def _cycle():
    a = []
    a.append(a)
    return {"a": a}


SAVE_REFUSALS = [
    ("object-array", {"w": np.array([object()])}, r"obj\['w'\] has dtype object"),
    ("string-array", {"w": np.array(["a"])}, "has dtype <U1"),
    ("complex-array", {"w": np.zeros(2, complex)}, "has dtype complex128"),
    ("tuple-key", {("a", 1): np.zeros(1)}, "keys must be str or int"),
    ("bool-key", {"a": {True: 1}}, r"obj\['a'\] has a key True"),
    ("set-value", {"a": {1, 2}}, r"obj\['a'\] is a set"),
    ("complex-value", {"a": 1j}, r"obj\['a'\] is a complex"),
    ("collision", {"a.b": np.zeros(1), "a": {"b": np.ones(1)}}, "tensor 'a.b', a name already"),
    ("metadata-name", {"__metadata__": np.zeros(1)}, "'__metadata__'"),
    ("cycle", _cycle(), "nests more than 32 levels"),
    ("not-a-dict", [np.zeros(1)], "obj must be a dict"),
]


@pytest.mark.parametrize("obj, match", [r[1:] for r in SAVE_REFUSALS],
                         ids=[r[0] for r in SAVE_REFUSALS])
def test_save_refuses_what_it_cannot_store_and_writes_nothing(tmp_path, obj, match):
    with pytest.raises(ValueError, match=match):
        at.save(obj, tmp_path / "x.safetensors")
    assert os.listdir(tmp_path) == []


def test_save_and_load_take_paths_only(tmp_path):
    with pytest.raises(TypeError, match="f must be a path"):
        at.save({"w": np.zeros(1)}, io.BytesIO())
    with pytest.raises(TypeError, match="f must be a path"):
        at.load(io.BytesIO(b""))


# ---- hostile files ----------------------------------------------------------------------------
def raw(header, data=b"", length=None):
    """A safetensors file written by hand: header (a dict, or bytes taken verbatim)."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


F8 = {"dtype": "F64", "shape": [2], "data_offsets": [0, 16]}


def structured(tree, tensors=None, data=b"", structure=None):
    """A file whose autotensor structure is `tree` (JSON), holding `tensors` (header entries),
    with the right checksum (what is refused is the structure, not a flipped bit)."""
    text = structure if structure is not None else json.dumps({"version": 1, "object": tree})
    arrays = {name: np.frombuffer(data, serialization.DTYPES[e["dtype"]],
                                  int(np.prod(e["shape"])), e["data_offsets"][0])
              .reshape(e["shape"]) for name, e in (tensors or {}).items()}
    meta = {"autotensor": text, "autotensor.crc32": str(serialization._checksum(text, arrays))}
    return raw({"__metadata__": meta, **(tensors or {})}, data)


def deep(levels):
    return b'{"x": ' + b"[" * levels + b"]" * levels + b"}"


HOSTILE = [
    # (id, file bytes, message fragment, the reference reader refuses it too)
    ("empty", b"", "not even a header length", True),
    ("seven-bytes", b"\x01" * 7, "not even a header length", True),
    ("header-2**63", struct.pack("<Q", 2**63) + b"{}", "declares a header of 9223372036854775808",
     True),
    ("header-beyond-file", raw({}, length=100), "declares a header of 100 bytes", True),
    ("header-over-limit", struct.pack("<Q", 100_000_001) + b"{" * 64, "the limit is 100000000",
     True),
    ("header-not-json", raw(b"{not json"), "header is not valid JSON", True),
    ("header-not-utf8", raw(b'{"\xff": 1}'), "header is not valid JSON", True),
    ("header-list", raw(b"[]"), "the header is a list", True),
    ("header-deep", raw(deep(100_000)), "header nests 100001 levels deep", True),
    ("duplicate-tensor", raw(b'{"w": ' + json.dumps(F8).encode() + b', "w": '
                             + json.dumps(F8).encode() + b"}", bytes(16)),
     r"duplicate keys \['w'\]", False),
    ("unknown-dtype", raw({"w": {**F8, "dtype": "BF16", "data_offsets": [0, 4]}}, bytes(4)),
     "dtype 'BF16'", True),
    ("dtype-object", raw({"w": {**F8, "dtype": "O"}}, bytes(16)), "dtype 'O'", True),
    ("entry-not-object", raw({"w": [1, 2]}, bytes(16)), "must hold exactly 'dtype'", True),
    ("entry-extra-key", raw({"w": {**F8, "evil": 1}}, bytes(16)), "must hold exactly", False),
    ("shape-negative", raw({"w": {**F8, "shape": [-2]}}, bytes(16)), r"has shape \[-2\]", True),
    ("shape-float", raw({"w": {**F8, "shape": [2.0]}}, bytes(16)), r"has shape \[2.0\]", True),
    ("shape-bool", raw({"w": {**F8, "shape": [True, 2]}}, bytes(16)), r"has shape \[True, 2\]",
     True),
    ("shape-2**40", raw({"w": {**F8, "shape": [2**40]}}, bytes(16)),
     r"declares shape \[1099511627776\] of F64 \(8796093022208 bytes\) but spans 16", True),
    ("shape-overflow", raw({"w": {**F8, "shape": [2**62, 2**62, 0]}}, bytes(16)), "spans 16",
     True),
    ("offsets-reversed", raw({"w": {**F8, "data_offsets": [16, 0]}}, bytes(16)),
     "not \\[begin, end\\]", True),
    ("offsets-one", raw({"w": {**F8, "data_offsets": [16]}}, bytes(16)), "data_offsets", True),
    ("offsets-beyond-file", raw({"w": {**F8, "data_offsets": [8, 24]}}, bytes(16)),
     "starts at byte 8 of the data, expected 0", True),
    ("offsets-overlap", raw({"a": F8, "b": F8}, bytes(32)), "starts at byte 0 of the data, "
     "expected 16", True),
    ("truncated-data", raw({"w": F8}, bytes(15)), "cover 16 bytes of data, the file holds 15",
     True),
    ("trailing-data", raw({"w": F8}, bytes(17)), "cover 16 bytes of data, the file holds 17",
     True),
    ("metadata-not-object", raw({"__metadata__": ["x"]}), "'__metadata__' must map strings",
     True),
    ("metadata-number-value", raw({"__metadata__": {"a": 1}}), "'__metadata__' must map", True),
    ("structure-not-json", structured(None, structure="{"),
     "metadata 'autotensor' is not valid JSON", False),
    ("structure-version-2", structured(None, structure='{"version": 2, "object": {}}'),
     "is not version 1", False),
    ("structure-version-true",
     structured(None, structure='{"version": true, "object": {"dict": []}}'),
     "is not version 1", False),
    ("structure-list", structured(None, structure="[1]"), "is not version 1", False),
    ("checksum-missing", raw({"__metadata__": {"autotensor": '{"version": 1, "object": '
                                                             '{"dict": []}}'}}),
     "CRC-32 of its tensors and structure is not the None", False),
    ("checksum-wrong", structured({"dict": [["w", {"tensor": "w"}]]}, {"w": F8}, bytes(16))
     .replace(b"\x00" * 16, b"\x00" * 15 + b"\x01"), "is corrupted", False),
    ("structure-untagged", structured({"a": 1}), "not a value tagged", False),
    ("structure-two-tags", structured({"dict": [], "list": []}), "not a value tagged", False),
    ("structure-top-list", structured({"list": []}), "does not account", False),
    ("structure-missing-tensor", structured({"dict": [["w", {"tensor": "nope"}]]}),
     "names tensor 'nope'", False),
    ("structure-tensor-twice",
     structured({"dict": [["a", {"tensor": "w"}], ["b", {"tensor": "w"}]]}, {"w": F8}, bytes(16)),
     "names tensor 'w'", False),
    ("structure-tensor-unhashable", structured({"dict": [["a", {"tensor": ["w"]}]]}),
     r"names tensor \['w'\]", False),
    ("structure-unused-tensor", structured({"dict": []}, {"w": F8}, bytes(16)),
     r"unused: \['w'\]", False),
    ("structure-pair-short", structured({"dict": [["a"]]}), r"\[key, value\] pair", False),
    ("structure-key-bool", structured({"dict": [[True, 1]]}), r"\[key, value\] pair", False),
    ("structure-key-float", structured({"dict": [[1.5, 1]]}), r"\[key, value\] pair", False),
    ("structure-key-duplicate", structured({"dict": [["a", 1], ["a", 2]]}), "a new str or int",
     False),
    ("structure-dict-not-list", structured({"dict": {"a": 1}}), "must be a JSON array", False),
    ("structure-float-tag", structured({"dict": [["a", {"float": "1e999"}]]}),
     "only 'nan', 'inf' and '-inf'", False),
    ("structure-deep", structured(None, structure='{"version": 1, "object": {"list": '
                                  + "[" * 200 + "]" * 200 + "}}"), "nests 202 levels deep", False),
]


@pytest.mark.parametrize("content, match, reference_refuses", [r[1:] for r in HOSTILE],
                         ids=[r[0] for r in HOSTILE])
def test_a_hostile_file_is_a_value_error_naming_it(tmp_path, content, match, reference_refuses):
    path = tmp_path / "evil.safetensors"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match) as info:
        at.load(path)
    assert str(info.value).startswith(f"safetensors file {str(path)!r}")
    if reference_refuses:          # invalid as safetensors, not only as autotensor's structure
        with pytest.raises(Exception):     # noqa: B017  (its SafetensorError or ValueError)
            reference_load(content)


def test_a_missing_file_or_a_folder(tmp_path):
    with pytest.raises(ValueError, match="nothing.safetensors' does not exist"):
        at.load(tmp_path / "nothing.safetensors")
    with pytest.raises(ValueError, match="does not exist"):
        at.load(tmp_path)


def test_foreign_files_load_flat_in_file_order_whatever_their_metadata(tmp_path):
    header = {"__metadata__": {"format": "pt"}, "b": {**F8, "data_offsets": [16, 32]},
              "a": F8, "z": {"dtype": "I32", "shape": [0], "data_offsets": [32, 32]}}
    path = tmp_path / "f.safetensors"
    path.write_bytes(raw(header, np.arange(4.0).tobytes()))
    loaded = at.load(path)
    assert list(loaded) == ["a", "b", "z"]
    assert loaded["a"].tolist() == [0.0, 1.0] and loaded["b"].tolist() == [2.0, 3.0]
    assert loaded["z"].shape == (0,) and loaded["z"].dtype == np.int32


def test_every_mutation_of_a_saved_file_is_refused(tmp_path):
    """Seeded fuzz: bit flips, truncations and byte insertions anywhere in a checkpoint. Each
    is refused with a ValueError naming the file: flips in the tensor data by the CRC-32."""
    net, opt, _ = trained_net_and_optimizer()
    good = (at.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "epoch": 1},
                    tmp_path / "good.safetensors"))
    content = open(good, "rb").read()
    rng = np.random.default_rng(0)
    path = tmp_path / "mutant.safetensors"
    for _ in range(300):
        b = bytearray(content)
        kind = rng.integers(3)
        at_ = int(rng.integers(len(b)))
        if kind == 0:
            b[at_] ^= 1 << int(rng.integers(8))
        elif kind == 1:
            del b[at_:]
        else:
            b[at_:at_] = bytes(rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8))
        path.write_bytes(bytes(b))
        with pytest.raises(ValueError, match="mutant.safetensors"):
            at.load(path)


# ---- atomic writes, stale temporary files ------------------------------------------------------
def test_a_failed_save_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    at.save({"x": np.arange(3.0)}, path)
    import safetensors.numpy

    def crash(tensors, metadata=None):
        raise KeyboardInterrupt
    monkeypatch.setattr(safetensors.numpy, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        at.save({"x": np.zeros(3)}, path)
    monkeypatch.undo()

    def write_half_then_die(f):
        f.write(b"\x10\x00\x00\x00")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        serialization.atomic_write(path, write_half_then_die)
    assert at.load(path)["x"].tolist() == [0.0, 1.0, 2.0]
    assert os.listdir(tmp_path) == ["c.safetensors"]


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.skipif(os.name != "posix", reason="dead writers are recognised on POSIX only")
def test_dead_writers_temp_files_are_removed_by_the_next_save_and_load(tmp_path):
    dead = _dead_pid()
    stale = f".c.safetensors.{dead}-0123456789ab.tmp"
    kept = {f".c.safetensors.{os.getpid()}-0123456789ab.tmp",      # this process: maybe mid-save
            f".c.safetensors.{os.getppid()}-0123456789ab.tmp",     # alive
            f".d.safetensors.{dead}-0123456789ab.tmp"}             # another file's
    for name in kept | {stale}:
        (tmp_path / name).write_bytes(b"partial")
    at.save({"x": np.ones(2)}, tmp_path / "c.safetensors")
    assert set(os.listdir(tmp_path)) == kept | {"c.safetensors"}
    (tmp_path / stale).write_bytes(b"")
    at.load(tmp_path / "c.safetensors")
    assert set(os.listdir(tmp_path)) == kept | {"c.safetensors"}


_SAVER = """
import os
import sys
import time
import numpy as np
import autotensor as at
path, pause = sys.argv[1], sys.argv[2] == "pause"
replace = os.replace

def pause_then_replace(a, b):       # "pause": stop with the temp file written, not renamed
    if pause and n > 1:
        print("paused", flush=True)
        time.sleep(60)
    replace(a, b)

os.replace = pause_then_replace
big = np.empty(1 << 20)                  # 8 MiB: a save lasts long enough to be interrupted
n = 0
while True:
    n += 1
    big.fill(n)
    at.save({"x": big, "n": n}, path)
    if n == 1:
        print("saving", flush=True)
"""


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_sigkill_during_saves_leaves_a_whole_file_and_no_temp_after_the_next_save(tmp_path):
    """A subprocess saves in a loop and is SIGKILLed at random moments (the last round: with
    its temp file written, before the rename): the file is always one complete save (never
    torn), and the dead writer's temp file is gone after the next save (odd rounds) or load
    (even rounds)."""
    path = tmp_path / "c.safetensors"
    rng = np.random.default_rng(0)
    for round_, mode in enumerate(["random"] * 5 + ["pause"]):
        proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(path), mode],
                                stdout=subprocess.PIPE)
        assert proc.stdout.readline() == b"saving\n"
        if mode == "pause":
            assert proc.stdout.readline() == b"paused\n"
        else:
            time.sleep(rng.uniform(0.0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        orphans = [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
        assert orphans or mode == "random"
        if round_ % 2:
            at.save({"x": np.full(3, -1.0), "n": -1}, path)
            assert os.listdir(tmp_path) == ["c.safetensors"]
        loaded = at.load(path)
        assert loaded["n"] != 0 and np.all(loaded["x"] == loaded["n"])      # whole, not torn
        assert os.listdir(tmp_path) == ["c.safetensors"]
