"""A small ResNet on the embedded 8x8 digits: a conv stem, one residual block, a linear head.

    stem:  conv 3x3 - batch norm - relu
    block: conv 3x3 - batch norm - relu - conv 3x3 - batch norm, plus the input; relu
    head:  2x2 max pool - flatten - linear - softmax cross-entropy

`python examples/resnet_digits.py [--steps N] [--quick] [--out DIR]` trains it with Adam and
writes resnet_digits.png: the loss curve and the validation accuracy (train and eval mode).
"""

from __future__ import annotations

import _zoo
import numpy as np

import autotensor as at
from autotensor import nn, optim

SIZES = {"full": {"channels": 16, "batch": 50}, "small": {"channels": 2, "batch": 4}}
LEARNS = (60, 3.0)


class ResidualBlock(nn.Module):
    """relu(x + bn(conv(relu(bn(conv(x)))))): the shape of x is kept."""

    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        h = at.relu(self.bn1(self.conv1(x)))
        return at.relu(x + self.bn2(self.conv2(h)))


class ResNet(nn.Module):
    def __init__(self, channels=16, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels), nn.ReLU())
        self.block = ResidualBlock(channels)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(channels * 4 * 4, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.block(self.stem(x))).flatten(1))


def build(size="full", dtype=np.float64):
    return ResNet(SIZES[size]["channels"]).astype(dtype)


def torch_build(torch, size="full"):
    c = SIZES[size]["channels"]
    tnn = torch.nn

    class TorchResidualBlock(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn1 = tnn.BatchNorm2d(c)
            self.conv2 = tnn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn2 = tnn.BatchNorm2d(c)

        def forward(self, x):
            h = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(x + self.bn2(self.conv2(h)))

    class TorchResNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.stem = tnn.Sequential(tnn.Conv2d(1, c, 3, padding=1, bias=False),
                                       tnn.BatchNorm2d(c), tnn.ReLU())
            self.block = TorchResidualBlock()
            self.pool = tnn.MaxPool2d(2)
            self.fc = tnn.Linear(c * 4 * 4, 10)

        def forward(self, x):
            return self.fc(self.pool(self.block(self.stem(x))).flatten(1))

    return TorchResNet().double()


def batch(rng, size="full", dtype=np.float64):
    return _zoo.digits_batch(rng, SIZES[size]["batch"], dtype)


def optimizers(model, optim):
    return [optim.Adam(model.parameters(), lr=1e-3)]


loss = _zoo.classifier_loss
step = _zoo.classifier_step
torch_step = _zoo.torch_classifier_step


def main(argv=None):
    args = _zoo.parse_args(argv, __doc__.splitlines()[0], steps=600, quick_steps=LEARNS[0])
    at.manual_seed(args.seed)
    np.random.seed(args.seed)                 # nn.Linear / nn.Conv2d draw from numpy's RNG
    model = build()
    history = _zoo.train_classifier(model, optimizers(model, optim), batch, args,
                                    "resnet_digits")
    data = _zoo.digits()
    test_acc = _zoo.accuracy(model, data["X_test"], data["y_test"])
    print(f"ResNet: test accuracy {test_acc:.3f} after {args.steps} steps")
    plt = _zoo.matplotlib_or_none()
    if plt is not None:
        fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2))
        a.plot(history["loss"], lw=0.6)
        a.set(xlabel="step", ylabel="training loss", yscale="log")
        b.plot(history["val_step"], history["val_acc"], marker="o", ms=3)
        b.set(xlabel="step", ylabel="validation accuracy (eval mode)", ylim=(0, 1))
        fig.suptitle(f"ResNet block on the digits (test acc {test_acc:.3f})")
        fig.tight_layout()
        _zoo.save_figure(fig, args, "resnet_digits.png", __file__, history)
        plt.close(fig)
    return history


if __name__ == "__main__":
    main()
