"""Regenerate autotensor/datasets/digits.npz, the embedded 8x8 handwritten digits.

The data is the UCI "Optical Recognition of Handwritten Digits" test set (E. Alpaydin and
C. Kaynak, 1998; CC BY 4.0): 1,797 images of 8x8 pixels with integer values 0..16, ten classes.
scikit-learn ships a copy as sklearn/datasets/data/digits.csv.gz (one image per row: 64 pixel
values in row-major order, then the label). This script reads that file directly (it does not
call scikit-learn's loader), checks it, and writes

    images  uint8 (1797, 8, 8)   pixel values 0..16, as in the source file
    labels  uint8 (1797,)        digit 0..9

in the source file's order. The scaling, the split and the mean subtraction happen at load time
in `autotensor.data.get_digits_data`, so they can change without touching the data file.

scikit-learn is only needed to run this script, never by autotensor itself:

    .venv/bin/pip install scikit-learn
    .venv/bin/python tools/make_digits_npz.py            # finds sklearn's copy
    .venv/bin/python tools/make_digits_npz.py --csv path/to/digits.csv.gz

The output is byte-for-byte reproducible (fixed zip timestamps), so re-running it on the same
source leaves `git status` clean.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import pathlib
import sys
import zipfile

import numpy as np

OUT = pathlib.Path(__file__).resolve().parents[1] / "autotensor" / "datasets" / "digits.npz"
N_IMAGES = 1797


def find_sklearn_csv() -> pathlib.Path:
    """Path of scikit-learn's bundled digits.csv.gz (without importing sklearn's loaders)."""
    import importlib.util
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        sys.exit("scikit-learn is not installed: `pip install scikit-learn` or pass --csv PATH")
    return pathlib.Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"


def read_csv(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse and check the CSV: returns (images uint8 (N, 8, 8), labels uint8 (N,))."""
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.shape != (N_IMAGES, 65):
        raise ValueError(f"{path}: expected a ({N_IMAGES}, 65) table, got {table.shape}")
    pixels, labels = table[:, :64], table[:, 64]
    if pixels.min() < 0 or pixels.max() > 16:
        raise ValueError(f"{path}: pixel values outside 0..16: {pixels.min()}..{pixels.max()}")
    if set(np.unique(labels)) != set(range(10)):
        raise ValueError(f"{path}: labels are not the digits 0..9: {np.unique(labels)}")
    return pixels.reshape(-1, 8, 8).astype(np.uint8), labels.astype(np.uint8)


def write_npz(path: pathlib.Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an .npz like np.savez_compressed, but with fixed timestamps (reproducible bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=pathlib.Path, help="digits.csv.gz (default: sklearn's)")
    parser.add_argument("--out", type=pathlib.Path, default=OUT)
    args = parser.parse_args(argv)
    src = args.csv or find_sklearn_csv()
    images, labels = read_csv(src)
    write_npz(args.out, {"images": images, "labels": labels})
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    counts = np.bincount(labels, minlength=10).tolist()
    print(f"read {src}\nwrote {args.out} ({args.out.stat().st_size} bytes, sha256 {digest})")
    print(f"{len(labels)} images, per class {counts}")


if __name__ == "__main__":
    main()
