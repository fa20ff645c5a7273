"""What every zoo example shares: its command line, the progress bar, where pictures go and the
record that dates them, and the contract the tests and bench/models.py read.

An example is one file `examples/NAME.py`, runnable as `python examples/NAME.py`, that defines:

    SIZES = {"full": {...}, "small": {...}}       # hyperparameters; "small": the shrunken model
    LEARNS = (steps, factor)                      # --quick: `steps` steps divide the loss
                                                  # (mean of the first and last 5) by `factor`
    build(size="full", dtype=np.float64)          # the autotensor model: one nn.Module
    torch_build(torch, size="full")               # the same model in PyTorch (float64)
    batch(rng, size="full", dtype=np.float64)     # one step's inputs: a dict of ndarrays, every
                                                  # random draw included, so both libraries
                                                  # see the same numbers
    optimizers(model, optim)                      # optim: autotensor.optim or torch.optim
    step(model, opts, batch)                      # one training step; returns (losses, grads):
    torch_step(torch, model, opts, batch)         #   {name: float}, {parameter name: ndarray}
    loss(model, batch)                            # the scalar Tensor gradcheck differentiates
    main(argv=None)                               # the script: trains, writes pictures, returns
                                                  # {"loss": [...]} (the history)

Tests import an example by name with `load(name)`; nothing here imports torch.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import pathlib
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
# The zoo, as tests/test_examples.py, tests/test_models_torch.py, docs/models.md and
# `python -m autotensor --help` list it: a new example is its file plus its name here.
EXAMPLES = ("convnet_digits", "resnet_digits", "wgan_gp", "pinn")
EXAMPLES += ("gru_digits", "vae_digits", "dcgan_digits")     # wave 2: issue 13, models 3-5
EXAMPLES += ("char_lstm", "transformer")          # wave 2: the character language models
DOCS_IMG = HERE.parent / "docs" / "img" / "models"


def load(name):
    """The example module examples/NAME.py (imported by path: examples/ is no package)."""
    if str(HERE) not in sys.path:               # its own `import _zoo`
        sys.path.insert(0, str(HERE))
    module_name = f"zoo_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def parse_args(argv, description, steps, quick_steps):
    """The flags every example takes: --steps, --quick, --out, --seed."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--steps", type=int, default=None, help=f"training steps (default {steps})")
    p.add_argument("--quick", action="store_true",
                   help=f"only {quick_steps} steps (what the tests run)")
    p.add_argument("--out", default=str(DOCS_IMG), help="folder for the pictures")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.steps is None:
        args.steps = quick_steps if args.quick else steps
    if args.steps < 1:
        p.error(f"--steps must be >= 1, got {args.steps}")
    return args


def progress(steps, desc):
    """A tqdm bar over range(steps) (on stderr; `bar.set_postfix(loss=...)` shows the loss)."""
    from tqdm import tqdm
    return tqdm(range(steps), desc=desc, mininterval=0.5, dynamic_ncols=True)


def grads_of(named_parameters):
    """{name: copy of .grad} of the (name, Tensor) pairs: autotensor or torch parameters."""
    out = {}
    for name, p in named_parameters:
        g = p.grad
        g = g.detach().cpu().numpy() if hasattr(g, "detach") else np.asarray(getattr(g, "data", g))
        out[name] = np.array(g, copy=True)
    return out


def save_figure(fig, args, file_name, example, history):
    """Write the picture to --out and, beside it, FILE.json: the example's source hash and flags.

    The docs' pictures are fresh while that hash is the example's current one (tests check it);
    rerun `python examples/NAME.py` to refresh them.
    """
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / file_name, dpi=80)
    source = pathlib.Path(example).resolve()
    record = {"example": f"examples/{source.name}",
              "source_sha256": source_hash(source),
              "args": {k: v for k, v in vars(args).items() if k != "out"},
              "final_loss": float(np.mean(history["loss"][-20:]))}
    (out / f"{pathlib.Path(file_name).stem}.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out / file_name}")


def source_hash(path):
    """sha256 of a file's bytes, as the pictures' records keep it."""
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def matplotlib_or_none():
    """pyplot with the file-only backend, or None (matplotlib is the optional `plot` extra)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        print(f"no pictures: {e}")
        return None
    return plt


# ---- the digits classifiers' shared step ----------------------------------------------------
_DIGITS = {}


def digits(dtype=np.float64):
    """The embedded digits' splits (autotensor.data.get_digits_data), loaded once per dtype."""
    from autotensor.data import get_digits_data
    key = np.dtype(dtype).name
    if key not in _DIGITS:
        _DIGITS[key] = get_digits_data(dtype=dtype)
    return _DIGITS[key]


def digits_batch(rng, batch_size, dtype=np.float64):
    """A random minibatch of the training digits: {"x": (N, 1, 8, 8), "y": (N,)}."""
    data = digits(dtype)
    idx = rng.choice(len(data["X_train"]), batch_size, replace=False)
    return {"x": data["X_train"][idx], "y": data["y_train"][idx]}


def classifier_loss(model, batch):
    from autotensor.nn import functional as F
    return F.softmax_cross_entropy(model(batch["x"]), batch["y"])


def classifier_step(model, opts, batch):
    """Cross-entropy, backward, one Adam step."""
    [opt] = opts
    opt.zero_grad()
    loss = classifier_loss(model, batch)
    loss.backward()
    grads = grads_of(model.named_parameters())
    opt.step()
    return {"loss": loss.item()}, grads


def torch_classifier_step(torch, model, opts, batch):
    [opt] = opts
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(batch["x"])),
                                             torch.from_numpy(batch["y"]))
    loss.backward()
    grads = grads_of(model.named_parameters())
    opt.step()
    return {"loss": loss.item()}, grads


def accuracy(model, x, y, batch_size=500):
    """Fraction of x classified as y, in eval mode, without recording."""
    import autotensor as at
    model.eval()
    with at.no_grad():
        pred = np.concatenate([model(x[i:i + batch_size]).data.argmax(1)
                               for i in range(0, len(x), batch_size)])
    model.train()
    return float((pred == y).mean())



def train_loss(model, opts, step, batch, args, desc, every=10, fmt=".3f"):
    """args.steps of step(model, opts, batch(rng)) (rng seeded with args.seed); returns the loss
    per step, shown on the progress bar every `every` steps."""
    rng = np.random.default_rng(args.seed)
    history = {"loss": []}
    bar = progress(args.steps, desc)
    for t in bar:
        losses, _ = step(model, opts, batch(rng))
        history["loss"].append(losses["loss"])
        if t % every == every - 1:
            bar.set_postfix(loss=f"{losses['loss']:{fmt}}")
    return history

def train_classifier(model, opts, batch, args, desc):
    """args.steps of classifier_step on batch(rng) (rng seeded with args.seed); returns the
    loss per step and the validation accuracy every 50 steps and at the end."""
    rng = np.random.default_rng(args.seed)
    data = digits()
    history = {"loss": [], "val_step": [], "val_acc": []}
    bar = progress(args.steps, desc)
    for t in bar:
        losses, _ = classifier_step(model, opts, batch(rng))
        history["loss"].append(losses["loss"])
        if t % 50 == 49 or t == args.steps - 1:
            history["val_step"].append(t + 1)
            history["val_acc"].append(accuracy(model, data["X_val"], data["y_val"]))
            bar.set_postfix(loss=f"{losses['loss']:.3f}", val_acc=history["val_acc"][-1])
    return history

# ---- the character language models' shared parts (char_lstm, transformer) -----------------
_TEXT = {}


def corpus():
    """(text, vocab, ids): the packaged Macbeth (autotensor.data.load_text), its sorted
    characters, and the text as int64 indices into them; loaded once."""
    if not _TEXT:
        from autotensor.data import load_text
        text = load_text("macbeth")
        vocab = "".join(sorted(set(text)))
        lookup = np.zeros(128, dtype=np.int64)
        lookup[[ord(c) for c in vocab]] = np.arange(len(vocab))
        _TEXT.update(text=text, vocab=vocab,
                     ids=lookup[np.frombuffer(text.encode("ascii"), dtype=np.uint8)])
    return _TEXT["text"], _TEXT["vocab"], _TEXT["ids"]


def text_batch(rng, batch_size, seq_len, vocab_size):
    """{"x": (N, L) int64, "y": x shifted by one}: random windows of the text; a shrunken model
    (vocab_size below the text's) reads random tokens below vocab_size instead."""
    _, vocab, ids = corpus()
    if vocab_size < len(vocab):
        tokens = rng.integers(0, vocab_size, (batch_size, seq_len + 1))
    else:
        starts = rng.integers(0, len(ids) - seq_len - 1, batch_size)
        tokens = ids[starts[:, None] + np.arange(seq_len + 1)]
    return {"x": tokens[:, :-1], "y": tokens[:, 1:]}


def next_token(logits, rng, temperature):
    """An index drawn from softmax(logits / temperature) (logits: one row, an ndarray)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    p = np.exp(z - z.max())
    return int(rng.choice(len(p), p=p / p.sum()))


def lm_step(model, opts, batch, loss, clip):
    """loss(model, batch), backward, gradient norm clipped to `clip`, one optimizer step; the
    gradients returned are the ones before clipping."""
    from autotensor import nn
    [opt] = opts
    opt.zero_grad()
    total = loss(model, batch)
    total.backward()
    grads = grads_of(model.named_parameters())
    nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return {"loss": total.item()}, grads


def torch_lm_step(torch, model, opts, batch, loss, clip):
    [opt] = opts
    opt.zero_grad()
    total = loss(torch, model, {k: torch.from_numpy(v) for k, v in batch.items()})
    total.backward()
    grads = grads_of(model.named_parameters())
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return {"loss": total.item()}, grads


def text_figure(plt, history, sample, title):
    """The loss curve (nats per character) beside a sample of the trained model's text."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2, 3]})
    a.plot(history["loss"], lw=0.6)
    a.set(xlabel="step", ylabel="cross-entropy (nats / char)")
    b.axis("off")
    b.text(0.0, 1.0, sample, family="monospace", fontsize=7.5, va="top", ha="left",
           transform=b.transAxes)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
