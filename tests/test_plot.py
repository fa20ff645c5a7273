"""autotensor.plot: training curves and weight grids as PNG files; visualize_grid's layout."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

from autotensor.plot import plot_history, plot_weights, visualize_grid

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def fake_solver(iterations=300, epochs=5):
    rng = np.random.default_rng(0)
    loss = 2.3 * np.exp(-np.arange(iterations) / 100) + 0.1 * rng.random(iterations)
    return types.SimpleNamespace(loss_history=list(loss),
                                 train_acc_history=list(np.linspace(0.1, 0.95, epochs + 1)),
                                 val_acc_history=list(np.linspace(0.1, 0.9, epochs + 1)))


def read_png(path):
    import matplotlib.image
    raw = path.read_bytes()
    assert raw[:8] == PNG_SIGNATURE and len(raw) > 5000
    return matplotlib.image.imread(path)


# ---------------------------------------------------------------- plot_history

def test_plot_history_writes_a_png_of_the_histories(tmp_path):
    pytest.importorskip("matplotlib")
    run = fake_solver()
    fig = plot_history(run, tmp_path / "history.png")
    pixels = read_png(tmp_path / "history.png")
    assert pixels.shape[:2] == (700, 700)                         # 7x7 inches at 100 dpi
    assert pixels[..., :3].std() > 0.05                           # not a blank canvas
    ax_loss, ax_acc = fig.axes
    np.testing.assert_array_equal(ax_loss.lines[0].get_ydata(), run.loss_history)
    assert ax_loss.get_xlabel() == "Iteration" and ax_acc.get_xlabel() == "Epoch"
    lines = {line.get_label(): line.get_ydata() for line in ax_acc.lines}
    np.testing.assert_array_equal(lines["train"], run.train_acc_history)
    np.testing.assert_array_equal(lines["val"], run.val_acc_history)


def test_plot_history_accepts_a_dict_and_returns_an_unsaved_figure():
    pytest.importorskip("matplotlib")
    run = vars(fake_solver(iterations=10, epochs=1))
    fig = plot_history(run)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 1    # too short for a running mean


def test_plot_history_names_what_is_missing():
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match="needs `val_acc_history` on SimpleNamespace"):
        plot_history(types.SimpleNamespace(loss_history=[1.0], train_acc_history=[0.5]))


def run_python(code):
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_plotting_leaves_pyplot_and_the_backend_alone(tmp_path):
    pytest.importorskip("matplotlib")
    out = run_python(f"""
        import matplotlib, sys
        matplotlib.use("svg")                       # the user's choice, kept
        from autotensor.plot import plot_history, plot_weights
        import numpy as np
        plot_history({{"loss_history": [2.0, 1.0], "train_acc_history": [0.5],
                       "val_acc_history": [0.4]}}, {str(tmp_path / 'h.png')!r})
        plot_weights(np.ones((4, 1, 3, 3)), {str(tmp_path / 'w.png')!r})
        print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
    """)
    assert out.split() == ["svg", "False"]
    assert (tmp_path / "h.png").read_bytes()[:8] == PNG_SIGNATURE


def test_without_matplotlib_the_error_says_how_to_install_it():
    out = run_python("""
        import sys
        sys.modules["matplotlib"] = None           # as if it were not installed
        import numpy as np
        from autotensor import plot                # importing needs no matplotlib
        print(plot.visualize_grid(np.ones((2, 3, 3, 1))).shape)   # nor does the numpy part
        try:
            plot.plot_history({"loss_history": [], "train_acc_history": [],
                               "val_acc_history": []})
        except ImportError as err:
            print(err)
    """)
    assert "(7, 7, 1)" in out and "pip install 'autotensor[plot]'" in out


# ---------------------------------------------------------------- visualize_grid

def test_visualize_grid_shape_and_placement():
    rng = np.random.default_rng(0)
    Xs = rng.standard_normal((5, 4, 3, 2))
    grid = visualize_grid(Xs, ubound=10.0, padding=1)
    assert grid.shape == (3 * 4 + 2, 3 * 3 + 2, 2)               # a 3x3 grid of 4x3 images
    for i in range(5):
        r, c = divmod(i, 3)
        tile = grid[r * 5:r * 5 + 4, c * 4:c * 4 + 3]
        expected = 10.0 * (Xs[i] - Xs[i].min()) / (Xs[i].max() - Xs[i].min())
        np.testing.assert_allclose(tile, expected, atol=1e-12)
    assert not grid[4].any() and not grid[:, 3].any()             # padding rows/columns
    assert not grid[5:9, 8:11].any() and not grid[10:, 4:].any()  # the 4 unused cells


@pytest.mark.parametrize("n, h, w, padding, shape", [
    (1, 5, 5, 1, (5, 5)), (4, 2, 3, 0, (4, 6)), (10, 3, 3, 2, (3 * 4 + 2 * 3, 3 * 4 + 2 * 3)),
    (16, 8, 8, 1, (35, 35)), (17, 8, 8, 1, (44, 44)),
])
def test_visualize_grid_size(n, h, w, padding, shape):
    grid = visualize_grid(np.arange(n * h * w * 3.0).reshape(n, h, w, 3), padding=padding)
    assert grid.shape == (*shape, 3) and grid.max() == 255.0


def test_visualize_grid_constant_image_is_zero_not_nan():
    grid = visualize_grid(np.full((2, 2, 2, 1), 7.0))
    assert np.all(grid == 0.0)


@pytest.mark.parametrize("Xs, padding, match", [
    (np.zeros((3, 4, 4)), 1, "expects images of shape \\(N, H, W, C\\).*\\(3, 4, 4\\)"),
    (np.zeros((0, 4, 4, 1)), 1, "N >= 1"),
    (np.zeros((2, 4, 4, 1)), -1, "padding must be an integer >= 0"),
])
def test_visualize_grid_bad_input(Xs, padding, match):
    with pytest.raises(ValueError, match=match):
        visualize_grid(Xs, padding=padding)


# ---------------------------------------------------------------- plot_weights

def shown(fig):
    return np.asarray(fig.axes[0].images[0].get_array())


@pytest.mark.parametrize("shape, image_shape, tiles, tile_hw, channels", [
    ((16, 3, 5, 5), None, 16, (5, 5), 3),            # RGB conv filters
    ((8, 1, 3, 3), None, 8, (3, 3), 1),              # gray conv filters (digits)
    ((6, 4, 3, 3), None, 24, (3, 3), 1),             # 4 input channels: one tile each
    ((64, 10), None, 10, (8, 8), 1),                 # FC on digits: inferred (1, 8, 8)
    ((3072, 4), None, 4, (32, 32), 3),               # FC on CIFAR-10: inferred (3, 32, 32)
    ((48, 5), (3, 4, 4), 5, (4, 4), 3),              # FC with an explicit image shape
])
def test_plot_weights_tiles(tmp_path, shape, image_shape, tiles, tile_hw, channels):
    pytest.importorskip("matplotlib")
    W = np.random.default_rng(0).standard_normal(shape)
    fig = plot_weights(W, tmp_path / "w.png", image_shape=image_shape)
    read_png(tmp_path / "w.png")
    side = int(np.ceil(np.sqrt(tiles)))
    h, w = tile_hw
    expected = (side * h + side - 1, side * w + side - 1)
    assert shown(fig).shape == (expected if channels == 1 else (*expected, 3))
    assert f"{tiles} tiles of {h}x{w}" in fig.axes[0].get_title()


def test_plot_weights_puts_each_fc_column_in_channel_first_order():
    pytest.importorskip("matplotlib")
    W = np.zeros((3 * 4 * 4, 2))
    W[1 * 16 + 2 * 4 + 3, 1] = 1.0               # output 1: channel G, row 2, column 3
    W[0, 1] = -1.0                               # and a dark channel-R corner
    grid = shown(plot_weights(W, image_shape=(3, 4, 4), padding=0))
    tile = grid[:4, 4:8]                         # second tile of a 2x2 grid
    assert tile[2, 3, 1] == 1.0 and tile[0, 0, 0] == 0.0
    assert np.isclose(tile[1, 1], 0.5).all()     # everything else at the middle level


def test_plot_weights_accepts_a_tensor():
    pytest.importorskip("matplotlib")
    import autotensor as at
    W = np.random.default_rng(1).standard_normal((4, 1, 3, 3))
    np.testing.assert_array_equal(shown(plot_weights(at.tensor(W))), shown(plot_weights(W)))


@pytest.mark.parametrize("shape, image_shape, match", [
    ((50, 3), None, "cannot tell the image shape of FC weights with 50 inputs"),
    ((48, 3), (3, 4, 5), "image_shape \\(3, 4, 5\\) has 60 values.*48 inputs"),
    ((2, 3, 4), None, "expects conv weights \\(F, C, HH, WW\\) or FC weights"),
])
def test_plot_weights_bad_shapes(shape, image_shape, match):
    with pytest.raises(ValueError, match=match):
        plot_weights(np.zeros(shape), image_shape=image_shape)

