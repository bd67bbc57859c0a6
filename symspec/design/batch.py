"""Many designs at once: :func:`symspec.design.design_schedules` vectorised over spectra.

The designs of a batch of spectra are independent, and each is a sequence of objective
evaluations whose arguments depend on the results of the previous ones.  Here every design
runs as a generator that yields its next evaluation (the levels of one schedule) and
receives the objective and its gradient; a driver advances all designs in lockstep and
evaluates each round's requests together:

*One forward run and one adjoint for the whole batch.*  The distinct variances of every
spectrum (``symspec.numeric.response.compress``) are padded to one length ``K`` (the
padding has weight 0) into a ``(B, K)`` array, and each step's map is evaluated with
per-spectrum levels: its coefficients are the same level expressions that
:func:`symspec.numeric.lambdify.compiled_gradient` compiles, printed for NumPy (elementwise
in the levels, one value per spectrum) and broadcast over the modes.  The recursion and its
adjoint are those of :mod:`symspec.numeric.core`, with sums over modes taken per spectrum.

*The same search.*  The generators mirror :func:`~symspec.design.design_schedule` step by
step (honest start, screening of the start shapes, restarts, non-chained refinement), and
L-BFGS-B runs through SciPy's own reverse-communication routine, called exactly as
:func:`scipy.optimize.minimize` calls it, so each design takes the iterates it takes alone:
the schedules agree to rounding.  A spectrum whose batched evaluation is not finite (an
overflow, an underflowing output) is evaluated again alone, by the exact core, which
raises the error a single design raises.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator
from dataclasses import replace

import numpy as np

from ..numeric.core import TAPE_BYTES, reads
from ..numeric.lambdify import gradient_polynomials, lambdify_modes
from ..schedules import Schedule
from ..symbolic.engine import Sampler, variant
from .divergences import DIVERGENCES
from .optimise import (
    _SCREEN,
    _THETA_MAX,
    _from_logsnr,
    _honest_logsnr,
    _logsnr,
    _logsnr_array,
    _Param,
    _Shift,
    _start_shape,
    _value_and_grad,
)

__all__ = ["available", "design_batch"]

#: A request: the levels of one schedule ``(start, end, init_var, free_start, free_end)``;
#: its answer is ``(J, dJ/dstart, dJ/dend, dJ/dinit_var)`` as from ``_value_and_grad``.
Request = tuple[np.ndarray, np.ndarray, float, np.ndarray, np.ndarray]
Answer = tuple[float, np.ndarray, np.ndarray, float]
Design = Generator[Request, Answer, object]
#: An objective as a generator: yields its requests, returns ``(value, gradient)``.
Objective = Callable[[np.ndarray], Generator[Request, Answer, tuple[float, np.ndarray]]]


def available() -> bool:
    """Whether SciPy's L-BFGS-B has the reverse-communication interface used here (SciPy
    1.15 and later); without it :func:`~symspec.design.design_schedules` runs the loop."""
    try:
        from scipy.optimize import _lbfgsb, _lbfgsb_py
    except ImportError:  # pragma: no cover - a SciPy without the module
        return False
    import scipy

    major, minor = (int(p) for p in scipy.__version__.split(".")[:2])
    return (major, minor) >= (1, 15) and hasattr(_lbfgsb, "setulb") and \
        hasattr(_lbfgsb_py, "task_messages")


# -- the batched forward run and adjoint --------------------------------------------------
@functools.cache
def _polys(smp: Sampler, key: tuple, prediction_type: str, wrt: tuple[int, ...]):
    """The numerator and denominator coefficients (in ``lam``) of every entry of ``A`` and
    ``Q`` (upper triangle) of one step variant and their derivatives in the levels ``wrt``,
    as :func:`symspec.numeric.lambdify.compiled_gradient` builds them, printed for NumPy
    (elementwise in the levels).  Returns ``(fn, keys, width)``."""
    levels, flat, keys, width = gradient_polynomials(smp, key, prediction_type, wrt)
    return lambdify_modes(levels, flat), keys, width


class _Batch:
    """The fixed data of a batch: padded distinct variances ``lam`` and weights ``w``
    (``(B, K)``), and the single-design inputs for the exact fallback."""

    def __init__(self, sampler: Sampler, lams: list, ws: list, counts: list, divergence: str,
                 prediction_type: str, names: list[int]):
        self.names = names
        self.sampler, self.divergence, self.prediction_type = sampler, divergence, \
            prediction_type
        K = max(lam.size for lam in lams)
        self.lam = np.ones((len(lams), K))
        self.w = np.zeros((len(lams), K))  # weights of the divergence
        self.count = np.zeros((len(lams), K))  # multiplicities of the distinct values
        for b, (lam, w, c) in enumerate(zip(lams, ws, counts, strict=True)):
            self.lam[b, :lam.size] = lam
            self.w[b, :lam.size] = 1.0 if w is None else w
            self.count[b, :lam.size] = 1.0 if c is None else c
        self.single = list(zip(lams, ws, strict=True))

    def evaluate(self, rows: list[int], reqs: list[Request]) -> list[Answer]:
        """Answers to requests that share their free masks, one per spectrum in ``rows``.

        The spectra go in blocks whose tape fits in :data:`~symspec.numeric.core.TAPE_BYTES`
        (the state before every step, as the single design keeps it); a spectrum too large
        for that alone is evaluated by the single design's blocked evaluation."""
        k, n = self.sampler.state, reqs[0][0].size
        per_row = 16 * n * (k * k + k) * self.lam.shape[1]
        if per_row > TAPE_BYTES:
            return [self._alone(b, r) for b, r in zip(rows, reqs, strict=True)]
        step = max(1, TAPE_BYTES // per_row)
        out: list[Answer] = []
        for lo in range(0, len(rows), step):
            out += self._block(rows[lo:lo + step], reqs[lo:lo + step])
        return out

    def _block(self, rows: list[int], reqs: list[Request]) -> list[Answer]:
        idx = np.asarray(rows)
        lam, w = self.lam[idx], self.w[idx]
        start = np.array([r[0] for r in reqs])
        end = np.array([r[1] for r in reqs])
        V = np.array([r[2] for r in reqs], dtype=float)
        with np.errstate(all="ignore"):  # a row that is not finite is redone alone (below)
            J, gs, ge, gV, ok = _value_and_grad_batch(
                self.sampler, start, end, V, lam, w, self.divergence, self.prediction_type,
                (reqs[0][3], reqs[0][4]))
        return [(float(J[i]), gs[i], ge[i], float(gV[i])) if ok[i] else self._alone(b, reqs[i])
                for i, b in enumerate(rows)]

    def _alone(self, b: int, req: Request) -> Answer:
        """The exact single-design evaluation (it raises the single design's errors)."""
        s, e, v, fs, fe = req
        part, wp = self.single[b]
        try:
            sched = Schedule(s, e, self.sampler.space, v)
            return _value_and_grad(self.sampler, sched, part, wp, self.divergence,
                                   self.prediction_type, (fs, fe))
        except ValueError as exc:
            raise ValueError(f"psds[{self.names[b]}]: {exc}") from None


def _step(sampler, i, n, levels, lam, powers, prediction_type, wrt):
    """Dense ``A`` and ``Q`` (``(k, k, B, K)``) of step ``i`` with per-spectrum ``levels``,
    and ``{(kind, r, c): d entry / d levels[wrt]}`` (``(B, nwrt, K)``) if ``wrt``."""
    fn, keys, width = _polys(sampler, variant(sampler, i, n), prediction_type, wrt)
    vals = fn(*levels)
    B, K = lam.shape
    c = np.empty((B, len(vals)))
    for j, v in enumerate(vals):
        c[:, j] = v
    if width not in powers:  # lam**(width-1), ..., lam, 1 per spectrum: (B, width, K)
        powers[width] = np.ascontiguousarray(
            (lam[None] ** np.arange(width - 1, -1, -1.0)[:, None, None]).transpose(1, 0, 2))
    # every polynomial at every mode: one stacked product, (B, keys, 1 + nwrt, 2, K)
    poly = np.matmul(c.reshape(B, -1, width), powers[width]).reshape(
        B, len(keys), 1 + len(wrt), 2, K)
    num, den = poly[:, :, :, 0], poly[:, :, :, 1]
    val = num[:, :, 0] / den[:, :, 0]
    der = (num[:, :, 1:] - val[:, :, None] * den[:, :, 1:]) / den[:, :, :1] if wrt else None
    k = sampler.state
    A, Q = np.zeros((k, k, B, K)), np.zeros((k, k, B, K))
    ders = {}
    for e, (kind, r, col) in enumerate(keys):
        if kind == "A":
            A[r, col] = val[:, e]
        else:
            Q[r, col] = Q[col, r] = val[:, e]
        if der is not None:
            ders[kind, r, col] = der[:, e]
    return A, Q, ders


def _value_and_grad_batch(sampler, start, end, V, lam, w, divergence, prediction_type, free):
    """``_value_and_grad`` for ``B`` schedules (rows of ``start``, ``end``; init variances
    ``V``) on the rows of ``lam`` (weights ``w``), in one forward run and one adjoint.
    Returns ``(J, gs, ge, gV, ok)``; ``ok[b]`` is False where row ``b`` is not finite or
    its output underflows (the caller redoes those alone)."""
    B, n = start.shape
    k, M = sampler.state, lam.shape[1]
    arrays = (start, end)
    S, T = np.zeros((k, k, B, M)), np.zeros((k, B, M))
    T[0] = 1.0
    tape: list = []
    powers: dict = {}
    for i in range(n):
        tape.append((S, T))
        levels = [arrays[a][:, j] for a, j in reads(sampler, i)]
        A, Q, _ = _step(sampler, i, n, levels, lam, powers, prediction_type, ())
        if k == 1:
            S, T = A * A * S + Q, A[0] * T
        else:
            S = np.einsum("abxm,bcxm,dcxm->adxm", A, S, A) + Q
            T = np.einsum("abxm,bxm->axm", A, T)
    T0 = T[0]
    P = T0 * T0 * V[:, None] + S[0, 0]
    live = w > 0
    kind = DIVERGENCES[divergence]
    d = np.where(live, kind.value(lam, np.where(live, P, 1.0)), 0.0)
    J = np.sum(w * d, axis=1)
    pbar = w * np.where(live, kind.grad(lam, np.where(live, P, 1.0)), 0.0)
    ok = np.all(np.isfinite(P), axis=1) & ~np.any((P == 0) & (lam > 0) & live, axis=1)
    gV = np.sum(pbar * T0 * T0, axis=1)
    Sbar, Tbar = np.zeros((k, k, B, M)), np.zeros((k, B, M))
    Sbar[0, 0] = pbar
    Tbar[0] = 2 * V[:, None] * T0 * pbar
    g = np.zeros((2, B, n))
    for i in range(n - 1, -1, -1):
        S, T = tape[i]
        pos = reads(sampler, i)
        wrt = tuple(p for p, (a, j) in enumerate(pos) if free[a][j])
        levels = [arrays[a][:, j] for a, j in pos]
        A, _, ders = _step(sampler, i, n, levels, lam, powers, prediction_type, wrt)
        if wrt:
            if k == 1:
                Abar = (2 * Sbar[0, 0] * A[0, 0] * S[0, 0] + Tbar[0] * T[0])[None, None]
            else:
                Abar = 2 * np.einsum("abxm,bcxm,cdxm->adxm", Sbar, A, S) \
                    + Tbar[:, None] * T[None]
            gi = np.zeros((len(wrt), B))
            for (kd, r, c), der in ders.items():  # Q: both triangles
                x = Abar[r, c] if kd == "A" else Sbar[r, c] * (1 + (r != c))
                gi += np.einsum("bwm,bm->wb", der, x)
            for p, v in zip(wrt, gi, strict=True):
                a, j = pos[p]
                g[a, :, j] += v
        if k == 1:
            Sbar, Tbar = Sbar * A * A, Tbar * A[0]
        else:
            Sbar = np.einsum("baxm,bcxm,cdxm->adxm", A, Sbar, A)
            Tbar = np.einsum("baxm,bxm->axm", A, Tbar)
    ok &= np.isfinite(J) & np.isfinite(gV) & np.all(np.isfinite(g), axis=(0, 2))
    return J, g[0], g[1], gV, ok


# -- the search, as generators (mirrors of the single design's functions) -----------------
class _Fast:
    """:meth:`_Param.grid` and :meth:`_Param.chain` with the same arithmetic, in fewer
    NumPy calls (they run once per evaluation of every design)."""

    def __init__(self, par: _Param):
        self.par, self.m, self.space = par, par.m, par.space
        self.off = int(par.first is not None)
        self.lo, self.span = par.lo, par.hi - par.lo
        self.floor = par.floor
        self.mult = 1 - (par.m + 1) * par.floor
        self.head = par.first

    def grid(self, theta: np.ndarray):
        m = self.m
        z = np.empty(m + 1)
        z[:m] = theta
        z[m] = 0.0
        e = np.exp(z - z.max())  # scipy.special.softmax
        s = e / e.sum()
        u = self.lo + self.span * np.cumsum(self.floor + self.mult * s)[:m]
        v, dv = _from_logsnr(u, self.space)
        grid = np.empty(self.par.steps + 1)
        if self.off:
            grid[0] = self.head
        grid[self.off:self.off + m] = v
        grid[-1] = self.par.final
        return grid, s, dv

    def chain(self, gs: np.ndarray, ge: np.ndarray, grad_v0_init, s, dv) -> np.ndarray:
        """``dJ/dtheta`` from the gradients in the steps' starts and ends."""
        g = np.zeros(gs.size + 1)
        g[:-1] = gs
        g[1:] += ge
        g[0] += grad_v0_init
        gc = self.span * self.mult * g[self.off:self.off + self.m] * dv
        acc = np.zeros(self.m + 1)
        acc[:-1] = np.cumsum(gc[::-1])[::-1]
        return (s * (acc - np.dot(s, acc)))[:-1]


def _minimize(fun: Objective, x0: np.ndarray, maxiter: int,
              ftol: float = 1e-10, gtol: float = 1e-9):
    """``scipy.optimize.minimize(fun, x0, jac=True, method="L-BFGS-B")`` in the box
    ``|x| <= _THETA_MAX``, as a generator: the same calls of SciPy's L-BFGS-B routine, in
    the same order, with the evaluations yielded.  Returns ``(f, x, nit, nfev, success,
    message)``."""
    from scipy.optimize import _lbfgsb
    from scipy.optimize._lbfgsb_py import status_messages, task_messages

    m, maxls, maxfun = 10, 20, 15000
    n = x0.size
    low, up = np.full(n, -_THETA_MAX), np.full(n, _THETA_MAX)
    x0 = np.clip(np.asarray(x0, dtype=float).ravel(), low, up)
    cur = x0.copy()  # as ScalarFunction: one evaluation at x0, then one per new point
    fc, gc = yield from fun(cur.copy())
    gc = np.atleast_1d(gc)
    nfev = 1
    nbd = np.full(n, 2, dtype=np.int32)
    x = np.array(x0, dtype=np.float64)
    f: float | np.ndarray = np.array(0.0, dtype=np.float64)  # as SciPy: then a float
    g = np.zeros((n,), dtype=np.float64)
    wa = np.zeros(2 * m * n + 5 * n + 11 * m * m + 8 * m, np.float64)
    iwa = np.zeros(3 * n, dtype=np.int32)
    task, ln_task = np.zeros(2, dtype=np.int32), np.zeros(2, dtype=np.int32)
    lsave, isave = np.zeros(4, dtype=np.int32), np.zeros(44, dtype=np.int32)
    dsave = np.zeros(29, dtype=np.float64)
    factr = ftol / np.finfo(float).eps
    nit = 0
    while True:
        g = g.astype(np.float64)
        _lbfgsb.setulb(m, x, low, up, nbd, f, g, factr, gtol, wa, iwa, task, lsave, isave,
                       dsave, maxls, ln_task)
        if task[0] == 3:
            if not np.array_equal(x, cur):
                cur = x.copy()
                fc, gc = yield from fun(cur.copy())
                gc = np.atleast_1d(gc)
                nfev += 1
            f, g = fc, gc
        elif task[0] == 1:
            nit += 1
            if nit >= maxiter:
                task[0], task[1] = 5, 504
            elif nfev > maxfun:
                task[0], task[1] = 5, 502
        else:
            break
    ok = task[0] == 4
    msg = status_messages[task[0]] + ": " + task_messages[task[1]]
    return float(f), x, nit, nfev, bool(ok), msg


def _lbfgsb(fun, theta0: np.ndarray, maxiter: int):
    """Mirror of :func:`symspec.design.optimise._lbfgsb`."""
    theta, nit, nfev = theta0, 0, 0
    for _ in range(4):
        f, theta, dn, de, ok, msg = yield from _minimize(fun, theta, maxiter - nit)
        nit, nfev = nit + dn, nfev + de
        if ok or not msg.startswith("ABNORMAL") or nit >= maxiter:
            break
    return f, theta, nit, nfev, ok, msg


def _chained(par: _Param):
    """Mirror of :func:`symspec.design.optimise._chained`."""
    free = np.zeros(par.steps + 1, dtype=bool)
    free[par.first is not None:par.steps] = True
    fs, fe = free[:-1], free[1:]
    fast = _Fast(par)
    moving_v = par.init_var is None and par.space == "ve"

    def evaluate(theta):
        grid, s, dv = fast.grid(theta)
        V = par.init_variance(grid)
        J, gs, ge, gV = yield (grid[:-1], grid[1:], V, fs, fe)
        dV0 = gV * 2 * grid[0] if moving_v else 0.0
        return J, fast.chain(gs, ge, dV0, s, dv)

    return evaluate


def _search(par: _Param, starts, maxiter, screen_only: bool = False):
    """Mirror of :func:`symspec.design.optimise._search`."""
    evaluate = _chained(par)
    x = (np.arange(par.m) + 1.0) / (par.m + 1)
    results, funs = {}, {}
    for name in starts:
        theta0 = par.theta_for(par.lo + (par.hi - par.lo) * _start_shape(name, x))
        if par.m == 0:
            results[name] = ((yield from evaluate(theta0))[0], theta0, 0, 1, True,
                             "no free level")
            continue
        scale = max((yield from evaluate(theta0))[0], 1e-300)

        def fun(theta, scale=scale):
            J, g = yield from evaluate(theta)
            return J / scale, g / scale

        funs[name] = fun, scale
        f, *rest = yield from _lbfgsb(fun, theta0, min(_SCREEN, maxiter))
        results[name] = (f * scale, *rest)
    if funs and not screen_only:
        best = min(funs, key=lambda k: (results[k][0], starts.index(k)))
        fun, scale = funs[best]
        _, theta, nit, nfev, _, _ = results[best]
        if nit >= _SCREEN and maxiter > nit:
            f, theta, nit2, nfev2, ok, msg = yield from _lbfgsb(fun, theta, maxiter - nit)
            results[best] = (f * scale, theta, nit + nit2, nfev + nfev2, ok, msg)
    return results


def _honest_search(par: _Param, u_max: float, starts, maxiter):
    """Mirror of :func:`symspec.design.optimise._honest_search` (``u_max`` given)."""
    level = float(_from_logsnr(np.array([u_max]), par.space)[0][0])
    pinned = replace(par, first=level, lo=max(par.lo, u_max))

    def first_logsnr(p, res):
        return _logsnr(float(p.grid(min(res.values(), key=lambda r: r[0])[1])[0][0]), p.space)

    screen = yield from _search(par, starts, maxiter, True)
    if first_logsnr(par, screen) <= u_max:
        free = yield from _search(par, starts, maxiter)
        if first_logsnr(par, free) <= u_max + 1e-12:
            return {**free, "_par": par}
    res = yield from _search(pinned, starts, maxiter)
    grid = pinned.grid(min(res.values(), key=lambda r: r[0])[1])[0]
    first = np.arange(par.steps + 1) == 0
    _, gs, _, gV = yield (grid[:-1], grid[1:], pinned.init_variance(grid), first[:-1],
                          first[1:])
    dv = gs[0] + (gV * 2 * grid[0] if par.init_var is None and par.space == "ve" else 0)
    if dv * _from_logsnr(np.array([u_max]), par.space)[1][0] <= 0:
        return {**res, "_par": pinned}
    free = yield from _search(par, starts, maxiter)
    if first_logsnr(par, free) <= u_max + 1e-12:
        return {**free, "_par": par}
    return {**res, "_par": pinned}


def _refine_unchained(par: _Param, theta0, maxiter):
    """Mirror of :func:`symspec.design.optimise._refine_unchained` (with ``_unchained``)."""
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
        start[0] = grid[0]
        return grid, s, dv, u, us, z, b, start, dstart, par.init_variance(grid)

    def fun(x):
        grid, s, dv, u, us, z, b, start, dstart, V = build(x)
        J, gs, ge, gV = yield (start, grid[1:], V, free_s, free_e)
        bar_us = gs * dstart
        if par.init_var is None and par.space == "ve":
            bar_us[0] += gV * 2 * start[0] * dstart[0]
        bar_u, bar_phi = shift.chain(u, us, z, b, bar_us)
        _, dv_all = _from_logsnr(np.where(np.isfinite(u), u, 0.0), par.space)
        g_grid = np.append(0.0, ge) + np.where(np.isfinite(u), bar_u / dv_all, 0.0)
        return J, np.append(par.chain(g_grid, 0.0, s, dv), bar_phi)

    x0 = np.append(theta0, np.zeros(par.steps - 1))
    scale = max((yield from fun(x0))[0], 1e-300)

    def scaled(x):
        J, g = yield from fun(x)
        return J / scale, g / scale

    f, x, nit, _, ok, msg = yield from _lbfgsb(scaled, x0, maxiter)
    grid, _, _, _, _, _, _, start, _, V = build(x)
    return f * scale, Schedule(start, grid[1:], par.space, V), nit, ok, msg


def _design(par: _Param, rule: str, u_max: float | None, chained: bool, starts, maxiter):
    """Mirror of the search of :func:`~symspec.design.design_schedule` for one spectrum.
    Returns ``(schedule, J, best, results, nit, nfev, ok, msg, par)``; the caller adds
    the meta data."""
    if rule == "honest":
        assert u_max is not None
        results = yield from _honest_search(par, u_max, starts, maxiter)
    else:
        results = yield from _search(par, starts, maxiter)
    par = results.pop("_par", par)
    best = min(results, key=lambda k: (results[k][0], starts.index(k)))
    J, theta, nit, nfev, ok, msg = results[best]
    grid = par.grid(theta)[0]
    V = par.init_variance(grid)
    make = Schedule.from_alpha_bar if par.space == "vp" else Schedule.from_sigmas
    sched = make(grid, V)
    if not chained:
        if rule == "honest" and par.first is None:
            u = _logsnr_array(grid, par.space)
            par = replace(par, first=float(grid[0]), lo=max(par.lo, float(u[0])))
            theta = par.theta_for(u[1:-1])
        J2, sched2, nit2, ok, msg = yield from _refine_unchained(par, theta, maxiter)
        if J2 <= J:
            J, sched, nit = J2, sched2, nit + nit2
    return sched, J, best, results, nit, nfev, ok, msg, par


def _honest_bounds(batch: _Batch, fulls: list, par: _Param, tol: float) -> list[float]:
    """:func:`symspec.design.optimise._honest_logsnr` of every spectrum: one bisection on
    all of them (on their distinct values, weighted by multiplicity).  A spectrum without
    an honest start gets the single design's error."""
    lam, w = batch.lam, batch.count  # initial_kl has no weights

    def kl(u: np.ndarray) -> np.ndarray:  # initial_kl of every spectrum at log-SNR u
        v = _from_logsnr(u, par.space)[0][:, None]
        V: float | np.ndarray
        if par.space == "vp":
            D = np.sqrt(v) ** 2 * lam + np.sqrt(1 - v) ** 2
            V = 1.0 if par.init_var is None else par.init_var
        else:
            D = lam + v**2
            V = v**2 + 1.0 if par.init_var is None else par.init_var
        return np.sum(w * DIVERGENCES["kl_reverse"].value(D, V + 0 * D), axis=1)

    B = lam.shape[0]
    lo, hi = np.full(B, par.lo), np.full(B, par.hi)
    for b in np.flatnonzero(kl(lo) > tol):  # the single design's error
        try:
            lo[b] = hi[b] = _honest_logsnr(fulls[b], par, tol)
        except ValueError as exc:
            raise ValueError(f"psds[{batch.names[b]}]: {exc}") from None
    top = kl(hi) <= tol
    for _ in range(60):  # bisection: the KL grows monotonically towards the data
        mid = 0.5 * (lo + hi)
        ok = kl(mid) <= tol
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    return [float(x) for x in np.where(top, par.hi, lo)]


# -- the driver ----------------------------------------------------------------------------
def design_batch(sampler: Sampler, fulls: list, lams: list, ws: list, counts: list,
                 par: _Param, rule: str, tol: float, chained: bool, divergence: str,
                 prediction_type: str, starts, maxiter: int, names: list[int],
                 progress: Callable[[str], None] | None = None) -> list:
    """Run the designs of the spectra ``fulls`` (flat; ``lams``, ``ws``, ``counts`` their
    distinct values, the weights and the multiplicities of those) in lockstep, evaluating
    each round's requests together.  Returns, per spectrum, the tuple of :func:`_design`;
    an error of one design is raised with ``psds[i]`` in its message, ``i`` from ``names``
    (the spectra's positions in the caller's stack)."""
    batch = _Batch(sampler, lams, ws, counts, divergence, prediction_type, names)
    B = len(fulls)
    bounds = _honest_bounds(batch, fulls, par, tol) if rule == "honest" else [None] * B
    gens: list[Design | None] = [_design(par, rule, u, chained, starts, maxiter)
                                 for u in bounds]
    out: list = [None] * B
    pending: dict[int, Request] = {}

    def advance(b: int, answer: Answer | None) -> None:
        gen = gens[b]
        assert gen is not None
        try:
            pending[b] = next(gen) if answer is None else gen.send(answer)
        except StopIteration as stop:
            out[b], gens[b] = stop.value, None
            if progress:
                done = sum(o is not None for o in out)
                progress(f"designing: {done}/{B} spectra done")
        except (ValueError, ArithmeticError) as exc:
            raise type(exc)(f"psds[{names[b]}]: {exc}") from exc

    for b in range(B):
        advance(b, None)
    while pending:
        groups: dict[bytes, list[int]] = {}
        for b, req in pending.items():
            groups.setdefault(req[3].tobytes() + b"|" + req[4].tobytes(), []).append(b)
        reqs = pending
        pending = {}
        for rows in groups.values():
            answers = batch.evaluate(rows, [reqs[b] for b in rows])
            for b, ans in zip(rows, answers, strict=True):
                advance(b, ans)
    return out

