"""Command line: `python -m autotensor demo | train | verify` (also installed as `autotensor`).

demo    train a small conv net with batch norm on the embedded digits; write the training
        curves, the first-layer filters, the model's graph (SVG) and a checkpoint
train   train the course's FullyConnectedNet or ThreeLayerConvNet on digits or CIFAR-10;
        --resume PATH continues from a checkpoint it wrote, mid-epoch too
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


def main(argv=None):
    parser = argparse.ArgumentParser(prog="autotensor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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

    p = sub.add_parser("verify", help="check fused == composite == numerical gradients")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=verify)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
