"""A DCGAN-style generator and discriminator on the embedded 8x8 digits (pixels in [-1, 1]).

    generator:     z (NZ, 1, 1) - convT 2x2 - BN - relu - convT 4x4/2 - BN - relu
                   - convT 4x4/2 - tanh: (1, 8, 8)
    discriminator: image - conv 4x4/2 - leaky relu - conv 4x4/2 - BN - leaky relu - conv 2x2:
                   one score (a logit)

Each step updates the discriminator once on BCE-with-logits (real -> 1, generated -> 0), then
the generator once on the non-saturating loss (its samples -> 1), Adam(5e-4, betas (0.5,
0.999)). A GAN's losses do not fall as it learns; the learning test reads "loss": the squared
distance between the pixel statistics (per-pixel mean and standard deviation) of 128
generated digits (fixed noise) and those of the training digits.
`python examples/dcgan_digits.py [--steps N] [--quick] [--out DIR]` writes dcgan_digits.png:
generated digits, real ones, the losses, the discriminator's accuracy and that distance.
"""

from __future__ import annotations

import _zoo
import numpy as np

import autotensor as at
from autotensor import nn, optim

SIZES = {"full": {"nz": 16, "width": 16, "batch": 64},
         "small": {"nz": 2, "width": 1, "batch": 4}}
LEARNS = (100, 2.0)            # on the pixel-statistics distance (main's "loss" history)
LR = 5e-4                      # the DCGAN paper's 2e-4 needs three times the steps here
_DIGITS = {}


def digits(dtype=np.float64):
    """The training digits scaled to [-1, 1] (the generator's tanh range), cached."""
    from autotensor.data import get_digits_data
    key = np.dtype(dtype).name
    if key not in _DIGITS:
        x = get_digits_data(subtract_mean=False, dtype=dtype)["X_train"]
        _DIGITS[key] = (2 * x - 1).astype(dtype)
    return _DIGITS[key]


def generator(nz, w, lib):
    """The generator in lib (autotensor.nn or torch.nn), whose layer names agree."""
    return lib.Sequential(
        lib.ConvTranspose2d(nz, 4 * w, 2, 1, 0, bias=False), lib.BatchNorm2d(4 * w), lib.ReLU(),
        lib.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1, bias=False), lib.BatchNorm2d(2 * w),
        lib.ReLU(),
        lib.ConvTranspose2d(2 * w, 1, 4, 2, 1, bias=False), lib.Tanh())


def discriminator(w, lib):
    return lib.Sequential(
        lib.Conv2d(1, w, 4, 2, 1, bias=False), lib.LeakyReLU(0.2),
        lib.Conv2d(w, 2 * w, 4, 2, 1, bias=False), lib.BatchNorm2d(2 * w), lib.LeakyReLU(0.2),
        lib.Conv2d(2 * w, 1, 2, 1, 0, bias=False))        # (N, 1, 1, 1) logits


class DCGAN(nn.Module):
    """The generator and the discriminator, saved and loaded together."""

    def __init__(self, nz=16, width=16):
        super().__init__()
        self.generator = generator(nz, width, nn)
        self.discriminator = discriminator(width, nn)


def build(size="full", dtype=np.float64):
    s = SIZES[size]
    return DCGAN(s["nz"], s["width"]).astype(dtype)


def torch_build(torch, size="full"):
    s = SIZES[size]

    class TorchDCGAN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.generator = generator(s["nz"], s["width"], torch.nn)
            self.discriminator = discriminator(s["width"], torch.nn)

    return TorchDCGAN().double()


def batch(rng, size="full", dtype=np.float64):
    """Real digits (N, 1, 8, 8) and the generator's noise (N, NZ, 1, 1)."""
    s = SIZES[size]
    real = digits(dtype)
    return {"real": real[rng.choice(len(real), s["batch"], replace=False)],
            "z": rng.standard_normal((s["batch"], s["nz"], 1, 1)).astype(dtype)}


def optimizers(model, optim):
    """Discriminator's Adam, generator's Adam."""
    return [optim.Adam(model.discriminator.parameters(), lr=LR, betas=(0.5, 0.999)),
            optim.Adam(model.generator.parameters(), lr=LR, betas=(0.5, 0.999))]


def d_loss(D, real, fake, lib):
    """BCE-with-logits: real digits labelled 1, generated ones 0 (lib: autotensor or torch)."""
    bce = lib.nn.functional.binary_cross_entropy_with_logits
    real_scores, fake_scores = D(real), D(fake)
    return (bce(real_scores, lib.ones_like(real_scores))
            + bce(fake_scores, lib.zeros_like(fake_scores))), real_scores, fake_scores


def g_loss(D, fake, lib):
    """The non-saturating generator loss: its samples labelled 1."""
    scores = D(fake)
    return lib.nn.functional.binary_cross_entropy_with_logits(scores, lib.ones_like(scores))


def loss(model, batch):
    """Discriminator plus generator loss, nothing detached (what gradcheck checks)."""
    G, D = model.generator, model.discriminator
    fake = G(batch["z"])
    return d_loss(D, batch["real"], fake, at)[0] + g_loss(D, fake, at)


def _step(lib, model, opts, real, z):
    """One discriminator update, then one generator update, written once for both libraries."""
    d_opt, g_opt = opts
    G, D = model.generator, model.discriminator
    d_opt.zero_grad()
    fake = G(z)
    ld, real_scores, fake_scores = d_loss(D, real, fake.detach(), lib)
    ld.backward()
    d_opt.step()
    grads = _zoo.grads_of(D.named_parameters(prefix="discriminator"))
    g_opt.zero_grad()
    lg = g_loss(D, fake, lib)
    lg.backward()
    g_opt.step()
    grads.update(_zoo.grads_of(G.named_parameters(prefix="generator")))
    accuracy = ((real_scores.detach() > 0).sum() + (fake_scores.detach() <= 0).sum()).item()
    return {"discriminator": ld.item(), "generator": lg.item(),
            "d_accuracy": accuracy / (2 * len(real))}, grads


def step(model, opts, batch):
    return _step(at, model, opts, batch["real"], batch["z"])


def torch_step(torch, model, opts, batch):
    return _step(torch, model, opts, torch.from_numpy(batch["real"]),
                 torch.from_numpy(batch["z"]))


def pixel_distance(model, z, stats):
    """Squared distance between generated and real per-pixel (mean, std), summed over pixels.
    NOTE: the generator samples in training mode (batch statistics, as DCGAN trains); its
    buffers (batch norm's running statistics and count) are restored: measuring changes
    nothing."""
    buffers = [b for b in model.generator.buffers() if b is not None]
    saved = [b.copy() for b in buffers]
    with at.no_grad():
        fake = model.generator(z).data
    for b, value in zip(buffers, saved):
        b[...] = value
    return float(((fake.mean(0) - stats[0]) ** 2).sum() + ((fake.std(0) - stats[1]) ** 2).sum())


def main(argv=None):
    args = _zoo.parse_args(argv, __doc__.splitlines()[0], steps=800, quick_steps=LEARNS[0])
    at.manual_seed(args.seed)
    np.random.seed(args.seed)                 # nn.Conv2d / ConvTranspose2d draw from numpy's RNG
    model = build()
    rng = np.random.default_rng(args.seed)
    opts = optimizers(model, optim)
    real = digits()
    stats = (real.mean(0), real.std(0))
    z = np.random.default_rng(1).standard_normal((128, SIZES["full"]["nz"], 1, 1))
    history = {"loss": [], "discriminator": [], "generator": [], "d_accuracy": []}
    bar = _zoo.progress(args.steps, "dcgan_digits")
    for t in bar:
        losses, _ = step(model, opts, batch(rng))
        for k in ("discriminator", "generator", "d_accuracy"):
            history[k].append(losses[k])
        history["loss"].append(pixel_distance(model, z, stats))
        if t % 50 == 49:
            bar.set_postfix(d=f"{losses['discriminator']:.3f}", g=f"{losses['generator']:.3f}",
                            d_acc=f"{np.mean(history['d_accuracy'][-50:]):.2f}",
                            pixels=f"{history['loss'][-1]:.3f}")
    print(f"DCGAN: pixel-statistics distance {history['loss'][0]:.3f} -> "
          f"{history['loss'][-1]:.3f}, discriminator accuracy (last 100 steps) "
          f"{np.mean(history['d_accuracy'][-100:]):.2f}")
    plt = _zoo.matplotlib_or_none()
    if plt is not None:
        fig = plot(plt, model, history, z[:40], real[:40])
        _zoo.save_figure(fig, args, "dcgan_digits.png", __file__, history)
        plt.close(fig)
    return history


def tile(images, cols):
    """(n, 1, 8, 8) images in [-1, 1] as rows of `cols` tiles, one pixel apart."""
    rows = -(-len(images) // cols)
    out = np.full((rows * 9 - 1, cols * 9 - 1), -1.0)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        out[r * 9:r * 9 + 8, c * 9:c * 9 + 8] = im[0]
    return out


def plot(plt, model, history, z, real):
    """Generated digits, real digits, the losses with the discriminator's accuracy."""
    with at.no_grad():
        fake = model.generator(z).data
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(12, 3.4))
    a.imshow(tile(fake, 8), cmap="gray", vmin=-1, vmax=1)
    a.set(title="generated", xticks=[], yticks=[])
    b.imshow(tile(real, 8), cmap="gray", vmin=-1, vmax=1)
    b.set(title="real", xticks=[], yticks=[])
    smooth = np.ones(25) / 25
    for k in ("discriminator", "generator", "d_accuracy", "loss"):
        label = {"loss": "pixel-statistics distance", "d_accuracy": "D accuracy"}.get(k, k)
        c.plot(np.convolve(history[k], smooth, mode="valid"), lw=0.8, label=label)
    c.set(xlabel="step (25-step mean)", yscale="log")
    c.legend(fontsize=7)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
