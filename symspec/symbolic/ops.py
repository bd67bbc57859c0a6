"""Elementary functions that work on SymPy expressions and on plain floats.

Sampler definitions call these on noise levels, so the same definition can be
run symbolically (SymPy) and numerically (floats for the schedule, NumPy arrays
for the state).  Applying them to the state itself is not linear, and the
derivation engine reports it.
"""

from __future__ import annotations

import math

import sympy as sp

__all__ = ["sqrt", "exp", "log", "expm1"]


def _pick(symbolic, numeric):
    def fn(a):
        if isinstance(a, sp.Basic):
            return symbolic(a)
        try:
            return numeric(a)
        except TypeError:
            raise TypeError(
                f"{numeric.__name__}() got {type(a).__name__}: symspec.symbolic.ops functions take "
                "noise levels (numbers or SymPy expressions); applying them to the state "
                "is not linear"
            ) from None

    fn.__name__ = numeric.__name__
    fn.__doc__ = f"``{numeric.__name__}`` of a float or a SymPy expression."
    return fn


sqrt = _pick(sp.sqrt, math.sqrt)
exp = _pick(sp.exp, math.exp)
log = _pick(sp.log, math.log)
expm1 = _pick(lambda a: sp.exp(a) - 1, math.expm1)
