"""Real diffusers schedulers with the exact Gaussian model, in float64 (symspec.diffusers.verify).

The output of a linear scheduler is ``H x_init + sum_j G_j w_j``; replacing the
scheduler's noise source by unit pulses, one run per draw, gives every coefficient.
"""

from __future__ import annotations

import numpy as np

from symspec.diffusers.verify import as_float64, exact_model, pulse_noise, scheduler_response
from symspec.diffusers.verify import run_scheduler as run
from symspec.diffusers.verify import sample_scheduler as sample

__all__ = ["as_float64", "exact_model", "pulse_noise", "run", "sample", "response"]


def response(sch, psd, step_kwargs=None, mean=None, strict64=False):
    """Transfer (per unit initial latent), injected-noise PSD and output mean, by unit pulses."""
    transfer, noise_psd = scheduler_response(sch, psd, step_kwargs, strict64)
    out_mean = None
    if mean is not None:
        M = np.asarray(psd).size
        out_mean, _ = run(sch, psd, np.zeros(M), [np.zeros(M)] * 10_000, step_kwargs, mean,
                          strict64)
    return transfer / float(as_float64(sch).init_noise_sigma), noise_psd, out_mean
