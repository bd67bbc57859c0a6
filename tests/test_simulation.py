"""Design by simulation on non-Gaussian models (symspec.design.simulation).

- The torch run of a sampler's own definition equals the real diffusers scheduler driven by
  the same exact model (DDIM, and DDPM with its noise), sample by sample.
- The differentiable posterior mean equals the model's NumPy one.
- The objective's gradient (reverse mode through the loop) equals central differences, for
  DDIM, DDPM and a VE sampler (Euler), with every term on.
- One component: the model design is the spectral design (its mode term is 0).
- Bad models, terms and options are refused, naming them.
- Speciation: the level ``1 / Lambda``; trajectories commit around it.
"""

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

import symspec
from symspec import reality
from symspec.design import optimise
from symspec.design.simulation import (
    _Denoiser,
    commitment,
    design_for_model,
    model_terms,
    simulate,
    speciation_level,
)
from symspec.models import Empirical, GaussianMixture


def mixture(d=3):
    rng = np.random.default_rng(1)
    means = rng.normal(0, 2, (3, d))
    covs = [np.diag(rng.uniform(0.05, 0.5, d)) for _ in range(3)]
    return GaussianMixture([0.2, 0.3, 0.5], means, covs)


@pytest.mark.parametrize("cls", [DDIMScheduler, DDPMScheduler])
def test_simulation_is_the_real_scheduler(cls):
    gm = mixture()
    sch = cls(clip_sample=False)
    sch.set_timesteps(8)
    kw = {"eta": 0.0} if cls is DDIMScheduler else {}
    smp, sched = symspec.from_diffusers(sch, **kw)
    real = reality.sample(sch, gm, 300, seed=4, **kw)
    mine = simulate(smp, sched, gm, 300, seed=4)
    assert np.abs(mine - real).max() < 1e-9 * np.abs(real).max()


@pytest.mark.parametrize("model", [mixture(), Empirical(np.random.default_rng(0).normal(
    size=(40, 3)))])
def test_torch_posterior_mean_is_the_models(model):
    x = np.random.default_rng(2).normal(0, 2, (50, 3))
    for ab in (1e-5, 0.2, 0.97):
        got = _Denoiser(model)._mean(torch.as_tensor(x), ab).numpy()
        want = model.posterior_mean(x, ab)
        assert np.abs(got - want).max() < 1e-11 * np.abs(want).max()


@pytest.mark.parametrize("smp", [symspec.DDIM, symspec.DDPM, symspec.EULER])
def test_gradient_is_central_differences(smp, monkeypatch):
    caught = {}

    def capture(fun, x0, maxiter):  # in place of the optimiser: keep the objective
        caught["fun"], caught["x0"] = fun, x0
        return (*fun(x0)[:1], x0, 0, 1, True, "captured")

    monkeypatch.setattr(optimise, "_lbfgsb", capture)
    design_for_model(smp, mixture(), 4, terms={"w2": 1, "mode_kl": 1, "fd": 1, "mmd": 1},
                     n=200)
    fun = caught["fun"]
    x = caught["x0"] + np.random.default_rng(3).normal(0, 0.3, caught["x0"].shape)
    J, g = fun(x)
    h = 1e-5
    fd = np.array([(fun(x + h * e)[0] - fun(x - h * e)[0]) / (2 * h) for e in np.eye(len(x))])
    assert np.abs(fd).max() > 1e-3  # not a flat objective
    assert np.abs(g - fd).max() < 1e-5 * np.abs(fd).max()


def test_one_component_gives_the_spectral_design():
    gm = GaussianMixture([1.0], [[0.3, -0.1, 0.0, 0.2]],
                         [np.diag([6.0, 1.0, 0.1, 0.01])])
    lr = (1e-4, 0.9999)
    spectral = symspec.design_schedule(symspec.DDPM, gm.spectrum().eigenvalues, 5,
                                       level_range=lr)
    mine = symspec.design_schedule(symspec.DDPM, gm, 5, level_range=lr, samples=100)
    assert mine.meta["weights"] == {"w2": 1.0}  # the mode term of one component is 0
    assert np.allclose(mine.alpha_bar, spectral.alpha_bar, rtol=1e-3)
    assert mine.meta["terms"]["w2"] <= spectral.meta["objective"] * (1 + 1e-5)


def test_the_design_lowers_its_objective_on_a_mixture():
    gm = mixture()
    s = design_for_model(symspec.DDIM, gm, 4, n=300, maxiter=15)
    assert s.meta["objective"] < s.meta["objective_warm"]
    assert s.steps == 4 and s.meta["terms"].keys() == {"w2", "mode_kl", "fd", "mmd"}
    assert s.alpha_bar[0] <= s.meta["warm_levels"][0] * (1 + 1e-12)  # never a cleaner start


def test_bad_models_and_options_are_refused():
    gm = mixture()
    with pytest.raises(TypeError, match="model must be"):
        design_for_model(symspec.DDIM, np.ones(3), 4)
    with pytest.raises(ValueError, match="unknown term 'fid'"):
        design_for_model(symspec.DDIM, gm, 4, terms={"fid": 1.0})
    with pytest.raises(ValueError, match=r"terms\['fd'\] must be a finite weight"):
        design_for_model(symspec.DDIM, gm, 4, terms={"fd": -1.0})
    with pytest.raises(ValueError, match="mode_kl term needs a GaussianMixture"):
        design_for_model(symspec.DDIM, Empirical(np.eye(3)), 4, terms={"mode_kl": 1.0})
    with pytest.raises(ValueError, match="n must be at least 4"):
        design_for_model(symspec.DDIM, gm, 4, n=2)
    with pytest.raises(ValueError, match="chained, divergence cannot be set with a data"
                       "|divergence, chained cannot be set with a data model"):
        symspec.design_schedule(symspec.DDIM, gm, 4, "kl", chained=False)
    with pytest.raises(ValueError, match="terms applies to a design for a data model"):
        symspec.design_schedule(symspec.DDIM, np.ones(4), 4, terms={"w2": 1.0})
    with pytest.raises(ValueError, match="no speciation"):
        speciation_level(GaussianMixture([1.0], [[0.0]], [[[0.5]]]))


def test_speciation_and_commitment():
    gm = GaussianMixture([0.5, 0.5], [[-3.0], [3.0]], [[[0.1]], [[0.1]]])
    ab_s = speciation_level(gm)
    assert ab_s == pytest.approx(1 / 9.1)
    s = symspec.Schedule.from_alpha_bar(np.geomspace(1e-4, 1, 41))
    for smp in (symspec.DDIM, symspec.DDPM):
        c = commitment(smp, s, gm, 2000)
        assert c["histogram"].sum() == 2000
        # the median trajectory commits within a factor 4 of the speciation level
        assert ab_s / 4 < c["median_alpha_bar"] < ab_s * 4, (smp.name, c["median_alpha_bar"])


def test_model_terms_see_wrong_proportions():
    gm = GaussianMixture([0.5, 0.5], [[-3.0, 0.0], [3.0, 0.0]], [np.eye(2) * 0.1] * 2)
    good = symspec.Schedule.from_alpha_bar(np.geomspace(1e-4, 1, 60))
    t = model_terms(symspec.DDIM, good, gm, n=2000)
    assert t["mode_kl"] < 0.01 and t["fd"] < 0.1
    bad = symspec.Schedule.from_alpha_bar([0.5, 1.0])  # starts too clean: a dishonest start
    assert model_terms(symspec.DDIM, bad, gm, n=2000)["fd"] > 10 * t["fd"]
