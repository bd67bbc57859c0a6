"""Divergences between Gaussian spectra against the general matrix formulas.

Diagonal spectra are rotated by a random orthogonal matrix, so the references
(``W2^2 = tr A + tr B - 2 tr (A^1/2 B A^1/2)^1/2`` and
``KL(N(0,A) || N(0,B)) = (tr B^-1 A - d + ln det B - ln det A) / 2``) run on full
covariance matrices with SciPy, nothing in common with the per-mode code.
"""

import mpmath
import numpy as np
import pytest
from scipy.linalg import sqrtm
from scipy.stats import ortho_group

from symspec.design.divergences import DIVERGENCES, divergence, divergence_grad

RNG = np.random.default_rng(11)
LAM = RNG.uniform(0.05, 5.0, 12)
P = RNG.uniform(0.05, 5.0, 12)
Q = ortho_group.rvs(12, random_state=4)


def _cov(d):
    return Q @ np.diag(d) @ Q.T


def w2_matrix(a, b):
    A, B = _cov(a), _cov(b)
    rA = sqrtm(A).real
    return float(np.trace(A) + np.trace(B) - 2 * np.trace(sqrtm(rA @ B @ rA).real))


def kl_matrix(a, b):
    A, B = _cov(a), _cov(b)
    _, ld_a = np.linalg.slogdet(A)
    _, ld_b = np.linalg.slogdet(B)
    return 0.5 * float(np.trace(np.linalg.solve(B, A)) - A.shape[0] + ld_b - ld_a)


def test_w2_matches_the_matrix_formula():
    assert divergence(LAM, P, "w2") == pytest.approx(w2_matrix(LAM, P), rel=1e-9)


def test_kl_matches_the_matrix_formula_in_both_directions():
    assert divergence(LAM, P, "kl") == pytest.approx(kl_matrix(LAM, P), rel=1e-10)
    assert divergence(LAM, P, "kl_reverse") == pytest.approx(kl_matrix(P, LAM), rel=1e-10)


def test_kl_at_50_digits_over_a_wide_range():
    lam = np.geomspace(1e-12, 1e12, 25)
    P = lam * np.geomspace(0.5, 3.0, 25)
    mpmath.mp.dps = 50
    want = sum(0.5 * (mpmath.mpf(a) / b - 1 - mpmath.log(mpmath.mpf(a) / b))
               for a, b in zip(lam.tolist(), P.tolist(), strict=True))
    assert divergence(lam, P, "kl") == pytest.approx(float(want), rel=1e-13)


def test_symmetry_and_asymmetry():
    assert divergence(LAM, P, "w2") == pytest.approx(divergence(P, LAM, "w2"), rel=1e-15)
    assert divergence(LAM, P, "kl_reverse") == pytest.approx(divergence(P, LAM, "kl"), rel=1e-15)
    assert divergence(LAM, P, "kl") != pytest.approx(divergence(P, LAM, "kl"), rel=1e-3)
    for kind in DIVERGENCES:
        assert divergence(LAM, LAM, kind) == 0.0
        assert divergence(LAM, P, kind) > 0


def test_weights_count_modes():
    w = np.arange(1, 13)
    repeated = np.repeat(np.arange(12), w)
    for kind in DIVERGENCES:
        assert divergence(LAM, P, kind, weights=w) == pytest.approx(
            divergence(LAM[repeated], P[repeated], kind), rel=1e-13)


def test_zero_weight_modes_are_ignored():
    lam, model = np.array([1.0, 2.0, 0.0]), np.array([1.5, 0.0, 3.0])
    w = np.array([1.0, 0.0, 0.0])
    for kind in DIVERGENCES:
        want = divergence(lam[:1], model[:1], kind)
        assert divergence(lam, model, kind, weights=w) == pytest.approx(want, rel=1e-15)
        g = divergence_grad(lam, model, kind, weights=w)
        assert np.all(np.isfinite(g)) and np.all(g[1:] == 0)


@pytest.mark.parametrize("kind", DIVERGENCES)
def test_gradient_matches_central_differences(kind):
    g = divergence_grad(LAM, P, kind)
    h = 1e-6 * P
    for k in range(P.size):
        up, down = P.copy(), P.copy()
        up[k] += h[k]
        down[k] -= h[k]
        fd = (divergence(LAM, up, kind) - divergence(LAM, down, kind)) / (2 * h[k])
        assert g[k] == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_errors():
    with pytest.raises(ValueError, match="same shape"):
        divergence([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="divergence must be one of"):
        divergence([1.0], [1.0], "hellinger")
    with pytest.raises(ValueError, match="kl needs positive variances"):
        divergence([1.0, 0.0], [1.0, 1.0], "kl")
    with pytest.raises(ValueError, match="kl_reverse needs positive variances"):
        divergence([1.0, 1.0], [1.0, 0.0], "kl_reverse")
    with pytest.raises(ValueError, match="psd_data must be >= 0"):
        divergence([-1.0], [1.0])
    with pytest.raises(ValueError, match="psd_model must be finite"):
        divergence([1.0], [np.nan])
    with pytest.raises(ValueError, match="weights must be >= 0"):
        divergence([1.0], [1.0], weights=[-1.0])
    with pytest.raises(ValueError, match=r"weights must broadcast to the psd shape \(3,\)"):
        divergence([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="not differentiable"):
        divergence_grad([1.0], [0.0], "w2")
    assert divergence([0.0, 4.0], [0.0, 1.0], "w2") == 1.0  # w2 allows zero variances


def test_overflowing_divergence_is_refused_not_inf_or_nan():
    # issue 15: divergence([1e300], [1e-300], "kl") returned nan
    with pytest.raises(ValueError, match="exceeds the float64 range"):
        divergence([1e300], [1e-300], "kl")
    # extreme but representable: finite, and equal to the closed form in logs
    r = np.log(1e150) - np.log(1e-150)
    assert divergence([1e150], [1e-150], "kl_reverse") == pytest.approx(0.5 * (np.exp(-r) - 1 + r))
