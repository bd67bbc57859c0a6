"""``from_diffusers`` + ``spectral_response`` against the real DDPM and DDIM schedulers.

The reference is diffusers itself, run by ``tests/harness.py`` in float64 with the exact
Gaussian model: unit pulses give the transfer, every noise coefficient and the output mean
exactly; a few stochastic configurations are also run with real random noise.  The
configurations form orthogonal arrays (every pair of option values appears), not the full
product.  The worst deviation per family is printed in the "worst deviations" summary.
"""

from dataclasses import dataclass, field

import harness
import numpy as np
import pytest
from diffusers import DDIMScheduler, DDPMScheduler

from symspec import spectral_response
from symspec.diffusers.interop import SUPPORTED_SCHEDULERS, from_diffusers

#: Agreement is ~1e-13, except where diffusers' own float64 arithmetic is ill-conditioned:
#: ``x0 = (x - sqrt(1 - ab) eps) / sqrt(ab)`` at a tiny alpha-bar (2.4e-9 at t = 999 of
#: squaredcos_cap_v2) cancels, and low-power modes lose up to ~2e-8 of their transfer.
#: On those schedules symspec matches a 50-digit mpmath run to 1 ulp, so the bound is 1e-6.
RTOL = 1e-6
PSD = np.geomspace(1e-3, 1e3, 13)
MEAN = np.linspace(-2.0, 2.0, 13) + 0.15  # non-zero in every mode
BETAS = ("linear", "scaled_linear", "squaredcos_cap_v2")
SPACINGS = ("leading", "trailing", "linspace")
PREDICTIONS = ("epsilon", "sample", "v_prediction")
STEPS = (1, 3, 7, 10, 25, 50)


@dataclass(frozen=True)
class Config:
    cls: type
    family: str
    config: dict
    steps: int | None = None
    step_kwargs: dict = field(default_factory=dict)
    timesteps: tuple | None = None

    def scheduler(self):
        sch = self.cls(clip_sample=False, **self.config)
        if self.timesteps is None:
            sch.set_timesteps(self.steps)
        else:
            sch.set_timesteps(timesteps=list(self.timesteps))
        return sch

    @property
    def id(self) -> str:
        c = self.config
        n = self.steps or f"custom{len(self.timesteps)}"
        kw = "".join(f"-{k}{v}" for k, v in self.step_kwargs.items() if k != "eta")
        return (f"{self.family}-{c.get('prediction_type', 'epsilon')}-"
                f"{c.get('beta_schedule', 'linear')}-{c.get('timestep_spacing', 'leading')}-"
                f"off{c.get('steps_offset', 0)}"
                f"{'-alpha1' if c.get('set_alpha_to_one', True) else '-alpha0'}-N{n}{kw}")


def _orthogonal(first, second):
    """(a, b, x, y, beta, spacing): all pairs among the four factors appear exactly once."""
    for a, x in enumerate(first):
        for b, y in enumerate(second):
            yield a, b, x, y, BETAS[(a + b) % 3], SPACINGS[(a + 2 * b) % 3]


def _configs():
    out = []
    for r in (0, 1):
        for a, b, vt, pt, beta, sp in _orthogonal(
                ("fixed_small", "fixed_small_log", "fixed_large"), PREDICTIONS):
            cfg = dict(variance_type=vt, prediction_type=pt, beta_schedule=beta,
                       timestep_spacing=sp, steps_offset=(a + b + r) % 2)
            out.append(Config(DDPMScheduler, f"DDPM {vt}", cfg, STEPS[(3 * a + b + 3 * r) % 6]))
        for a, b, eta, pt, beta, sp in _orthogonal((0.0, 0.5, 1.0), PREDICTIONS):
            cfg = dict(prediction_type=pt, beta_schedule=beta, timestep_spacing=sp,
                       steps_offset=(a + b + r) % 2, set_alpha_to_one=(a + 2 * b + r) % 2 == 0)
            out.append(Config(DDIMScheduler, f"DDIM eta={eta}", cfg,
                              STEPS[(3 * a + b + 3 * r + 1) % 6], {"eta": eta}))
    out += [
        Config(DDPMScheduler, "DDPM custom timesteps", {"variance_type": "fixed_small"},
               timesteps=(999, 700, 420, 123, 0)),
        Config(DDPMScheduler, "DDPM custom timesteps", {"variance_type": "fixed_large",
                                                        "prediction_type": "v_prediction"},
               timesteps=(950, 500, 5)),
        Config(DDIMScheduler, "DDIM eta=0.5", {"beta_schedule": "scaled_linear"}, 10,
               {"eta": 0.5, "use_clipped_model_output": True}),
    ]
    return out


CONFIGS = _configs()


def _rel(got, want, scale=None):
    """max |got - want| / scale (default |want|), per mode."""
    scale = np.abs(want) if scale is None else scale
    return float(np.max(np.abs(got - want) / scale))


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c.id for c in CONFIGS])
def test_matches_diffusers_exactly(cfg, worst):
    sch = cfg.scheduler()
    smp, sched = from_diffusers(sch, **cfg.step_kwargs)
    pred = cfg.config.get("prediction_type", "epsilon")
    assert sched.meta["prediction_type"] == pred
    assert sched.meta["timesteps"] == sch.timesteps.tolist()
    r = spectral_response(smp, sched, PSD, mean=MEAN, prediction_type=pred)
    H, N, mu = harness.response(sch, PSD, cfg.step_kwargs, MEAN)
    P = H * H + N
    devs = {"transfer": _rel(r.transfer, H), "noise_psd (/ output)": _rel(r.noise_psd, N, P),
            "output_psd": _rel(r.output_psd, P),
            # rounding in the mean scales with the data mean; an output mean may cancel to 0
            "output_mean (/ data mean)": _rel(r.output_mean, mu, np.abs(MEAN))}
    for name, dev in devs.items():
        worst(f"vs diffusers, {cfg.family}: {name}", dev)
    assert max(devs.values()) <= RTOL, devs


def test_grid_covers_the_options():
    """Every option value named in the brief appears in the exact cross-check."""
    seen = {}
    for c in CONFIGS:
        for k, v in {**c.config, **c.step_kwargs, "steps": c.steps}.items():
            seen.setdefault(k, set()).add(v)
    assert seen["beta_schedule"] == set(BETAS)
    assert seen["timestep_spacing"] == set(SPACINGS)
    assert seen["prediction_type"] == set(PREDICTIONS)
    assert seen["variance_type"] == {"fixed_small", "fixed_small_log", "fixed_large"}
    assert seen["eta"] == {0.0, 0.5, 1.0}
    assert seen["steps_offset"] == {0, 1} and seen["set_alpha_to_one"] == {True, False}
    assert set(STEPS) <= seen["steps"]
    leading_offset = [c for c in CONFIGS if c.config.get("timestep_spacing") == "leading"
                      and c.config.get("steps_offset") == 1]
    assert {c.cls for c in leading_offset} == {DDPMScheduler, DDIMScheduler}


MONTE_CARLO = [
    Config(DDPMScheduler, "DDPM fixed_small", {"variance_type": "fixed_small"}, 10),
    Config(DDPMScheduler, "DDPM fixed_large",
           {"variance_type": "fixed_large", "prediction_type": "v_prediction",
            "timestep_spacing": "trailing"}, 7),
    Config(DDIMScheduler, "DDIM eta=0.5",
           {"prediction_type": "sample", "beta_schedule": "squaredcos_cap_v2",
            "timestep_spacing": "linspace"}, 10, {"eta": 0.5}),
    Config(DDIMScheduler, "DDIM eta=1.0", {"beta_schedule": "scaled_linear",
                                           "timestep_spacing": "trailing"}, 25, {"eta": 1.0}),
]


@pytest.mark.parametrize("cfg", MONTE_CARLO, ids=[c.id for c in MONTE_CARLO])
def test_matches_diffusers_with_real_noise(cfg, worst):
    """4000 real chains: sample variance and mean within 5 standard errors per mode."""
    n = 4000
    sch = cfg.scheduler()
    smp, sched = from_diffusers(sch, **cfg.step_kwargs)
    r = spectral_response(smp, sched, PSD, mean=MEAN)
    x = harness.sample(sch, PSD, n, seed=7, step_kwargs=cfg.step_kwargs, mean=MEAN)
    assert x.shape == (n, PSD.size)
    P = r.output_psd
    z_var = np.abs(x.var(axis=0, ddof=1) - P) / (P * np.sqrt(2 / (n - 1)))
    z_mean = np.abs(x.mean(axis=0) - r.output_mean) / np.sqrt(P / n)
    worst(f"vs diffusers Monte Carlo (4000 chains), {cfg.family}: variance z", z_var.max())
    worst(f"vs diffusers Monte Carlo (4000 chains), {cfg.family}: mean z", z_mean.max())
    assert z_var.max() <= 5, z_var
    assert z_mean.max() <= 5, z_mean


# -- errors ------------------------------------------------------------------------------
def _ready(cls, steps=10, **config):
    sch = cls(**config)
    sch.set_timesteps(steps)
    return sch


@pytest.mark.parametrize("cls", [DDPMScheduler, DDIMScheduler])
def test_non_linear_options_are_rejected(cls):
    with pytest.raises(ValueError, match="clip_sample=True"):
        from_diffusers(_ready(cls))  # both clip by default
    with pytest.raises(ValueError, match="thresholding=True"):
        from_diffusers(_ready(cls, clip_sample=False, thresholding=True))


def test_unsupported_scheduler_lists_the_supported_ones():
    class MyScheduler:
        config = {}

    with pytest.raises(TypeError, match="unsupported scheduler MyScheduler") as exc:
        from_diffusers(MyScheduler())
    for name in SUPPORTED_SCHEDULERS:
        assert name in str(exc.value)


@pytest.mark.parametrize("vt", ["fixed_large_log", "learned", "learned_range"])
def test_unsupported_variance_type(vt):
    with pytest.raises(ValueError, match=f"variance_type='{vt}' is not supported"):
        from_diffusers(_ready(DDPMScheduler, clip_sample=False, variance_type=vt))


@pytest.mark.parametrize("cls", [DDPMScheduler, DDIMScheduler])
def test_set_timesteps_not_called(cls):
    with pytest.raises(ValueError, match="set_timesteps"):
        from_diffusers(cls(clip_sample=False))


def test_unknown_step_kwarg():
    with pytest.raises(TypeError, match="no keyword 'foo'"):
        from_diffusers(_ready(DDIMScheduler, clip_sample=False), eta=0.5, foo=1)
    with pytest.raises(TypeError, match="no keyword 'eta'"):
        from_diffusers(_ready(DDPMScheduler, clip_sample=False), eta=0.5)


@pytest.mark.parametrize("eta", [-0.5, float("nan"), float("inf"), "0.5", None])
def test_bad_eta(eta):
    with pytest.raises(ValueError, match="eta must be a finite number >= 0"):
        from_diffusers(_ready(DDIMScheduler, clip_sample=False), eta=eta)


@pytest.mark.parametrize("cls", [DDPMScheduler, DDIMScheduler])
def test_rescale_betas_zero_snr(cls):
    sch = _ready(cls, clip_sample=False, rescale_betas_zero_snr=True)
    with pytest.raises(ValueError, match="rescale_betas_zero_snr"):
        from_diffusers(sch)
