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

__all__ = ["exact_model", "as_float64", "pulse_noise", "float64_only", "run_scheduler",
           "sample_scheduler", "sample_model", "scheduler_response"]


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
    calls: list[tuple] = []
    orig = getattr(mod, "randn_tensor", None)
    if orig is None:
        yield calls
        return
    it = iter(pulses)

    def fake(shape, generator=None, device=None, dtype=None, layout=None):
        calls.append(shape)
        return torch.as_tensor(next(it), dtype=torch.float64).reshape(shape)

    mod.randn_tensor = fake  # type: ignore[attr-defined]
    try:
        yield calls
    finally:
        mod.randn_tensor = orig  # type: ignore[attr-defined]


class _Torch64:
    """The ``torch`` module, except that ``float32`` means ``float64``."""

    def __init__(self):
        import torch

        self._torch, self.float32 = torch, torch.float64

    def __getattr__(self, name):
        return getattr(self._torch, name)


@contextlib.contextmanager
def float64_only(module_name: str, strict: bool = True):
    """Stop a scheduler module's internal float32 upcasts (Euler, DPM-Solver), if ``strict``."""
    from unittest import mock

    if not strict:
        yield
        return
    with mock.patch.object(importlib.import_module(module_name), "torch", _Torch64()):
        yield


def _loop(sch, x, model, step_kwargs, progress=None):
    """The sampling loop of a pipeline: ``model(x_in, alpha_bar, t)`` answers every step.

    ``x_in`` is the model's input (``scale_model_input(x, t)`` for schedulers that keep
    sigmas), ``alpha_bar`` its noise level (a float64 tensor), ``t`` the timestep; the model
    answers in the scheduler's ``prediction_type``.  ``progress(i, n)`` is called after step
    ``i`` of ``n``.
    """
    n = len(sch.timesteps)
    for i, t in enumerate(sch.timesteps):
        if getattr(sch, "sigmas", None) is None:  # DDPM, DDIM: alpha-bar by training timestep
            x_in, ab = x, sch.alphas_cumprod[int(t)]
        else:  # sigma-based: the model sees scale_model_input(x) at alpha-bar 1/(1 + sigma^2)
            x_in, ab = sch.scale_model_input(x, t), 1 / (1 + sch.sigmas[i] ** 2)
        x = sch.step(model(x_in, ab, t), t, x, **step_kwargs).prev_sample
        if progress is not None:
            progress(i + 1, n)
    return x


def _gaussian(sch, lam, m):
    """The exact Gaussian model as a loop model, in ``sch``'s prediction type."""
    pred = sch.config.prediction_type
    return lambda x_in, ab, t: exact_model(x_in, ab, lam, pred, m)


def _tensors(psd, mean):
    import torch

    lam = torch.tensor(np.ravel(psd), dtype=torch.float64)  # a copy: psd may be read-only
    m = None if mean is None else torch.tensor(np.ravel(mean), dtype=torch.float64)
    return lam, m


def run_scheduler(scheduler, psd, x_init, noise, step_kwargs=None, mean=None,
                  strict64: bool = False):
    """One run of a float64 copy of ``scheduler`` with the exact model, per mode.

    ``x_init`` is the initial latent in units of ``init_noise_sigma`` (a standard normal
    draw), ``noise`` the draws the scheduler will take, in order; ``strict64`` also stops
    the scheduler's own float32 upcasts.  Returns the output and the number of draws taken.
    """
    import torch

    sch = as_float64(scheduler)
    lam, m = _tensors(psd, mean)
    x = torch.tensor(np.ravel(x_init), dtype=torch.float64)[None]
    x = x * float(sch.init_noise_sigma)
    mod = type(sch).__module__
    with pulse_noise(mod, noise) as calls, float64_only(mod, strict64):
        x = _loop(sch, x, _gaussian(sch, lam, m), dict(step_kwargs or {}))
    return x[0].numpy(), len(calls)


def sample_model(scheduler, model, n: int, dim: int, seed: int = 0, step_kwargs=None, *,
                 latents=None, strict64: bool = False, progress=None):
    """``n`` independent runs of a float64 copy of ``scheduler`` driven by any ``model``.

    ``model(x_in, alpha_bar, t)`` answers in the scheduler's ``prediction_type`` (see
    ``_loop``).  The initial latents (``(n, dim)``, standard normal units: they are
    multiplied by ``init_noise_sigma``) are ``latents`` if given, else drawn from a
    ``torch.Generator`` seeded with ``seed``, which then also feeds the scheduler's noise.
    Returns the ``(n, dim)`` float64 output as a NumPy array.
    """
    import torch

    sch = as_float64(scheduler)
    g = torch.Generator().manual_seed(seed)
    if latents is None:
        x = torch.randn((n, dim), generator=g, dtype=torch.float64)
    else:
        x = torch.tensor(np.asarray(latents, dtype=np.float64).reshape(n, dim))
    x = x * float(sch.init_noise_sigma)
    with float64_only(type(sch).__module__, strict64):
        x = _loop(sch, x, model, {**(step_kwargs or {}), "generator": g}, progress)
    return x.numpy()


def sample_scheduler(scheduler, psd, n: int, seed: int = 0, step_kwargs=None, mean=None):
    """``n`` independent runs of a float64 copy of ``scheduler`` with its own random draws."""
    lam, m = _tensors(psd, mean)
    return sample_model(scheduler, _gaussian(scheduler, lam, m), n, lam.numel(), seed,
                        step_kwargs)


def scheduler_response(scheduler, psd, step_kwargs=None, strict64: bool = False):
    """Transfer of the unit initial latent and injected-noise PSD of a diffusers scheduler.

    Comparable with :attr:`symspec.numeric.Response.transfer` times
    ``sqrt(init_var)`` and :attr:`~symspec.numeric.Response.noise_psd`.

    Examples
    --------
    >>> import numpy as np, symspec
    >>> from diffusers import DDPMScheduler
    >>> sch = DDPMScheduler(clip_sample=False); sch.set_timesteps(4)
    >>> h, q = scheduler_response(sch, [0.5, 2.0])
    >>> r = symspec.spectral_response(*symspec.from_diffusers(sch), [0.5, 2.0])
    >>> bool(np.allclose(h, r.transfer) and np.allclose(q, r.noise_psd))
    True
    """
    M = np.asarray(psd).size
    zeros = [np.zeros(M)] * 100_000
    transfer, n_draws = run_scheduler(scheduler, psd, np.ones(M), zeros, step_kwargs,
                                      strict64=strict64)
    noise_psd = np.zeros(M)
    for j in range(n_draws):
        pulses = [np.zeros(M)] * n_draws
        pulses[j] = np.ones(M)
        g, _ = run_scheduler(scheduler, psd, np.zeros(M), pulses, step_kwargs,
                             strict64=strict64)
        noise_psd += g * g
    return transfer, noise_psd
