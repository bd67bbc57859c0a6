"""symspec: closed-form spectral analysis of diffusion-model samplers.

The package is layered (see the README's *Architecture*):

- :mod:`symspec.symbolic`: samplers as step functions, derived and certified with SymPy;
- :mod:`symspec.numeric`: compiled maps and the one run core (forward and adjoint);
- :mod:`symspec.design`: divergences, objective, schedule design, diagnosis;
- :mod:`symspec.spectra`: data spectra (estimation, readers, models, photos);
- :mod:`symspec.diffusers`: from and to diffusers schedulers, real-run verification;
- the interface: :mod:`symspec.cli`, :mod:`symspec.demo`, :mod:`symspec.plotting`.

The names below are the curated public API.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from . import design as design
from . import diffusers as diffusers
from . import models as models
from . import numeric as numeric
from . import ops as ops
from . import reality as reality
from . import spectra as spectra
from . import symbolic as symbolic
from .design import design_schedule as design_schedule
from .design import diagnose as diagnose
from .design import divergence as divergence
from .design import objective as objective
from .diffusers import from_diffusers as from_diffusers
from .diffusers import to_diffusers as to_diffusers
from .numeric import Response as Response
from .numeric import continuous as continuous
from .numeric import sample as sample
from .numeric import spectral_response as spectral_response
from .numeric.backends import codegen as codegen
from .numeric.backends import lambdify as lambdify
from .schedules import Schedule as Schedule
from .spectra import estimate_psd as estimate_psd
from .symbolic import SAMPLERS as SAMPLERS
from .symbolic import DerivationError as DerivationError
from .symbolic import Level as Level
from .symbolic import NonLinearSamplerError as NonLinearSamplerError
from .symbolic import Sampler as Sampler
from .symbolic import closed_form as closed_form
from .symbolic import derive as derive
from .symbolic import get_sampler as get_sampler
from .symbolic import sampler as sampler
from .symbolic.samplers import DDIM as DDIM
from .symbolic.samplers import DDPM as DDPM
from .symbolic.samplers import DPMPP as DPMPP
from .symbolic.samplers import EULER as EULER
from .symbolic.samplers import EULER_ANCESTRAL as EULER_ANCESTRAL
from .symbolic.samplers import HEUN as HEUN
from .symbolic.samplers import LMS as LMS
from .symbolic.samplers import UNIPC as UNIPC
from .symbolic.samplers import VE_ANCESTRAL as VE_ANCESTRAL
from .symbolic.samplers import VE_REVERSE_DIFFUSION as VE_REVERSE_DIFFUSION

try:
    __version__ = _version("symspec")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
