"""Run real diffusers schedulers with the exact Gaussian model, in float64.

The output of a linear scheduler is ``H x_init + sum_j G_j w_j``; replacing the
scheduler's noise source by unit pulses, one run per draw, gives every coefficient.
"""

from __future__ import annotations

import contextlib
import copy
import importlib

import numpy as np
import torch


def exact_model(x, ab, lam, pred, mean=None):
    """The exact MMSE model output for a VP sample ``x`` at alpha-bar ``ab``."""
    a, s = ab.sqrt(), (1 - ab).sqrt()
    m = torch.zeros_like(lam) if mean is None else mean
    D = ab * lam + 1 - ab
    x0 = m + a * lam / D * (x - a * m)
    eps = s / D * (x - a * m)
    return {"epsilon": eps, "sample": x0, "v_prediction": a * eps - s * x0}[pred]


def as_float64(sch):
    """A deep copy of ``sch`` whose tensors are float64."""
    sch = copy.deepcopy(sch)
    for k, v in list(vars(sch).items()):
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            setattr(sch, k, v.double())
    return sch


@contextlib.contextmanager
def pulse_noise(module_name, pulses):
    """Replace ``randn_tensor`` in a scheduler module by draws from the list ``pulses``."""
    mod = importlib.import_module(module_name)
    orig = mod.randn_tensor
    it = iter(pulses)
    calls = []

    def fake(shape, generator=None, device=None, dtype=None, layout=None):
        calls.append(shape)
        return next(it).reshape(shape).to(torch.float64)

    mod.randn_tensor = fake
    try:
        yield calls
    finally:
        mod.randn_tensor = orig


def run(sch, psd, x_init, noise, step_kwargs=None, mean=None):
    """One run of ``sch`` (a float64 copy) from ``x_init``; ``noise`` lists each draw."""
    sch = as_float64(sch)
    lam = torch.as_tensor(np.asarray(psd, float).ravel(), dtype=torch.float64)
    m = None if mean is None else torch.as_tensor(np.asarray(mean, float).ravel())
    x = torch.as_tensor(np.asarray(x_init, float).ravel(), dtype=torch.float64)[None] * \
        float(sch.init_noise_sigma)
    pred = sch.config.prediction_type
    kw = dict(step_kwargs or {})
    with pulse_noise(type(sch).__module__, [torch.as_tensor(n) for n in noise]) as calls:
        for t in sch.timesteps:
            ab = sch.alphas_cumprod[int(t)]
            out = exact_model(x, ab, lam, pred, m)
            x = sch.step(out, t, x, **kw).prev_sample
    return x[0].numpy(), len(calls)


def response(sch, psd, step_kwargs=None, mean=None):
    """Transfer, injected-noise PSD and output mean of ``sch`` by unit pulses."""
    M = np.asarray(psd).size
    zeros = [np.zeros(M)] * 10_000
    transfer, n_draws = run(sch, psd, np.ones(M), zeros, step_kwargs)
    noise_psd = np.zeros(M)
    for j in range(n_draws):
        pulses = [np.zeros(M)] * n_draws
        pulses[j] = np.ones(M)
        g, _ = run(sch, psd, np.zeros(M), pulses, step_kwargs)
        noise_psd += g * g
    out_mean = None
    if mean is not None:
        out_mean, _ = run(sch, psd, np.zeros(M), zeros, step_kwargs, mean=mean)
    return transfer / float(sch.init_noise_sigma) * float(sch.init_noise_sigma), noise_psd, \
        out_mean
