"""The symbolic layer: samplers as step functions, derived and certified with SymPy.

:mod:`~symspec.symbolic.engine` runs a step function on symbols and certifies the linear
one-step map; :mod:`~symspec.symbolic.samplers` holds the built-in samplers;
:mod:`~symspec.symbolic.denoiser` the exact Gaussian denoiser; :mod:`~symspec.ops`
the functions of noise levels a step may use.
"""

from .denoiser import PREDICTION_TYPES as PREDICTION_TYPES
from .denoiser import Level as Level
from .denoiser import PredictionType as PredictionType
from .engine import DerivationError as DerivationError
from .engine import NonLinearSamplerError as NonLinearSamplerError
from .engine import Sampler as Sampler
from .engine import StepMap as StepMap
from .engine import closed_form as closed_form
from .engine import derive as derive
from .engine import sampler as sampler
from .samplers import SAMPLERS as SAMPLERS
from .samplers import get_sampler as get_sampler
