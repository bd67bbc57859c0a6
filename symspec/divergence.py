"""Divergences between zero-mean Gaussians with diagonal covariances (data vs model PSD).

Each entry of the PSD arrays is one mode, counted once (on the full FFT grid a real
signal's mirrored bins are separate entries, so nothing is double counted).
"""

from __future__ import annotations

import numpy as np

from .numeric import validate_psd

__all__ = ["divergence", "divergence_grad", "DIVERGENCES"]

DIVERGENCES = ("w2", "kl", "kl_reverse")


def _inputs(psd_data, psd_model, kind, weights):
    lam = validate_psd(psd_data, "psd_data")
    P = validate_psd(psd_model, "psd_model")
    if lam.shape != P.shape:
        raise ValueError(f"psd_data and psd_model must have the same shape, got {lam.shape} "
                         f"and {P.shape}")
    w = np.ones_like(lam) if weights is None else validate_psd(weights, "weights")
    try:
        w = np.broadcast_to(w, lam.shape)
    except ValueError:
        raise ValueError(f"weights must broadcast to the psd shape {lam.shape}, got shape "
                         f"{w.shape}") from None
    if kind not in DIVERGENCES:
        raise ValueError(f"kind must be one of {DIVERGENCES}, got {kind!r}")
    if kind != "w2" and np.any(((lam == 0) | (P == 0)) & (w > 0)):
        raise ValueError(f"{kind} needs positive variances in every weighted mode")
    return lam, P, w


def divergence(psd_data, psd_model, kind: str = "w2", weights=None) -> float:
    """Sum over modes of a divergence between two Gaussian spectra.

    ``"w2"``: squared Wasserstein-2, ``sum (sqrt(lam) - sqrt(P))**2``;
    ``"kl"``: ``KL(data || model) = 1/2 sum (lam/P - 1 - log(lam/P))``;
    ``"kl_reverse"``: ``KL(model || data)``.  ``weights`` (broadcast to the PSD shape,
    ``>= 0``) multiply the per-mode terms.

    >>> divergence([1.0, 4.0], [1.0, 1.0])
    1.0
    >>> round(divergence([2.0], [1.0], "kl"), 6)
    0.153426
    """
    lam, P, w = _inputs(psd_data, psd_model, kind, weights)
    if kind == "w2":
        d = (np.sqrt(lam) - np.sqrt(P)) ** 2
    else:
        a, b = (lam, P) if kind == "kl" else (P, lam)
        r = np.divide(a, b, out=np.ones_like(a), where=w > 0)  # modes of weight 0 add 0
        d = 0.5 * (r - 1 - np.log(r))
    return float(np.sum(w * d))


def divergence_grad(psd_data, psd_model, kind: str = "w2", weights=None) -> np.ndarray:
    """Derivative of :func:`divergence` with respect to each entry of ``psd_model``.

    ``"w2"``: ``1 - sqrt(lam / P)``; ``"kl"``: ``(P - lam) / (2 P**2)``;
    ``"kl_reverse"``: ``(P - lam) / (2 lam P)``; each times its weight.  W2 has no
    derivative at ``P = 0`` where ``lam > 0`` (a ``ValueError``).

    >>> divergence_grad([1.0, 4.0], [1.0, 1.0]).tolist()
    [0.0, -1.0]
    >>> divergence_grad([2.0], [1.0], "kl").tolist()
    [-0.5]
    """
    lam, P, w = _inputs(psd_data, psd_model, kind, weights)
    live = w > 0
    if kind == "w2":
        if np.any((P == 0) & (lam > 0) & live):
            raise ValueError("w2 is not differentiable where psd_model = 0 < psd_data")
        g = 1 - np.sqrt(np.divide(lam, P, out=np.zeros_like(lam), where=P > 0))
    else:
        den = P * P if kind == "kl" else lam * P
        g = 0.5 * np.divide(P - lam, den, out=np.zeros_like(lam), where=live)
    return w * g
