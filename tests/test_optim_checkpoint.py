"""Checkpoints: atomic pickle-free files, exact resume, and corrupted files that raise a clear
ValueError and never half-load."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

import autotensor as at
from autotensor import nn, optim, serialization
from autotensor.nn import functional as F
from autotensor.optim import checkpoint


class ShiftNet:
    """A softmax classifier whose eval mode subtracts a running mean of the inputs, kept in a
    course-style `bn_params` dict created lazily on the first training call (like the course's
    batch norm), so resuming exactly needs that buffer too."""

    def __init__(self, D=4, C=3, seed=0):
        r = np.random.RandomState(seed)
        self.params = {"W": 0.3 * r.randn(D, C), "b": np.zeros(C)}
        self.bn_params = [{"mode": "train"}]

    def loss(self, X, y=None):
        bn = self.bn_params[0]
        if y is None:
            X = X - bn.get("running_mean", 0.0)
            return X @ self.params["W"] + self.params["b"]
        rm = bn.setdefault("running_mean", np.zeros(X.shape[1]))
        rm[...] = 0.9 * rm + 0.1 * X.mean(axis=0)
        W, b = (at.Tensor(self.params[k], requires_grad=True) for k in ("W", "b"))
        loss = -(at.Tensor(X) @ W + b).log_softmax(axis=1)[np.arange(len(y)), y].mean()
        loss.backward()
        return loss.item(), {"W": W.grad, "b": b.grad}


def make_data(seed=1):
    r = np.random.RandomState(seed)
    X = r.randn(90, 4) + 0.5
    y = np.argmax(X @ r.randn(4, 3), axis=1)
    return {"X_train": X[:60], "y_train": y[:60], "X_val": X[60:], "y_val": y[60:]}


KW = dict(update_rule="adam", optim_config={"learning_rate": 0.05}, lr_decay=0.9,
          batch_size=16, num_epochs=3, num_train_samples=20, num_val_samples=15, verbose=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """An uninterrupted 3-epoch run writing a checkpoint per epoch."""
    prefix = str(tmp_path_factory.mktemp("ck") / "net")
    np.random.seed(0)
    solver = optim.Solver(ShiftNet(), make_data(), checkpoint_name=prefix, **KW)
    solver.train()
    return solver, prefix


def snapshot(solver):
    return copy.deepcopy({"params": dict(solver.model.params), "bn": solver.model.bn_params,
                          "configs": solver.optim_configs, "epoch": solver.epoch,
                          "loss": solver.loss_history, "best": solver.best_params,
                          "rng": np.random.get_state()[1]})


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], dict):
            assert_same(a[k], b[k])
        elif isinstance(a[k], np.ndarray):
            np.testing.assert_array_equal(a[k], b[k])
        elif isinstance(a[k], list) and a[k] and isinstance(a[k][0], dict):
            for x, y in zip(a[k], b[k]):
                assert_same(x, y)
        else:
            assert a[k] == b[k], k


def test_one_file_per_epoch_no_temp_files(run):
    solver, prefix = run
    directory = os.path.dirname(prefix)
    assert sorted(os.listdir(directory)) == [f"net_epoch_{n}.npz" for n in (1, 2, 3)]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(f"{prefix}_epoch_1.npz").st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("epoch", [1, 2])
def test_resume_reproduces_the_uninterrupted_run(run, epoch):
    full, prefix = run
    np.random.seed(12345)                 # a different RNG state: the checkpoint restores it
    solver = optim.Solver(ShiftNet(seed=7), make_data(), **KW)
    solver.load_checkpoint(f"{prefix}_epoch_{epoch}.npz")
    assert solver.epoch == epoch
    assert "running_mean" in solver.model.bn_params[0]         # lazily created buffer restored
    solver.train()
    assert solver.loss_history == full.loss_history
    assert solver.train_acc_history == full.train_acc_history
    assert solver.val_acc_history == full.val_acc_history
    assert solver.best_val_acc == full.best_val_acc
    for k in full.model.params:
        np.testing.assert_array_equal(solver.model.params[k], full.model.params[k])
    np.testing.assert_array_equal(solver.model.bn_params[0]["running_mean"],
                                  full.model.bn_params[0]["running_mean"])
    assert solver.optim_configs["W"]["t"] == full.optim_configs["W"]["t"]
    np.testing.assert_array_equal(solver.optim_configs["W"]["m"], full.optim_configs["W"]["m"])


def test_resume_a_module_model_exactly(tmp_path):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.bn, self.fc2 = nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3)

        def forward(self, x):
            return self.fc2(F.relu(self.bn(self.fc1(x))))

    def solver_for(seed, **kw):
        np.random.seed(seed)
        return optim.Solver(optim.ModuleModel(Net(), F.softmax_cross_entropy), make_data(),
                            **{**KW, "update_rule": "sgd_momentum", **kw})

    full = solver_for(0, checkpoint_name=str(tmp_path / "m"))
    full.train()
    resumed = solver_for(99)
    resumed.load_checkpoint(tmp_path / "m_epoch_1.npz")
    resumed.train()
    assert resumed.loss_history == full.loss_history
    for name, value in full.model.params.items():
        np.testing.assert_array_equal(resumed.model.params[name], value)
    np.testing.assert_array_equal(resumed.model.module.bn.running_var,
                                  full.model.module.bn.running_var)


def test_course_model_buffers_keep_their_names_and_resume(tmp_path):
    """nn.models' running statistics are stored as `buffers/bn_params.{i}.{key}` (the names
    earlier versions wrote), and load into a fresh model that has not created them yet."""
    def solver_for(**kw):
        np.random.seed(4)
        model = nn.models.FullyConnectedNet([6], input_dim=4, num_classes=3,
                                            normalization="batchnorm", dtype=np.float64)
        return optim.Solver(model, make_data(), **{**KW, **kw})

    full = solver_for(checkpoint_name=str(tmp_path / "fc"))
    full.train()
    arrays, meta = checkpoint.load_checkpoint(tmp_path / "fc_epoch_1.npz")
    assert meta["buffer_names"] == ["bn_params.0.running_mean", "bn_params.0.running_var"]
    assert {k for k in arrays if k.startswith("buffers/")} == {
        "buffers/bn_params.0.running_mean", "buffers/bn_params.0.running_var"}
    resumed = solver_for()
    assert "running_mean" not in resumed.model.bn_params[0]
    resumed.load_checkpoint(tmp_path / "fc_epoch_1.npz")
    resumed.train()
    assert resumed.loss_history == full.loss_history
    for k in ("running_mean", "running_var"):
        np.testing.assert_array_equal(resumed.model.bn_params[0][k], full.model.bn_params[0][k])


def test_restore_rng_false_leaves_the_global_rng_alone(run):
    _, prefix = run
    np.random.seed(4)
    before = np.random.get_state()[1].copy()
    optim.Solver(ShiftNet(), make_data(), **KW).load_checkpoint(f"{prefix}_epoch_1.npz",
                                                                restore_rng=False)
    np.testing.assert_array_equal(np.random.get_state()[1], before)


# ---- corrupted and hostile files ---------------------------------------------------------------
def fresh_solver():
    np.random.seed(2)
    solver = optim.Solver(ShiftNet(seed=3), make_data(), **KW)
    return solver


def expect_refused(path, match):
    """Loading `path` raises a ValueError naming the file and changes nothing."""
    solver = fresh_solver()
    before = snapshot(solver)
    with pytest.raises(ValueError, match=match) as info:
        solver.load_checkpoint(path)
    assert os.path.basename(str(path)) in str(info.value)
    assert_same(snapshot(solver), before)


def rewrite(src, dst, edit):
    """Copy checkpoint `src` to `dst` through `edit(arrays, meta)`."""
    arrays, meta = checkpoint.load_checkpoint(src)
    edit(arrays, meta)
    checkpoint.save_checkpoint(dst, arrays, meta)
    return dst


def test_truncated_file(run, tmp_path):
    _, prefix = run
    raw = open(f"{prefix}_epoch_1.npz", "rb").read()
    for cut in (0, 10, len(raw) // 2, len(raw) - 1):
        path = tmp_path / f"cut{cut}.npz"
        path.write_bytes(raw[:cut])
        expect_refused(path, "truncated or corrupted|corrupted")


def test_flipped_byte_in_array_data_is_detected(run, tmp_path):
    solver, prefix = run
    raw = bytearray(open(f"{prefix}_epoch_1.npz", "rb").read())
    arrays, _ = checkpoint.load_checkpoint(f"{prefix}_epoch_1.npz")
    at_ = raw.find(arrays["params/W"].tobytes())
    assert at_ > 0
    raw[at_ + 5] ^= 0x10
    path = tmp_path / "flip.npz"
    path.write_bytes(bytes(raw))
    expect_refused(path, "CRC|corrupted")


def test_any_flipped_byte_is_detected_or_harmless(run, tmp_path):
    """Flip bytes all over the file: loading either raises ValueError or returns exactly the
    original content (bytes outside the CRC-checked data, such as zip timestamps)."""
    _, prefix = run
    src = f"{prefix}_epoch_2.npz"
    raw = open(src, "rb").read()
    arrays0, meta0 = checkpoint.load_checkpoint(src)
    path = tmp_path / "f.npz"
    detected = 0
    positions = range(0, len(raw), 5)
    for pos in positions:
        data = bytearray(raw)
        data[pos] ^= 0xFF
        path.write_bytes(bytes(data))
        try:
            arrays, meta = checkpoint.load_checkpoint(path)
        except ValueError:
            detected += 1
            continue
        assert meta == meta0 and arrays.keys() == arrays0.keys(), pos
        for k in arrays0:
            np.testing.assert_array_equal(arrays[k], arrays0[k])
    # The undetected rest are zip fields no reader checks (timestamps, zip64 extras): harmless.
    assert detected > 0.75 * len(positions)


def test_missing_array(run, tmp_path):
    _, prefix = run
    path = rewrite(f"{prefix}_epoch_1.npz", tmp_path / "miss.npz",
                   lambda a, m: a.pop("optim/W/v"))
    expect_refused(path, "'optim/W/v' is missing")


def test_wrong_shape_for_the_model(run, tmp_path):
    _, prefix = run
    path = rewrite(f"{prefix}_epoch_1.npz", tmp_path / "shape.npz",
                   lambda a, m: a.update({"params/W": np.zeros((5, 3))}))
    expect_refused(path, r"'params/W' has shape \(5, 3\).*\(4, 3\)")
    path = rewrite(f"{prefix}_epoch_1.npz", tmp_path / "shape2.npz",
                   lambda a, m: a.update({"optim/b/m": np.zeros(4)}))
    expect_refused(path, r"'optim/b/m' has shape \(4,\)")


def test_a_buffer_the_model_cannot_hold_changes_nothing(run, tmp_path):
    _, prefix = run

    def unknown(a, m):
        a["buffers/bn_params.3.running_mean"] = np.zeros(4)
        m["buffer_names"].append("bn_params.3.running_mean")
    expect_refused(rewrite(f"{prefix}_epoch_1.npz", tmp_path / "bname.npz", unknown),
                   "'bn_params.3.running_mean' does not exist")


def test_late_problem_still_changes_nothing(run, tmp_path):
    """Everything earlier is valid; the rng keys (validated last) are wrong."""
    _, prefix = run
    path = rewrite(f"{prefix}_epoch_2.npz", tmp_path / "late.npz",
                   lambda a, m: a.update({"rng/keys": np.zeros(10, np.uint32)}))
    expect_refused(path, "rng/keys")


def test_bad_metadata(run, tmp_path):
    _, prefix = run
    src = f"{prefix}_epoch_1.npz"
    arrays, meta = checkpoint.load_checkpoint(src)
    path = tmp_path / "json.npz"
    np.savez(path, **arrays, __meta__=np.frombuffer(b'{"epoch": 1,', dtype=np.uint8))
    expect_refused(path, "not valid JSON")
    np.savez(path, **arrays)
    expect_refused(path, "no '__meta__'")
    for edit, match in [(lambda a, m: m.pop("param_names"), "malformed metadata"),
                        (lambda a, m: m.update(epoch=-1), "epoch"),
                        (lambda a, m: m.update(format="other"), "not a autotensor.Solver"),
                        (lambda a, m: m.update(update_rule="sgd"), "update rule 'sgd'"),
                        (lambda a, m: m.update(param_names=["W", "b", "c"]), "parameters")]:
        expect_refused(rewrite(src, tmp_path / "meta.npz", edit), match)


def test_object_array_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, params=np.array([{"a": 1}], dtype=object),
             __meta__=np.frombuffer(b"{}", dtype=np.uint8))
    expect_refused(path, "object array")
    with pytest.raises(ValueError, match="only numeric"):
        checkpoint.save_checkpoint(tmp_path / "x.npz", {"o": np.array([None])}, {})


def test_not_a_checkpoint(tmp_path):
    expect_refused(tmp_path / "nope.npz", "does not exist")
    path = tmp_path / "plain.npy"
    np.save(path, np.zeros(3))
    expect_refused(path, "not an .npz")
    path = tmp_path / "text.npz"
    path.write_text("hello")
    expect_refused(path, "not an .npz archive")
    path.write_bytes(b"")
    expect_refused(path, "is empty")
    with zipfile.ZipFile(path, "w") as z:          # a zip whose entry is not a .npy array
        z.writestr("params/W.pkl", b"\x80\x04K\x01.")
    expect_refused(path, "not .npy arrays")


# ---- atomic writes -----------------------------------------------------------------------------
def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    checkpoint.save_checkpoint(path, {"x": np.arange(3.0)}, {"v": 1})
    real_savez, events = np.savez, []

    def crash(f, **arrays):             # dies half-way through writing the new file
        f.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_checkpoint(path, {"x": np.zeros(3)}, {"v": 2})
    arrays, meta = checkpoint.load_checkpoint(path)            # the old file, intact
    assert meta == {"v": 1} and arrays["x"].tolist() == [0.0, 1.0, 2.0]
    assert os.listdir(tmp_path) == ["c.npz"]                   # no temp file left behind

    # On success: data fsynced before the rename, and the rename is os.replace.
    monkeypatch.setattr(checkpoint.np, "savez", real_savez)
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(checkpoint.os, "fsync",
                        lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(checkpoint.os, "replace",
                        lambda a, b: (events.append(("replace", os.path.dirname(a))),
                                      real_replace(a, b))[1])
    checkpoint.save_checkpoint(path, {"x": np.ones(3)}, {"v": 3})
    assert events[0] == "fsync" and events[1] == ("replace", str(tmp_path))
    assert checkpoint.load_checkpoint(path)[1] == {"v": 3}
    assert zipfile.is_zipfile(path)


def test_atomic_writes_and_temp_clean_up_have_one_home_in_the_core():
    """optim/checkpoint.py uses autotensor.serialization's primitives (shared with at.save),
    it keeps no copy of its own."""
    assert checkpoint.atomic_write is serialization.atomic_write
    assert checkpoint.remove_stale_temps is serialization.remove_stale_temps
    assert checkpoint.parse_json is serialization.parse_json
    source = open(checkpoint.__file__).read()
    assert not any(call in source for call in ("os.replace(", "os.fsync(", "os.kill("))


# ---- temporary files of writers that died ------------------------------------------------------
def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.skipif(os.name != "posix", reason="dead writers are recognised on POSIX only")
def test_stale_temp_files_are_removed_by_the_next_save_and_load(tmp_path):
    dead = _dead_pid()
    names = {"stale": f".c.npz.{dead}-0123456789ab.tmp",
             "old_format": ".c.npz.0123456789ab.tmp",           # written before the pid
             "mine": f".c.npz.{os.getpid()}-0123456789ab.tmp",   # this process: maybe mid-save
             "alive": f".c.npz.{os.getppid()}-0123456789ab.tmp",
             "no_such_pid": f".c.npz.{10**30}-0123456789ab.tmp",
             "other_checkpoint": f".d.npz.{dead}-0123456789ab.tmp",
             "not_a_temp": f".c.npz.{dead}-0123456789ab.tmp.keep"}
    for name in names.values():
        (tmp_path / name).write_bytes(b"PK\x03\x04 partial")
    checkpoint.save_checkpoint(tmp_path / "c.npz", {"x": np.ones(2)}, {})
    left = set(os.listdir(tmp_path))
    assert left == {"c.npz"} | {names[k] for k in ("mine", "alive", "other_checkpoint",
                                                   "not_a_temp")}
    (tmp_path / names["stale"]).write_bytes(b"")
    checkpoint.load_checkpoint(tmp_path / "c.npz")
    assert set(os.listdir(tmp_path)) == left


_SAVER = """
import sys
import time
import numpy as np
from autotensor.optim import checkpoint
path, pause = sys.argv[1], sys.argv[2] == "pause"
savez = np.savez

def savez_then_pause(f, **arrays):     # "pause": stop with the temp file written, not renamed
    savez(f, **arrays)
    if pause and n > 1:
        print("paused", flush=True)
        time.sleep(60)

np.savez = savez_then_pause
big = np.empty(1 << 20)                  # 8 MiB: a save lasts long enough to be interrupted
n = 0
while True:
    n += 1
    big.fill(n)
    checkpoint.save_checkpoint(path, {"x": big}, {"n": n})
    if n == 1:
        print("saving", flush=True)
"""


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_kill_9_during_saves_leaves_a_whole_file_and_no_temp_after_the_next_save(tmp_path):
    """A subprocess saves in a loop and is SIGKILLed at random moments (the last round: with
    its temp file written, before the rename): the checkpoint is always one complete file (old
    or new, never torn), and the dead writer's temp file is gone after the next save (odd
    rounds) or load (even rounds)."""
    path = tmp_path / "c.npz"
    rng = np.random.default_rng(0)
    for round_, mode in enumerate(["random", "random", "random", "pause"]):
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
            checkpoint.save_checkpoint(path, {"x": np.full(3, -1.0)}, {"n": -1})
            assert os.listdir(tmp_path) == ["c.npz"]
        arrays, meta = checkpoint.load_checkpoint(path)
        assert meta["n"] != 0 and np.all(arrays["x"] == meta["n"])      # whole, not torn
        assert os.listdir(tmp_path) == ["c.npz"]


def test_save_refuses_what_load_would_refuse_naming_the_file(tmp_path):
    solver = optim.Solver(ShiftNet(), make_data(), **{**KW, "batch_size": np.int64(16)})
    solver.optim_configs["W"]["learning_rate"] = float("nan")
    with pytest.raises(ValueError, match=r"bad.npz': optim config W.learning_rate must be a "
                                         "finite number >= 0, got nan"):
        solver.save_checkpoint(tmp_path / "bad.npz")
    assert os.listdir(tmp_path) == []
    solver.optim_configs["W"]["learning_rate"] = 0.1        # numpy integers in the keywords
    solver.save_checkpoint(tmp_path / "ok.npz")
    assert checkpoint.load_checkpoint(tmp_path / "ok.npz")[1]["batch_size"] == 16
    with pytest.raises(ValueError, match="deep.npz': metadata nests 18 levels"):
        deep = []
        for _ in range(16):
            deep = [deep]
        checkpoint.save_checkpoint(tmp_path / "deep.npz", {}, {"a": deep})
    with pytest.raises(ValueError, match="only numeric arrays"):
        checkpoint.save_checkpoint(tmp_path / "s.npz", {"s": np.array(["a"])}, {})
    assert sorted(os.listdir(tmp_path)) == ["ok.npz"]
