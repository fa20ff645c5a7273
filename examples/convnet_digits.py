"""The course's ThreeLayerConvNet, written as nn.Modules, trained on the embedded 8x8 digits.

    conv 3x3 (pad 1) - relu - 2x2 max pool - linear - relu - linear - softmax cross-entropy

`python examples/convnet_digits.py [--steps N] [--quick] [--out DIR]` trains it with Adam and
writes convnet_digits.png: the loss curve, the validation accuracy and the first-layer filters.
"""

from __future__ import annotations

import _zoo
import numpy as np

import autotensor as at
from autotensor import nn, optim

SIZES = {"full": {"filters": 16, "hidden": 100, "batch": 50},
         "small": {"filters": 2, "hidden": 5, "batch": 4}}
LEARNS = (60, 3.0)


class ThreeLayerConvNet(nn.Module):
    """conv - relu - 2x2 max pool - affine - relu - affine on (N, 1, 8, 8) images."""

    def __init__(self, filters=16, hidden=100, num_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(1, filters, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(filters * 4 * 4, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x):
        h = self.pool(at.relu(self.conv(x)))
        return self.fc2(at.relu(self.fc1(h.flatten(1))))


def build(size="full", dtype=np.float64):
    s = SIZES[size]
    return ThreeLayerConvNet(s["filters"], s["hidden"]).astype(dtype)


def torch_build(torch, size="full"):
    s = SIZES[size]
    tnn = torch.nn

    class TorchThreeLayerConvNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv = tnn.Conv2d(1, s["filters"], 3, padding=1)
            self.pool = tnn.MaxPool2d(2)
            self.fc1 = tnn.Linear(s["filters"] * 4 * 4, s["hidden"])
            self.fc2 = tnn.Linear(s["hidden"], 10)

        def forward(self, x):
            h = self.pool(torch.relu(self.conv(x)))
            return self.fc2(torch.relu(self.fc1(h.flatten(1))))

    return TorchThreeLayerConvNet().double()


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
    np.random.seed(args.seed)                 # nn.Linear / nn.Conv2d draw from numpy's RNG
    model = build()
    history = _zoo.train_classifier(model, optimizers(model, optim), batch, args,
                                    "convnet_digits")
    data = _zoo.digits()
    test_acc = _zoo.accuracy(model, data["X_test"], data["y_test"])
    print(f"ThreeLayerConvNet: test accuracy {test_acc:.3f} after {args.steps} steps")
    plt = _zoo.matplotlib_or_none()
    if plt is not None:
        fig = plot(plt, history, model.conv.weight.data, f"ThreeLayerConvNet (test acc "
                   f"{test_acc:.3f})")
        _zoo.save_figure(fig, args, "convnet_digits.png", __file__, history)
        plt.close(fig)
    return history


def plot(plt, history, filters, title):
    """Loss, validation accuracy, first-layer filters: one row of three panels."""
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(11, 3.2))
    a.plot(history["loss"], lw=0.6)
    a.set(xlabel="step", ylabel="training loss", yscale="log")
    b.plot(history["val_step"], history["val_acc"], marker="o", ms=3)
    b.set(xlabel="step", ylabel="validation accuracy", ylim=(0, 1))
    k = filters[:, 0]
    cols = int(np.ceil(np.sqrt(len(k))))
    grid = np.full((cols * 4, cols * 4), np.nan)
    for i, f in enumerate(k):
        r, q = divmod(i, cols)
        grid[r * 4:r * 4 + 3, q * 4:q * 4 + 3] = (f - f.min()) / (np.ptp(f) + 1e-12)
    c.imshow(grid, cmap="gray")
    c.set(title="first-layer filters", xticks=[], yticks=[])
    fig.suptitle(title)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
