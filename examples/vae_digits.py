"""A variational autoencoder on the embedded 8x8 digits (pixels in [0, 1]).

    encoder: 64 pixels - linear - relu - (mu, log variance), two linears to the latent space
    sample:  z = mu + exp(logvar / 2) * eps,  eps = at.randn_like(mu)  (reparameterisation)
    decoder: z - linear - relu - linear - sigmoid: 64 pixel probabilities
    loss:    F.binary_cross_entropy(recon, x, reduction="sum") + KL(q(z | x) || N(0, I)),
             divided by the batch size (nats per digit)

`python examples/vae_digits.py [--steps N] [--quick] [--out DIR]` trains it with Adam and writes
vae_digits.png: test digits above their reconstructions, digits decoded from z ~ N(0, I), and
the loss with its two terms.
"""

from __future__ import annotations

import _zoo
import numpy as np

import autotensor as at
from autotensor import nn, optim

SIZES = {"full": {"hidden": 128, "latent": 8, "batch": 64},
         "small": {"hidden": 3, "latent": 2, "batch": 4}}
LEARNS = (100, 1.5)
PIXELS = 64
_DIGITS = {}


def digits(dtype=np.float64):
    """The digits' splits with pixels in [0, 1] (no mean subtracted: BCE targets), cached."""
    from autotensor.data import get_digits_data
    key = np.dtype(dtype).name
    if key not in _DIGITS:
        _DIGITS[key] = get_digits_data(subtract_mean=False, dtype=dtype)
    return _DIGITS[key]


class VAE(nn.Module):
    """forward(x, eps=None) -> (reconstruction probabilities (N, 64), mu, logvar)."""

    def __init__(self, hidden=128, latent=8):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(PIXELS, hidden), nn.ReLU())
        self.fc_mu = nn.Linear(hidden, latent)
        self.fc_logvar = nn.Linear(hidden, latent)
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(),
                                     nn.Linear(hidden, PIXELS), nn.Sigmoid())

    def forward(self, x, eps=None):
        h = self.encoder(x.reshape(x.shape[0], PIXELS))
        mu, logvar = self.fc_mu(h), self.fc_logvar(h)
        # eps given: the tests' noise, drawn once with numpy and fed to both libraries
        eps = at.randn_like(mu) if eps is None else eps
        z = mu + at.exp(0.5 * logvar) * eps
        return self.decoder(z), mu, logvar


def build(size="full", dtype=np.float64):
    s = SIZES[size]
    return VAE(s["hidden"], s["latent"]).astype(dtype)


def torch_build(torch, size="full"):
    s, tnn = SIZES[size], torch.nn

    class TorchVAE(tnn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = tnn.Sequential(tnn.Linear(PIXELS, s["hidden"]), tnn.ReLU())
            self.fc_mu = tnn.Linear(s["hidden"], s["latent"])
            self.fc_logvar = tnn.Linear(s["hidden"], s["latent"])
            self.decoder = tnn.Sequential(tnn.Linear(s["latent"], s["hidden"]), tnn.ReLU(),
                                          tnn.Linear(s["hidden"], PIXELS), tnn.Sigmoid())

        def forward(self, x, eps):
            h = self.encoder(x.reshape(x.shape[0], PIXELS))
            mu, logvar = self.fc_mu(h), self.fc_logvar(h)
            return self.decoder(mu + torch.exp(0.5 * logvar) * eps), mu, logvar

    return TorchVAE().double()


def batch(rng, size="full", dtype=np.float64):
    """A minibatch of training digits (N, 1, 8, 8) and the reparameterisation's noise."""
    s = SIZES[size]
    x = digits(dtype)["X_train"]
    return {"x": x[rng.choice(len(x), s["batch"], replace=False)],
            "eps": rng.standard_normal((s["batch"], s["latent"])).astype(dtype)}


def optimizers(model, optim):
    return [optim.Adam(model.parameters(), lr=2e-3)]


def terms(recon, x, mu, logvar, lib):
    """(reconstruction, KL) per digit; lib is autotensor or torch, whose spellings agree."""
    n = x.shape[0]
    bce = lib.nn.functional.binary_cross_entropy(recon, x.reshape(n, PIXELS), reduction="sum")
    kl = -0.5 * (1 + logvar - mu * mu - lib.exp(logvar)).sum()
    return bce / n, kl / n


def loss(model, batch):
    recon, mu, logvar = model(batch["x"], batch.get("eps"))
    bce, kl = terms(recon, batch["x"], mu, logvar, at)
    return bce + kl


def step(model, opts, batch):
    """The negative ELBO, backward, one Adam step. Without batch["eps"]: at.randn_like noise."""
    [opt] = opts
    opt.zero_grad()
    recon, mu, logvar = model(batch["x"], batch.get("eps"))
    bce, kl = terms(recon, batch["x"], mu, logvar, at)
    total = bce + kl
    total.backward()
    grads = _zoo.grads_of(model.named_parameters())
    opt.step()
    return {"loss": total.item(), "reconstruction": bce.item(), "kl": kl.item()}, grads


def torch_step(torch, model, opts, batch):
    [opt] = opts
    opt.zero_grad()
    x = torch.from_numpy(batch["x"])
    recon, mu, logvar = model(x, torch.from_numpy(batch["eps"]))
    bce, kl = terms(recon, x, mu, logvar, torch)
    total = bce + kl
    total.backward()
    grads = _zoo.grads_of(model.named_parameters())
    opt.step()
    return {"loss": total.item(), "reconstruction": bce.item(), "kl": kl.item()}, grads


def main(argv=None):
    args = _zoo.parse_args(argv, __doc__.splitlines()[0], steps=1500, quick_steps=LEARNS[0])
    at.manual_seed(args.seed)                 # at.randn_like's noise
    np.random.seed(args.seed)                 # nn.Linear draws from numpy's RNG
    model = build()
    rng = np.random.default_rng(args.seed)
    opts = optimizers(model, optim)
    history = {"loss": [], "reconstruction": [], "kl": []}
    bar = _zoo.progress(args.steps, "vae_digits")
    for t in bar:
        minibatch = batch(rng)
        del minibatch["eps"]                  # training draws its noise with at.randn_like
        losses, _ = step(model, opts, minibatch)
        for k in history:
            history[k].append(losses[k])
        if t % 50 == 49:
            bar.set_postfix(loss=f"{losses['loss']:.2f}", kl=f"{losses['kl']:.2f}")
    test = digits()["X_test"]
    with at.no_grad():
        test_loss = loss(model, {"x": test}).item()
    print(f"VAE: test loss {test_loss:.2f} nats per digit after {args.steps} steps")
    plt = _zoo.matplotlib_or_none()
    if plt is not None:
        fig = plot(plt, model, history, test[:16])
        _zoo.save_figure(fig, args, "vae_digits.png", __file__, history)
        plt.close(fig)
    return history


def tile(images, cols):
    """(n, 64) images in [0, 1] as one array of rows of `cols` 8x8 tiles, one pixel apart."""
    rows = -(-len(images) // cols)
    out = np.zeros((rows * 9 - 1, cols * 9 - 1))        # white between tiles (gray_r)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        out[r * 9:r * 9 + 8, c * 9:c * 9 + 8] = im.reshape(8, 8)
    return out


def plot(plt, model, history, originals):
    """Originals over reconstructions (mean of q(z | x)), prior samples, the loss terms."""
    with at.no_grad():
        recon = model.decoder(model.fc_mu(model.encoder(originals.reshape(-1, PIXELS)))).data
        z = np.random.default_rng(1).standard_normal((32, model.fc_mu.out_features))
        samples = model.decoder(z).data
    pairs = [rows for i in range(0, len(recon), 8)
             for rows in (originals.reshape(-1, PIXELS)[i:i + 8], recon[i:i + 8])]
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(11, 3.6))
    a.imshow(tile(np.concatenate(pairs), 8), cmap="gray_r")
    a.set(title="test digits, each row over\nits reconstruction", xticks=[], yticks=[])
    b.imshow(tile(samples, 8), cmap="gray_r")
    b.set(title="decoded from z ~ N(0, I)", xticks=[], yticks=[])
    c.plot(history["loss"], lw=0.5, label="loss (negative ELBO)")
    c.plot(history["reconstruction"], lw=0.5, label="reconstruction (BCE)")
    c.plot(history["kl"], lw=0.5, label="KL")
    c.set(xlabel="step", ylabel="nats per digit", yscale="log")
    c.legend(fontsize=7)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
