"""Data spectra: model spectra and radial profiles.

Per-mode variances live on the full FFT grid of a signal (1-D) or image (2-D), in the
layout of ``numpy.fft.fftn(x, norm="ortho")``: each bin is one mode, counted once.
"""

from __future__ import annotations

import numpy as np

__all__ = ["frequency_radius", "power_law", "radial_profile"]


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


def radial_profile(values: np.ndarray, bins: int | None = None):
    """Average ``values`` on an FFT grid over rings of equal ``|f|``.

    Returns ``(f, mean)``: ring centres in cycles per sample and the ring averages.
    """
    v = np.asarray(values, dtype=float)
    r = frequency_radius(v.shape).ravel()
    bins = bins or max(v.shape) // 2
    edges = np.linspace(0, r.max() + 1e-12, bins + 1)
    idx = np.clip(np.digitize(r, edges) - 1, 0, bins - 1)
    count = np.bincount(idx, minlength=bins)
    total = np.bincount(idx, weights=v.ravel(), minlength=bins)
    keep = count > 0
    f = 0.5 * (edges[1:] + edges[:-1])
    return f[keep], total[keep] / count[keep]
