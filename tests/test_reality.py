"""Real diffusers samplers driven by exact models (symspec.reality), and the sample metrics.

- K = 1 through a real DDIM run: with the initial latents fixed, each PCA mode of the
  output is exactly ``output_mean + H sqrt(init_var) z`` from :func:`symspec.spectral_response`
  (the PCA basis computed here), for every prediction type and for a sigma scheduler
  (Euler, via ``scale_model_input``); DDPM's output moments within their standard errors.
- A network callable answering the same exact model gives the same samples.
- Metrics on known cases: two identical Gaussians score their noise floor within the
  errors; shifted means add ``|d mu|^2`` to the Fréchet distance and ``|d mu|^2 / d`` to the
  sliced W2; the MMD equals its closed form for Gaussians under a Gaussian kernel (written
  here); wrong mode proportions give their KL.
- The Gaussian prediction of the FD matches a measured K = 1 run.
"""

import math

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, EulerDiscreteScheduler

import symspec
from symspec import reality
from symspec.models import GaussianMixture


def gaussian(d=6, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((d, d))
    lam = np.geomspace(3.0, 1e-3, d)
    q, _ = np.linalg.qr(a)
    return GaussianMixture([1.0], [rng.standard_normal(d) * 0.5], [q @ np.diag(lam) @ q.T])


def pca(gm):
    lam, U = np.linalg.eigh(gm.covariances[0])
    return lam, U


def predicted_modes(sch, gm, z, **kw):
    """``output_mean + H sqrt(init_var) z`` per PCA mode, from the spectral response."""
    lam, U = pca(gm)
    mc = U.T @ gm.means[0]
    r = symspec.spectral_response(*symspec.from_diffusers(sch, **kw), lam, mean=mc)
    return r, mc, r.output_mean + r.transfer * math.sqrt(r.init_var) * (z @ U), U


@pytest.mark.parametrize("pred", ["epsilon", "sample", "v_prediction"])
def test_k1_real_ddim_run_is_the_spectral_response_exactly(pred, worst):
    gm = gaussian()
    sch = DDIMScheduler(clip_sample=False, prediction_type=pred)
    sch.set_timesteps(10)
    z = np.random.default_rng(1).standard_normal((3000, 6))
    x = reality.sample(sch, gm, 3000, latents=z, eta=0.0)
    r, mc, expect, U = predicted_modes(sch, gm, z, eta=0.0)
    err = np.abs(x @ U - expect).max()
    worst("reality: K=1 real DDIM vs spectral_response, per sample", err)
    assert err < 1e-9
    # and the moments: variance of each mode against the output PSD
    v = (x @ U).var(axis=0, ddof=1)
    assert np.all(np.abs(v - r.output_psd) < 5 * r.output_psd * np.sqrt(2 / 2999))


def test_k1_sigma_scheduler_goes_through_scale_model_input(worst):
    gm = gaussian(d=4, seed=2)
    sch = EulerDiscreteScheduler()
    sch.set_timesteps(8)
    z = np.random.default_rng(3).standard_normal((500, 4))
    x = reality.sample(sch, gm, 500, latents=z)
    _, _, expect, U = predicted_modes(sch, gm, z)
    err = np.abs(x @ U - expect).max()
    worst("reality: K=1 real Euler vs spectral_response, per sample", err)
    assert err < 1e-8


def test_k1_real_ddpm_moments_within_standard_errors():
    gm = gaussian(d=5, seed=4)
    sch = DDPMScheduler(clip_sample=False)
    sch.set_timesteps(10)
    n = 20_000
    x = reality.sample(sch, gm, n, seed=5)
    lam, U = pca(gm)
    r = symspec.spectral_response(*symspec.from_diffusers(sch), lam, mean=U.T @ gm.means[0])
    c = x @ U
    P = r.output_psd
    assert np.all(np.abs(c.var(axis=0, ddof=1) - P) < 5 * P * np.sqrt(2 / (n - 1)))
    assert np.all(np.abs(c.mean(axis=0) - r.output_mean) < 5 * np.sqrt(P / n))
    assert np.array_equal(x, reality.sample(sch, gm, n, seed=5))  # the seed fixes everything


def test_a_network_callable_is_run_like_the_model():
    gm = GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [1.0, 0.0]], [np.eye(2) * 0.2] * 2)
    sch = DDIMScheduler(clip_sample=False, prediction_type="v_prediction")
    sch.set_timesteps(6)
    ab_train = sch.alphas_cumprod.double()
    calls = []

    def net(x, t):  # the exact v, written here: v = (a x - E[x0|x]) / s
        calls.append(int(t))
        ab = float(ab_train[int(t)])
        x0 = torch.from_numpy(gm.posterior_mean(x.numpy(), ab))
        return (math.sqrt(ab) * x - x0) / math.sqrt(1 - ab)

    a = reality.sample(sch, net, 300, seed=1, dim=2)
    b = reality.sample(sch, gm, 300, seed=1)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert calls == sch.timesteps.tolist()
    with pytest.raises(ValueError, match="dim must be given"):
        reality.sample(sch, net, 3)
    with pytest.raises(ValueError, match="set_timesteps"):
        reality.sample(DDIMScheduler(), gm, 3)
    with pytest.raises(ValueError, match="latents must have shape"):
        reality.sample(sch, gm, 3, latents=np.zeros((3, 5)))


# -- metrics on known cases --------------------------------------------------------------
def gauss_kernel_mean(m1, c1, m2, c2, h):
    """E exp(-|x - y|^2 / (2 h^2)) for independent x ~ N(m1, c1), y ~ N(m2, c2)."""
    d = len(m1)
    s = c1 + c2
    delta = np.asarray(m1) - np.asarray(m2)
    return (np.linalg.det(np.eye(d) + s / h**2) ** -0.5
            * np.exp(-0.5 * delta @ np.linalg.solve(h**2 * np.eye(d) + s, delta)))


def draw(rng, mean, cov, n):
    return mean + rng.standard_normal((n, len(mean))) @ np.linalg.cholesky(cov).T


def test_metrics_two_identical_gaussians_score_their_floor():
    d, n = 4, 8000
    cov = np.diag([2.0, 1.0, 0.5, 0.1])
    gm = GaussianMixture([1.0], [np.zeros(d)], [cov])
    x = draw(np.random.default_rng(11), np.zeros(d), cov, n)
    m = reality.metrics(x, gm, seed=3)
    for k in ("fd", "sliced_w2"):  # independent estimates of the same bias
        assert abs(m[k] - m[f"{k}_floor"]) < 4 * math.sqrt(2) * m[f"{k}_se"], k
    assert m["mode_kl"] == 0.0  # one mode
    assert abs(m["mmd"]) < 4 * m["mmd_se"]           # unbiased: mean exactly 0
    assert m["fd"] < 0.01 and m["fd_floor"] < 0.01   # both near 0: tr(cov) d / n scale


def test_metrics_shifted_means():
    d, n = 4, 8000
    cov = np.diag([2.0, 1.0, 0.5, 0.1])
    shift = np.array([0.3, -0.2, 0.0, 0.1])
    gm = GaussianMixture([1.0], [np.zeros(d)], [cov])
    x = draw(np.random.default_rng(12), shift, cov, n)
    m = reality.metrics(x, gm, seed=4)
    tol = 4 * math.sqrt(2)
    assert abs(m["fd"] - m["fd_floor"] - shift @ shift) < tol * m["fd_se"]
    assert abs(m["sliced_w2"] - m["sliced_w2_floor"] - shift @ shift / d) < \
        tol * m["sliced_w2_se"]
    h = m["mmd_bandwidth"]
    z = np.zeros(d)
    exact = (2 * gauss_kernel_mean(z, cov, z, cov, h) - 2 * gauss_kernel_mean(shift, cov, z,
                                                                                cov, h))
    assert abs(m["mmd"] - exact) < 4 * m["mmd_se"]
    assert m["mmd"] > 5 * m["mmd_se"]  # the shift is detected


def test_mode_kl_of_wrong_proportions():
    gm = GaussianMixture([0.5, 0.5], [[-10.0, 0.0], [10.0, 0.0]], [np.eye(2)] * 2)
    wrong = GaussianMixture([0.8, 0.2], gm.means, gm.covariances)
    m = reality.metrics(wrong.sample(10_000, seed=1), gm, seed=2)
    exact = 0.8 * math.log(0.8 / 0.5) + 0.2 * math.log(0.2 / 0.5)
    assert abs(m["mode_kl"] - exact) < 5 * m["mode_kl_se"]
    assert m["mode_kl_floor"] < 0.01


def test_frechet_distance_closed_form():
    c1, c2 = np.diag([4.0, 1.0]), np.diag([1.0, 9.0])
    assert reality.frechet_distance([0, 0], c1, [1, 2], c2) == pytest.approx(
        5 + (2 - 1) ** 2 + (1 - 3) ** 2)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 3, 3))
    c1, c2 = a @ a.T, b @ b.T
    from scipy.linalg import sqrtm

    r = sqrtm(c1)
    ref = np.trace(c1 + c2 - 2 * np.real(sqrtm(r @ c2 @ r)))
    assert reality.frechet_distance(np.zeros(3), c1, np.zeros(3), c2) == pytest.approx(ref)


def test_metrics_with_a_reference_sample():
    cov = np.eye(3)
    gm = GaussianMixture([1.0], [np.zeros(3)], [cov])
    rng = np.random.default_rng(5)
    ref = draw(rng, np.zeros(3), cov, 6000)
    x = draw(rng, np.array([0.5, 0, 0]), cov, 6000)
    m = reality.metrics(x, gm, reference=ref, floor=False)
    assert m["reference"] == "samples" and "fd_floor" not in m
    assert abs(m["fd"] - 0.25) < 5 * m["fd_se"] + 3 * 2 * 3 / 6000


def test_bad_metric_arguments_are_named():
    gm = GaussianMixture([1.0], [np.zeros(3)], [np.eye(3)])
    with pytest.raises(ValueError, match="samples have 2 values per row"):
        reality.metrics(np.zeros((100, 2)), gm)
    with pytest.raises(ValueError, match="samples contains NaN"):
        reality.metrics(np.full((100, 3), np.nan), gm)
    with pytest.raises(ValueError, match="reference has 2 values per row"):
        reality.metrics(np.zeros((100, 3)), gm, reference=np.zeros((100, 2)))
    with pytest.raises(ValueError, match="model must be"):
        reality.metrics(np.zeros((100, 3)), "gmm")


# -- the Gaussian prediction -------------------------------------------------------------
def test_predicted_fd_matches_a_measured_k1_ddim_run():
    gm = gaussian(d=6, seed=6)
    sch = DDIMScheduler(clip_sample=False)
    sch.set_timesteps(5)
    x = reality.sample(sch, gm, 20_000, seed=7, eta=0.0)
    m = reality.metrics(x, gm, seed=8)
    pred = reality.predicted_fd(*symspec.from_diffusers(sch, eta=0.0), gm)
    assert pred > 20 * m["fd_floor"]  # a visible error, not noise
    assert abs(m["fd"] - m["fd_floor"] - pred) < 4 * math.sqrt(2) * m["fd_se"]


def test_compare_schedules_k1_designed_wins_fd():
    gm = gaussian(d=6, seed=9)
    rows = reality.compare_schedules(gm, "ddim", 5, n=4000, n_boot=8, mmd_blocks=4)
    fd = {r["name"]: r["fd"] for r in rows}
    assert fd["designed"] < min(v for k, v in fd.items() if k != "designed")
    pred = {r["name"]: r["predicted_fd"] for r in rows}
    assert pred["designed"] == min(pred.values())


# -- the command line --------------------------------------------------------------------
def test_cli_reality_table_and_errors(tmp_path, capsys):
    from symspec.cli import main

    data = tmp_path / "data.npy"
    rng = np.random.default_rng(0)
    np.save(data, np.concatenate([rng.normal(-2, 0.3, (300, 3)), rng.normal(2, 0.3, (300, 3))]))
    assert main(["reality", "--model", "gmm:2", "--data", str(data), "--steps", "3",
                 "--n", "200"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    names = [ln.split()[0] for ln in lines[2:9]]
    assert names == ["designed", "linear/leading", "linear/trailing", "linear/linspace",
                     "cosine/leading", "cosine/trailing", "cosine/linspace"]
    assert all("±" in ln for ln in lines[2:9]) and lines[9].startswith("noise floor")
    assert "[7/7] cosine/linspace" in err  # the progress line
    assert main(["reality", "--model", "gmm:x", "--data", str(data)]) == 2
    assert "--model must be gmm:K or empirical" in capsys.readouterr().err
    assert main(["reality", "--model", "gmm:700", "--data", str(data), "--n", "100"]) == 2
    assert "n_components = 700 exceeds" in capsys.readouterr().err
