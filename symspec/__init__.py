"""symspec: closed-form spectral analysis of diffusion-model samplers."""
from .engine import NonLinearSamplerError, Sampler, closed_form, derive, sampler
from .montecarlo import sample
from .numeric import Response, spectral_response
from .samplers import DDIM, DDPM, SAMPLERS, get_sampler
from .schedules import Schedule

__all__ = ["DDIM", "DDPM", "SAMPLERS", "NonLinearSamplerError", "Response", "Sampler",
           "Schedule", "closed_form", "derive", "get_sampler", "sample", "sampler",
           "spectral_response"]
