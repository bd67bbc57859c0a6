"""symspec: closed-form spectral analysis of diffusion-model samplers."""
from . import spectra
from .divergence import divergence
from .engine import NonLinearSamplerError, Sampler, closed_form, derive, sampler
from .interop import from_diffusers
from .montecarlo import sample
from .numeric import Response, spectral_response
from .samplers import DDIM, DDPM, SAMPLERS, get_sampler
from .schedules import Schedule

__all__ = ["DDIM", "DDPM", "SAMPLERS", "NonLinearSamplerError", "Response", "Sampler",
           "Schedule", "closed_form", "derive", "divergence", "from_diffusers", "get_sampler",
           "sample", "sampler", "spectra", "spectral_response"]
