"""The spectral response of a sampler run: a thin client of :func:`symspec.numeric.core.run`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .._checks import check_type, validate_mean, validate_psd
from ..schedules import Schedule
from ..symbolic.denoiser import PredictionType
from ..symbolic.engine import Sampler
from .core import one_blas_thread, prepare, run_planned

__all__ = ["Response", "spectral_response", "compress", "CHUNK"]

#: Modes per block of the run of a one-value state (half of it for larger states): the
#: block's state and work arrays stay in cache from step to step.
CHUNK = 1 << 16

#: Size of the random sample by which :func:`compress` first judges a large spectrum.
_SAMPLE = 1 << 16


def _dask_response(sampler, schedule, psd, mean, prediction_type, trajectory) -> Response:
    """The response of a ``dask.array`` PSD: :func:`spectral_response` per chunk, lazily."""
    if mean is not None or trajectory:
        raise ValueError("with a dask psd, mean and trajectory are not supported")
    if not 1 <= psd.ndim <= 3:
        raise ValueError(f"psd must be 1-, 2- or 3-dimensional, got shape {psd.shape}")

    def block(b):
        r = spectral_response(sampler, schedule, np.asarray(b),
                              prediction_type=prediction_type)
        return np.stack([r.transfer, r.log_transfer, r.noise_psd, r.output_psd])

    out = psd.map_blocks(block, new_axis=0, chunks=((4,), *psd.chunks), dtype=np.float64)
    init_var = schedule.to_space(sampler.space).init_var
    return Response(out[0], out[1], out[2], out[3], None, init_var)


def compress(lam: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The distinct values of the flat ``lam`` and the map back (``None``: not worth it).

    The response of a mode depends on its variance only, so modes that share a value share
    a response: an isotropic spectrum on an ``n x n`` grid has about ``n**2 / 8`` distinct
    values.  Exact: every distinct value runs the same arithmetic as each of its modes.
    A large spectrum is first judged on a random sample of its modes: when the sample has
    (almost) no repeated value, the values are not all sorted.

    >>> u, inv = compress(np.array([2.0, 1.0, 2.0, 2.0]))
    >>> u.tolist(), inv.tolist()
    ([1.0, 2.0], [1, 0, 1, 1])
    >>> compress(np.repeat(np.arange(100_000.0), 3))[0].size  # 300,000 modes
    100000
    >>> compress(np.arange(300_000.0))[1] is None
    True
    """
    n = lam.size
    if n > 4 * _SAMPLE:  # a random sample first: sorting every value costs ~100 ns each
        idx = np.random.default_rng(0).integers(0, n, max(_SAMPLE, int(8 * math.sqrt(n))))
        sample = np.sort(lam[np.unique(idx)])  # distinct modes (O(sample) memory)
        size = sample.size
        # at most 3/4 of the values distinct puts at least 1/4 of the modes in repeats, and so
        # at least size**2 / (4 n) equal pairs in the sample on average (>= 16); when it has
        # under a quarter of that, compression is almost surely not worth it
        if 16 * n * np.count_nonzero(sample[1:] == sample[:-1]) < size * size:
            return lam, None
    s = np.sort(lam)  # one copy; np.unique would hold several
    new = np.empty(s.size, dtype=bool)
    new[0] = True
    np.not_equal(s[1:], s[:-1], out=new[1:])
    if np.count_nonzero(new) > 0.75 * lam.size:
        return lam, None
    u = s[new]
    del s, new
    return u, np.searchsorted(u, lam)


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

    Notes
    -----
    A ``dask.array`` PSD (the ``dask`` extra) gives a response of lazy dask arrays, one task
    per chunk of modes, on whatever scheduler dask is using (a ``dask.distributed`` client,
    a ``LocalCluster``, or threads); compute its fields together
    (``dask.compute(r.output_psd, r.transfer)``) so that each chunk runs once.  Bad values
    in the PSD are then reported when a chunk is computed.

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
    if type(psd).__module__.startswith("dask."):
        return _dask_response(sampler, schedule, psd, mean, prediction_type, trajectory)
    grid = validate_psd(psd, copy=False)  # only read
    shape = grid.shape
    m = None if mean is None else validate_mean(mean, shape)
    sched = schedule.to_space(sampler.space)
    lam, inv = grid.ravel(), None
    if m is None:  # modes with equal variances have equal responses: run each value once
        lam, inv = compress(lam)
    n, K = lam.size, sched.steps + 1
    transfer, log_tr, noise, out = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    out_mean = None if m is None else np.empty(n)
    steps = (np.empty((K, n)), np.empty((K, n))) if trajectory else None
    chunk = CHUNK if sampler.state == 1 else CHUNK // 2  # a larger state: more arrays per mode
    plan = prepare(sampler, sched, prediction_type, m is not None)  # shared by the chunks
    with one_blas_thread():
        for lo in range(0, n, chunk):  # bounded work arrays, and cache-sized blocks
            sl = slice(lo, min(n, lo + chunk))
            fw = run_planned(plan, lam[sl], mean=None if m is None else m[sl],
                             trajectory=trajectory)
            # Run.transfer, Run.log_transfer and the output, written in place (no copies)
            with np.errstate(under="ignore", over="ignore", divide="ignore"):  # checked below
                t = np.ldexp(fw.transfer_m, fw.transfer_e, out=transfer[sl])
                lt = np.log(np.abs(fw.transfer_m, out=log_tr[sl]), out=log_tr[sl])
                lt += fw.transfer_e * math.log(2)
                noise[sl] = fw.noise
                o = np.multiply(t, t, out=out[sl])
                o *= sched.init_var
                o += fw.noise
            if not np.all(np.isfinite(o)):
                raise ValueError("the output spectrum is not finite; check the schedule and "
                                 "psd ranges")
            if out_mean is not None:
                out_mean[sl] = fw.mean
            if steps is not None:
                assert fw.trajectory is not None
                for dst, src in zip(steps, fw.trajectory, strict=True):
                    dst[:, sl] = src
    if inv is not None:
        transfer = transfer[inv]  # one at a time: each compressed array is freed in turn
        log_tr = log_tr[inv]
        noise = noise[inv]
        out = out[inv]
        if steps is not None:
            steps = (steps[0][:, inv], steps[1][:, inv])
    traj = None
    if steps is not None:
        s_noise, tr = (v.reshape(-1, *shape) for v in steps)
        with np.errstate(under="ignore", over="ignore"):
            traj = {"variance": tr * tr * sched.init_var + s_noise, "transfer": tr}
    res = Response(transfer.reshape(shape), log_tr.reshape(shape), noise.reshape(shape),
                   out.reshape(shape), None if out_mean is None else out_mean.reshape(shape),
                   sched.init_var, traj)
    return res
