"""Interoperability with diffusers schedulers (imported lazily; diffusers is optional)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..schedules import Schedule, diffusers_schedule
from ..symbolic.engine import Sampler
from ..symbolic.samplers import DDIM, DDPM, DPMPP, EULER, EULER_ANCESTRAL, HEUN, LMS, UNIPC

__all__ = ["from_diffusers", "SUPPORTED_SCHEDULERS"]


def _ddpm(sch, kw) -> tuple[Sampler, Schedule]:
    _no_kwargs(sch, kw, {"generator"})
    vt = sch.config.variance_type
    if vt not in ("fixed_small", "fixed_small_log", "fixed_large"):
        raise ValueError(f"DDPMScheduler variance_type={vt!r} is not supported (learned "
                         "variances need the network; fixed_large_log is not a variance); "
                         "use fixed_small, fixed_small_log or fixed_large")
    ts = _timesteps(sch)
    sched = diffusers_schedule(_ab(sch), ts, "chained", 1.0)
    smp = DDPM(variance="fixed_large" if vt == "fixed_large" else "fixed_small",
               last_noise=bool(ts[-1] > 0))
    return smp, sched


def _ddim(sch, kw) -> tuple[Sampler, Schedule]:
    _no_kwargs(sch, kw, {"eta", "generator", "use_clipped_model_output"})
    eta = kw.get("eta", 0.0)
    if not isinstance(eta, int | float) or not np.isfinite(eta) or eta < 0:
        raise ValueError(f"eta must be a finite number >= 0, got {eta!r}")
    final = float(sch.final_alpha_cumprod)
    sched = diffusers_schedule(_ab(sch), _timesteps(sch), "stride", final,
                               sch.config.num_train_timesteps)
    return DDIM(eta=float(eta)), sched


def _sigmas(sch) -> np.ndarray:
    """The scheduler's own inference sigmas (VE, noisiest first, ending in the final sigma)."""
    if getattr(sch, "num_inference_steps", None) is None:
        raise ValueError(f"call {type(sch).__name__}.set_timesteps(...) before from_diffusers")
    return sch.sigmas.detach().cpu().double().numpy()


def _ve(sigmas, sch) -> Schedule:
    """The VE schedule on ``sigmas``, from the scheduler's initial latent ``init_noise_sigma``."""
    return Schedule(sigmas[:-1], sigmas[1:], "ve", float(sch.init_noise_sigma) ** 2)


def _unsupported(sch, **allowed):
    """Reject config options outside ``allowed`` (name -> accepted values), naming them."""
    for opt, ok in allowed.items():
        value = sch.config.get(opt, ok[0])
        if value not in ok:
            raise ValueError(f"{type(sch).__name__} option {opt}={value!r} is not supported; "
                             f"use {' or '.join(map(repr, ok))}")


def _euler(sch, kw) -> tuple[Sampler, Schedule]:
    _no_kwargs(sch, kw, {"generator", "s_churn", "s_tmin", "s_tmax", "s_noise"})
    if kw.get("s_churn", 0.0) != 0:
        raise ValueError(f"s_churn={kw['s_churn']!r} (stochastic churn) is not supported; use 0")
    return EULER, _ve(_sigmas(sch), sch)


def _euler_ancestral(sch, kw) -> tuple[Sampler, Schedule]:
    _no_kwargs(sch, kw, {"generator"})
    _unsupported(sch, prediction_type=("epsilon", "v_prediction"))  # diffusers lacks "sample"
    return EULER_ANCESTRAL, _ve(_sigmas(sch), sch)


def _heun(sch, kw) -> tuple[Sampler, Schedule]:
    _no_kwargs(sch, kw, set())
    sig = _sigmas(sch)  # s0, s1, s1, s2, s2, ..., s_{N-1}, s_{N-1}, 0: each level twice
    return HEUN, _ve(np.append(sig[::2], sig[-1]), sch)


def _lms(sch, kw) -> tuple[Sampler, Schedule]:
    _no_kwargs(sch, kw, {"order"})
    return LMS(order=kw.get("order", 4)), _ve(_sigmas(sch), sch)


def _vp(sigmas) -> Schedule:
    """The VP schedule of a VP-space scheduler that indexes its levels by sigma."""
    ab = 1 / (1 + sigmas * sigmas)
    return Schedule(ab[:-1], ab[1:], "vp", 1.0)


def _dpmsolver(sch, kw) -> tuple[Sampler, Schedule]:
    _no_kwargs(sch, kw, {"generator"})
    _unsupported(sch, algorithm_type=("dpmsolver++", "sde-dpmsolver++"), use_flow_sigmas=(False,),
                 variance_type=(None,), use_dynamic_shifting=(False,))
    cfg = sch.config
    sde = cfg.algorithm_type == "sde-dpmsolver++"
    if sde and cfg.solver_order == 3:
        raise ValueError("DPMSolverMultistepScheduler option solver_order=3 is not supported with "
                         "algorithm_type='sde-dpmsolver++'; use 1 or 2")
    smp = DPMPP(solver_order=cfg.solver_order, sde=sde, solver_type=cfg.solver_type,
                lower_order_final=cfg.lower_order_final,
                euler_at_final=cfg.euler_at_final or cfg.final_sigmas_type == "zero")
    return smp, _vp(_sigmas(sch))


def _unipc(sch, kw) -> tuple[Sampler, Schedule]:
    _no_kwargs(sch, kw, set())
    _unsupported(sch, predict_x0=(True,), use_flow_sigmas=(False,), use_dynamic_shifting=(False,))
    if sch.solver_p is not None:
        raise ValueError("UniPCMultistepScheduler option solver_p is not supported; use None")
    cfg = sch.config
    smp = UNIPC(solver_order=cfg.solver_order, solver_type=cfg.solver_type,
                lower_order_final=cfg.lower_order_final,
                disable_corrector=tuple(sorted(sch.disable_corrector)))
    return smp, _vp(_sigmas(sch))


#: diffusers scheduler class name -> converter
SUPPORTED_SCHEDULERS: dict[str, Callable] = {
    "DDPMScheduler": _ddpm, "DDIMScheduler": _ddim, "EulerDiscreteScheduler": _euler,
    "EulerAncestralDiscreteScheduler": _euler_ancestral, "HeunDiscreteScheduler": _heun,
    "LMSDiscreteScheduler": _lms, "DPMSolverMultistepScheduler": _dpmsolver,
    "UniPCMultistepScheduler": _unipc}


def _no_kwargs(sch, kw, allowed):
    bad = sorted(set(kw) - allowed)
    if bad:
        raise TypeError(f"{type(sch).__name__}.step takes no keyword {bad[0]!r} that symspec "
                        f"models; accepted: {sorted(allowed)}")


def _ab(sch) -> np.ndarray:
    ab = sch.alphas_cumprod.detach().cpu().double().numpy()
    if getattr(sch.config, "rescale_betas_zero_snr", False) or ab.min() <= 0:
        raise ValueError("rescale_betas_zero_snr=True gives alpha-bar = 0 at the last training "
                         "timestep, which this scheduler cannot run with every prediction type; "
                         "not supported")
    return ab


def _timesteps(sch) -> np.ndarray:
    if getattr(sch, "num_inference_steps", None) is None and not getattr(
            sch, "custom_timesteps", False):
        raise ValueError(f"call {type(sch).__name__}.set_timesteps(...) before from_diffusers")
    return sch.timesteps.detach().cpu().numpy().astype(np.int64)


def _check_linear(sch):
    cfg = sch.config
    for opt in ("clip_sample", "thresholding"):
        if cfg.get(opt, False):
            raise ValueError(f"{type(sch).__name__} has {opt}=True, which is not linear in the "
                             f"sample; construct it with {opt}=False")
    pt = cfg.get("prediction_type", "epsilon")
    if pt not in ("epsilon", "sample", "v_prediction"):
        raise ValueError(f"prediction_type={pt!r} is not supported")


def from_diffusers(scheduler, **step_kwargs) -> tuple[Sampler, Schedule]:
    """The symspec sampler and schedule that a configured diffusers scheduler runs.

    Call ``scheduler.set_timesteps(...)`` first.  ``step_kwargs`` are what you would pass
    to ``scheduler.step`` (``eta`` for DDIM).  The schedule's ``meta`` records the
    scheduler's class name and prediction type for every scheduler, and the integer
    timesteps for DDPM and DDIM (the sigma-based schedulers are described by their levels).

    The scheduler's own levels are read after ``set_timesteps``: alpha-bars by timestep
    (DDPM, DDIM), or its ``sigmas``.  Euler, Euler ancestral, Heun and LMS step the VE
    sample ``x = x0 + sigma eps`` from a latent of variance ``init_noise_sigma**2``; the
    model sees ``scale_model_input(x)``, the VP sample at alpha-bar ``1/(1 + sigma**2)``.
    DPM-Solver++ and UniPC step that VP sample directly.  Options that are not linear or
    not modelled (``thresholding``, ``use_flow_sigmas``, ``algorithm_type="dpmsolver"``,
    ``s_churn > 0``, ...) raise a ``ValueError`` naming the option.

    Examples
    --------
    >>> from diffusers import DDIMScheduler
    >>> s = DDIMScheduler(clip_sample=False); s.set_timesteps(10)
    >>> sampler, schedule = from_diffusers(s, eta=0.0)
    """
    name = type(scheduler).__name__
    conv = SUPPORTED_SCHEDULERS.get(name)
    if conv is None:
        raise TypeError(f"unsupported scheduler {name}; supported: "
                        f"{', '.join(sorted(SUPPORTED_SCHEDULERS))}")
    _check_linear(scheduler)
    smp, sched = conv(scheduler, step_kwargs)
    sched.meta["prediction_type"] = scheduler.config.get("prediction_type", "epsilon")
    sched.meta["scheduler"] = name
    return smp, sched
