"""A GRU sequence classifier reading the embedded 8x8 digits row by row.

    image (N, 1, 8, 8) -> 8 steps of 8 pixels -> nn.GRU(batch_first) -> last hidden state
    -> linear -> softmax cross-entropy

The GRU sees one row per time step and must carry what it read in its hidden state to the end.
`python examples/gru_digits.py [--steps N] [--quick] [--out DIR]` trains it with Adam and writes
gru_digits.png: the loss, the validation accuracy, and the test accuracy of a prediction made
after reading only the first k rows.
"""

from __future__ import annotations

import _zoo
import numpy as np

import autotensor as at
from autotensor import nn, optim

SIZES = {"full": {"hidden": 64, "batch": 50}, "small": {"hidden": 3, "batch": 4}}
LEARNS = (60, 2.0)
ROWS = COLUMNS = 8


class GRUClassifier(nn.Module):
    """nn.GRU over the image's rows, a linear head on its last hidden state."""

    def __init__(self, hidden=64, num_classes=10):
        super().__init__()
        self.gru = nn.GRU(COLUMNS, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x):
        _, h_n = self.gru(x.reshape(x.shape[0], ROWS, COLUMNS))
        return self.fc(h_n[-1])

    def logits_after_each_row(self, x):
        """(N, ROWS, classes): the head applied to the hidden state after every row."""
        output, _ = self.gru(x.reshape(x.shape[0], ROWS, COLUMNS))
        return self.fc(output)


def build(size="full", dtype=np.float64):
    return GRUClassifier(SIZES[size]["hidden"]).astype(dtype)


def torch_build(torch, size="full"):
    hidden, tnn = SIZES[size]["hidden"], torch.nn

    class TorchGRUClassifier(tnn.Module):
        def __init__(self):
            super().__init__()
            self.gru = tnn.GRU(COLUMNS, hidden, batch_first=True)
            self.fc = tnn.Linear(hidden, 10)

        def forward(self, x):
            _, h_n = self.gru(x.reshape(x.shape[0], ROWS, COLUMNS))
            return self.fc(h_n[-1])

    return TorchGRUClassifier().double()


def batch(rng, size="full", dtype=np.float64):
    return _zoo.digits_batch(rng, SIZES[size]["batch"], dtype)


def optimizers(model, optim):
    return [optim.Adam(model.parameters(), lr=3e-3)]


loss = _zoo.classifier_loss
step = _zoo.classifier_step
torch_step = _zoo.torch_classifier_step


def main(argv=None):
    args = _zoo.parse_args(argv, __doc__.splitlines()[0], steps=600, quick_steps=LEARNS[0])
    at.manual_seed(args.seed)
    np.random.seed(args.seed)                 # nn.Linear draws from numpy's RNG
    model = build()
    history = _zoo.train_classifier(model, optimizers(model, optim), batch, args,
                                    "gru_digits")
    data = _zoo.digits()
    with at.no_grad():
        pred = model.logits_after_each_row(data["X_test"]).data.argmax(-1)
    by_rows = (pred == data["y_test"][:, None]).mean(0)
    print(f"GRU: test accuracy {by_rows[-1]:.3f} after {args.steps} steps")
    plt = _zoo.matplotlib_or_none()
    if plt is not None:
        fig = plot(plt, history, by_rows)
        _zoo.save_figure(fig, args, "gru_digits.png", __file__, history)
        plt.close(fig)
    return history


def plot(plt, history, by_rows):
    """Loss, validation accuracy, test accuracy against the number of rows read."""
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(11, 3.2))
    a.plot(history["loss"], lw=0.6)
    a.set(xlabel="step", ylabel="training loss", yscale="log")
    b.plot(history["val_step"], history["val_acc"], marker="o", ms=3)
    b.set(xlabel="step", ylabel="validation accuracy", ylim=(0, 1))
    c.bar(np.arange(1, ROWS + 1), by_rows)
    c.set(xlabel="rows read", ylabel="test accuracy", ylim=(0, 1),
          title="predicting before the last row")
    fig.suptitle(f"GRU reading the digits row by row (test acc {by_rows[-1]:.3f})")
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
