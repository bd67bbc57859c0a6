"""Where a schedule's spectral error comes from: four parts that add up to the total.

For a sampler run on a schedule with levels ``start[i] -> end[i]`` and initial variance
``V``, write ``D_l(lam)`` for the exact noisy marginal at level ``l`` (``ab lam + 1 - ab``
in VP, ``lam + sigma**2`` in VE), ``D_0`` at the first level, ``D_L`` at the start of the
last step and ``D_e`` at the final level.  The per-mode error of the output spectrum,
``P - lam``, is split by a chain of counterfactual runs, each changing one thing:

1. ``P1``: the same run from an initial latent of the exact variance ``D_0``.
   **initial** ``= P - P1 = H**2 (V - D_0)``: the terminal-SNR mismatch (non-zero at
   alpha-bar > 0; larger with "leading" spacing, which starts below the noisiest level).
2. ``P2``: ``P1`` with the white noise of every step but the last replaced by noise shaped
   like the exact Gaussian posterior, ``Q * s(lam)``,
   ``s = (D_p / sigma_p**2) / (D_t / sigma_t**2)`` (``sigma**2`` the noise part of a level:
   ``1 - ab`` or ``sigma**2``; modes with ``lam = 0`` keep their noise).  For DDPM
   (fixed_small) this makes each step exact.  **noise_shape** ``= P1 - P2``; zero for
   deterministic samplers.
3. ``P3``: ``P2`` with the last step replaced by the exact transport from level
   ``start[N-1]`` to the final level, ``P3 = D_e / D_L * V_L`` (``V_L`` the variance entering
   the last step).  **final_step** ``= (P2 - P3) + (D_e - lam)``: the last step's own
   error plus the offset of a final level that is not clean (a non-zero final sigma).
4. **discretisation** ``= P3 - D_e = D_e (V_L / D_L - 1)``: the relative error accumulated by
   the earlier steps, carried to the end.  The continuous-time sampler started from
   ``D_0`` has none (its output is ``D_e``); :attr:`Diagnosis.reference` is its output from
   the actual latent (:func:`symspec.continuous.reference`), ``D_e + G**2 (V - D_0)``, for
   the member of the DDIM(eta) family of SDEs the sampler converges to, with
   ``G = sqrt(D_e / D_0) (alpha_0**2 D_e / (alpha_e**2 D_0))**(eta**2 / 2)``: the
   probability-flow ODE (``eta = 0``, ``D_e V / D_0``) for deterministic samplers, the
   reverse SDE (``eta = 1``) for DDPM and the ancestral samplers, ``eta`` for DDIM(eta).
   The member is :func:`symspec.continuous.continuous_limit` of the sampler, read from its
   derived step, or ``eta=`` given to :func:`diagnose`.

The four parts sum to ``P - lam`` exactly (up to rounding), for every sampler, multistep
ones included.

>>> import numpy as np, symspec
>>> psd = symspec.spectra.power_law((8, 8))
>>> s = symspec.Schedule.from_alpha_bar([0.05, 0.5, 0.95, 1.0])
>>> d = diagnose(symspec.DDPM, s, psd)
>>> bool(np.allclose(sum(d.parts.values()), d.output_psd - psd))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import check_type, validate_psd
from ..numeric.continuous import continuous_limit, member_eta, reference
from ..numeric.core import run
from ..schedules import Schedule
from ..spectra.estimate import radial_profile
from ..symbolic.denoiser import PredictionType
from ..symbolic.engine import Sampler, make_level

__all__ = ["Diagnosis", "diagnose", "PARTS", "plot_diagnosis"]

PARTS = ("initial", "discretisation", "noise_shape", "final_step")


@dataclass(frozen=True)
class Diagnosis:
    """Per-mode error parts (arrays shaped like the PSD), see :mod:`symspec.design.diagnosis`."""

    psd: np.ndarray
    output_psd: np.ndarray
    parts: dict
    reference: np.ndarray
    deterministic: bool
    eta: float = 0.0  #: the member of the DDIM(eta) family that ``reference`` is

    @property
    def total(self) -> np.ndarray:
        """``output_psd - psd``, the sum of the parts."""
        return self.output_psd - self.psd

    def sums(self) -> dict:
        """Each part summed over modes, relative to ``psd.sum()`` (plus ``"total"``)."""
        scale = self.psd.sum()
        out = {k: float(v.sum() / scale) for k, v in self.parts.items()}
        out["total"] = float(self.total.sum() / scale)
        return out

    def radial(self, channels: bool = False):
        """``(f, {name: ring average / ring average of psd})`` for the parts and the total.

        Rings of :func:`symspec.spectra.radial_profile` (for a PSD on an FFT grid); with
        ``channels`` the last axis holds eigen-channels (``symspec psd --color``) and is
        summed, not taken as a frequency axis.
        """
        def ring(v):
            return radial_profile(v.sum(axis=-1) if channels else v)

        f, lam = ring(self.psd)
        if np.any(lam == 0):
            raise ValueError("the data spectrum has rings of zero power, where a relative "
                             "error is undefined; use .parts")
        parts = {**self.parts, "total": self.total}
        rel = {k: ring(v)[1] / lam for k, v in parts.items()}
        return f, rel


def diagnose(sampler: Sampler, schedule: Schedule, psd, *,
             prediction_type: PredictionType = "epsilon", eta: float | None = None
             ) -> Diagnosis:
    """Split the output-spectrum error of ``sampler`` on ``schedule`` into :data:`PARTS`.

    Parameters
    ----------
    sampler : Sampler
    schedule : Schedule
        Any schedule (chained or not), converted to the sampler's space.
    psd : array_like
        Per-mode data variances.
    eta : float, optional
        The member of the DDIM(eta) family of continuous-time samplers whose output is
        :attr:`Diagnosis.reference` (0: the probability-flow ODE, 1: the reverse SDE).
        Default: the sampler's own continuous limit,
        :func:`symspec.continuous.continuous_limit`.

    Returns
    -------
    Diagnosis
    """
    check_type(sampler, Sampler, "sampler")
    check_type(schedule, Schedule, "schedule")
    eta = continuous_limit(sampler) if eta is None else member_eta("eta", eta)
    grid = validate_psd(psd)
    lam = grid.ravel()
    sched = schedule.to_space(sampler.space)
    n = sched.steps

    def lv(value):
        return make_level(float(value), sampler.space)

    def marginal(value):
        return lv(value).marginal(lam)

    def shape(i):  # exact-posterior colouring of the noise of step i (not the last)
        t, p = lv(sched.start[i]), lv(sched.end[i])
        if i == n - 1 or p.sigma == 0:
            return 1.0
        return (p.marginal(lam) / p.sigma**2) / (t.marginal(lam) / t.sigma**2)

    fw = run(sampler, sched, lam, prediction_type=prediction_type)
    H2, V = fw.transfer ** 2, sched.init_var
    D0, DL, De = marginal(sched.start[0]), marginal(sched.start[-1]), marginal(sched.end[-1])
    P = H2 * V + fw.noise
    P1 = H2 * D0 + fw.noise
    fw2 = run(sampler, sched, lam, prediction_type=prediction_type, noise_scale=shape,
              trajectory=True)
    P2 = H2 * D0 + fw2.noise
    assert fw2.trajectory is not None
    S_L, T_L = fw2.trajectory[0][-2], fw2.trajectory[1][-2]  # x before the last step
    VL = T_L**2 * D0 + S_L
    P3 = De / DL * VL
    parts = {"initial": P - P1, "discretisation": P3 - De, "noise_shape": P1 - P2,
             "final_step": (P2 - P3) + (De - lam)}
    deterministic = not np.any(fw.noise)  # no noise reached the output
    ref = reference("eta", sched, lam, eta=eta).output_psd
    shp = grid.shape
    return Diagnosis(grid, P.reshape(shp), {k: parts[k].reshape(shp) for k in PARTS},
                     ref.reshape(shp), deterministic, eta)


def plot_diagnosis(d: Diagnosis, ax=None, title: str | None = None):
    """Radially averaged parts and total, relative to the data spectrum, against ``|f|``."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 4))
    f, rel = d.radial()
    keep = f > 0
    ax.semilogx(f[keep], rel["total"][keep], "k-", lw=2.5, label="total")
    for k in PARTS:
        ax.semilogx(f[keep], rel[k][keep], label=k.replace("_", " "))
    ax.axhline(0, color="grey", lw=0.5)
    from matplotlib.ticker import NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel="|f| (cycles/sample)", ylabel="(output - data) / data, ring average",
           title=title or "Spectral error by source")
    ax.legend(fontsize=9)
    return ax
