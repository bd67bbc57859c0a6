"""The numeric layer: compiled step maps and the one run core.

:mod:`~symspec.numeric.lambdify` is the only module that calls :func:`sympy.lambdify`;
:mod:`~symspec.numeric.core` runs a (sampler, schedule) pair forward per mode and gives its
exact adjoint; :func:`spectral_response`, :func:`sample` (Monte Carlo) and the
continuous-time references (:mod:`~symspec.numeric.continuous`) are built on them.
"""

from . import continuous as continuous
from .montecarlo import sample as sample
from .response import Response as Response
from .response import spectral_response as spectral_response
