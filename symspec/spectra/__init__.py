"""The data layer: spectra of data, estimated, read from files, fitted or modelled.

:mod:`~symspec.spectra.estimate` holds the estimators, models and fits and the photos that
ship with scikit-learn; :mod:`~symspec.spectra.readers` reads arrays, image folders and WAV
files into spectra, streaming.
"""

from . import readers as readers
from .estimate import SpectrumAccumulator as SpectrumAccumulator
from .estimate import SpectrumFit as SpectrumFit
from .estimate import channel_psd as channel_psd
from .estimate import estimate_psd as estimate_psd
from .estimate import fit_psd as fit_psd
from .estimate import frequency_radius as frequency_radius
from .estimate import model_psd as model_psd
from .estimate import pca_spectrum as pca_spectrum
from .estimate import photo_patches as photo_patches
from .estimate import photo_psd as photo_psd
from .estimate import power_law as power_law
from .estimate import radial_profile as radial_profile
from .estimate import welch_psd as welch_psd
from .estimate import welch_segments as welch_segments
