"""Data spectra: estimates from samples, model spectra, radial profiles.

Per-mode variances live on the full FFT grid of a signal (1-D) or image (2-D), in the
layout of ``numpy.fft.fftn(x, norm="ortho")``: each bin is one mode, counted once.  For
real data the bins ``k`` and ``-k`` carry conjugate coefficients, so the grid is symmetric,
``psd[k] == psd[-k]``; both bins are kept (the book, chapter "Why spectra": together they are one
complex mode, two real modes), and by Parseval ``psd.sum()`` is the expected energy
``E ||x||^2`` of one sample.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np

__all__ = ["frequency_radius", "power_law", "radial_profile", "estimate_psd",
           "SpectrumAccumulator", "channel_psd", "pca_spectrum", "welch_segments",
           "welch_psd", "model_psd", "SpectrumFit", "fit_psd", "photo_patches", "photo_psd"]


def frequency_radius(shape: tuple[int, ...]) -> np.ndarray:
    """``|f|`` in cycles per sample for every bin of an FFT grid of ``shape``."""
    if not shape or any(not isinstance(n, int | np.integer) or n < 1 for n in shape):
        raise ValueError(f"shape must be a tuple of positive ints, got {shape!r}")
    grids = np.meshgrid(*[np.fft.fftfreq(n) for n in shape], indexing="ij")
    return np.sqrt(sum(g * g for g in grids))


def power_law(shape: tuple[int, ...] | int, alpha: float = 2.0, f0: float | None = None,
              variance: float = 0.25) -> np.ndarray:
    """A power-law spectrum ``A / (|f| + f0)**alpha`` on an FFT grid, natural-image-like.

    ``A`` is set so that the mean per-sample variance (the mean of the PSD over the
    grid, by Parseval) equals ``variance``.  ``f0`` defaults to one frequency bin,
    ``1 / max(shape)``.

    >>> p = power_law((32, 32))
    >>> p.shape, round(float(p.mean()), 12)
    ((32, 32), 0.25)
    """
    shape = (shape,) if isinstance(shape, int | np.integer) else tuple(shape)
    r = frequency_radius(shape)
    if not np.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
    f0 = 1.0 / max(shape) if f0 is None else f0
    if not np.isfinite(f0) or f0 <= 0:
        raise ValueError(f"f0 must be > 0, got {f0!r}")
    if not np.isfinite(variance) or variance <= 0:
        raise ValueError(f"variance must be > 0, got {variance!r}")
    p = (r + f0) ** (-float(alpha))
    return p * (variance / p.mean())


def radial_profile(values: np.ndarray):
    """Average ``values`` on an FFT grid over rings ``round(|f| * n) = k`` (``n = max(shape)``).

    Returns ``(f, mean)``: ring frequencies ``k / n`` in cycles per sample (ring 0 is the DC
    bin alone) and the ring averages.

    >>> f, m = radial_profile(np.ones((8, 8)))
    >>> f[:3].tolist(), m[:3].tolist()
    ([0.0, 0.125, 0.25], [1.0, 1.0, 1.0])
    """
    v = np.asarray(values, dtype=float)
    n = max(v.shape)
    idx = np.rint(frequency_radius(v.shape).ravel() * n).astype(np.int64)
    count = np.bincount(idx)
    total = np.bincount(idx, weights=v.ravel())
    keep = count > 0
    return np.flatnonzero(keep) / n, total[keep] / count[keep]


# -- estimation ------------------------------------------------------------------------
def _window(name, shape: tuple[int, ...]) -> np.ndarray | None:
    """Separable window on ``shape``, scaled so that ``mean(w**2) == 1`` (white PSD kept)."""
    if name is None:
        return None
    from scipy.signal import get_window

    try:
        w = functools.reduce(np.multiply.outer, [get_window(name, n) for n in shape])
    except (ValueError, TypeError) as exc:
        raise ValueError(f"window must be a scipy.signal window name such as 'hann', got "
                         f"{name!r} ({exc})") from None
    return np.asarray(w / np.sqrt(np.mean(w * w)), dtype=np.float64)


class SpectrumAccumulator:
    """Running per-bin mean and (cross-)covariance of ``fftn(x, norm="ortho")``.

    Batches of samples are added with :meth:`update` and merged exactly (the pairwise
    update of Chan, Golub & LeVeque), so a large data set never has to be in memory and the
    result does not depend on how it was split into batches.  Samples are real, so only the
    ``rfftn`` half of the grid is accumulated; results are returned on the full grid.

    Parameters
    ----------
    ndim : int
        Number of spatial axes of one sample (1 for signals, 2 for images).
    channels : bool
        Samples have a trailing channel axis; the cross-channel covariance is kept per bin.
    window : str, optional
        A :func:`scipy.signal.get_window` name (e.g. ``"hann"``) applied along every spatial
        axis before the FFT, scaled to ``mean(w**2) == 1`` so a white spectrum is unchanged.

    Notes
    -----
    Samples are scaled by a power of two (exactly) so their largest magnitude is about 1
    before squaring: ``mean`` and ``m2`` hold the running sums in those units, ``2**exponent``
    times smaller than the data.  So samples near ``1e160`` or ``1e-170`` do not overflow or
    underflow on the way; a spectrum that itself lies outside float64's range (variances
    above ``1e308`` or, for the significant bins, below ``2.2e-308``) is refused with the
    reason rather than returned as ``inf`` or ``0``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((100, 8))
    >>> acc = SpectrumAccumulator(1)
    >>> acc.update(x[:30]); acc.update(x[30:])
    >>> np.allclose(acc.psd(), estimate_psd(x))
    True
    """

    def __init__(self, ndim: int, *, channels: bool = False, window: str | None = None):
        if ndim not in (1, 2):
            raise ValueError(f"ndim must be 1 or 2 spatial axes, got {ndim!r}")
        self.ndim, self.channels, self.window = ndim, bool(channels), window
        self.n = 0
        self.mean: Any = None  # running sums (arrays after the first batch)
        self.m2: Any = None
        self.shape: tuple[int, ...] | None = None
        self._w: np.ndarray | None = None
        self.exponent = 0  # the running sums are in units of 2**exponent (see Notes)

    def update(self, batch, name: str = "samples") -> None:
        """Add a batch of shape ``(n, *spatial)`` (``(n, *spatial, C)`` with channels)."""
        from scipy.fft import rfftn

        x = _as_samples(batch, self.ndim + self.channels, name)
        if self.shape is None:
            self.shape = x.shape[1:]
            self._w = _window(self.window, self.shape[:self.ndim])
        elif x.shape[1:] != self.shape:
            raise ValueError(f"{name} has sample shape {x.shape[1:]}, expected {self.shape} "
                             "like the earlier samples")
        top = float(np.max(np.abs(x)))
        if top > 0:
            e = math.frexp(top)[1]  # top < 2**e: scaled samples are below 1 in magnitude
            if self.n == 0:
                self.exponent = e
            elif e > self.exponent:  # rescale the sums (exactly; tiny ones may flush to 0)
                self.mean = self.mean * math.ldexp(1.0, self.exponent - e)
                self.m2 = self.m2 * math.ldexp(1.0, 2 * (self.exponent - e))
                self.exponent = e
            x = np.ldexp(x, -self.exponent)
        if self.channels:  # FFT channel by channel, contiguous: much faster than strided
            x = np.ascontiguousarray(np.moveaxis(x, -1, 1))
        if self._w is not None:
            x = x * self._w
        # real data: keep the half grid of rfftn, the rest is its mirror (see _full_grid)
        f = rfftn(x, axes=tuple(range(-self.ndim, 0)), norm="ortho")
        if self.channels:
            f = np.moveaxis(f, 1, -1)
        nb, mb = len(f), f.mean(axis=0)
        d = f - mb
        if self.channels:
            dm = np.moveaxis(d, 0, -2)                     # (..., n, C)
            m2b = np.matmul(dm.swapaxes(-1, -2), dm.conj())
        else:
            m2b = np.einsum("n...,n...->...", d.real, d.real) + np.einsum(
                "n...,n...->...", d.imag, d.imag)
        if self.n == 0:
            self.n, self.mean, self.m2 = nb, mb, m2b
            return
        delta, tot = mb - self.mean, self.n + nb
        self.m2 = self.m2 + m2b + _outer(delta, self.channels) * (self.n * nb / tot)
        self.mean = self.mean + delta * (nb / tot)
        self.n = tot

    def _scaled(self, remove_mean: bool) -> np.ndarray:
        """:meth:`covariance` in units of ``2**(2 * exponent)``."""
        if self.n < 2:
            raise ValueError(f"at least 2 samples are needed for a spectrum estimate, got "
                             f"{self.n}")
        if remove_mean:
            half = self.m2 / (self.n - 1)
        else:
            half = (self.m2 + self.n * _outer(self.mean, self.channels)) / self.n
        assert self.shape is not None  # checked above: some samples were added
        return _full_grid(half, self.ndim, self.shape[self.ndim - 1])

    def covariance(self, remove_mean: bool = True) -> np.ndarray:
        """Per-bin ``E|X|^2`` (shape ``spatial``) or ``E[X X^H]`` (``spatial + (C, C)``).

        With ``remove_mean`` the per-bin sample mean is removed and the sum divided by
        ``n - 1`` (unbiased variance); otherwise the raw second moment, divided by ``n``.
        """
        c = self._scaled(remove_mean)
        if np.iscomplexobj(c):
            top = float(np.abs(c).max())
            return _unscale(c.real, 2 * self.exponent, top) + 1j * _unscale(
                c.imag, 2 * self.exponent, top)
        return _unscale(c, 2 * self.exponent)

    def psd(self, remove_mean: bool = True) -> np.ndarray:
        """Per-mode variances on the full grid: per bin, or per bin and eigen-channel."""
        if self.channels:
            return self.modes(remove_mean)[0]
        return np.real(self.covariance(remove_mean))  # real already: the bins' |X|^2

    def modes(self, remove_mean: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues (descending) and eigenvectors of the per-bin channel covariance."""
        if not self.channels:
            raise ValueError("modes() needs an accumulator with channels=True")
        lam, vec = np.linalg.eigh(self._scaled(remove_mean))  # in range: eigh cannot overflow
        return _unscale(np.maximum(lam[..., ::-1], 0.0), 2 * self.exponent), vec[..., ::-1]


def _unscale(values: np.ndarray, exponent: int, top: float | None = None) -> np.ndarray:
    """``values * 2**exponent``, or a ``ValueError`` if that leaves float64's range.

    Bins below the rounding floor of the estimate (``2**-52`` of ``top``, the largest
    magnitude) may flush to zero; a significant bin that would is refused, as is overflow.
    """
    with np.errstate(over="ignore", under="ignore"):
        out = np.ldexp(values, exponent)
    top = float(np.abs(values).max()) if top is None else top
    if not np.all(np.isfinite(out)):
        raise ValueError("the spectrum of these samples is beyond float64's range (variances "
                         f"up to about 1e{_log10(top, exponent):.0f}, the largest float is "
                         "1.8e308); divide the data by a constant first")
    lost = (np.abs(values) > top * 2.0**-52) & (np.abs(out) < np.finfo(np.float64).tiny)
    if np.any(lost):
        low = float(np.abs(values[lost]).min())
        raise ValueError("the spectrum of these samples is below float64's normal range "
                         f"(variances down to about 1e{_log10(low, exponent):.0f}, the smallest "
                         "normal float is 2.2e-308); multiply the data by a constant first")
    return out


def _log10(value: float, exponent: int) -> float:
    """``log10(value * 2**exponent)`` without forming the product."""
    return math.log10(value) + exponent * math.log10(2)


def _full_grid(half: np.ndarray, ndim: int, n_last: int) -> np.ndarray:
    """The full FFT grid from the ``rfftn`` half grid (spatial axes first; the last one has
    ``n_last // 2 + 1`` bins).  For real data the value at ``-k`` is the conjugate of the
    value at ``k`` (for a covariance matrix, elementwise: ``S_{-k} = conj(S_k)``)."""
    tail = half[(slice(None),) * (ndim - 1) + (slice((n_last + 1) // 2 - 1, 0, -1),)]
    for ax in range(ndim - 1):
        tail = np.roll(np.flip(tail, ax), 1, ax)
    return np.concatenate([half, tail.conj()], axis=ndim - 1)


def _outer(v: np.ndarray, channels: bool) -> np.ndarray:
    if channels:
        return v[..., :, None] * v[..., None, :].conj()
    return v.real ** 2 + v.imag ** 2


def _as_samples(samples, ndim: int, name: str) -> np.ndarray:
    """``samples`` as finite float64 of ``1 + ndim`` dimensions, or a ValueError naming it."""
    if np.iscomplexobj(samples):
        raise ValueError(f"{name} must be real numbers, got complex values")
    try:
        x = np.asarray(samples, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array of real numbers, got "
                        f"{type(samples).__name__}") from None
    if x.ndim != ndim + 1:
        raise ValueError(f"{name} must have {ndim + 1} dimensions (samples first), got shape "
                         f"{x.shape}")
    if x.size == 0:
        raise ValueError(f"{name} is empty (shape {x.shape})")
    bad = ~np.isfinite(x)
    if bad.any():
        raise ValueError(f"{name} has {int(bad.sum())} NaN or infinite values (first at index "
                         f"{tuple(int(i) for i in np.argwhere(bad)[0])})")
    return x


def estimate_psd(samples, *, remove_mean: bool = True, window: str | None = None) -> np.ndarray:
    """Per-bin variances ``E|fftn(x, norm="ortho")|^2`` estimated from a stack of samples.

    Parameters
    ----------
    samples : array_like, shape (n, L) or (n, H, W)
        ``n >= 2`` real signals or images, all of one size.
    remove_mean : bool
        Remove the per-bin sample mean and divide by ``n - 1``: the unbiased variance of
        every mode, the DC bin included (its mean is the data mean, a separate quantity for
        a sampler).  ``False`` keeps the mean in: the second moment ``mean |X|^2``, for
        which ``psd.sum()`` is exactly the mean energy ``mean ||x||^2`` (Parseval).
    window : str, optional
        A :func:`scipy.signal.get_window` name (``"hann"``) for non-periodic data, applied
        along each axis and scaled to ``mean(w**2) == 1`` so a white spectrum is unchanged.

    Returns
    -------
    numpy.ndarray, shape (L,) or (H, W)

    Examples
    --------
    >>> x = np.random.default_rng(0).standard_normal((4000, 16)) * 0.5
    >>> p = estimate_psd(x)
    >>> p.shape, bool(np.all(np.abs(p - 0.25) < 5 * 0.25 * np.sqrt(2 / 3999)))
    ((16,), True)
    >>> bool(np.isclose(estimate_psd(x, remove_mean=False).sum(), np.mean(np.sum(x**2, 1))))
    True
    """
    ndim = np.ndim(samples) - 1
    if ndim not in (1, 2):
        raise ValueError(f"samples must have shape (n, L) or (n, H, W), got shape "
                         f"{np.shape(samples)}")
    acc = SpectrumAccumulator(ndim, window=window)
    acc.update(samples)
    return acc.psd(remove_mean)


def channel_psd(samples, *, remove_mean: bool = True, window: str | None = None,
                vectors: bool = False):
    """Per-bin eigen-spectra of multi-channel data: ``C`` independent modes per bin.

    At every bin ``k`` the ``C x C`` cross-channel covariance ``S_k = E[X_k X_k^H]`` of
    the channel FFTs is Hermitian; diagonalising it (:func:`numpy.linalg.eigh`) gives ``C``
    uncorrelated modes ``U_k^H X_k`` with variances the eigenvalues.  Each (bin,
    eigen-channel) pair is one mode of the full grid, counted once; for real data
    ``S_{-k} = conj(S_k)``, so mirrored bins have equal eigenvalues (the book, chapter
    "Why spectra").  The eigenvalues sum to the channel PSDs' sum (Parseval).

    Parameters
    ----------
    samples : array_like, shape (n, L, C) or (n, H, W, C)
        Channels last, ``n >= 2``.
    remove_mean, window
        As in :func:`estimate_psd`.
    vectors : bool
        Also return the eigenvectors: ``vecs[..., :, j]`` is the channel mix of mode ``j``.

    Returns
    -------
    numpy.ndarray, shape (L, C) or (H, W, C)
        Eigenvalues per bin, descending along the last axis (rounding negatives clipped to
        0); with ``vectors``, also the unitary ``(..., C, C)`` eigenvector matrices.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a = rng.standard_normal((2000, 8, 8))
    >>> x = np.stack([a, a, rng.standard_normal((2000, 8, 8))], axis=-1)  # two equal channels
    >>> lam = channel_psd(x)
    >>> lam.shape, bool(np.abs(lam[..., 2]).max() < 1e-12), bool(abs(lam[..., 0].mean() - 2) < 0.1)
    ((8, 8, 3), True, True)
    """
    ndim = np.ndim(samples) - 2
    if ndim not in (1, 2):
        raise ValueError(f"samples must have shape (n, L, C) or (n, H, W, C), got shape "
                         f"{np.shape(samples)}")
    acc = SpectrumAccumulator(ndim, channels=True, window=window)
    acc.update(samples)
    return acc.modes(remove_mean) if vectors else acc.psd(remove_mean)


def pca_spectrum(samples, *, remove_mean: bool = True) -> np.ndarray:
    """Per-mode variances of non-stationary data: the eigenvalues of the sample covariance.

    Samples of any shape ``(n, ...)`` are flattened to ``d`` values each.  The PCA basis
    diagonalises the covariance, so its eigenvalues (descending, length ``d``; zeros beyond
    rank ``n - 1``) are the per-mode variances a sampler sees when the data are not
    stationary, and can be passed to :func:`symspec.spectral_response` as a 1-D PSD.

    >>> x = np.random.default_rng(0).standard_normal((5000, 3)) * [3.0, 1.0, 0.1]
    >>> np.round(pca_spectrum(x))
    array([9., 1., 0.])
    """
    x = np.asarray(samples)
    if x.ndim < 2:
        raise ValueError(f"samples must have at least 2 dimensions (samples first), got shape "
                         f"{x.shape}")
    x = _as_samples(x.reshape(len(x), -1), 1, "samples")
    if len(x) < 2:
        raise ValueError(f"at least 2 samples are needed for a spectrum estimate, got {len(x)}")
    top = float(np.abs(x).max())
    e = math.frexp(top)[1] if top > 0 else 0
    x = np.ldexp(x, -e)  # exactly scaled to below 1: no overflow or underflow when squared
    if remove_mean:
        x = x - x.mean(axis=0)
    s = np.linalg.svd(x, compute_uv=False)
    lam = np.zeros(x.shape[1])
    lam[:len(s)] = s * s / (len(x) - 1 if remove_mean else len(x))
    return _unscale(lam, 2 * e) if lam.any() else lam


def welch_segments(signal, segment: int, overlap: float = 0.5) -> np.ndarray:
    """Segments ``(K, segment)`` (``(K, segment, C)`` for a signal ``(N, C)``) of a signal.

    One segment starts every ``round(segment * (1 - overlap))`` samples (a view, no copy).

    >>> welch_segments(np.arange(10.0), 4).shape
    (4, 4)
    """
    x = np.asarray(signal)
    if x.ndim not in (1, 2):
        raise ValueError(f"signal must have shape (N,) or (N, C), got shape {x.shape}")
    if not isinstance(segment, int | np.integer) or segment < 2:
        raise ValueError(f"segment must be an int >= 2, got {segment!r}")
    if not isinstance(overlap, Real) or not 0 <= overlap < 1:
        raise ValueError(f"overlap must be a number in [0, 1), got {overlap!r}")
    if len(x) < segment:
        raise ValueError(f"signal has {len(x)} samples, fewer than one segment of {segment}")
    step = max(1, round(segment * (1 - overlap)))
    return np.moveaxis(np.lib.stride_tricks.sliding_window_view(x, segment, axis=0)[::step],
                       -1, 1)


def welch_psd(signal, segment: int, overlap: float = 0.5, window: str | None = "hann", *,
              remove_mean: bool = True) -> np.ndarray:
    """Per-bin variance of a long stationary signal on the full grid of length ``segment``.

    Welch's method: the :func:`welch_segments` of the signal are windowed (scaled so a
    white spectrum is unchanged) and their FFT powers averaged by :func:`estimate_psd`
    (per-bin mean removed).  A signal of shape ``(N, C)`` (e.g. stereo audio) gives the
    eigen-spectra of :func:`channel_psd`, shape ``(segment, C)``.

    >>> x = np.random.default_rng(0).standard_normal(200_000)
    >>> p = welch_psd(x, 64)
    >>> p.shape, bool(np.all(np.abs(p - 1) < 0.1))
    ((64,), True)
    """
    segs = welch_segments(signal, segment, overlap)
    if segs.ndim == 2:
        return estimate_psd(segs, remove_mean=remove_mean, window=window)
    return channel_psd(segs, remove_mean=remove_mean, window=window)


# -- parametric models and their fit -----------------------------------------------------
def _powerlaw(f, t):
    a, f0, alpha = np.exp(t[0]), np.exp(t[1]), t[2]
    g = f + f0
    s = a * g ** -alpha
    return s, [s, -alpha * s * f0 / g, -s * np.log(g)]


def _lorentzian(f, t):
    a, fc = np.exp(t[0]), np.exp(t[1])
    u = (f / fc) ** 2
    s = a / (1 + u)
    return s, [s, 2 * s * u / (1 + u)]


def _ar1(f, t):
    v, rho = np.exp(t[0]), np.tanh(t[1])
    c = np.cos(2 * np.pi * f)
    d = 1 - 2 * rho * c + rho * rho
    s = v / d
    return s, [s, -2 * s * (rho - c) / d * (1 - rho * rho)]


# name -> (spectrum and its derivatives in the internal parameters, names, transforms)
_MODELS = {"powerlaw": (_powerlaw, ("A", "f0", "alpha"), ("log", "log", "id")),
           "lorentzian": (_lorentzian, ("A", "fc"), ("log", "log")),
           "ar1": (_ar1, ("sigma2", "rho"), ("log", "tanh"))}
# internal -> natural, natural -> internal, d natural / d internal
_TRANSFORMS = {"log": (np.exp, np.log, np.exp), "id": (float, float, lambda t: 1.0),
               "tanh": (np.tanh, np.arctanh, lambda t: 1 - np.tanh(t) ** 2)}


def _check_model(model: str):
    if model not in _MODELS:
        raise ValueError(f"model must be one of {sorted(_MODELS)}, got {model!r}")
    return _MODELS[model]


def model_psd(model: str, f, **params: float) -> np.ndarray:
    """A parametric spectrum at frequencies ``|f|`` (cycles per sample), plus a white floor.

    Models (``floor`` is an optional additive white level, default 0):

    - ``"powerlaw"``: ``A / (|f| + f0)**alpha`` (natural images);
    - ``"lorentzian"``: ``A / (1 + (|f| / fc)**2)``;
    - ``"ar1"``: ``sigma2 / (1 - 2 rho cos(2 pi |f|) + rho**2)``, the exact per-bin variance
      of a periodic AR(1) process ``x[t] = rho x[t-1] + e[t]``, ``Var e = sigma2``; the
      discrete Lorentzian (for small ``|f|`` and ``rho -> 1``, ``fc = (1 - rho) / (2 pi)``).

    >>> f = np.fft.fftfreq(8)
    >>> bool(np.allclose(model_psd("lorentzian", f, A=2.0, fc=0.125, floor=0.5)[[0, 1]],
    ...                  [2.5, 1.5]))
    True
    """
    fn, names, kinds = _check_model(model)
    extra = set(params) - {*names, "floor"}
    if extra or set(names) - set(params):
        raise ValueError(f"model {model!r} takes parameters {names} (and floor), got "
                         f"{sorted(params)}")
    bounds = {"log": (0.0, np.inf), "id": (-np.inf, np.inf), "tanh": (-1.0, 1.0)}
    for name, kind in zip(names, kinds, strict=True):
        lo, hi = bounds[kind]
        if not isinstance(params[name], Real) or not lo < params[name] < hi:
            raise ValueError(f"{name} must be a number in ({lo}, {hi}), got {params[name]!r}")
    floor = params.get("floor", 0.0)
    if not isinstance(floor, Real) or not 0 <= floor < np.inf:
        raise ValueError(f"floor must be a finite number >= 0, got {floor!r}")
    t = [_TRANSFORMS[k][1](params[n]) for n, k in zip(names, kinds, strict=True)]
    return fn(np.abs(np.asarray(f, dtype=np.float64)), t)[0] + floor


@dataclass(frozen=True)
class SpectrumFit:
    """The result of :func:`fit_psd`.

    Attributes
    ----------
    model : str
    params, stderr : dict
        Estimates and standard errors (inverse Fisher information, delta method), by name.
    covariance : numpy.ndarray
        Covariance of the estimates, in the order of ``params``.
    n : float
        The number of independent samples per bin assumed for the uncertainties.
    """

    model: str
    params: dict
    stderr: dict
    covariance: np.ndarray
    n: float

    def __call__(self, f) -> np.ndarray:
        """The fitted spectrum at frequencies ``|f|`` (cycles per sample)."""
        return model_psd(self.model, f, **self.params)


def _spectrum(model: str, floor: bool, f, t):
    s, jac = _MODELS[model][0](f, t[:len(t) - floor])
    if floor:
        c = np.exp(t[-1])
        s, jac = s + c, [*jac, np.full_like(f, c)]
    return s, np.array(jac)


def _initial(model: str, f, p) -> list[float]:
    """Rough starting values from the two ends of the spectrum and a log-log line."""
    lo, hi = p[f <= f.min() + 1e-9].mean(), p[f >= f.max() - 1e-9].mean()
    if model == "powerlaw":
        f0 = max(f[f > 0].min(), 1e-6) if np.any(f > 0) else 1.0
        slope, icpt = np.polyfit(np.log(f + f0), np.log(np.maximum(p, 1e-300)), 1)
        return [icpt, np.log(f0), -slope]
    if model == "lorentzian":
        half = f[p <= lo / 2]
        return [np.log(lo), np.log(half.min() if half.size else f.max())]
    r = np.sqrt(hi / lo)
    rho = np.clip((1 - r) / (1 + r), -0.95, 0.95)
    return [np.log(lo * (1 - rho) ** 2), np.arctanh(rho)]


def fit_psd(psd, model: str = "powerlaw", *, n: float, floor: bool = False,
            frange: tuple[float, float] = (0.0, np.inf)) -> SpectrumFit:
    """Fit a parametric spectrum (:func:`model_psd`) to a full-grid PSD estimate.

    Method: maximum Whittle likelihood.  For real Gaussian stationary data, a bin estimate
    averaged over ``n`` independent samples is ``S_k`` times a chi-square variable: on the
    full grid every bin, a mirrored complex pair or a real self-conjugate bin alike,
    contributes a Gamma log-likelihood of shape ``n / 2``,
    ``-(n / 2) (log S_k + P_k / S_k)``.  This is the exact likelihood of the estimate for
    periodic data (approximately so otherwise: the DFT nearly diagonalises), so the fit is
    efficient and its standard errors (inverse expected Fisher information
    ``(n / 2) sum_k grad log S_k grad log S_k^T``) are calibrated; least squares on the
    log-spectrum would be biased (``E log P != log E P``) and weight all bins alike.
    The internal parameters are logs (and ``atanh rho``), minimised with BFGS.

    Parameters
    ----------
    psd : array_like
        A 1-D or 2-D full-grid estimate, e.g. from :func:`estimate_psd`.
    model : {"powerlaw", "lorentzian", "ar1"}
    n : float
        Independent samples averaged per bin (``n - 1`` after mean removal).  Only the
        standard errors depend on it.  They assume independent bins, exact without a
        window; a window correlates neighbouring bins and overlapping segments are not
        independent (Welch, Hann, 50% overlap, ``n`` = segments: about 1.6x too small).
    floor : bool
        Add a fitted white floor ``floor`` (a positive constant) to the model.
    frange : (float, float)
        Only bins with ``frange[0] <= |f| <= frange[1]`` are fitted.

    Examples
    --------
    >>> f = frequency_radius((64,))
    >>> p = model_psd("ar1", f, sigma2=1.0, rho=0.8)   # the exact spectrum, no noise
    >>> fit = fit_psd(p, "ar1", n=1000)
    >>> round(fit.params["rho"], 6), round(fit.params["sigma2"], 6), fit.stderr["rho"] < 0.01
    (0.8, 1.0, True)
    """
    from scipy.optimize import minimize

    from .._checks import validate_psd

    p = validate_psd(psd, "psd")
    _, names, kinds = _check_model(model)
    if p.ndim > 2:
        raise ValueError(f"psd must be a 1-D or 2-D grid, got shape {p.shape}; fit one "
                         "channel at a time")
    if not isinstance(n, Real) or not 0 < n < np.inf:
        raise ValueError(f"n must be a positive number of samples, got {n!r}")
    f = frequency_radius(p.shape)
    keep = (f >= frange[0]) & (f <= frange[1])
    kinds = (*kinds, "log") if floor else kinds
    names = (*names, "floor") if floor else names
    if keep.sum() <= len(kinds):
        raise ValueError(f"frange {frange!r} keeps {int(keep.sum())} bins, too few to fit "
                         f"{len(kinds)} parameters")
    f, p = f[keep], p[keep]
    if np.all(p == 0):
        raise ValueError("psd is zero on every fitted bin")
    t0 = _initial(model, f, p)
    if floor:
        t0.append(np.log(max(0.1 * np.median(p), 1e-12 * p.max())))

    def objective(t):
        with np.errstate(all="ignore"):
            s, jac = _spectrum(model, floor, f, t)
            r = p / s
            val = np.mean(np.log(s) + r)
            if not np.isfinite(val) or np.any(s <= 0):
                return np.inf, np.zeros_like(t)
            return val, np.mean((1 - r) * jac / s, axis=1)

    res = minimize(objective, np.array(t0, dtype=float), jac=True, method="BFGS",
                   options={"gtol": 1e-10, "maxiter": 2000})
    with np.errstate(all="ignore"):  # a degenerate optimum (S = 0 somewhere) is refused below
        s, jac = _spectrum(model, floor, f, res.x)
        g = jac / s
        fisher = (n / 2) * (g @ g.T)
        grad = (n / 2) * ((1 - p / s) * g).sum(axis=1)
    finite = bool(np.all(np.isfinite(fisher)) and np.all(np.isfinite(grad)))
    cov_t = np.linalg.pinv(fisher) if finite else None
    if not finite or grad @ cov_t @ grad > 1e-6 or np.linalg.cond(fisher) > 1e12:
        g = np.nan_to_num(g, nan=np.inf)
        name = names[int(np.argmin(np.abs(g).sum(axis=1)))]  # the one S stops depending on
        raise ValueError(f"the {model!r} fit has no finite optimum: {name} runs to the edge of "
                         "its range; change frange, floor or the model")
    d = np.array([_TRANSFORMS[k][2](t) for k, t in zip(kinds, res.x, strict=True)])
    cov = cov_t * np.outer(d, d)
    values = [float(_TRANSFORMS[k][0](t)) for k, t in zip(kinds, res.x, strict=True)]
    return SpectrumFit(model, dict(zip(names, values, strict=True)),
                       dict(zip(names, np.sqrt(np.diag(cov)).tolist(), strict=True)), cov,
                       float(n))


# -- natural photos ----------------------------------------------------------------------
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, as Pillow's "L" mode


def photo_patches(size: int = 32, stride: int | None = None) -> np.ndarray:
    """Grey patches of the two photos bundled with scikit-learn, scaled to [-1, 1].

    ``china.jpg`` and ``flower.jpg`` (427 x 640, installed with scikit-learn, no download)
    are converted to grey with the BT.601 luma weights, mapped from ``0..255`` to
    ``[-1, 1]`` like diffusion-model training data, and cut into ``size x size`` patches
    every ``stride`` pixels (default ``size // 2``: half-overlapping) in both directions.

    >>> photo_patches(32).shape
    (1950, 32, 32)
    """
    from sklearn.datasets import load_sample_images

    if not isinstance(size, int | np.integer) or not 2 <= size <= 427:
        raise ValueError(f"size must be an int in [2, 427], got {size!r}")
    stride = max(size // 2, 1) if stride is None else stride
    if not isinstance(stride, int | np.integer) or stride < 1:
        raise ValueError(f"stride must be a positive int, got {stride!r}")
    out = []
    for img in load_sample_images().images:
        grey = img @ _LUMA / 127.5 - 1.0
        win = np.lib.stride_tricks.sliding_window_view(grey, (size, size))
        out.append(win[::stride, ::stride].reshape(-1, size, size))
    return np.concatenate(out)


@functools.lru_cache(maxsize=8)
def photo_psd(size: int = 32) -> np.ndarray:
    """Per-mode PSD (``size x size``, full grid) of natural-photo patches; cached, read-only.

    The estimate of :func:`estimate_psd` (per-bin mean removed, ``n - 1``, no window: the
    variances of the plain DFT modes a sampler sees) over :func:`photo_patches`,
    half-overlapping ``size x size`` grey patches of the two scikit-learn sample photos in
    ``[-1, 1]``.  The DC bin is a mode like the others: the variance across patches of
    ``size`` times the patch mean; the data mean itself is removed, not each patch's.

    >>> p = photo_psd(16)
    >>> p.shape, bool(p[0, 0] > p[0, 1] > p[0, 8] > 0), p.flags.writeable
    ((16, 16), True, False)
    """
    p = estimate_psd(photo_patches(size))
    p.flags.writeable = False
    return p
