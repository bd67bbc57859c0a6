"""Readers: sample stacks, image folders and WAV files, streamed into spectrum estimates.

Images and audio are scaled to ``[-1, 1]`` like diffusion-model data.  Folders and
``.npy`` stacks are processed a batch at a time into a
:class:`~symspec.spectra.SpectrumAccumulator` (running sums, merged exactly), so a data set
is never in memory as a whole.  Every error is a ``ValueError`` naming the file.
"""

from __future__ import annotations

import math
import os
import struct
import sys
import time
import warnings
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .estimate import SpectrumAccumulator

__all__ = ["IMAGE_SUFFIXES", "MAX_SAMPLE_VALUES", "ImageTooSmallError", "load_array",
           "load_stack", "read_wav", "image_files", "read_image", "cut_image", "stack_spectrum",
           "folder_spectrum"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_CHUNK = 256  # samples per batch when streaming a stack
_GROUP = 1 << 20  # values per update when streaming images (8 MB of float64)
#: Largest sample (values per signal or image) a spectrum is estimated for: 4096 x 4096.
MAX_SAMPLE_VALUES = 1 << 24
#: Errors of reading a damaged ``.npy``/``.npz`` file (numpy and zipfile let these through).
_READ_ERRORS = (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error, struct.error,
                KeyError, UnicodeDecodeError, SyntaxError)


class ImageTooSmallError(ValueError):
    """An image smaller than the ``size x size`` square that crop or patches cut from it.

    Attributes ``name`` (the file), ``shape`` (its height and width), ``size`` and ``mode``
    let a caller (the command line) say which of its own options to change.
    """

    def __init__(self, name: str, shape: tuple[int, int], size: int, mode: str):
        self.name, self.shape, self.size, self.mode = name, shape, size, mode
        h, w = shape
        super().__init__(f"{name}: image is {h}x{w}, smaller than {size}x{size}: mode "
                         f"{mode!r} cuts {size}x{size} squares and never enlarges; use a size "
                         f"of at most {min(h, w)}")


def _available_memory() -> int | None:
    """Bytes of free physical memory, or ``None`` where the system does not say."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _npy_header(f, path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the header of a ``.npy`` stream (the data is not read)."""
    from numpy.lib import format as npf

    try:
        version = npf.read_magic(f)
    except ValueError:
        raise ValueError(f"{path}: not a NumPy .npy file (no .npy header)") from None
    read = npf.read_array_header_1_0 if version == (1, 0) else npf.read_array_header_2_0
    shape, _, dtype = read(f)
    return tuple(shape), dtype


def _check_declared(path, shape, dtype, stored: int, max_values: int | None,
                    what: str) -> None:
    """Refuse, before anything is allocated, an array that is not real, larger than
    ``max_values``, than the bytes ``stored`` in the file, or than the free memory."""
    if dtype.hasobject or dtype.kind not in "biuf":
        raise ValueError(f"{path}: expected real numbers, found dtype {dtype}")
    size = math.prod(shape)
    nbytes = size * dtype.itemsize
    if max_values is not None and size > max_values:
        raise ValueError(f"{path}: {what} has shape {shape} ({size} values), more than the "
                         f"limit of {max_values}")
    if nbytes > stored:
        raise ValueError(f"{path}: truncated: its header declares shape {shape} of {dtype} "
                         f"({nbytes} bytes) but the file holds {stored} bytes of data")
    free = _available_memory()
    if free is not None and nbytes > free:
        raise ValueError(f"{path}: {what} of shape {shape} needs {nbytes / 2**30:.3g} GiB, "
                         f"more than the {free / 2**30:.3g} GiB of free memory")


def load_array(path: str | Path, key: str | None = None, *, mmap: bool = False,
               max_values: int | None = None, what: str = "the array") -> np.ndarray:
    """One real array from a ``.npy`` file, or from a ``.npz`` file (``key``, or its only one).

    The header is read and checked first: the dtype must be real (never pickled objects),
    the declared size must be at most ``max_values``, held by the file, and fit in free
    memory, so a damaged or hostile header cannot allocate anything.  With ``mmap`` a
    ``.npy`` file is memory-mapped, not read.  Every error is a ``ValueError`` naming the
    file.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.npz"); np.savez(path, psd=np.ones(3))
    >>> load_array(path, "psd").tolist()
    [1.0, 1.0, 1.0]
    """
    from numpy.lib import format as npf

    path = Path(path)
    try:
        if path.suffix == ".npz":
            with zipfile.ZipFile(path) as zf:
                names = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
                if key is None and len(names) != 1:
                    raise ValueError(f"{path}: expected a single array, found {names}")
                key = names[0] if key is None else key
                if key not in names:
                    raise ValueError(f"{path}: has no array named {key!r} (it has {names})")
                info = zf.getinfo(key + ".npy")
                with zf.open(info) as f:
                    shape, dtype = _npy_header(f, path)
                    _check_declared(path, shape, dtype, info.file_size - f.tell(), max_values,
                                    what)
                with zf.open(info) as f:
                    return npf.read_array(f, allow_pickle=False)
        with open(path, "rb") as f:
            shape, dtype = _npy_header(f, path)
            _check_declared(path, shape, dtype, os.fstat(f.fileno()).st_size - f.tell(),
                            max_values, what)
        if mmap:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        return np.load(path, allow_pickle=False)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path}: not a valid .npz file (a damaged or truncated zip: "
                         f"{exc})") from None
    except _READ_ERRORS as exc:
        msg = str(exc) if str(exc).startswith(str(path)) else \
            f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})"
        raise ValueError(msg) from None


def load_stack(path: str | Path, *, mmap: bool = False) -> np.ndarray:
    """A stack of samples ``(n, ...)`` from ``.npy``, or ``.npz`` (key ``samples`` or one array).

    With ``mmap`` a ``.npy`` file is memory-mapped, not read (``.npz`` is always read).
    The shape and dtype are checked here; the values when they are used.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.npy"); np.save(path, np.zeros((3, 4)))
    >>> load_stack(path).shape
    (3, 4)
    """
    path = Path(path)
    if path.suffix not in (".npy", ".npz"):
        raise ValueError(f"{path}: expected a .npy or .npz file")
    key = None
    if path.suffix == ".npz":
        try:
            with zipfile.ZipFile(path) as zf:
                keys = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
        except (zipfile.BadZipFile, OSError) as exc:
            raise ValueError(f"{path}: not a valid .npz file (a damaged or truncated zip: "
                             f"{exc})") from None
        if "samples" not in keys and len(keys) != 1:
            raise ValueError(f"{path}: expected an array named 'samples' or a single "
                             f"array, found {keys}")
        key = "samples" if "samples" in keys else keys[0]
    x = load_array(path, key, mmap=mmap, what="the stack")
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{path}: expected real numbers, found dtype {x.dtype}")
    if x.ndim < 2 or len(x) < 2:
        raise ValueError(f"{path}: expected a stack of at least 2 samples (samples first), "
                         f"found shape {x.shape}")
    if math.prod(x.shape[1:]) > MAX_SAMPLE_VALUES:
        raise ValueError(f"{path}: samples of shape {x.shape[1:]} are larger than the limit "
                         f"of {MAX_SAMPLE_VALUES} values each")
    return x


def read_wav(path: str | Path) -> tuple[int, np.ndarray]:
    """``(rate, signal)`` of a WAV file, ``signal`` float64 in [-1, 1], shape (N,) or (N, C).

    Integer PCM is scaled by its full range (8-bit unsigned is centred); float WAV is kept.
    A damaged or truncated file is refused (scipy only warns about some), naming it.
    """
    from scipy.io import wavfile

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", wavfile.WavFileWarning)
            rate, data = wavfile.read(path)
    except (OSError, EOFError, ValueError, struct.error, MemoryError,
            wavfile.WavFileWarning) as exc:
        detail = getattr(exc, "strerror", None) or exc or type(exc).__name__
        raise ValueError(f"{path}: cannot read WAV ({detail})") from None
    if data.dtype == np.uint8:
        x = (data.astype(np.float64) - 128.0) / 128.0
    elif data.dtype.kind == "i":
        x = data.astype(np.float64) / (-float(np.iinfo(data.dtype).min))
    else:
        x = data.astype(np.float64)
    if x.size == 0:
        raise ValueError(f"{path}: the WAV file has no samples")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{path}: the WAV file has NaN or infinite samples")
    return int(rate), x


def image_files(folder: str | Path) -> list[Path]:
    """The PNG and JPEG files of ``folder`` (not recursive), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{folder}: no PNG or JPEG images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def read_image(path: str | Path, *, color: bool = False) -> np.ndarray:
    """An image as float64 in [-1, 1]: grey ``(H, W)`` (Pillow's ``L``) or ``(H, W, 3)`` RGB.

    16-bit grey PNGs are mapped from ``0..65535``; alpha is dropped.
    """
    from PIL import Image

    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode.startswith("I;16"):
                if color:
                    raise ValueError("a 16-bit grey image cannot be read as color")
                return np.asarray(im, dtype=np.float64) / 32767.5 - 1.0
            a = np.asarray(im.convert("RGB" if color else "L"), dtype=np.float64)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{path}: cannot read image ({exc})") from None
    return a / 127.5 - 1.0


def cut_image(img: np.ndarray, size: int | None, mode: str | None, stride: int | None = None,
              name: str = "image") -> np.ndarray:
    """A batch ``(k, size, size[, C])`` from one image: as is, center-cropped, or patches.

    ``mode=None`` keeps the image whole (it must be ``size x size`` if ``size`` is given);
    ``"crop"`` takes the central ``size x size`` square; ``"patches"`` takes every
    ``size x size`` patch starting each ``stride`` pixels (default ``size``: no overlap).

    >>> cut_image(np.zeros((10, 12)), 4, "patches").shape, cut_image(np.zeros((10, 12)), 4,
    ...                                                               "crop").shape
    ((6, 4, 4), (1, 4, 4))
    """
    h, w = img.shape[:2]
    if mode is None:
        if size is not None and (h, w) != (size, size):
            raise ValueError(f"{name}: image is {h}x{w}, not {size}x{size}; use crop or patches")
        return img[None]
    if mode not in ("crop", "patches"):
        raise ValueError(f"mode must be None, 'crop' or 'patches', got {mode!r}")
    if not isinstance(size, int | np.integer) or size < 2:
        raise ValueError(f"size must be an int >= 2 with mode={mode!r}, got {size!r}")
    if h < size or w < size:
        raise ImageTooSmallError(name, (h, w), int(size), mode)
    if mode == "crop":
        top, left = (h - size) // 2, (w - size) // 2
        return img[None, top:top + size, left:left + size]
    stride = size if stride is None else stride
    if not isinstance(stride, int | np.integer) or stride < 1:
        raise ValueError(f"stride must be a positive int, got {stride!r}")
    win = np.lib.stride_tricks.sliding_window_view(img, (size, size), axis=(0, 1))
    win = win[::stride, ::stride]                      # (i, j, [C,] size, size)
    if img.ndim == 3:
        win = np.moveaxis(win, 2, -1)
    return win.reshape(-1, *win.shape[2:])


class _Progress:
    """A one-line progress report on stderr, refreshed at most 5 times a second."""

    def __init__(self, total: int, label: str, enabled: bool):
        self.total, self.label, self.enabled = total, label, enabled
        self.start = self.last = time.perf_counter()

    def __call__(self, done: int) -> None:
        now = time.perf_counter()
        if self.enabled and (now - self.last > 0.2 or done == self.total):
            self.last = now
            rate = done / max(now - self.start, 1e-9)
            end = "\n" if done == self.total else ""
            print(f"\r{self.label}: {done}/{self.total} ({rate:.0f}/s)", end=end,
                  file=sys.stderr, flush=True)


def _accumulate(batches: Iterable[tuple[str, np.ndarray]], acc: SpectrumAccumulator, source,
                progress: _Progress) -> SpectrumAccumulator:
    """Feed ``(name, batch)`` pairs to ``acc``, grouped into updates of ~``_GROUP`` values."""
    group, size = [], 0
    for i, (name, batch) in enumerate(batches, 1):
        group.append((name, batch))
        size += batch.size
        if size >= _GROUP:
            acc.update(np.concatenate([b for _, b in group]), group[0][0])
            group, size = [], 0
        progress(i)
    if group:
        acc.update(np.concatenate([b for _, b in group]), group[0][0])
    if acc.n < 2:
        raise ValueError(f"{source}: at least 2 samples are needed for a spectrum estimate, "
                         f"got {acc.n}")
    return acc


def stack_spectrum(path: str | Path, *, color: bool = False, window: str | None = None,
                   progress: bool = False) -> SpectrumAccumulator:
    """Stream a ``.npy``/``.npz`` stack ``(n, L)``, ``(n, H, W)`` (``color``: ``(n, ..., C)``).

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
    >>> np.save(path, np.random.default_rng(0).standard_normal((600, 8, 8)))
    >>> acc = stack_spectrum(path)
    >>> acc.n, acc.psd().shape
    (600, (8, 8))
    """
    x = load_stack(path, mmap=True)
    ndim = x.ndim - 1 - bool(color)
    if ndim not in (1, 2):
        raise ValueError(f"{path}: expected samples of shape (n, L) or (n, H, W)"
                         f"{' plus a channel axis' if color else ''}, found {x.shape}")
    chunk = max(1, min(_CHUNK, _GROUP * 8 // max(1, math.prod(x.shape[1:]))))
    starts = range(0, len(x), chunk)
    bar = _Progress(len(starts), f"{Path(path).name}: chunks", progress)
    batches = ((f"{path} (samples {i}..{min(i + chunk, len(x)) - 1})", x[i:i + chunk])
               for i in starts)
    return _accumulate(batches, SpectrumAccumulator(ndim, channels=color, window=window), path,
                       bar)


def folder_spectrum(folder: str | Path, size: int | None = None, *, mode: str | None = None,
                    stride: int | None = None, color: bool = False, window: str | None = None,
                    progress: bool = False) -> SpectrumAccumulator:
    """Stream a folder of PNG/JPEG images, one image at a time, into a spectrum estimate.

    Images are decoded one by one and fed to the accumulator in groups of about a million
    values; memory is that group plus the running sums (with ``color``, about 200 bytes per
    frequency bin: crop or cut patches from large photos).

    Parameters
    ----------
    folder : path
    size, mode, stride
        As in :func:`cut_image`: whole images (all of one size), center crops or patches.
    color : bool
        RGB with a per-bin 3 x 3 channel covariance (eigen-spectra, ``(H, W, 3)``); else grey.
    window : str, optional
        As in :func:`symspec.spectra.estimate_psd`.
    progress : bool
        Report progress on stderr.

    Returns
    -------
    SpectrumAccumulator
        ``.psd()`` is the estimate, ``.n`` the number of images or patches.
    """
    files = image_files(folder)

    def batches():
        first = None
        for p in files:
            img = read_image(p, color=color)
            if mode is None and size is None:
                first = first or (img.shape[:2], p.name)
                if img.shape[:2] != first[0]:
                    raise ValueError(f"{p}: image is {img.shape[0]}x{img.shape[1]} but "
                                     f"{first[1]} is {first[0][0]}x{first[0][1]}; give a "
                                     "size to cut crops or patches (mode='crop' or "
                                     "'patches'; symspec psd: --size)")
            yield str(p), cut_image(img, size, mode, stride, str(p))

    bar = _Progress(len(files), f"{Path(folder).name}: images", progress)
    return _accumulate(batches(), SpectrumAccumulator(2, channels=color, window=window),
                       folder, bar)
