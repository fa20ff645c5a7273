"""A character-level LSTM language model on Macbeth, sampling text after training.

    embedding - LSTM (2 layers) - linear - softmax cross-entropy on the next character

The text ships with the package (`autotensor.data.load_text("macbeth")`). Each step reads
random windows of the play and predicts every next character; Adam, gradient norm clipped at 1.
`python examples/char_lstm.py [--steps N] [--quick] [--out DIR]` trains it, prints a sample and
writes char_lstm.png: the loss curve and that sample.
"""

from __future__ import annotations

import _zoo
import numpy as np

import autotensor as at
from autotensor import nn, optim
from autotensor.nn import functional as F

VOCAB = len(_zoo.corpus()[1])
SIZES = {"full": {"vocab": VOCAB, "embed": 32, "hidden": 96, "layers": 2, "seq": 32,
                  "batch": 32},
         "small": {"vocab": 5, "embed": 3, "hidden": 3, "layers": 2, "seq": 4, "batch": 2},
         # bench/models.py: the PyTorch word-language-model tutorial's sizes
         "bench": {"vocab": VOCAB, "embed": 200, "hidden": 200, "layers": 2, "seq": 35,
                   "batch": 20}}
LEARNS = (60, 1.3)
CLIP = 1.0


class CharLSTM(nn.Module):
    """(N, L) character indices -> (N, L, vocab) next-character logits, and the LSTM state."""

    def __init__(self, vocab, embed, hidden, layers):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x, state=None):
        out, state = self.lstm(self.embed(x), state)
        return self.head(out), state


def build(size="full", dtype=np.float64):
    s = SIZES[size]
    return CharLSTM(s["vocab"], s["embed"], s["hidden"], s["layers"]).astype(dtype)


def torch_build(torch, size="full"):
    s, tnn = SIZES[size], torch.nn

    class TorchCharLSTM(tnn.Module):
        def __init__(self):
            super().__init__()
            self.embed = tnn.Embedding(s["vocab"], s["embed"])
            self.lstm = tnn.LSTM(s["embed"], s["hidden"], num_layers=s["layers"],
                                 batch_first=True)
            self.head = tnn.Linear(s["hidden"], s["vocab"])

        def forward(self, x, state=None):
            out, state = self.lstm(self.embed(x), state)
            return self.head(out), state

    return TorchCharLSTM().double()


def batch(rng, size="full", dtype=np.float64):
    s = SIZES[size]
    return _zoo.text_batch(rng, s["batch"], s["seq"], s["vocab"])


def optimizers(model, optim):
    return [optim.Adam(model.parameters(), lr=3e-3)]


def loss(model, batch):
    logits, _ = model(batch["x"])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["y"].reshape(-1))


def torch_loss(torch, model, batch):
    logits, _ = model(batch["x"])
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                             batch["y"].reshape(-1))


def step(model, opts, batch):
    return _zoo.lm_step(model, opts, batch, loss, CLIP)


def torch_step(torch, model, opts, batch):
    return _zoo.torch_lm_step(torch, model, opts, batch, torch_loss, CLIP)


def generate(model, prompt, length, rng, temperature=0.8):
    """`prompt` followed by `length` characters drawn one at a time, the LSTM state carried."""
    _, vocab, _ = _zoo.corpus()
    ids = [vocab.index(c) for c in prompt]
    out = list(prompt)
    model.eval()
    with at.no_grad():
        logits, state = model(np.array([ids]))
        for _ in range(length):
            i = _zoo.next_token(logits.data[0, -1], rng, temperature)
            out.append(vocab[i])
            logits, state = model(np.array([[i]]), state)
    model.train()
    return "".join(out)


def main(argv=None):
    args = _zoo.parse_args(argv, __doc__.splitlines()[0], steps=400, quick_steps=LEARNS[0])
    at.manual_seed(args.seed)
    np.random.seed(args.seed)                 # nn.Linear draws from numpy's RNG
    model = build()
    history = _zoo.train_loss(model, optimizers(model, optim), step, batch, args,
                              "char_lstm")
    sample = generate(model, "Macbeth:\n", 300, np.random.default_rng(args.seed))
    print(f"char LSTM: loss {np.mean(history['loss'][-20:]):.3f} nats/char after "
          f"{args.steps} steps; a sample:\n{sample}")
    plt = _zoo.matplotlib_or_none()
    if plt is not None:
        fig = _zoo.text_figure(plt, history, sample,
                               f"char-level LSTM (2 x {SIZES['full']['hidden']}) on Macbeth, "
                               f"{args.steps} steps")
        _zoo.save_figure(fig, args, "char_lstm.png", __file__, history)
        plt.close(fig)
    return history


if __name__ == "__main__":
    main()
