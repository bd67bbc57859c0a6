"""The numeric layer: the one module that calls :func:`sympy.lambdify`.

A derived step map (:func:`symspec.engine.derive`) has entries that are rational
functions of the PSD value ``lam`` whose coefficients depend only on the noise levels.
Each map is compiled once (cached by the hashable key ``(sampler, variant,
prediction_type)``) into one function of the levels returning every coefficient;
the per-mode work is then a few vectorised Horner evaluations per step.
"""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass

import numpy as np
import sympy as sp
from scipy.linalg.blas import daxpy

from . import symbols as S
from .engine import (
    NonLinearSamplerError,
    Sampler,
    StepMap,
    check_type,
    derive,
    opaque,
    simplifies_whole,
    variant,
)
from .schedules import Schedule

__all__ = ["Response", "spectral_response", "compiled", "validate_psd", "validate_mean",
           "lambdify_levels", "lambdify_modes"]


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


def validate_mean(mean, shape: tuple) -> np.ndarray:
    """``mean`` broadcast to the PSD ``shape`` and flattened, or a ``ValueError`` naming it.

    >>> validate_mean(0.5, (2,)).tolist()
    [0.5, 0.5]
    """
    try:
        m = np.broadcast_to(np.asarray(mean, dtype=np.float64), shape).ravel()
    except (TypeError, ValueError):
        raise ValueError(f"mean must broadcast to the psd shape {shape}") from None
    if not np.all(np.isfinite(m)):
        raise ValueError("mean must be finite")
    return m


def lambdify_levels(args, exprs):
    """Compile scalar expressions of level symbols to a fast function of floats."""
    return sp.lambdify(list(args), list(exprs), modules="math", cse=True, docstring_limit=0)


def lambdify_modes(args, exprs):
    """Compile expressions of per-mode arrays (and level floats) to a NumPy function."""
    return sp.lambdify(list(args), list(exprs), modules="numpy", cse=True, docstring_limit=0)


@dataclass(frozen=True)
class _Compiled:
    """Coefficients of every nonzero entry of A, Q (upper triangle) and C, as rationals in lam."""

    coeffs: object                   # levels -> flat list of floats
    layout: tuple                    # ((kind, i, j, n_num, n_den), ...)

    def entries(self, lam: np.ndarray, levels, mean: bool = True, pool=None) -> dict:
        """The entries at ``levels`` for the modes ``lam`` (the C column only if ``mean``),
        in arrays of ``pool`` (a :class:`_Pool`) if given."""
        vals = self.coeffs(*levels)
        out, k, dens = {}, 0, {}
        new = (lambda: None) if pool is None else pool.new
        for kind, i, j, nn, nd in self.layout:
            num, den = vals[k:k + nn], vals[k + nn:k + nn + nd]
            k += nn + nd
            if mean or kind != "C":
                out[kind, i, j] = _rational(num, den, lam, dens, new)
        return out


class _Pool:
    """Work arrays of one size, reused from step to step.

    Allocating and freeing arrays of this size every step makes the C allocator return the
    memory to the system and fault it in again, which costs more than the arithmetic.
    """

    def __init__(self, size: int):
        self.size, self.arrays, self.free = size, [], []

    def new(self) -> np.ndarray:
        """A free array (its contents are garbage)."""
        if self.free:
            return self.free.pop()
        self.arrays.append(np.empty(self.size))
        return self.arrays[-1]

    def recycle(self, live) -> None:
        """Free every array of the pool except those in ``live``."""
        keep = {id(v) for v in live}
        self.free = [a for a in self.arrays if id(a) not in keep]


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
    check_type(sampler, Sampler, "sampler")
    check_type(schedule, Schedule, "schedule")
    lam_grid = validate_psd(psd)
    shape, lam = lam_grid.shape, lam_grid.ravel()
    m = None if mean is None else validate_mean(mean, shape)
    sched = schedule.to_space(sampler.space)
    n, k = sched.steps, sampler.state
    M = lam.size
    # covariance of the injected noise (upper triangle), transfer column, mean; in a
    # multistep state None stands for an exact zero, which _step_general skips
    cov = {(i, j): None for i in range(k) for j in range(i, k)}
    cov[0, 0] = np.zeros(M) if k == 1 else None
    tr = [np.ones(M)] + [None] * (k - 1)
    texp = np.zeros(M, dtype=np.int64)
    mu = [np.zeros(M)] + [None] * (k - 1) if m is not None else None
    pool = None if k == 1 else _Pool(M)
    traj = ([], []) if trajectory else None
    with _float_errors(sampler):
        for i in range(n):
            if traj is not None:
                _record(traj, cov, tr, texp, sched.init_var)
            try:
                ent = compiled(sampler, variant(sampler, i, n), prediction_type).entries(
                    lam, _levels(sched, sampler, i), m is not None, pool)
            except NonLinearSamplerError:
                raise
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
                cov, tr, mu = _step_general(ent, k, cov, tr, mu, m, pool.new)
                pool.recycle([*tr, *cov.values(), *(mu or ())])
            if i % 32 == 31:  # keep the transfer in range: mantissa and binary exponent
                texp += _renormalise(tr, pool)
    if traj is not None:
        _record(traj, cov, tr, texp, sched.init_var)
    cov[0, 0] = _dense(cov[0, 0], M)
    with np.errstate(under="ignore", over="ignore"):  # checked below
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


@contextlib.contextmanager
def _float_errors(sampler: Sampler):
    """Raise floating-point errors in the recursion as a ``ValueError`` naming the sampler."""
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        try:
            yield
        except FloatingPointError as exc:
            raise ValueError(f"the response of {sampler.name!r} is not finite ({exc}); its "
                             "gains or noise grow without bound on this schedule") from None


def _renormalise(tr, pool=None):
    """Scale the transfer column to about 1 per mode; return the binary exponents taken out.

    Work arrays come from ``pool`` if given.
    """
    new = (lambda: None) if pool is None else pool.new
    big = np.abs(tr[0], out=new())
    for v in tr[1:]:
        if v is not None:
            np.maximum(big, np.abs(v, out=new()), out=big)
    _, e = np.frexp(big, out=(big, None))  # the exponent of 0 is 0
    scale = np.ldexp(1.0, np.negative(e, out=e), out=big)
    for v in {id(v): v for v in tr if v is not None}.values():  # entries may share an array
        v *= scale
    return np.negative(e, out=e)


def _dense(v, size):
    """An array of ``size`` values from an entry that may be ``None`` (zero) or a scalar."""
    return np.zeros(size) if v is None else v + np.zeros(size)


def _record(traj, cov, tr, texp, init_var):
    with np.errstate(under="ignore", over="ignore"):  # the caller checks the output
        t = np.ldexp(tr[0], texp)
        traj[0].append(t * t * init_var + _dense(cov[0, 0], t.size))
        traj[1].append(t)


def _step_general(ent, k, cov, tr, mu, m, new):
    """``S <- A S A^T + Q``, ``T <- A T``, ``mu <- A mu + C m`` for a k-dimensional state.

    Entries are arrays, scalars or ``None`` (exact zeros, which cost nothing: no covariance
    work before the first noise, no products with empty history); a coefficient equal to 1
    (a stored value moving down the history) multiplies nothing.
    """
    rows: list[list] = [[] for _ in range(k)]  # the nonzero (column, value) of each row of A
    for (kind, i, j), v in ent.items():
        if kind == "A":
            rows[i].append((j, v))
    if any(v is not None for v in cov.values()) or any(key[0] == "Q" for key in ent):
        need = {(i, b) for i in range(k) for j in range(i, k) for b, _ in rows[j]}
        AS = {(i, b): _dot(rows[i], [cov[min(a, b), max(a, b)] for a in range(k)], new)
              for i, b in need}  # the entries of A S that (A S) A^T reads
        cov = {(i, j): _add(_dot(rows[j], {b: AS[i, b] for b, _ in rows[j]}, new),
                            ent.get(("Q", i, j)), new)
               for i in range(k) for j in range(i, k)}
    tr = [_dot(row, tr, new) for row in rows]
    if mu is not None:
        mu = [_add(_dot(row, mu, new), None if (c := ent.get(("C", i, 0))) is None else c * m,
                   new) for i, row in enumerate(rows)]
    return cov, tr, mu


def _dot(row, values, new):
    """``sum(c * values[j])`` over a sparse row, skipping zeros (``None``); ``None`` if all are.

    Products and sums go to arrays from ``new()``; a single term with coefficient 1 is
    ``values[j]`` itself.  Terms with a scalar coefficient are added by BLAS ``daxpy`` in
    one pass, after the terms with per-mode coefficients.
    """
    out = owned = None
    for j, c in sorted(row, key=lambda jc: type(jc[1]) is float):
        v = values[j]
        if v is None:
            continue
        if owned and type(c) is float and isinstance(v, np.ndarray) and isinstance(out, np.ndarray):
            daxpy(v, out, a=c)  # out += c * v, in place
            continue
        one = type(c) is float and c == 1.0
        t = v if one else np.multiply(c, v, out=new())
        if out is None:
            out, owned = t, not one
        elif owned:
            out += t
        else:
            out, owned = np.add(out, t, out=new() if one else t), True
    return out


def _add(a, b, new):
    """``a + b`` (in an array from ``new()``), where ``None`` is zero."""
    if a is None or b is None:
        return a if b is None else b
    return np.add(a, b, out=new()) if np.ndim(a) or np.ndim(b) else a + b


# =======================================================================================
# Level gradients for schedule design (used by symspec.design).
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

    coeffs: object                   # levels -> flat list of polynomial coefficients
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

    ``wrt`` indexes :attr:`symspec.engine.StepMap.levels` (0 the current level, 1 the next,
    then the history).  Levels held fixed are left out, so a map need not be differentiable
    there (``sqrt(1 - alphabar_p)`` at the clean level ``alphabar_p = 1``).  Cached by the
    hashable key ``(sampler, variant, prediction_type, wrt)``.

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


__all__ += ["compiled_gradient", "lam_powers"]
