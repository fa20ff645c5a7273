"""A small causal transformer (GPT-style) on Macbeth's characters, sampling text after training.

    token embedding + learned position embedding
    block (x2): x + attention(layer norm(x)), causal mask; x + MLP(layer norm(x)), GELU (tanh form)
    layer norm - linear - softmax cross-entropy on the next character

`nn.MultiheadAttention` with a bool mask forbidding each position to see later ones, pre-norm
residual blocks, Adam with the gradient norm clipped at 1. `python examples/transformer.py
[--steps N] [--quick] [--out DIR]` trains it, prints a sample and writes transformer.png: the loss
curve and that sample.
"""

from __future__ import annotations

import _zoo
import numpy as np

import autotensor as at
from autotensor import nn, optim
from autotensor.nn import functional as F

VOCAB = len(_zoo.corpus()[1])
SIZES = {"full": {"vocab": VOCAB, "d_model": 64, "heads": 4, "blocks": 2, "seq": 32,
                  "batch": 32},
         "small": {"vocab": 5, "d_model": 4, "heads": 2, "blocks": 1, "seq": 4, "batch": 2},
         # bench/models.py: the transformer block
         "bench": {"vocab": VOCAB, "d_model": 128, "heads": 4, "blocks": 1, "seq": 64,
                   "batch": 16}}
LEARNS = (60, 1.4)
CLIP = 1.0


def causal_mask(length):
    """(L, L) bool, True above the diagonal: where nn.MultiheadAttention may NOT attend."""
    return np.triu(np.ones((length, length), dtype=bool), 1)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x)); shape kept."""

    def __init__(self, d_model, heads):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(d_model)
        # NOTE: GELU's tanh form, as GPT-2's: the exact one evaluates erf per element in
        # Python (numpy has no erf), ~40% of a bench-size step.
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(approximate="tanh"),
                                 nn.Linear(4 * d_model, d_model))

    def forward(self, x, mask):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class CharTransformer(nn.Module):
    """(N, L) character indices, L <= seq -> (N, L, vocab) next-character logits."""

    def __init__(self, vocab, d_model, heads, blocks, seq):
        super().__init__()
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(seq, d_model)
        self.blocks = nn.ModuleList([Block(d_model, heads) for _ in range(blocks)])
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, x):
        length = x.shape[1]
        h = self.tok(x) + self.pos(np.arange(length))
        mask = causal_mask(length)
        for block in self.blocks:
            h = block(h, mask)
        return self.head(self.ln_f(h))


def build(size="full", dtype=np.float64):
    s = SIZES[size]
    return CharTransformer(s["vocab"], s["d_model"], s["heads"], s["blocks"],
                           s["seq"]).astype(dtype)


def torch_build(torch, size="full"):
    s, tnn = SIZES[size], torch.nn

    class TorchBlock(tnn.Module):
        def __init__(self):
            super().__init__()
            d = s["d_model"]
            self.ln1 = tnn.LayerNorm(d)
            self.attn = tnn.MultiheadAttention(d, s["heads"], batch_first=True)
            self.ln2 = tnn.LayerNorm(d)
            self.mlp = tnn.Sequential(tnn.Linear(d, 4 * d), tnn.GELU(approximate="tanh"),
                                      tnn.Linear(4 * d, d))

        def forward(self, x, mask):
            h = self.ln1(x)
            x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
            return x + self.mlp(self.ln2(x))

    class TorchCharTransformer(tnn.Module):
        def __init__(self):
            super().__init__()
            self.tok = tnn.Embedding(s["vocab"], s["d_model"])
            self.pos = tnn.Embedding(s["seq"], s["d_model"])
            self.blocks = tnn.ModuleList([TorchBlock() for _ in range(s["blocks"])])
            self.ln_f = tnn.LayerNorm(s["d_model"])
            self.head = tnn.Linear(s["d_model"], s["vocab"])

        def forward(self, x):
            length = x.shape[1]
            h = self.tok(x) + self.pos(torch.arange(length))
            mask = torch.from_numpy(causal_mask(length))
            for block in self.blocks:
                h = block(h, mask)
            return self.head(self.ln_f(h))

    return TorchCharTransformer().double()


def batch(rng, size="full", dtype=np.float64):
    s = SIZES[size]
    return _zoo.text_batch(rng, s["batch"], s["seq"], s["vocab"])


def optimizers(model, optim):
    return [optim.Adam(model.parameters(), lr=6e-3)]


def loss(model, batch):
    logits = model(batch["x"])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["y"].reshape(-1))


def torch_loss(torch, model, batch):
    logits = model(batch["x"])
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                             batch["y"].reshape(-1))


def step(model, opts, batch):
    return _zoo.lm_step(model, opts, batch, loss, CLIP)


def torch_step(torch, model, opts, batch):
    return _zoo.torch_lm_step(torch, model, opts, batch, torch_loss, CLIP)


def generate(model, prompt, length, rng, temperature=0.8):
    """`prompt` followed by `length` characters, each drawn given the last `seq` ones."""
    _, vocab, _ = _zoo.corpus()
    ids = [vocab.index(c) for c in prompt]
    window = model.pos.num_embeddings
    model.eval()
    with at.no_grad():
        for _ in range(length):
            logits = model(np.array([ids[-window:]]))
            ids.append(_zoo.next_token(logits.data[0, -1], rng, temperature))
    model.train()
    return "".join(vocab[i] for i in ids)


def main(argv=None):
    args = _zoo.parse_args(argv, __doc__.splitlines()[0], steps=400, quick_steps=LEARNS[0])
    at.manual_seed(args.seed)
    np.random.seed(args.seed)                 # nn.Linear draws from numpy's RNG
    model = build()
    history = _zoo.train_loss(model, optimizers(model, optim), step, batch, args,
                              "transformer")
    sample = generate(model, "Macbeth:\n", 300, np.random.default_rng(args.seed))
    print(f"transformer: loss {np.mean(history['loss'][-20:]):.3f} nats/char after "
          f"{args.steps} steps; a sample:\n{sample}")
    plt = _zoo.matplotlib_or_none()
    if plt is not None:
        s = SIZES["full"]
        fig = _zoo.text_figure(plt, history, sample,
                               f"causal transformer ({s['blocks']} blocks, d_model "
                               f"{s['d_model']}, {s['heads']} heads) on Macbeth, "
                               f"{args.steps} steps")
        _zoo.save_figure(fig, args, "transformer.png", __file__, history)
        plt.close(fig)
    return history


if __name__ == "__main__":
    main()
