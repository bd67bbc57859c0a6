"""The numeric layer: the one module that calls :func:`sympy.lambdify`.

A derived step map (:func:`symspec.engine.derive`) has entries that are rational
functions of the PSD value ``lam`` whose coefficients depend only on the noise levels.
Each map is compiled once (cached by the hashable key ``(sampler, variant,
prediction_type)``) into one function of the levels returning every coefficient;
the per-mode work is then a few vectorised Horner evaluations per step.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import sympy as sp

from . import symbols as S
from .engine import Sampler, derive, variant
from .schedules import Schedule

__all__ = ["Response", "spectral_response", "compiled", "validate_psd", "lambdify_levels"]


def validate_psd(psd, name: str = "psd") -> np.ndarray:
    """``psd`` as a float64 array of per-mode variances, or a ``ValueError`` naming ``name``.

    >>> validate_psd([1.0, 0.5]).dtype
    dtype('float64')
    """
    try:
        a = np.asarray(psd, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array of numbers, got {type(psd).__name__}") from None
    if a.ndim not in (1, 2, 3):
        raise ValueError(f"{name} must be 1-, 2- or 3-dimensional (one value per mode), "
                         f"got {a.ndim} dimensions with shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite; it has {int(np.sum(~np.isfinite(a)))} NaN or "
                         "infinite values")
    if np.any(a < 0):
        raise ValueError(f"{name} must be >= 0 (variances); its minimum is {a.min():.3g}")
    return a


def lambdify_levels(args, exprs):
    """Compile scalar expressions of level symbols to a fast function of floats."""
    return sp.lambdify(list(args), list(exprs), modules="math", cse=True, docstring_limit=0)


@dataclass(frozen=True)
class _Compiled:
    """Coefficients of every nonzero entry of A, Q (upper triangle) and C, as rationals in lam."""

    coeffs: object                   # levels -> flat list of floats
    layout: tuple                    # ((kind, i, j, n_num, n_den), ...)

    def entries(self, lam: np.ndarray, levels) -> dict:
        vals = self.coeffs(*levels)
        out, k = {}, 0
        for kind, i, j, nn, nd in self.layout:
            num, den = vals[k:k + nn], vals[k + nn:k + nn + nd]
            k += nn + nd
            out[kind, i, j] = _rational(num, den, lam)
        return out


def _horner(c, lam):
    p = c[0] * lam + c[1] if len(c) > 1 else c[0]
    for ci in c[2:]:
        p = p * lam + ci
    return p


def _rational(num, den, lam):
    if len(den) == 1:
        return _horner([n / den[0] for n in num], lam) if len(num) > 1 else num[0] / den[0]
    if den[0] != 0:  # normalise so the leading denominator coefficient is 1
        num = [n / den[0] for n in num]
        den = [d / den[0] for d in den[1:]]
        d = lam + den[0]
        for ci in den[1:]:
            d = d * lam + ci
        return _horner(num, lam) / d
    return _horner(num, lam) / _horner(den, lam)


def _as_rational(e: sp.Expr):
    num, den = sp.fraction(sp.together(e))
    try:
        pn, pd = sp.Poly(num, S.lam), sp.Poly(den, S.lam)
    except sp.PolynomialError as exc:
        raise ValueError(f"step-map entry is not rational in lambda: {e}") from exc
    cn = [sp.factor(c) for c in pn.all_coeffs()]
    cd = [sp.factor(c) for c in pd.all_coeffs()]
    if any(S.lam in c.free_symbols or S.mean in c.free_symbols for c in cn + cd):
        raise ValueError(f"step-map entry has coefficients depending on lambda: {e}")
    return cn, cd


@functools.cache
def compiled(smp: Sampler, key: tuple, prediction_type: str) -> _Compiled:
    """Compile the derived map of one step variant (cached)."""
    m = derive(smp, key, prediction_type)
    k = smp.state
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


@dataclass(frozen=True)
class Response:
    """The spectral response of a sampler run, per mode (same shape as the PSD).

    Attributes
    ----------
    transfer : ndarray
        Gain from the initial latent to the output, ``H``.
    log_transfer : ndarray
        ``log|H|``, finite even where ``H`` underflows.
    noise_psd : ndarray
        Output variance due to the noise injected along the way.
    output_psd : ndarray
        Total output variance, ``H**2 * init_var + noise_psd``.
    output_mean : ndarray or None
        Output mean per mode, when a data mean was given.
    init_var : float
        Variance of the initial latent.
    trajectory : dict or None
        With ``trajectory=True``: arrays of shape ``(N + 1, *psd.shape)``, ``"variance"``
        and ``"transfer"`` of ``x`` after each step (row 0 is the initial latent).
    """

    transfer: np.ndarray
    log_transfer: np.ndarray
    noise_psd: np.ndarray
    output_psd: np.ndarray
    output_mean: np.ndarray | None
    init_var: float
    trajectory: dict | None = None


def _levels(sched: Schedule, smp: Sampler, i: int):
    h = [sched.start[i - k] if i - k >= 0 else sched.start[i] for k in range(1, smp.history + 1)]
    return (float(sched.start[i]), float(sched.end[i]), *map(float, h))


def spectral_response(sampler: Sampler, schedule: Schedule, psd, *, mean=None,
                      prediction_type: str = "epsilon", trajectory: bool = False) -> Response:
    """Exact per-mode response of ``sampler`` run on ``schedule`` for data spectrum ``psd``.

    Parameters
    ----------
    sampler : Sampler
        A built-in (``symspec.DDPM``, ``symspec.DDIM(eta=...)``, ...) or user sampler.
    schedule : Schedule
        Noise levels; converted to the sampler's space if needed.
    psd : array_like
        Per-mode data variances (any 1-3 dimensional grid).
    mean : array_like, optional
        Per-mode data mean (broadcast to ``psd``); enables ``output_mean``.
    prediction_type : {"epsilon", "sample", "v_prediction"}
        What the exact model outputs (the map is the same for all; this is exposed for
        cross-checks).
    trajectory : bool
        Also return the per-step variance and transfer.

    Examples
    --------
    >>> import numpy as np, symspec
    >>> sched = symspec.Schedule.from_alpha_bar([0.01, 0.3, 0.8, 1.0])
    >>> r = symspec.spectral_response(symspec.DDPM, sched, [0.1, 1.0, 10.0])
    >>> lam = np.array([0.1, 1.0, 10.0])
    >>> np.allclose(r.transfer, 0.1 * lam / (0.01 * lam + 0.99))  # the telescoped form
    True
    """
    if not isinstance(sampler, Sampler):
        raise TypeError(f"sampler must be a symspec Sampler, got {type(sampler).__name__}")
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a symspec Schedule, got {type(schedule).__name__}")
    lam_grid = validate_psd(psd)
    shape, lam = lam_grid.shape, lam_grid.ravel()
    m = None
    if mean is not None:
        try:
            m = np.broadcast_to(np.asarray(mean, dtype=np.float64), shape).ravel()
        except ValueError:
            raise ValueError(f"mean must broadcast to the psd shape {shape}") from None
        if not np.all(np.isfinite(m)):
            raise ValueError("mean must be finite")
    sched = schedule.to_space(sampler.space)
    n, k = sched.steps, sampler.state
    M = lam.size
    # covariance of the injected noise (upper triangle), transfer column, mean
    cov = {(i, j): np.zeros(M) for i in range(k) for j in range(i, k)}
    tr = [np.ones(M)] + [np.zeros(M) for _ in range(k - 1)]
    texp = np.zeros(M, dtype=np.int64)
    mu = [np.zeros(M) for _ in range(k)] if m is not None else None
    traj = ([], []) if trajectory else None
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        for i in range(n):
            if traj is not None:
                _record(traj, cov, tr, texp, sched.init_var)
            try:
                ent = compiled(sampler, variant(sampler, i, n), prediction_type).entries(
                    lam, _levels(sched, sampler, i))
            except (ValueError, ZeroDivisionError, OverflowError, FloatingPointError) as exc:
                raise ValueError(f"step {i} of {sampler.name!r} cannot be evaluated at levels "
                                 f"{_levels(sched, sampler, i)}: {exc}") from None
            if k == 1:
                g, q = ent.get(("A", 0, 0), 0.0), ent.get(("Q", 0, 0), 0.0)
                c = cov[0, 0]
                c *= g * g
                c += q
                tr[0] *= g
                if mu is not None:
                    mu[0] = g * mu[0] + ent.get(("C", 0, 0), 0.0) * m
            else:
                cov, tr, mu = _step_general(ent, k, cov, tr, mu, m)
            if i % 32 == 31:  # keep the transfer in range: mantissa and binary exponent
                texp += _renormalise(tr)
    if traj is not None:
        _record(traj, cov, tr, texp, sched.init_var)
    with np.errstate(under="ignore"):
        transfer = np.ldexp(tr[0], texp)
        out = transfer * transfer * sched.init_var + cov[0, 0]
        with np.errstate(divide="ignore"):
            log_tr = np.log(np.abs(tr[0])) + texp * math.log(2)
    res = Response(transfer.reshape(shape), log_tr.reshape(shape), cov[0, 0].reshape(shape),
                   out.reshape(shape), None if mu is None else mu[0].reshape(shape),
                   sched.init_var,
                   None if traj is None else {
                       "variance": np.stack(traj[0]).reshape(-1, *shape),
                       "transfer": np.stack(traj[1]).reshape(-1, *shape)})
    if not np.all(np.isfinite(res.output_psd)):
        raise ValueError("the output spectrum is not finite; check the schedule and psd ranges")
    return res


def _renormalise(tr):
    big = np.max(np.abs(np.stack(tr)), axis=0)
    _, e = np.frexp(big)
    e = np.where(big > 0, e, 0)
    for v in tr:
        v *= np.ldexp(1.0, -e)
    return e


def _record(traj, cov, tr, texp, init_var):
    with np.errstate(under="ignore"):
        t = np.ldexp(tr[0], texp)
        traj[0].append(t * t * init_var + cov[0, 0])
        traj[1].append(t)


def _step_general(ent, k, cov, tr, mu, m):
    """``S <- A S A^T + Q``, ``T <- A T``, ``mu <- A mu + C m`` for a k-dimensional state."""
    A = [[ent.get(("A", i, j)) for j in range(k)] for i in range(k)]

    def full(i, j):
        return cov[(i, j) if i <= j else (j, i)]

    AS = [[sum(A[i][a] * full(a, j) for a in range(k) if A[i][a] is not None) for j in range(k)]
          for i in range(k)]
    new = {}
    for i in range(k):
        for j in range(i, k):
            s = sum(AS[i][b] * A[j][b] for b in range(k) if A[j][b] is not None)
            new[i, j] = s + ent.get(("Q", i, j), 0.0) + np.zeros(tr[0].shape)
    tr2 = [sum(A[i][a] * tr[a] for a in range(k) if A[i][a] is not None) + 0.0 * tr[0]
           for i in range(k)]
    if mu is not None:
        mu = [sum(A[i][a] * mu[a] for a in range(k) if A[i][a] is not None)
              + ent.get(("C", i, 0), 0.0) * m for i in range(k)]
    return new, tr2, mu


# =======================================================================================
# Level gradients for schedule design (used by symspec.design).
#
# Every entry of a step map is a rational function of ``lam`` whose coefficients depend on
# the noise levels only.  The derivative of an entry with respect to a level is therefore
# ``(num_l - value * den_l) / den`` with ``num_l``, ``den_l`` the polynomials whose
# coefficients are the symbolic derivatives of the numerator and denominator coefficients.
# =======================================================================================
@dataclass(frozen=True)
class _CompiledGrad:
    """Coefficients of A and Q (upper triangle) and their derivatives in chosen levels."""

    coeffs: object                   # levels -> flat list of floats
    layout: tuple                    # ((kind, i, j, n_num, n_den), ...)
    nwrt: int                        # number of levels differentiated

    def entries(self, lam: np.ndarray, levels) -> dict:
        """``{(kind, i, j): (value, [d value / d level for each level in wrt])}`` per mode."""
        vals = self.coeffs(*levels)
        out, k = {}, 0
        for kind, i, j, nn, nd in self.layout:
            block = [(vals[k + b * (nn + nd):k + b * (nn + nd) + nn],
                      vals[k + b * (nn + nd) + nn:k + (b + 1) * (nn + nd)])
                     for b in range(self.nwrt + 1)]
            k += (self.nwrt + 1) * (nn + nd)
            den = _horner(block[0][1], lam)
            val = _horner(block[0][0], lam) / den
            out[kind, i, j] = (val, [(_horner(dn, lam) - val * _horner(dd, lam)) / den
                                     for dn, dd in block[1:]])
        return out


@functools.cache
def compiled_gradient(smp: Sampler, key: tuple, prediction_type: str,
                      wrt: tuple[int, ...]) -> _CompiledGrad:
    """Compile the step map of one variant and its derivatives in ``levels[w]``, ``w in wrt``.

    ``wrt`` indexes :attr:`symspec.engine.StepMap.levels` (0 the current level, 1 the next,
    then the history).  Levels held fixed are left out, so a map need not be differentiable
    there (``sqrt(1 - alphabar_p)`` at the clean level ``alphabar_p = 1``).  Cached by the
    hashable key ``(sampler, variant, prediction_type, wrt)``.

    >>> from symspec import DDIM
    >>> g = compiled_gradient(DDIM, (False, False, 1), "epsilon", (0,))
    >>> (val, (d,)), = g.entries(np.array([2.0]), (0.3, 0.6)).values()
    >>> D = lambda a: a * 2.0 + 1 - a
    >>> f = lambda a: (math.sqrt(0.6 * a) * 2.0 + math.sqrt(0.4 * (1 - a))) / D(a)
    >>> fd = (f(0.3 + 1e-6) - f(0.3 - 1e-6)) / 2e-6
    >>> bool(np.isclose(val[0], f(0.3))), bool(np.isclose(d[0], fd))
    (True, True)
    """
    m = derive(smp, key, prediction_type)
    k = smp.state
    items = [("A", i, j, m.A[i, j]) for i in range(k) for j in range(k)]
    items += [("Q", i, j, m.Q[i, j]) for i in range(k) for j in range(i, k)]
    layout, flat = [], []
    for kind, i, j, e in items:
        if e == 0:
            continue
        cn, cd = _as_rational(e)
        layout.append((kind, i, j, len(cn), len(cd)))
        flat += cn + cd
        for w in wrt:
            flat += [sp.diff(c, m.levels[w]) for c in cn + cd]
    return _CompiledGrad(lambdify_levels(m.levels, flat), tuple(layout), len(wrt))


__all__ += ["compiled_gradient"]
