"""Canonical SymPy symbols of symspec, with their assumptions.

>>> from symspec.symbolic.symbols import lam, level
>>> lam.is_nonnegative
True
>>> level("t", "vp")
alphabar_t
"""

from __future__ import annotations

import sympy as sp

__all__ = ["lam", "mean", "eta", "level", "state", "noise"]

#: Power spectral density of one mode (its variance under the data model).
lam = sp.Symbol("lambda", nonnegative=True)
#: Mean of one mode of the data (the DC component of images, for example).
mean = sp.Symbol("m", real=True)
#: DDIM stochasticity.
eta = sp.Symbol("eta", nonnegative=True)


def level(name: str, space: str) -> sp.Symbol:
    """The noise-level symbol of a step: alpha-bar in ``"vp"`` space, sigma in ``"ve"``."""
    if space == "vp":
        return sp.Symbol(f"alphabar_{name}", positive=True)
    if space == "ve":
        return sp.Symbol(f"sigma_{name}", positive=True)
    raise ValueError(f"space must be 'vp' or 've', got {space!r}")


def state(i: int) -> sp.Symbol:
    """Component ``i`` of a sampler's state (``x`` is component 0)."""
    return sp.Symbol("x" if i == 0 else f"x_{i}", real=True)


def noise(j: int) -> sp.Symbol:
    """The ``j``-th fresh standard normal draw of a step."""
    return sp.Symbol(f"w_{j}", real=True)
