"""Data spectra: estimators against known spectra, Parseval, fits, natural photos, bad input.

Statistical bound used throughout.  For real Gaussian data whose FFT bin ``k`` has variance
``S_k``, ``|X_k|^2 / S_k`` is ``chi2(nu) / nu`` with ``nu = 2`` for a complex bin and
``nu = 1`` for a self-conjugate (real) bin (DC, Nyquist).  An estimate averaging ``m``
independent samples (``m = n - 1`` after removing the mean) therefore has standard error
``SE_k = S_k sqrt(2 / (nu m))``.  Each bin must lie within 5 SE, and the aggregate
``sum z_k^2`` over the distinct bins (a mirrored pair is one bin) within 5 standard
deviations, ``sqrt(2 df)``, of its mean ``df``.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from symspec.spectra import estimate as S

RNG = np.random.default_rng(20260521)


def synth(rng, psd, n, mean=0.0):
    """``n`` real Gaussian samples whose ortho-FFT bins have variance ``psd`` (symmetric)."""
    axes = tuple(range(1, psd.ndim + 1))
    w = np.fft.fftn(rng.standard_normal((n, *psd.shape)), axes=axes, norm="ortho")
    return np.fft.ifftn(np.sqrt(psd) * w, axes=axes, norm="ortho").real + mean


def mirror(shape):
    """Flat index of ``-k`` for every bin ``k`` of an FFT grid."""
    idx = np.indices(shape)
    neg = tuple((-i) % n for i, n in zip(idx, shape, strict=True))
    return np.ravel_multi_index(neg, shape)


def nu(shape):
    """Degrees of freedom per bin: 1 for self-conjugate bins, 2 otherwise."""
    self_conj = mirror(shape) == np.arange(np.prod(shape)).reshape(shape)
    return np.where(self_conj, 1, 2)


def check_bound(est, true, m, dof=None):
    """Per-bin |z| < 5 and the aggregate chi-square within 5 of its standard deviations."""
    dof = nu(true.shape) if dof is None else dof
    z = (est - true) / (true * np.sqrt(2 / (dof * m)))
    distinct = (np.arange(z.size) <= mirror(z.shape).ravel()).reshape(z.shape)
    df = int(distinct.sum())
    stat = float((z[distinct] ** 2).sum())
    assert np.abs(z).max() < 5, f"worst bin at {np.abs(z).max():.2f} SE"
    assert abs(stat - df) < 5 * np.sqrt(2 * df), f"chi2 {stat:.1f} for {df} bins"
    return np.abs(z).max(), stat / df


def aniso(shape):
    """An anisotropic 2-D spectrum (even in each frequency, so real data)."""
    fy, fx = np.meshgrid(*[np.fft.fftfreq(n) for n in shape], indexing="ij")
    return 1.0 / (1 + (fy / 0.04) ** 2 + (fx / 0.15) ** 2) + 0.01


CASES = {"1d-ar1": S.model_psd("ar1", S.frequency_radius((48,)), sigma2=0.3, rho=0.8),
         "2d-aniso": aniso((16, 24))}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("remove_mean", [True, False])
def test_estimate_psd_within_bound(case, remove_mean):
    """Known spectrum, 3000 samples: every bin within 5 SE, aggregate chi-square in bounds."""
    true, n = CASES[case], 3000
    x = synth(RNG, true, n, mean=0.0)
    est = S.estimate_psd(x, remove_mean=remove_mean)
    check_bound(est, true, n - 1 if remove_mean else n)


def test_mean_removal_is_exact():
    """Adding any fixed image to every sample leaves the variance estimate unchanged."""
    x = synth(RNG, aniso((8, 12)), 50)
    shift = RNG.standard_normal((8, 12)) * 10 + 3
    np.testing.assert_allclose(S.estimate_psd(x + shift), S.estimate_psd(x), rtol=1e-9,
                               atol=1e-12)
    assert S.estimate_psd(x + shift, remove_mean=False)[0, 0] > 100 * S.estimate_psd(x)[0, 0]


@pytest.mark.parametrize("shape", [(37,), (9, 14)])
def test_parseval(shape):
    """Summed spectrum == mean energy (second moment) and == summed pixel variances."""
    x = RNG.standard_normal((20, *shape)) * 3 + 1
    axes = tuple(range(1, x.ndim))
    np.testing.assert_allclose(S.estimate_psd(x, remove_mean=False).sum(),
                               np.mean(np.sum(x * x, axis=axes)), rtol=1e-12)
    np.testing.assert_allclose(S.estimate_psd(x).sum(), np.var(x, axis=0, ddof=1).sum(),
                               rtol=1e-12)


def test_window_matches_scipy_periodogram():
    """A windowed estimate equals scipy's two-sided density periodogram (fs = 1)."""
    x = RNG.standard_normal((30, 40))
    _, ref = scipy.signal.periodogram(x, window="hann", detrend=False, return_onesided=False,
                                      scaling="density", axis=-1)
    np.testing.assert_allclose(S.estimate_psd(x, remove_mean=False, window="hann"),
                               ref.mean(axis=0), rtol=1e-12)


def test_window_preserves_white_spectrum():
    """White noise of variance 0.3 through a Hann window: every bin still estimates 0.3.

    Windowing makes the real and imaginary parts of a bin unequal in variance, so the bound
    uses the conservative ``nu = 1`` for every bin (the largest variance possible).
    """
    n = 4000
    x = RNG.standard_normal((n, 12, 10)) * np.sqrt(0.3)
    est = S.estimate_psd(x, window="hann")
    z = (est - 0.3) / (0.3 * np.sqrt(2 / (n - 1)))
    assert np.abs(z).max() < 5


def channel_model(shape, delays=(0, 3, -2)):
    """Per-bin covariance ``D Q diag(lam) Q^T D^H``: channel spectra ``lam`` (4x apart),
    mixed by a fixed rotation ``Q`` and delayed per channel (complex Hermitian)."""
    f = S.frequency_radius(shape)
    lam = np.stack([S.power_law(shape, 1.5, variance=4.0), 1.0 / (1 + (f / 0.1) ** 2),
                    np.full(shape, 0.05)], axis=-1)
    lam[..., 1] *= 0.25 * lam[..., 0].min() / lam[..., 1].max()
    lam[..., 2] = 0.25 * lam[..., 1].min()
    q, _ = np.linalg.qr(np.random.default_rng(3).standard_normal((3, 3)))
    k = np.fft.fftfreq(shape[-1])
    d = np.exp(-2j * np.pi * k[..., None] * np.array(delays))  # delay along the last axis
    return lam, q, d


def test_channel_psd_eigenvalues_within_bound():
    """Colour images with correlated, delayed channels: eigen-spectra within 5 SE per bin.

    For well-separated eigenvalues (4x apart here) a sample eigenvalue has the variance of
    its mode, ``2 lam^2 / (nu m)``, and a bias of order ``lam / (3 m)``, negligible at this
    size (m = 2999).
    """
    shape, n = (8, 10), 3000
    lam, q, d = channel_model(shape)
    axes = (1, 2)
    w = np.fft.fftn(RNG.standard_normal((n, *shape, 3)), axes=axes, norm="ortho")
    big_x = np.einsum("...c,cj,...j,n...j->n...c", d, q, np.sqrt(lam), w)
    x = np.fft.ifftn(big_x, axes=axes, norm="ortho")
    assert np.abs(x.imag).max() < 1e-12
    vals, vecs = S.channel_psd(x.real, vectors=True)
    cov = S.SpectrumAccumulator(2, channels=True)
    cov.update(x.real)
    cov = cov.covariance()
    assert np.abs(cov.imag).max() > 0.01 * np.abs(cov).max()  # truly complex cross-spectra
    np.testing.assert_allclose(np.einsum("...ij,...j,...kj->...ik", vecs, vals, vecs.conj()),
                               cov, atol=1e-12 * np.abs(cov).max())
    np.testing.assert_allclose(vals.sum(axis=-1), np.trace(cov, axis1=-2, axis2=-1).real,
                               rtol=1e-12)
    dof = nu(shape)
    for j in range(3):
        check_bound(vals[..., j], lam[..., j], n - 1, dof)


def test_pca_spectrum():
    """Eigenvalues agree with numpy's covariance; rank-deficient stacks pad with zeros."""
    x = RNG.standard_normal((40, 6, 2)) @ np.diag([3.0, 0.5])
    ref = np.sort(np.linalg.eigvalsh(np.cov(x.reshape(40, -1), rowvar=False)))[::-1]
    np.testing.assert_allclose(S.pca_spectrum(x), ref, atol=1e-12)
    few = S.pca_spectrum(RNG.standard_normal((5, 10)))
    assert few.shape == (10,) and np.all(few[4:] < 1e-12) and np.all(few[:4] > 0.01)


def test_pca_spectrum_within_bound():
    """Known diagonal covariance: sample eigenvalues within 5 SE, ``lam sqrt(2 / (n-1))``."""
    lam, n = np.array([4.0, 1.0, 0.2]), 20000
    est = S.pca_spectrum(RNG.standard_normal((n, 3)) * np.sqrt(lam))
    assert np.all(np.abs(est - lam) < 5 * lam * np.sqrt(2 / (n - 1)))


def test_welch_matches_scipy():
    """Without mean removal, Welch equals scipy.signal.welch (two-sided, density, fs = 1)."""
    x = RNG.standard_normal(5000)
    _, ref = scipy.signal.welch(x, window="hann", nperseg=64, noverlap=32, detrend=False,
                                return_onesided=False, scaling="density")
    np.testing.assert_allclose(S.welch_psd(x, 64, remove_mean=False), ref, rtol=1e-12)


def test_welch_within_bound():
    """A long AR(1) signal: Welch (Hann, 50%) against its exact expectation.

    The expectation of a windowed periodogram of the (non-periodic) AR(1) process is
    ``sum_tau r(tau) c_w(tau) exp(-2 pi i k tau / L) / sum w^2`` with the autocovariance
    ``r(tau) = sigma2 rho^|tau| / (1 - rho^2)`` and the window's autocorrelation ``c_w``.
    Standard error: Welch's variance for Hann at 50% overlap, ``(1 + 2 (1/6)^2) / K`` times
    ``2 S^2 / nu``, with the conservative ``nu = 1`` for all bins.
    """
    sigma2, rho, seg, big_n = 0.5, 0.6, 32, 200_000
    x = scipy.signal.lfilter([1.0], [1.0, -rho], RNG.standard_normal(big_n) * np.sqrt(sigma2))
    x = x[1000:]  # drop the start-up transient
    est = S.welch_psd(x, seg)
    w = scipy.signal.get_window("hann", seg)
    tau = np.arange(-(seg - 1), seg)
    cw = np.correlate(w, w, mode="full")
    r = sigma2 * rho ** np.abs(tau) / (1 - rho ** 2)
    k = np.arange(seg)[:, None]
    expect = (r * cw * np.exp(-2j * np.pi * k * tau / seg)).sum(axis=1).real / (w @ w)
    segs = len(S.welch_segments(x, seg))
    se = expect * np.sqrt(2 * (1 + 2 / 36) / segs)
    assert np.abs((est - expect) / se).max() < 5
    stereo = S.welch_psd(np.stack([x, 0.5 * x], axis=1), seg)
    np.testing.assert_allclose(stereo[:, 0], 1.25 * est, rtol=1e-9)
    assert np.abs(stereo[:, 1]).max() < 1e-12 * est.max()


def test_accumulator_batches_are_exact():
    """Streaming in uneven batches equals the one-shot estimate (mean kept and removed)."""
    x = synth(RNG, aniso((6, 8)), 101, mean=5.0)
    acc = S.SpectrumAccumulator(2)
    for lo, hi in ((0, 1), (1, 40), (40, 41), (41, 101)):
        acc.update(x[lo:hi])
    for rm in (True, False):
        np.testing.assert_allclose(acc.psd(rm), S.estimate_psd(x, remove_mean=rm), rtol=1e-10)
    with pytest.raises(ValueError, match=r"sample shape \(6, 9\)"):
        acc.update(np.zeros((2, 6, 9)))


# -- fits ---------------------------------------------------------------------------------
FITS = [("powerlaw", (32, 32), {"A": 0.01, "f0": 0.05, "alpha": 2.5}),
        ("powerlaw", (32, 32), {"A": 0.01, "f0": 0.05, "alpha": 2.5, "floor": 0.05}),
        ("lorentzian", (24, 24), {"A": 3.0, "fc": 0.05, "floor": 0.01}),
        ("lorentzian", (128,), {"A": 3.0, "fc": 0.05}),
        ("ar1", (128,), {"sigma2": 0.5, "rho": 0.9}),
        ("ar1", (128,), {"sigma2": 0.1, "rho": 0.9, "floor": 0.2})]


@pytest.mark.parametrize("floor", [False, True])
@pytest.mark.parametrize(("model", "t"), [("powerlaw", [-2.0, -3.0, 2.2]),
                                          ("lorentzian", [0.5, -2.5]), ("ar1", [-1.0, 0.8])])
def test_model_derivatives(model, t, floor):
    """The analytic derivatives (gradient, Fisher information) match central differences."""
    f, t, h = np.linspace(0, 0.7, 50), np.array(t + [-3.0] * floor), 1e-6
    _, jac = S._spectrum(model, floor, f, t)
    num = [(S._spectrum(model, floor, f, t + h * e)[0] - S._spectrum(model, floor, f, t - h * e)[0])
           / (2 * h) for e in np.eye(len(t))]
    np.testing.assert_allclose(jac, num, rtol=1e-6, atol=1e-9 * np.abs(jac).max())


@pytest.mark.parametrize(("model", "shape", "params"), FITS)
def test_fit_exact_spectrum(model, shape, params):
    """Fitting the noise-free model spectrum returns its parameters (to 1e-6)."""
    true = S.model_psd(model, S.frequency_radius(shape), **params)
    fit = S.fit_psd(true, model, n=100, floor="floor" in params)
    assert fit.params.keys() == params.keys()
    for k, v in params.items():
        assert fit.params[k] == pytest.approx(v, rel=1e-6), k
    np.testing.assert_allclose(fit(S.frequency_radius(shape)), true, rtol=1e-6)


@pytest.mark.parametrize(("model", "shape", "params"), FITS)
def test_fit_recovers_parameters(model, shape, params):
    """Data drawn from the model: every parameter within 5 of its reported SEs."""
    true = S.model_psd(model, S.frequency_radius(shape), **params)
    n = 50
    fit = S.fit_psd(S.estimate_psd(synth(RNG, true, n)), model, n=n - 1,
                    floor="floor" in params)
    for k, v in params.items():
        assert abs(fit.params[k] - v) < 5 * fit.stderr[k], (k, fit.params[k], fit.stderr[k])
        assert fit.stderr[k] < 0.5 * abs(v)  # informative, not vacuous


@pytest.mark.parametrize(("model", "shape", "params"), [FITS[0], FITS[4]])
def test_fit_standard_errors_are_calibrated(model, shape, params):
    """Over R = 150 independent data sets, the mean of z^2 per parameter is 1 within 5 of
    its standard deviations, ``sqrt(2 / R)`` (a factor-1.5 error in the SE would fail)."""
    true = S.model_psd(model, S.frequency_radius(shape), **params)
    reps, n = 150, 20
    z = []
    for _ in range(reps):
        fit = S.fit_psd(S.estimate_psd(synth(RNG, true, n)), model, n=n - 1)
        z.append([(fit.params[k] - v) / fit.stderr[k] for k, v in params.items()])
    mean_z2 = np.mean(np.square(z), axis=0)
    assert np.all(np.abs(mean_z2 - 1) < 5 * np.sqrt(2 / reps)), mean_z2


# -- natural photos -----------------------------------------------------------------------
def test_photo_patches_grey_scale():
    """Grey levels agree with Pillow's own "L" conversion (which rounds to integers)."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    grey = np.asarray(Image.fromarray(load_sample_images().images[0]).convert("L"), float)
    p = S.photo_patches(16, 16)
    np.testing.assert_allclose(p[1], grey[:16, 16:32] / 127.5 - 1, atol=0.5 / 127.5 + 1e-12)
    assert p.min() >= -1 and p.max() <= 1


def test_photo_psd():
    """Shape, symmetry, read-only cache, Parseval and a natural-image power law."""
    p = S.photo_psd(32)
    assert p.shape == (32, 32) and S.photo_psd(32) is p and not p.flags.writeable
    np.testing.assert_allclose(p.ravel()[mirror(p.shape).ravel()], p.ravel(), rtol=1e-12)
    x = S.photo_patches(32)
    np.testing.assert_allclose(p.sum(), np.var(x, axis=0, ddof=1).sum(), rtol=1e-12)
    fit = S.fit_psd(p, "powerlaw", n=len(x) - 1, frange=(1e-9, 1.0))  # DC excluded
    assert 1.5 < fit.params["alpha"] < 3.0  # natural images are close to 1/f^2


# -- bad input ----------------------------------------------------------------------------
@pytest.mark.parametrize(("call", "match"), [
    (lambda: S.estimate_psd(np.full((3, 4), np.nan)), "3 NaN|NaN or infinite"),
    (lambda: S.estimate_psd(np.zeros((1, 8))), "at least 2 samples"),
    (lambda: S.estimate_psd(np.zeros(8)), r"shape \(n, L\)"),
    (lambda: S.estimate_psd(np.zeros((2, 2, 2, 2))), r"got shape \(2, 2, 2, 2\)"),
    (lambda: S.estimate_psd(np.zeros((0, 8))), "empty"),
    (lambda: S.estimate_psd(np.zeros((3, 8)), window="nope"), "window"),
    (lambda: S.channel_psd(np.zeros((3, 8))), r"\(n, L, C\)"),
    (lambda: S.pca_spectrum(np.zeros((1, 8))), "at least 2 samples"),
    (lambda: S.pca_spectrum(np.zeros(8)), "at least 2 dimensions"),
    (lambda: S.welch_psd(np.zeros(10), 16), "fewer than one segment"),
    (lambda: S.welch_psd(np.zeros(100), 16, overlap=1.0), "overlap"),
    (lambda: S.welch_psd(np.zeros(100), 1), "segment"),
    (lambda: S.fit_psd(np.ones(16), "gauss", n=10), "model must be one of"),
    (lambda: S.fit_psd(np.ones(16), n=0), "n must be"),
    (lambda: S.fit_psd(np.ones((4, 4, 3)), n=10), "one channel at a time"),
    (lambda: S.fit_psd(np.ones(16), n=10, frange=(0.4, 0.5)), "too few"),
    (lambda: S.fit_psd(np.r_[np.nan, np.ones(15)], n=10), "finite"),
    (lambda: S.fit_psd(np.zeros(16), n=10), "zero on every"),
    (lambda: S.fit_psd(S.model_psd("ar1", S.frequency_radius((64,)), sigma2=1, rho=0.5),
                       "ar1", n=10, floor=True), "floor runs to the edge"),
    (lambda: S.fit_psd(S.photo_psd(32), n=1949, frange=(1e-9, 0.5)), "f0 runs to the edge"),
    (lambda: S.model_psd("ar1", [0.1], sigma2=1.0), "takes parameters"),
    (lambda: S.model_psd("ar1", [0.1], sigma2=1.0, rho=1.0), r"rho must be a number in \(-1"),
    (lambda: S.model_psd("powerlaw", [0.1], A=-1.0, f0=0.1, alpha=2), "A must be"),
    (lambda: S.model_psd("lorentzian", [0.1], A=1.0, fc=0.1, floor=-1), "floor must be"),
    (lambda: S.estimate_psd(np.ones((3, 4)) * 1j), "real numbers"),
    (lambda: S.estimate_psd([["a", "b"], ["c", "d"]]), "real numbers"),
    (lambda: S.welch_psd(np.zeros(100), 16, overlap="half"), "overlap"),
    (lambda: S.fit_psd(np.ones(16), n="many"), "n must be"),
    (lambda: S.photo_patches(1), "size"),
])
def test_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
