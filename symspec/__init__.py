"""symspec: closed-form spectral analysis of diffusion-model samplers."""
from . import continuous, spectra
from .design import design_schedule
from .divergence import divergence
from .engine import NonLinearSamplerError, Sampler, closed_form, derive, sampler
from .export import to_diffusers
from .interop import from_diffusers
from .montecarlo import sample
from .numeric import Response, spectral_response
from .samplers import (
    DDIM,
    DDPM,
    DPMPP,
    EULER,
    EULER_ANCESTRAL,
    HEUN,
    LMS,
    SAMPLERS,
    UNIPC,
    VE_ANCESTRAL,
    VE_REVERSE_DIFFUSION,
    get_sampler,
)
from .schedules import Schedule

__all__ = ["DDIM", "DDPM", "SAMPLERS", "NonLinearSamplerError", "Response", "Sampler",
           "Schedule", "closed_form", "derive", "divergence", "from_diffusers", "get_sampler",
           "sample", "sampler", "spectra", "spectral_response", "continuous", "DPMPP", "EULER",
           "EULER_ANCESTRAL", "HEUN", "LMS", "UNIPC", "VE_ANCESTRAL", "VE_REVERSE_DIFFUSION",
           "design_schedule", "to_diffusers"]
