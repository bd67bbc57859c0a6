"""symspec and diffusers: read a configured scheduler (:func:`from_diffusers`), configure one
for a designed schedule (:func:`to_diffusers`), and run real schedulers with the exact
Gaussian model (:mod:`~symspec.diffusers.verify`).  diffusers and torch are imported only
when these are called."""

from . import verify as verify
from .export import EXPORTERS as EXPORTERS
from .export import level_range as level_range
from .export import to_diffusers as to_diffusers
from .interop import SUPPORTED_SCHEDULERS as SUPPORTED_SCHEDULERS
from .interop import from_diffusers as from_diffusers
from .paired import paired_scheduler as paired_scheduler
