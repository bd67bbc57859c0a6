"""symspec's own Monte-Carlo sampler against the exact spectral response.

The samples are exactly Gaussian (linear in Gaussian draws), so the standard error of a
sample variance is ``P sqrt(2/(n-1))`` and of a sample mean ``sqrt(P/n)``; every mode must
lie within 5 of them.
"""

import numpy as np
import pytest
from test_numeric import carried_noise, twice_denoised, two_m

from symspec import DDIM, DDPM, SAMPLERS, Schedule, sample, spectral_response

PSD = np.geomspace(1e-3, 1e3, 9)
MEAN = np.linspace(-1.0, 1.5, 9) + 0.1
SCHED = Schedule.from_alpha_bar(np.geomspace(1e-4, 1.0, 11))


def z_scores(x, r):
    n = x.shape[0]
    P = r.output_psd
    z_var = np.abs(x.var(axis=0, ddof=1) - P) / (P * np.sqrt(2 / (n - 1)))
    z_mean = np.abs(x.mean(axis=0) - r.output_mean) / np.sqrt(P / n)
    return z_var.max(), z_mean.max()


CASES = [DDPM, DDIM(eta=0.5), DDPM(variance="fixed_large"), two_m, carried_noise,
         twice_denoised]
CASES += [s for name, s in sorted(SAMPLERS.items()) if name not in ("ddpm", "ddim")]


@pytest.mark.parametrize("smp", CASES, ids=[s.name + str(s.opts or "") for s in CASES])
def test_sample_statistics_match_the_response(smp, worst):
    n = 20_000
    x = sample(smp, SCHED, PSD, n, mean=MEAN, seed=3)
    assert x.shape == (n, PSD.size)
    r = spectral_response(smp, SCHED, PSD, mean=MEAN)
    z_var, z_mean = z_scores(x, r)
    worst(f"symspec.sample vs spectral_response (20000 chains): {smp.name} variance z", z_var)
    worst(f"symspec.sample vs spectral_response (20000 chains): {smp.name} mean z", z_mean)
    assert z_var <= 5 and z_mean <= 5, (z_var, z_mean)


def test_deterministic_sampler_is_the_transfer_exactly():
    psd = PSD.reshape(3, 3)
    x0 = np.random.default_rng(0).standard_normal((5, 3, 3))
    x = sample(DDIM, SCHED, psd, 5, mean=MEAN.reshape(3, 3), x_init=x0)
    r = spectral_response(DDIM, SCHED, psd, mean=MEAN.reshape(3, 3))
    assert x.shape == (5, 3, 3)
    np.testing.assert_allclose(x, r.transfer * x0 + r.output_mean, rtol=1e-12, atol=1e-14)


def test_seed_reproducibility():
    a = sample(DDPM, SCHED, PSD, 10, seed=5)
    assert np.array_equal(a, sample(DDPM, SCHED, PSD, 10, seed=5))
    assert not np.array_equal(a, sample(DDPM, SCHED, PSD, 10, seed=6))


@pytest.mark.parametrize("kwargs, pattern", [
    ({"n": 0}, "n must be a positive int"),
    ({"n": 2.0}, "n must be a positive int"),
    ({"psd": [-1.0]}, "psd must be >= 0"),
    ({"mean": [1.0, 2.0, 3.0]}, "mean must broadcast"),
    ({"mean": np.nan}, "mean must be finite"),
    ({"x_init": np.ones(3)}, r"x_init must have shape \(n, \*psd.shape\) = \(2, 2\)"),
])
def test_errors(kwargs, pattern):
    args = {"psd": [1.0, 2.0], "n": 2, **kwargs}
    with pytest.raises(ValueError, match=pattern):
        sample(DDPM, SCHED, args.pop("psd"), args.pop("n"), **args)


def test_sample_runs_a_noise_coloured_by_the_spectrum():
    # issue 9: symspec.ops took scalars only, so a step whose noise depends on c.lam failed
    import symspec
    from symspec.ops import sqrt

    @symspec.sampler()
    def coloured(c, x):
        return c.x0(x) + sqrt(c.lam / (1 + c.lam)) * (1 - c.p.alpha_bar) * c.noise()

    s = symspec.Schedule.from_alpha_bar([0.05, 0.5, 1.0])
    psd = np.array([0.5, 2.0])
    x = symspec.sample(coloured, s, psd, 40000, seed=3)
    r = symspec.spectral_response(coloured, s, psd)
    se = r.output_psd * np.sqrt(2 / 40000)
    assert np.all(np.abs(x.var(axis=0) - r.output_psd) < 5 * se)


def test_sample_checks_its_arguments():
    import symspec

    s = symspec.Schedule.from_alpha_bar([0.05, 0.5, 1.0])
    with pytest.raises(TypeError, match="sampler must be a symspec Sampler, got str"):
        symspec.sample("ddpm", s, [1.0], 10)
    with pytest.raises(TypeError, match="schedule must be a symspec Schedule"):
        symspec.sample(symspec.DDPM, [0.1, 1.0], [1.0], 10)
