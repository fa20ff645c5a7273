"""Command line: `python -m autotensor demo | train | sweep | verify` (also installed as
`autotensor`).

demo    train a small conv net with batch norm on the embedded digits; write the training
        curves, the first-layer filters, the model's graph (SVG) and a checkpoint
train   train the course's FullyConnectedNet or ThreeLayerConvNet on digits or CIFAR-10;
        --resume PATH continues from a checkpoint it wrote, mid-epoch too
sweep   tune a course model's hyperparameters on Dask (a local cluster or --scheduler); write
        the results, the lr x reg scatter, the best trials' curves and the best checkpoint
verify  check fused == composite twin == numerical gradients for every fused op
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

_SPLITS = ("X_train", "y_train", "X_val", "y_val")


# ---- demo ---------------------------------------------------------------------------------------
def _digits_net():
    """conv-bn-relu-pool, then affine-bn-relu-affine (the course's ThreeLayerConvNet with
    batch norm, as modules): ~27k parameters."""
    from autotensor import nn
    from autotensor.nn import init

    class DigitsNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2))
            self.classifier = nn.Sequential(
                nn.Flatten(), nn.Linear(16 * 4 * 4, 100), nn.BatchNorm1d(100), nn.ReLU(),
                nn.Linear(100, 10))

        def forward(self, x):
            return self.classifier(self.features(x))

    net = DigitsNet()
    # The course's init (weight_scale * randn): with batch norm after each layer it measured
    # 99-100% test accuracy over seeds 0-4 here, against 97-99% with the Kaiming default.
    for name, p in net.named_parameters():
        if name.endswith("weight") and p.ndim > 1:
            init.gaussian(p, 1e-2)
    return net


def demo(args):
    from autotensor.data import get_digits_data
    from autotensor.nn import functional as F
    from autotensor.optim import ModuleModel, Solver

    out = _out_dir(args.out)
    np.random.seed(args.seed)                    # module init and minibatches use numpy's RNG
    data = get_digits_data()
    net = _digits_net()
    print("autotensor demo: a conv net with batch norm on the embedded 8x8 digits")
    print(f"{len(data['X_train'])} training / {len(data['X_val'])} validation / "
          f"{len(data['X_test'])} test images\n{net}")
    weights = [p for name, p in net.named_parameters() if name.endswith("weight")]

    def loss_fn(scores, y):        # the course's loss: softmax + 0.5 * reg * sum(W**2)
        return F.softmax_cross_entropy(scores, y) + 0.5 * args.reg * sum(
            (w * w).sum() for w in weights)

    # One loss line per epoch (its first minibatch), next to the epoch's accuracy line.
    iterations_per_epoch = max(len(data["X_train"]) // args.batch_size, 1)
    solver = Solver(ModuleModel(net, loss_fn), {k: data[k] for k in _SPLITS},
                    update_rule="adam", optim_config={"learning_rate": args.lr},
                    lr_decay=0.95, batch_size=args.batch_size, num_epochs=args.epochs,
                    print_every=iterations_per_epoch, verbose=True)
    start = time.perf_counter()
    solver.train()
    test_acc = solver.check_accuracy(data["X_test"], data["y_test"])
    print(f"trained {args.epochs} epochs in {time.perf_counter() - start:.1f} s: "
          f"best validation accuracy {solver.best_val_acc:.3f}, test accuracy {test_acc:.3f}")

    written = [solver.save_checkpoint(out / "checkpoint_final.npz") or "checkpoint_final.npz"]
    written += _plots(solver, net.features[0].weight.data, out)
    _graph(net, data, out)
    written.append("model_graph.svg")
    print("wrote " + ", ".join(str(out / pathlib.Path(name).name) for name in written))
    return 0


def _graph(net, data, out):
    """The model's graph on a few test images, after backward, coloured by gradient norm."""
    import autotensor as at
    from autotensor.nn import functional as F
    from autotensor.viz import draw_graph, retain_grads

    net.eval()
    loss = F.softmax_cross_entropy(net(at.Tensor(data["X_test"][:16])), data["y_test"][:16])
    retain_grads(loss)
    loss.backward()
    draw_graph(loss, params=net, show_grads=True).save(out / "model_graph.svg")
    net.zero_grad()


def _plots(solver, first_layer_weights, out):
    try:
        from autotensor.plot import plot_history, plot_weights
        plot_history(solver, out / "training_curves.png")
        plot_weights(first_layer_weights, out / "first_layer_weights.png",
                     title="first-layer filters")
    except ImportError as e:                       # matplotlib is the optional `plot` extra
        print(f"no pictures: {e}")
        return []
    return ["training_curves.png", "first_layer_weights.png"]


# ---- train --------------------------------------------------------------------------------------
def train(args):
    from autotensor.data import get_cifar10_data, get_digits_data
    from autotensor.nn.models import FullyConnectedNet, ThreeLayerConvNet
    from autotensor.optim import Solver

    out = _out_dir(args.out)
    np.random.seed(args.seed)
    if args.dataset == "digits":
        data = get_digits_data(dtype=np.float32)
    elif args.data_dir is None:
        raise SystemExit("train --dataset cifar10 needs --data-dir: the folder holding the "
                         "CIFAR-10 batches (binary or python version, see docs/data.md)")
    else:
        try:
            data = get_cifar10_data(args.data_dir, num_training=args.num_training,
                                    dtype=np.float32)
        except (ValueError, FileNotFoundError) as err:    # a broken or hostile data folder
            raise SystemExit(f"autotensor train: {err}") from None
    input_dim = data["X_train"].shape[1:]
    if args.model == "cnn":
        small = input_dim[1] <= 8                 # digits: 3x3 filters; CIFAR-10: the course's
        model = ThreeLayerConvNet(input_dim=input_dim, num_filters=16 if small else 32,
                                  filter_size=3 if small else 7, hidden_dim=100,
                                  weight_scale=1e-2, reg=1e-3, use_batchnorm=True)
    else:
        model = FullyConnectedNet([100, 100], input_dim=int(np.prod(input_dim)),
                                  normalization="batchnorm", weight_scale=5e-2, reg=1e-3)
    print(f"autotensor train: {type(model).__name__} on {args.dataset} "
          f"({len(data['X_train'])} training images of shape {input_dim})")
    # checkpoint_every: out/checkpoint_last.npz, rewritten every 100 iterations, is where an
    # interrupted run resumes mid-epoch (--resume); checkpoint_epoch_{n}.npz after each epoch.
    solver = Solver(model, {k: data[k] for k in _SPLITS}, update_rule="adam",
                    optim_config={"learning_rate": args.lr}, lr_decay=0.95,
                    batch_size=args.batch_size, num_epochs=args.epochs,
                    checkpoint_name=str(out / "checkpoint"), checkpoint_every=100,
                    print_every=100, verbose=True)
    if args.resume is not None:
        try:
            solver.load_checkpoint(args.resume)
        except ValueError as err:           # another model or data set, a broken file
            raise SystemExit(f"autotensor train: --resume: {err}") from None
        print(f"resuming from {args.resume} after iteration {solver.iteration} "
              f"(epoch {solver.epoch})")
    solver.train()
    print(f"best validation accuracy {solver.best_val_acc:.3f}, test accuracy "
          f"{solver.check_accuracy(data['X_test'], data['y_test']):.3f}; "
          f"checkpoints in {out}")
    _plots(solver, model.params["W1"], out)
    return 0


def _out_dir(path):
    out = pathlib.Path(path)
    out.mkdir(parents=True, exist_ok=True)
    return out


# ---- sweep --------------------------------------------------------------------------------------
def run_sweep(args):
    from autotensor import sweep

    out = _out_dir(args.out)
    space = {"model": [args.model], "dataset": [args.dataset], "lr": args.lr, "reg": args.reg,
             "hidden": args.hidden, "epochs": args.epochs, "batch_size": args.batch_size,
             "update_rule": args.update_rule, "seed": args.init_seed}
    if args.model == "fc":
        space["layers"] = args.layers
    if args.model == "convnet":
        space["num_filters"] = args.num_filters
    if args.weight_scale is not None:
        space["weight_scale"] = args.weight_scale
    try:
        trials = len(sweep.plan(space, args.trials, args.search, args.seed))
        data = sweep.load_dataset(args.dataset, args.data_dir, args.num_training)
    except ValueError as err:
        raise SystemExit(f"autotensor sweep: {err}") from None
    results = out / "results.jsonl"
    try:
        client = sweep.connect(args.scheduler, args.workers)
    except (ImportError, OSError, ValueError) as err:
        raise SystemExit(f"autotensor sweep: {err}") from None
    with client:
        workers = len(client.scheduler_info()["workers"])
        print(f"autotensor sweep: {trials} trials of {args.model} on {args.dataset} "
              f"({len(data['X_train'])} training images), {workers} Dask workers at "
              f"{client.scheduler.address}; results in {results}")
        # Scattered here, once per worker, so the best trial's retraining reuses it.
        [shared] = client.scatter([data], broadcast=True, hash=False)
        records = sweep.run(sweep.train_course_model, space, args.trials, args.search,
                            scheduler=client, results=results, seed=args.seed, data=shared,
                            timeout=args.timeout, target=args.target,
                            maximize=not args.minimize, retry_failed=args.retry_failed,
                            progress=not args.no_progress)
        report = sweep.Report(records, args.target, maximize=not args.minimize)
        print(report.table(top=args.top))
        written = [results.name]
        if report.best is not None:
            written.append(_best_checkpoint(client, shared, report, out))
    written += _sweep_plots(report, out)
    print("wrote " + ", ".join(str(out / name) for name in written))
    return 0 if report.best is not None else 1


def _best_checkpoint(client, shared, report, out):
    """Train the best config once more, on a worker, and save its Solver checkpoint here
    (a remote worker's disk is out of reach). Skipped when it is already saved."""
    import json

    from autotensor import sweep
    from autotensor.optim import save_checkpoint

    best = report.best
    summary = {k: v for k, v in best.items() if k != "metrics"}
    summary["metrics"] = {k: v for k, v in best["metrics"].items() if not isinstance(v, list)}
    path, note = out / "best_trial.npz", out / "best_trial.json"
    try:
        if path.exists() and json.loads(note.read_text())["config"] == best["config"]:
            return path.name
    except (OSError, ValueError, KeyError, TypeError):
        pass                                       # missing or unreadable: make it again
    metrics, arrays, meta = client.submit(sweep.checkpoint_arrays, best["config"], shared,
                                          pure=False).result()
    if metrics.get(report.target) != best["metrics"].get(report.target):
        print(f"note: retraining the best trial gave {report.target} "
              f"{metrics.get(report.target)}, the sweep recorded "
              f"{best['metrics'].get(report.target)} (another machine's BLAS?)")
    save_checkpoint(path, arrays, meta)
    # The note last, and whole (renamed into place): it vouches for the checkpoint.
    part = note.with_name(note.name + ".part")
    part.write_text(json.dumps(summary, indent=1) + "\n")
    part.replace(note)
    return path.name


def _sweep_plots(report, out):
    try:
        report.scatter(out / "sweep.png")
        report.curves(out / "curves.png")
    except ImportError as e:                       # matplotlib is the optional `plot` extra
        print(f"no pictures: {e}")
        return []
    return ["sweep.png", "curves.png"]


def _spec(kind):
    """argparse type for a sweep spec: a:b, a:b:log, x,y,z or x."""
    def parse(text):
        from autotensor.sweep import parse_spec
        try:
            return parse_spec(text, kind)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    return parse


def _add_sweep_parser(sub):
    p = sub.add_parser(
        "sweep", help="tune lr, reg, hidden size, epochs... on Dask (local or a cluster)",
        description="Specs: a:b a uniform range, a:b:log a log-uniform one (integer ranges "
        "include both ends), x,y,z a choice, x a fixed value. See docs/sweeps.md.")
    p.add_argument("--model", choices=["twolayer", "fc", "convnet"], default="fc")
    p.add_argument("--dataset", choices=["digits", "cifar10"], default="digits")
    p.add_argument("--data-dir", help="CIFAR-10 folder (binary or python batches)")
    p.add_argument("--num-training", type=int, default=49000, help="CIFAR-10 training images")
    p.add_argument("--lr", type=_spec(float), default="1e-4:1e-1:log", help="learning rate")
    p.add_argument("--reg", type=_spec(float), default="0:1e-2", help="L2 regularisation")
    p.add_argument("--hidden", type=_spec(int), default="50,100,200", help="hidden units")
    p.add_argument("--epochs", type=_spec(int), default="2")
    p.add_argument("--batch-size", type=_spec(int), default="100")
    p.add_argument("--update-rule", type=_spec(str), default="adam", help="optim.rules names")
    p.add_argument("--weight-scale", type=_spec(float), help="default: the model's own")
    p.add_argument("--layers", type=_spec(int), default="2", help="fc: hidden layers")
    p.add_argument("--num-filters", type=_spec(int), default="16", help="convnet: filters")
    p.add_argument("--init-seed", type=_spec(int), default="0",
                   help="np.random.seed of each trial (weights and minibatches)")
    p.add_argument("--trials", type=int, default=24,
                   help="configs to draw (random) or the grid's largest size (grid); "
                   "default 24")
    p.add_argument("--search", choices=["random", "grid"],
                   help="default: random when a spec is a range, else grid")
    p.add_argument("--seed", type=int, default=0, help="seed of the random search's draws")
    p.add_argument("--workers", type=int, help="local worker processes (default: one per core)")
    p.add_argument("--scheduler", help="a Dask scheduler's address, e.g. tcp://host:8786, "
                   "instead of a local cluster")
    p.add_argument("--timeout", type=float, help="seconds per trial (default: no limit)")
    p.add_argument("--target", default="best_val_acc", help="the metric to sort by")
    p.add_argument("--minimize", action="store_true", help="lower target is better")
    p.add_argument("--retry-failed", action="store_true", help="run failed trials again")
    p.add_argument("--top", type=int, default=20, help="rows of the printed table")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", default="sweep_out", help="folder for results and pictures")
    p.set_defaults(func=run_sweep)


# ---- verify -------------------------------------------------------------------------------------
def verify(args):
    """The fused rows of autotensor/op_table.py that have a numerical check: fused == twin on
    the forward and every gradient, and gradcheck of the fused op."""
    import autotensor as at
    from autotensor.op_table import ROWS, fused_and_twin

    rows = [r for r in ROWS if r.twin is not None and r.gradcheck]
    labels = [f"{r.op.removeprefix('fused.')} {r.label}" for r in rows]
    width = max(28, max(map(len, labels)) + 2)
    failures = 0
    print(f"{'fused op':<{width}}{'forward':>12}{'backward':>12}  gradcheck")
    for row, label in zip(rows, labels):
        (out_f, grads_f), (out_t, grads_t) = fused_and_twin(row, seed=args.seed)
        fwd = np.max(np.abs(out_f.data - out_t.data))
        bwd = max(np.max(np.abs(a - b)) for a, b in zip(grads_f, grads_t))
        ok, message = True, ""
        try:
            with at.use_fused(True):
                ok = at.gradcheck(row.fn, row.sample(seed=args.seed), **row.tol)
        except AssertionError as e:
            ok, message = False, str(e)
        passed = ok and fwd < 1e-9 and bwd < 1e-9
        failures += not passed
        print(f"{label:<{width}}{fwd:>12.1e}{bwd:>12.1e}  {'ok' if ok else 'FAILED'}")
        if not ok:
            print("    " + message)
    print("fused == composite twin == numerical: " + ("all ok" if not failures else
                                                      f"{failures} FAILED"))
    return 1 if failures else 0


# ---- demo and train arguments ------------------------------------------------------------------
def _flag(check, *args, kinds=(float,)):
    """An argparse `type` that refuses a bad value at parse time with autotensor.validate's rule:
    `--lr nan` exits with "argument --lr: must be a finite number >= 0, got nan". The text is
    read as the first of `kinds` that accepts it (or stays text, which the check refuses)."""

    def parse(text):
        value = text
        for kind in kinds:
            try:
                value = kind(text)
                break
            except ValueError:
                pass
        try:
            return check(None, "", value, *args)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return parse


def _flags():
    """The argparse types of the demo and train flags."""
    from autotensor import validate

    # A size given as "2.5" reaches its check as the number 2.5, not as text.
    return {"size": _flag(validate.size, kinds=(int, float)),
            "seed": _flag(validate.seed, kinds=(int, float)),
            "lr": _flag(validate.learning_rate), "reg": _flag(validate.number, ">= 0")}


# The model zoo (examples/ in the repository; docs/models.md), listed by --help.
_ZOO_EPILOG = """model zoo: python examples/NAME.py [--steps N] [--quick] [--out DIR]
  convnet_digits  the course's ThreeLayerConvNet as nn.Modules, on the embedded digits
  resnet_digits   a residual block with batch norm, on the embedded digits
  wgan_gp         a WGAN with gradient penalty on a 2-D toy distribution
  pinn            a physics-informed net solving u'' = f (second derivatives)
  gru_digits      a GRU classifier reading the digits row by row
  vae_digits      a variational autoencoder on the digits: reconstructions and samples
  dcgan_digits    a DCGAN generating digits (ConvTranspose2d, BatchNorm2d, LeakyReLU)
  char_lstm       a character-level LSTM language model on Macbeth, sampling text
  transformer     a small causal transformer on Macbeth's characters, sampling text"""


def main(argv=None):
    parser = argparse.ArgumentParser(prog="autotensor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=_ZOO_EPILOG)
    sub = parser.add_subparsers(dest="command", required=True)

    flag = _flags()
    p = sub.add_parser("demo", help="train a conv net on the embedded digits (under a minute)")
    p.add_argument("--out", default="demo_out", help="folder for pictures and the checkpoint")
    p.add_argument("--epochs", type=flag["size"], default=10)
    p.add_argument("--batch-size", type=flag["size"], default=50)
    p.add_argument("--lr", type=flag["lr"], default=1e-3)
    p.add_argument("--reg", type=flag["reg"], default=1e-3, help="L2 weight decay")
    p.add_argument("--seed", type=flag["seed"], default=0)
    p.set_defaults(func=demo)

    p = sub.add_parser("train", help="train a course model on digits or CIFAR-10")
    p.add_argument("--model", choices=["fc", "cnn"], default="cnn")
    p.add_argument("--dataset", choices=["digits", "cifar10"], default="digits")
    p.add_argument("--data-dir", help="CIFAR-10 folder (binary or python batches)")
    p.add_argument("--num-training", type=flag["size"], default=49000)
    p.add_argument("--out", default="train_out")
    p.add_argument("--epochs", type=flag["size"], default=10)
    p.add_argument("--batch-size", type=flag["size"], default=50)
    p.add_argument("--lr", type=flag["lr"], default=1e-3)
    p.add_argument("--seed", type=flag["seed"], default=0)
    p.add_argument("--resume", metavar="PATH", help="a checkpoint this command wrote (e.g. "
                   "OUT/checkpoint_last.npz): continue that run with the same flags")
    p.set_defaults(func=train)

    _add_sweep_parser(sub)

    p = sub.add_parser("verify", help="check fused == composite == numerical gradients")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=verify)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
