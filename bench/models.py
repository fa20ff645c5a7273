"""One training step of each zoo model (examples/), autotensor against PyTorch.

A step is what the example's `step` does: forward, loss, backward, optimizer update (WGAN-GP: five
critic updates with the gradient penalty, then one generator update). Each (library, dtype) runs
in its own worker process (bench/timing.py's pattern), times blocks of steps on one fixed batch,
and reports the median; the parent prints milliseconds and autotensor / PyTorch.

ENTRIES lists the zoo with the sizes the issue asks for; an entry whose example file or
autotensor modules do not exist yet is skipped with a note (wave 2 adds the LSTM, transformer,
VAE and DCGAN as one examples/NAME.py each, whose `build(size)` reads these sizes).
Usage: python bench/models.py [--quick] [--repeats N] [--dtypes float64 float32] [--only NAME]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import sys

import numpy as np
from timing import thread_count, timed_blocks

ROOT = pathlib.Path(__file__).resolve().parents[1]
# name, example file, the autotensor nn modules it needs, the size its build() and batch() take
ENTRIES = [
    ("convnet_digits", "convnet_digits", (), "full"),
    ("resnet_digits", "resnet_digits", ("BatchNorm2d",), "full"),
    ("wgan_gp", "wgan_gp", (), "full"),
    ("pinn", "pinn", (), "full"),
    # wave 2: seq 35, batch 20, 2 layers x 200 / seq 64, d_model 128, 4 heads, batch 16
    ("lstm", "char_lstm", ("Embedding", "LSTM"), "bench"),
    ("transformer", "transformer", ("Embedding", "MultiheadAttention", "LayerNorm", "GELU"),
     "bench"),
    ("vae", "vae_digits", (), "full"),
    ("dcgan", "dcgan_digits", ("ConvTranspose2d", "BatchNorm2d", "LeakyReLU"), "full"),
]


def missing(example, needs):
    """Why an entry cannot run yet, or None."""
    from autotensor import nn
    if not (ROOT / "examples" / f"{example}.py").exists():
        return f"examples/{example}.py does not exist yet"
    absent = [m for m in needs if not hasattr(nn, m)]
    return f"autotensor has no nn.{', nn.'.join(absent)} yet" if absent else None


def worker(args):
    """Time `repeats` steps of one entry in one library and dtype; print {"ms": median}."""
    sys.path.insert(0, str(ROOT / "examples"))
    import _zoo
    ex = _zoo.load(args.example)
    dtype = np.dtype(args.dtype)
    np.random.seed(0)
    batch = ex.batch(np.random.default_rng(0), args.size, dtype)
    if args.worker == "torch":
        import torch
        torch.set_num_threads(thread_count())
        torch.manual_seed(0)
        model = ex.torch_build(torch, args.size).to(getattr(torch, args.dtype))
        opts = ex.optimizers(model, torch.optim)
        def step():
            return ex.torch_step(torch, model, opts, batch)
    else:
        from autotensor import optim
        model = ex.build(args.size, dtype)
        opts = ex.optimizers(model, optim)
        def step():
            return ex.step(model, opts, batch)
    times = timed_blocks({"step": step}, args.repeats)["step"]
    print(json.dumps({"ms": 1e3 * statistics.median(times)}))


def run(library, example, size, dtype, repeats):
    proc = subprocess.run([sys.executable, __file__, "--worker", library, "--example", example,
                           "--size", size, "--dtype", dtype, "--repeats", str(repeats)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        if "No module named 'torch'" not in proc.stderr:
            print(f"{library} worker failed:\n{proc.stderr}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])["ms"]


def _ms(value):
    return "n/a" if value is None else f"{value:.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 timed steps each (a smoke run)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    ap.add_argument("--only", help="one entry's name")
    ap.add_argument("--worker", choices=["autotensor", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--example", help=argparse.SUPPRESS)
    ap.add_argument("--size", default="full", help=argparse.SUPPRESS)
    ap.add_argument("--dtype", default="float64", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    repeats = 2 if args.quick else args.repeats
    print(f"one training step, median of {repeats} (ms); {thread_count()} threads")
    print(f"{'model':<16}{'dtype':<9}{'autotensor':>11}{'PyTorch':>9}{'ratio':>8}")
    for name, example, needs, size in ENTRIES:
        if args.only and name != args.only:
            continue
        why = missing(example, needs)
        if why:
            print(f"{name:<16}skipped: {why}")
            continue
        for dtype in args.dtypes:
            ours = run("autotensor", example, size, dtype, repeats)
            theirs = run("torch", example, size, dtype, repeats)
            ratio = f"{ours / theirs:.2f}x" if ours and theirs else "n/a"
            print(f"{name:<16}{dtype:<9}{_ms(ours):>11}{_ms(theirs):>9}{ratio:>8}")


if __name__ == "__main__":
    main()
