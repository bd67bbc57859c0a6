"""The numeric layer: the one module that calls :func:`sympy.lambdify`.

A derived step map (:func:`symspec.symbolic.engine.derive`) has entries that are rational
functions of the PSD value ``lam`` whose coefficients depend only on the noise levels.
Each map is compiled once (cached by the hashable key ``(sampler, variant,
prediction_type)``) into one function of the levels returning every coefficient;
the per-mode work is then a few vectorised Horner evaluations per step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sympy as sp

from ..symbolic import symbols as S
from ..symbolic.engine import Sampler, StepMap, derive, opaque, simplifies_whole

__all__ = ["compiled", "compiled_gradient", "lam_powers", "lambdify_levels", "lambdify_modes"]


def lambdify_levels(args, exprs):
    """Compile scalar expressions of level symbols to a fast function of floats."""
    return sp.lambdify(list(args), list(exprs), modules="math", cse=True, docstring_limit=0)


def lambdify_modes(args, exprs):
    """Compile expressions of per-mode arrays (and level floats) to a NumPy function."""
    return sp.lambdify(list(args), list(exprs), modules="numpy", cse=True, docstring_limit=0)


@dataclass(frozen=True)
class _Compiled:
    """Coefficients of every nonzero entry of A, Q (upper triangle) and C, as rationals in lam."""

    coeffs: Callable[..., list[float]]  # levels -> flat list of floats
    layout: tuple                    # ((kind, i, j, n_num, n_den), ...)

    def entries(self, lam: np.ndarray, levels, mean: bool = True, pool=None) -> dict:
        """The entries at ``levels`` for the modes ``lam`` (the C column only if ``mean``),
        in arrays of ``pool`` (a :class:`_Pool`) if given."""
        vals = self.coeffs(*levels)
        out: dict = {}
        dens: dict = {}
        k = 0
        new = (lambda: None) if pool is None else pool.new
        for kind, i, j, nn, nd in self.layout:
            num, den = vals[k:k + nn], vals[k + nn:k + nn + nd]
            k += nn + nd
            if mean or kind != "C":
                out[kind, i, j] = _rational(num, den, lam, dens, new)
        return out


def _horner(c, lam, out=None):
    """The polynomial ``c`` (highest degree first) at ``lam``: a scalar, or an array (``out``
    if given)."""
    if len(c) == 1:
        return c[0]
    if c[0] == 1:
        p = np.add(lam, c[1], out=out)
    else:
        p = np.multiply(lam, c[0], out=out)
        if c[1] != 0:
            p += c[1]
    for ci in c[2:]:
        p *= lam
        if ci != 0:
            p += ci
    return p


def _rational(num, den, lam, dens, new=lambda: None):
    """``num(lam) / den(lam)``, normalised to a monic denominator, in arrays from ``new()``.

    ``dens`` keeps the denominators evaluated so far: entries of one step often share one.
    """
    lead = den[0] if den[0] != 0 else 1.0
    num, key = [n / lead for n in num], tuple(d / lead for d in den)
    if len(key) == 1:
        return _horner(num, lam, new() if len(num) > 1 else None)
    if key not in dens:
        dens[key] = _horner(key, lam, new())
    if len(num) == 1:
        return np.divide(num[0], dens[key], out=new())
    p = _horner(num, lam, new())
    p /= dens[key]
    return p


def _as_rational(e: sp.Expr):
    # as in engine._tidy: one-step algebraic entries are expanded whole, so that their terms
    # cancel exactly; the others keep their level coefficients opaque
    o, back = (e, {}) if simplifies_whole(e) else opaque(e, {S.lam})
    num, den = sp.fraction(sp.together(o))
    try:
        pn, pd = sp.Poly(num, S.lam), sp.Poly(den, S.lam)
    except sp.PolynomialError as exc:
        raise ValueError(f"step-map entry is not rational in lambda: {e}") from exc
    cn = [sp.factor(c).xreplace(back) for c in pn.all_coeffs()]
    cd = [sp.factor(c).xreplace(back) for c in pd.all_coeffs()]
    if any(S.lam in c.free_symbols or S.mean in c.free_symbols for c in cn + cd):
        raise ValueError(f"step-map entry has coefficients depending on lambda: {e}")
    return cn, cd


@functools.cache
def compiled(smp: Sampler, key: tuple, prediction_type: str) -> _Compiled:
    """Compile the derived map of one step variant (cached)."""
    return _compile(derive(smp, key, prediction_type))


@functools.cache
def _compile(m: StepMap) -> _Compiled:
    k = m.sampler.state
    items = [("A", i, j, m.A[i, j]) for i in range(k) for j in range(k)]
    items += [("Q", i, j, m.Q[i, j]) for i in range(k) for j in range(i, k)]
    items += [("C", i, 0, m.C[i, 0]) for i in range(k)]
    layout, flat = [], []
    for kind, i, j, e in items:
        if e == 0:
            continue
        cn, cd = _as_rational(e)
        layout.append((kind, i, j, len(cn), len(cd)))
        flat += cn + cd
    return _Compiled(lambdify_levels(m.levels, flat), tuple(layout))


# =======================================================================================
# Level gradients (used by the adjoint in symspec.numeric.core).
#
# Every entry of a step map is a rational function of ``lam`` whose coefficients depend on
# the noise levels only.  The derivative of an entry with respect to a level is therefore
# ``(num_l - value * den_l) / den`` with ``num_l``, ``den_l`` the polynomials whose
# coefficients are the symbolic derivatives of the numerator and denominator coefficients.
# All these polynomials are evaluated at once, as one matrix product with powers of ``lam``.
# =======================================================================================
@dataclass(frozen=True)
class _CompiledGrad:
    """Entries of A and Q (upper triangle) and their derivatives in chosen levels."""

    coeffs: Callable[..., list[float]]  # levels -> flat list of polynomial coefficients
    keys: tuple                      # ((kind, i, j), ...)
    nwrt: int                        # number of levels differentiated
    width: int                       # coefficients per polynomial (highest degree first)

    def entries(self, powers: np.ndarray, levels) -> dict:
        """``{(kind, i, j): (value, d value / d levels)}``, arrays of shape ``(M,)`` and
        ``(nwrt, M)``; ``powers`` is :func:`lam_powers` of the modes with ``self.width``."""
        c = np.reshape(self.coeffs(*levels), (-1, self.width))
        poly = (c @ powers).reshape(len(self.keys), 1 + self.nwrt, 2, -1)  # one 2-D product
        num, den = poly[:, :, 0], poly[:, :, 1]
        val = num[:, 0] / den[:, 0]
        der = (num[:, 1:] - val[:, None] * den[:, 1:]) / den[:, :1]
        return {key: (val[e], der[e]) for e, key in enumerate(self.keys)}


def lam_powers(lam: np.ndarray, width: int) -> np.ndarray:
    """``lam**(width-1), ..., lam, 1`` as rows: the basis of :class:`_CompiledGrad`."""
    return lam ** np.arange(width - 1, -1, -1.0)[:, None]


@functools.cache
def compiled_gradient(smp: Sampler, key: tuple, prediction_type: str,
                      wrt: tuple[int, ...]) -> _CompiledGrad:
    """Compile the step map of one variant and its derivatives in ``levels[w]``, ``w in wrt``.

    ``wrt`` indexes :attr:`symspec.symbolic.engine.StepMap.levels` (0 the current level, 1 the next,
    then the history).  Levels held fixed are left out, so a map need not be differentiable
    there (``sqrt(1 - alphabar_p)`` at the clean level ``alphabar_p = 1``).  Cached by the
    hashable key ``(sampler, variant, prediction_type, wrt)``.

    >>> import math
    >>> from symspec import DDIM
    >>> g = compiled_gradient(DDIM, (False, False, 1), "epsilon", (0,))
    >>> lam = np.array([2.0])
    >>> (val, d), = g.entries(lam_powers(lam, g.width), (0.3, 0.6)).values()
    >>> D = lambda a: a * 2.0 + 1 - a
    >>> f = lambda a: (math.sqrt(0.6 * a) * 2.0 + math.sqrt(0.4 * (1 - a))) / D(a)
    >>> fd = (f(0.3 + 1e-6) - f(0.3 - 1e-6)) / 2e-6
    >>> bool(np.isclose(val[0], f(0.3))), bool(np.isclose(d[0, 0], fd))
    (True, True)
    """
    m = derive(smp, key, prediction_type)
    k = smp.state
    items = [("A", i, j, m.A[i, j]) for i in range(k) for j in range(k)]
    items += [("Q", i, j, m.Q[i, j]) for i in range(k) for j in range(i, k)]
    rational = [((kind, i, j), _as_rational(e)) for kind, i, j, e in items if e != 0]
    width = max([1] + [len(p) for _, pq in rational for p in pq])
    flat = []
    for _, (cn, cd) in rational:
        polys = [cn, cd] + [[sp.diff(c, m.levels[w]) for c in p] for w in wrt for p in (cn, cd)]
        for p in polys:
            flat += [sp.Integer(0)] * (width - len(p)) + list(p)
    return _CompiledGrad(lambdify_levels(m.levels, flat), tuple(kk for kk, _ in rational),
                         len(wrt), width)

