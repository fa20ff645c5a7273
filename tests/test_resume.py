"""Training that resumes anywhere: the Solver (and `train --resume`) continue mid-epoch from a
checkpoint, and an nn.Module loop checkpointed with at.save continues from any iteration,
both reaching the uninterrupted run's final state bit for bit."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import autotensor as at
from autotensor import nn, optim
from autotensor.__main__ import main
from autotensor.data import DataLoader, TensorDataset
from autotensor.nn import functional as F
from autotensor.optim import checkpoint


def fingerprint(obj):
    """A bit-exact picture of nested state (dtype, shape and bytes of every array)."""
    if isinstance(obj, at.Tensor):
        return fingerprint(obj.data)
    if isinstance(obj, np.ndarray):
        return ("array", obj.dtype.str, obj.shape, obj.tobytes())
    if isinstance(obj, dict):
        return ("dict", tuple((repr(k), fingerprint(v)) for k, v in obj.items()))
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, tuple(fingerprint(v) for v in obj))
    if isinstance(obj, float):
        return ("float", obj.hex())
    return (type(obj).__name__, repr(obj))


# ---- the Solver --------------------------------------------------------------------------------
def make_data(seed=1):
    r = np.random.RandomState(seed)
    X = r.randn(80, 4)
    y = np.argmax(X @ r.randn(4, 3), axis=1)
    return {"X_train": X[:60], "y_train": y[:60], "X_val": X[60:], "y_val": y[60:]}


class NoisyNet(nn.Module):
    """Batch norm (buffers), dropout (numpy's global RNG) and noise from at.randn_like
    (autotensor's generator) while training: resuming exactly needs all three restored."""

    def __init__(self):
        super().__init__()
        self.fc1, self.bn = nn.Linear(4, 6), nn.BatchNorm1d(6)
        self.drop, self.fc2 = nn.Dropout(0.2), nn.Linear(6, 3)

    def forward(self, x):
        h = F.relu(self.bn(self.fc1(x)))
        if self.training:
            h = h + 0.01 * at.randn_like(h)
        return self.fc2(self.drop(h))


def course_model():
    return nn.models.FullyConnectedNet([6, 5], input_dim=4, num_classes=3,
                                       normalization="batchnorm", dropout_keep_ratio=0.8,
                                       dtype=np.float64)


def module_model():
    return optim.ModuleModel(NoisyNet(), F.softmax_cross_entropy)


MODELS = {"course": course_model, "module": module_model}
# 60 samples in batches of 16: 3 iterations per epoch, 9 in all; accuracy on 20 drawn samples.
KW = dict(update_rule="adam", optim_config={"learning_rate": 0.05}, lr_decay=0.9,
          batch_size=16, num_epochs=3, num_train_samples=20, verbose=False)


def solver_state(solver):
    model = solver.model
    inner = (model.module.state_dict() if isinstance(model, optim.ModuleModel)
             else copy.deepcopy(model.bn_params))
    return fingerprint({"params": dict(model.params), "inner": inner, "epoch": solver.epoch,
                        "iteration": solver.iteration, "best_val_acc": solver.best_val_acc,
                        "best": solver.best_params, "configs": solver.optim_configs,
                        "loss": solver.loss_history, "train": solver.train_acc_history,
                        "val": solver.val_acc_history, "rng": np.random.get_state(),
                        "generator": at.get_rng_state()})


def new_solver(kind, seed=0, **kw):
    at.manual_seed(seed)                   # numpy's global RNG and autotensor's generator
    return optim.Solver(MODELS[kind](), make_data(), **{**KW, **kw})


class Interrupted(Exception):
    pass


def interrupt_after(solver, updates):
    """The run dies in its next training step once `updates` steps are done."""
    loss = solver.model.loss

    def dying(X, y=None):
        if y is not None and solver.iteration >= updates:
            raise Interrupted
        return loss(X, y)

    solver.model.loss = dying


@pytest.fixture(scope="module")
def uninterrupted():
    out = {}
    for kind in MODELS:
        solver = new_solver(kind)
        solver.train()
        out[kind] = solver_state(solver)
    return out


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 8])
def test_solver_resumes_bit_identically_after_iteration_k(uninterrupted, tmp_path, kind, k):
    """The run writes {name}_last.npz every k iterations and dies right after iteration k;
    a new solver (other weights, other RNG states) loads that file and finishes the run."""
    name = str(tmp_path / "run")
    solver = new_solver(kind, checkpoint_name=name, checkpoint_every=k)
    interrupt_after(solver, k)
    with pytest.raises(Interrupted):
        solver.train()
    assert os.path.exists(f"{name}_last.npz")
    meta = checkpoint.load_checkpoint(f"{name}_last.npz")[1]
    assert meta["iteration"] == k and meta["epoch"] == k // 3

    resumed = new_solver(kind, seed=99)
    resumed.load_checkpoint(f"{name}_last.npz")
    assert resumed.iteration == k
    resumed.train()
    assert solver_state(resumed) == uninterrupted[kind]


def test_checkpoint_files_per_epoch_and_every_k_iterations(tmp_path):
    name = str(tmp_path / "run")
    solver = new_solver("course", checkpoint_name=name, checkpoint_every=4)
    solver.train()
    assert sorted(os.listdir(tmp_path)) == ["run_epoch_1.npz", "run_epoch_2.npz",
                                            "run_epoch_3.npz", "run_last.npz"]
    metas = {f: checkpoint.load_checkpoint(tmp_path / f)[1] for f in os.listdir(tmp_path)}
    assert [metas[f"run_epoch_{e}.npz"]["iteration"] for e in (1, 2, 3)] == [3, 6, 9]
    assert metas["run_last.npz"]["iteration"] == 8 and metas["run_last.npz"]["epoch"] == 2
    assert all(m["version"] == 1 for m in metas.values())


@pytest.mark.parametrize("kw, match", [
    ({"checkpoint_every": 5}, "checkpoint_every=5 needs a checkpoint_name"),
    ({"checkpoint_every": 0, "checkpoint_name": "x"}, "checkpoint_every must be an integer >= 1"),
    ({"checkpoint_every": 2.5, "checkpoint_name": "x"}, "checkpoint_every must be an integer"),
])
def test_checkpoint_every_is_checked_at_the_call(kw, match):
    with pytest.raises(ValueError, match=match):
        optim.Solver(course_model(), make_data(), **{**KW, **kw})


def test_a_file_without_iteration_and_generator_resumes_at_its_epoch_end(uninterrupted,
                                                                          tmp_path):
    """Checkpoints written before mid-epoch resume lack both keys: still version 1, loaded."""
    name = str(tmp_path / "run")
    new_solver("course", checkpoint_name=name).train()
    arrays, meta = checkpoint.load_checkpoint(f"{name}_epoch_1.npz")
    del meta["iteration"], meta["generator"]
    checkpoint.save_checkpoint(tmp_path / "old.npz", arrays, meta)
    resumed = new_solver("course", seed=99)
    at.manual_seed(0)            # the generator is not in the file: as the uninterrupted run's
    np.random.set_state(np.random.RandomState(5).get_state())
    resumed.load_checkpoint(tmp_path / "old.npz")
    assert resumed.iteration == 3
    resumed.train()
    assert solver_state(resumed) == uninterrupted["course"]


def test_another_epoch_length_resumes_at_the_start_of_the_epoch(tmp_path):
    """A mid-epoch file (iteration 4 of epochs of 3) in a solver whose epochs last 2
    iterations (batch_size 30) continues from that solver's epoch 1 start, iteration 2."""
    name = str(tmp_path / "run")
    solver = new_solver("course", checkpoint_name=name, checkpoint_every=4)
    interrupt_after(solver, 4)
    with pytest.raises(Interrupted):
        solver.train()
    other = new_solver("course", batch_size=30)
    other.load_checkpoint(f"{name}_last.npz")
    other.train()
    assert len(other.loss_history) == 4 + (3 * 2 - 2) and other.iteration == 6


BAD_NEW_KEYS = [
    ("iteration-negative", lambda m: m.update(iteration=-1),
     "'iteration' must be an integer >= 0, got -1"),
    ("iteration-float", lambda m: m.update(iteration=4.5), "'iteration' must be an integer"),
    ("iteration-bool", lambda m: m.update(iteration=True), "'iteration' must be an integer"),
    ("iteration-string", lambda m: m.update(iteration="4"), "'iteration' must be an integer"),
    ("generator-not-object", lambda m: m.update(generator=[1]), "'generator' must hold exactly"),
    ("generator-field-missing", lambda m: m["generator"].pop("inc"),
     "'generator' must hold exactly"),
    ("generator-state-too-big", lambda m: m["generator"].update(state=2**128),
     "generator state must be an integer in"),
    ("generator-inc-negative", lambda m: m["generator"].update(inc=-1), "generator inc must be"),
    ("generator-has-uint32-2", lambda m: m["generator"].update(has_uint32=2),
     "generator has_uint32 must be"),
    ("generator-has-uint32-bool", lambda m: m["generator"].update(has_uint32=True),
     "generator has_uint32 must be"),
    ("generator-uinteger-float", lambda m: m["generator"].update(uinteger=1.0),
     "generator uinteger must be"),
]


@pytest.mark.parametrize("edit, match", [r[1:] for r in BAD_NEW_KEYS],
                         ids=[r[0] for r in BAD_NEW_KEYS])
def test_bad_iteration_or_generator_changes_nothing(tmp_path, edit, match):
    name = str(tmp_path / "run")
    solver = new_solver("module", checkpoint_name=name, checkpoint_every=4, num_epochs=2)
    solver.train()
    arrays, meta = checkpoint.load_checkpoint(f"{name}_last.npz")
    edit(meta)
    # Written around save_checkpoint's own checks only where it has none for these keys.
    checkpoint.save_checkpoint(tmp_path / "bad.npz", arrays, meta)
    victim = new_solver("module", seed=5)
    before = solver_state(victim)
    with pytest.raises(ValueError, match=match) as info:
        victim.load_checkpoint(tmp_path / "bad.npz")
    assert "bad.npz" in str(info.value)
    assert solver_state(victim) == before


def test_restore_rng_false_leaves_both_generators_alone(tmp_path):
    name = str(tmp_path / "run")
    new_solver("module", checkpoint_name=name, checkpoint_every=4).train()
    solver = new_solver("module", seed=3)
    at.manual_seed(11)
    rngs = fingerprint((np.random.get_state(), at.get_rng_state()))
    solver.load_checkpoint(f"{name}_last.npz", restore_rng=False)
    assert fingerprint((np.random.get_state(), at.get_rng_state())) == rngs
    assert solver.iteration == 8


# ---- the command line: killed, then --resume ---------------------------------------------------
_TRAIN = ["train", "--model", "fc", "--epochs", "8"]


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_train_killed_then_resumed_matches_the_uninterrupted_run(tmp_path, capsys):
    """`python -m autotensor train` is SIGKILLed once its first mid-epoch checkpoint exists
    (iteration 100 of 216; 27 per epoch); `train --resume` finishes the run, and its last
    epoch's checkpoint equals the uninterrupted run's, array for array."""
    assert main([*_TRAIN, "--out", str(tmp_path / "full")]) == 0
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "autotensor", *_TRAIN, "--out", str(killed)],
                            stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (killed / "checkpoint_last.npz").exists() and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL               # killed, not finished
    assert not (killed / "checkpoint_epoch_8.npz").exists()
    assert main([*_TRAIN, "--out", str(killed), "--resume",
                 str(killed / "checkpoint_last.npz")]) == 0
    assert "resuming from" in capsys.readouterr().out
    full, _ = checkpoint.load_checkpoint(tmp_path / "full" / "checkpoint_epoch_8.npz")
    resumed, _ = checkpoint.load_checkpoint(killed / "checkpoint_epoch_8.npz")
    assert fingerprint(resumed) == fingerprint(full)
    assert not [n for n in os.listdir(killed) if n.endswith(".tmp")]


def test_train_resume_refuses_a_missing_or_foreign_checkpoint(tmp_path):
    with pytest.raises(SystemExit, match="--resume: checkpoint '.*nope.npz' does not exist"):
        main(["train", "--model", "fc", "--epochs", "1", "--out", str(tmp_path),
              "--resume", str(tmp_path / "nope.npz")])
    new_solver("course", checkpoint_name=str(tmp_path / "x")).train()       # another model
    with pytest.raises(SystemExit, match=r"--resume: checkpoint .*x_epoch_1.npz': array "
                                         r"'params/W1' has shape \(4, 6\)"):
        main(["train", "--model", "fc", "--epochs", "1", "--out", str(tmp_path),
              "--resume", str(tmp_path / "x_epoch_1.npz")])


# ---- an nn.Module loop checkpointed with at.save ------------------------------------------------
def module_run(seed=0):
    """A module, its optimizer and schedule, and a shuffling DataLoader with its own
    generator (so the epoch's order can be redrawn when resuming mid-epoch)."""
    at.manual_seed(seed)
    data = make_data()
    net = NoisyNet()
    opt = optim.Adam(net.parameters(), lr=0.05)
    sched = optim.StepLR(opt, step_size=1, gamma=0.8)
    loader_rng = np.random.default_rng(seed)
    loader = DataLoader(TensorDataset(data["X_train"], data["y_train"]), batch_size=16,
                        shuffle=True, generator=loader_rng)
    return net, opt, sched, loader, loader_rng


def train_module(run, path, epochs=3, stop_after=None, resume=False):
    """The docs' loop: a checkpoint after every step; returns the losses of this call."""
    net, opt, sched, loader, loader_rng = run
    first_epoch, skip, losses = 0, 0, []
    if resume:
        ckpt = at.load(path)
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        loader_rng.bit_generator.state = ckpt["loader_rng"]
        at.set_rng_state(ckpt["rng"])
        np.random.set_state(ckpt["numpy_rng"])
        first_epoch, skip = ckpt["epoch"], ckpt["batch"]
    step = 0
    for epoch in range(first_epoch, epochs):
        epoch_start = loader_rng.bit_generator.state           # before this epoch's shuffle
        net.train()
        for batch, (xb, yb) in enumerate(loader):
            if epoch == first_epoch and batch < skip:
                continue                     # done before the checkpoint: same order, skipped
            loss = F.softmax_cross_entropy(net(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            at.save({"model": net.state_dict(), "optimizer": opt.state_dict(),
                     "scheduler": sched.state_dict(), "epoch": epoch, "batch": batch + 1,
                     "loader_rng": epoch_start, "rng": at.get_rng_state(),
                     "numpy_rng": np.random.get_state()}, path)
            step += 1
            if step == stop_after:
                return losses
        sched.step()
    return losses


def module_state(run):
    net, opt, sched, _, loader_rng = run
    return fingerprint({"model": net.state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "loader": loader_rng.bit_generator.state,
                        "rng": at.get_rng_state(), "numpy_rng": np.random.get_state()})


@pytest.fixture(scope="module")
def module_uninterrupted(tmp_path_factory):
    run = module_run()
    losses = train_module(run, tmp_path_factory.mktemp("full") / "ckpt.safetensors")
    return losses, module_state(run)


@pytest.mark.parametrize("k", [1, 3, 4, 6, 8])
def test_module_loop_resumes_bit_identically_after_step_k(module_uninterrupted, tmp_path, k):
    """4 steps per epoch (60 samples, batches of 16), 12 in all; stopped after step k, a fresh
    module/optimizer/schedule/loader (another seed) resumes from the one file at.save wrote."""
    path = tmp_path / "ckpt.safetensors"
    first = train_module(module_run(), path, stop_after=k)
    assert len(first) == k
    run = module_run(seed=42)
    rest = train_module(run, path, resume=True)
    losses, state = module_uninterrupted
    assert first + rest == losses
    assert module_state(run) == state
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]
