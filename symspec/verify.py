"""Run real diffusers schedulers with the exact Gaussian model, to certify symspec's spectra.

torch and diffusers are imported lazily (they are optional).  The exact "network" for
Gaussian data answers in the scheduler's ``prediction_type`` at the noise level of the
current step: alpha-bar from ``alphas_cumprod[t]``, or ``1 / (1 + sigma**2)`` for schedulers
that keep ``sigmas`` (their model input is ``scale_model_input(x, t)``).  The scheduler runs
on a float64 copy.  Its output is linear, ``H x_init + sum_j G_j w_j``, so replacing its
noise source by unit pulses, one run per draw, gives every coefficient exactly.
"""

from __future__ import annotations

import contextlib
import copy
import importlib

import numpy as np

__all__ = ["exact_model", "as_float64", "pulse_noise", "run_scheduler", "scheduler_response"]


def exact_model(x, alpha_bar, lam, prediction_type: str, mean=None):
    """The exact MMSE model output (torch tensors) for a VP sample ``x`` at ``alpha_bar``.

    >>> import torch
    >>> lam, x = torch.tensor([2.0]), torch.tensor([1.0])
    >>> float(exact_model(x, torch.tensor(0.5), lam, "sample")[0])  # sqrt(.5)*2/1.5
    0.9428090453147888
    """
    import torch

    a, s = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    m = torch.zeros_like(lam) if mean is None else mean
    D = alpha_bar * lam + 1 - alpha_bar
    x0 = m + a * lam / D * (x - a * m)
    eps = s / D * (x - a * m)
    outputs = {"epsilon": eps, "sample": x0, "v_prediction": a * eps - s * x0}
    if prediction_type not in outputs:
        raise ValueError(f"prediction_type must be one of {sorted(outputs)}, "
                         f"got {prediction_type!r}")
    return outputs[prediction_type]


def as_float64(scheduler):
    """A deep copy of ``scheduler`` whose floating-point tensors are float64."""
    import torch

    sch = copy.deepcopy(scheduler)
    for k, v in list(vars(sch).items()):
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            setattr(sch, k, v.double())
    return sch


@contextlib.contextmanager
def pulse_noise(module_name: str, pulses):
    """Replace ``randn_tensor`` in a scheduler module by the draws in ``pulses``, in order.

    Yields the list of requested shapes (one per draw the scheduler made).  A module that
    draws no noise (deterministic schedulers) is left alone.
    """
    import torch

    mod = importlib.import_module(module_name)
    calls = []
    orig = getattr(mod, "randn_tensor", None)
    if orig is None:
        yield calls
        return
    it = iter(pulses)

    def fake(shape, generator=None, device=None, dtype=None, layout=None):
        calls.append(shape)
        return torch.as_tensor(next(it), dtype=torch.float64).reshape(shape)

    mod.randn_tensor = fake
    try:
        yield calls
    finally:
        mod.randn_tensor = orig


def _alpha_bar(sch, t):
    sigmas = getattr(sch, "sigmas", None)
    if sigmas is None:
        return sch.alphas_cumprod[int(t)]
    if sch.step_index is None:
        sch._init_step_index(t)
    s = sigmas[sch.step_index]
    return 1 / (1 + s * s)


def run_scheduler(scheduler, psd, x_init, noise, step_kwargs=None, mean=None):
    """One run of a float64 copy of ``scheduler`` with the exact model, per mode.

    ``x_init`` is the initial latent in units of ``init_noise_sigma`` (a standard normal
    draw), ``noise`` the draws the scheduler will take, in order.  Returns the output and
    the number of draws taken.
    """
    import torch

    sch = as_float64(scheduler)
    lam = torch.tensor(np.ravel(psd), dtype=torch.float64)  # a copy: psd may be read-only
    m = None if mean is None else torch.tensor(np.ravel(mean), dtype=torch.float64)
    x = torch.tensor(np.ravel(x_init), dtype=torch.float64)[None]
    x = x * float(sch.init_noise_sigma)
    pred = sch.config.prediction_type
    with pulse_noise(type(sch).__module__, noise) as calls:
        for t in sch.timesteps:
            xin = sch.scale_model_input(x, t)
            out = exact_model(xin, _alpha_bar(sch, t), lam, pred, m)
            x = sch.step(out, t, x, **(step_kwargs or {})).prev_sample
    return x[0].numpy(), len(calls)


def scheduler_response(scheduler, psd, step_kwargs=None):
    """Transfer of the unit initial latent and injected-noise PSD of a diffusers scheduler.

    Comparable with :attr:`symspec.numeric.Response.transfer` times
    ``sqrt(init_var)`` and :attr:`~symspec.numeric.Response.noise_psd`.

    Examples
    --------
    >>> import numpy as np, symspec
    >>> from diffusers import DDPMScheduler  # doctest: +SKIP
    >>> sch = DDPMScheduler(clip_sample=False); sch.set_timesteps(4)  # doctest: +SKIP
    >>> h, q = scheduler_response(sch, [0.5, 2.0])  # doctest: +SKIP
    >>> r = symspec.spectral_response(*symspec.from_diffusers(sch), [0.5, 2.0])  # doctest: +SKIP
    >>> bool(np.allclose(h, r.transfer) and np.allclose(q, r.noise_psd))  # doctest: +SKIP
    True
    """
    M = np.asarray(psd).size
    zeros = [np.zeros(M)] * 100_000
    transfer, n_draws = run_scheduler(scheduler, psd, np.ones(M), zeros, step_kwargs)
    noise_psd = np.zeros(M)
    for j in range(n_draws):
        pulses = [np.zeros(M)] * n_draws
        pulses[j] = np.ones(M)
        g, _ = run_scheduler(scheduler, psd, np.zeros(M), pulses, step_kwargs)
        noise_psd += g * g
    return transfer, noise_psd
