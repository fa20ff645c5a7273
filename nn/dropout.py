"""`Dropout`: inverted dropout while training, the identity in eval mode."""

from __future__ import annotations

from autotensor import validate

from . import functional as F
from .module import Module


class Dropout(Module):
    """Zero each element with probability `p` (the DROP probability, as in PyTorch) in training.

    Survivors are scaled by 1 / (1 - p) so eval mode needs no rescaling. Masks come from
    numpy's global RNG; pass `seed` to draw the same mask on every call (for gradient checks).
    """

    def __init__(self, p=0.5, seed=None):
        super().__init__()
        self.p = float(validate.probability("Dropout", "p", p,
                                            "the probability of zeroing an element"))
        self.seed = validate.seed("Dropout", "seed", seed)

    def forward(self, x):
        return F.dropout(x, self.p, self.training, self.seed)

    def extra_repr(self):
        return f"p={self.p}"
