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
:func:`symspec.design.diagnose`) calls these two functions and nothing else (a client that
runs the modes in blocks may :func:`prepare` the run once and :func:`run_planned` each block).

Speed: the level coefficients of every step are evaluated once per run (:func:`prepare`), not
once per block of modes, and each step structure is compiled once into straight-line NumPy
code (:func:`_programs`): the same operations in the same order as an interpreter of the
sparse step would run, so the results are the same to the last bit, without its Python work
per step; work arrays are reused, and state components that nothing reads are not updated.

Memory: :func:`vjp` needs the state before every step.  It keeps them for a block of modes
at a time (at most ``tape_bytes`` of them), so an objective and its gradient need the PSD
arrays plus a bounded tape, for any sampler and step count.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy.linalg.blas import daxpy

from ..schedules import Schedule
from ..symbolic.engine import NonLinearSamplerError, Sampler, variant
from .lambdify import compiled, compiled_gradient, lam_powers

__all__ = ["Run", "Plan", "run", "prepare", "run_planned", "vjp", "reads", "step_levels",
           "one_blas_thread", "tape_block", "TAPE_BYTES"]

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


def run(sampler: Sampler, schedule: Schedule, lam: np.ndarray, *,
        prediction_type: str = "epsilon", mean: np.ndarray | None = None,
        noise_scale: NoiseScale = None, trajectory: bool = False, tape: bool = False) -> Run:
    """Run ``sampler`` on ``schedule`` (in the sampler's space) for the flat modes ``lam``.

    ``mean`` (flat, optional) is the data mean; ``noise_scale(i)`` multiplies the noise
    covariance ``Q`` of step ``i`` (a per-mode array or a number).  Arguments are trusted:
    the public functions check them.  The same as :func:`run_planned` on :func:`prepare`.
    """
    plan = prepare(sampler, schedule, prediction_type, mean is not None)
    return run_planned(plan, lam, mean=mean, noise_scale=noise_scale, trajectory=trajectory,
                       tape=tape)


@dataclass(frozen=True)
class Plan:
    """What a run does at each step, evaluated once for any number of blocks of modes.

    Per step: the coefficients of its entries (numerators and denominators in ``lam``,
    normalised to a monic denominator), and the compiled code that evaluates them on the
    modes and moves the state (:func:`_programs`).  ``live`` marks the state components that
    the output depends on: the others (a history value that no step reads) are not updated
    by a run without a tape.
    """

    sampler: Sampler
    steps: int
    mean: bool
    live: tuple[bool, ...]
    levels: tuple            # the levels of each step, for messages
    sigs: tuple              # per step: the interned structure of its entries
    consts: tuple            # per step: the coefficients, a flat tuple of floats
    index: tuple             # per step: {(kind, i, j): position among its entries}


_SIGS: dict = {}  # the structure of a step's entries -> a small integer
_SIG_LIST: list = []  # and back
_LAYOUTS: dict = {}  # the entries of a compiled map -> a small integer
_LOCK = threading.Lock()  # for the two tables above (responses of dask chunks run in threads)


def prepare(sampler: Sampler, schedule: Schedule, prediction_type: str = "epsilon",
            mean: bool = False) -> Plan:
    """The :class:`Plan` of ``sampler`` on ``schedule`` (in its space); ``mean``: with the
    mean's column ``C``.  Evaluates every step's level coefficients once."""
    n, k = schedule.steps, sampler.state
    levels, sigs, consts, index = [], [], [], []
    maps: dict = {}  # variant -> (compiled map, its layout)
    reads_col: set = set()
    for i in range(n):
        lv = step_levels(schedule, sampler, i)
        key = variant(sampler, i, n)
        try:
            if key not in maps:
                c = compiled(sampler, key, prediction_type)
                maps[key] = c, _layout(c, mean)
                reads_col.update((r, col) for kind, r, col in maps[key][1][1] if kind == "A")
            c, lay = maps[key]
            sig, flat = _spec(lay, c.coeffs(*lv))
        except NonLinearSamplerError:
            raise
        except (ValueError, ZeroDivisionError, OverflowError, FloatingPointError) as exc:
            raise ValueError(f"step {i} of {sampler.name!r} cannot be evaluated at levels "
                             f"{lv}: {exc}") from None
        levels.append(lv)
        s = _SIGS.get(sig)
        if s is None:
            with _LOCK:
                s = _SIGS.get(sig)
                if s is None:
                    _SIG_LIST.append(_struct(lay, sig))
                    s = _SIGS[sig] = len(_SIG_LIST) - 1
        sigs.append(s)
        consts.append(flat)
        index.append(lay[1])
    live = [False] * k  # components the output reads, through any chain of steps
    live[0] = True
    changed = True
    while changed:
        changed = False
        for r, col in reads_col:
            if live[r] and not live[col]:
                live[col] = changed = True
    return Plan(sampler, n, mean, tuple(live), tuple(levels), tuple(sigs), tuple(consts),
                tuple(index))


@functools.cache
def _layout(c, mean: bool) -> tuple:
    """``(spans, index, number)`` of a compiled map: per entry taken (the C column only if
    ``mean``) its ``(kind, i, j, start, n_num, n_den)`` among the coefficients,
    ``{(kind, i, j): position}``, and a small integer naming the spans."""
    spans, o = [], 0
    for kind, i, j, nn, nd in c.layout:
        if mean or kind != "C":
            spans.append((kind, i, j, o, nn, nd))
        o += nn + nd
    with _LOCK:
        number = _LAYOUTS.setdefault(tuple(spans), len(_LAYOUTS))
    return tuple(spans), {(kind, i, j): e for e, (kind, i, j, *_) in enumerate(spans)}, number


def _spec(lay: tuple, vals) -> tuple:
    """``(structure, coefficients)`` of one step: the entries of
    :meth:`symspec.numeric.lambdify._Compiled.entries` (numerator and denominator divided
    by the leading denominator coefficient, one flat tuple); the structure is what the
    code depends on: which coefficients are 0 or 1, and which entries share a denominator.
    """
    flat: list = []
    shares: list = []
    dens: dict = {}
    for e, (_, _, _, o, nn, nd) in enumerate(lay[0]):
        lead = vals[o + nn]
        if lead == 0:
            lead = 1.0
        flat += [x / lead for x in vals[o:o + nn + nd]]
        if nd > 1:  # entries of one step often share one denominator
            shares.append(dens.setdefault(tuple(flat[-nd:]), e))
    toks = tuple([2 if x == 1 else x != 0 for x in flat])
    return (lay[2], toks, tuple(shares)), tuple(flat)


def _struct(lay, sig) -> tuple:
    """Per entry ``(kind, i, j, numerator tokens, denominator tokens, share)`` (tokens: 2
    for a coefficient 1, 0 for 0; share: the entry whose denominator it reuses, or -1)."""
    toks, shares = sig[1], iter(sig[2])
    out = []
    for e, (kind, i, j, o, nn, nd) in enumerate(lay[0]):
        del o
        share = next(shares) if nd > 1 else -1
        out.append((kind, i, j, toks[:nn], toks[nn:nn + nd], -1 if share == e else share))
        toks = toks[nn + nd:]
    return tuple(out)


def run_planned(plan: Plan, lam: np.ndarray, *, mean: np.ndarray | None = None,
                noise_scale: NoiseScale = None, trajectory: bool = False,
                tape: bool = False) -> Run:
    """:func:`run` of a :class:`Plan` (made with ``mean=True`` if ``mean`` is given)."""
    if plan.mean != (mean is not None):
        raise ValueError("the plan was prepared " + ("with" if plan.mean else "without") +
                         " a mean: pass one exactly when it has")
    sampler = plan.sampler
    n, k, M = plan.steps, sampler.state, lam.size
    # covariance of the injected noise (upper triangle), transfer column, mean; in a
    # multistep state None stands for an exact zero, which the step skips
    cov: list = [None] * (k * (k + 1) // 2)
    cov[0] = np.zeros(M) if k == 1 else None
    tr: list = [np.ones(M)] + [None] * (k - 1)
    texp = np.zeros(M, dtype=np.int64)
    mu: list | None = [np.zeros(M)] + [None] * (k - 1) if mean is not None else None
    pool = None if k == 1 else _Pool(M)
    new = (lambda: None) if pool is None else pool.new
    traj: tuple[list, list] | None = ([], []) if trajectory else None
    recorded: list | None = [] if tape else None
    live = tuple([True] * k) if tape else plan.live
    kinds = _kinds(cov, tr, mu)
    sigs, constants, programs = plan.sigs, plan.consts, _PROGRAMS
    with _float_errors(sampler):
        for i in range(n):
            if traj is not None:
                _record(traj, cov, tr, texp)
            if recorded is not None:
                recorded.append(_dense(cov, tr, texp, k, M, i >= 32))
            sig, consts = sigs[i], constants[i]
            prog = programs.get((sig, kinds, live))
            if prog is None:
                prog = _programs(sig, k, kinds, live)
            try:
                ent = prog.entries(lam, consts, new)
            except (ValueError, ZeroDivisionError, OverflowError, FloatingPointError) as exc:
                raise ValueError(f"step {i} of {sampler.name!r} cannot be evaluated at levels "
                                 f"{plan.levels[i]}: {exc}") from None
            f = None if noise_scale is None else noise_scale(i)
            if k == 1:
                idx = plan.index[i]
                if f is not None:
                    ent = [ent[p] * f if key[0] == "Q" else ent[p] for key, p in idx.items()]
                g = ent[idx["A", 0, 0]] if ("A", 0, 0) in idx else 0.0
                q = ent[idx["Q", 0, 0]] if ("Q", 0, 0) in idx else 0.0
                c = cov[0]
                c *= g * g
                c += q
                tr[0] *= g
                if mu is not None:
                    assert mean is not None
                    cm = ent[idx["C", 0, 0]] if ("C", 0, 0) in idx else 0.0
                    mu[0] = g * mu[0] + cm * mean
            else:
                assert pool is not None
                if f is None:
                    assert prog.update is not None
                    cov, tr, mu = prog.update(ent, cov, tr, mu, mean, new)
                    kinds = prog.out
                else:
                    fkind = 2 if np.ndim(f) else 1
                    p2 = _PROGRAMS.get((sig, kinds, live, fkind))
                    if p2 is None:
                        p2 = _programs(sig, k, kinds, live, fkind)
                    assert p2.update is not None
                    cov, tr, mu = p2.update(ent, cov, tr, mu, mean, new, f)
                    kinds = p2.out
                pool.recycle([*tr, *cov, *(mu or ())])
            if i % 32 == 31:  # keep the transfer in range: mantissa and binary exponent
                texp += _renormalise(tr, pool)
    if traj is not None:
        _record(traj, cov, tr, texp)
    noise = np.zeros(M) if cov[0] is None else cov[0] + np.zeros(M)
    out_mean = None if mu is None else np.zeros(M) + (0.0 if mu[0] is None else mu[0])
    return Run(noise, tr[0] + np.zeros(M), texp, out_mean,
               recorded, traj)


def _kinds(cov, tr, mu) -> tuple:
    """The kind of each state value: 0 an exact zero (``None``), 1 a number, 2 an array."""
    vals = [*cov, *tr, *(mu if mu is not None else ())]
    return (mu is not None, *(0 if v is None else 2 if isinstance(v, np.ndarray) else 1
                              for v in vals))


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
    plan = prepare(sampler, schedule, prediction_type)  # shared by the blocks
    for lo in range(0, M, block):
        sl = slice(lo, min(M, lo + block))
        scale = None if noise_scale is None else _sliced(noise_scale, sl)
        fw = run_planned(plan, lam[sl], noise_scale=scale, tape=True)
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
    pairs = [(i, j) for i in range(k) for j in range(i, k)]
    for (i, j), v in zip(pairs, cov, strict=True):  # the upper triangle, row by row
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
        traj[0].append(zero + (0.0 if cov[0] is None else cov[0]))
        traj[1].append(np.ldexp(zero + tr[0], texp))


@dataclass(frozen=True)
class _Program:
    """Compiled code of one step structure: ``entries(lam, consts, new)`` evaluates the
    entries on the modes, ``update(ent, cov, tr, mu, m, new[, f])`` moves the state;
    ``out`` is the kinds of the state it returns (see :func:`_kinds`)."""

    entries: Callable
    update: Callable | None
    out: tuple
    source: str


_PROGRAMS: dict = {}  # (structure, state kinds, live[, noise-scale kind]) -> _Program


def _programs(sig: int, k: int, kinds: tuple, live: tuple, fkind: int = 0) -> _Program:
    """Generate (once) the straight-line code of a step: the same operations, in the same
    order, as an interpreter of the step's sparse structure would run (``_horner`` and
    ``_rational`` of :mod:`symspec.numeric.lambdify`; ``S <- A S A^T + Q`` by sparse
    rows), without its work per step: entries that are exact zeros (``None``) are skipped,
    a coefficient 1 multiplies nothing, scalar coefficients are added by ``daxpy``."""
    struct = _SIG_LIST[sig]
    em = _Emitter()
    ent = em.entries(struct)
    lines = ["def entries(lam, k, new):", *em.lines,
             f"    return ({''.join(v.name + ', ' for v in ent)})"]
    out = kinds
    if k > 1:
        em.lines = []
        out = em.update(struct, ent, k, kinds, live, fkind)
        args = "e, cov, tr, mu, m, new" + (", f" if fkind else "")
        fresh = {f"e{e}" for e, v in enumerate(ent) if v.kind == 2} | em.made
        lines += [f"def update({args}):", *_reuse(em.lines, fresh)]
    source = "\n".join(lines) + "\n"
    scope = {"np": np, "daxpy": daxpy, "add": np.add, "multiply": np.multiply,
             "divide": np.divide}
    exec(compile(source, f"<symspec step {sig}>", "exec"), scope)
    prog = _Program(scope["entries"], scope.get("update"), out, source)
    _PROGRAMS[(sig, kinds, live) if not fkind else (sig, kinds, live, fkind)] = prog
    return prog


_NAME = re.compile(r"\b[tes]\d+\b")
_FROM_POOL = re.compile(r"^    (t\d+) = (add|multiply|divide)\((\w+), (\w+), new\(\)\)$")


def _reuse(lines: list[str], fresh: set[str]) -> list[str]:
    """``lines`` with a product or sum written over an operand that dies there, if that
    operand is an array of this step (``fresh``): fewer arrays per step, the same values."""
    last: dict[str, int] = {}
    for n, line in enumerate(lines):
        for name in _NAME.findall(line):
            last[name] = n
    out = list(lines)
    for n, line in enumerate(lines):
        m = _FROM_POOL.match(line)
        if m is None:
            continue
        for arg in m.group(3, 4):
            if arg in fresh and last[arg] == n:
                out[n] = f"    {m.group(1)} = {m.group(2)}({m.group(3)}, {m.group(4)}, {arg})"
                break
    return out


class _V:
    """A value in generated code: its name, kind (1 a number, 2 an array) and, for a
    number, whether it is exactly 1."""

    __slots__ = ("name", "kind", "one")

    def __init__(self, name: str, kind: int, one: bool = False):
        self.name, self.kind, self.one = name, kind, one


class _Emitter:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.count = 0
        self.made: set[str] = set()  # the arrays it takes from the pool

    def _new(self, expr: str) -> _V:
        self.count += 1
        name = f"t{self.count}"
        self.lines.append(f"    {name} = {expr}")
        self.made.add(name)
        return _V(name, 2)

    def _horner(self, o: int, toks: tuple) -> _V:
        """``lambdify._horner`` of the polynomial at ``k[o:]`` (tokens: 2 one, 0 zero)."""
        if toks[0] == 2:
            p = self._new(f"add(lam, k[{o + 1}], new())")
        else:
            p = self._new(f"multiply(lam, k[{o}], new())")
            if toks[1]:
                self.lines.append(f"    {p.name} += k[{o + 1}]")
        for t in range(2, len(toks)):
            self.lines.append(f"    {p.name} *= lam")
            if toks[t]:
                self.lines.append(f"    {p.name} += k[{o + t}]")
        return p

    def entries(self, struct) -> list[_V]:
        """``lambdify._Compiled.entries``: each entry ``num / den`` as ``_rational``."""
        out: list[_V] = []
        dens: dict[int, _V] = {}
        o = 0
        for e, (_, _, _, tn, tk, share) in enumerate(struct):
            nn, nd = len(tn), len(tk)
            if nd == 1:
                if nn == 1:
                    v = _V(f"k[{o}]", 1, tn[0] == 2)
                else:
                    v = self._horner(o, tn)
            else:
                if share < 0:
                    dens[e] = self._horner(o + nn, tk)
                d = dens[e if share < 0 else share]
                if nn == 1:
                    v = self._new(f"divide(k[{o}], {d.name}, new())")
                else:
                    v = self._horner(o, tn)
                    self.lines.append(f"    {v.name} /= {d.name}")
            out.append(v)
            o += nn + nd
        return out

    def _dot(self, row, values) -> _V | None:
        """``sum(c * values[j])`` over a sparse row, as the interpreter did it."""
        out: _V | None = None
        owned = False
        for j, c in sorted(row, key=lambda jc: jc[1].kind == 1):
            v = values[j]
            if v is None:
                continue
            if owned and c.kind == 1 and v.kind == 2 and out is not None and out.kind == 2:
                self.lines.append(f"    daxpy({v.name}, {out.name}, a={c.name})")
                continue
            one = c.kind == 1 and c.one
            t = v if one else self._new(f"multiply({c.name}, {v.name}, new())")
            if out is None:
                out, owned = t, not one
            elif owned:
                self.lines.append(f"    {out.name} += {t.name}")
            else:
                if one:
                    out = self._new(f"add({out.name}, {t.name}, new())")
                else:
                    self.lines.append(f"    add({out.name}, {t.name}, {t.name})")
                    out = t
                owned = True
        return out

    def _add(self, a: _V | None, b: _V | None) -> _V | None:
        if a is None or b is None:
            return a if b is None else b
        if a.kind == 2 or b.kind == 2:
            return self._new(f"add({a.name}, {b.name}, new())")
        self.count += 1
        name = f"t{self.count}"
        self.lines.append(f"    {name} = {a.name} + {b.name}")
        return _V(name, 1)

    def update(self, struct, ent: list[_V], k: int, kinds: tuple, live: tuple,
               fkind: int) -> tuple:
        """``S <- A S A^T + Q``, ``T <- A T``, ``mu <- A mu + C m`` (live components only)."""
        ent = [_V(f"e{e}", v.kind, v.one) for e, v in enumerate(ent)]  # as update sees them
        if ent:
            self.lines.append(f"    {''.join(v.name + ', ' for v in ent)}= e")
        for e, (kind, *_rest) in enumerate(struct):
            if kind == "Q" and fkind:  # the noise scale of this step
                self.count += 1
                name = f"t{self.count}"
                self.lines.append(f"    {name} = {ent[e].name} * f")
                ent[e] = _V(name, max(ent[e].kind, fkind))
        keys = {(kind, i, j): e for e, (kind, i, j, *_rest) in enumerate(struct)}
        pairs = [(i, j) for i in range(k) for j in range(i, k)]
        has_mu = kinds[0]
        states = [None if kd == 0 else _V(f"s{n}", kd) for n, kd in enumerate(kinds[1:])]
        cov = dict(zip(pairs, states[:len(pairs)], strict=True))
        tr = states[len(pairs):len(pairs) + k]
        mu = states[len(pairs) + k:] if has_mu else None
        self.lines.append(f"    {''.join(s.name + ', ' if s else '_, ' for s in states)}= "
                          f"(*cov, *tr{', *mu' if has_mu else ''})")
        rows: list[list] = [[] for _ in range(k)]
        for (kind, i, j), e in keys.items():
            if kind == "A":
                rows[i].append((j, ent[e]))
        if any(v is not None for v in cov.values()) or any(key[0] == "Q" for key in keys):
            want = [(i, j) for i, j in pairs if live[i] and live[j]]
            need = {(i, b): None for i, j in want for b, _ in rows[j]}
            AS = {(i, b): self._dot(rows[i], [cov[min(a, b), max(a, b)] for a in range(k)])
                  for i, b in need}
            q = {(i, j): ent[keys["Q", i, j]] if ("Q", i, j) in keys else None
                 for i, j in pairs}
            cov = {(i, j): (self._add(self._dot(rows[j], {b: AS[i, b] for b, _ in rows[j]}),
                                      q[i, j]) if (i, j) in want else None)
                   for i, j in pairs}
        tr = [self._dot(row, tr) if live[r] else None for r, row in enumerate(rows)]
        if mu is not None:
            mu_new: list[_V | None] = []
            for r, row in enumerate(rows):
                if not live[r]:
                    mu_new.append(None)
                    continue
                c = ent[keys["C", r, 0]] if ("C", r, 0) in keys else None
                cm = None
                if c is not None:
                    self.count += 1
                    cm = _V(f"t{self.count}", 2)
                    self.lines.append(f"    {cm.name} = {c.name} * m")
                mu_new.append(self._add(self._dot(row, mu), cm))
            mu = mu_new
        vals = [*cov.values(), *tr, *(mu or ())]

        def ref(v: _V | None) -> str:
            return "None" if v is None else v.name

        self.lines.append(f"    return [{', '.join(map(ref, cov.values()))}], "
                          f"[{', '.join(map(ref, tr))}], "
                          + (f"[{', '.join(map(ref, mu))}]" if mu is not None else "None"))
        return (has_mu, *(0 if v is None else v.kind for v in vals))
