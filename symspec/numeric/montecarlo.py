"""symspec's own Monte-Carlo sampler: the sampler definitions run on NumPy arrays."""

from __future__ import annotations

import numpy as np

from .._checks import check_type, validate_mean, validate_psd
from ..schedules import Schedule
from ..symbolic.denoiser import PredictionType
from ..symbolic.engine import Sampler, Step, derive, make_level, variant
from .core import step_levels

__all__ = ["sample"]


def sample(sampler: Sampler, schedule: Schedule, psd, n: int, *, mean=None,
           prediction_type: PredictionType = "epsilon", seed: int | None = 0,
           x_init: np.ndarray | None = None) -> np.ndarray:
    """Run ``sampler`` on ``n`` independent chains, per mode, with the exact Gaussian model.

    Returns an array of shape ``(n, *psd.shape)``: samples whose per-mode variance
    estimates :attr:`~symspec.numeric.Response.output_psd`.  The sampler is derived
    (:func:`symspec.derive`) first, so a definition that is not linear is refused here too;
    a step may use the per-mode data variance ``c.lam`` (an array here).

    >>> import numpy as np, symspec
    >>> s = symspec.Schedule.from_alpha_bar([0.05, 0.5, 1.0])
    >>> x = sample(symspec.DDPM, s, [2.0], 20000, seed=1)
    >>> r = symspec.spectral_response(symspec.DDPM, s, [2.0])
    >>> bool(abs(x.var(axis=0)[0] / r.output_psd[0] - 1) < 0.05)
    True
    """
    check_type(sampler, Sampler, "sampler")
    check_type(schedule, Schedule, "schedule")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    lam_grid = validate_psd(psd)
    shape = lam_grid.shape
    lam = lam_grid.ravel()
    m = 0.0 if mean is None else validate_mean(mean, shape)
    sched = schedule.to_space(sampler.space)
    rng = np.random.default_rng(seed)
    if x_init is None:
        x = rng.standard_normal((n, lam.size)) * np.sqrt(sched.init_var)
    elif np.size(x_init) != n * lam.size:
        raise ValueError(f"x_init must have shape (n, *psd.shape) = {(n, *shape)}, "
                         f"got {np.shape(x_init)}")
    else:
        x = np.array(x_init, dtype=np.float64).reshape(n, lam.size)
    state = [x] + [np.zeros_like(x) for _ in range(sampler.state - 1)]
    for i in range(sched.steps):  # certified linear first: the run below cannot tell
        derive(sampler, variant(sampler, i, sched.steps), prediction_type)
    for i in range(sched.steps):
        lv = [make_level(v, sampler.space) for v in step_levels(sched, sampler, i)]
        c = Step(lv[0], lv[1], lv[2:], lam, m, prediction_type,
                 lambda: rng.standard_normal((n, lam.size)), variant(sampler, i, sched.steps))
        out = sampler.step(c, *state, **sampler.opts)
        state = list(out) if isinstance(out, tuple | list) else [out]
    return np.broadcast_to(state[0], (n, lam.size)).reshape(n, *shape)
