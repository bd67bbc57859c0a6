"""The numeric layer: the one module that calls :func:`sympy.lambdify`.

A derived step map (:func:`symspec.symbolic.engine.derive`) has entries that are rational
functions of the PSD value ``lam`` whose coefficients depend only on the noise levels.
Each map is compiled once (cached by the hashable key ``(sampler, variant,
prediction_type)``) into one function of the levels returning every coefficient;
the per-mode work is then a few vectorised Horner evaluations per step.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from ..symbolic import symbols as S
from ..symbolic.engine import Sampler, StepMap, derive, opaque, simplifies_whole

__all__ = ["compiled", "compiled_gradient", "compiled_backend", "lam_powers", "lambdify_levels",
           "lambdify_modes", "BackendMap", "BACKENDS", "wrap_code"]


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
def _structure(m: StepMap) -> tuple[tuple, tuple]:
    """``(layout, flat)``: every nonzero entry of A, Q (upper triangle) and C as
    ``(kind, i, j, n_num, n_den)``, and the coefficients of their numerators and
    denominators in ``lam`` (highest degree first), one flat tuple of level expressions.

    Every printer (:func:`compiled`, :func:`compiled_backend`) prints this one structure.
    """
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
    return tuple(layout), tuple(flat)


@functools.cache
def _compile(m: StepMap) -> _Compiled:
    layout, flat = _structure(m)
    return _Compiled(lambdify_levels(m.levels, flat), layout)


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
    levels, flat, keys, width = gradient_polynomials(smp, key, prediction_type, wrt)
    return _CompiledGrad(lambdify_levels(levels, flat), keys, len(wrt), width)


def gradient_polynomials(smp: Sampler, key: tuple, prediction_type: str,
                         wrt: tuple[int, ...]) -> tuple[tuple, list, tuple, int]:
    """What :func:`compiled_gradient` compiles: ``(levels, flat, keys, width)``, the
    numerator and denominator coefficients (in ``lam``, highest power first, padded to
    ``width``) of every nonzero entry ``keys`` of ``A`` and of ``Q``'s upper triangle, then
    their derivatives in ``levels[w]``, ``w in wrt``."""
    m = derive(smp, key, prediction_type)
    k = smp.state
    items = [("A", i, j, m.A[i, j]) for i in range(k) for j in range(k)]
    items += [("Q", i, j, m.Q[i, j]) for i in range(k) for j in range(i, k)]
    rational = [((kind, i, j), _as_rational(e)) for kind, i, j, e in items if e != 0]
    width = max([1] + [len(p) for _, pq in rational for p in pq])
    flat: list = []
    for _, (cn, cd) in rational:
        polys = [cn, cd] + [[sp.diff(c, m.levels[w]) for c in p] for w in wrt for p in (cn, cd)]
        for p in polys:
            flat += [sp.Integer(0)] * (width - len(p)) + list(p)
    return m.levels, flat, tuple(kk for kk, _ in rational), width



# =======================================================================================
# Array backends (used by symspec.numeric.backends and symspec.codegen).
#
# The same structure (:func:`_structure`) printed by SymPy's NumPy, PyTorch or JAX printer,
# as one function of the levels returning the coefficients that depend on them.  It is
# evaluated elementwise, so the levels may be arrays over the steps of a run; constant
# coefficients are kept out of it, as numbers, so that a coefficient 1 multiplies nothing.
# =======================================================================================
#: The array backends, and the modules their printed code takes names from.
BACKENDS = ("numpy", "torch", "jax")
_BACKEND_MODULES = {"numpy": ("numpy",), "torch": ("torch",), "jax": ("jax.numpy", "jax")}


@dataclass(frozen=True)
class BackendMap:
    """A derived step map printed for an array backend.

    ``fn(*levels)`` returns the level-dependent coefficients of the map, elementwise in the
    levels (named ``args``: current, next, then the history).  ``layout`` has, per nonzero
    entry of ``A`` and ``Q`` (upper triangle), ``(kind, i, j, num, den)``: the coefficients
    in ``lam`` of its numerator and denominator, highest degree first, each a float (a
    constant) or the index of a coefficient that ``fn`` returns.  ``source`` is the text
    of ``fn`` (a function named ``name``, long lines wrapped), ``imports`` the pairs
    ``(module, name)`` it takes from the backend.
    """

    fn: Callable[..., list] = field(repr=False)
    source: str = field(repr=False)
    layout: tuple
    args: tuple[str, ...]
    imports: tuple[tuple[str, str], ...]
    name: str = "_coefficients"


def _numeric_constants(e: sp.Expr) -> sp.Expr:
    """``e`` with its irrational constants (``sqrt(2)``, ``log(3)``) as floats.

    The PyTorch printer writes ``sqrt(2)`` as ``torch.sqrt(2)``, which needs a tensor;
    31 digits round to the nearest double, as ``math.sqrt(2)`` does.
    """
    if not e.free_symbols:
        return e if e.is_Rational else sp.Float(e.evalf(31), 31)
    if e.is_Atom:
        return e
    return e.func(*map(_numeric_constants, e.args))


def _static(e: sp.Expr) -> float:
    v = float(e)
    if not np.isfinite(v):
        raise ValueError(f"step-map coefficient {e} is not finite")
    return v


def wrap_code(source: str, width: int = 99) -> str:
    """Python source with every line longer than ``width`` wrapped inside parentheses.

    For printed code only: a long line ``NAME = EXPR`` or ``return EXPR`` becomes
    ``NAME = (`` with ``EXPR`` broken at spaces (between tokens) on the lines below.

    >>> print(wrap_code("    y = " + " + ".join(["x"] * 8), width=20), end="")
        y = (
            x + x + x +
            x + x + x +
            x + x)
    """
    import textwrap

    out = []
    for line in source.splitlines():
        m = re.match(r"^(\s*)(return |[A-Za-z_]\w* = )(.*)$", line)
        if len(line) <= width or m is None:
            out.append(line)
            continue
        indent, head, body = m.groups()
        parts = textwrap.wrap(body, width - len(indent) - 4, break_long_words=False,
                              break_on_hyphens=False)
        parts = [indent + "    " + p for p in parts]
        parts[-1] += ")"
        out += [f"{indent}{head}(", *parts]
    return "\n".join(out) + "\n"


@functools.cache
def _print_backend(m: StepMap, backend: str) -> BackendMap:
    import inspect

    layout, flat = _structure(m)
    exprs: dict = {}  # level expression -> its index among the returned coefficients
    entries, k = [], 0
    for kind, i, j, nn, nd in layout:
        coeffs = flat[k:k + nn + nd]
        k += nn + nd
        if kind == "C":
            continue
        cs = [_static(c) if not c.free_symbols else exprs.setdefault(c, len(exprs))
              for c in coeffs]
        entries.append((kind, i, j, tuple(cs[:nn]), tuple(cs[nn:])))
    dynamic = [_numeric_constants(e) for e in exprs]
    fn = sp.lambdify(list(m.levels), dynamic, modules=backend, cse=True, docstring_limit=0)
    src = inspect.getsource(fn).replace("def _lambdifygenerated(", "def _coefficients(", 1)
    mods = [importlib.import_module(name) for name in _BACKEND_MODULES[backend]]
    imports = []
    for name in sorted(set(fn.__code__.co_names) & set(fn.__globals__)):
        obj = fn.__globals__[name]
        where = [mod.__name__ for mod in mods if getattr(mod, name, None) is obj]
        if not where:  # a name the printer takes from elsewhere: cannot be written out
            raise ValueError(f"the {backend} printer uses {name!r}, which is not a name of "
                             f"{' or '.join(_BACKEND_MODULES[backend])}")
        imports.append((where[0], name))
    return BackendMap(fn, wrap_code(src), tuple(entries), tuple(s.name for s in m.levels),
                      tuple(imports))


def compiled_backend(smp: Sampler, key: tuple, prediction_type: str,
                     backend: str) -> BackendMap:
    """The map of one step variant printed for ``backend`` (one of :data:`BACKENDS`).

    Variants that share a derivation share the printed map (cached by the derived map).

    >>> import numpy as np
    >>> from symspec import DDPM
    >>> bm = compiled_backend(DDPM, (False, False, 1), "epsilon", "numpy")
    >>> [entry[:3] for entry in bm.layout], bm.args
    ([('A', 0, 0), ('Q', 0, 0)], ('alphabar_t', 'alphabar_p'))
    >>> len(bm.fn(np.array([0.3, 0.5]), np.array([0.6, 0.9]))[0])  # elementwise in the levels
    2
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return _print_backend(derive(smp, key, prediction_type), backend)
