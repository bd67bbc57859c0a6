"""Divergences between zero-mean Gaussians with diagonal covariances (data vs model PSD).

Each entry of the PSD arrays is one mode, counted once (on the full FFT grid a real
signal's mirrored bins are separate entries, so nothing is double counted).
"""

from __future__ import annotations

import numpy as np

from .numeric import validate_psd

__all__ = ["divergence", "DIVERGENCES"]

DIVERGENCES = ("w2", "kl", "kl_reverse")


def divergence(psd_data, psd_model, kind: str = "w2", weights=None) -> float:
    """Sum over modes of a divergence between two Gaussian spectra.

    ``"w2"``: squared Wasserstein-2, ``sum (sqrt(lam) - sqrt(P))**2``;
    ``"kl"``: ``KL(data || model) = 1/2 sum (lam/P - 1 - log(lam/P))``;
    ``"kl_reverse"``: ``KL(model || data)``.

    >>> divergence([1.0, 4.0], [1.0, 1.0])
    1.0
    >>> round(divergence([2.0], [1.0], "kl"), 6)
    0.153426
    """
    lam = validate_psd(psd_data, "psd_data")
    P = validate_psd(psd_model, "psd_model")
    if lam.shape != P.shape:
        raise ValueError(f"psd_data and psd_model must have the same shape, got {lam.shape} "
                         f"and {P.shape}")
    w = np.ones_like(lam) if weights is None else np.broadcast_to(
        validate_psd(weights, "weights"), lam.shape)
    if kind == "w2":
        d = (np.sqrt(lam) - np.sqrt(P)) ** 2
    elif kind in ("kl", "kl_reverse"):
        a, b = (lam, P) if kind == "kl" else (P, lam)
        if np.any((b == 0) & (w > 0)) or np.any((a == 0) & (w > 0)):
            raise ValueError(f"{kind} needs positive variances in every weighted mode")
        r = a / b
        d = 0.5 * (r - 1 - np.log(r))
    else:
        raise ValueError(f"kind must be one of {DIVERGENCES}, got {kind!r}")
    return float(np.sum(w * d))
