"""Elementary functions that work on SymPy expressions, floats, NumPy arrays and tensors.

Sampler definitions call these on noise levels (and on the per-mode data variance
``c.lam``, for a noise coloured by the spectrum), so the same definition can be run
symbolically (SymPy), numerically (floats for the levels, NumPy arrays per mode) and
differentiably (PyTorch tensors: :mod:`symspec.design.simulation` runs the definitions on a
non-Gaussian model, with levels that carry gradients).
Applying them to the state itself is not linear; the derivation engine reports it, and
:func:`symspec.sample` derives a sampler before running it.
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp

__all__ = ["sqrt", "exp", "log", "expm1"]


def _pick(symbolic, numeric, array):
    def fn(a):
        if isinstance(a, sp.Basic):
            return symbolic(a)
        if isinstance(a, np.ndarray):
            with np.errstate(invalid="raise", divide="raise", over="raise"):
                try:
                    return array(a)
                except FloatingPointError as exc:
                    raise ValueError(f"{numeric.__name__}() of an array: {exc}") from None
        if type(a).__module__.partition(".")[0] == "torch":  # a tensor: keep its autograd
            import torch

            return getattr(torch, numeric.__name__)(a)
        try:
            return numeric(a)
        except TypeError:
            raise TypeError(
                f"{numeric.__name__}() got {type(a).__name__}: symspec.ops functions take "
                "numbers, NumPy arrays or SymPy expressions") from None

    fn.__name__ = numeric.__name__
    fn.__doc__ = f"``{numeric.__name__}`` of a float or a SymPy expression."
    return fn


sqrt = _pick(sp.sqrt, math.sqrt, np.sqrt)
exp = _pick(sp.exp, math.exp, np.exp)
log = _pick(sp.log, math.log, np.log)
expm1 = _pick(lambda a: sp.exp(a) - 1, math.expm1, np.expm1)
