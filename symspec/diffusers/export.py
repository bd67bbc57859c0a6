"""Hand a designed schedule to a real diffusers scheduler (diffusers is imported lazily).

=================  ==========================================  =============================
sampler            diffusers scheduler                         grid
=================  ==========================================  =============================
``ddpm``           ``DDPMScheduler``                           integer training timesteps
``ddim`` eta=0     ``DPMSolverMultistepScheduler``, order 1,   integer training timesteps
                   ``dpmsolver++`` (the same update as DDIM
                   on any grid; ``DDIMScheduler`` only runs
                   its own spacings)
``ddim`` eta=1     ``DDPMScheduler``, ``fixed_small``          integer training timesteps
``dpmpp``          ``DPMSolverMultistepScheduler``             integer training timesteps
``euler``          ``EulerDiscreteScheduler``                  ``sigmas`` (float32)
``heun``           ``HeunDiscreteScheduler``                   fractional timesteps whose
                                                               interpolated sigma is the
                                                               designed one (float32)
=================  ==========================================  =============================

Integer timesteps quantise the designed levels to the nearest training level (in
log-SNR); the returned scheduler's ``symspec_export`` attribute reports the exported levels,
the largest log-SNR change, and with ``psd`` the objective before and after.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .._checks import check_type
from ..schedules import Schedule, diffusers_schedule
from ..symbolic.engine import Sampler
from ..symbolic.samplers import DDIM, DDPM, DPMPP, EULER, HEUN

__all__ = ["to_diffusers", "level_range", "EXPORTERS", "ExportWarning"]

_LINEAR_OFF = {"clip_sample": False, "thresholding": False, "use_karras_sigmas": False,
               "use_exponential_sigmas": False, "use_beta_sigmas": False}


def _scheduler(cls_name: str, base, **overrides):
    import diffusers

    cls = getattr(diffusers, cls_name)
    cfg = {} if base is None else {k: v for k, v in dict(base.config).items()
                                   if not k.startswith("_")}
    keep = set(inspect.signature(cls.__init__).parameters)
    cfg = {k: v for k, v in {**cfg, **_LINEAR_OFF, **overrides}.items() if k in keep}
    sch = cls(**cfg)
    ab = sch.alphas_cumprod.detach().cpu().double().numpy()
    if ab.min() <= 0:
        raise ValueError("base has a training alpha-bar of 0 (zero terminal SNR), which "
                         f"{cls_name} cannot run; use a base without rescale_betas_zero_snr")
    return sch, ab


def level_range(base=None, space: str = "vp") -> tuple[float, float]:
    """``(min, max)`` of the noisy levels on the training schedule of ``base``.

    In alpha-bar (``space="vp"``) or sigma (``"ve"``); pass it as ``level_range=`` to
    :func:`symspec.design.design_schedule` so that a design stays exportable.  ``base``
    is a diffusers scheduler (default: ``DDPMScheduler()``, linear betas).

    >>> lo, hi = level_range()
    >>> round(lo, 6), round(hi, 6)
    (4e-05, 0.9999)
    """
    _, ab = _scheduler("DDPMScheduler", base)
    lo, hi = float(ab.min()), float(ab.max())
    if space == "vp":
        return lo, hi
    if space == "ve":
        return math.sqrt((1 - hi) / hi), math.sqrt((1 - lo) / lo)
    raise ValueError(f"space must be 'vp' or 've', got {space!r}")


def _timesteps(ab: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Strictly decreasing training timesteps nearest (in log-SNR) to VP ``levels``."""
    T, n = ab.size, levels.size
    if n > T:
        raise ValueError(f"{n} steps need more than the {T} training timesteps")
    table = np.log(ab) - np.log1p(-ab)                 # decreasing in t
    u = np.log(levels) - np.log1p(-levels)
    ts = np.abs(table[None, :] - u[:, None]).argmin(axis=1)
    for j in range(1, n):                               # strictly decreasing ...
        ts[j] = min(ts[j], ts[j - 1] - 1)
    ts[-1] = max(ts[-1], 0)
    for j in range(n - 2, -1, -1):                      # ... and inside [0, T)
        ts[j] = max(ts[j], ts[j + 1] + 1)
    return ts


def _vp_grid(sampler: Sampler, schedule: Schedule) -> np.ndarray:
    _require_chained(schedule)
    _unit_latent(sampler, schedule)
    ab = schedule.to_space("vp").alpha_bar
    if ab[-1] != 1.0:
        raise ValueError(f"the schedule ends at alpha-bar {ab[-1]}; {sampler.name!r} schedulers "
                         "end at the clean level (alpha-bar 1)")
    return ab[:-1]


def _require_chained(schedule: Schedule) -> None:
    if not schedule.chained:
        raise ValueError("this sampler exports only chained schedules (each step starting "
                         "where the previous one ended); DDPM and DDIM export any")


def _unit_latent(sampler: Sampler, schedule: Schedule) -> None:
    if schedule.init_var != 1.0:
        raise ValueError(f"{sampler.name!r} schedulers start from unit variance; this schedule "
                         f"has init_var={schedule.init_var}")


def _pairs(sampler: Sampler, schedule: Schedule, ab: np.ndarray) -> np.ndarray:
    """Integer (timestep, previous timestep) pairs nearest (in log-SNR) to a VP schedule's
    starts and ends: timesteps strictly decreasing, each previous one below its timestep,
    ``-1`` for the clean level."""
    _unit_latent(sampler, schedule)
    s = schedule.to_space("vp")
    if s.end[-1] != 1.0:
        raise ValueError(f"the schedule ends at alpha-bar {s.end[-1]}; {sampler.name!r} "
                         "schedulers end at the clean level (alpha-bar 1)")
    if np.any(s.end[:-1] >= 1.0):
        raise ValueError("only the last step may end at the clean level (alpha-bar 1)")
    ts = _timesteps(ab, s.start)
    prev = np.full(ts.size, -1)
    if ts.size > 1:
        table = np.log(ab) - np.log1p(-ab)
        u = np.log(s.end[:-1]) - np.log1p(-s.end[:-1])
        prev[:-1] = np.abs(table[None, :] - u[:, None]).argmin(axis=1)
    return np.stack([ts, np.minimum(prev, ts - 1)], axis=1)


def _pair_schedule(ab: np.ndarray, pairs: np.ndarray, meta: bool = False) -> Schedule:
    end = np.where(pairs[:, 1] >= 0, ab[np.maximum(pairs[:, 1], 0)], 1.0)
    info = {"timesteps": pairs[:, 0].tolist(), "prev_timesteps": pairs[:, 1].tolist()}
    return Schedule(ab[pairs[:, 0]], end, "vp", 1.0, info if meta else {})


def _refine_pairs(sampler: Sampler, ab: np.ndarray, pairs: np.ndarray, psd, divergence: str):
    """Integer coordinate descent on the pairs for the objective: rounding a non-chained
    grid to training timesteps can undo shifts finer than one timestep (near the clean end,
    one timestep spans a large step in log-SNR)."""
    from ..design.optimise import objective

    def cost(p):
        return objective(sampler, _pair_schedule(ab, p), psd, divergence)

    def valid(p):
        return (np.all(np.diff(p[:, 0]) < 0) and np.all(p[:, 1] < p[:, 0])
                and np.all(p[:-1, 1] >= 0) and p[-1, 1] == -1 and p[-1, 0] >= 0
                and p[0, 0] < ab.size)

    best, f = pairs.copy(), cost(pairs)
    for _ in range(50):
        improved = False
        for i in range(best.shape[0]):
            for col in (0, 1):
                if col == 1 and i == best.shape[0] - 1:
                    continue  # the last step ends at the clean level
                for d in (-1, 1, -2, 2, -4, 4):
                    trial = best.copy()
                    trial[i, col] += d
                    if valid(trial) and (ft := cost(trial)) < f:
                        best, f, improved = trial, ft, True
        if not improved:
            break
    return best


def _paired(sampler: Sampler, schedule: Schedule, base, cls_name: str, psd=None,
            divergence: str = "w2", **overrides):
    """A paired scheduler (:mod:`symspec.diffusers.paired`) running a non-chained grid."""
    from .paired import paired_scheduler

    sch0, ab = _scheduler("DDPMScheduler", base)
    pairs = _pairs(sampler, schedule, ab)
    if psd is not None:
        pairs = _refine_pairs(sampler, ab, pairs, psd, divergence)
    cls = paired_scheduler(cls_name)
    cfg = {k: v for k, v in dict(sch0.config).items() if not k.startswith("_")}
    keep = set(inspect.signature(cls).parameters)
    cfg = {k: v for k, v in {**cfg, **_LINEAR_OFF, **overrides}.items() if k in keep}
    sch = cls(**cfg, timestep_pairs=pairs.tolist())
    sch.set_timesteps(len(pairs))
    return sch, _pair_schedule(ab, pairs, meta=True)


def _ddpm(sampler: Sampler, schedule: Schedule, base, psd=None, divergence: str = "w2"):
    var, last_noise = sampler.opts["variance"], sampler.opts["last_noise"]
    if not schedule.chained:
        sch, exported = _paired(sampler, schedule, base, "DDPMScheduler", psd, divergence,
                                variance_type=var)
        if var == "fixed_large" and last_noise != bool(sch.timesteps[-1] > 0):
            raise ValueError("DDPMScheduler adds noise on the last step exactly when its "
                             f"timestep is > 0; with variance='fixed_large' that must match "
                             f"last_noise={last_noise}")
        return sch, exported
    sch, ab = _scheduler("DDPMScheduler", base, variance_type=var)
    ts = _timesteps(ab, _vp_grid(sampler, schedule))
    if var == "fixed_large" and last_noise != bool(ts[-1] > 0):
        raise ValueError("DDPMScheduler adds noise on the last step exactly when its timestep "
                         f"is > 0 (here {ts[-1]}); with variance='fixed_large' that must match "
                         f"last_noise={last_noise}")
    sch.set_timesteps(timesteps=ts.tolist())
    return sch, diffusers_schedule(ab, ts, "chained", 1.0)


def _dpmpp_config(order: int, sde: bool, solver_type: str, lower_order_final: bool):
    return {"solver_order": order, "algorithm_type": "sde-dpmsolver++" if sde else "dpmsolver++",
            "solver_type": solver_type, "lower_order_final": lower_order_final,
            "euler_at_final": False, "final_sigmas_type": "zero", "use_lu_lambdas": False,
            "use_flow_sigmas": False, "variance_type": None, "lambda_min_clipped": -math.inf}


def _dpmsolver(sampler, schedule, base, cfg):
    sch, ab = _scheduler("DPMSolverMultistepScheduler", base, **cfg)
    ts = _timesteps(ab, _vp_grid(sampler, schedule))
    sch.set_timesteps(timesteps=ts.tolist())
    sig = sch.sigmas.double().numpy()  # what it runs: its float32 sigmas of those timesteps
    ab_run = 1 / (1 + sig * sig)
    return sch, Schedule(ab_run[:-1], ab_run[1:], "vp", 1.0, {"timesteps": ts.tolist()})


def _ddim(sampler: Sampler, schedule: Schedule, base, psd=None, divergence: str = "w2"):
    eta = sampler.opts["eta"]
    if not schedule.chained:
        return _paired(sampler, schedule, base, "DDIMScheduler", psd, divergence,
                       set_alpha_to_one=True)
    if eta == 0:
        return _dpmsolver(sampler, schedule, base, _dpmpp_config(1, False, "midpoint", True))
    if eta == 1:
        return _ddpm(DDPM(variance="fixed_small"), schedule, base)
    raise ValueError(f"no diffusers scheduler runs DDIM with eta={eta} on a custom grid "
                     "(DDIMScheduler only takes its own spacings); export eta=0 or eta=1")


def _dpmpp(sampler: Sampler, schedule: Schedule, base, **_):
    o: dict[str, Any] = sampler.opts
    if not o["euler_at_final"]:
        raise ValueError("diffusers takes the last step to sigma 0 at first order; export "
                         "dpmpp with euler_at_final=True")
    return _dpmsolver(sampler, schedule, base, _dpmpp_config(
        o["solver_order"], o["sde"], o["solver_type"], o["lower_order_final"]))


def _ve_grid(sampler: Sampler, schedule: Schedule) -> np.ndarray:
    _require_chained(schedule)
    s = schedule.to_space("ve")
    sig = s.sigmas
    if not math.isclose(s.init_var, sig[0] ** 2 + 1, rel_tol=1e-12):
        raise ValueError(f"diffusers' {sampler.name} starts from variance sigma_max**2 + 1 = "
                         f"{sig[0] ** 2 + 1:.6g}; this schedule has init_var={s.init_var:.6g}")
    return sig


def _euler(sampler: Sampler, schedule: Schedule, base, **_):
    sig = _ve_grid(sampler, schedule)
    # with custom sigmas, "leading" only sets init_noise_sigma = sqrt(sigma_max**2 + 1)
    sch, _ = _scheduler("EulerDiscreteScheduler", base, timestep_spacing="leading",
                        timestep_type="discrete", final_sigmas_type="zero",
                        interpolation_type="linear")
    sch.set_timesteps(sigmas=sig.tolist())
    got = sch.sigmas.double().numpy()
    return sch, Schedule.from_sigmas(got, float(got[0]) ** 2 + 1)


def _heun(sampler: Sampler, schedule: Schedule, base, **_):
    sig = _ve_grid(sampler, schedule)
    if sig[-1] != 0:
        raise ValueError(f"HeunDiscreteScheduler ends at sigma 0; this schedule ends at {sig[-1]}")
    # "leading" only sets init_noise_sigma = sqrt(sigma_max**2 + 1), as designed
    sch, ab = _scheduler("HeunDiscreteScheduler", base, timestep_spacing="leading")
    table = np.sqrt((1 - ab) / ab)                      # increasing in t
    t = np.interp(np.clip(sig[:-1], table[0], table[-1]), table, np.arange(ab.size))
    sch.set_timesteps(timesteps=t.tolist())
    got = sch.sigmas.double().numpy()
    got = np.append(got[0], got[1::2])                  # Heun repeats the inner sigmas
    return sch, Schedule.from_sigmas(got, float(got[0]) ** 2 + 1)


#: Exporters ``(sampler, schedule, base) -> (scheduler, exported Schedule)``, keyed on the
#: built-in sampler they run (its step function: any options, never a name).
EXPORTERS: dict[Callable, Callable] = {DDPM.step: _ddpm, DDIM.step: _ddim, DPMPP.step: _dpmpp,
                                       EULER.step: _euler, HEUN.step: _heun}
_EXPORTABLE = ("DDPM", "DDIM", "DPMPP", "EULER", "HEUN")


class ExportWarning(UserWarning):
    """A schedule's levels lie outside the base scheduler's training range: they are moved
    to the nearest level it has."""


def _warn_outside(schedule: Schedule, base) -> None:
    lo, hi = level_range(base)
    vp = schedule.to_space("vp")
    levels = np.concatenate([vp.start, vp.end[vp.end < 1.0]])
    with np.errstate(divide="ignore"):  # alpha-bar 0 (zero terminal SNR) is -inf: outside
        u = np.log(levels) - np.log1p(-levels)
    u_lo, u_hi = (math.log(a) - math.log1p(-a) for a in (lo, hi))
    # beyond the range by more than float32 rounding of the training table (1e-3 in log-SNR)
    out = levels[(u < u_lo - 1e-3) | (u > u_hi + 1e-3)]
    if out.size:
        warnings.warn(f"{out.size} level(s) of the schedule lie outside the base scheduler's "
                      f"training range alpha-bar [{lo:.3g}, {hi:.3g}] (e.g. {out[0]:.3g}) and "
                      "are moved into it; design with level_range=symspec.diffusers."
                      "level_range(base) to export exactly", ExportWarning, stacklevel=3)


def _logsnr(s: Schedule) -> np.ndarray:
    ab = s.to_space("vp").start
    return np.log(ab) - np.log1p(-ab)


def to_diffusers(sampler: Sampler, schedule: Schedule, base=None, *, psd=None,
                 divergence: str = "w2"):
    """A configured diffusers scheduler that runs ``sampler`` on ``schedule``.

    Parameters
    ----------
    sampler : Sampler
        One of :data:`EXPORTERS` (with its options).
    schedule : Schedule
        A schedule ending at the clean level, e.g. from :func:`symspec.design_schedule`.
        DDPM and DDIM also run non-chained schedules (``chained=False`` designs), through a
        paired scheduler (:func:`symspec.diffusers.paired_scheduler`) whose
        configuration holds the (timestep, previous timestep) pairs; with ``psd`` those
        integer pairs are refined for the objective after rounding (one training timestep
        near the clean end is a large step in log-SNR).  The other samplers take chained
        schedules.
    base : diffusers scheduler, optional
        Its configuration (training betas, ``num_train_timesteps``, ``prediction_type``) is
        kept; options that make a scheduler non-linear (clipping, thresholding) are off.
    psd : array_like, optional
        With a data spectrum the report also gives the objective ``divergence`` on the
        designed and on the exported schedule.

    Returns
    -------
    diffusers scheduler
        After ``set_timesteps``; its attribute ``symspec_export`` is a dict with
        ``scheduler``, ``timesteps`` (integer grids; else ``None``), ``prev_timesteps``
        (paired schedulers; else ``None``), ``levels`` (the noisy
        levels the scheduler runs, in the sampler's space: its float32 sigmas where it
        keeps sigmas), ``max_logsnr_error`` (largest change of a level by the export) and,
        with ``psd``, ``objective_designed``, ``objective_exported`` (the objective on the
        levels it runs) and ``divergence``.

    Examples
    --------
    >>> import symspec
    >>> s = symspec.Schedule.from_alpha_bar([0.01, 0.3, 0.9, 1.0])
    >>> sch = to_diffusers(symspec.DDPM, s)
    >>> sch.timesteps.tolist(), sch.symspec_export["max_logsnr_error"] < 0.02
    ([673, 342, 97], True)
    """
    check_type(sampler, Sampler, "sampler")
    check_type(schedule, Schedule, "schedule")
    exporter = EXPORTERS.get(sampler.step)
    if exporter is None:
        raise ValueError(f"no diffusers scheduler runs sampler {sampler.name!r} on a custom "
                         f"grid; exportable samplers: symspec.{', symspec.'.join(_EXPORTABLE)}")
    if schedule.space == "vp" and schedule.start[0] == 0:
        raise ValueError("a zero-terminal-SNR schedule (alpha-bar 0) cannot be exported: "
                         "integer-timestep schedulers divide by alpha-bar and sigmas would be "
                         "infinite")
    _warn_outside(schedule, base)
    sch, exported = exporter(sampler, schedule, base, psd=psd, divergence=divergence)
    report = {"scheduler": type(sch).__name__,
              "timesteps": exported.meta.get("timesteps"),
              "prev_timesteps": exported.meta.get("prev_timesteps"),
              "levels": exported.to_space(sampler.space).start.tolist(),
              "max_logsnr_error": float(np.max(np.abs(_logsnr(exported) - _logsnr(schedule))))}
    if psd is not None:
        from ..design.optimise import objective

        report.update(divergence=divergence,
                      objective_designed=objective(sampler, schedule, psd, divergence),
                      objective_exported=objective(sampler, exported, psd, divergence))
    sch.symspec_export = report
    return sch
