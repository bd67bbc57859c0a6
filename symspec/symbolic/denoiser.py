"""The exact (MMSE) denoiser of Gaussian data, per mode, in every parameterisation.

A noisy state at a noise level ``(alpha, sigma)`` is ``x = alpha*x0 + sigma*eps``
with ``x0 ~ N(m, lam)``.  VP levels have ``alpha**2 + sigma**2 = 1``; VE levels have
``alpha = 1``.  Every function here is plain arithmetic, so it runs on SymPy
expressions and on NumPy arrays alike.

>>> import sympy as sp
>>> from symspec.symbolic.symbols import lam, level
>>> ab = level("t", "vp")
>>> L = Level.vp(ab)
>>> x = sp.Symbol("x")
>>> sp.simplify(x0_hat(x, L, lam) - sp.sqrt(ab) * lam / (ab * lam + 1 - ab) * x)
0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from ..ops import log, sqrt

__all__ = ["Level", "PREDICTION_TYPES", "PredictionType", "x0_hat", "eps_hat", "v_hat", "score",
           "model_output",
           "to_x0", "to_eps"]

#: What a model outputs: the noise, the clean sample, or the velocity ``v``.
PredictionType: TypeAlias = Literal["epsilon", "sample", "v_prediction"]
PREDICTION_TYPES: tuple[PredictionType, ...] = ("epsilon", "sample", "v_prediction")


@dataclass(frozen=True)
class Level:
    """A noise level: ``x = alpha*x0 + sigma*eps``."""

    alpha: Any
    sigma: Any

    @classmethod
    def vp(cls, alpha_bar):
        """Variance-preserving level from alpha-bar."""
        return cls(sqrt(alpha_bar), sqrt(1 - alpha_bar))

    @classmethod
    def ve(cls, sigma):
        """Variance-exploding level from sigma."""
        return cls(1, sigma)

    @property
    def alpha_bar(self):
        """The alpha-bar of this level (its VP equivalent)."""
        return self.alpha**2 / (self.alpha**2 + self.sigma**2)

    @property
    def logsnr(self):
        """Half log signal-to-noise ratio, ``log(alpha/sigma)`` (DPM-Solver's lambda)."""
        return log(self.alpha / self.sigma)

    @property
    def sigma_ve(self):
        """The VE sigma of this level, ``sigma/alpha``."""
        return self.sigma / self.alpha

    def marginal(self, lam):
        """Variance of ``x`` at this level for a mode of PSD ``lam``: ``alpha^2 lam + sigma^2``."""
        return self.alpha**2 * lam + self.sigma**2


def x0_hat(x, level: Level, lam, m=0):
    """MMSE estimate of the clean mode (the Wiener filter)."""
    return m + level.alpha * lam / level.marginal(lam) * (x - level.alpha * m)


def eps_hat(x, level: Level, lam, m=0):
    """MMSE estimate of the noise."""
    return level.sigma / level.marginal(lam) * (x - level.alpha * m)


def v_hat(x, level: Level, lam, m=0):
    """MMSE estimate of the velocity ``(alpha*eps - sigma*x0) / sqrt(alpha^2 + sigma^2)``.

    The normalisation makes it the usual VP velocity, and in VE space the velocity of
    the VP-scaled input, as diffusers' sigma-based schedulers define it.
    """
    a, s = level.alpha, level.sigma
    return (a * eps_hat(x, level, lam, m) - s * x0_hat(x, level, lam, m)) / sqrt(a**2 + s**2)


def score(x, level: Level, lam, m=0):
    """The score of the noisy marginal, ``-(x - alpha*m)/D``."""
    return -(x - level.alpha * m) / level.marginal(lam)


def model_output(x, level: Level, lam, m, prediction_type: str):
    """What an exact model trained with ``prediction_type`` outputs."""
    fn = {"epsilon": eps_hat, "sample": x0_hat, "v_prediction": v_hat}.get(prediction_type)
    if fn is None:
        raise ValueError(
            f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
    return fn(x, level, lam, m)


def to_x0(output, x, level: Level, prediction_type: str):
    """Convert a model output to the clean estimate, as diffusers schedulers do."""
    a, s = level.alpha, level.sigma
    if prediction_type == "epsilon":
        return (x - s * output) / a
    if prediction_type == "v_prediction":
        return (a * x - s * sqrt(a**2 + s**2) * output) / (a**2 + s**2)
    return output


def to_eps(output, x, level: Level, prediction_type: str):
    """Convert a model output to the noise estimate, as diffusers schedulers do."""
    a, s = level.alpha, level.sigma
    if prediction_type == "epsilon":
        return output
    if prediction_type == "v_prediction":
        return (a * sqrt(a**2 + s**2) * output + s * x) / (a**2 + s**2)
    return (x - a * output) / s
