"""Exact non-Gaussian data models: their posterior mean is the optimal denoiser, in closed form.

symspec's spectra are exact when the data are Gaussian.  The two models here are not, yet
their MMSE denoiser ``E[x0 | x_t]`` is known exactly, so a real sampler driven by it shows
what a schedule does to non-Gaussian data with no network error in the way:

- :class:`GaussianMixture`: ``sum_k w_k N(mu_k, Sigma_k)``, full covariances; fitted to
  samples with scikit-learn (:meth:`GaussianMixture.fit`).  ``K = 1`` is the Gaussian model
  of the rest of symspec: its posterior mean is the Wiener filter.
- :class:`Empirical`: the samples themselves, each with weight ``1 / n`` (the denoiser that
  memorises its training set).

Noise follows the variance-preserving convention ``x_t = a x0 + s eps`` with
``a = sqrt(alpha_bar)``, ``s = sqrt(1 - alpha_bar)``.  For a component ``N(mu, Sigma)``
with ``Sigma = U diag(lam) U^T``, ``x_t`` is ``N(a mu, a^2 Sigma + s^2 I)`` and

``E[x0 | x_t, k] = mu + U diag(a lam / (a^2 lam + s^2)) U^T (x_t - a mu)``;

the mixture weighs these by the responsibilities ``P(k | x_t)``, computed in float64 with a
running log-sum-exp over components (no overflow for any noise level) on chunks of rows,
so memory stays ``O(chunk * d)`` whatever ``n`` and ``K``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["GaussianMixture", "Empirical", "ModelSpectrum"]

_CHUNK = 4096  # rows per block of the posterior computations


@dataclass(frozen=True)
class ModelSpectrum:
    """The PCA view of a model: ``cov = basis @ diag(eigenvalues) @ basis.T``.

    Attributes
    ----------
    eigenvalues : ndarray
        Per-mode variances, descending: a 1-D PSD for :func:`symspec.spectral_response`.
    basis : ndarray
        ``(d, d)``, orthonormal eigenvectors in its columns.
    mean : ndarray
        ``(d,)``, the model's mean.
    mean_coords : ndarray
        The mean in the PCA basis, ``basis.T @ mean`` (the ``mean`` argument of
        :func:`symspec.spectral_response`).
    """

    eigenvalues: np.ndarray
    basis: np.ndarray
    mean: np.ndarray
    mean_coords: np.ndarray


def _real(value, name: str, ndim: int | None = None) -> np.ndarray:
    """``value`` as a finite real float64 array, or a ValueError naming ``name``."""
    a = np.asarray(value)
    if np.iscomplexobj(a):
        raise ValueError(f"{name} must be real, got a complex array")
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ValueError(f"{name} must be a numeric array, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {a.shape}")
    bad = ~np.isfinite(a)
    if bad.any():
        where = np.argwhere(bad)[0]
        what = "NaN" if np.isnan(a[tuple(where)]) else "inf"
        raise ValueError(f"{name} contains {what} (first at index {tuple(where.tolist())})")
    return a


def _samples(samples, name: str = "samples") -> np.ndarray:
    """``(n, ...)`` samples flattened to ``(n, d)`` float64."""
    x = _real(samples, name)
    if x.ndim < 2:
        raise ValueError(f"{name} must have shape (n, d) or (n, ...) with samples first, got "
                         f"shape {x.shape}")
    x = x.reshape(len(x), -1)
    if len(x) == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {x.shape})")
    return x


def _alpha_bar(alpha_bar) -> float:
    try:
        ab = float(alpha_bar)
    except (TypeError, ValueError):
        raise ValueError(f"alpha_bar must be a number in [0, 1], got {alpha_bar!r}") from None
    if not 0.0 <= ab <= 1.0:
        raise ValueError(f"alpha_bar must be in [0, 1], got {alpha_bar!r}")
    return ab


def _points(x, d: int) -> np.ndarray:
    """Points to evaluate at: ``(n, d)`` or one ``(d,)`` point (made ``(1, d)``)."""
    a = _real(x, "x")
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] != d:
        raise ValueError(f"x must have shape (n, {d}) (or ({d},)) for this model, got shape "
                         f"{np.shape(x)}")
    return a


def _seed(seed) -> int:
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def _count(n, name: str = "n") -> int:
    if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{name} must be a positive int, got {n!r}")
    return int(n)


class _LogSumExp:
    """A running ``log sum_k exp(l_k)`` and ``sum_k exp(l_k) v_k`` over terms added one by one."""

    def __init__(self):
        self.top = self.total = self.acc = None

    def add(self, logit: np.ndarray, value: np.ndarray | None = None) -> None:
        if self.top is None:
            self.top, self.total = logit.copy(), np.ones_like(logit)
            self.acc = None if value is None else value.copy()
            return
        top = np.maximum(self.top, logit)
        old, new = np.exp(self.top - top), np.exp(logit - top)
        self.total = self.total * old + new
        if value is not None:
            self.acc = self.acc * old[:, None] + value * new[:, None]
        self.top = top

    def log(self) -> np.ndarray:
        return self.top + np.log(self.total)

    def mean(self) -> np.ndarray:
        return self.acc / self.total[:, None]


class GaussianMixture:
    """A Gaussian mixture ``sum_k w_k N(mu_k, Sigma_k)`` with its exact posterior mean.

    Parameters
    ----------
    weights : array_like
        ``(K,)``, positive, summing to 1 (to within ``1e-8``; then renormalised).
    means : array_like
        ``(K, d)``.
    covariances : array_like
        ``(K, d, d)``, symmetric positive definite.
    reg_covar : float
        Added to the diagonal of every covariance.  The default, 0, refuses a covariance
        that is singular (smallest eigenvalue ``<= 1e-12`` times its largest) with the
        value to pass; the amount added is kept in :attr:`reg_covar`.

    Examples
    --------
    >>> gm = GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[[0.1]], [[0.1]]])
    >>> gm.posterior_mean([[0.0], [3.0]], alpha_bar=1.0).ravel().tolist()  # no noise: x
    [0.0, 3.0]
    >>> float(gm.posterior_mean([[0.0]], alpha_bar=0.0)[0, 0])  # pure noise: the mean
    0.0
    >>> gm.sample(4, seed=0).shape, gm.component([[-1.2], [0.9]]).tolist()
    ((4, 1), [0, 1])
    """

    def __init__(self, weights, means, covariances, *, reg_covar: float = 0.0):
        w = _real(weights, "weights", 1)
        mu = _real(means, "means")
        if mu.ndim != 2:
            raise ValueError(f"means must have shape (K, d), got shape {mu.shape}")
        cov = _real(covariances, "covariances")
        K, d = mu.shape
        if len(w) != K:
            raise ValueError(f"weights has {len(w)} entries but means has {K} rows (K): they "
                             "must match")
        if cov.shape != (K, d, d):
            raise ValueError(f"covariances must have shape (K, d, d) = {(K, d, d)} to match "
                             f"means {mu.shape}, got shape {cov.shape}")
        if K == 0 or d == 0:
            raise ValueError(f"means must have K >= 1 rows and d >= 1 columns, got {mu.shape}")
        if (w <= 0).any():
            raise ValueError(f"weights must be positive, got min {w.min()!r}")
        if abs(w.sum() - 1.0) > 1e-8:
            raise ValueError(f"weights must sum to 1, got sum {w.sum()!r}")
        if not (isinstance(reg_covar, int | float) and math.isfinite(reg_covar)
                and reg_covar >= 0):
            raise ValueError(f"reg_covar must be a finite number >= 0, got {reg_covar!r}")
        asym = np.abs(cov - cov.transpose(0, 2, 1)).max(axis=(1, 2))
        scale = np.abs(cov).max(axis=(1, 2))
        k = int(np.argmax(asym > 1e-10 * np.maximum(scale, 1e-300)))
        if asym[k] > 1e-10 * max(scale[k], 1e-300):
            raise ValueError(f"covariances[{k}] is not symmetric (largest |C - C^T| = "
                             f"{asym[k]:.3g})")
        cov = 0.5 * (cov + cov.transpose(0, 2, 1)) + reg_covar * np.eye(d)
        lam, U = np.linalg.eigh(cov)
        for k in range(K):
            top = max(float(lam[k, -1]), 0.0)
            if top <= 0 or lam[k, 0] <= 1e-12 * top:
                need = max(1e-12 * top - float(lam[k, 0]), 0.0) + 1e-9 * max(top, 1.0)
                raise ValueError(
                    f"covariances[{k}] is singular or not positive definite (eigenvalues from "
                    f"{lam[k, 0]:.3g} to {lam[k, -1]:.3g}); pass reg_covar (e.g. "
                    f"{need:.1g}) to add it to every diagonal, or fit with a larger reg_covar")
        self.weights = w / w.sum()
        self.means = mu
        self.covariances = cov
        self.reg_covar = float(reg_covar)
        #: whether scikit-learn's EM converged (``fit``); ``None`` for a given mixture
        self.converged: bool | None = None
        self._lam, self._U = lam, U
        self._mu_rot = np.einsum("kd,kde->ke", mu, U)  # U_k^T mu_k
        self._logw = np.log(self.weights)

    # -- construction ------------------------------------------------------------------
    @classmethod
    def fit(cls, samples, n_components: int, *, seed: int = 0, reg_covar: float = 1e-6,
            max_iter: int = 200) -> GaussianMixture:
        """Fit ``n_components`` full-covariance components to ``samples`` (scikit-learn EM).

        ``samples`` is ``(n, d)`` or ``(n, ...)`` (flattened); ``reg_covar`` is added to every
        covariance's diagonal by scikit-learn (it keeps a component on a few samples from
        being singular) and is recorded in :attr:`reg_covar`; k-means initialisation,
        ``random_state=seed``.

        >>> x = np.random.default_rng(0).normal(size=(500, 2))
        >>> x[:250, 0] += 3; x[250:, 0] -= 3
        >>> gm = GaussianMixture.fit(x, 2)
        >>> sorted(np.round(gm.means[:, 0]).tolist()), gm.reg_covar
        ([-3.0, 3.0], 1e-06)
        """
        from sklearn.mixture import GaussianMixture as _SkGM

        x = _samples(samples)
        if not isinstance(n_components, int | np.integer) or isinstance(n_components, bool) \
                or n_components < 1:
            raise ValueError(f"n_components must be a positive int, got {n_components!r}")
        if n_components > len(x):
            raise ValueError(f"n_components = {n_components} exceeds the number of samples "
                             f"({len(x)}): each component needs at least one sample")
        if not (isinstance(reg_covar, int | float) and math.isfinite(reg_covar)
                and reg_covar > 0):
            raise ValueError(f"reg_covar must be a finite number > 0 for a fit, got "
                             f"{reg_covar!r}")
        sk = _SkGM(int(n_components), covariance_type="full", reg_covar=float(reg_covar),
                   random_state=_seed(seed), max_iter=max_iter)
        sk.fit(x)
        gm = cls(sk.weights_ / sk.weights_.sum(), sk.means_, sk.covariances_)
        gm.reg_covar = float(reg_covar)  # already inside the covariances (scikit-learn)
        gm.converged = bool(sk.converged_)
        return gm

    # -- shape ---------------------------------------------------------------------------
    @property
    def n_components(self) -> int:
        """Number of components ``K``."""
        return len(self.weights)

    @property
    def dim(self) -> int:
        """Dimension ``d`` of one sample."""
        return self.means.shape[1]

    def __repr__(self) -> str:
        return f"GaussianMixture(K={self.n_components}, d={self.dim})"

    # -- the posterior -------------------------------------------------------------------
    def _blocks(self, x: np.ndarray, ab: float, want_mean: bool):
        """Per chunk of rows: the running log-sum-exp over components."""
        a, s2 = math.sqrt(ab), 1.0 - ab
        d = self.dim
        var = ab * self._lam + s2                       # (K, d): eigenvalues of a^2 S + s^2 I
        gain = math.sqrt(ab) * self._lam / var           # (K, d): the per-mode Wiener gain
        const = self._logw - 0.5 * (np.log(var).sum(axis=1) + d * math.log(2 * math.pi))
        for lo in range(0, len(x), _CHUNK):
            xb = x[lo:lo + _CHUNK]
            run = _LogSumExp()
            for k in range(self.n_components):
                y = xb @ self._U[k] - a * self._mu_rot[k]    # x_t - a mu_k, in U_k's basis
                logit = const[k] - 0.5 * np.einsum("nd,nd->n", y, y / var[k])
                if want_mean:
                    run.add(logit, self.means[k] + (y * gain[k]) @ self._U[k].T)
                else:
                    run.add(logit)
            yield lo, run

    def posterior_mean(self, x, alpha_bar) -> np.ndarray:
        """The exact ``E[x0 | x_t = x]`` at noise level ``alpha_bar``, shape ``(n, d)``.

        ``x`` is ``(n, d)`` (or one ``(d,)`` point), in float64.  At ``alpha_bar = 1`` the
        answer is ``x`` itself.

        >>> gm = GaussianMixture([1.0], [[1.0]], [[[4.0]]])
        >>> a = 0.5 ** 0.5  # the Wiener filter: mu + a lam / (a^2 lam + s^2) (x - a mu)
        >>> bool(np.isclose(gm.posterior_mean([3.0], 0.5)[0, 0], 1 + a * 4 / 2.5 * (3 - a)))
        True
        """
        x, ab = _points(x, self.dim), _alpha_bar(alpha_bar)
        if ab == 1.0:
            return x.copy()
        out = np.empty_like(x)
        for lo, run in self._blocks(x, ab, True):
            out[lo:lo + len(run.top)] = run.mean()
        return out

    def log_density(self, x, alpha_bar=1.0) -> np.ndarray:
        """``log p_t(x)``, the log-density of ``x_t`` at ``alpha_bar`` (1: the data), ``(n,)``.

        >>> gm = GaussianMixture([1.0], [[0.0]], [[[1.0]]])
        >>> round(float(gm.log_density([0.0])[0]), 6)  # -log(2 pi) / 2
        -0.918939
        """
        x, ab = _points(x, self.dim), _alpha_bar(alpha_bar)
        out = np.empty(len(x))
        for lo, run in self._blocks(x, ab, False):
            out[lo:lo + len(run.top)] = run.log()
        return out

    def score(self, x, alpha_bar) -> np.ndarray:
        """``grad log p_t(x) = (sqrt(alpha_bar) E[x0 | x] - x) / (1 - alpha_bar)`` (Tweedie).

        >>> gm = GaussianMixture([1.0], [[0.0]], [[[1.0]]])
        >>> gm.score([[2.0]], 0.3).round(12).tolist()  # N(0, 1) at every level: -x
        [[-2.0]]
        """
        ab = _alpha_bar(alpha_bar)
        if ab == 1.0:
            raise ValueError("alpha_bar must be < 1 for the score of the noisy marginal")
        x = _points(x, self.dim)
        return (math.sqrt(ab) * self.posterior_mean(x, ab) - x) / (1.0 - ab)

    def responsibilities(self, x, alpha_bar=1.0) -> np.ndarray:
        """``P(k | x_t = x)``, shape ``(n, K)`` (rows sum to 1).

        >>> gm = GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[[1.0]], [[1.0]]])
        >>> gm.responsibilities([[0.0]]).tolist()
        [[0.5, 0.5]]
        """
        x, ab = _points(x, self.dim), _alpha_bar(alpha_bar)
        a, s2 = math.sqrt(ab), 1.0 - ab
        var = ab * self._lam + s2
        const = self._logw - 0.5 * np.log(var).sum(axis=1)
        out = np.empty((len(x), self.n_components))
        for lo in range(0, len(x), _CHUNK):
            xb = x[lo:lo + _CHUNK]
            L = np.empty((len(xb), self.n_components))
            for k in range(self.n_components):
                y = xb @ self._U[k] - a * self._mu_rot[k]
                L[:, k] = const[k] - 0.5 * np.einsum("nd,nd->n", y, y / var[k])
            L -= L.max(axis=1, keepdims=True)
            e = np.exp(L)
            out[lo:lo + len(xb)] = e / e.sum(axis=1, keepdims=True)
        return out

    def component(self, x0) -> np.ndarray:
        """The most probable component of each clean sample (``argmax_k P(k | x0)``), ``(n,)``.

        >>> GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[[1.0]], [[1.0]]]).component(
        ...     [[-0.3], [0.2]]).tolist()
        [0, 1]
        """
        return np.argmax(self.responsibilities(x0, 1.0), axis=1)

    # -- sampling and moments ------------------------------------------------------------
    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` independent samples ``(n, d)``, rows in random order (``seed`` fixes them).

        >>> x = GaussianMixture([0.25, 0.75], [[-10.0], [10.0]], [[[1.0]], [[1.0]]]).sample(
        ...     4000, seed=1)
        >>> round(float((x > 0).mean()), 2)
        0.75
        """
        n = _count(n)
        rng = np.random.default_rng(_seed(seed))
        counts = rng.multinomial(n, self.weights)
        parts = []
        for k, c in enumerate(counts):
            z = rng.standard_normal((c, self.dim))
            parts.append(self.means[k] + (z * np.sqrt(np.maximum(self._lam[k], 0.0)))
                         @ self._U[k].T)
        x = np.concatenate(parts)
        return x[rng.permutation(n)]

    def mean(self) -> np.ndarray:
        """The mixture mean ``sum_k w_k mu_k``, ``(d,)``."""
        return self.weights @ self.means

    def covariance(self) -> np.ndarray:
        """The mixture covariance ``sum_k w_k (Sigma_k + mu_k mu_k^T) - mu mu^T``, ``(d, d)``.

        >>> GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[[1.0]], [[1.0]]]).covariance()
        array([[2.]])
        """
        m = self.mean()
        dev = self.means - m
        return np.einsum("k,kde->de", self.weights, self.covariances) + \
            np.einsum("k,kd,ke->de", self.weights, dev, dev)

    def spectrum(self) -> ModelSpectrum:
        """The PCA view: eigenvalues of :meth:`covariance` (descending), basis and mean.

        >>> gm = GaussianMixture([1.0], [[0.0, 0.0]], [[[1.0, 0.0], [0.0, 4.0]]])
        >>> gm.spectrum().eigenvalues.tolist()
        [4.0, 1.0]
        """
        return _spectrum(self.covariance(), self.mean())


def _spectrum(cov: np.ndarray, mean: np.ndarray) -> ModelSpectrum:
    lam, U = np.linalg.eigh(0.5 * (cov + cov.T))
    lam, U = np.maximum(lam[::-1], 0.0), U[:, ::-1]
    U = U * np.where(U[np.argmax(np.abs(U), axis=0), np.arange(len(lam))] < 0, -1.0, 1.0)
    return ModelSpectrum(lam, U, mean.copy(), U.T @ mean)


class Empirical:
    """The empirical distribution of ``samples`` (weight ``1 / n`` each): the memorising model.

    Its exact posterior mean is a softmax-weighted average of the samples,
    ``E[x0 | x_t] = sum_i softmax_i(-|x_t - a x_i|^2 / (2 s^2)) x_i``; at a low noise level
    it returns the nearest training sample, so a sampler driven by it reproduces its
    training set.  Same interface as :class:`GaussianMixture`.

    Examples
    --------
    >>> e = Empirical([[0.0], [10.0]])
    >>> e.posterior_mean([[9.0]], alpha_bar=0.99).round(6).tolist()
    [[10.0]]
    >>> e.component([[1.0], [7.0]]).tolist()
    [0, 1]
    """

    def __init__(self, samples):
        self.samples = _samples(samples)
        self._sq = np.einsum("nd,nd->n", self.samples, self.samples)

    @property
    def n_components(self) -> int:
        """Number of samples (each is one component)."""
        return len(self.samples)

    @property
    def dim(self) -> int:
        """Dimension ``d`` of one sample."""
        return self.samples.shape[1]

    @property
    def weights(self) -> np.ndarray:
        """``1 / n`` for every sample."""
        return np.full(len(self.samples), 1.0 / len(self.samples))

    def __repr__(self) -> str:
        return f"Empirical(n={len(self.samples)}, d={self.dim})"

    def _blocks(self, x: np.ndarray, ab: float, want_mean: bool):
        a, s2 = math.sqrt(ab), 1.0 - ab
        n = len(self.samples)
        const = -math.log(n) - 0.5 * self.dim * math.log(2 * math.pi * s2)
        step = max(1, min(n, 2_000_000 // _CHUNK))  # training samples per block
        rows = max(1, min(_CHUNK, 2_000_000 // step))
        for lo in range(0, len(x), rows):
            xb = x[lo:lo + rows]
            xsq = np.einsum("nd,nd->n", xb, xb)[:, None]
            run = _LogSumExp()
            for j in range(0, n, step):
                ref = self.samples[j:j + step]
                d2 = xsq - 2 * a * (xb @ ref.T) + ab * self._sq[j:j + step]
                logit = const - 0.5 * np.maximum(d2, 0.0) / s2
                top = logit.max(axis=1)
                e = np.exp(logit - top[:, None])
                lse = top + np.log(e.sum(axis=1))
                run.add(lse, (e @ ref) / e.sum(axis=1)[:, None] if want_mean else None)
            yield lo, run

    def posterior_mean(self, x, alpha_bar) -> np.ndarray:
        """The exact ``E[x0 | x_t = x]`` for the empirical distribution, ``(n, d)``.

        >>> float(Empirical([[-1.0], [1.0]]).posterior_mean([[0.0]], 0.5)[0, 0])
        0.0
        """
        x, ab = _points(x, self.dim), _alpha_bar(alpha_bar)
        if ab == 1.0:
            return x.copy()
        out = np.empty_like(x)
        for lo, run in self._blocks(x, ab, True):
            out[lo:lo + len(run.top)] = run.mean()
        return out

    def log_density(self, x, alpha_bar) -> np.ndarray:
        """``log p_t(x)`` of the noised empirical distribution (``alpha_bar < 1``), ``(n,)``.

        >>> round(float(Empirical([[0.0]]).log_density([[0.0]], 0.0)[0]), 6)
        -0.918939
        """
        x, ab = _points(x, self.dim), _alpha_bar(alpha_bar)
        if ab == 1.0:
            raise ValueError("alpha_bar must be < 1: the empirical distribution has no density")
        out = np.empty(len(x))
        for lo, run in self._blocks(x, ab, False):
            out[lo:lo + len(run.top)] = run.log()
        return out

    def score(self, x, alpha_bar) -> np.ndarray:
        """``grad log p_t(x)`` by Tweedie's formula (``alpha_bar < 1``), ``(n, d)``."""
        ab = _alpha_bar(alpha_bar)
        if ab == 1.0:
            raise ValueError("alpha_bar must be < 1 for the score of the noisy marginal")
        x = _points(x, self.dim)
        return (math.sqrt(ab) * self.posterior_mean(x, ab) - x) / (1.0 - ab)

    def component(self, x0) -> np.ndarray:
        """Index of the nearest training sample of each row of ``x0``, ``(n,)``."""
        x = _points(x0, self.dim)
        out = np.empty(len(x), dtype=np.int64)
        rows = max(1, 2_000_000 // len(self.samples))
        for lo in range(0, len(x), rows):
            xb = x[lo:lo + rows]
            out[lo:lo + len(xb)] = np.argmin(self._sq[None] - 2 * xb @ self.samples.T, axis=1)
        return out

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` rows drawn with replacement, in random order.

        >>> Empirical([[1.0], [2.0]]).sample(3, seed=0).shape
        (3, 1)
        """
        rng = np.random.default_rng(_seed(seed))
        return self.samples[rng.integers(len(self.samples), size=_count(n))].copy()

    def mean(self) -> np.ndarray:
        """The sample mean, ``(d,)``."""
        return self.samples.mean(axis=0)

    def covariance(self) -> np.ndarray:
        """The covariance of the empirical distribution (divided by ``n``), ``(d, d)``."""
        dev = self.samples - self.mean()
        return dev.T @ dev / len(dev)

    def spectrum(self) -> ModelSpectrum:
        """The PCA view: eigenvalues of :meth:`covariance` (descending), basis and mean.

        >>> Empirical([[0.0, 0.0], [2.0, 0.0]]).spectrum().eigenvalues.tolist()
        [1.0, 0.0]
        """
        return _spectrum(self.covariance(), self.mean())
