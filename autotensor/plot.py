"""Pictures of training: loss and accuracy curves, and image grids of first-layer weights.

    plot_history(solver, path=None)          -> Figure (training loss; train/val accuracy)
    visualize_grid(Xs, ubound=255.0, padding=1) -> one (H', W', C) array tiling N images
    plot_weights(W, path=None)               -> Figure (conv (F, C, HH, WW) or FC (D, M) weights)

matplotlib is optional (`pip install 'autotensor[plot]'`) and imported only when a figure is
drawn. Figures are built with matplotlib's object API (Figure plus the Agg canvas), never with
pyplot, so the user's backend and pyplot's current figure are left alone. `visualize_grid` is
plain numpy and works without matplotlib.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["plot_history", "visualize_grid", "plot_weights"]


def _new_figure(width, height):
    """A matplotlib Figure on its own Agg canvas (no pyplot, no global backend change)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("autotensor's plotting needs matplotlib, which is optional: "
                          "pip install 'autotensor[plot]'") from err
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, dpi=100):
    # The format follows the file extension (PNG for .png, and when there is none).
    if path is not None:
        fig.savefig(path, dpi=dpi)


# ---------------------------------------------------------------- training curves

def _history(run, name):
    value = run.get(name) if isinstance(run, Mapping) else getattr(run, name, None)
    if value is None:
        raise ValueError(f"plot_history needs `{name}` on {type(run).__name__} (a Solver, "
                         f"or any object or dict with loss_history, train_acc_history and "
                         f"val_acc_history)")
    return np.asarray(value, dtype=np.float64).ravel()


def plot_history(solver, path=None):
    """Training loss per iteration and train/val accuracy per epoch, as the course plots them.

    `solver` is an optim.Solver after `train()`, or any object or dict with `loss_history`,
    `train_acc_history` and `val_acc_history`. Saves to `path` (PNG) when given; returns the
    matplotlib Figure.
    """
    loss = _history(solver, "loss_history")
    train_acc = _history(solver, "train_acc_history")
    val_acc = _history(solver, "val_acc_history")
    fig = _new_figure(7.0, 7.0)
    ax_loss, ax_acc = fig.subplots(2, 1)

    ax_loss.plot(loss, "o", markersize=2.5, alpha=0.6, label="minibatch loss")
    window = len(loss) // 25
    if window >= 2:
        # The per-iteration loss is noisy; a running mean shows the trend through it.
        smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
        ax_loss.plot(np.arange(window - 1, len(loss)), smooth, "-", linewidth=1.5,
                     label=f"mean of {window}")
        ax_loss.legend(loc="upper right")
    ax_loss.set(title="Training loss", xlabel="Iteration", ylabel="loss")

    ax_acc.plot(train_acc, "-o", label="train")
    ax_acc.plot(val_acc, "-o", label="val")
    ax_acc.set(title="Classification accuracy", xlabel="Epoch", ylabel="accuracy")
    ax_acc.legend(loc="lower right")
    ax_acc.grid(alpha=0.3)
    _save(fig, path)
    return fig


# ---------------------------------------------------------------- image grids

def visualize_grid(Xs, ubound=255.0, padding=1):
    """Tile N images (N, H, W, C) into one array, row by row, as the course's `visualize_grid`.

    The grid is ceil(sqrt(N)) images on each side, with `padding` zero pixels between them;
    each image is rescaled on its own to [0, ubound]. Result shape
    (G*H + (G-1)*padding, G*W + (G-1)*padding, C) with G = ceil(sqrt(N)).
    """
    Xs = np.asarray(Xs, dtype=np.float64)
    if Xs.ndim != 4 or Xs.shape[0] == 0:
        raise ValueError(f"visualize_grid expects images of shape (N, H, W, C) with N >= 1, "
                         f"got shape {Xs.shape}")
    if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
        raise ValueError(f"padding must be an integer >= 0, got {padding!r}")
    N, H, W, C = Xs.shape
    side = int(np.ceil(np.sqrt(N)))
    low = Xs.min(axis=(1, 2, 3), keepdims=True)
    span = Xs.max(axis=(1, 2, 3), keepdims=True) - low
    # NOTE: a constant image (span 0) becomes all zeros, where the course's 0/0 gave NaN.
    scaled = ubound * (Xs - low) / np.where(span > 0, span, 1.0)
    # Each image gets `padding` zero rows/columns after it; the last ones are cut off below.
    cells = np.zeros((side * side, H + padding, W + padding, C))
    cells[:N, :H, :W] = scaled
    grid = cells.reshape(side, side, H + padding, W + padding, C).transpose(0, 2, 1, 3, 4)
    grid = grid.reshape(side * (H + padding), side * (W + padding), C)
    return grid[:side * (H + padding) - padding, :side * (W + padding) - padding]


def _infer_image_shape(D):
    """(C, H, W) for a flattened image of D values: square grayscale, else square RGB."""
    for channels in (1, 3):
        side = int(round(np.sqrt(D / channels)))
        if channels * side * side == D:
            return channels, side, side
    raise ValueError(f"cannot tell the image shape of FC weights with {D} inputs: pass "
                     f"image_shape=(C, H, W)")


def _weights_as_images(W, image_shape):
    """(N, H, W, C) images with C in {1, 3} from conv (F, C, HH, WW) or FC (D, M) weights."""
    if W.ndim == 2:
        C, H, Wd = image_shape if image_shape is not None else _infer_image_shape(W.shape[0])
        if C * H * Wd != W.shape[0]:
            raise ValueError(f"image_shape {(C, H, Wd)} has {C * H * Wd} values, but the "
                             f"weights {W.shape} have {W.shape[0]} inputs")
        W = W.T.reshape(W.shape[1], C, H, Wd)        # column m: the template of output m
    elif W.ndim != 4:
        raise ValueError(f"plot_weights expects conv weights (F, C, HH, WW) or FC weights "
                         f"(D, M), got shape {W.shape}")
    F, C, H, Wd = W.shape
    if C not in (1, 3):
        W = W.reshape(F * C, 1, H, Wd)               # one grayscale tile per input channel
    return W.transpose(0, 2, 3, 1)


def plot_weights(W, path=None, image_shape=None, padding=1, title=None):
    """Draw first-layer weights as a grid of images and save it (PNG) when `path` is given.

    W: conv weights (F, C, HH, WW), one tile per filter (RGB when C == 3, gray when C == 1,
    one gray tile per channel otherwise), or FC weights (D, M) with rows in the channel-first
    image order of `get_cifar10_data` / `get_digits_data`, one tile per column;
    `image_shape=(C, H, W)` is inferred for square gray or RGB images. Accepts a Tensor or
    Parameter. Returns the matplotlib Figure.
    """
    W = W if isinstance(W, np.ndarray) else getattr(W, "data", W)
    images = _weights_as_images(np.asarray(W, dtype=np.float64), image_shape)
    grid = visualize_grid(images, ubound=1.0, padding=padding)
    height, width = grid.shape[:2]
    scale = 6.0 / max(height, width)                 # the longer side is 6 inches
    fig = _new_figure(max(width * scale, 2.0), max(height * scale, 2.0) + 0.4)
    ax = fig.add_subplot()
    if grid.shape[2] == 1:
        ax.imshow(grid[:, :, 0], cmap="gray", interpolation="nearest", vmin=0.0, vmax=1.0)
    else:
        ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    n, h, w = images.shape[:3]
    ax.set_title(title if title is not None else f"first-layer weights: {n} tiles of {h}x{w}")
    _save(fig, path)
    return fig
