"""Image-folder throughput of ``symspec.spectra.readers.folder_spectrum`` (images per second).

Writes a folder of 256 x 256 JPEG and PNG images (natural-photo crops, so the codecs see
realistic content) to a temporary directory and streams it through the spectrum estimator
in several modes.  The baseline, measured in the same run, is decoding alone (Pillow open +
grey conversion + NumPy array), the floor no reader can beat; the ratio shows what the
FFTs and running sums cost on top.

    python bench/readers.py [--images 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_sample_images

from symspec.spectra.readers import folder_spectrum, image_files


def make_folder(folder: Path, count: int, suffix: str) -> None:
    rng = np.random.default_rng(0)
    photos = load_sample_images().images
    for i in range(count):
        img = photos[i % 2]
        top, left = rng.integers(0, img.shape[0] - 256), rng.integers(0, img.shape[1] - 256)
        Image.fromarray(img[top:top + 256, left:left + 256]).save(folder / f"{i:04d}{suffix}")


def decode_only(folder: Path, color: bool) -> None:
    for p in image_files(folder):
        with Image.open(p) as im:
            np.asarray(im.convert("RGB" if color else "L"), dtype=np.float64)


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    modes = {"whole 256x256": dict(), "crop 64": dict(size=64, mode="crop"),
             "patches 32 (64 per image)": dict(size=32, mode="patches")}
    print(f"{args.images} images of 256x256, best of {args.repeat}")
    print(f"{'format':6} {'color':6} {'mode':27} {'images/s':>9} {'decode-only':>12} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in (".jpg", ".png"):
            folder = Path(tmp) / suffix[1:]
            folder.mkdir()
            make_folder(folder, args.images, suffix)
            for color in (False, True):
                base = best_of(args.repeat, lambda f=folder, c=color: decode_only(f, c))
                for label, kw in modes.items():
                    t = best_of(args.repeat, lambda f=folder, c=color, k=kw:
                                folder_spectrum(f, color=c, **k).psd())
                    print(f"{suffix[1:]:6} {str(color):6} {label:27} {args.images / t:9.0f} "
                          f"{args.images / base:12.0f} {base / t:6.2f}")


if __name__ == "__main__":
    main()
