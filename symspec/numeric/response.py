"""The spectral response of a sampler run: a thin client of :func:`symspec.numeric.core.run`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .._checks import check_type, validate_mean, validate_psd
from ..schedules import Schedule
from ..symbolic.denoiser import PredictionType
from ..symbolic.engine import Sampler
from .core import run

__all__ = ["Response", "spectral_response"]


@dataclass(frozen=True)
class Response:
    """The spectral response of a sampler run, per mode (same shape as the PSD).

    Attributes
    ----------
    transfer : ndarray
        Gain from the initial latent to the output, ``H``.
    log_transfer : ndarray
        ``log|H|``, finite even where ``H`` underflows.
    noise_psd : ndarray
        Output variance due to the noise injected along the way.
    output_psd : ndarray
        Total output variance, ``H**2 * init_var + noise_psd``.
    output_mean : ndarray or None
        Output mean per mode, when a data mean was given.
    init_var : float
        Variance of the initial latent.
    trajectory : dict or None
        With ``trajectory=True``: arrays of shape ``(N + 1, *psd.shape)``, ``"variance"``
        and ``"transfer"`` of ``x`` after each step (row 0 is the initial latent).
    """

    transfer: np.ndarray
    log_transfer: np.ndarray
    noise_psd: np.ndarray
    output_psd: np.ndarray
    output_mean: np.ndarray | None
    init_var: float
    trajectory: dict | None = None


def spectral_response(sampler: Sampler, schedule: Schedule, psd: ArrayLike, *,
                      mean: ArrayLike | None = None,
                      prediction_type: PredictionType = "epsilon",
                      trajectory: bool = False) -> Response:
    """Exact per-mode response of ``sampler`` run on ``schedule`` for data spectrum ``psd``.

    Parameters
    ----------
    sampler : Sampler
        A built-in (``symspec.DDPM``, ``symspec.DDIM(eta=...)``, ...) or user sampler.
    schedule : Schedule
        Noise levels; converted to the sampler's space if needed.
    psd : array_like
        Per-mode data variances (any 1-3 dimensional grid).
    mean : array_like, optional
        Per-mode data mean (broadcast to ``psd``); enables ``output_mean``.
    prediction_type : {"epsilon", "sample", "v_prediction"}
        What the exact model outputs (the map is the same for all; this is exposed for
        cross-checks).
    trajectory : bool
        Also return the per-step variance and transfer.

    Examples
    --------
    >>> import numpy as np, symspec
    >>> sched = symspec.Schedule.from_alpha_bar([0.01, 0.3, 0.8, 1.0])
    >>> r = symspec.spectral_response(symspec.DDPM, sched, [0.1, 1.0, 10.0])
    >>> lam = np.array([0.1, 1.0, 10.0])
    >>> np.allclose(r.transfer, 0.1 * lam / (0.01 * lam + 0.99))  # the telescoped form
    True
    """
    check_type(sampler, Sampler, "sampler")
    check_type(schedule, Schedule, "schedule")
    grid = validate_psd(psd)
    shape = grid.shape
    m = None if mean is None else validate_mean(mean, shape)
    sched = schedule.to_space(sampler.space)
    fw = run(sampler, sched, grid.ravel(), prediction_type=prediction_type, mean=m,
             trajectory=trajectory)
    transfer = fw.transfer
    with np.errstate(under="ignore", over="ignore"):  # checked below
        out = transfer * transfer * sched.init_var + fw.noise
    traj = None
    if fw.trajectory is not None:
        noise, tr = (np.stack(v).reshape(-1, *shape) for v in fw.trajectory)
        with np.errstate(under="ignore", over="ignore"):
            traj = {"variance": tr * tr * sched.init_var + noise, "transfer": tr}
    res = Response(transfer.reshape(shape), fw.log_transfer.reshape(shape),
                   fw.noise.reshape(shape), out.reshape(shape),
                   None if fw.mean is None else fw.mean.reshape(shape), sched.init_var, traj)
    if not np.all(np.isfinite(res.output_psd)):
        raise ValueError("the output spectrum is not finite; check the schedule and psd ranges")
    return res
