"""diffusers schedulers with explicit (timestep, previous timestep) pairs.

A non-chained grid (:func:`symspec.design_schedule` with ``chained=False``) tells the
denoiser, at each step, a level that differs from where the previous step ended.
DDIMScheduler's stride rule (``prev = t - T // N``) is one such grid, but it cannot take
arbitrary pairs.  :func:`paired_scheduler` makes the smallest vehicle that can: a subclass of
``DDIMScheduler`` or ``DDPMScheduler`` whose configuration holds the pairs
(``timestep_pairs``, saved and loaded with the rest of the configuration), and whose
``set_timesteps`` and ``step`` follow them.  Everything else is the parent's code; the DDIM
step is the parent's formula (12) with the pair's previous timestep.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

__all__ = ["paired_scheduler"]

_CLASSES: dict[str, type] = {}


def paired_scheduler(cls_name: str) -> type:
    """The paired subclass of the diffusers scheduler ``cls_name`` (DDIM or DDPM), cached.

    >>> cls = paired_scheduler("DDIMScheduler")
    >>> sch = cls(timestep_pairs=[[900, 700], [750, 400], [420, -1]], clip_sample=False)
    >>> sch.set_timesteps(3)
    >>> sch.timesteps.tolist(), int(sch.previous_timestep(750))
    ([900, 750, 420], 400)
    >>> cls.from_config(sch.config).config.timestep_pairs
    [[900, 700], [750, 400], [420, -1]]
    """
    if cls_name not in ("DDIMScheduler", "DDPMScheduler"):
        raise ValueError(f"cls_name must be 'DDIMScheduler' or 'DDPMScheduler', got {cls_name!r}")
    if cls_name in _CLASSES:
        return _CLASSES[cls_name]
    import diffusers
    import torch

    base = getattr(diffusers, cls_name)
    module = importlib.import_module(base.__module__)

    def __init__(self, *args, timestep_pairs=None, **kwargs):
        base.__init__(self, *args, **kwargs)
        pairs = None if timestep_pairs is None else _check_pairs(timestep_pairs)
        self.register_to_config(timestep_pairs=pairs)
        self._prev: dict[int, int] = {}

    sig = inspect.signature(base.__init__)
    extra = inspect.Parameter("timestep_pairs", inspect.Parameter.KEYWORD_ONLY, default=None)
    params = [p for p in sig.parameters.values() if p.kind != p.VAR_KEYWORD]
    __init__.__signature__ = sig.replace(parameters=[*params, extra])  # type: ignore[attr-defined]

    def set_timesteps(self, num_inference_steps: int | None = None, device: Any = None,
                      **_: Any) -> None:
        """The timesteps of the configured pairs (``num_inference_steps`` must match)."""
        pairs = self.config.timestep_pairs
        if pairs is None:
            raise ValueError(f"this {type(self).__name__} has no timestep_pairs")
        if num_inference_steps is not None and num_inference_steps != len(pairs):
            raise ValueError(f"num_inference_steps={num_inference_steps}, but the scheduler "
                             f"runs its {len(pairs)} configured timestep pairs")
        self.num_inference_steps = len(pairs)
        self.custom_timesteps = True
        self.timesteps = torch.tensor([t for t, _ in pairs], dtype=torch.int64, device=device)
        self._prev = {int(t): int(p) for t, p in pairs}

    def previous_timestep(self, timestep):
        """The configured previous timestep of ``timestep``."""
        return torch.tensor(self._prev[int(timestep)])

    # the parent's module: code that patches a scheduler's module (its noise source, as
    # symspec.diffusers.verify does) then reaches the parent's step too
    body = {"__module__": base.__module__, "__init__": __init__, "set_timesteps": set_timesteps,
            "previous_timestep": previous_timestep,
            "__doc__": f"{cls_name} with explicit (timestep, previous timestep) pairs "
                       "(configuration key ``timestep_pairs``); see symspec.diffusers.paired."}
    if cls_name == "DDIMScheduler":
        body["step"] = _ddim_step(module)
    cls = type(f"Paired{cls_name}", (base,), body)
    _CLASSES[cls_name] = cls
    return cls


def _check_pairs(pairs) -> list[list[int]]:
    out = [[int(t), int(p)] for t, p in pairs]
    for i, (t, p) in enumerate(out):
        if not -1 <= p < t:
            raise ValueError(f"timestep pair {i} is ({t}, {p}): the previous timestep must be "
                             "below the timestep and >= -1 (the clean level)")
        if i and t >= out[i - 1][0]:
            raise ValueError(f"timestep pair {i} starts at {t}, not below the previous pair's "
                             f"{out[i - 1][0]}: timesteps must decrease")
    return out


def _ddim_step(module):
    """DDIMScheduler.step with the configured previous timestep (clipping and thresholding
    are off in every scheduler symspec makes; they are refused here too)."""
    output = module.DDIMSchedulerOutput

    def step(self, model_output, timestep, sample, eta: float = 0.0,
             use_clipped_model_output: bool = False, generator=None, variance_noise=None,
             return_dict: bool = True):
        if self.config.clip_sample or self.config.thresholding:
            raise ValueError("paired DDIM schedulers run without clipping or thresholding")
        t = int(timestep)
        prev = self._prev[t]
        a_t = self.alphas_cumprod[t]
        a_p = self.alphas_cumprod[prev] if prev >= 0 else self.final_alpha_cumprod
        b_t = 1 - a_t
        kind = self.config.prediction_type
        if kind == "epsilon":
            x0, eps = (sample - b_t**0.5 * model_output) / a_t**0.5, model_output
        elif kind == "sample":
            x0 = model_output
            eps = (sample - a_t**0.5 * x0) / b_t**0.5
        elif kind == "v_prediction":
            x0 = a_t**0.5 * sample - b_t**0.5 * model_output
            eps = a_t**0.5 * model_output + b_t**0.5 * sample
        else:
            raise ValueError(f"prediction_type {kind!r} is not supported")
        std = eta * self._get_variance(t, prev) ** 0.5
        prev_sample = a_p**0.5 * x0 + (1 - a_p - std**2) ** 0.5 * eps
        if eta > 0:
            if variance_noise is None:
                variance_noise = module.randn_tensor(model_output.shape, generator=generator,
                                                     device=model_output.device,
                                                     dtype=model_output.dtype)
            prev_sample = prev_sample + std * variance_noise
        if not return_dict:
            return prev_sample, x0
        return output(prev_sample=prev_sample, pred_original_sample=x0)

    return step
