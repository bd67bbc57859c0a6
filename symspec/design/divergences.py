"""Divergences between zero-mean Gaussians with diagonal covariances (data vs model PSD).

Each entry of the PSD arrays is one mode, counted once (on the full FFT grid a real
signal's mirrored bins are separate entries, so nothing is double counted).  A divergence
is one entry of :data:`DIVERGENCES`: its per-mode value, its derivative in the model
variance, and whether it needs positive variances.  Adding one is adding an entry.

All three are computed in ratios, so that variances anywhere in the float64 range
(``1e-300`` against ``1e300``) give finite results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
from numpy.typing import ArrayLike

from .._checks import validate_psd

__all__ = ["divergence", "divergence_grad", "DIVERGENCES", "Divergence", "DivergenceName"]

DivergenceName: TypeAlias = Literal["w2", "kl", "kl_reverse"]


@dataclass(frozen=True)
class Divergence:
    """A per-mode divergence ``d(lam, P)`` and its derivative ``dd/dP``."""

    value: Callable[[np.ndarray, np.ndarray], np.ndarray]
    grad: Callable[[np.ndarray, np.ndarray], np.ndarray]
    positive: bool  # needs lam > 0 and P > 0 in every weighted mode
    doc: str


def _w2(lam, P):
    return (np.sqrt(lam) - np.sqrt(P)) ** 2


def _w2_grad(lam, P):
    return 1 - np.sqrt(np.divide(lam, P, out=np.zeros_like(lam), where=P > 0))


def _ratio(a, b):
    with np.errstate(over="ignore"):
        return np.exp(np.log(a) - np.log(b))


#: The divergences, by name.
DIVERGENCES: dict[str, Divergence] = {
    "w2": Divergence(_w2, _w2_grad, False,
                     "squared Wasserstein-2, sum (sqrt(lam) - sqrt(P))**2"),
    "kl": Divergence(lambda lam, P: _kl_terms_log(lam, P),
                     lambda lam, P: 0.5 * (1 / P - _ratio(lam, P) / P),
                     True, "KL(data || model) = 1/2 sum (lam/P - 1 - log(lam/P))"),
    "kl_reverse": Divergence(lambda lam, P: _kl_terms_log(P, lam),
                             lambda lam, P: 0.5 * (1 / lam - 1 / P),
                             True, "KL(model || data) = 1/2 sum (P/lam - 1 - log(P/lam))"),
}


def _kl_terms_log(a, b):
    """``(a/b - 1 - log(a/b)) / 2``, finite for any positive ``a``, ``b`` (inf only if the
    ratio itself overflows, which is the true value)."""
    lr = np.log(a) - np.log(b)
    with np.errstate(over="ignore"):
        return 0.5 * (np.expm1(lr) - lr)


def _inputs(psd_data, psd_model, divergence, weights):
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence must be one of {tuple(DIVERGENCES)}, got {divergence!r}")
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
    if DIVERGENCES[divergence].positive and np.any(((lam == 0) | (P == 0)) & (w > 0)):
        raise ValueError(f"{divergence} needs positive variances in every weighted mode")
    return lam, P, w


def divergence(psd_data: ArrayLike, psd_model: ArrayLike, divergence: str = "w2",
               weights: ArrayLike | None = None) -> float:
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
    lam, P, w = _inputs(psd_data, psd_model, divergence, weights)
    live = w > 0
    d = np.zeros_like(lam)
    with np.errstate(over="ignore"):
        d[live] = DIVERGENCES[divergence].value(lam[live], P[live])
        total = float(np.sum(w * d))
    if not np.isfinite(total):
        raise ValueError(f"the {divergence} divergence of these spectra exceeds the float64 "
                         "range (their variances differ by a ratio near or beyond 1e308)")
    return total


def divergence_grad(psd_data: ArrayLike, psd_model: ArrayLike, divergence: str = "w2",
                    weights: ArrayLike | None = None) -> np.ndarray:
    """Derivative of :func:`divergence` with respect to each entry of ``psd_model``.

    ``"w2"``: ``1 - sqrt(lam / P)``; ``"kl"``: ``(P - lam) / (2 P**2)``;
    ``"kl_reverse"``: ``(P - lam) / (2 lam P)``; each times its weight.  W2 has no
    derivative at ``P = 0`` where ``lam > 0`` (a ``ValueError``).

    >>> divergence_grad([1.0, 4.0], [1.0, 1.0]).tolist()
    [0.0, -1.0]
    >>> divergence_grad([2.0], [1.0], "kl").tolist()
    [-0.5]
    """
    lam, P, w = _inputs(psd_data, psd_model, divergence, weights)
    live = w > 0
    if divergence == "w2" and np.any((P == 0) & (lam > 0) & live):
        raise ValueError("w2 is not differentiable where psd_model = 0 < psd_data")
    g = np.zeros_like(lam)
    g[live] = DIVERGENCES[divergence].grad(lam[live], P[live])
    return w * g
