"""Built-in samplers, each a short step function run by the generic engine.

Every step reads levels ``c.t`` (current) and ``c.p`` (next, closer to the data) and
returns the next state.  See :mod:`symspec.engine` for the contract.
"""

from __future__ import annotations

from .engine import Sampler, sampler
from .ops import sqrt

__all__ = ["DDPM", "DDIM", "SAMPLERS", "get_sampler"]


@sampler(space="vp")
def ddpm(c, x, *, variance="fixed_small", last_noise=False):
    """DDPM ancestral step (Ho et al. 2020, Alg. 2), as diffusers' DDPMScheduler on a sub-grid.

    ``variance`` is ``"fixed_small"`` (posterior variance) or ``"fixed_large"`` (beta);
    the last step adds no noise unless ``last_noise`` (diffusers adds it when the last
    timestep is not 0).
    """
    ab_t, ab_p = c.t.alpha_bar, c.p.alpha_bar
    beta = 1 - ab_t / ab_p
    mean = (sqrt(ab_p) * beta * c.x0(x) + sqrt(1 - beta) * (1 - ab_p) * x) / (1 - ab_t)
    if c.last and not last_noise:
        return mean
    if variance not in ("fixed_small", "fixed_large"):
        raise ValueError(f"variance must be 'fixed_small' or 'fixed_large', got {variance!r}")
    var = beta if variance == "fixed_large" else (1 - ab_p) / (1 - ab_t) * beta
    return mean + sqrt(var) * c.noise()


@sampler(space="vp")
def ddim(c, x, *, eta=0):
    """DDIM step (Song, Meng & Ermon 2021, eq. 12); ``eta=1`` is DDPM's posterior sampling."""
    ab_t, ab_p = c.t.alpha_bar, c.p.alpha_bar
    sig = eta * sqrt((1 - ab_p) / (1 - ab_t) * (1 - ab_t / ab_p))
    x_next = sqrt(ab_p) * c.x0(x) + sqrt(1 - ab_p - sig**2) * c.eps(x)
    return x_next + sig * c.noise() if eta else x_next


DDPM: Sampler = ddpm
DDIM: Sampler = ddim

#: Built-in samplers by name.
SAMPLERS: dict[str, Sampler] = {s.name: s for s in (DDPM, DDIM)}


def get_sampler(name: str, **options) -> Sampler:
    """A built-in sampler by name, configured with ``options``.

    >>> get_sampler("ddim", eta=1.0).opts
    {'eta': 1.0}
    """
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; known samplers: {', '.join(sorted(SAMPLERS))}")
    return SAMPLERS[name](**options)
