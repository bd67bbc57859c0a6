"""Beyond the Gaussian: real diffusers samplers on exact non-Gaussian models, and sample metrics.

symspec's spectra are exact for Gaussian data.  This module measures what a schedule does
when the data are not Gaussian, with no network error in the way: a real diffusers
scheduler is driven by the exact posterior mean of a :class:`~symspec.models.GaussianMixture`
(or :class:`~symspec.models.Empirical`) model, converted to the scheduler's prediction type
(:func:`sample`, through the one loop of :mod:`symspec.diffusers.verify`), or by any network
``(x, t) -> prediction``.  The samples are then scored against the model
(:func:`metrics`): the Fréchet distance, an unbiased MMD, the sliced Wasserstein-2 distance
and the KL divergence of the mode proportions, each with a standard error and the value an
exact sample of the same size scores (its noise floor).  :func:`predicted_fd` is the
Gaussian closed-form prediction of the Fréchet distance, from
:func:`symspec.spectral_response` on the model's PCA spectrum; :func:`compare_schedules`
puts a designed schedule against diffusers' defaults.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .models import Empirical, GaussianMixture, _count, _samples, _seed

__all__ = ["sample", "metrics", "predicted_fd", "frechet_distance", "default_schedulers",
           "designed_scheduler", "compare_schedules", "MMD_KERNEL"]

MMD_KERNEL = ("gaussian k(x, y) = exp(-|x - y|^2 / (2 h^2)), h = the median distance between "
              "pairs of (up to) 1000 reference points")


# -- sampling ----------------------------------------------------------------------------
def _is_model(model) -> bool:
    return isinstance(model, GaussianMixture | Empirical) or (
        hasattr(model, "posterior_mean") and hasattr(model, "dim"))


def _exact_answer(model, prediction_type: str):
    """The loop model ``(x_in, alpha_bar, t) -> prediction`` of an exact data model."""
    import torch

    if prediction_type not in ("epsilon", "sample", "v_prediction"):
        raise ValueError(f"the scheduler's prediction_type must be epsilon, sample or "
                         f"v_prediction, got {prediction_type!r}")

    def answer(x_in, alpha_bar, t):
        ab = float(alpha_bar)
        x = x_in.detach().numpy()
        x0 = model.posterior_mean(x, ab)
        if prediction_type == "sample":
            return torch.from_numpy(x0)
        a, s = math.sqrt(ab), math.sqrt(1.0 - ab)
        if s == 0.0:
            raise ValueError(f"the scheduler asked for a {prediction_type} prediction at "
                             "alpha-bar 1, where it is undefined")
        if prediction_type == "epsilon":
            return torch.from_numpy((x - a * x0) / s)
        return torch.from_numpy((a * x - x0) / s)  # v = a eps - s x0

    return answer


def sample(scheduler, model, n: int, *, seed: int = 0, latents=None, dim: int | None = None,
           progress: Callable[[int, int], None] | None = None, **step_kwargs) -> np.ndarray:
    """``n`` samples ``(n, d)`` from the real diffusers ``scheduler`` as configured.

    A float64 copy of ``scheduler`` runs the loop of :mod:`symspec.diffusers.verify` (with
    its float32 upcasts stopped).  A data ``model`` (:class:`~symspec.models.GaussianMixture`,
    :class:`~symspec.models.Empirical`) answers with its exact posterior mean, converted to
    the scheduler's ``prediction_type`` (``eps = (x - a x0) / s``, ``v = (a x - x0) / s``) at
    the noise level of each step: alpha-bar of the timestep, or ``1 / (1 + sigma**2)`` with
    the input ``scale_model_input(x, t)`` for schedulers that keep sigmas.  Any other
    callable ``model(x, t) -> prediction`` (a network) gets that input and the timestep, as
    in a diffusers pipeline, as float64 tensors; give ``dim`` for it.

    Parameters
    ----------
    scheduler : diffusers scheduler
        Configured and after ``set_timesteps``; it is not modified.
    model : GaussianMixture, Empirical or callable
        The denoiser.
    n : int
        Number of samples.
    seed : int
        Seeds one ``torch.Generator`` for the initial latents and every noise draw.
    latents : array_like, optional
        ``(n, d)`` initial latents in standard-normal units (scaled by
        ``init_noise_sigma``) instead of drawn ones.
    dim : int, optional
        Dimension of one sample (default ``model.dim``).
    progress : callable, optional
        ``progress(i, steps)`` after each step.
    **step_kwargs
        Passed to ``scheduler.step`` (``eta`` for DDIM).

    Examples
    --------
    >>> from diffusers import DDIMScheduler
    >>> from symspec.models import GaussianMixture
    >>> gm = GaussianMixture([0.5, 0.5], [[-2.0], [2.0]], [[[0.01]], [[0.01]]])
    >>> sch = DDIMScheduler(clip_sample=False); sch.set_timesteps(50)
    >>> x = sample(sch, gm, 2000, seed=0)
    >>> x.shape, bool(np.abs(np.abs(x) - 2).max() < 0.5), round(float((x > 0).mean()), 1)
    ((2000, 1), True, 0.5)
    """
    from .diffusers.verify import sample_model

    n = _count(n)
    configured = getattr(scheduler, "num_inference_steps", None) is not None or getattr(
        scheduler, "custom_timesteps", False)
    if not configured or not hasattr(scheduler, "step"):
        raise ValueError("scheduler must be a diffusers scheduler after set_timesteps(N)")
    if _is_model(model):
        d = model.dim if dim is None else dim
        if d != model.dim:
            raise ValueError(f"dim = {dim!r} does not match the model's dimension {model.dim}")
        answer = _exact_answer(model, scheduler.config.prediction_type)
    elif callable(model):
        if dim is None and latents is None:
            raise ValueError("dim must be given for a network model (the size of one sample)")

        def answer(x_in, alpha_bar, t):
            return model(x_in, t)

        d = dim if dim is not None else np.shape(latents)[-1]
    else:
        raise ValueError(f"model must be a GaussianMixture, an Empirical model or a callable "
                         f"(x, t) -> prediction, got {type(model).__name__}")
    if not isinstance(d, int | np.integer) or d < 1:
        raise ValueError(f"dim must be a positive int, got {d!r}")
    if latents is not None:
        latents = np.asarray(latents, dtype=np.float64)
        if latents.shape != (n, d):
            raise ValueError(f"latents must have shape (n, d) = {(n, int(d))}, got "
                             f"{latents.shape}")
    return sample_model(scheduler, answer, n, int(d), _seed(seed), step_kwargs,
                        latents=latents, strict64=True, progress=progress)


# -- metrics -----------------------------------------------------------------------------
def _sqrtm_psd(c: np.ndarray) -> np.ndarray:
    lam, U = np.linalg.eigh(0.5 * (c + c.T))
    return (U * np.sqrt(np.maximum(lam, 0.0))) @ U.T


def frechet_distance(mean1, cov1, mean2, cov2) -> float:
    """``W2^2`` between ``N(mean1, cov1)`` and ``N(mean2, cov2)`` (the Fréchet distance).

    ``|m1 - m2|^2 + tr(C1 + C2 - 2 (C1^(1/2) C2 C1^(1/2))^(1/2))``.

    >>> frechet_distance([0.0, 0.0], np.eye(2), [3.0, 4.0], 4 * np.eye(2))  # 25 + 2 * 1
    27.0
    """
    m1, m2 = np.atleast_1d(np.asarray(mean1, float)), np.atleast_1d(np.asarray(mean2, float))
    c1, c2 = np.atleast_2d(np.asarray(cov1, float)), np.atleast_2d(np.asarray(cov2, float))
    r = _sqrtm_psd(c1)
    cross = np.sqrt(np.maximum(np.linalg.eigvalsh(r @ c2 @ r), 0.0)).sum()
    return float(np.sum((m1 - m2) ** 2) + np.trace(c1) + np.trace(c2) - 2 * cross)


def _moments(x: np.ndarray):
    m = x.mean(axis=0)
    d = x - m
    return m, d.T @ d / (len(x) - 1)


def _bandwidth(ref: np.ndarray) -> float:
    r = ref[:1000]
    sq = np.einsum("nd,nd->n", r, r)
    d2 = sq[:, None] + sq[None] - 2 * r @ r.T
    iu = np.triu_indices(len(r), 1)
    h = float(np.sqrt(np.median(np.maximum(d2[iu], 0.0))))
    return h if h > 0 else 1.0


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray, h: float) -> float:
    def gram(a, b):
        sa, sb = np.einsum("nd,nd->n", a, a), np.einsum("nd,nd->n", b, b)
        return np.exp(-np.maximum(sa[:, None] + sb[None] - 2 * a @ b.T, 0.0) / (2 * h * h))

    m, k = len(x), len(y)
    kxx, kyy = gram(x, x), gram(y, y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
                 + (kyy.sum() - np.trace(kyy)) / (k * (k - 1)) - 2 * gram(x, y).mean())


def _sliced_sorted(sx: np.ndarray, sy: np.ndarray) -> float:
    """Mean over directions (columns) of ``W2^2`` between sorted 1-D samples, by quantiles."""
    if len(sx) != len(sy):  # compare at the quantile levels of the smaller sample
        small, big = (sx, sy) if len(sx) < len(sy) else (sy, sx)
        q = (np.arange(len(small)) + 0.5) / len(small) * len(big) - 0.5
        lo = np.clip(np.floor(q).astype(int), 0, len(big) - 1)
        hi = np.clip(lo + 1, 0, len(big) - 1)
        f = np.clip(q - lo, 0.0, 1.0)[:, None]
        sx, sy = small, big[lo] * (1 - f) + big[hi] * f
    return float(np.mean((sx - sy) ** 2))


def _resorted(sx: np.ndarray, order: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The sorted columns of a bootstrap resample (row ``r`` taken ``counts[r]`` times)."""
    return np.stack([np.repeat(sx[:, c], counts[order[:, c]]) for c in range(sx.shape[1])],
                    axis=1)


def _kl(q_counts: np.ndarray, p_counts: np.ndarray) -> float:
    """``KL(q || p)``: ``q`` the sample's proportions, ``p`` the reference's (+1/2 each)."""
    q = q_counts / q_counts.sum()
    p = (p_counts + 0.5) / (p_counts.sum() + 0.5 * len(p_counts))
    nz = q > 0
    return float(np.sum(q[nz] * np.log(q[nz] / p[nz])))


def _scores(x, ref, exact, labels_x, labels_ref, K, h, dirs, blocks, n_boot, rng):
    """The four metrics and their standard errors (bootstrap, or blocks for the MMD)."""
    out = {}
    mref, cref = exact if exact is not None else _moments(ref)
    out["fd"] = frechet_distance(*_moments(x), mref, cref)
    m = min(len(x), len(ref)) // blocks
    if m < 2:
        raise ValueError(f"samples needs at least {2 * blocks} rows for the MMD blocks, got "
                         f"{len(x)}")
    vals = [_mmd2_unbiased(x[b * m:(b + 1) * m], ref[b * m:(b + 1) * m], h)
            for b in range(blocks)]
    out["mmd"], out["mmd_se"] = float(np.mean(vals)), float(np.std(vals, ddof=1) / np.sqrt(
        blocks))
    px, py = x @ dirs, ref @ dirs
    ox, oy = np.argsort(px, axis=0), np.argsort(py, axis=0)
    sx, sy = np.take_along_axis(px, ox, 0), np.take_along_axis(py, oy, 0)
    out["sliced_w2"] = _sliced_sorted(sx, sy)
    cx = np.bincount(labels_x, minlength=K).astype(float)
    cr = np.bincount(labels_ref, minlength=K).astype(float)
    out["mode_kl"] = _kl(cx, cr)
    boot: dict[str, list[float]] = {"fd": [], "sliced_w2": [], "mode_kl": []}
    for _ in range(n_boot):
        i = rng.integers(len(x), size=len(x))
        wi = np.bincount(i, minlength=len(x))
        j = rng.integers(len(ref), size=len(ref)) if exact is None else None
        mr, cr_ = (mref, cref) if j is None else _moments(ref[j])
        boot["fd"].append(frechet_distance(*_moments(x[i]), mr, cr_))
        syb = sy if j is None else _resorted(sy, oy, np.bincount(j, minlength=len(ref)))
        boot["sliced_w2"].append(_sliced_sorted(_resorted(sx, ox, wi), syb))
        cxb = np.bincount(labels_x[i], minlength=K).astype(float)
        crb = cr if j is None else np.bincount(labels_ref[j], minlength=K).astype(float)
        boot["mode_kl"].append(_kl(cxb, crb))
    for k, v in boot.items():
        out[f"{k}_se"] = float(np.std(v, ddof=1))
    return out


def metrics(samples, model, *, reference=None, seed: int = 0, floor=True, n_boot: int = 20,
            mmd_blocks: int = 10, directions: int = 64) -> dict:
    """Distances between ``samples`` and the data ``model``, with standard errors and floors.

    The target is ``model`` itself (``reference=None``: exact mean and covariance for the
    Fréchet distance, an exact sample of the same size, drawn with ``seed``, for the
    others) or the ``reference`` samples (e.g. held-out data; rows are shuffled with
    ``seed``).

    - ``fd``: the Fréchet distance, ``W2^2`` between the Gaussian fits (mean, covariance)
      of the samples and the target (:func:`frechet_distance`).
    - ``mmd``: squared maximum mean discrepancy, unbiased (U-statistic) with the kernel
      :data:`MMD_KERNEL` (the bandwidth ``h`` depends on the reference only, so values for
      different samplers are comparable; it is returned as ``mmd_bandwidth``), averaged over
      ``mmd_blocks`` disjoint blocks of the rows; its standard error is the blocks'.
    - ``sliced_w2``: the mean over ``directions`` random unit directions (fixed by
      ``seed``) of ``W2^2`` between the projected samples, by quantiles.
    - ``mode_kl``: ``KL(q || p)`` between the proportions ``q`` of the samples in each mode
      (``model.component``: the most probable component of a clean sample) and the
      reference's ``p`` (counts + 1/2, so ``p > 0``).

    ``*_se`` is a standard error: bootstrap over rows (``n_boot`` resamples of the samples
    and of a reference sample; the exact moments are not resampled) for ``fd``,
    ``sliced_w2`` and ``mode_kl``.  ``*_floor`` is what an exact sample of the model of the
    same size scores (``floor=True``; or the ``*_floor`` entries of an earlier result
    passed as ``floor``; ``floor=False``: none): the bias every estimate carries; a sampler
    is indistinguishable from exact when it scores its floor to within the errors.

    Examples
    --------
    >>> from symspec.models import GaussianMixture
    >>> gm = GaussianMixture([1.0], [[0.0, 0.0]], [np.eye(2)])
    >>> shifted = gm.sample(4000, seed=5) + [0.5, 0.0]
    >>> m = metrics(shifted, gm)
    >>> bool(abs(m["fd"] - m["fd_floor"] - 0.25) < 4 * m["fd_se"])  # |shift|^2
    True
    >>> bool(m["mmd"] > 5 * m["mmd_se"]) and bool(abs(m["mmd_floor"]) < 5 * m["mmd_se"])
    True
    """
    x = _samples(samples)
    if not _is_model(model):
        raise ValueError(f"model must be a GaussianMixture or Empirical model, got "
                         f"{type(model).__name__}")
    if x.shape[1] != model.dim:
        raise ValueError(f"samples have {x.shape[1]} values per row but model has dimension "
                         f"{model.dim}")
    seed = _seed(seed)
    for name, v in (("n_boot", n_boot), ("mmd_blocks", mmd_blocks), ("directions", directions)):
        if not isinstance(v, int | np.integer) or v < 2:
            raise ValueError(f"{name} must be an int >= 2, got {v!r}")
    rng = np.random.default_rng(seed)
    if reference is None:
        ref = model.sample(len(x), seed=seed + 1)
        exact = (model.mean(), model.covariance())
    else:
        ref = _samples(reference, "reference")
        if ref.shape[1] != model.dim:
            raise ValueError(f"reference has {ref.shape[1]} values per row but model has "
                             f"dimension {model.dim}")
        if len(ref) < 2 * mmd_blocks:
            raise ValueError(f"reference needs at least {2 * mmd_blocks} rows, got {len(ref)}")
        ref = ref[rng.permutation(len(ref))]
        exact = None
    if len(x) < 2 * mmd_blocks:
        raise ValueError(f"samples needs at least {2 * mmd_blocks} rows, got {len(x)}")
    h = _bandwidth(ref)
    dirs = np.random.default_rng([seed, 1]).standard_normal((model.dim, directions))
    dirs /= np.linalg.norm(dirs, axis=0)
    K = model.n_components
    labels_ref = model.component(ref)

    def score(z, r):
        return _scores(z, ref, exact, model.component(z), labels_ref, K, h, dirs, mmd_blocks,
                       n_boot, r)

    out = score(x, rng)
    out.update(mmd_bandwidth=h, mmd_kernel=MMD_KERNEL, n=len(x), n_reference=len(ref),
               reference="model" if reference is None else "samples")
    if floor is True:
        exact_x = model.sample(len(x), seed=seed + 2)
        fl = score(exact_x, np.random.default_rng([seed, 2]))
        out.update({f"{k}_floor": fl[k] for k in ("fd", "sliced_w2", "mmd", "mode_kl")})
    elif isinstance(floor, Mapping):
        out.update({k: floor[k] for k in floor if k.endswith("_floor")})
    elif floor is not False:
        raise ValueError(f"floor must be True, False or an earlier result, got {floor!r}")
    return out


def predicted_fd(sampler, schedule, model) -> float:
    """The Fréchet distance the Gaussian theory predicts for ``sampler`` on ``schedule``.

    In the PCA basis of ``model`` (:meth:`~symspec.models.GaussianMixture.spectrum`) the
    Gaussian with the model's mean and covariance has independent modes;
    :func:`symspec.spectral_response` gives each mode's output variance ``P`` and mean, so
    the output is ``N(mean_out, diag(P))`` and its ``W2^2`` to the data's Gaussian fit is
    ``|mean_out - mean|^2 + sum (sqrt(P) - sqrt(lam))^2``.  Exact for ``K = 1``; for a
    mixture, what the spectrum alone predicts.

    >>> import symspec
    >>> from symspec.models import GaussianMixture
    >>> gm = GaussianMixture([1.0], [[0.0, 0.0]], [np.diag([1.0, 0.01])])
    >>> s = symspec.Schedule.from_alpha_bar([1e-4, 0.5, 0.99, 1.0])
    >>> 0 < predicted_fd(symspec.DDPM, s, gm) < 1
    True
    """
    from .numeric.response import spectral_response

    if not _is_model(model):
        raise ValueError(f"model must be a GaussianMixture or Empirical model, got "
                         f"{type(model).__name__}")
    sp = model.spectrum()
    r = spectral_response(sampler, schedule, sp.eigenvalues, mean=sp.mean_coords)
    return float(np.sum((r.output_mean - sp.mean_coords) ** 2)
                 + np.sum((np.sqrt(r.output_psd) - np.sqrt(sp.eigenvalues)) ** 2))


# -- designed vs default schedules --------------------------------------------------------
_DEFAULT_BETAS = {"linear": "linear", "cosine": "squaredcos_cap_v2"}
_SAMPLERS = ("ddim", "ddpm")


def _check_sampler(name: str) -> None:
    if name not in _SAMPLERS:
        raise ValueError(f"sampler must be one of {_SAMPLERS}, got {name!r}")


def _steps(steps) -> int:
    if not isinstance(steps, int | np.integer) or not 1 <= steps <= 1000:
        raise ValueError(f"steps must be an int from 1 to 1000, got {steps!r}")
    return int(steps)


def default_schedulers(sampler: str, steps: int, prediction_type: str = "epsilon") -> dict:
    """diffusers' six default schedulers, ``{beta}/{spacing}``, after ``set_timesteps``.

    ``DDIMScheduler`` (``eta = 0`` when run) or ``DDPMScheduler`` (``fixed_small``) with
    the ``linear`` or ``squaredcos_cap_v2`` ("cosine") training betas and ``leading``,
    ``trailing`` or ``linspace`` timestep spacing; ``clip_sample`` off (clipping is not part
    of the model).

    >>> sorted(default_schedulers("ddim", 5))[:3]
    ['cosine/leading', 'cosine/linspace', 'cosine/trailing']
    """
    import diffusers

    _check_sampler(sampler)
    cls: Any = diffusers.DDIMScheduler if sampler == "ddim" else diffusers.DDPMScheduler
    out = {}
    for name, beta in _DEFAULT_BETAS.items():
        for spacing in ("leading", "trailing", "linspace"):
            sch = cls(beta_schedule=beta, timestep_spacing=spacing, clip_sample=False,
                      prediction_type=prediction_type)
            sch.set_timesteps(_steps(steps))
            out[f"{name}/{spacing}"] = sch
    return out


def designed_scheduler(sampler: str, steps: int, model, *, schedule=None,
                       prediction_type: str = "epsilon"):
    """The diffusers scheduler that runs the schedule designed for ``model``'s PCA spectrum.

    :func:`symspec.design_schedule` (W2, the levels kept inside diffusers' default linear
    training schedule, :func:`symspec.diffusers.level_range`) on
    ``model.spectrum().eigenvalues``, or the given ``schedule``, exported with
    :func:`symspec.to_diffusers`: DDIM runs as first-order DPM-Solver++ (the same update),
    DDPM as ``DDPMScheduler`` on custom timesteps.  Returns ``(scheduler, schedule)``.

    >>> from symspec.models import GaussianMixture
    >>> gm = GaussianMixture([1.0], [[0.0, 0.0]], [np.diag([1.0, 0.01])])
    >>> sch, s = designed_scheduler("ddim", 4, gm)
    >>> type(sch).__name__, s.steps
    ('DPMSolverMultistepScheduler', 4)
    """
    import diffusers

    from .design.optimise import design_schedule
    from .diffusers.export import level_range, to_diffusers
    from .symbolic.samplers import DDIM, DDPM

    _check_sampler(sampler)
    smp = DDIM if sampler == "ddim" else DDPM
    if schedule is None:
        schedule = design_schedule(smp, model.spectrum().eigenvalues, _steps(steps),
                                   level_range=level_range())
    elif schedule.steps != steps:
        raise ValueError(f"schedule has {schedule.steps} steps, not steps = {steps}")
    cls = diffusers.DDIMScheduler if sampler == "ddim" else diffusers.DDPMScheduler
    base = cls(clip_sample=False, prediction_type=prediction_type)
    return to_diffusers(smp, schedule, base=base), schedule


def compare_schedules(model, sampler: str = "ddim", steps: int = 10, *, n: int = 20000,
                      seed: int = 0, schedule=None, network=None, reference=None,
                      extra: Mapping[str, Any] | None = None,
                      progress: Callable[[str], None] | None = None,
                      **metric_kwargs) -> list[dict]:
    """The designed schedule against diffusers' six defaults on real samplers: metric rows.

    Every scheduler draws ``n`` samples with the same ``seed`` (the same initial latents:
    common random numbers) driven by ``model``'s exact posterior mean, or by ``network``
    (a v-prediction callable ``(x, t) -> v``), and is scored by :func:`metrics` against
    ``model`` or ``reference``; the noise floor is computed once.  Each row is a dict with
    ``name`` (``"designed"`` first, then :func:`default_schedulers`' names), ``scheduler``,
    ``predicted_fd`` (:func:`predicted_fd`, Gaussian theory) and the metrics.  ``extra``
    adds more schedules by name (e.g. a design for the model itself,
    :func:`symspec.design_schedule` given the model), exported as ``"designed"`` is; their
    rows follow it.

    >>> from symspec.models import GaussianMixture
    >>> gm = GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.0]], [np.eye(2) * 0.1] * 2)
    >>> rows = compare_schedules(gm, "ddim", 3, n=400, n_boot=4, mmd_blocks=4)
    >>> [r["name"] for r in rows][:3], len(rows)
    (['designed', 'linear/leading', 'linear/trailing'], 7)
    """
    from .diffusers.interop import from_diffusers

    _check_sampler(sampler)
    pred = "epsilon" if network is None else "v_prediction"
    designed, _ = designed_scheduler(sampler, steps, model, schedule=schedule,
                                     prediction_type=pred)
    more = {name: designed_scheduler(sampler, steps, model, schedule=s, prediction_type=pred)[0]
            for name, s in (extra or {}).items()}
    cands = {"designed": designed, **more, **default_schedulers(sampler, steps, pred)}
    rows: list = []
    fl: Any = True  # the noise floor: computed with the first metrics, then reused
    for i, (name, sch) in enumerate(cands.items()):
        def tick(j, total, i=i, name=name):
            if progress is not None:
                progress(f"[{i + 1}/{len(cands)}] {name}: step {j}/{total}")

        x = sample(sch, model if network is None else network, n, seed=seed, dim=model.dim,
                   progress=tick)
        if progress is not None:
            progress(f"[{i + 1}/{len(cands)}] {name}: metrics")
        m = metrics(x, model, reference=reference, seed=seed, floor=fl, **metric_kwargs)
        fl = m
        kw = {"eta": 0.0} if sampler == "ddim" and name not in ("designed", *more) else {}
        smp, sched = from_diffusers(sch, **kw)
        rows.append({"name": name, "scheduler": sch, "predicted_fd": predicted_fd(smp, sched,
                                                                                   model), **m})
    return rows
