"""Run real diffusers schedulers with the exact Gaussian model, in float64.

The output of a linear scheduler is ``H x_init + sum_j G_j w_j``; replacing the
scheduler's noise source by unit pulses, one run per draw, gives every coefficient.
"""

from __future__ import annotations

import contextlib
import importlib
from unittest import mock

import numpy as np
import torch

from symspec.verify import as_float64, exact_model, pulse_noise

__all__ = ["as_float64", "exact_model", "pulse_noise", "float64_only", "run", "sample",
           "response"]


class _Torch64:
    """The ``torch`` module, except that ``float32`` means ``float64``."""

    float32 = torch.float64

    def __getattr__(self, name):
        return getattr(torch, name)


@contextlib.contextmanager
def float64_only(module_name, strict=True):
    """Stop a scheduler module's internal float32 upcasts (Euler, DPM-Solver), if ``strict``."""
    if not strict:
        yield
        return
    with mock.patch.object(importlib.import_module(module_name), "torch", _Torch64()):
        yield


def run(sch, psd, x_init, noise, step_kwargs=None, mean=None, strict64=False):
    """One run of ``sch`` (a float64 copy) from ``x_init``; ``noise`` lists each draw.

    ``strict64`` also stops the scheduler's own float32 upcasts (see :func:`float64_only`).
    """
    sch = as_float64(sch)
    lam = torch.as_tensor(np.asarray(psd, float).ravel(), dtype=torch.float64)
    m = None if mean is None else torch.as_tensor(np.asarray(mean, float).ravel())
    x = torch.as_tensor(np.asarray(x_init, float).ravel(), dtype=torch.float64)[None] * \
        float(sch.init_noise_sigma)
    pred = sch.config.prediction_type
    kw = dict(step_kwargs or {})
    mod = type(sch).__module__
    with pulse_noise(mod, [torch.as_tensor(n) for n in noise]) as calls, \
            float64_only(mod, strict64):
        x = _loop(sch, x, lam, pred, m, kw)
    return x[0].numpy(), len(calls)


def _loop(sch, x, lam, pred, m, kw):
    """The sampling loop of a pipeline, with the exact model."""
    for i, t in enumerate(sch.timesteps):
        if getattr(sch, "sigmas", None) is None:  # DDPM, DDIM: alpha-bar by training timestep
            x_in, ab = x, sch.alphas_cumprod[int(t)]
        else:  # sigma-based: the model sees scale_model_input(x) at alpha-bar 1/(1 + sigma^2)
            x_in, ab = sch.scale_model_input(x, t), 1 / (1 + sch.sigmas[i] ** 2)
        x = sch.step(exact_model(x_in, ab, lam, pred, m), t, x, **kw).prev_sample
    return x


def sample(sch, psd, n, seed=0, step_kwargs=None, mean=None):
    """``n`` independent runs of ``sch`` (a float64 copy) with its own random draws."""
    sch = as_float64(sch)
    g = torch.Generator().manual_seed(seed)
    lam = torch.as_tensor(np.asarray(psd, float).ravel(), dtype=torch.float64)
    m = None if mean is None else torch.as_tensor(np.asarray(mean, float).ravel())
    x = torch.randn((n, lam.numel()), generator=g, dtype=torch.float64) * float(
        sch.init_noise_sigma)
    return _loop(sch, x, lam, sch.config.prediction_type, m,
                 {**(step_kwargs or {}), "generator": g}).numpy()


def response(sch, psd, step_kwargs=None, mean=None, strict64=False):
    """Transfer (per unit initial latent), injected-noise PSD and output mean, by unit pulses."""
    M = np.asarray(psd).size
    zeros = [np.zeros(M)] * 10_000
    transfer, n_draws = run(sch, psd, np.ones(M), zeros, step_kwargs, strict64=strict64)
    noise_psd = np.zeros(M)
    for j in range(n_draws):
        pulses = [np.zeros(M)] * n_draws
        pulses[j] = np.ones(M)
        g, _ = run(sch, psd, np.zeros(M), pulses, step_kwargs, strict64=strict64)
        noise_psd += g * g
    out_mean = None
    if mean is not None:
        out_mean, _ = run(sch, psd, np.zeros(M), zeros, step_kwargs, mean, strict64)
    return transfer / float(as_float64(sch).init_noise_sigma), noise_psd, out_mean
