"""One generic engine: a sampler is a short step function, derived or run by the same code.

A step function is ordinary arithmetic in the k-diffusion style::

    @sampler(space="vp")
    def ddim(c, x, *, eta=0.0):
        "DDIM (Song et al. 2021, eq. 12)."
        ...
        return x_next

``c`` is a :class:`Step` context: the current and next noise levels ``c.t``, ``c.p``
(:class:`~symspec.symbolic.denoiser.Level`), earlier levels ``c.hist``, the exact denoiser
``c.x0(x)`` / ``c.eps(x)``, fresh noise ``c.noise()`` and structural flags ``c.first``,
``c.last`` and ``c.order``.  A sampler with history (multistep) takes and returns its
whole state: ``def dpmpp_2m(c, x, d): ... return x_next, d_next``.

:func:`derive` runs the step on SymPy symbols and certifies that it is linear,
``state' = A state + B w + C m`` (``w`` fresh noise, ``m`` the data mean).
The numeric layer (:mod:`symspec.numeric`) runs the same function on arrays.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeAlias

import sympy as sp
from sympy.core.function import Application

from .._checks import Space, check_space, check_type
from . import denoiser as dn
from . import symbols as S

__all__ = ["Sampler", "Step", "StepMap", "NonLinearSamplerError", "DerivationError", "default_key",
           "sampler", "derive", "variant",
           "level_symbols", "closed_form"]


#: diffusers' rule for the level a step goes to on an integer timestep grid.
PrevRule: TypeAlias = Literal["chained", "stride"]


class DerivationError(ValueError):
    """A sampler definition cannot be run on symbols (for a reason other than non-linearity)."""


class NonLinearSamplerError(DerivationError):
    """A sampler definition is not linear in its state under the Gaussian denoiser."""


@dataclass(frozen=True)
class Sampler:
    """A sampler as data: a step function, its options, and the facts it carries.

    Call it with keyword options to get a configured copy: ``DDIM(eta=1.0)``; ``check``
    (if set) validates the options there, with the valid range in its message.  ``prev``
    is the rule diffusers' scheduler for this sampler uses to pick the level a step goes
    to on an integer timestep grid: ``"chained"`` (the next timestep of the grid) or
    ``"stride"`` (``t - T // N``, DDIMScheduler's rule).  How a sampler is exported to
    diffusers is keyed on the sampler's step function
    (:data:`symspec.diffusers.export.EXPORTERS`), never on its name.
    """

    name: str
    step: Callable = field(repr=False)
    space: Space = "vp"
    state: int = 1
    history: int = 0
    options: tuple[tuple[str, Hashable], ...] = ()
    order_at: Callable[..., Hashable] | None = field(default=None, repr=False, compare=True)
    doc: str = field(default="", repr=False, compare=False)
    prev: PrevRule = field(default="chained", compare=False)
    check: Callable[..., None] | None = field(default=None, repr=False, compare=False)

    def __call__(self, **options: Hashable) -> Sampler:
        known = dict(self.options)
        bad = sorted(set(options) - set(known))
        if bad:
            raise TypeError(
                f"sampler {self.name!r} has no option {bad[0]!r}; its options are {sorted(known)}"
            )
        for k, v in options.items():
            try:
                hash(v)
            except TypeError:
                raise TypeError(f"option {k!r} of sampler {self.name!r} must be hashable, "
                                f"got {type(v).__name__}") from None
        known.update(options)
        if self.check is not None:
            self.check(**known)
        return replace(self, options=tuple(sorted(known.items())))

    @property
    def opts(self) -> dict[str, Hashable]:
        """The options as a dict."""
        return dict(self.options)


def sampler(space: Space = "vp", state: int = 1, history: int | None = None,
            order: Callable[..., Hashable] | None = None, name: str | None = None, *,
            prev: PrevRule = "chained", check: Callable[..., None] | None = None
            ) -> Callable[[Callable], Sampler]:
    """Decorator: turn a step function into a :class:`Sampler`.

    Parameters
    ----------
    space : {"vp", "ve"}
        The space the state lives in: VP (``x = sqrt(ab) x0 + sqrt(1-ab) eps``) or
        VE (``x = x0 + sigma eps``).
    state : int
        Size of the state (``x`` plus stored history such as earlier denoised values).
    history : int, optional
        Number of earlier noise levels the step reads as ``c.hist`` (default ``state - 1``).
    order : callable, optional
        ``order(i, n, **options)``: a small hashable tag for step ``i`` of ``n`` (for
        example the solver order used there), seen as ``c.order``.  Steps with equal
        ``(first, last, order)`` share one derivation.
    name : str, optional
        Defaults to the function's name.
    prev : {"chained", "stride"}
        diffusers' rule for the level a step goes to on integer timesteps
        (:attr:`Sampler.prev`).
    check : callable, optional
        ``check(**options)`` raises ``ValueError`` for option values the step cannot take.

    Notes
    -----
    The step function is called as ``step(c, x, *history, **options)`` and returns the next
    state (``x`` alone, or a tuple of ``state`` values).  ``c`` is a :class:`Step`:

    * ``c.t``, ``c.p``: the current and next :class:`~symspec.symbolic.denoiser.Level` (attributes
      ``alpha``, ``sigma``, ``alpha_bar``, ``sigma_ve``, ``logsnr``); ``c.hist``: earlier
      levels, most recent first.  Build other levels with ``Level.vp`` / ``Level.ve``.
    * ``c.x0(x, at=level)``, ``c.eps(x, at=level)``: the exact denoiser (default level
      ``c.t``); ``c.noise()``: a fresh standard normal draw.
    * ``c.first``, ``c.last``, ``c.order``: structural flags, ordinary Python values.

    Keyword-only arguments with defaults are the sampler's options (hashable values).
    Functions of the levels use :mod:`symspec.ops` (``sqrt``, ``exp``, ``log``, ``expm1``),
    so one definition runs on SymPy symbols (:func:`derive`) and on arrays
    (:func:`symspec.sample`).  The step must be linear in the state, the noise and the data
    mean: clipping, thresholding, branching on values of the state, or a function of the
    state raise :class:`NonLinearSamplerError`, naming the operation and the line.

    Examples
    --------
    Euler on the probability-flow ODE in sigma, ``dx/dsigma = (x - x0_hat) / sigma``:

    >>> @sampler(space="ve")
    ... def my_euler(c, x):
    ...     return x + (c.p.sigma - c.t.sigma) * (x - c.x0(x)) / c.t.sigma
    >>> derive(my_euler).gain
    (lambda + sigma_p*sigma_t)/(lambda + sigma_t**2)

    Branching on the state is refused:

    >>> @sampler(space="ve")
    ... def clipped(c, x):
    ...     return c.x0(x) if c.x0(x) > 0 else 0 * x
    >>> derive(clipped)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    symspec...NonLinearSamplerError: sampler 'clipped' branches on the value of the state...
    """
    check_space(space)
    if prev not in ("chained", "stride"):
        raise ValueError(f"prev must be 'chained' or 'stride', got {prev!r}")
    if not isinstance(state, int) or state < 1:
        raise ValueError(f"state must be a positive int, got {state!r}")

    def wrap(fn: Callable) -> Sampler:
        params = inspect.signature(fn).parameters.values()
        opts = tuple(sorted((p.name, p.default) for p in params
                            if p.kind is p.KEYWORD_ONLY and p.default is not p.empty))
        smp = Sampler(name or fn.__name__, fn, space, state,
                      state - 1 if history is None else history, opts, order,
                      inspect.getdoc(fn) or "", prev, check)
        if check is not None:
            check(**smp.opts)
        return smp

    return wrap


def variant(smp: Sampler, i: int, n: int) -> tuple[bool, bool, Hashable]:
    """The structural key ``(first, last, order)`` of step ``i`` (0-based) of ``n``."""
    order = smp.order_at(i, n, **smp.opts) if smp.order_at else 1
    return (i == 0, i == n - 1, order)


class Step:
    """What a step function sees: levels, the exact denoiser, noise and structure."""

    def __init__(self, t, p, hist, lam, m, prediction_type, noise, key):
        self.t, self.p, self.hist = t, p, tuple(hist)
        self.lam, self.m, self.prediction_type = lam, m, prediction_type
        self._noise = noise
        self._key, self.reads = tuple(key), set()

    def _flag(self, i):
        self.reads.add(i)
        return self._key[i]

    first = property(lambda self: self._flag(0), doc="Whether this is the first step.")
    last = property(lambda self: self._flag(1), doc="Whether this is the last step.")
    order = property(lambda self: self._flag(2), doc="The sampler's ``order(i, n)`` tag here.")

    def x0(self, x, at: dn.Level | None = None):
        """Clean estimate from the exact model (answering in the configured prediction type)."""
        at = self.t if at is None else at
        out = dn.model_output(x, at, self.lam, self.m, self.prediction_type)
        return dn.to_x0(out, x, at, self.prediction_type)

    def eps(self, x, at: dn.Level | None = None):
        """Noise estimate from the exact model."""
        at = self.t if at is None else at
        out = dn.model_output(x, at, self.lam, self.m, self.prediction_type)
        return dn.to_eps(out, x, at, self.prediction_type)

    def noise(self):
        """A fresh standard normal draw, independent of everything else."""
        return self._noise()


def make_level(value, space: str) -> dn.Level:
    """A :class:`~symspec.symbolic.denoiser.Level` from a schedule value in ``space``."""
    return dn.Level.vp(value) if space == "vp" else dn.Level.ve(value)


def level_symbols(smp: Sampler) -> tuple[sp.Symbol, ...]:
    """The level symbols of one step, in argument order: current, next, then history."""
    names = ["t", "p"] + [f"h{k}" for k in range(1, smp.history + 1)]
    return tuple(S.level(nm, smp.space) for nm in names)


@dataclass(frozen=True)
class StepMap:
    """A derived one-step map ``state' = A state + B w + C m``, with ``Q = B B^T``.

    All entries are SymPy expressions in ``lam`` and the level symbols ``levels``.
    """

    sampler: Sampler
    key: tuple
    prediction_type: str
    levels: tuple[sp.Symbol, ...]
    A: sp.ImmutableMatrix
    B: sp.ImmutableMatrix
    C: sp.ImmutableMatrix
    Q: sp.ImmutableMatrix

    @property
    def gain(self) -> sp.Expr:
        """``A[0, 0]``: the per-mode gain of a one-step sampler."""
        return self.A[0, 0]

    @property
    def noise_var(self) -> sp.Expr:
        """``Q[0, 0]``: the variance injected into ``x`` per step."""
        return self.Q[0, 0]


def opaque(e: sp.Expr, keep: set) -> tuple[sp.Expr, dict]:
    """``e`` with each largest subexpression free of the symbols ``keep`` made a symbol.

    Returns the new expression and the map back.  A step map entry is rational in ``lam``
    with coefficients that are (often large) expressions of the noise levels; simplifying
    the rational structure with those coefficients held opaque is fast, and leaves each
    coefficient as the sampler computes it.

    >>> from symspec.symbolic.symbols import lam
    >>> a, b = sp.symbols("a b", positive=True)
    >>> o, back = opaque(sp.sqrt(a) * lam / (b * lam + sp.log(a)) + a, {lam})
    >>> len(back), sp.simplify(o.xreplace(back) - sp.sqrt(a) * lam / (b * lam + sp.log(a)) - a)
    (4, 0)
    """
    back: dict = {}
    names: dict = {}
    deps: dict = {}

    def moves(node):  # does node contain a symbol of keep (memoised: trees share nodes)
        if node not in deps:
            deps[node] = node in keep if node.is_Atom else any(map(moves, node.args))
        return deps[node]

    def name(node):
        if node.is_Number:
            return node
        if node not in names:
            if -node in names:  # one symbol for a - b and b - a: they cancel exactly
                return -names[-node]
            names[node] = sp.Dummy()
            back[names[node]] = node
        return names[node]

    def walk(node):
        if not moves(node):
            return name(node)
        if node.is_Atom:
            return node
        if node.is_Add or node.is_Mul:
            fixed = [a for a in node.args if not moves(a)]
            moving = [walk(a) for a in node.args if moves(a)]
            return node.func(*moving, name(node.func(*fixed))) if fixed else node.func(*moving)
        return node.func(*map(walk, node.args))

    return walk(e), back


def simplifies_whole(e: sp.Expr) -> bool:
    """Whether a step-map entry is simplified whole (else with its level coefficients opaque).

    Whole: algebraic entries of one step (two levels: DDPM, DDIM, Euler, Heun, ...).
    Opaque: entries with logarithms or exponentials of the levels (solvers in log-SNR), which
    would take minutes, and multistep entries mixing more levels, whose expanded polynomials
    cancel catastrophically when the steps are small (LMS-4 lost 1e-4 of its output at
    16,384 steps that way).

    >>> from symspec.symbolic.symbols import lam, level
    >>> t, p, h = level("t", "ve"), level("p", "ve"), level("h1", "ve")
    >>> simplifies_whole(t * lam / (lam + p)), simplifies_whole(t * lam / (lam + p + h))
    (True, False)
    """
    levels = [v for v in e.free_symbols if v.name.startswith(("alphabar_", "sigma_"))]
    return not e.has(sp.log, sp.exp) and len(levels) <= 2


def _tidy(e: sp.Expr) -> sp.Expr:
    """A compact, numerically well-conditioned form: one factored fraction in ``lam``.

    Entries that :func:`simplifies_whole` are simplified whole.  Each alpha-bar
    lies in (0, 1): simplifying in ``z = (1 - alphabar)/alphabar > 0``, where every square
    root has a positive radicand, lets SymPy take roots of squares such as
    ``(1 - alphabar)**2`` without an ``Abs`` and cancel terms like ``(1 - a) + (a - 1)``
    that would otherwise cancel only in floating point.  Other entries have their rational
    structure in ``lam`` simplified with the level-dependent coefficients held opaque,
    which keeps each coefficient as the sampler computes it.
    """
    if not simplifies_whole(e):
        o, back = opaque(e, {S.lam})
        return sp.factor(sp.cancel(sp.together(o))).xreplace(back)
    abars = [v for v in e.free_symbols if v.name.startswith("alphabar")]
    zs = {a: sp.Dummy(positive=True) for a in abars}
    e = sp.factor(sp.cancel(sp.together(e.subs({a: 1 / (1 + z) for a, z in zs.items()}))))
    e = e.subs({z: (1 - a) / a for a, z in zs.items()})
    return sp.factor(sp.cancel(sp.together(e)))


def _where(fn: Callable, tb) -> str:
    line = None
    while tb is not None:
        if tb.tb_frame.f_code is fn.__code__:
            line = tb.tb_lineno
        tb = tb.tb_next
    src = inspect.getsourcefile(fn) or "?"
    return f"{src}:{line}" if line else src


def _last_frame(tb):
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code


_LIBRARIES = (os.path.dirname(sp.__file__), os.path.dirname(os.path.dirname(__file__)))


def _in_library(code) -> bool:
    """Whether a code object belongs to SymPy or symspec (not to a user's definition)."""
    f = os.path.abspath(code.co_filename)
    mine = os.path.dirname(os.path.abspath(__file__))
    return f.startswith(_LIBRARIES) and not f.startswith(os.path.join(mine, "samplers"))


def _branch_subject(tb, vars_: set) -> str:
    """``"level"`` when a failed truth test involved only noise levels, else ``"state"``."""
    frame = None
    while tb is not None:
        if isinstance(tb.tb_frame.f_locals.get("self"), sp.Basic):
            frame = tb.tb_frame
            break
        tb = tb.tb_next
    rel = frame.f_locals.get("self") if frame is not None else None
    if isinstance(rel, sp.Basic) and not rel.free_symbols & vars_:
        return "level"
    return "state"


def _nonlinear_line(smp: Sampler, key: tuple, prediction_type: str) -> str:
    """Re-run the step, tracing its lines, and name the first that makes a local value
    non-linear in the state or noise (only on failure: the happy path runs untraced)."""
    lv = [make_level(v, smp.space) for v in level_symbols(smp)]
    xs = [S.state(i) for i in range(smp.state)]
    ws: list[sp.Symbol] = []

    def draw():
        ws.append(S.noise(len(ws)))
        return ws[-1]

    def bad(value) -> bool:  # non-linear in the state and noise, or an offset
        if not isinstance(value, sp.Expr):
            return False
        vs = set(xs) | set(ws) | {S.mean}
        if not value.free_symbols & vs:
            return False
        o, back = opaque(value, vs | {S.lam})
        if any(sp.diff(o, v).free_symbols & vs for v in vs):
            return True
        return sp.simplify(o.subs({v: 0 for v in vs}).xreplace(back)) != 0

    found: list[int] = []
    code = smp.step.__code__

    def tracer(frame, event, arg):
        if frame.f_code is not code:
            return None
        last = [frame.f_lineno]

        def local(frame, event, arg):
            if not found and any(bad(v) for v in frame.f_locals.values()):
                found.append(last[0])
            elif not found and event == "return" and (
                    any(bad(v) for v in (arg if isinstance(arg, tuple | list) else [arg]))):
                found.append(frame.f_lineno)
            last[0] = frame.f_lineno
            return local
        return local

    c = Step(lv[0], lv[1], lv[2:], S.lam, S.mean, prediction_type, draw, key)
    old = sys.gettrace()
    sys.settrace(tracer)
    try:
        smp.step(c, *xs, **smp.opts)
    except Exception:  # noqa: BLE001 - the first run succeeded; this one only looks
        pass
    finally:
        sys.settrace(old)
    src = inspect.getsourcefile(smp.step) or "?"
    return f"{src}:{found[0]}" if found else _where(smp.step, None)


def _culprit(e: sp.Expr, vars_: set) -> str:
    for node in sp.preorder_traversal(e):
        if isinstance(node, sp.Pow) and node.base.free_symbols & vars_:
            return f"a power {node}"
        if isinstance(node, Application) and node.free_symbols & vars_:  # sin, Abs, Max, ...
            return f"{type(node).__name__}(...) of the state"
        if isinstance(node, sp.Mul) and sum(bool(a.free_symbols & vars_) for a in node.args) > 1:
            return f"a product of state or noise terms, {node}"
    return "a non-linear operation"


#: maps derived so far, per (sampler, prediction type), with the flags each step read
_DERIVED: dict[tuple, list[tuple[frozenset, StepMap]]] = {}


def default_key(smp: Sampler) -> tuple[bool, bool, Hashable]:
    """The variant of a step in the middle of a long run: step 10 of 20, by the sampler's
    own order rule (a multistep solver at its full order).

    >>> from symspec import UNIPC
    >>> default_key(UNIPC)[:2]
    (False, False)
    """
    return variant(smp, 10, 20)


def derive(smp: Sampler, key: tuple | None = None,
           prediction_type: str = "epsilon") -> StepMap:
    """Derive and certify the linear one-step map of ``smp`` for the step variant ``key``.

    ``key`` is ``(first, last, order)`` (:func:`variant`); by default :func:`default_key`,
    a step in the middle of a long run.  Raises :class:`NonLinearSamplerError` (naming the
    operation and the line) for a definition that is not linear in the state, and
    :class:`DerivationError` for one that cannot run on symbols; an exception the
    definition raises itself (an option it refuses) comes back as it is.

    Variants that agree on the flags of ``key`` the step function reads (``c.first``,
    ``c.last``, ``c.order``) share one derivation: the map returned may carry the ``key`` of
    the first such variant.

    Examples
    --------
    >>> from symspec import DDPM
    >>> from symspec.symbolic.symbols import lam
    >>> import sympy as sp
    >>> m = derive(DDPM, (False, False, 1))
    >>> ab_t, ab_p = m.levels
    >>> D = lambda ab: ab * lam + 1 - ab
    >>> sp.simplify(m.gain - sp.sqrt(ab_t / ab_p) * D(ab_p) / D(ab_t))
    0
    """
    check_type(smp, Sampler, "sampler")
    if prediction_type not in dn.PREDICTION_TYPES:
        raise ValueError(
            f"prediction_type must be one of {dn.PREDICTION_TYPES}, got {prediction_type!r}")
    return _derive(smp, default_key(smp) if key is None else tuple(key), prediction_type)


@functools.cache
def _derive(smp: Sampler, key: tuple, prediction_type: str) -> StepMap:
    done = _DERIVED.setdefault((smp, prediction_type), [])
    for reads, m in done:
        if all(key[i] == m.key[i] for i in reads):
            return m
    lv = level_symbols(smp)
    levels = [make_level(v, smp.space) for v in lv]
    xs = [S.state(i) for i in range(smp.state)]
    ws: list[sp.Symbol] = []

    def draw():
        ws.append(S.noise(len(ws)))
        return ws[-1]

    c = Step(levels[0], levels[1], levels[2:], S.lam, S.mean, prediction_type, draw, key)
    try:
        out = smp.step(c, *xs, **smp.opts)
    except DerivationError:
        raise
    except Exception as exc:  # report where in the user's definition it failed
        tb = sys.exc_info()[2]
        if not _in_library(_last_frame(tb)) and not isinstance(exc, TypeError | AttributeError):
            raise  # the definition's own error (an option it refuses, a bug): as it is
        where = _where(smp.step, tb)
        if isinstance(exc, TypeError) and "truth value" in str(exc):
            what = _branch_subject(tb, set(xs) | set(ws))
            if what == "level":
                raise DerivationError(
                    f"sampler {smp.name!r} branches on a noise level (at {where}); levels are "
                    "symbols in the derivation, so a step cannot branch on their values: "
                    "use c.first, c.last or c.order (an order= rule of the sampler)") from None
            raise NonLinearSamplerError(f"sampler {smp.name!r} branches on the value of the "
                                        f"state or noise, which is not linear (at {where})") \
                from None
        raise DerivationError(f"sampler {smp.name!r} uses an operation SymPy cannot run "
                              f"symbolically ({type(exc).__name__}: {exc}) (at {where})") from exc
    out = list(out) if isinstance(out, tuple | list) else [out]
    if len(out) != smp.state:
        raise DerivationError(
            f"sampler {smp.name!r} returned {len(out)} values but declares state={smp.state}")
    vars_ = xs + ws + [S.mean]
    vset = set(vars_)
    rows = []
    for k, e in enumerate(out):
        try:
            e = sp.sympify(e, strict=True)  # never parses strings
        except sp.SympifyError:
            raise DerivationError(
                f"sampler {smp.name!r} returned a {type(e).__name__} as output {k}, "
                "not an expression in the state") from None
        o, back = opaque(e, vset | {S.lam})  # small: level-only parts are symbols
        coefs = [sp.diff(o, v).xreplace(back) for v in vars_]
        if any(cf.free_symbols & vset for cf in coefs):
            raise NonLinearSamplerError(
                f"sampler {smp.name!r} is not linear in its state: output {k} contains "
                f"{_culprit(e, vset)} (at {_nonlinear_line(smp, key, prediction_type)})")
        rest = sp.simplify(o.subs({v: 0 for v in vars_}).xreplace(back))
        if rest != 0:
            raise NonLinearSamplerError(
                f"sampler {smp.name!r} adds a term that is not proportional to the state, "
                f"the noise or the data mean: {rest} "
                f"(at {_nonlinear_line(smp, key, prediction_type)})")
        rows.append([_tidy(cf) for cf in coefs])
    n, q = smp.state, len(ws)
    A = sp.ImmutableMatrix([r[:n] for r in rows])
    B = sp.ImmutableMatrix(n, q, [v for r in rows for v in r[n:n + q]])
    C = sp.ImmutableMatrix([r[-1] for r in rows])
    Q = (B * B.T).applyfunc(_tidy)
    m = StepMap(smp, key, prediction_type, lv, A, B, C, sp.ImmutableMatrix(Q))
    done.append((frozenset(c.reads), m))
    return m


def certify_zero(expr: sp.Expr) -> bool:
    """True when SymPy proves ``expr == 0`` (simplify, then a rational-function check)."""
    e = sp.simplify(expr)
    return e == 0 or sp.cancel(sp.radsimp(e)) == 0


def closed_form(smp: Sampler, steps: int, prediction_type: str = "epsilon",
                final: Any = None) -> dict[str, sp.Expr]:
    """Closed-form transfer, noise spectrum and output spectrum of ``steps`` chained steps.

    Levels are the symbols ``alphabar_N ... alphabar_1`` (``sigma_*`` in VE space) and the
    final level ``final`` (default: the clean level, ``1`` in VP and ``0`` in VE).  The
    initial latent has variance ``V`` (a symbol).  Only one-step samplers (``state=1``) and
    ``steps <= 4`` are supported: beyond that, use the numeric evaluators.

    >>> from symspec import DDPM
    >>> from symspec.symbolic.symbols import lam
    >>> import sympy as sp
    >>> cf = closed_form(DDPM, 2)
    >>> ab2 = sp.Symbol("alphabar_2", positive=True)
    >>> sp.simplify(cf["transfer"] - sp.sqrt(ab2) * lam / (ab2 * lam + 1 - ab2))
    0
    """
    if smp.state != 1:
        raise ValueError(
            f"closed_form needs a one-step sampler; {smp.name!r} has state={smp.state}")
    if not isinstance(steps, int) or not 1 <= steps <= 4:
        raise ValueError(f"steps must be an int from 1 to 4, got {steps!r}")
    if final is None:
        final = sp.Integer(1 if smp.space == "vp" else 0)
    grid = [S.level(str(k), smp.space) for k in range(steps, 0, -1)] + [final]
    V = sp.Symbol("V", positive=True)
    H, N = sp.Integer(1), sp.Integer(0)
    for i in range(steps):
        m = derive(smp, variant(smp, i, steps), prediction_type)
        sub = dict(zip(m.levels[:2], grid[i:i + 2], strict=True))
        g, q = m.gain.subs(sub), m.noise_var.subs(sub)
        H, N = H * g, g**2 * N + q
    # cancel, not simplify: the same rational functions, minutes faster from 3 steps on
    H, N = sp.factor(sp.cancel(H)), sp.factor(sp.cancel(N))
    return {"transfer": H, "noise_psd": N, "output_psd": sp.factor(sp.cancel(H**2 * V + N)),
            "V": V, "levels": tuple(grid)}
