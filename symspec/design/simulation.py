"""Design by simulation: schedules for non-Gaussian data models, with exact gradients.

The spectral design (:func:`symspec.design_schedule` on a PSD) is exact for Gaussian data.  For a
data model of :mod:`symspec.models` (a Gaussian mixture, an empirical set) the sampler's
output has no closed form, but the model's posterior mean does, so the sampler can be
*run*: :func:`simulate` runs a sampler's own definition (the step function the derivation
engine certifies; :mod:`symspec.ops` evaluates it on PyTorch tensors) on ``n`` samples,
with the model's exact denoiser, in float64.  The noise levels are tensors, so reverse-mode
automatic differentiation through the whole loop gives the exact gradient of any function
of the output samples in every level (the denoiser's steps are recomputed in the backward
pass, :func:`torch.utils.checkpoint.checkpoint`, so memory stays one step's worth).

:func:`design_for_model` minimises a weighted sum of *terms*, each divided by its smallest
value among diffusers' six default schedules (linear or cosine training betas, leading,
trailing or linspace spacing), so that a term at 1 is as good as the best default:

- ``"w2"``: the spectral W2 of the model's PCA spectrum (the Gaussian theory; exact, no
  sampling noise; its gradient from the adjoint of :mod:`symspec.numeric.core`);
- ``"mode_kl"``: ``KL(q || w)`` between the model's component weights ``w`` and the
  samples' mean responsibilities ``q_k = mean_i P(k | x_i)`` (the mode proportions, made
  smooth; Gaussian mixtures only);
- ``"fd"``: the Fréchet distance of the samples to the model's exact mean and covariance;
- ``"mmd"``: the unbiased squared MMD to an exact sample of the model, Gaussian kernel with
  the median-distance bandwidth (:data:`symspec.reality.MMD_KERNEL`).

Every evaluation uses the same initial latents and noise draws (common random numbers,
``seed``), so the objective is a smooth deterministic function of the levels and L-BFGS-B
applies.  The search starts from the spectral design and moves every level; the first may
move noisier, never cleaner than the spectral design's honest start.  Judge the result on
fresh seeds: :func:`symspec.reality.metrics`
of the real diffusers scheduler (:func:`symspec.to_diffusers`).

The *speciation* level (:func:`speciation_level`) and the step at which each trajectory
commits to its final component (:func:`commitment`) explain where mode proportions are
decided.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from .._checks import check_type
from ..models import Empirical, GaussianMixture, _count, _seed
from ..schedules import Schedule
from ..symbolic.denoiser import Level, PredictionType
from ..symbolic.engine import Sampler, Step, make_level, variant

__all__ = ["TERMS", "DEFAULT_TERMS", "simulate", "model_terms", "design_for_model",
           "speciation_level", "commitment"]

#: The terms :func:`design_for_model` can weigh.
TERMS = ("w2", "mode_kl", "fd", "mmd")
#: The default: every term, weight 1.  For one component (a Gaussian) only ``"w2"``
#: is kept: the output is Gaussian, its exact Fréchet distance is the w2 term, and the
#: design is the spectral design.
DEFAULT_TERMS = {"w2": 1.0, "mode_kl": 1.0, "fd": 1.0, "mmd": 1.0}
_DEFAULTS = ("linear", "squaredcos_cap_v2")  # diffusers' default betas (x 3 spacings)


def _check_model(model) -> GaussianMixture | Empirical:
    if not isinstance(model, GaussianMixture | Empirical):
        raise TypeError(f"model must be a symspec.models.GaussianMixture or Empirical, got "
                        f"{type(model).__name__}")
    return model


class _Denoiser:
    """The model's exact posterior mean ``E[x0 | x_t]`` on float64 tensors, differentiable in
    both the state and the level."""

    def __init__(self, model: GaussianMixture | Empirical):
        import torch

        self.model = model
        t = torch.as_tensor
        if isinstance(model, GaussianMixture):
            K, d = model.means.shape
            self.U, self.lam = t(model._U), t(model._lam)
            # all bases side by side: x @ fwd = (x U_1 .. x U_K); (z_1 .. z_K) @ back =
            # sum_k z_k U_k^T
            self.fwd = self.U.permute(1, 0, 2).reshape(d, K * d)
            self.back = self.U.permute(0, 2, 1).reshape(K * d, d)
            self.mu_rot, self.means, self.logw = t(model._mu_rot), t(model.means), \
                t(model._logw)
        else:
            self.samples, self.sq = t(model.samples), t(model._sq)

    def __call__(self, x, ab):
        from torch.utils.checkpoint import checkpoint

        return checkpoint(self._mean, x, ab, use_reentrant=False)

    def _mean(self, x, ab):
        import torch

        a, s2 = ab**0.5, 1 - ab
        if isinstance(self.model, Empirical):
            logit = -(self.sq * ab - 2 * a * x @ self.samples.T) / (2 * s2)
            return torch.softmax(logit, dim=1) @ self.samples
        # whitened residuals y_k = (x U_k - a mu_k) / sd_k from one product with the fixed
        # bases (the level enters elementwise, so no product's gradient is a matrix product)
        K, d = self.lam.shape
        var = ab * self.lam + s2                                        # (K, d)
        isd = torch.rsqrt(var)
        y = ((x @ self.fwd).reshape(-1, K, d) - a * self.mu_rot) * isd
        logit = self.logw - 0.5 * (torch.log(var).sum(1) + y.square().sum(-1))
        r = torch.softmax(logit, dim=1)                                  # (n, K)
        z = r[..., None] * y * (a * self.lam * isd)     # the Wiener gain, per component
        return r @ self.means + z.reshape(-1, K * d) @ self.back

    def log_responsibilities(self, x):
        """``log P(k | x0 = x)`` of clean samples, ``(n, K)`` (Gaussian mixtures)."""
        import torch

        K, d = self.lam.shape
        y = (x @ self.fwd).reshape(-1, K, d) - self.mu_rot
        logit = self.logw - 0.5 * (torch.log(self.lam).sum(1) + (y * y / self.lam).sum(-1))
        return torch.log_softmax(logit, dim=1)


class _ModelStep(Step):
    """A step that asks the data model, not the Gaussian one."""

    def __init__(self, t, p, hist, denoiser, noise, key):
        super().__init__(t, p, hist, None, 0, "epsilon", noise, key)
        self._den, self._last = denoiser, None

    def x0(self, x, at: Level | None = None):
        at = self.t if at is None else at
        if self._last is not None and self._last[0] is x and self._last[1] is at:
            return self._last[2]  # asked again (eps after x0): one denoiser call
        norm = (at.alpha**2 + at.sigma**2) ** 0.5  # VE states: scale to the VP input
        out = self._den(x / norm, at.alpha**2 / norm**2)
        self._last = (x, at, out)
        return out

    def eps(self, x, at: Level | None = None):
        at = self.t if at is None else at
        return (x - at.alpha * self.x0(x, at)) / at.sigma


def _run(sampler: Sampler, start, end, init_std, den, x, gen, watch=None):
    """The sampler's own definition on the state ``x`` (standard normal), levels ``start``
    and ``end`` (floats or tensors), noise drawn from the ``torch.Generator`` ``gen``: the
    output samples.  ``watch(state, level)`` is called before each step."""
    import torch

    from ..numeric.core import reads

    state = [x * init_std] + [torch.zeros_like(x) for _ in range(sampler.state - 1)]
    arrays, steps = (start, end), len(start)

    def noise():
        return torch.randn(x.shape, generator=gen, dtype=torch.float64)

    for i in range(steps):
        lv = [make_level(arrays[a][j], sampler.space) for a, j in reads(sampler, i)]
        if watch is not None:
            watch(state[0], lv[0])
        c = _ModelStep(lv[0], lv[1], lv[2:], den, noise, variant(sampler, i, steps))
        out = sampler.step(c, *state, **sampler.opts)
        state = list(out) if isinstance(out, tuple | list) else [out]
    return state[0]


def _generator(seed: int):
    import torch

    return torch.Generator().manual_seed(seed)


def _latents(n: int, d: int, gen):
    import torch

    return torch.randn((n, d), generator=gen, dtype=torch.float64)


def simulate(sampler: Sampler, schedule: Schedule, model, n: int, *, seed: int = 0) -> np.ndarray:
    """``n`` samples ``(n, d)`` of ``sampler`` on ``schedule``, driven by ``model``'s exact
    posterior mean: the sampler's own step function run in float64 on PyTorch tensors.

    One ``torch.Generator`` seeded with ``seed`` draws the latents, then the noise, as in
    :func:`symspec.reality.sample`: on the schedule a diffusers DDIM or DDPM scheduler runs
    (:func:`symspec.from_diffusers`), the two give the same samples, to rounding.

    >>> import numpy as np, symspec
    >>> from symspec.models import GaussianMixture
    >>> gm = GaussianMixture([0.5, 0.5], [[-2.0], [2.0]], [[[0.01]], [[0.01]]])
    >>> s = symspec.Schedule.from_alpha_bar(np.linspace(1e-3, 1, 30))
    >>> x = simulate(symspec.DDIM, s, gm, 1000)
    >>> bool(np.abs(np.abs(x) - 2).max() < 0.5), round(float((x > 0).mean()), 1)
    (True, 0.5)
    """
    import torch

    check_type(sampler, Sampler, "sampler")
    check_type(schedule, Schedule, "schedule")
    model = _check_model(model)
    s = schedule.to_space(sampler.space)
    gen = _generator(_seed(seed))
    with torch.no_grad():
        x = _run(sampler, s.start.tolist(), s.end.tolist(), math.sqrt(s.init_var),
                 _Denoiser(model), _latents(_count(n), model.dim, gen), gen)
    return x.numpy()


# -- the terms ---------------------------------------------------------------------------
class _Terms:
    """The sample terms of output samples ``x`` (tensors), with their fixed references."""

    def __init__(self, model, den: _Denoiser, n: int, seed: int, want: set):
        import torch

        from ..reality import _bandwidth, _sqrtm_psd

        self.den, self.want = den, want
        self.mean = torch.as_tensor(model.mean())
        cov = model.covariance()
        self.root = torch.as_tensor(_sqrtm_psd(cov))  # FD: tr sqrt(root C root)
        self.tr_cov = float(np.trace(cov))
        if "mmd" in want:
            ref = model.sample(n, seed=seed + 2)
            self.h = _bandwidth(ref)
            self.ref = torch.as_tensor(ref)
            k = self._gram(self.ref, self.ref)
            self.kyy = float((k.sum() - k.diagonal().sum()) / (n * (n - 1)))
        if "mode_kl" in want:
            self.logw = torch.as_tensor(np.log(model.weights))

    def _gram(self, a, b):
        import torch

        d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T
        return torch.exp(-torch.clamp(d2, min=0.0) / (2 * self.h**2))

    def __call__(self, x) -> dict:
        import torch

        out = {}
        n = len(x)
        if "fd" in self.want:
            m = x.mean(0)
            dev = x - m
            c = dev.T @ dev / (n - 1)
            ev = torch.linalg.eigvalsh(self.root @ c @ self.root)
            out["fd"] = ((m - self.mean) ** 2).sum() + c.diagonal().sum() + self.tr_cov \
                - 2 * torch.sqrt(torch.clamp(ev, min=1e-300)).sum()
        if "mmd" in self.want:
            k = self._gram(x, x)
            out["mmd"] = (k.sum() - k.diagonal().sum()) / (n * (n - 1)) + self.kyy \
                - 2 * self._gram(x, self.ref).mean()
        if "mode_kl" in self.want:
            lq = torch.logsumexp(self.den.log_responsibilities(x), dim=0) - math.log(n)
            out["mode_kl"] = (lq.exp() * (lq - self.logw)).sum()
        return out


def _check_terms(terms, model) -> dict[str, float]:
    if terms is None:
        terms = dict(DEFAULT_TERMS)
        if isinstance(model, Empirical):  # its modes are its samples: no mode term
            del terms["mode_kl"]
        elif model.n_components == 1:  # a Gaussian: w2 is exact, the others estimate it
            terms = {"w2": 1.0}
    if not isinstance(terms, Mapping) or not terms:
        raise ValueError(f"terms must be a non-empty mapping from {TERMS} to weights, got "
                         f"{terms!r}")
    out = {}
    for k, v in terms.items():
        if k not in TERMS:
            raise ValueError(f"terms has an unknown term {k!r}; the terms are {TERMS}")
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
                or v < 0:
            raise ValueError(f"terms[{k!r}] must be a finite weight >= 0, got {v!r}")
        if v > 0:
            out[k] = float(v)
    if not out:
        raise ValueError(f"terms must give at least one positive weight, got {terms!r}")
    if "mode_kl" in out and not isinstance(model, GaussianMixture):
        raise ValueError("the mode_kl term needs a GaussianMixture (an Empirical model's modes "
                         "are its samples); weigh 'w2', 'fd' or 'mmd' instead")
    return out


class _Problem:
    """The terms of one (sampler, model, n, seed): values for schedules, and gradients."""

    def __init__(self, sampler, model, n, seed, want, prediction_type):
        from .optimise import _compressed

        self.sampler, self.seed = sampler, seed
        self.den = _Denoiser(model)
        self.latents = _latents(n, model.dim, _generator(seed))
        self.sample_terms = _Terms(model, self.den, n, seed, want - {"w2"})
        self.want, self.prediction_type = want, prediction_type
        sp = model.spectrum()
        self.lam, self.w = _compressed(np.maximum(sp.eigenvalues, 1e-12 * sp.eigenvalues[0]),
                                       None)

    def spectral(self, sched: Schedule):
        from .optimise import _value_and_grad

        start = np.ones(sched.steps, dtype=bool)
        end = start.copy()
        end[-1] = False  # the final level is fixed (and the gradient at a clean one is not)
        return _value_and_grad(self.sampler, sched, self.lam, self.w, "w2",
                               self.prediction_type, (start, end))

    def values(self, sched: Schedule) -> dict[str, float]:
        """Every wanted term of ``sched``, as floats."""
        import torch

        s = sched.to_space(self.sampler.space)
        out: dict[str, float] = {}
        if self.want - {"w2"}:
            with torch.no_grad():
                x = _run(self.sampler, s.start.tolist(), s.end.tolist(), math.sqrt(s.init_var),
                         self.den, self.latents, _generator(self.seed + 1))
                out = {k: float(v) for k, v in self.sample_terms(x).items()}
        if "w2" in self.want:
            out["w2"] = float(self.spectral(s)[0])
        return out


def model_terms(sampler: Sampler, schedule: Schedule, model, terms=TERMS, *, n: int = 1000,
                seed: int = 0) -> dict[str, float]:
    """The values of ``terms`` (see the module) for ``sampler`` on ``schedule``: the objective
    terms :func:`design_for_model` weighs, on ``n`` simulated samples drawn with ``seed``.

    >>> import symspec
    >>> from symspec.models import GaussianMixture
    >>> gm = GaussianMixture([0.5, 0.5], [[-2.0, 0.0], [2.0, 0.0]], [np.eye(2) * 0.1] * 2)
    >>> s = symspec.Schedule.from_alpha_bar(np.linspace(1e-3, 1, 20))
    >>> t = model_terms(symspec.DDIM, s, gm, n=500)
    >>> sorted(t), bool(t["mode_kl"] < 0.01)
    (['fd', 'mmd', 'mode_kl', 'w2'], True)
    """
    check_type(sampler, Sampler, "sampler")
    check_type(schedule, Schedule, "schedule")
    model = _check_model(model)
    want = set(_check_terms({k: 1.0 for k in terms}, model))
    return _Problem(sampler, model, _count(n), _seed(seed), want, "epsilon").values(schedule)


def default_references(problem: _Problem, steps: int) -> dict[str, tuple[float, str]]:
    """Per term, the smallest value among diffusers' six defaults and which one it is."""
    from .optimise import baseline_schedules

    best: dict[str, tuple[float, str]] = {}
    for name, sched in baseline_schedules(problem.sampler, steps).items():
        if name.split("/")[0] not in _DEFAULTS:
            continue
        for k, v in problem.values(sched).items():
            if k not in best or v < best[k][0]:
                best[k] = (v, name)
    return best


def _init_var(grid, space: str) -> float:
    return 1.0 if space == "vp" else float(grid[0]) ** 2 + 1.0


class _FirstFree:
    """Parameters ``x = (phi, theta)`` of a grid whose first level is free but never cleaner
    than a bound: its log-SNR is ``u0 = lo + (u_max - lo) expit(phi)``, and the other levels
    are those of ``_Param`` (``theta``) between ``u0`` and ``hi``."""

    def __init__(self, par, first: float):
        from .optimise import _logsnr

        self.base, self.space, self.steps = par, par.space, par.steps
        self.u_max = min(max(_logsnr(first, par.space), par.lo), par.hi)

    def _at(self, phi: float):
        from dataclasses import replace

        from scipy.special import expit

        from .optimise import _from_logsnr

        e = float(expit(phi))
        u0 = self.base.lo + (self.u_max - self.base.lo) * e
        v0, dv0 = (float(a[0]) for a in _from_logsnr(np.array([u0]), self.space))
        return replace(self.base, first=v0, lo=u0), u0, dv0, e

    def grid(self, x):
        return self._at(x[0])[0].grid(x[1:])

    def start(self, grid0: np.ndarray) -> np.ndarray:
        from .optimise import _logsnr_array

        phi = 3.0  # 95 % of the way to the bound: the warm start's level, or near it
        p = self._at(phi)[0]
        u = _logsnr_array(grid0[1:-1], self.space)
        return np.concatenate([[phi], p.theta_for(np.maximum(u, p.lo))])

    def chain(self, x, g: np.ndarray, s, dv) -> np.ndarray:
        """``dJ/dx`` from ``dJ/dgrid``: theta as in ``_Param``; phi moves the first level
        and, through ``lo``, every free level (``du_j/dlo = 1 - (u_j - lo) / (hi - lo)``)."""
        p, u0, dv0, e = self._at(x[0])
        grid = p.grid(x[1:])[0]
        from .optimise import _logsnr_array

        u = _logsnr_array(grid[1:p.m + 1], self.space)
        dlo = 1 - (u - u0) / (p.hi - u0)
        d_u0 = g[0] * dv0 + float(np.sum(g[1:p.m + 1] * dv * dlo))
        return np.concatenate([[d_u0 * (self.u_max - self.base.lo) * e * (1 - e)],
                               p.chain(g, 0.0, s, dv)])


def design_for_model(sampler: Sampler, model, steps: int, *, terms=None, n: int = 1000,
                     seed: int = 0, level_range=None, warm_start: Schedule | None = None,
                     maxiter: int = 40, prediction_type: PredictionType = "epsilon",
                     progress: Callable[[str], None] | None = None) -> Schedule:
    """The ``steps``-step schedule minimising the weighted ``terms`` on a data ``model``.

    Called by :func:`symspec.design_schedule` when it is given a model in place of a PSD.

    Parameters
    ----------
    sampler : Sampler
        Any sampler whose definition runs on tensors (the built-ins do).
    model : GaussianMixture or Empirical
        The data model; its exact posterior mean drives the simulated sampler.
    steps : int
        Number of steps.
    terms : mapping, optional
        Weights of the terms of :data:`TERMS`, each normalised by its best value among
        diffusers' six defaults (default :data:`DEFAULT_TERMS`: all four; without
        ``"mode_kl"`` for an Empirical model; ``"w2"`` alone for one component).  A term
        whose best default is 0 is left out.
    n : int
        Simulated samples per evaluation (the same ones every time).
    seed : int
        Seed of the latents, the noise and the MMD reference (the training seeds).
    level_range : (float, float), optional
        As in :func:`symspec.design_schedule`.
    warm_start : Schedule, optional
        The start; default the spectral design of the model's PCA spectrum (with its
        honest start).  The design's first level is never cleaner than the start's.
    maxiter : int
        L-BFGS-B iterations.
    progress : callable, optional
        Called with a one-line message after every evaluation.

    Returns
    -------
    Schedule
        ``meta`` holds ``objective``, ``terms`` (their values at the result),
        ``warm_terms``, ``warm_levels`` and ``warm_converged`` (the warm start),
        ``reference`` (per term, the best default and its name), ``weights``, ``n``,
        ``seed``, ``iterations``, ``evaluations``, ``converged``, ``seconds`` and ``model``.
    """
    with _one_thread():
        return _design(sampler, model, steps, terms, n, seed, level_range, warm_start, maxiter,
                       prediction_type, progress)


@contextmanager
def _one_thread():
    """One intra-op thread for PyTorch (and BLAS): the sizes here are small, and threads
    fighting over shared cores cost far more than they give."""
    import torch

    from ..numeric.core import one_blas_thread

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with one_blas_thread():
            yield
    finally:
        torch.set_num_threads(before)


def _design(sampler, model, steps, terms, n, seed, level_range, warm_start, maxiter,
            prediction_type, progress) -> Schedule:
    import torch

    from .optimise import DesignWarning, _constraints, _grid_gradient, _lbfgsb, design_schedule

    check_type(sampler, Sampler, "sampler")
    model = _check_model(model)
    weights = _check_terms(terms, model)
    n, seed = _count(n), _seed(seed)
    if n < 4:
        raise ValueError(f"n must be at least 4 samples, got {n}")
    if isinstance(maxiter, bool) or not isinstance(maxiter, int) or maxiter < 1:
        raise ValueError(f"maxiter must be a positive int, got {maxiter!r}")
    t0 = time.perf_counter()
    say = progress or (lambda msg: None)
    if warm_start is None:
        say("designing: the spectral design (warm start)")
        sp = model.spectrum()
        with warnings.catch_warnings():  # only a start: its convergence goes in meta
            warnings.simplefilter("ignore", DesignWarning)
            warm_start = design_schedule(sampler, np.maximum(sp.eigenvalues, 1e-12
                                                             * sp.eigenvalues[0]), steps,
                                         level_range=level_range,
                                         prediction_type=prediction_type)
    check_type(warm_start, Schedule, "warm_start")
    warm = warm_start.to_space(sampler.space)
    if warm.steps != steps or not warm.chained:
        raise ValueError(f"warm_start must be a chained schedule of steps = {steps} steps, got "
                         f"{warm.steps} steps{'' if warm.chained else ', not chained'}")
    grid0 = np.append(warm.start, warm.end[-1])
    problem = _Problem(sampler, model, n, seed, set(weights), prediction_type)
    say("designing: the six diffusers defaults (references)")
    ref = default_references(problem, steps)
    weights = {k: v for k, v in weights.items() if ref[k][0] > 1e-12}
    clean = 1.0 if sampler.space == "vp" else 0.0
    par = _FirstFree(_constraints(sampler, steps, None, None,
                                  None if grid0[-1] == clean else float(grid0[-1]),
                                  level_range, False, None), float(grid0[0]))
    x0 = par.start(grid0)
    count = [0]
    sample_w = {k: v for k, v in weights.items() if k != "w2"}

    def evaluate(x):
        grid, s, dv = par.grid(x)
        ratio: dict[str, Any] = {}  # each term, weighted, over its best default's value
        if sample_w:
            lv = [torch.tensor(float(v), dtype=torch.float64, requires_grad=True)
                  for v in grid[:-1]]
            levels = [*lv, float(grid[-1])]
            init_std = (lv[0] ** 2 + 1) ** 0.5 if sampler.space == "ve" else 1.0
            out = _run(sampler, levels[:-1], levels[1:], init_std, problem.den,
                       problem.latents, _generator(seed + 1))
            vals = problem.sample_terms(out)
            ratio = {k: w * vals[k] / ref[k][0] for k, w in sample_w.items()}
        if "w2" in weights:
            sched = Schedule(grid[:-1], grid[1:], par.space, _init_var(grid, par.space))
            Jw, gs, ge, gV = problem.spectral(sched)
            c = weights["w2"] / ref["w2"][0]
            ratio["w2"] = c * Jw
            g_w2 = c * _grid_gradient(gs, ge)
            if par.space == "ve":  # the initial variance sigma_0**2 + 1 moves with sigma_0
                g_w2[0] += c * gV * 2 * grid[0]
        J, g = sum(float(v.detach()) if hasattr(v, "detach") else float(v)
                   for v in ratio.values()), np.zeros(steps + 1)
        if sample_w:
            total = sum(ratio[k] for k in sample_w)
            g[:-1] = [float(v) for v in torch.autograd.grad(total, lv)]
        if "w2" in weights:
            g += g_w2
        count[0] += 1
        say(f"designing on the model: evaluation {count[0]}, objective {J:.5g}")
        return J, par.chain(x, g, s, dv)

    J0 = evaluate(x0)[0]
    J, x, nit, nfev, ok, msg = _lbfgsb(evaluate, x0, maxiter)
    if J > J0:  # never worse than the warm start on its own objective
        J, x = J0, x0
    grid = par.grid(x)[0]
    make = Schedule.from_alpha_bar if par.space == "vp" else Schedule.from_sigmas
    sched = make(grid, _init_var(grid, par.space))
    sched.meta.update({
        "objective": float(J), "objective_warm": float(J0), "weights": weights,
        "terms": problem.values(sched), "warm_terms": problem.values(warm),
        "warm_levels": grid0.tolist(), "warm_converged": warm_start.meta.get("converged"),
        "reference": {k: {"value": v, "default": nm} for k, (v, nm) in ref.items()},
        "n": n, "seed": seed, "iterations": nit, "evaluations": nfev,
        "converged": ok,
        "message": msg, "seconds": time.perf_counter() - t0, "model": repr(model),
        "sampler": sampler.name, "start_rule": "honest: at most as clean as the warm start",
        "divergence": "model terms", "chained": True})
    return sched


# -- speciation --------------------------------------------------------------------------
def speciation_level(model) -> float:
    """The alpha-bar at which a sample commits to a mode: ``1 / Lambda``, ``Lambda`` the
    largest eigenvalue of the data covariance (Biroli, Bonnaire, de Bortoli & Mézard 2024,
    ``t_S = log(Lambda) / 2`` in Ornstein-Uhlenbeck time, ``alpha_bar = exp(-2 t)``).

    >>> from symspec.models import GaussianMixture
    >>> gm = GaussianMixture([0.5, 0.5], [[-3.0], [3.0]], [[[1.0]], [[1.0]]])
    >>> speciation_level(gm)  # Lambda = 9 + 1
    0.1
    """
    top = float(_check_model(model).spectrum().eigenvalues[0])
    if top <= 1.0:
        raise ValueError(f"the model's largest covariance eigenvalue is {top:.3g} <= 1: its "
                         "signal is never weaker than the unit noise, there is no speciation")
    return 1.0 / top


def commitment(sampler: Sampler, schedule: Schedule, model: GaussianMixture, n: int, *,
               seed: int = 0, confidence: float = 0.9) -> dict[str, Any]:
    """When trajectories commit to their final component.

    Runs ``n`` trajectories (as :func:`simulate`) and, before each step, takes the posterior
    probability ``P(k | x_t)`` of the component ``k`` the trajectory ends in (that of its
    final sample, :meth:`~symspec.models.GaussianMixture.component`).  A trajectory
    *commits* at the first step from which that probability stays above ``confidence``
    (in [0.5, 1)):
    from there on its noisy state says, with that confidence, which mode it will be in.

    Returns a dict: ``steps`` (per trajectory, the step index at which it committed, 0 to
    ``N``; ``N``: only at the end), ``alpha_bar`` (the level each step starts from, then 1),
    ``histogram`` (trajectories committing at each index) and ``median_alpha_bar`` (the
    level of the median commitment).

    >>> import symspec
    >>> from symspec.models import GaussianMixture
    >>> gm = GaussianMixture([0.5, 0.5], [[-3.0], [3.0]], [[[0.1]], [[0.1]]])
    >>> s = symspec.Schedule.from_alpha_bar(np.geomspace(1e-3, 1, 12))
    >>> c = commitment(symspec.DDIM, s, gm, 400)
    >>> int(c["histogram"].sum()), bool(0.005 < c["median_alpha_bar"] < 0.5)
    (400, True)
    """
    import torch

    check_type(sampler, Sampler, "sampler")
    check_type(schedule, Schedule, "schedule")
    if not isinstance(model, GaussianMixture):
        raise TypeError(f"model must be a GaussianMixture, got {type(model).__name__}")
    from .._checks import number

    if number(confidence, "confidence", low=0.5, high=1) == 1:
        raise ValueError("confidence must be in [0.5, 1), got 1")
    s = schedule.to_space(sampler.space)
    den = _Denoiser(model)
    labels, levels = [], []

    def watch(x, at):
        norm = (at.alpha**2 + at.sigma**2) ** 0.5
        levels.append(float(at.alpha_bar))
        labels.append(model.responsibilities(x.numpy() / float(norm), float(at.alpha_bar)))

    gen = _generator(_seed(seed))
    with torch.no_grad():
        x = _run(sampler, s.start.tolist(), s.end.tolist(), math.sqrt(s.init_var), den,
                 _latents(_count(n), model.dim, gen), gen, watch)
    final = model.component(x.numpy())
    p = np.stack([r[np.arange(len(final)), final] for r in labels] + [np.ones(len(final))])
    wrong = p <= confidence                              # (steps + 1, n)
    last_wrong = np.where(wrong.any(0), len(p) - 1 - np.argmax(wrong[::-1], axis=0), -1)
    steps = last_wrong + 1
    ab = np.append(levels, 1.0)
    hist = np.bincount(steps, minlength=len(p))
    return {"steps": steps, "alpha_bar": ab, "histogram": hist,
            "median_alpha_bar": float(ab[int(np.median(steps))])}
