"""Interoperability with diffusers schedulers (imported lazily; diffusers is optional)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .engine import Sampler
from .samplers import DDIM, DDPM
from .schedules import Schedule, diffusers_schedule

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


#: diffusers scheduler class name -> converter
SUPPORTED_SCHEDULERS: dict[str, Callable] = {"DDPMScheduler": _ddpm, "DDIMScheduler": _ddim}


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
    timesteps and the prediction type.

    Examples
    --------
    >>> from diffusers import DDIMScheduler  # doctest: +SKIP
    >>> s = DDIMScheduler(clip_sample=False); s.set_timesteps(10)  # doctest: +SKIP
    >>> sampler, schedule = from_diffusers(s, eta=0.0)  # doctest: +SKIP
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
