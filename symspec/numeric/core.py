"""The one run core: a (sampler, schedule) pair run forward per mode, and its exact adjoint.

A step is ``state' = A state + B w + C m`` (:func:`symspec.derive`), with entries that are
rational in the mode's data variance ``lam``.  Per mode the state covariance ``S``, the
transfer column ``T`` and the mean ``mu`` follow::

    S <- A S A^T + Q,     T <- A T,     mu <- A mu + C m,      from S = 0, T = e_0, mu = 0.

:func:`run` evaluates this forward (the output spectrum is ``T_0**2 V + S_00``).
:func:`vjp` carries the cotangents of ``S_00`` and ``T_0`` back through the steps::

    Abar = 2 Sbar A S + Tbar T^T,   Qbar = Sbar,   Sbar <- A^T Sbar A,   Tbar <- A^T Tbar

and adds ``sum(Abar * dA/dv + Qbar * dQ/dv)`` to each level ``v`` a step reads
(:func:`reads`).  Every client (:func:`symspec.spectral_response`,
:func:`symspec.design.objective`, :func:`symspec.design.design_schedule`,
:func:`symspec.design.diagnose`) calls these two functions and nothing else.

Memory: :func:`vjp` needs the state before every step.  It keeps them for a block of modes
at a time (at most ``tape_bytes`` of them), so an objective and its gradient need the PSD
arrays plus a bounded tape, for any sampler and step count.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy.linalg.blas import daxpy

from ..schedules import Schedule
from ..symbolic.engine import NonLinearSamplerError, Sampler, variant
from .lambdify import compiled, compiled_gradient, lam_powers

__all__ = ["Run", "run", "vjp", "reads", "step_levels", "one_blas_thread", "tape_block",
           "TAPE_BYTES"]

#: Largest tape :func:`vjp` keeps at once (the modes are processed in blocks that fit).
TAPE_BYTES = 64 * 2**20

NoiseScale = Callable[[int], "np.ndarray | float"] | None


def reads(sampler: Sampler, i: int) -> tuple[tuple[int, int], ...]:
    """The schedule positions step ``i`` reads: ``(0, j)`` is ``start[j]``, ``(1, j)`` ``end[j]``.

    In the order of :attr:`symspec.symbolic.StepMap.levels`: the current level, the next, then
    the earlier starting levels of a multistep sampler, most recent first (the first steps,
    which have no history yet, read their own start there).

    >>> from symspec import DDIM
    >>> reads(DDIM, 3)
    ((0, 3), (1, 3))
    """
    hist = ((0, i - k if i - k >= 0 else i) for k in range(1, sampler.history + 1))
    return ((0, i), (1, i), *hist)


def step_levels(schedule: Schedule, sampler: Sampler, i: int) -> tuple[float, ...]:
    """The level values step ``i`` of ``sampler`` reads on ``schedule`` (see :func:`reads`)."""
    arrays = (schedule.start, schedule.end)
    return tuple(float(arrays[a][j]) for a, j in reads(sampler, i))


@dataclass(frozen=True)
class Run:
    """One forward run, per mode (flat arrays over the modes).

    ``noise`` is ``S_00``, the output variance due to injected noise; the transfer is kept
    as a mantissa ``transfer_m`` and a binary exponent ``transfer_e`` (``transfer``,
    ``log_transfer`` combine them), so that it never underflows.  ``tape`` holds the dense
    state ``(S, T)`` before each step when asked for, ``trajectory`` the lists of ``S_00``
    and ``T_0`` before the first step and after each step.
    """

    noise: np.ndarray
    transfer_m: np.ndarray
    transfer_e: np.ndarray
    mean: np.ndarray | None
    tape: list | None
    trajectory: tuple[list, list] | None

    @property
    def transfer(self) -> np.ndarray:
        with np.errstate(under="ignore", over="ignore"):
            return np.ldexp(self.transfer_m, self.transfer_e)

    @property
    def log_transfer(self) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(np.abs(self.transfer_m)) + self.transfer_e * math.log(2)


class _Pool:
    """Work arrays of one size, reused from step to step.

    Allocating and freeing arrays of this size every step makes the C allocator return the
    memory to the system and fault it in again, which costs more than the arithmetic.
    """

    def __init__(self, size: int):
        self.size = size
        self.arrays: list[np.ndarray] = []
        self.free: list[np.ndarray] = []

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


@contextlib.contextmanager
def _float_errors(sampler: Sampler) -> Iterator[None]:
    """Raise floating-point errors in the recursion as a ``ValueError`` naming the sampler."""
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        try:
            yield
        except FloatingPointError as exc:
            raise ValueError(f"the response of {sampler.name!r} is not finite ({exc}); its "
                             "gains or noise grow without bound on this schedule") from None


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS on one thread: the recursion's ``daxpy`` and the adjoint's small products are
    memory-bound, and a second thread costs far more than it saves (40x on a loaded
    2-core machine)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn installs it
        yield
        return
    with threadpool_limits(1, user_api="blas"):
        yield


def _entries(sampler, schedule, i, lam, prediction_type, mean, pool, noise_scale):
    levels = step_levels(schedule, sampler, i)
    try:
        ent = compiled(sampler, variant(sampler, i, schedule.steps), prediction_type).entries(
            lam, levels, mean, pool)
    except NonLinearSamplerError:
        raise
    except (ValueError, ZeroDivisionError, OverflowError, FloatingPointError) as exc:
        raise ValueError(f"step {i} of {sampler.name!r} cannot be evaluated at levels "
                         f"{levels}: {exc}") from None
    if noise_scale is not None:
        f = noise_scale(i)
        ent = {key: v * f if key[0] == "Q" else v for key, v in ent.items()}
    return ent


def run(sampler: Sampler, schedule: Schedule, lam: np.ndarray, *,
        prediction_type: str = "epsilon", mean: np.ndarray | None = None,
        noise_scale: NoiseScale = None, trajectory: bool = False, tape: bool = False) -> Run:
    """Run ``sampler`` on ``schedule`` (in the sampler's space) for the flat modes ``lam``.

    ``mean`` (flat, optional) is the data mean; ``noise_scale(i)`` multiplies the noise
    covariance ``Q`` of step ``i`` (a per-mode array or a number).  Arguments are trusted:
    the public functions check them.
    """
    n, k, M = schedule.steps, sampler.state, lam.size
    # covariance of the injected noise (upper triangle), transfer column, mean; in a
    # multistep state None stands for an exact zero, which _step_general skips
    cov: dict = {(i, j): None for i in range(k) for j in range(i, k)}
    cov[0, 0] = np.zeros(M) if k == 1 else None
    tr: list = [np.ones(M)] + [None] * (k - 1)
    texp = np.zeros(M, dtype=np.int64)
    mu = [np.zeros(M)] + [None] * (k - 1) if mean is not None else None
    pool = None if k == 1 else _Pool(M)
    traj: tuple[list, list] | None = ([], []) if trajectory else None
    recorded: list | None = [] if tape else None
    with _float_errors(sampler):
        for i in range(n):
            if traj is not None:
                _record(traj, cov, tr, texp)
            if recorded is not None:
                recorded.append(_dense(cov, tr, texp, k, M, i >= 32))
            ent = _entries(sampler, schedule, i, lam, prediction_type, mean is not None, pool,
                           noise_scale)
            if k == 1:
                g, q = ent.get(("A", 0, 0), 0.0), ent.get(("Q", 0, 0), 0.0)
                c = cov[0, 0]
                c *= g * g
                c += q
                tr[0] *= g
                if mu is not None:
                    mu[0] = g * mu[0] + ent.get(("C", 0, 0), 0.0) * mean
            else:
                assert pool is not None
                cov, tr, mu = _step_general(ent, k, cov, tr, mu, mean, pool.new)
                pool.recycle([*tr, *cov.values(), *(mu or ())])
            if i % 32 == 31:  # keep the transfer in range: mantissa and binary exponent
                texp += _renormalise(tr, pool)
    if traj is not None:
        _record(traj, cov, tr, texp)
    noise = np.zeros(M) if cov[0, 0] is None else cov[0, 0] + np.zeros(M)
    out_mean = None if mu is None else np.zeros(M) + (0.0 if mu[0] is None else mu[0])
    return Run(noise, tr[0] + np.zeros(M), texp, out_mean,
               recorded, traj)


def vjp(sampler: Sampler, schedule: Schedule, lam: np.ndarray, bar_noise: np.ndarray,
        bar_transfer: np.ndarray | None, free: tuple[np.ndarray, np.ndarray], *,
        prediction_type: str = "epsilon", noise_scale: NoiseScale = None,
        tape: list | None = None, tape_bytes: int = TAPE_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """The exact gradient of ``sum(bar_noise * S_00 + bar_transfer * T_0)`` in the levels.

    ``free = (free_start, free_end)`` are boolean masks of the levels to differentiate
    (those held fixed need not be differentiable there, such as the clean level).  Returns
    ``(d/d start, d/d end)``, zero where not free; for a chained schedule the gradient in
    its grid is their sum at each shared level.  ``tape`` is :attr:`Run.tape` of a run
    over all of ``lam``, if one was made; otherwise the modes are run again in blocks.

    >>> import numpy as np, symspec
    >>> s = symspec.Schedule.from_alpha_bar([0.05, 0.5, 1.0])
    >>> lam = np.array([0.5, 2.0])
    >>> free = (np.array([True, True]), np.array([True, False]))  # all but the clean level
    >>> gs, ge = vjp(symspec.DDPM, s, lam, np.ones(2), None, free)
    >>> h = 1e-6
    >>> f = lambda a: run(symspec.DDPM, symspec.Schedule.from_alpha_bar([0.05, a, 1]),
    ...                   lam).noise.sum()
    >>> bool(np.isclose(gs[1] + ge[0], (f(0.5 + h) - f(0.5 - h)) / (2 * h), rtol=1e-6))
    True
    """
    n, M = schedule.steps, lam.size
    if tape is not None:
        return tuple(_backward(sampler, schedule, lam, tape, bar_noise, bar_transfer, free,
                               prediction_type, noise_scale))
    block = tape_block(sampler, schedule, tape_bytes)
    g = np.zeros((2, n))
    for lo in range(0, M, block):
        sl = slice(lo, min(M, lo + block))
        scale = None if noise_scale is None else _sliced(noise_scale, sl)
        fw = run(sampler, schedule, lam[sl], prediction_type=prediction_type,
                 noise_scale=scale, tape=True)
        g += _backward(sampler, schedule, lam[sl], fw.tape, bar_noise[sl],
                       None if bar_transfer is None else bar_transfer[sl], free,
                       prediction_type, scale)
    return g[0], g[1]


def tape_block(sampler: Sampler, schedule: Schedule, budget: int = TAPE_BYTES) -> int:
    """Modes per block whose tape (with its dense working copies) fits in ``budget`` bytes."""
    k = sampler.state
    per_mode = 16 * schedule.steps * (k * (k + 1) // 2 + k)
    return max(256, budget // per_mode)


def _sliced(noise_scale, sl):
    def f(i):
        v = noise_scale(i)
        return v[sl] if np.ndim(v) else v
    return f


def _backward(sampler, schedule, lam, tape, bar_noise, bar_transfer, free, prediction_type,
              noise_scale):
    n, k, M = schedule.steps, sampler.state, lam.size
    Sbar, Tbar = np.zeros((k, k, M)), np.zeros((k, M))
    Sbar[0, 0] = bar_noise
    if bar_transfer is not None:
        Tbar[0] = bar_transfer
    g, powers = np.zeros((2, n)), {}
    arrays = (schedule.start, schedule.end)
    for i in range(n - 1, -1, -1):
        S, T = tape[i]
        pos = reads(sampler, i)
        wrt = tuple(p for p, (a, j) in enumerate(pos) if free[a][j])
        levels = tuple(float(arrays[a][j]) for a, j in pos)
        A, ent = _maps(sampler, i, n, levels, lam, powers, prediction_type, wrt)
        if wrt:
            if k == 1:  # scalars per mode: plain products beat einsum
                Abar = (2 * Sbar[0, 0] * A[0, 0] * S[0, 0] + Tbar[0] * T[0])[None, None]
            else:
                Abar = 2 * np.einsum("abm,bcm,cdm->adm", Sbar, A, S) + Tbar[:, None] * T[None]
            qs = 1.0 if noise_scale is None else noise_scale(i)
            gi = np.zeros(len(wrt))
            for (kind, r, c), (_, der) in ent.items():  # Q: both triangles
                gi += der @ (Abar[r, c] if kind == "A" else Sbar[r, c] * qs * (1 + (r != c)))
            for p, v in zip(wrt, gi, strict=True):
                a, j = pos[p]
                g[a, j] += v
        if k == 1:
            Sbar, Tbar = Sbar * A * A, Tbar * A[0]
        else:
            Sbar = np.einsum("bam,bcm,cdm->adm", A, Sbar, A)
            Tbar = np.einsum("bam,bm->am", A, Tbar)
    return g


def _maps(sampler, i, n, levels, lam, powers, prediction_type, wrt):
    """Dense ``A`` (shape ``(k, k, M)``) of step ``i`` and the entries with derivatives."""
    k, M = sampler.state, lam.size
    try:
        cg = compiled_gradient(sampler, variant(sampler, i, n), prediction_type, wrt)
        if cg.width not in powers:
            powers[cg.width] = lam_powers(lam, cg.width)
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            ent = cg.entries(powers[cg.width], levels)
    except (ValueError, ZeroDivisionError, OverflowError, FloatingPointError) as exc:
        raise ValueError(f"step {i} of {sampler.name!r} cannot be evaluated at levels {levels}: "
                         f"{exc}") from None
    A = np.zeros((k, k, M))
    for (kind, r, c), (val, _) in ent.items():
        if kind == "A":
            A[r, c] = val
    return A, ent


def _dense(cov, tr, texp, k, M, scaled):
    """The state as dense arrays ``S`` (``(k, k, M)``) and true ``T`` (``(k, M)``);
    ``scaled``: whether the transfer has exponents taken out yet."""
    S, T = np.zeros((k, k, M)), np.zeros((k, M))
    for (i, j), v in cov.items():
        if v is not None:
            S[i, j] = S[j, i] = v
    with np.errstate(under="ignore", over="ignore"):
        for i, v in enumerate(tr):
            if v is not None:
                T[i] = np.ldexp(v, texp) if scaled else v
    return S, T


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


def _record(traj, cov, tr, texp):
    with np.errstate(under="ignore", over="ignore"):  # the caller checks the output
        zero = np.zeros(texp.size)  # entries may be None (exact zeros) or scalars
        traj[0].append(zero + (0.0 if cov[0, 0] is None else cov[0, 0]))
        traj[1].append(np.ldexp(zero + tr[0], texp))


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
