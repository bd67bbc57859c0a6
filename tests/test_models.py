"""Exact non-Gaussian data models (symspec.models), checked against independent references.

- K = 1: the posterior mean is the Wiener filter, derived here with SymPy from Bayes' rule
  (maximise the Gaussian joint density in x0), and evaluated mode by mode in a PCA basis
  computed here; also equal to symspec's Gaussian denoiser (``exact_model``).
- K > 1: the posterior mean against self-normalised importance sampling from the prior
  (within 4 standard errors), and Tweedie's formula ``grad log p_t = (a E[x0|x] - x) / s^2``
  against central finite differences of ``log p_t`` written here with SciPy's
  ``multivariate_normal`` and ``logsumexp``.
- Sampling moments, the spectrum, the empirical model against a brute-force softmax, and
  every bad input raising a ValueError that names the argument.
"""

import math
import warnings

import numpy as np
import pytest
import sympy as sp
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from symspec.models import Empirical, GaussianMixture


def random_spd(rng, d, scale=1.0):
    a = rng.standard_normal((d, d))
    return scale * (a @ a.T / d + 0.05 * np.eye(d))


def mixture(rng, K=3, d=3, spread=2.0):
    w = rng.uniform(0.5, 1.5, K)
    return GaussianMixture(w / w.sum(), spread * rng.standard_normal((K, d)),
                           np.stack([random_spd(rng, d) for _ in range(K)]))


def noisy_log_density(gm_weights, means, covs, x, ab):
    """log p_t(x) of sum_k w_k N(a mu_k, a^2 S_k + s^2 I), with SciPy (independent code)."""
    a, s2 = math.sqrt(ab), 1 - ab
    d = means.shape[1]
    terms = [np.log(w) + multivariate_normal(a * m, ab * c + s2 * np.eye(d)).logpdf(x)
             for w, m, c in zip(gm_weights, means, covs, strict=True)]
    return logsumexp(np.stack(terms), axis=0)


# -- K = 1: the Wiener filter ----------------------------------------------------------
def wiener_sympy():
    """E[x0 | x_t] for x0 ~ N(mu, lam), x_t = a x0 + s eps, derived by Bayes' rule."""
    x0, xt, mu = sp.symbols("x0 x_t mu", real=True)
    lam, ab = sp.symbols("lambda alphabar", positive=True)
    a, s2 = sp.sqrt(ab), 1 - ab
    log_joint = -(x0 - mu) ** 2 / (2 * lam) - (xt - a * x0) ** 2 / (2 * s2)
    # the posterior is Gaussian in x0: its mean is the maximiser of the joint density
    (post,) = sp.solve(sp.diff(log_joint, x0), x0)
    return post, (x0, xt, mu, lam, ab)


def test_one_component_posterior_mean_is_the_wiener_filter_sympy_identity():
    post, (_, xt, mu, lam, ab) = wiener_sympy()
    a = sp.sqrt(ab)
    wiener = mu + a * lam / (ab * lam + 1 - ab) * (xt - a * mu)
    assert sp.simplify(post - wiener) == 0
    # its limits: no noise returns x_t, pure noise returns the mean
    assert sp.simplify(post.subs(ab, 1)) == xt
    assert sp.simplify(post.subs(ab, 0)) == mu


@pytest.mark.parametrize("ab", [1e-6, 0.02, 0.5, 0.97, 1 - 1e-9])
def test_one_component_numeric_equals_sympy_wiener_per_pca_mode(ab, worst):
    rng = np.random.default_rng(1)
    d = 5
    cov, mean = random_spd(rng, d, 3.0), rng.standard_normal(d)
    gm = GaussianMixture([1.0], [mean], [cov])
    post, (_, xt, mu, lam, abs_) = wiener_sympy()
    f = sp.lambdify((xt, mu, lam, abs_), post, "numpy")
    lam_, U = np.linalg.eigh(cov)
    x = rng.standard_normal((7, d)) * 3
    expect = f(x @ U, mean @ U, lam_, ab) @ U.T     # mode by mode in the PCA basis
    got = gm.posterior_mean(x, ab)
    err = np.abs(got - expect).max() / np.abs(expect).max()
    worst("models: K=1 posterior mean vs SymPy Wiener filter", err)
    assert err < 1e-12


def test_one_component_equals_symspec_gaussian_denoiser():
    import torch

    from symspec.diffusers.verify import exact_model

    rng = np.random.default_rng(2)
    lam, mean = np.array([4.0, 1.0, 0.25, 0.01]), rng.standard_normal(4)
    gm = GaussianMixture([1.0], [mean], [np.diag(lam)])
    x = rng.standard_normal((6, 4))
    for ab in (0.001, 0.3, 0.9):
        ref = exact_model(torch.tensor(x), torch.tensor(ab, dtype=torch.float64),
                          torch.tensor(lam), "sample", torch.tensor(mean)).numpy()
        np.testing.assert_allclose(gm.posterior_mean(x, ab), ref, rtol=1e-12, atol=1e-13)


# -- K > 1 -----------------------------------------------------------------------------
@pytest.mark.parametrize("ab", [0.1, 0.5, 0.9])
def test_posterior_mean_matches_importance_sampling(ab):
    rng = np.random.default_rng(3)
    gm = mixture(rng, K=3, d=2)
    a, s = math.sqrt(ab), math.sqrt(1 - ab)
    M = 400_000
    # prior draws, written here: a component by its weight, then its Gaussian
    k = rng.choice(3, size=M, p=gm.weights)
    L = np.linalg.cholesky(gm.covariances)
    x0 = gm.means[k] + np.einsum("nij,nj->ni", L[k], rng.standard_normal((M, 2)))
    xt = a * gm.sample(5, seed=9) + s * rng.standard_normal((5, 2))
    got = gm.posterior_mean(xt, ab)
    for i, x in enumerate(xt):
        logw = -np.sum((x - a * x0) ** 2, axis=1) / (2 * s * s)
        w = np.exp(logw - logw.max())
        est = w @ x0 / w.sum()
        se = np.sqrt((w[:, None] ** 2 * (x0 - est) ** 2).sum(axis=0)) / w.sum()  # delta method
        assert np.all(np.abs(got[i] - est) < 4 * se), (ab, i, got[i], est, se)


@pytest.mark.parametrize("ab", [0.05, 0.5, 0.95])
def test_tweedie_score_matches_finite_differences_of_log_density(ab, worst):
    rng = np.random.default_rng(4)
    gm = mixture(rng, K=4, d=3)
    x = rng.standard_normal((6, 3)) * 2
    h = 1e-5
    fd = np.empty_like(x)
    for j in range(3):
        e = np.zeros(3)
        e[j] = h
        fd[:, j] = (noisy_log_density(gm.weights, gm.means, gm.covariances, x + e, ab)
                    - noisy_log_density(gm.weights, gm.means, gm.covariances, x - e, ab)) / (2 * h)
    tweedie = (math.sqrt(ab) * gm.posterior_mean(x, ab) - x) / (1 - ab)
    err = np.abs(tweedie - fd).max() / np.abs(fd).max()
    worst("models: Tweedie score vs finite differences of log p_t", err)
    assert err < 1e-6
    np.testing.assert_allclose(gm.score(x, ab), tweedie, rtol=1e-12)
    ref = noisy_log_density(gm.weights, gm.means, gm.covariances, x, ab)
    np.testing.assert_allclose(gm.log_density(x, ab), ref, rtol=1e-11)


def test_posterior_is_stable_where_every_density_underflows():
    """Far from every component at low noise, exp(log p_k) is 0 for all k: log-sum-exp."""
    gm = GaussianMixture([0.5, 0.5], [[0.0, 0.0], [4.0, 0.0]], [np.eye(2) * 1e-3] * 2)
    x = np.array([[1000.0, 0.0], [-1000.0, 3.0], [2.0 + 1e-3, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for ab in (1e-12, 0.5, 1 - 1e-9):
            m = gm.posterior_mean(x, ab)
            assert np.isfinite(m).all()
            r = gm.responsibilities(x, ab)
            assert np.isfinite(r).all() and np.allclose(r.sum(axis=1), 1)
        # near-clean far right point: the right component, almost the point itself
        r = gm.responsibilities(x[:1], 0.999)
        assert r[0, 1] == pytest.approx(1.0)
        assert np.isfinite(gm.log_density(x, 0.999)).all()


def test_chunked_rows_equal_one_by_one():
    rng = np.random.default_rng(5)
    gm = mixture(rng, K=5, d=4)
    x = rng.standard_normal((9000, 4))  # more than one chunk of rows
    full = gm.posterior_mean(x, 0.4)
    for i in (0, 4095, 4096, 8999):
        np.testing.assert_allclose(full[i], gm.posterior_mean(x[i], 0.4)[0], rtol=1e-13)


def test_sample_moments_shuffle_and_seed():
    rng = np.random.default_rng(6)
    gm = mixture(rng, K=3, d=2)
    n = 200_000
    x = gm.sample(n, seed=1)
    assert np.array_equal(x, gm.sample(n, seed=1)) and not np.array_equal(x, gm.sample(n, 2))
    cov = gm.covariance()
    z = (x.mean(axis=0) - gm.mean()) / np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(z) < 5)
    dev = x - gm.mean()
    emp = dev.T @ dev / n
    se = np.sqrt((np.einsum("ni,nj->nij", dev, dev) - emp).var(axis=0) / n)
    assert np.all(np.abs(emp - cov) < 5 * se)
    # rows are shuffled: the components of the first rows are not in blocks
    lab = gm.component(x[:300])
    assert np.count_nonzero(np.diff(lab)) > 50
    # component proportions for well separated components are the weights
    far = GaussianMixture([0.2, 0.3, 0.5], [[-20.0], [0.0], [20.0]], [[[1.0]]] * 3)
    p = np.bincount(far.component(far.sample(n, seed=3)), minlength=3) / n
    assert np.all(np.abs(p - far.weights) < 5 * np.sqrt(far.weights * (1 - far.weights) / n))


def test_spectrum_is_the_pca_of_the_mixture():
    rng = np.random.default_rng(7)
    gm = mixture(rng, K=3, d=4)
    spec = gm.spectrum()
    assert np.all(np.diff(spec.eigenvalues) <= 0)
    np.testing.assert_allclose(spec.basis @ np.diag(spec.eigenvalues) @ spec.basis.T,
                               gm.covariance(), atol=1e-12)
    np.testing.assert_allclose(spec.basis.T @ spec.basis, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(spec.mean_coords, spec.basis.T @ gm.mean())
    x = gm.sample(100_000, seed=0)
    np.testing.assert_allclose(np.cov(x.T), gm.covariance(), atol=0.1)


def test_fit_recovers_separated_components():
    rng = np.random.default_rng(8)
    means = np.array([[-6.0, 0.0], [6.0, 0.0], [0.0, 8.0]])
    x = np.concatenate([m + 0.5 * rng.standard_normal((3000, 2)) for m in means])
    gm = GaussianMixture.fit(x, 3, seed=0, reg_covar=1e-4)
    order = np.argsort(gm.means[:, 0] + 0.01 * gm.means[:, 1])
    np.testing.assert_allclose(gm.means[order], means[[0, 2, 1]], atol=0.05)
    np.testing.assert_allclose(gm.weights, 1 / 3, atol=0.01)
    np.testing.assert_allclose(gm.covariances[0], 0.25 * np.eye(2) + 1e-4 * np.eye(2),
                               atol=0.03)
    assert gm.reg_covar == 1e-4


# -- the empirical model ---------------------------------------------------------------
def test_empirical_posterior_is_the_softmax_average():
    rng = np.random.default_rng(9)
    train = rng.standard_normal((1500, 3))  # more than one block of training samples
    e = Empirical(train)
    x = rng.standard_normal((5, 3))
    for ab in (0.05, 0.6, 0.99):
        a, s2 = math.sqrt(ab), 1 - ab
        logit = -((x[:, None] - a * train[None]) ** 2).sum(-1) / (2 * s2)
        w = np.exp(logit - logit.max(axis=1, keepdims=True))
        ref = w @ train / w.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(e.posterior_mean(x, ab), ref, rtol=1e-10, atol=1e-12)
        lp = logsumexp(logit, axis=1) - math.log(len(train)) - 1.5 * math.log(2 * math.pi * s2)
        np.testing.assert_allclose(e.log_density(x, ab), lp, rtol=1e-11)
    # low noise: the nearest training sample; the memorising model returns its data
    near = train[[3, 700]] + 1e-3
    np.testing.assert_allclose(e.posterior_mean(near, 1 - 1e-8), train[[3, 700]], atol=1e-6)
    assert e.component(near).tolist() == [3, 700]
    assert np.allclose(e.spectrum().eigenvalues, np.linalg.eigvalsh(np.cov(train.T,
                                                                           bias=True))[::-1])


# -- bad input -------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    ({"weights": [0.5, 0.5], "means": [[0.0]], "covariances": [[[1.0]]]}, "weights has 2"),
    ({"weights": [1.0], "means": [[0.0, 0.0]], "covariances": [[[1.0]]]}, "covariances must"),
    ({"weights": [1.0], "means": [0.0], "covariances": [[[1.0]]]}, "means must have shape"),
    ({"weights": [0.7, 0.7], "means": [[0.0], [1.0]], "covariances": [[[1.0]]] * 2},
     "weights must sum"),
    ({"weights": [1.5, -0.5], "means": [[0.0], [1.0]], "covariances": [[[1.0]]] * 2},
     "weights must be positive"),
    ({"weights": [1.0], "means": [[np.nan]], "covariances": [[[1.0]]]}, "means contains NaN"),
    ({"weights": [1.0], "means": [[1j]], "covariances": [[[1.0]]]}, "means must be real"),
    ({"weights": [1.0], "means": [[0.0, 0.0]], "covariances": [[[1.0, 2.0], [0.0, 1.0]]]},
     r"covariances\[0\] is not symmetric"),
])
def test_bad_mixture_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(**kwargs)


def test_singular_covariance_refused_or_regularised_as_stated():
    cov = [np.eye(2), [[1.0, 1.0], [1.0, 1.0]]]  # the second is singular
    with pytest.raises(ValueError, match=r"covariances\[1\] is singular.*reg_covar"):
        GaussianMixture([0.5, 0.5], [[0.0, 0.0], [1.0, 1.0]], cov)
    gm = GaussianMixture([0.5, 0.5], [[0.0, 0.0], [1.0, 1.0]], cov, reg_covar=1e-3)
    assert gm.reg_covar == 1e-3
    np.testing.assert_allclose(gm.covariances[1], np.array(cov[1]) + 1e-3 * np.eye(2))
    with pytest.raises(ValueError, match="reg_covar must be"):
        GaussianMixture([1.0], [[0.0]], [[[1.0]]], reg_covar=-1.0)


def test_bad_fit_arguments_are_named():
    x = np.random.default_rng(0).standard_normal((10, 2))
    with pytest.raises(ValueError, match="n_components = 11 exceeds the number of samples"):
        GaussianMixture.fit(x, 11)
    bad = x.copy()
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match=r"samples contains NaN \(first at index \(4, 1\)\)"):
        GaussianMixture.fit(bad, 2)
    with pytest.raises(ValueError, match="samples must be real"):
        GaussianMixture.fit(x + 0j, 2)
    with pytest.raises(ValueError, match="samples must have shape"):
        GaussianMixture.fit(x[:, 0], 2)
    with pytest.raises(ValueError, match="n_components must be a positive int"):
        GaussianMixture.fit(x, 0)
    with pytest.raises(ValueError, match="reg_covar must be"):
        GaussianMixture.fit(x, 2, reg_covar=0.0)
    with pytest.raises(ValueError, match="samples contains inf"):
        Empirical(np.array([[np.inf, 0.0]]))


def test_bad_evaluation_arguments_are_named():
    gm = GaussianMixture([1.0], [[0.0, 0.0]], [np.eye(2)])
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        gm.posterior_mean(np.zeros((3, 3)), 0.5)
    with pytest.raises(ValueError, match=r"alpha_bar must be in \[0, 1\]"):
        gm.posterior_mean(np.zeros((3, 2)), 1.5)
    with pytest.raises(ValueError, match="x contains NaN"):
        gm.posterior_mean([[np.nan, 0.0]], 0.5)
    with pytest.raises(ValueError, match="n must be a positive int"):
        gm.sample(0)
    with pytest.raises(ValueError, match="seed must be"):
        gm.sample(3, seed=-1)
