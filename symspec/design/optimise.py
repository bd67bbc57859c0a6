"""Spectral schedule design: the noise levels whose output spectrum is closest to the data's.

For a sampler, a data spectrum ``lam`` and ``N`` steps, :func:`design_schedule` chooses the
``N + 1`` levels ``v_0 (noisiest) .. v_N (final)`` that minimise a divergence
(:func:`symspec.divergence`) between ``lam`` and the sampler's output spectrum
``P = H**2 V + S``.  The method:

*Exact gradients.*  The objective is a function of the output spectrum
``P = T_0**2 V + S_00`` of one forward run; its gradient in every level comes from the
run's exact adjoint, :func:`symspec.numeric.core.vjp`, with the cotangents
``J'(P)`` for ``S_00`` and ``2 V T_0 J'(P)`` for ``T_0``.  See :func:`objective`.

*Parameterisation.*  Levels are placed in log-SNR ``u = log(alphabar / (1 - alphabar))
= -2 log sigma``.  The ``m`` free levels are ``u_j = a + (b - a) (d_0 + ... + d_j)`` with
``m + 1`` increments ``d = f + (1 - (m + 1) f) softmax(theta, 0)`` (``f`` a tiny floor that
keeps levels distinct in floating point), so they are strictly increasing and inside
``(a, b)`` for every ``theta``: ``a`` is the fixed first level or the lower end of
``level_range``, ``b`` its upper end (or the final level, if lower).  In VE space the
default initial variance ``sigma_0**2 + 1`` moves with ``sigma_0``, and its derivative is
included.

*Search.*  L-BFGS-B on ``theta`` (boxed to ``|theta| <= 12``, so that optima where two
levels merge, which multistep solvers can prefer, are reached at a bound) from several
starting schedules (uniform log-SNR and the log-SNR shapes of diffusers' cosine and linear
training schedules), restarted after a failed line search; the best result is returned.

>>> import numpy as np, symspec
>>> psd = symspec.spectra.power_law((8, 8))
>>> s = design_schedule(symspec.DDIM, psd, 3)
>>> s.steps, s.meta["converged"], bool(s.meta["objective"] < 0.15 * psd.sum())
(3, True, True)
>>> s.meta["start_rule"], bool(s.meta["initial_kl"] <= 0.01 + 1e-12)
('honest', True)
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize
from scipy.special import expit, softmax

from .._checks import Space, check_space, check_type, number, validate_psd
from ..models import Empirical, GaussianMixture
from ..numeric.core import TAPE_BYTES, one_blas_thread, run, tape_block, vjp
from ..numeric.response import compress
from ..schedules import (
    BETA_SCHEDULES,
    SPACINGS,
    Schedule,
    diffusers_schedule,
    inference_timesteps,
    training_alphas_cumprod,
)
from ..symbolic.denoiser import PredictionType
from ..symbolic.engine import Sampler, make_level
from .divergences import DIVERGENCES, divergence_grad
from .divergences import divergence as _divergence

__all__ = ["design_schedule", "design_schedules", "objective", "baseline_schedules", "initial_kl",
           "DesignWarning",
           "LOGSNR_RANGE", "STARTS"]

#: Default range of the free levels in log-SNR: alpha-bar in [3.1e-7, 1 - 3.1e-7], sigma in
#: [5.5e-4, 1808].
LOGSNR_RANGE = (-15.0, 15.0)
#: Starting schedules of the search (their log-SNR shapes).
STARTS = ("uniform_logsnr", "cosine", "linear")
#: Iterations every start shape gets before only the best one goes on.
_SCREEN = 15
#: Smallest total gap between consecutive free levels, as a fraction of their log-SNR range.
_MIN_GAP = 1e-6
#: Bound on the free parameters: step-size ratios up to exp(2 * _THETA_MAX).  Optima where
#: two levels merge (multistep solvers can prefer them) then lie on a box bound, where
#: L-BFGS-B converges, instead of at infinity, where the gradient vanishes.
_THETA_MAX = 12.0


class DesignWarning(UserWarning):
    """The optimiser stopped without meeting its convergence test."""


# -- levels and log-SNR ------------------------------------------------------------------
def _logsnr(value: float, space: str) -> float:
    if space == "vp":
        return math.log(value) - math.log1p(-value)
    return -2.0 * math.log(value)


def _from_logsnr(u: np.ndarray, space: str) -> tuple[np.ndarray, np.ndarray]:
    """Levels at log-SNR ``u`` and their derivative ``dv/du``."""
    if space == "vp":
        v = expit(u)
        return v, v * expit(-u)
    v = np.exp(-0.5 * u)
    return v, -0.5 * v


def _value_and_grad(sampler: Sampler, sched: Schedule, lam: np.ndarray, w, divergence: str,
                    prediction_type: str, free: tuple[np.ndarray, np.ndarray]):
    """Objective and its gradients in ``sched.start``, ``sched.end`` (0 where the masks
    ``free`` are not set) and ``init_var``, from forward runs and their adjoint
    (:mod:`symspec.numeric.core`).

    The divergence is a sum over modes, so the modes go in blocks, each run forward with its
    tape and straight back: memory is the PSD plus one block's tape (at most
    :data:`~symspec.numeric.core.TAPE_BYTES`, and at most 4x the PSD beyond 4 MB), for any
    sampler and step count.
    """
    n, V = sched.steps, sched.init_var
    budget = min(TAPE_BYTES, max(4 * 2**20, 4 * lam.nbytes))
    block = tape_block(sampler, sched, budget)
    J = gV = 0.0
    gs, ge = np.zeros(n), np.zeros(n)
    for lo in range(0, lam.size, block):
        sl = slice(lo, lo + block)
        part, wp = lam[sl], None if w is None else w[sl]
        fw = run(sampler, sched, part, prediction_type=prediction_type, tape=True)
        T = fw.transfer
        P = T * T * V + fw.noise
        if not np.all(np.isfinite(P)):
            raise ValueError("the output spectrum is not finite; check the schedule and psd "
                             "ranges")
        if np.any((P == 0) & (part > 0) & (True if wp is None else wp > 0)):
            raise ValueError("the output spectrum underflows to 0 in modes where psd > 0 "
                             f"(the smallest psd value is {part[part > 0].min():.3g}): scale "
                             "the psd up (every divergence here is scale-covariant) or give "
                             "those modes weight 0")
        J += _divergence(part, P, divergence, wp)
        pbar = divergence_grad(part, P, divergence, wp)
        a, b = vjp(sampler, sched, part, pbar, 2 * V * T * pbar, free,
                   prediction_type=prediction_type, tape=fw.tape)
        gs, ge, gV = gs + a, ge + b, gV + float(np.sum(pbar * T * T))
    return J, gs, ge, gV


def _grid_gradient(gs: np.ndarray, ge: np.ndarray) -> np.ndarray:
    """The gradient in the grid of a chained schedule from those in its starts and ends."""
    return np.append(gs, 0.0) + np.append(0.0, ge)


def _check_kind(kind: str) -> None:
    if kind not in DIVERGENCES:
        raise ValueError(f"divergence must be one of {tuple(DIVERGENCES)}, got {kind!r}")


def _check_psd(psd, kind: str, weights):
    lam = validate_psd(psd).ravel()
    if not np.any(lam > 0):
        raise ValueError("psd has no positive entry: there is no spectrum to match")
    w = None if weights is None else np.broadcast_to(
        validate_psd(weights, "weights"), np.shape(psd)).ravel()
    if kind != "w2" and np.any((lam == 0) & (True if w is None else w > 0)):
        raise ValueError(f"divergence {kind!r} needs psd > 0 in every (weighted) mode; "
                         "use 'w2' or weights of 0 there")
    return lam, w


def _compressed(lam: np.ndarray, w):
    """Distinct variances and their total weights: every divergence is a weighted sum over
    modes of a function of the mode's variance and output, so this is exact
    (:func:`symspec.numeric.response.compress`)."""
    u, inv = compress(lam)
    if inv is None:
        return lam, w
    return u, np.bincount(inv, weights=None if w is None else w, minlength=u.size).astype(float)


def objective(sampler: Sampler, schedule: Schedule, psd, divergence: str = "w2", *,
              weights=None, prediction_type: PredictionType = "epsilon", gradient: bool = False):
    """The divergence between ``psd`` and the output spectrum of ``sampler`` on ``schedule``.

    With ``gradient=True`` (a chained schedule, levels in the sampler's space) also return
    the exact derivatives with respect to the ``N`` starting levels ``schedule.start`` (the
    final level is held fixed: the map is often not differentiable at the clean level) and
    with respect to ``schedule.init_var``.

    Returns
    -------
    float, or (float, ndarray of shape (N,), float)

    Examples
    --------
    >>> import numpy as np, symspec
    >>> s = symspec.Schedule.from_alpha_bar([0.05, 0.5, 0.9, 1.0])
    >>> J, g, gv = objective(symspec.DDIM, s, [0.1, 1.0, 4.0], gradient=True)
    >>> h = 1e-6
    >>> up = objective(symspec.DDIM, symspec.Schedule.from_alpha_bar([0.05, 0.5 + h, 0.9, 1]),
    ...                [0.1, 1.0, 4.0])
    >>> dn = objective(symspec.DDIM, symspec.Schedule.from_alpha_bar([0.05, 0.5 - h, 0.9, 1]),
    ...                [0.1, 1.0, 4.0])
    >>> bool(np.isclose(g[1], (up - dn) / (2 * h), rtol=1e-6))
    True
    """
    check_type(sampler, Sampler, "sampler")
    check_type(schedule, Schedule, "schedule")
    _check_kind(divergence)
    lam, w = _compressed(*_check_psd(psd, divergence, weights))
    sched = schedule.to_space(sampler.space)
    if not gradient:
        fw = run(sampler, sched, lam, prediction_type=prediction_type)
        T = fw.transfer
        return _divergence(lam, T * T * sched.init_var + fw.noise, divergence, w)
    if not sched.chained:
        raise ValueError("gradient=True needs a chained schedule (each step starting where "
                         "the previous one ended)")
    if sched.space == "vp" and sched.start[0] == 0:
        raise ValueError("the gradient at alpha-bar 0 (zero terminal SNR) does not exist; "
                         "hold that level fixed")
    free = np.arange(sched.steps + 1) < sched.steps
    J, gs, ge, gv = _value_and_grad(sampler, sched, lam, w, divergence, prediction_type,
                                       (free[:-1], free[1:]))
    return J, _grid_gradient(gs, ge)[:-1], gv



# -- parameterisation --------------------------------------------------------------------
@dataclass(frozen=True)
class _Param:
    """Free parameters ``theta`` <-> strictly increasing grids inside the constraints."""

    space: str
    steps: int
    lo: float                  # lower end of the free levels, log-SNR
    hi: float                  # upper end, log-SNR
    first: float | None        # fixed first level (space units), or None if free
    final: float               # final level (space units)
    init_var: float | None     # fixed initial variance, or None: the space's default

    @property
    def m(self) -> int:
        return self.steps - (self.first is not None)

    @property
    def floor(self) -> float:
        """Smallest increment, as a fraction of ``hi - lo``: keeps levels distinct in float."""
        return _MIN_GAP / (self.m + 1)

    def grid(self, theta: np.ndarray):
        s = softmax(np.append(theta, 0.0))
        inc = self.floor + (1 - (self.m + 1) * self.floor) * s
        u = self.lo + (self.hi - self.lo) * np.cumsum(inc)[:self.m]
        v, dv = _from_logsnr(u, self.space)
        head = [] if self.first is None else [self.first]
        return np.concatenate([head, v, [self.final]]), s, dv

    def init_variance(self, grid) -> float:
        if self.init_var is not None:
            return self.init_var
        return 1.0 if self.space == "vp" else float(grid[0]) ** 2 + 1.0

    def chain(self, grad_grid, grad_v0_init, s, dv) -> np.ndarray:
        """``dJ/dtheta`` from ``dJ/dgrid`` (``grad_v0_init``: extra term on level 0)."""
        g = grad_grid.copy()
        g[0] += grad_v0_init
        gv = g[self.first is not None:][:self.m]
        gc = (self.hi - self.lo) * (1 - (self.m + 1) * self.floor) * gv * dv
        gs = np.append(np.cumsum(gc[::-1])[::-1], 0.0)
        gz = s * (gs - np.dot(s, gs))
        return gz[:-1]

    def theta_for(self, u: np.ndarray) -> np.ndarray:
        """Parameters placing the free levels at log-SNR ``u`` (clipped inside the range)."""
        d = np.diff(np.concatenate([[self.lo], np.clip(u, self.lo, self.hi), [self.hi]]))
        d = np.maximum(d / (self.hi - self.lo), 2 * self.floor)
        s = d / d.sum() - self.floor
        return np.log(s[:-1]) - np.log(s[-1])


def _start_shape(name: str, x: np.ndarray) -> np.ndarray:
    """A start schedule's log-SNR at fractions ``x`` of the way from noisiest to cleanest,
    normalised to [0, 1]."""
    if name == "uniform_logsnr":
        return x
    beta = {"cosine": "squaredcos_cap_v2", "linear": "linear"}[name]
    ab = training_alphas_cumprod(1000, beta)
    u = np.log(ab) - np.log1p(-ab)
    f = (u - u[-1]) / (u[0] - u[-1])
    return np.interp((1 - x) * 999, np.arange(1000), f)


def _constraints(sampler, steps, space, start, end, level_range, zero_terminal_snr,
                 init_var) -> _Param:
    if not isinstance(steps, int | np.integer) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    space = sampler.space if space is None else space
    if space not in ("vp", "ve"):
        raise ValueError(f"space must be 'vp' or 've', got {space!r}")

    def to_sampler(value, name):  # a level given in `space` units -> the sampler's space
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        ok = 0 < value < 1 if space == "vp" else value > 0
        if not ok:
            raise ValueError(f"{name}={value!r} is not a noisy level in {space!r} units "
                             f"({'alpha-bar in (0, 1)' if space == 'vp' else 'sigma > 0'})")
        if space == sampler.space:
            return float(value)
        return 1 / (1 + value**2) if space == "ve" else math.sqrt((1 - value) / value)

    lo, hi = LOGSNR_RANGE
    if level_range is not None:
        try:
            a, b = (float(x) for x in level_range)
        except (TypeError, ValueError):
            raise ValueError(f"level_range must be a pair (min, max), got {level_range!r}") \
                from None
        if not a < b:
            raise ValueError(f"level_range must be (min, max) with min < max, got {level_range!r}")
        ua, ub = (_logsnr(to_sampler(x, "level_range"), sampler.space) for x in (a, b))
        lo, hi = min(ua, ub), max(ua, ub)
    final = 1.0 if sampler.space == "vp" else 0.0
    if end is not None:
        final = to_sampler(end, "end")
        hi = min(hi, _logsnr(final, sampler.space))
    first = None
    if zero_terminal_snr:
        if start is not None:
            raise ValueError("give start or zero_terminal_snr=True, not both")
        if sampler.space != "vp":
            raise ValueError(f"zero_terminal_snr needs a VP sampler; {sampler.name!r} runs in "
                             "VE space, where alpha-bar 0 is an infinite sigma")
        first = 0.0
    elif start is not None:
        first = to_sampler(start, "start")
        u0 = _logsnr(first, sampler.space)
        if not u0 < hi:
            raise ValueError(f"infeasible constraints: the first level (log-SNR {u0:.4g}) must "
                             f"be noisier than the upper end of the free levels (log-SNR "
                             f"{hi:.4g}); check start, end and level_range")
        lo = max(lo, u0)
    if not lo < hi:
        raise ValueError(f"infeasible constraints: the free levels have an empty range (log-SNR "
                         f"{lo:.4g} to {hi:.4g}); check start, end and level_range")
    if init_var is not None and (not isinstance(init_var, int | float)
                                 or not math.isfinite(init_var) or init_var < 0):
        raise ValueError(f"init_var must be a finite number >= 0, got {init_var!r}")
    return _Param(sampler.space, int(steps), lo, hi, first, final,
                  None if init_var is None else float(init_var))


def _lbfgsb(fun, theta0: np.ndarray, maxiter: int):
    """L-BFGS-B inside the box ``|theta| <= _THETA_MAX``, restarted (with a fresh curvature
    memory) after a failed line search, which rounding can cause near an optimum."""
    theta, nit, nfev = theta0, 0, 0
    for _ in range(4):
        res = minimize(fun, theta, jac=True, method="L-BFGS-B",
                       bounds=[(-_THETA_MAX, _THETA_MAX)] * theta.size,
                       options={"maxiter": maxiter - nit, "ftol": 1e-10, "gtol": 1e-9})
        theta, nit, nfev = res.x, nit + int(res.nit), nfev + int(res.nfev)
        if res.success or not str(res.message).startswith("ABNORMAL") or nit >= maxiter:
            break
    return float(res.fun), theta, nit, nfev, bool(res.success), str(res.message)


def initial_kl(space: str, level: float, psd: ArrayLike, init_var: float | None = None) -> float:
    """Total KL, over all modes, from the initial latent ``N(0, init_var)`` to the data's true
    noisy marginal ``N(0, D(lam))`` at ``level`` (alpha-bar in VP, sigma in VE).

    ``D = alphabar lam + 1 - alphabar`` (VP) or ``lam + sigma**2`` (VE); ``init_var``
    defaults to 1 (VP) or ``sigma**2 + 1`` (VE), as :class:`~symspec.Schedule`.  A design
    whose start has a small value here gives its first step an input that a trained
    network has seen in training; a large value means the design relies on the exact
    denoiser off the data's distribution.

    >>> round(initial_kl("vp", 0.25, [4.0]), 6)  # D = 1.75: 0.5 (1/1.75 - 1 + log 1.75)
    0.065522
    """
    check_space(space)
    lam = validate_psd(psd).ravel()
    lv = make_level(number(level, "level", low=0, low_open=space == "ve"), space)
    D = lv.marginal(lam)
    V = (1.0 if space == "vp" else lv.sigma**2 + 1.0) if init_var is None else init_var
    return float(DIVERGENCES["kl_reverse"].value(D, np.full_like(D, V)).sum())


def _honest_logsnr(lam: np.ndarray, par: _Param, tol: float) -> float:
    """The cleanest first level (log-SNR) whose :func:`initial_kl` is at most ``tol``."""
    def kl(u):
        v = float(_from_logsnr(np.array([u]), par.space)[0][0])
        return initial_kl(par.space, v, lam, par.init_var)

    lo, hi = par.lo, par.hi
    if kl(lo) > tol:
        raise ValueError(f"no honest start: even the noisiest allowed level (log-SNR {lo:.4g}) "
                         f"has an initial-latent KL of {kl(lo):.3g} > kl_tolerance={tol:g}; "
                         "widen level_range, raise kl_tolerance, or use start='free'")
    if kl(hi) <= tol:
        return hi
    for _ in range(60):  # bisection: the KL grows monotonically towards the data
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if kl(mid) <= tol else (lo, mid)
    return lo


def _search(sampler, par: _Param, lam, w, divergence, prediction_type, starts, maxiter,
            screen_only: bool = False, progress=None):
    """Chained design from each start shape: ``{name: (J, theta, nit, nfev, ok, msg)}``;
    every start gets a few screening iterations, then the best one runs to convergence
    (not with ``screen_only``)."""
    evaluate = _chained(sampler, par, lam, w, divergence, prediction_type)
    x = (np.arange(par.m) + 1.0) / (par.m + 1)
    results, funs = {}, {}
    for i, name in enumerate(starts, 1):  # screening: a few iterations from every start
        if progress:
            progress(f"designing: start {i}/{len(starts)} ({name}), screening")
        theta0 = par.theta_for(par.lo + (par.hi - par.lo) * _start_shape(name, x))
        if par.m == 0:
            results[name] = (evaluate(theta0)[0], theta0, 0, 1, True, "no free level")
            continue
        scale = max(evaluate(theta0)[0], 1e-300)

        def fun(theta, scale=scale):
            J, g = evaluate(theta)
            return J / scale, g / scale

        funs[name] = fun, scale
        results[name] = _scaled(_lbfgsb(fun, theta0, min(_SCREEN, maxiter)), scale)
    if funs and not screen_only:  # then only the best start runs to convergence
        best = min(funs, key=lambda k: (results[k][0], starts.index(k)))
        if progress:
            progress(f"designing: start {best} to convergence")
        fun, scale = funs[best]
        _, theta, nit, nfev, _, _ = results[best]
        if nit >= _SCREEN and maxiter > nit:
            f, theta, nit2, nfev2, ok, msg = _lbfgsb(fun, theta, maxiter - nit)
            results[best] = (f * scale, theta, nit + nit2, nfev + nfev2, ok, msg)
    return results


def _chained(sampler, par: _Param, lam, w, divergence, prediction_type):
    """The objective of chained grids and its gradient in the parameters ``theta``."""
    free = np.zeros(par.steps + 1, dtype=bool)
    free[par.first is not None:par.steps] = True

    def evaluate(theta):
        grid, s, dv = par.grid(theta)
        V = par.init_variance(grid)
        sched = Schedule(grid[:-1], grid[1:], par.space, V)
        J, gs, ge, gV = _value_and_grad(sampler, sched, lam, w, divergence, prediction_type,
                                        (free[:-1], free[1:]))
        dV0 = gV * 2 * grid[0] if par.init_var is None and par.space == "ve" else 0.0
        return J, par.chain(_grid_gradient(gs, ge), dV0, s, dv)

    return evaluate


def _honest_search(sampler, par: _Param, full, lam, w, divergence, prediction_type, starts,
                   maxiter, tol, progress=None):
    """The design with the honest start: the first level at most as clean as
    :func:`_honest_logsnr`.  The constraint is one bound on the first level.  If a short
    screening of the free search already starts too clean, the design pinned at the bound
    is made first, and kept unless the objective falls as the first level gets noisier (the
    first-order condition); otherwise, or then, the free design is made and kept if it
    satisfies the bound."""
    search = functools.partial(_search, progress=progress)
    u_max = _honest_logsnr(full, par, tol)
    level = float(_from_logsnr(np.array([u_max]), par.space)[0][0])
    pinned = replace(par, first=level, lo=max(par.lo, u_max))

    def first_logsnr(p, res):
        return _logsnr(float(p.grid(min(res.values(), key=lambda r: r[0])[1])[0][0]), p.space)

    screen = search(sampler, par, lam, w, divergence, prediction_type, starts, maxiter, True)
    if first_logsnr(par, screen) <= u_max:  # it starts noisy enough: the bound may not bind
        free = search(sampler, par, lam, w, divergence, prediction_type, starts, maxiter)
        if first_logsnr(par, free) <= u_max + 1e-12:
            return {**free, "_par": par}
    res = search(sampler, pinned, lam, w, divergence, prediction_type, starts, maxiter)
    grid = pinned.grid(min(res.values(), key=lambda r: r[0])[1])[0]
    sched = Schedule(grid[:-1], grid[1:], par.space, pinned.init_variance(grid))
    first = np.arange(par.steps + 1) == 0
    _, gs, _, gV = _value_and_grad(sampler, sched, lam, w, divergence, prediction_type,
                                      (first[:-1], first[1:]))
    dv = gs[0] + (gV * 2 * grid[0] if par.init_var is None and par.space == "ve" else 0)
    if dv * _from_logsnr(np.array([u_max]), par.space)[1][0] <= 0:  # dJ/d(log-SNR) <= 0:
        return {**res, "_par": pinned}  # it would rather start cleaner; the bound is active
    free = search(sampler, par, lam, w, divergence, prediction_type, starts, maxiter)
    if first_logsnr(par, free) <= u_max + 1e-12:
        return {**free, "_par": par}
    return {**res, "_par": pinned}


def _scaled(res, scale):
    f, *rest = res
    return (f * scale, *rest)


@dataclass(frozen=True)
class _Shift:
    """Non-chained grids: the chained grid ``v`` (log-SNR ``u``) gives every step's end;
    step ``i >= 1`` starts at log-SNR ``us_i = us_{i-1} + (b_i - us_{i-1}) expit(phi_i + c_i)``
    with ``b_i = min(u_{i+1}, hi)``, so starts increase strictly and each lies below its own
    end; ``c`` places ``phi = 0`` on the chained grid it was made from."""

    par: _Param
    c: np.ndarray

    @classmethod
    def at(cls, par: _Param, grid: np.ndarray) -> _Shift:
        u = _logsnr_array(grid, par.space)
        c = np.zeros(par.steps - 1)
        prev = u[0]
        for i in range(1, par.steps):
            b = min(u[i + 1], par.hi)
            frac = np.clip((u[i] - prev) / (b - prev), 1e-12, 1 - 1e-12)
            c[i - 1] = math.log(frac) - math.log1p(-frac)
            prev = u[i]
        return cls(par, c)

    def starts(self, u: np.ndarray, phi: np.ndarray):
        n = self.par.steps
        us, z, b = np.empty(n), np.zeros(n), np.zeros(n)
        us[0] = u[0]
        for i in range(1, n):
            b[i] = min(u[i + 1], self.par.hi)
            z[i] = expit(phi[i - 1] + self.c[i - 1])
            us[i] = us[i - 1] + (b[i] - us[i - 1]) * z[i]
        return us, z, b

    def chain(self, u, us, z, b, bar_us):
        """``(dJ/du, dJ/dphi)`` from ``dJ/dus`` (log-SNR units)."""
        n = self.par.steps
        bar_u, bar_phi, acc = np.zeros(n + 1), np.zeros(n - 1), bar_us.copy()
        for i in range(n - 1, 0, -1):
            bar_phi[i - 1] = acc[i] * (b[i] - us[i - 1]) * z[i] * (1 - z[i])
            acc[i - 1] += acc[i] * (1 - z[i])
            if u[i + 1] < self.par.hi:
                bar_u[i + 1] += acc[i] * z[i]
        bar_u[0] += acc[0]
        return bar_u, bar_phi


def _logsnr_array(v: np.ndarray, space: str) -> np.ndarray:
    with np.errstate(divide="ignore"):  # the clean level is +inf
        return np.log(v) - np.log1p(-v) if space == "vp" else -2.0 * np.log(v)


def _unchained(sampler, par: _Param, theta0, lam, w, divergence, prediction_type):
    """The objective of non-chained grids and its gradient in ``x = (theta, phi)``, and the
    map from ``x`` to the schedule, around the chained design ``theta0``."""
    grid0 = par.grid(theta0)[0]
    shift = _Shift.at(par, grid0)
    nt = theta0.size
    free_s = np.ones(par.steps, dtype=bool)
    free_s[0] = par.first is None
    free_e = np.arange(par.steps) < par.steps - 1

    def build(x):
        grid, s, dv = par.grid(x[:nt])
        u = _logsnr_array(grid, par.space)
        us, z, b = shift.starts(u, x[nt:])
        start, dstart = _from_logsnr(us, par.space)
        start[0] = grid[0]  # exactly the first level (fixed or free)
        V = par.init_variance(grid)
        return grid, s, dv, u, us, z, b, start, dstart, V

    def fun(x):
        grid, s, dv, u, us, z, b, start, dstart, V = build(x)
        sched = Schedule(start, grid[1:], par.space, V)
        J, gs, ge, gV = _value_and_grad(sampler, sched, lam, w, divergence, prediction_type,
                                           (free_s, free_e))
        bar_us = gs * dstart
        if par.init_var is None and par.space == "ve":
            bar_us[0] += gV * 2 * start[0] * dstart[0]
        bar_u, bar_phi = shift.chain(u, us, z, b, bar_us)
        _, dv_all = _from_logsnr(np.where(np.isfinite(u), u, 0.0), par.space)
        g_grid = np.append(0.0, ge) + np.where(np.isfinite(u), bar_u / dv_all, 0.0)
        return J, np.append(par.chain(g_grid, 0.0, s, dv), bar_phi)

    def schedule(x):
        grid, _, _, _, _, _, _, start, _, V = build(x)
        return Schedule(start, grid[1:], par.space, V)

    return fun, schedule


def _refine_unchained(sampler, par: _Param, theta0, lam, w, divergence, prediction_type,
                      maxiter):
    """Design starts and ends of every step (2N - 1 free parameters, fewer with a fixed
    first level), from the chained design ``theta0``.  Returns ``(J, schedule, nit, ok,
    msg)``."""
    fun, schedule = _unchained(sampler, par, theta0, lam, w, divergence, prediction_type)
    x0 = np.append(theta0, np.zeros(par.steps - 1))
    scale = max(fun(x0)[0], 1e-300)

    def scaled(x):
        J, g = fun(x)
        return J / scale, g / scale

    f, x, nit, _, ok, msg = _lbfgsb(scaled, x0, maxiter)
    return f * scale, schedule(x), nit, ok, msg


def _options(sampler, steps, space, start, kl_tolerance, end, level_range, zero_terminal_snr,
             init_var, chained, starts, maxiter) -> tuple[_Param, str, float]:
    """Check the options of :func:`design_schedule`: ``(constraints, start rule, KL
    tolerance)``."""
    if start is None:
        start = "honest"
    if isinstance(start, str) and start not in ("honest", "free"):
        raise ValueError(f"start must be a level, 'honest' or 'free', got {start!r}")
    tol = number(kl_tolerance, "kl_tolerance", low=0, low_open=True)
    if not isinstance(chained, bool):
        raise TypeError(f"chained must be True or False, got {chained!r}")
    rule: str = start if isinstance(start, str) else "fixed"
    if zero_terminal_snr and rule in ("honest", "free"):
        rule = "zero terminal SNR"
    par = _constraints(sampler, steps, space, None if isinstance(start, str) else start, end,
                       level_range, zero_terminal_snr, init_var)
    bad = [s for s in starts if s not in STARTS]
    if bad or not starts:
        raise ValueError(f"starts must be a non-empty tuple from {STARTS}, got {starts!r}")
    if isinstance(maxiter, bool) or not isinstance(maxiter, int) or maxiter < 1:
        raise ValueError(f"maxiter must be a positive int, got {maxiter!r}")
    if not chained and par.steps < 2:
        raise ValueError("chained=False needs steps >= 2 (one step has nothing to shift)")
    return par, rule, tol


def _meta(sampler, sched, J, best, results, nit, nfev, ok, msg, divergence, prediction_type,
          rule, full) -> dict:
    """The ``meta`` of a designed schedule (see :func:`design_schedule`)."""
    return {"objective": float(J), "divergence": divergence, "iterations": nit,
            "evaluations": nfev, "converged": ok, "message": msg, "start": best,
            "starts": {k: float(v[0]) for k, v in results.items()}, "sampler": sampler.name,
            "options": {k: v if isinstance(v, int | float | str | bool) else repr(v)
                        for k, v in sampler.options}, "prediction_type": prediction_type,
            "start_rule": rule, "chained": sched.chained,
            "initial_kl": initial_kl(sched.space, float(sched.start[0]), full, sched.init_var)}


def design_schedule(sampler: Sampler, psd: ArrayLike, steps: int, divergence: str = "w2", *,
                    weights: ArrayLike | None = None, space: Space | None = None,
                    start: float | Literal["honest", "free"] | None = "honest",
                    kl_tolerance: float = 0.01, end: float | None = None,
                    level_range: tuple[float, float] | None = None,
                    zero_terminal_snr: bool = False, init_var: float | None = None,
                    chained: bool = True, prediction_type: PredictionType = "epsilon",
                    starts: tuple[str, ...] = STARTS, maxiter: int | None = None,
                    terms: Mapping[str, float] | None = None, samples: int = 1000,
                    seed: int = 0,
                    progress: Callable[[str], None] | None = None) -> Schedule:
    """The ``steps``-step schedule minimising ``divergence`` between ``psd`` and the output.

    Given a data model (:mod:`symspec.models`) in place of ``psd``, the schedule is
    designed for the model itself, by simulation:
    :func:`symspec.design.simulation.design_for_model` (``terms``, ``samples``, ``seed``,
    ``level_range``, ``maxiter`` and ``progress`` apply; the other options are the spectral
    design's).

    Parameters
    ----------
    sampler : Sampler
        Any sampler (built-in, user-defined, multistep).
    psd : array_like, GaussianMixture or Empirical
        Per-mode data variances (1-3 dimensional grid), at least one positive; or a data
        model.
    steps : int
        Number of steps ``N >= 1``.
    divergence : {"w2", "kl", "kl_reverse"}
        The objective, :func:`symspec.divergence` (``weights`` passed on).
    space : {"vp", "ve"}, optional
        Units of ``start``, ``end`` and ``level_range``: alpha-bar or sigma (default: the
        sampler's space).
    start : float, "honest" or "free"
        The first (noisiest) level.  ``"honest"`` (default): free, but its initial latent
        must be close to the data's noisy marginal there, :func:`initial_kl` at most
        ``kl_tolerance`` nats in total.  The exact denoiser is linear everywhere, and a
        design that starts from a cleaner level can cancel its discretisation error with
        the mismatched latent; a trained network, fed a latent unlike anything it saw in
        training, cannot.  ``"free"`` lifts the constraint: the gain then depends on the
        denoiser being exact off the data's distribution (state this when you report it).
        A number pins the level; ``None`` is the default.
    kl_tolerance : float
        The tolerance of ``start="honest"`` in nats (default 0.01).
    end : float, optional
        Fix the final level (default: clean, alpha-bar 1 / sigma 0).
    level_range : (float, float), optional
        ``(min, max)`` of the free (not fixed) levels (default :data:`LOGSNR_RANGE` in
        log-SNR).  Use :func:`symspec.diffusers.level_range` to stay inside a diffusers
        training schedule.
    zero_terminal_snr : bool
        Start from alpha-bar 0 (VP samplers; the initial latent is then exactly the data's
        noisy marginal, so it is honest).
    init_var : float, optional
        Variance of the initial latent (default: 1 in VP, ``sigma_0**2 + 1`` in VE, which then
        moves with ``sigma_0``).
    chained : bool
        ``False`` designs both levels of every step: the level the sampler tells the
        denoiser it starts from, and the level it steps to (DDIMScheduler's stride rule is
        such a grid).  The chained design is the warm start.  Under the Gaussian model this
        can be far better; it works by feeding the denoiser states far from the noisy
        marginal of the level it is told, which only a linear (exact Gaussian) denoiser
        answers well: on a Gaussian mixture fitted to photo patches it made DDIM at 10
        steps much worse than the chained design (book, *When design helps*).  Do not hand
        it to a trained network without measuring.
    prediction_type : str
        Passed to the derivation (the map does not depend on it for exact models).
    starts : tuple of str
        Starting schedules, from :data:`STARTS`.
    maxiter : int, optional
        L-BFGS-B iteration limit per start (default 2000; with a model 40).
    terms : mapping, optional
        With a model only: the weights of the objective's terms
        (:func:`~symspec.design.simulation.design_for_model`).
    samples, seed : int
        With a model only: simulated samples per evaluation, and their seed.
    progress : callable, optional
        Called with a one-line message as the search goes on (``"designing: start 2/3
        (cosine), screening"``): the command line prints them on stderr.

    Returns
    -------
    Schedule
        In the sampler's space.  ``meta`` holds ``objective``, ``divergence``,
        ``iterations`` and ``evaluations`` (of the best start), ``converged``, ``message``,
        ``start`` (the best start shape), ``starts`` (the objective reached from each),
        ``start_rule`` and ``initial_kl``, and ``chained``.  If the best run did not
        converge a :class:`DesignWarning` is issued and ``meta["converged"]`` is ``False``.

    Examples
    --------
    >>> import symspec
    >>> psd = symspec.spectra.power_law((8, 8))
    >>> s = design_schedule(symspec.DDPM, psd, 4, start=0.01)
    >>> float(s.alpha_bar[0]), float(s.alpha_bar[-1]), s.meta["converged"]
    (0.01, 1.0, True)
    >>> h = design_schedule(symspec.DDPM, psd, 4)  # the default: an honest start
    >>> bool(h.meta["initial_kl"] <= 0.01 + 1e-9)
    True
    """
    check_type(sampler, Sampler, "sampler")
    if isinstance(psd, GaussianMixture | Empirical):
        from .simulation import design_for_model

        given = {"divergence": (divergence, "w2"), "weights": (weights, None),
                 "space": (space, None), "end": (end, None), "init_var": (init_var, None),
                 "zero_terminal_snr": (zero_terminal_snr, False), "chained": (chained, True),
                 "starts": (starts, STARTS), "kl_tolerance": (kl_tolerance, 0.01)}
        bad = [k for k, (v, default) in given.items() if v != default]
        if start not in ("honest", None):
            bad.insert(0, "start")
        if bad:
            raise ValueError(f"{', '.join(bad)} cannot be set with a data model: the model "
                             "design keeps the spectral design's honest start and minimises "
                             "its terms (set them with terms=)")
        return design_for_model(sampler, psd, steps, terms=terms, n=samples, seed=seed,
                                level_range=level_range, prediction_type=prediction_type,
                                maxiter=40 if maxiter is None else maxiter,
                                progress=progress)
    for name, v, default in (("terms", terms, None), ("samples", samples, 1000),
                             ("seed", seed, 0)):
        if v != default:
            raise ValueError(f"{name} applies to a design for a data model (psd = a "
                             "GaussianMixture or Empirical), not to a spectrum")
    maxiter = 2000 if maxiter is None else maxiter
    _check_kind(divergence)
    full, w = _check_psd(psd, divergence, weights)
    lam, w = _compressed(full, w)
    par, rule, tol = _options(sampler, steps, space, start, kl_tolerance, end, level_range,
                              zero_terminal_snr, init_var, chained, starts, maxiter)
    with one_blas_thread():
        results = _honest_search(sampler, par, full, lam, w, divergence, prediction_type,
                                 starts, maxiter, tol, progress) if rule == "honest" else \
            _search(sampler, par, lam, w, divergence, prediction_type, starts, maxiter,
                    progress=progress)
        par = results.pop("_par", par)
    best = min(results, key=lambda k: (results[k][0], starts.index(k)))
    J, theta, nit, nfev, ok, msg = results[best]
    grid = par.grid(theta)[0]
    V = par.init_variance(grid)
    make = Schedule.from_alpha_bar if par.space == "vp" else Schedule.from_sigmas
    sched = make(grid, V)
    if not chained:
        if progress:
            progress("designing: both levels of every step (non-chained)")
        if rule == "honest" and par.first is None:  # keep the (honest) first level it has
            u = _logsnr_array(grid, par.space)
            par = replace(par, first=float(grid[0]), lo=max(par.lo, float(u[0])))
            theta = par.theta_for(u[1:-1])
        J2, sched2, nit2, ok, msg = _refine_unchained(sampler, par, theta, lam, w, divergence,
                                                      prediction_type, maxiter)
        if J2 <= J:
            J, sched, nit = J2, sched2, nit + nit2
    meta = _meta(sampler, sched, J, best, results, nit, nfev, ok, msg, divergence,
                 prediction_type, rule, full)
    if not ok:
        warnings.warn(f"schedule design for {sampler.name!r} with {par.steps} steps did not "
                      f"converge ({msg}); meta['converged'] is False", DesignWarning,
                      stacklevel=2)
    sched.meta.update(meta)
    return sched


def design_schedules(sampler: Sampler, psds, steps: int, divergence: str = "w2", *,
                     weights: ArrayLike | None = None, space: Space | None = None,
                     start: float | Literal["honest", "free"] | None = "honest",
                     kl_tolerance: float = 0.01, end: float | None = None,
                     level_range: tuple[float, float] | None = None,
                     zero_terminal_snr: bool = False, init_var: float | None = None,
                     chained: bool = True, prediction_type: PredictionType = "epsilon",
                     starts: tuple[str, ...] = STARTS, maxiter: int = 2000,
                     progress: Callable[[str], None] | None = None,
                     client=None) -> list[Schedule]:
    """:func:`design_schedule` for every spectrum of a stack (per class, per image, ...),
    as one vectorised run.

    All the designs run at once (:mod:`symspec.design.batch`): each round, every design
    asks for its next objective evaluation, and one forward run and one adjoint evaluate
    them all, the spectra stacked along the mode axis with one set of levels each.  The
    search of each design is that of :func:`design_schedule` for its spectrum alone (the
    same starts, honest start, screening and SciPy L-BFGS-B iterations), so the schedules
    agree with the single designs to rounding.  Memory: the spectra are evaluated in blocks
    whose tape fits in :data:`~symspec.numeric.core.TAPE_BYTES`, and a spectrum too large
    for that alone through the single design's blocked evaluation.  Every option is batched;
    only with SciPy older than 1.15, whose L-BFGS-B lacks the reverse-communication
    interface this uses, do the designs run one after the other (the same results, without
    the speed).

    Parameters
    ----------
    sampler : Sampler
        Any sampler.
    psds : array_like or sequence of array_like
        The spectra: an array whose first axis runs over them, or a sequence of arrays,
        all of one shape (1-3 dimensional grids, as ``psd`` of :func:`design_schedule`).
    steps : int
        Number of steps ``N >= 1`` (the same for every spectrum).
    divergence : {"w2", "kl", "kl_reverse"}
        The objective.
    weights : array_like, optional
        Broadcast to the stack's shape: one array for all spectra, or one per spectrum.
    space, start, kl_tolerance, end, level_range, zero_terminal_snr, init_var, chained, \
prediction_type, starts, maxiter
        As :func:`design_schedule`, the same for every spectrum.
    progress : callable, optional
        Called with ``"designing: k/B spectra done"`` as designs finish (not with a
        ``client``).
    client : dask.distributed.Client, optional
        Run the stack in chunks, one batched task per worker thread, on this client (a
        ``LocalCluster``, or a cluster by its address; the ``dask`` extra).

    Returns
    -------
    list of Schedule
        One per spectrum, in order, each with the ``meta`` of :func:`design_schedule`.

    Raises
    ------
    ValueError
        An empty stack, spectra of different shapes, a bad spectrum (named ``psds[i]``:
        NaN, negative, ...), or an error of one design (prefixed with ``psds[i]``).

    Examples
    --------
    >>> import numpy as np, symspec
    >>> psds = np.stack([symspec.spectra.power_law((8, 8), a) for a in (1.0, 2.0)])
    >>> many = design_schedules(symspec.DDIM, psds, 3)
    >>> one = design_schedule(symspec.DDIM, psds[1], 3)
    >>> [s.steps for s in many], bool(np.isclose(many[1].meta["objective"],
    ...                                          one.meta["objective"], rtol=1e-9))
    ([3, 3], True)
    """
    check_type(sampler, Sampler, "sampler")
    stack = _check_stack(psds)
    wstack = None
    if weights is not None:
        wa = np.asarray(weights)
        if wa.dtype.kind not in "iuf":
            raise ValueError(f"weights must be real numbers, got a {wa.dtype} array")
        try:
            wstack = np.broadcast_to(wa.astype(float), stack.shape)
        except ValueError:
            raise ValueError(f"weights must broadcast to the stack's shape {stack.shape}, got "
                             f"shape {wa.shape}") from None
    options = {"space": space, "start": start, "kl_tolerance": kl_tolerance, "end": end,
               "level_range": level_range, "zero_terminal_snr": zero_terminal_snr,
               "init_var": init_var, "chained": chained, "prediction_type": prediction_type,
               "starts": starts, "maxiter": maxiter}
    names = list(range(len(stack)))
    if client is None:
        return _design_stack(sampler, stack, wstack, steps, divergence, options, names,
                             progress)
    if not hasattr(client, "map") or not hasattr(client, "gather"):
        raise TypeError(f"client must be a dask.distributed Client, got {type(client).__name__}")
    threads = client.nthreads() if callable(getattr(client, "nthreads", None)) else {}
    parts = np.array_split(np.arange(len(stack)), min(len(stack),
                                                      max(1, sum(threads.values()))))
    futures = client.map(_design_stack, [sampler] * len(parts), [stack[p] for p in parts],
                         [None if wstack is None else wstack[p] for p in parts],
                         [steps] * len(parts), [divergence] * len(parts),
                         [options] * len(parts), [p.tolist() for p in parts], pure=False)
    return [s for part in client.gather(futures) for s in part]


def _check_stack(psds) -> np.ndarray:
    """``psds`` as a float64 array ``(B, *shape)``, or a ValueError naming the bad spectrum."""
    if isinstance(psds, str | bytes) or not hasattr(psds, "__iter__"):
        raise TypeError("psds must be a stack of spectra (an array whose first axis runs over "
                        f"them, or a sequence of arrays), got {type(psds).__name__}")
    if isinstance(psds, np.ndarray) and psds.ndim < 2:
        raise ValueError("psds must be a stack of spectra (an array whose first axis runs "
                         f"over them), got shape {psds.shape}")
    items = list(psds)
    if not items:
        raise ValueError("psds is empty: give at least one spectrum")
    rows = [validate_psd(p, f"psds[{i}]") for i, p in enumerate(items)]
    for i, r in enumerate(rows):
        if r.shape != rows[0].shape:
            raise ValueError(f"psds must all have one shape: psds[0] has shape "
                             f"{rows[0].shape}, psds[{i}] has {r.shape}")
    return np.stack(rows)


def _design_stack(sampler: Sampler, stack: np.ndarray, wstack, steps, divergence: str,
                  options: dict, names: list[int],
                  progress: Callable[[str], None] | None = None) -> list[Schedule]:
    """The batched designs of the rows of ``stack`` (one task of a client, or all)."""
    from . import batch

    _check_kind(divergence)
    fulls, lams, ws, counts = [], [], [], []
    for b, name in enumerate(names):
        try:
            full, w = _check_psd(stack[b], divergence, None if wstack is None else wstack[b])
        except ValueError as exc:
            raise ValueError(f"psds[{name}]: {exc}") from None
        lam, w = _compressed(full, w)
        fulls.append(full)
        lams.append(lam)
        ws.append(w)
        counts.append(_compressed(full, None)[1] if wstack is not None else w)
    o = options
    par, rule, tol = _options(sampler, steps, o["space"], o["start"], o["kl_tolerance"],
                              o["end"], o["level_range"], o["zero_terminal_snr"],
                              o["init_var"], o["chained"], o["starts"], o["maxiter"])
    if not batch.available():  # pragma: no cover - SciPy < 1.15
        return [design_schedule(sampler, stack[b], steps, divergence,
                                weights=None if wstack is None else wstack[b],
                                progress=progress, **options) for b in range(len(stack))]
    with one_blas_thread():
        done = batch.design_batch(sampler, fulls, lams, ws, counts, par, rule, tol,
                                  o["chained"], divergence, o["prediction_type"],
                                  o["starts"], o["maxiter"], names, progress)
    out = []
    for name, full, (sched, J, best, results, nit, nfev, ok, msg, _) in zip(
            names, fulls, done, strict=True):
        sched.meta.update(_meta(sampler, sched, J, best, results, nit, nfev, ok, msg,
                                divergence, o["prediction_type"], rule, full))
        if not ok:
            warnings.warn(f"schedule design of psds[{name}] for {sampler.name!r} with "
                          f"{par.steps} steps did not converge ({msg}); meta['converged'] "
                          "is False", DesignWarning, stacklevel=3)
        out.append(sched)
    return out


# -- heuristic schedules -----------------------------------------------------------------
def _karras(smin: float, smax: float, n: int, rho: float = 7.0) -> np.ndarray:
    r = np.linspace(0, 1, n) if n > 1 else np.zeros(1)
    return (smax ** (1 / rho) + r * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho


def baseline_schedules(sampler: Sampler, steps: int,
                       beta_schedule: str = "linear") -> dict[str, Schedule]:
    """Heuristic schedules for ``steps`` steps, by name, as diffusers would run them.

    - ``"{beta}/{spacing}"``: diffusers' training schedules (``linear``, ``scaled_linear``,
      ``squaredcos_cap_v2``; 1000 steps) with ``leading``/``trailing``/``linspace`` spacing;
      with the sampler's own prev-level rule (:attr:`symspec.Sampler.prev`): chained as
      DDPMScheduler and the sigma-based schedulers run them, or DDIMScheduler's stride rule
      (``prev = t - 1000 // N``) for DDIM.
    - ``"karras"``: Karras et al. (2022), ``rho = 7``, ``"exponential"``: log-uniform
      sigmas (= uniform log-SNR), both between the sigmas of training steps 0 and 999 of
      ``beta_schedule``, then 0.
    - ``"ays_sd15"``, ``"ays_sdxl"``, ``"ays_svd"`` (10 steps only): the Align-Your-Steps
      sigma lists (Sabour et al. 2024) as published in ``diffusers.schedulers.AysSchedules``
      (when diffusers is installed; their last sigma is 0 there).

    >>> import symspec
    >>> b = baseline_schedules(symspec.DDPM, 10)
    >>> len(b) >= 11, b["linear/trailing"].meta["timesteps"][0]
    (True, 999)
    """
    if not isinstance(steps, int) or not 1 <= steps <= 1000:
        raise ValueError(f"steps must be an int from 1 to 1000, got {steps!r}")
    prev = sampler.prev
    out = {}
    for beta in BETA_SCHEDULES:
        ab = training_alphas_cumprod(1000, beta)
        for spacing in SPACINGS:
            out[f"{beta}/{spacing}"] = diffusers_schedule(
                ab, inference_timesteps(steps, 1000, spacing), prev, 1.0, 1000)
    ab = training_alphas_cumprod(1000, beta_schedule)
    smin, smax = np.sqrt((1 - ab[[0, -1]]) / ab[[0, -1]])
    out["karras"] = Schedule.from_sigmas(np.append(_karras(smin, smax, steps), 0.0))
    out["exponential"] = Schedule.from_sigmas(
        np.append(np.geomspace(smax, smin, steps), 0.0))
    if steps == 10:
        try:
            from diffusers.schedulers import AysSchedules
        except ImportError:  # diffusers is optional
            return out
        for name, key in (("ays_sd15", "StableDiffusionSigmas"),
                          ("ays_sdxl", "StableDiffusionXLSigmas"),
                          ("ays_svd", "StableDiffusionVideoSigmas")):
            out[name] = Schedule.from_sigmas(AysSchedules[key])
    return out
