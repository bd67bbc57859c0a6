"""Spectral schedule design: the noise levels whose output spectrum is closest to the data's.

For a sampler, a data spectrum ``lam`` and ``N`` steps, :func:`design_schedule` chooses the
``N + 1`` levels ``v_0 (noisiest) .. v_N (final)`` that minimise a divergence
(:func:`symspec.divergence.divergence`) between ``lam`` and the sampler's output spectrum
``P = H**2 V + S``.  The method:

*Exact gradients.*  A step is ``state' = A state + B w`` (:func:`symspec.engine.derive`); the
state covariance follows ``S <- A S A^T + Q`` and the transfer ``T <- A T`` from
``S = 0, T = e_0``, for any state size (multistep samplers included).  The entries of ``A``
and ``Q`` are differentiated symbolically with respect to the level symbols and compiled
(:func:`symspec.numeric.compiled_gradient`); reverse mode then carries
``Sbar = dJ/dS`` and ``Tbar = dJ/dT`` back through the steps::

    Abar = 2 Sbar A S + Tbar T^T,   Qbar = Sbar,   Sbar <- A^T Sbar A,   Tbar <- A^T Tbar

starting from ``Sbar = J'(P) e_0 e_0^T``, ``Tbar = 2 V T_0 J'(P) e_0``, and each step adds
``sum(Abar * dA/dv + Qbar * dQ/dv)`` to the level ``v`` it reads (its start, its end and,
for multistep samplers, earlier levels).  See :func:`objective`.

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
>>> s.steps, s.meta["converged"], bool(s.meta["objective"] < 0.05 * psd.sum())
(3, True, True)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, softmax

from .divergence import DIVERGENCES, divergence_grad
from .divergence import divergence as _divergence
from .engine import Sampler, check_type, variant
from .numeric import _levels, compiled_gradient, lam_powers, validate_psd
from .schedules import (
    BETA_SCHEDULES,
    SPACINGS,
    Schedule,
    diffusers_schedule,
    inference_timesteps,
    training_alphas_cumprod,
)

__all__ = ["design_schedule", "objective", "baseline_schedules", "DesignWarning",
           "LOGSNR_RANGE", "STARTS"]

#: Default range of the free levels in log-SNR: alpha-bar in [3.1e-7, 1 - 3.1e-7], sigma in
#: [5.5e-4, 1808].
LOGSNR_RANGE = (-15.0, 15.0)
#: Starting schedules of the search (their log-SNR shapes).
STARTS = ("uniform_logsnr", "cosine", "linear")
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


def _level_index(smp: Sampler, i: int) -> tuple[int, ...]:
    """Grid positions read by step ``i`` of a chained run (as :func:`spectral_response`)."""
    return (i, i + 1, *(i - k if i - k >= 0 else i for k in range(1, smp.history + 1)))


# -- forward and reverse passes ----------------------------------------------------------
def _step_maps(smp: Sampler, i: int, n: int, levels, lam: np.ndarray, powers: dict,
               prediction_type: str, wrt: tuple = ()):
    """``A`` and ``Q`` (shape ``(k, k, M)``) of step ``i`` of ``n`` at ``levels``, and the
    entries ``{(kind, r, c): (value, derivatives in wrt)}`` they are built from (``Q``: upper
    triangle)."""
    k, M = smp.state, lam.size
    try:
        cg = compiled_gradient(smp, variant(smp, i, n), prediction_type, wrt)
        if cg.width not in powers:
            powers[cg.width] = lam_powers(lam, cg.width)
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            ent = cg.entries(powers[cg.width], levels)
    except (ValueError, ZeroDivisionError, OverflowError, FloatingPointError) as exc:
        raise ValueError(f"step {i} of {smp.name!r} cannot be evaluated at levels {levels}: "
                         f"{exc}") from None
    A, Q = np.zeros((k, k, M)), np.zeros((k, k, M))
    for (kind, r, c), (val, _) in ent.items():
        if kind == "A":
            A[r, c] = val
        else:
            Q[r, c] = Q[c, r] = val
    return A, Q, ent


def _forward(smp: Sampler, levels, lam: np.ndarray, prediction_type: str, noise_scale=None):
    """Run the covariance recursion per mode; return the tape and the final ``(S, T)``.

    ``levels[i]`` are the level values step ``i`` reads, ``noise_scale(i)`` an optional
    per-mode factor on its ``Q``.  ``S`` has shape ``(k, k, M)``, ``T`` ``(k, M)``; the tape
    holds the ``(S, T)`` each step starts from (the maps are recomputed in the reverse pass:
    keeping them would cost more memory, and time, than evaluating them again).  For the
    small ``k`` of samplers one ``einsum`` over the mode axis beats batched matrix products.
    """
    n, k, M = len(levels), smp.state, lam.size
    S, T = np.zeros((k, k, M)), np.zeros((k, M))
    T[0] = 1.0
    tape, powers = [], {}
    for i in range(n):
        A, Q, _ = _step_maps(smp, i, n, levels[i], lam, powers, prediction_type)
        if noise_scale is not None:
            Q = Q * noise_scale(i)
        tape.append((S, T))
        S = np.einsum("abm,bcm,dcm->adm", A, S, A) + Q
        T = np.einsum("abm,bm->am", A, T)
    return tape, S, T


def _value_and_grad(smp: Sampler, grid: np.ndarray, init_var: float, lam: np.ndarray,
                    w, kind: str, prediction_type: str, free: np.ndarray):
    """Objective, its gradient in the grid values (0 where not free) and in ``init_var``."""
    n = grid.size - 1
    idx = [_level_index(smp, i) for i in range(n)]
    wrt = [tuple(p for p, g in enumerate(ix) if free[g]) for ix in idx]
    levels = [tuple(float(grid[g]) for g in ix) for ix in idx]
    tape, S, T = _forward(smp, levels, lam, prediction_type)
    P = T[0] ** 2 * init_var + S[0, 0]
    if not np.all(np.isfinite(P)):
        raise ValueError("the output spectrum is not finite; check the schedule and psd ranges")
    J = _divergence(lam, P, kind, w)
    pbar = divergence_grad(lam, P, kind, w)
    Sbar, Tbar = np.zeros_like(S), np.zeros_like(T)
    Sbar[0, 0] = pbar
    Tbar[0] = 2 * init_var * T[0] * pbar
    grad_init_var = float(np.sum(pbar * T[0] ** 2))
    grad, powers = np.zeros(n + 1), {}
    for i in range(n - 1, -1, -1):
        S, T = tape[i]
        A, _, ent = _step_maps(smp, i, n, levels[i], lam, powers, prediction_type, wrt[i])
        if wrt[i]:
            Abar = 2 * np.einsum("abm,bcm,cdm->adm", Sbar, A, S) + Tbar[:, None] * T[None]
            g = np.zeros(len(wrt[i]))
            for (kind, r, c), (_, der) in ent.items():  # Q: both triangles
                g += der @ (Abar[r, c] if kind == "A" else Sbar[r, c] * (1 + (r != c)))
            np.add.at(grad, [idx[i][p] for p in wrt[i]], g)
        Sbar = np.einsum("bam,bcm,cdm->adm", A, Sbar, A)
        Tbar = np.einsum("bam,bm->am", A, Tbar)
    return J, grad, grad_init_var, P


def _check_kind(kind: str) -> None:
    if kind not in DIVERGENCES:
        raise ValueError(f"divergence must be one of {DIVERGENCES}, got {kind!r}")


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


def objective(sampler: Sampler, schedule: Schedule, psd, divergence: str = "w2", *,
              weights=None, prediction_type: str = "epsilon", gradient: bool = False):
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
    lam, w = _check_psd(psd, divergence, weights)
    sched = schedule.to_space(sampler.space)
    if not gradient:
        levels = [_levels(sched, sampler, i) for i in range(sched.steps)]
        _, S, T = _forward(sampler, levels, lam, prediction_type)
        return _divergence(lam, T[0] ** 2 * sched.init_var + S[0, 0], divergence, w)
    if not sched.chained:
        raise ValueError("gradient=True needs a chained schedule (each step starting where "
                         "the previous one ended)")
    if sched.space == "vp" and sched.start[0] == 0:
        raise ValueError("the gradient at alpha-bar 0 (zero terminal SNR) does not exist; "
                         "hold that level fixed")
    grid = np.append(sched.start, sched.end[-1])
    free = np.arange(grid.size) < sched.steps
    J, g, gv, _ = _value_and_grad(sampler, grid, sched.init_var, lam, w, divergence,
                                  prediction_type, free)
    return J, g[:-1], gv



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


def design_schedule(sampler: Sampler, psd, steps: int, divergence: str = "w2", *,
                    weights=None, space: str | None = None, start: float | None = None,
                    end: float | None = None, level_range: tuple[float, float] | None = None,
                    zero_terminal_snr: bool = False, init_var: float | None = None,
                    prediction_type: str = "epsilon", starts: tuple[str, ...] = STARTS,
                    maxiter: int = 2000) -> Schedule:
    """The ``steps``-step schedule minimising ``divergence`` between ``psd`` and the output.

    Parameters
    ----------
    sampler : Sampler
        Any sampler (built-in, user-defined, multistep).
    psd : array_like
        Per-mode data variances (1-3 dimensional grid), at least one positive.
    steps : int
        Number of steps ``N >= 1``.
    divergence : {"w2", "kl", "kl_reverse"}
        The objective, :func:`symspec.divergence.divergence` (``weights`` passed on).
    space : {"vp", "ve"}, optional
        Units of ``start``, ``end`` and ``level_range``: alpha-bar or sigma (default: the
        sampler's space).
    start : float, optional
        Fix the first (noisiest) level.
    end : float, optional
        Fix the final level (default: clean, alpha-bar 1 / sigma 0).
    level_range : (float, float), optional
        ``(min, max)`` of the free (not fixed) levels (default :data:`LOGSNR_RANGE` in
        log-SNR).  Use :func:`symspec.export.level_range` to stay inside a diffusers training
        schedule.
    zero_terminal_snr : bool
        Start from alpha-bar 0 (VP samplers; the initial latent is then exactly the data's
        noisy marginal).
    init_var : float, optional
        Variance of the initial latent (default: 1 in VP, ``sigma_0**2 + 1`` in VE, which then
        moves with ``sigma_0``).
    prediction_type : str
        Passed to the derivation (the map does not depend on it for exact models).
    starts : tuple of str
        Starting schedules, from :data:`STARTS`.
    maxiter : int
        L-BFGS-B iteration limit per start.

    Returns
    -------
    Schedule
        Chained, in the sampler's space.  ``meta`` holds ``objective``, ``divergence``,
        ``iterations`` and ``evaluations`` (of the best start), ``converged``, ``message``,
        ``start`` (the best start) and ``starts`` (the objective reached from each).  If the
        best run did not converge a :class:`DesignWarning` is issued and
        ``meta["converged"]`` is ``False``.

    Examples
    --------
    >>> import symspec
    >>> psd = symspec.spectra.power_law((8, 8))
    >>> s = design_schedule(symspec.DDPM, psd, 4, start=0.01)
    >>> float(s.alpha_bar[0]), float(s.alpha_bar[-1]), s.meta["converged"]
    (0.01, 1.0, True)
    """
    check_type(sampler, Sampler, "sampler")
    _check_kind(divergence)
    lam, w = _check_psd(psd, divergence, weights)
    par = _constraints(sampler, steps, space, start, end, level_range, zero_terminal_snr,
                       init_var)
    bad = [s for s in starts if s not in STARTS]
    if bad or not starts:
        raise ValueError(f"starts must be a non-empty tuple from {STARTS}, got {starts!r}")
    if not isinstance(maxiter, int) or maxiter < 1:
        raise ValueError(f"maxiter must be a positive int, got {maxiter!r}")
    free = np.zeros(par.steps + 1, dtype=bool)
    free[par.first is not None:par.steps] = True

    def evaluate(theta):
        grid, s, dv = par.grid(theta)
        V = par.init_variance(grid)
        J, g, gV, _ = _value_and_grad(sampler, grid, V, lam, w, divergence, prediction_type,
                                      free)
        dV0 = gV * 2 * grid[0] if par.init_var is None and par.space == "ve" else 0.0
        return J, par.chain(g, dV0, s, dv)

    x = (np.arange(par.m) + 1.0) / (par.m + 1)
    results = {}
    for name in starts:
        theta0 = par.theta_for(par.lo + (par.hi - par.lo) * _start_shape(name, x))
        if par.m == 0:
            results[name] = (evaluate(theta0)[0], theta0, 0, 1, True, "no free level")
            continue
        scale = max(evaluate(theta0)[0], 1e-300)

        def fun(theta, scale=scale):
            J, g = evaluate(theta)
            return J / scale, g / scale

        f, theta, nit, nfev, ok, msg = _lbfgsb(fun, theta0, maxiter)
        results[name] = (f * scale, theta, nit, nfev, ok, msg)
    best = min(results, key=lambda k: (results[k][0], starts.index(k)))
    J, theta, nit, nfev, ok, msg = results[best]
    grid = par.grid(theta)[0]
    meta = {"objective": float(J), "divergence": divergence, "iterations": nit,
            "evaluations": nfev, "converged": ok, "message": msg, "start": best,
            "starts": {k: float(v[0]) for k, v in results.items()}, "sampler": sampler.name,
            "options": {k: v if isinstance(v, int | float | str | bool) else repr(v)
                        for k, v in sampler.options}, "prediction_type": prediction_type}
    if not ok:
        warnings.warn(f"schedule design for {sampler.name!r} with {par.steps} steps did not "
                      f"converge ({msg}); meta['converged'] is False", DesignWarning,
                      stacklevel=2)
    V = par.init_variance(grid)
    make = Schedule.from_alpha_bar if par.space == "vp" else Schedule.from_sigmas
    sched = make(grid, V)
    sched.meta.update(meta)
    return sched


# -- heuristic schedules -----------------------------------------------------------------
def _karras(smin: float, smax: float, n: int, rho: float = 7.0) -> np.ndarray:
    r = np.linspace(0, 1, n) if n > 1 else np.zeros(1)
    return (smax ** (1 / rho) + r * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho


def baseline_schedules(sampler: Sampler, steps: int,
                       beta_schedule: str = "linear") -> dict[str, Schedule]:
    """Heuristic schedules for ``steps`` steps, by name, as diffusers would run them.

    - ``"{beta}/{spacing}"``: diffusers' training schedules (``linear``, ``scaled_linear``,
      ``squaredcos_cap_v2``; 1000 steps) with ``leading``/``trailing``/``linspace`` spacing;
      chained as DDPMScheduler and the sigma-based schedulers run them, or with
      DDIMScheduler's stride rule (``prev = t - 1000 // N``) for the ``ddim`` sampler.
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
    prev = "stride" if sampler.name == "ddim" else "chained"
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
