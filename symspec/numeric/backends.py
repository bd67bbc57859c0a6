"""Generated evaluators: a sampler's spectral response as NumPy, PyTorch or JAX code.

:func:`lambdify` turns a sampler into ``fn(grid, psd)``, written in the backend's own
operations, so that PyTorch's autograd and ``jax.grad`` / ``jax.jit`` differentiate and
compile it with respect to the noise levels and the data spectrum.  :func:`codegen` writes
the same evaluator as a standalone Python module that needs only the backend.

Both print one structure: each step map is derived once (:func:`symspec.derive`), split
into polynomials in the mode's variance ``lam`` whose coefficients are functions of the
levels (:func:`symspec.numeric.lambdify.compiled_backend`, SymPy's NumPy, PyTorch or JAX
printer), and run by the recursion of :mod:`symspec.numeric.core`, per mode::

    S <- A S A^T + Q,    T <- A T,    from S = 0, T = e_0,

giving the output spectrum ``T_0**2 V + S_00`` (``V`` the variance of the initial latent).
The recursion below (from ``Response`` to ``_response_levels``) is plain Python over the
backend's arrays; :func:`codegen` copies it, verbatim, into the modules it writes.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import textwrap
from typing import Any, NamedTuple

import sympy as sp

from .._checks import check_type
from .._io import atomic_write
from ..schedules import Schedule
from ..symbolic.denoiser import PREDICTION_TYPES, PredictionType
from ..symbolic.engine import Sampler, derive, variant
from .lambdify import BACKENDS, compiled_backend, wrap_code

__all__ = ["lambdify", "codegen", "Evaluator", "Response", "CODEGEN_STEPS"]


# =======================================================================================
# The recursion.  Everything from here to _response_levels is copied into generated
# modules: it uses no name of symspec, only its own and the backend's.
# =======================================================================================
class Response(NamedTuple):
    """Per mode: the output spectrum, the transfer of the initial latent, the noise spectrum.

    ``output_psd = transfer**2 * init_var + noise_psd``, arrays of the PSD's shape.
    """

    output_psd: Any
    transfer: Any
    noise_psd: Any


class _NumpyOps:
    """NumPy arrays; the steps run in a Python loop."""

    def __init__(self, dtype="float64"):
        import numpy

        self.xp = numpy
        self.dtype = numpy.dtype(dtype)
        if self.dtype not in (numpy.float32, numpy.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")

    def array(self, x, like=None):
        return self.xp.asarray(x, dtype=self.dtype)

    def take(self, a, index):
        return a[self.xp.asarray(index)]

    def stack(self, values, size):
        return self.xp.stack([self.xp.broadcast_to(v, (size,)) for v in values])

    def loop(self, body, carry, coef, size, zero):
        for col in [[]] * size if coef is None else coef.T.tolist():
            carry = body(carry, col)
        return carry


class _TorchOps:
    """PyTorch tensors (on the device of the levels); the steps run in a Python loop."""

    def __init__(self, dtype="float64"):
        import torch

        self.xp = torch
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype, None)
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        self.dtype = dtype

    def array(self, x, like=None):
        Tensor = self.xp.Tensor
        device = like.device if isinstance(like, Tensor) else \
            x.device if isinstance(x, Tensor) else None
        if getattr(x, "flags", None) is not None and not x.flags.writeable:
            x = x.copy()  # a read-only NumPy array (a cached PSD): torch warns, may not share
        return self.xp.as_tensor(x, dtype=self.dtype, device=device)

    def take(self, a, index):
        return a[self.xp.as_tensor(index, device=a.device)]

    def stack(self, values, size):
        return self.xp.stack([self.xp.broadcast_to(v, (size,)) for v in values])

    def loop(self, body, carry, coef, size, zero):
        if coef is None:
            cols = [()] * size
        elif coef.requires_grad:  # 0-d tensors, which autograd follows
            cols = [c.unbind(0) for c in coef.t().unbind(0)]
        else:  # Python floats: faster, when autograd need not follow them
            cols = coef.t().tolist()
        for col in cols:
            carry = body(carry, col)
        return carry


class _JaxOps:
    """JAX arrays; a run of equal steps is one ``jax.lax.scan`` (compiled once by ``jit``)."""

    def __init__(self, dtype="float64"):
        import jax
        import jax.numpy as jnp

        self.jax, self.xp = jax, jnp
        self.dtype = jnp.dtype(dtype)
        if self.dtype not in (jnp.float32, jnp.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        if self.dtype == jnp.float64 and not jax.config.jax_enable_x64:
            raise ValueError("JAX computes in float32 unless 64-bit mode is on: call "
                             "jax.config.update('jax_enable_x64', True) first, or ask for "
                             "dtype='float32'")

    def array(self, x, like=None):
        return self.xp.asarray(x, dtype=self.dtype)

    def take(self, a, index):
        return a[self.xp.asarray(index)]

    def stack(self, values, size):
        return self.xp.stack([self.xp.broadcast_to(v, (size,)) for v in values])

    def loop(self, body, carry, coef, size, zero):
        if size <= 2:
            for step in range(size):
                carry = body(carry, [] if coef is None else list(coef[:, step]))
            return carry

        def dense(c):  # scan needs a carry of fixed structure: exact zeros as arrays
            S, T = c
            return ({key: zero if v is None else v + zero for key, v in S.items()},
                    [zero if v is None else v + zero for v in T])

        cols = self.xp.zeros((size, 0), self.dtype) if coef is None else coef.T
        carry, _ = self.jax.lax.scan(lambda c, col: (dense(body(c, list(col))), None),
                                     dense(carry), cols)
        return carry


def _reads(i, history):
    """Positions step ``i`` reads: ``start[i]``, ``end[i]``, then the earlier starts, most
    recent first (``start[i]`` where there is no earlier one)."""
    return [i, i] + [i - h if i - h >= 0 else i for h in range(1, history + 1)]


def _segments(n, variant_of):
    """Runs of consecutive steps of one map: ``[map, first step, end step]``."""
    runs = []
    for i in range(n):
        m = variant_of(i, n)
        if runs and runs[-1][0] is m:
            runs[-1][2] = i + 1
        else:
            runs.append([m, i, i + 1])
    return runs


def _is(v, number):
    """Whether ``v`` is the constant ``number`` (a Python float), not an array."""
    return isinstance(v, float) and v == number


def _poly(cs, col, lam):
    """Horner: the polynomial in ``lam`` with coefficients ``cs`` (floats, or indices into
    ``col``, this step's level-dependent coefficients), highest degree first."""
    p = None
    for c in cs:
        v = c if isinstance(c, float) else col[c]
        if p is None:
            p = v
            continue
        p = lam if _is(p, 1.0) else p * lam
        if not _is(v, 0.0):
            p = p + v
    return p


def _entries(layout, col, lam):
    """``{(kind, i, j): value}`` of one step; entries sharing a denominator share its value."""
    out, dens = {}, {}
    for kind, i, j, num, den in layout:
        if den not in dens:
            dens[den] = _poly(den, col, lam)
        d, v = dens[den], _poly(num, col, lam)
        out[kind, i, j] = v if _is(d, 1.0) else v / d
    return out


def _dot(row, values):
    """``sum(c * values[j])`` over the sparse ``row``; ``None`` (an exact zero) if empty."""
    out = None
    for j, c in row:
        v = values[j]
        if v is None:
            continue
        t = v if _is(c, 1.0) else c * v
        out = t if out is None else out + t
    return out


def _plus(a, b):
    return a if b is None else b if a is None else a + b


def _step(ent, k, S, T):
    """``S <- A S A^T + Q`` (upper triangle) and ``T <- A T``; ``None`` is an exact zero."""
    if k == 1:
        g, q = ent.get(("A", 0, 0)), ent.get(("Q", 0, 0))
        if g is None:
            return {(0, 0): q}, [None]
        s, t = S[0, 0], T[0]
        return {(0, 0): _plus(None if s is None else g * g * s, q)}, \
            [None if t is None else t * g]
    rows = [[] for _ in range(k)]
    for (kind, i, j), v in ent.items():
        if kind == "A":
            rows[i].append((j, v))
    need = {(i, b) for i in range(k) for j in range(i, k) for b, _ in rows[j]}
    AS = {(i, b): _dot(rows[i], [S[min(a, b), max(a, b)] for a in range(k)]) for i, b in need}
    S = {(i, j): _plus(_dot(rows[j], {b: AS[i, b] for b, _ in rows[j]}), ent.get(("Q", i, j)))
         for i in range(k) for j in range(i, k)}
    return S, [_dot(row, T) for row in rows]


def _forward(ops, variant_of, state, history, start, end, init_var, lam):
    """The response for the flat modes ``lam`` of the steps ``start[i] -> end[i]``."""
    zero = ops.xp.zeros_like(lam)
    S = {(i, j): None for i in range(state) for j in range(i, state)}
    T = [ops.xp.ones_like(lam)] + [None] * (state - 1)
    for m, i0, i1 in _segments(start.shape[0], variant_of):
        pos = [_reads(i, history) for i in range(i0, i1)]
        levels = [ops.take(end if p == 1 else start, [r[p] for r in pos])
                  for p in range(2 + history)]
        coef = m.fn(*levels)
        coef = ops.stack(coef, i1 - i0) if len(coef) else None
        S, T = ops.loop(lambda c, col, m=m: _step(_entries(m.layout, col, lam), state, *c),
                        (S, T), coef, i1 - i0, zero)
    noise = zero if S[0, 0] is None else S[0, 0] + zero
    transfer = zero if T[0] is None else T[0] + zero
    return Response(transfer * transfer * init_var + noise, transfer, noise)


def _response(ops, variant_of, space, state, history, grid, psd):
    """The response on the chained grid of ``N + 1`` levels, for the modes ``psd``."""
    grid = ops.array(grid)
    if grid.ndim != 1 or grid.shape[0] < 2:
        raise ValueError(f"grid must be 1-dimensional with N + 1 >= 2 levels, got shape "
                         f"{tuple(grid.shape)}")
    lam = ops.array(psd, like=grid)
    init_var = 1.0 if space == "vp" else grid[0] * grid[0] + 1.0
    r = _forward(ops, variant_of, state, history, grid[:-1], grid[1:], init_var,
                 lam.reshape(-1))
    return Response(*(v.reshape(lam.shape) for v in r))


def _response_levels(ops, variant_of, state, history, start, end, init_var, psd):
    """The response of the steps ``start[i] -> end[i]`` from a latent of ``init_var``."""
    start, end = ops.array(start), ops.array(end, like=start)
    if start.ndim != 1 or start.shape != end.shape or start.shape[0] < 1:
        raise ValueError(f"start and end must be 1-dimensional, of one length >= 1, got "
                         f"shapes {tuple(start.shape)} and {tuple(end.shape)}")
    lam = ops.array(psd, like=start)
    r = _forward(ops, variant_of, state, history, start, end, init_var, lam.reshape(-1))
    return Response(*(v.reshape(lam.shape) for v in r))


_RUNTIME = (Response, _reads, _segments, _is, _poly, _entries, _dot, _plus, _step, _forward,
            _response, _response_levels)
_OPS = {"numpy": _NumpyOps, "torch": _TorchOps, "jax": _JaxOps}
# =======================================================================================


def _ops(backend: str, dtype):
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    try:
        return _OPS[backend]("float64" if dtype is None else dtype)
    except ImportError:
        extra = " (pip install 'symspec[jax]')" if backend == "jax" else ""
        raise ImportError(f"backend {backend!r} needs {backend} installed{extra}") from None


def _check(sampler, prediction_type) -> None:
    check_type(sampler, Sampler, "sampler")
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got "
                         f"{prediction_type!r}")
    derive(sampler, None, prediction_type)  # a definition that cannot be derived fails here


class Evaluator:
    """The spectral response of one sampler, in one backend: ``fn(grid, psd)``.

    Made by :func:`lambdify`.  ``fn(grid, psd)`` takes the chained schedule of ``N + 1``
    levels in the sampler's space (alpha-bar for VP samplers, noisiest first, usually
    ending at 1; sigma for VE samplers, usually ending at 0) and the per-mode data variances
    (any shape), as backend arrays (or anything the backend converts), and returns a
    :class:`Response` ``(output_psd, transfer, noise_psd)`` of the PSD's shape.  The initial
    latent has variance 1 (VP) or ``grid[0]**2 + 1`` (VE), as :class:`symspec.Schedule`'s
    default.  ``fn.from_schedule(schedule, psd)`` runs any :class:`~symspec.Schedule`,
    chained or not, with its ``init_var``.

    Levels and PSD are converted to ``dtype`` (on the device of ``grid``, for PyTorch);
    the result is differentiable in both.  Values are not checked (the code is traced by
    ``jax.jit``): the levels must be a valid schedule, as :class:`symspec.Schedule` accepts.

    Precision.  In float64 the result agrees with :func:`symspec.spectral_response` to
    about 1e-13 relative.  In float32 each level is rounded to 6e-8 relative (near the
    clean end ``1 - alphabar`` keeps fewer digits) and rounding accumulates over the steps:
    for the built-in samplers the output spectrum was off by 3e-7 to 1e-5 relative on
    random schedules of 10 to 50 steps, and by up to 1e-4 on the 1000 steps of diffusers'
    linear schedule.  Use float32 for speed, where such errors do not matter.

    Memory.  Autograd keeps 4 to 8 arrays of the PSD's size per step (for the built-in
    samplers): up to ``64 * N * M`` bytes for ``N`` steps and ``M`` modes in float64, 3 GB
    for 1000 steps on 65,536 modes.  :func:`symspec.objective` computes the gradient of a
    divergence in bounded memory.
    """

    def __init__(self, sampler: Sampler, backend: str, prediction_type: str, dtype):
        self.sampler, self.backend, self.prediction_type = sampler, backend, prediction_type
        self._ops = _ops(backend, dtype)
        self.dtype = self._ops.dtype
        self._maps: dict[int, list] = {}

    def _variant_of(self, i: int, n: int):
        maps = self._maps.setdefault(n, [None] * n)
        if maps[i] is None:
            maps[i] = compiled_backend(self.sampler, variant(self.sampler, i, n),
                                       self.prediction_type, self.backend)
        return maps[i]

    def __call__(self, grid, psd) -> Response:
        """The response on the chained ``grid`` of ``N + 1`` levels for the modes ``psd``."""
        smp = self.sampler
        return _response(self._ops, self._variant_of, smp.space, smp.state, smp.history,
                         grid, psd)

    def from_schedule(self, schedule: Schedule, psd) -> Response:
        """The response on ``schedule`` (converted to the sampler's space; chained or not,
        with its ``init_var``).  Differentiable in ``psd``."""
        check_type(schedule, Schedule, "schedule")
        s = schedule.to_space(self.sampler.space)
        lam = self._ops.array(psd)
        start = self._ops.array(s.start.copy(), like=lam)  # copies: a schedule's are read-only
        return _response_levels(self._ops, self._variant_of, self.sampler.state,
                                self.sampler.history, start, s.end.copy(), s.init_var, lam)

    def __repr__(self) -> str:
        return (f"Evaluator({self.sampler.name!r}, options={dict(self.sampler.options)}, "
                f"backend={self.backend!r}, dtype={self.dtype})")


def lambdify(sampler: Sampler, *, backend: str = "numpy",
             prediction_type: PredictionType = "epsilon", dtype=None) -> Evaluator:
    """The spectral response of ``sampler`` as a function of the levels and the PSD.

    Parameters
    ----------
    sampler : Sampler
        A built-in (``symspec.DDIM(eta=0.5)``, ...) or user sampler, multistep and
        stochastic ones included.
    backend : {"numpy", "torch", "jax"}
        The array library the evaluator is written in.  With ``"torch"``, autograd
        differentiates it; with ``"jax"``, ``jax.grad`` and ``jax.jit`` do (float64 needs
        ``jax.config.update("jax_enable_x64", True)``).
    prediction_type : {"epsilon", "sample", "v_prediction"}
        Passed to the derivation (the map is the same for exact models).
    dtype : optional
        ``"float64"`` (default) or ``"float32"`` (or the backend's dtype object); see
        :class:`Evaluator` for the error of float32.

    Returns
    -------
    Evaluator
        ``fn(grid, psd) -> Response(output_psd, transfer, noise_psd)``, and
        ``fn.from_schedule(schedule, psd)`` for any :class:`~symspec.Schedule`.

    Examples
    --------
    >>> import numpy as np, symspec
    >>> fn = symspec.lambdify(symspec.DDPM, backend="numpy")
    >>> grid, psd = np.array([0.01, 0.3, 0.8, 1.0]), np.array([0.1, 1.0, 10.0])
    >>> r = fn(grid, psd)
    >>> bool(np.allclose(r.transfer, 0.1 * psd / (0.01 * psd + 0.99)))  # telescoped
    True
    >>> ref = symspec.spectral_response(symspec.DDPM, symspec.Schedule.from_alpha_bar(grid), psd)
    >>> bool(np.allclose(r.output_psd, ref.output_psd, rtol=1e-13, atol=0))
    True
    """
    _check(sampler, prediction_type)
    return Evaluator(sampler, backend, prediction_type, dtype)


# =======================================================================================
# codegen: the evaluator as a standalone module.
# =======================================================================================
#: Step counts over which :func:`codegen` collects the step variants of a sampler.
CODEGEN_STEPS = 64


def _source(obj) -> str | None:
    try:
        return textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        return None


def _order_rule(smp: Sampler) -> str:
    """Source of a standalone ``_order(i, n, **options)``, checked against the sampler's."""
    if smp.order_at is None:
        return "def _order(i, n, **options):\n    return 1\n"
    src = _source(smp.order_at)
    name = getattr(smp.order_at, "__name__", "")
    why = "its source is not available"
    if src is not None and name.isidentifier():
        space: dict = {"__builtins__": builtins}
        try:
            exec(compile(src, f"<order rule of {smp.name}>", "exec"), space)  # noqa: S102
            fn = space[name]
            ok = all(fn(i, n, **smp.opts) == smp.order_at(i, n, **smp.opts)
                     for n in range(1, CODEGEN_STEPS + 1) for i in range(n))
            why = "it gives other orders on its own"
        except Exception as exc:  # noqa: BLE001 - any failure means: not standalone
            ok, why = False, f"it does not run on its own ({type(exc).__name__}: {exc})"
        if ok:
            return f"{src.rstrip()}\n\n\n_order = {name}\n"
    raise ValueError(f"codegen: the order rule of sampler {smp.name!r} cannot be copied into a "
                     f"standalone module: {why}; define it as a plain function that uses "
                     "only its arguments and Python's builtins")


def _literal(value) -> str:
    text = repr(value)
    try:
        same = ast.literal_eval(text) == value
    except (ValueError, SyntaxError):
        same = False
    if not same:
        raise ValueError(f"codegen: {value!r} cannot be written as a Python literal")
    return text


def _latex_lines(m) -> list[str]:
    lines = []
    k = m.sampler.state
    for kind, mat, pairs in (("A", m.A, [(i, j) for i in range(k) for j in range(k)]),
                             ("Q", m.Q, [(i, j) for i in range(k) for j in range(i, k)])):
        for i, j in pairs:
            if mat[i, j] != 0:
                text = f"{kind}_{{{i}{j}}} = {sp.latex(mat[i, j])}"
                lines += textwrap.wrap(text, 92, break_long_words=False,
                                       break_on_hyphens=False) + [""]
    return lines


def codegen(sampler: Sampler, backend: str = "numpy", path=None, *,
            prediction_type: PredictionType = "epsilon") -> str:
    """A standalone Python module evaluating the spectral response of ``sampler``.

    The module imports only the backend (no symspec): ``response(grid, psd,
    dtype="float64")`` and ``response_from_levels(start, end, init_var, psd,
    dtype="float64")`` behave as :func:`lambdify`'s evaluator and its ``from_schedule``.
    It holds the coefficient functions SymPy printed for every step variant a run of up to
    :data:`CODEGEN_STEPS` steps uses (common subexpressions named, long lines wrapped), the
    sampler's order rule, the recursion, and a docstring with the derived one-step maps in
    LaTeX, the symspec version and the sampler's definition.

    Parameters
    ----------
    sampler : Sampler
        Built-in or user sampler; its order rule (if any) must be a plain function.
    backend : {"numpy", "torch", "jax"}
        The array library of the module (it must be installed to print for it).
    path : str or Path, optional
        Also write the module there (atomically).
    prediction_type : {"epsilon", "sample", "v_prediction"}
        Passed to the derivation.

    Returns
    -------
    str
        The module's source.

    Examples
    --------
    >>> import numpy as np, symspec
    >>> src = codegen(symspec.DDIM, "numpy")
    >>> "import symspec" in src, max(len(line) for line in src.splitlines()) <= 100
    (False, True)
    >>> mod = {}
    >>> exec(compile(src, "ddim_response.py", "exec"), mod)
    >>> r = mod["response"](np.array([0.05, 0.5, 1.0]), np.array([0.5, 2.0]))
    >>> ref = symspec.spectral_response(symspec.DDIM, symspec.Schedule.from_alpha_bar(
    ...     [0.05, 0.5, 1.0]), [0.5, 2.0])
    >>> bool(np.allclose(r.output_psd, ref.output_psd, rtol=1e-13, atol=0))
    True
    """
    import importlib

    _check(sampler, prediction_type)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    version = importlib.import_module("symspec").__version__
    order_src = _order_rule(sampler)
    keys = sorted({variant(sampler, i, n) for n in range(1, CODEGEN_STEPS + 1)
                   for i in range(n)}, key=repr)
    maps: dict = {}  # derived map -> index
    of_key = {}
    for key in keys:
        m = derive(sampler, key, prediction_type)
        of_key[key] = maps.setdefault(m, len(maps))
    try:
        printed = [compiled_backend(sampler, m.key, prediction_type, backend) for m in maps]
    except ImportError as exc:
        raise ValueError(f"codegen for backend {backend!r} needs {backend} installed "
                         f"({exc})") from None
    opts = dict(sampler.options)
    doc = _docstring(sampler, backend, prediction_type, version, maps, of_key)
    out = ["from typing import Any, NamedTuple", ""]
    imports: dict[str, set] = {}
    for bm in printed:
        for mod, name in bm.imports:
            imports.setdefault(mod, set()).add(name)
    out += [f"from {mod} import {', '.join(sorted(names))}" for mod, names in
            sorted(imports.items())]
    out += ["", f"SAMPLER = {sampler.name!r}", f"OPTIONS = {_literal(opts)}",
            f"SPACE = {sampler.space!r}", f"STATE = {sampler.state}",
            f"HISTORY = {sampler.history}", f"PREDICTION_TYPE = {prediction_type!r}",
            f"BACKEND = {backend!r}", f"SYMSPEC_VERSION = {version!r}", "", ""]
    out += ["class _Map(NamedTuple):", "    fn: Any", "    layout: tuple", "", ""]
    for idx, bm in enumerate(printed):
        src = bm.source.replace("def _coefficients(", f"def _coefficients_{idx}(", 1)
        out += [src.rstrip(), "", ""]
        out += [f"_LAYOUT_{idx} = {_literal(bm.layout)}", "", ""]
    out += ["_MAPS = (" + ", ".join(f"_Map(_coefficients_{i}, _LAYOUT_{i})"
                                    for i in range(len(printed))) + ",)"]
    out += [f"_MAP_OF_KEY = {_literal(of_key)}", "", ""]
    out += [order_src.rstrip(), "", "", _VARIANT, ""]
    for obj in (_OPS[backend], *_RUNTIME):
        out += [inspect.getsource(obj).rstrip(), "", ""]
    out += [_API.format(ops=_OPS[backend].__name__)]
    text = doc + "\n" + wrap_code("\n".join(out).rstrip())
    compile(text, "<generated>", "exec")  # a syntax error here is a bug of codegen
    if path is not None:
        atomic_write(path, text, "path")
    return text


_VARIANT = '''def _variant(i, n):
    """The map of step ``i`` of ``n``, by its (first, last, order) key."""
    key = (i == 0, i == n - 1, _order(i, n, **OPTIONS))
    if key not in _MAP_OF_KEY:
        raise ValueError(f"step {i} of {n} is the step variant {key!r}, which this module "
                         "does not hold; generate it again with symspec.codegen")
    return _MAPS[_MAP_OF_KEY[key]]
'''

_API = '''def response(grid, psd, dtype="float64"):
    """The response on the chained ``grid`` of N + 1 levels (alpha-bar for a VP sampler,
    sigma for a VE one, noisiest first) for the per-mode data variances ``psd``.

    Returns ``Response(output_psd, transfer, noise_psd)``, arrays of the shape of ``psd``;
    the initial latent has variance 1 (VP) or ``grid[0]**2 + 1`` (VE).
    """
    return _response({ops}(dtype), _variant, SPACE, STATE, HISTORY, grid, psd)


def response_from_levels(start, end, init_var, psd, dtype="float64"):
    """The response of the N steps ``start[i] -> end[i]`` (a schedule that need not be
    chained) from an initial latent of variance ``init_var``."""
    return _response_levels({ops}(dtype), _variant, STATE, HISTORY, start, end, init_var, psd)
'''


def _docstring(smp, backend, prediction_type, version, maps, of_key) -> str:
    opts = ", ".join(f"{k}={v!r}" for k, v in smp.options) or "no options"
    unit = "alpha-bar" if smp.space == "vp" else "sigma"
    lines = [f"Spectral response of the sampler ``{smp.name}``, generated for {backend}.", "",
             f"Options: {opts}.", f"Prediction type: {prediction_type}.", "",
             f"Generated by symspec {version} (``symspec.codegen``); the module imports only",
             f"{backend}, and these names::", "",
             "    response(grid, psd) -> Response(output_psd, transfer, noise_psd)",
             "    response_from_levels(start, end, init_var, psd) -> Response", "",
             f"``grid`` is the chained schedule of N + 1 levels ({unit}, noisiest first),",
             "``psd`` the per-mode data variances (any shape).  Per mode, a step maps the",
             "state (``x`` and the stored history) as ``state' = A state + B w + C m``",
             "(``w`` fresh noise, ``m`` the data mean); the module runs",
             "``S <- A S A^T + Q`` (``Q = B B^T``) and ``T <- A T`` from ``S = 0``,",
             "``T = e_0``, and returns ``transfer = T_0``, ``noise_psd = S_00`` and",
             "``output_psd = T_0**2 V + S_00``, with ``V`` the variance of the initial latent",
             "(1 in VP space, ``grid[0]**2 + 1`` in VE space).", "",
             "Derived one-step maps", "---------------------", ""]
    for m, idx in maps.items():
        ks = [k for k, v in of_key.items() if v == idx]
        lines += [f"Map {idx}, for the steps whose (first, last, order) is one of:"]
        lines += textwrap.wrap(", ".join(map(repr, ks)), 92, initial_indent="    ",
                               subsequent_indent="    ") + [""]
        lines += [".. math::", ""] + ["    " + x if x else "" for x in _latex_lines(m)]
    lines += ["Sampler definition", "------------------", "", "::", ""]
    for obj in (smp.step, smp.order_at):
        src = _source(obj) if obj is not None else None
        if obj is not None:
            lines += ["    " + x if x else "" for x in
                      (src or f"# source of {obj!r} not available\n").splitlines()] + [""]
    text = "\n".join(lines).replace("'''", "' ' '")
    wrapped = []
    for line in text.splitlines():  # the sampler's own lines are kept as they are, if short
        wrapped += textwrap.wrap(line, 99, subsequent_indent=" " * (len(line) - len(
            line.lstrip()) + 4), break_long_words=False) if len(line) > 99 else [line]
    return "r'''" + "\n".join(wrapped).rstrip() + "\n'''"
