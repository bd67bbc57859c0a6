"""The numeric layer against a 50-digit mpmath composition of the derived step maps.

The reference lambdifies the raw SymPy matrices ``A``, ``Q``, ``C`` of
:func:`symspec.derive` with ``modules="mpmath"`` and runs the recursion
``S <- A S A^T + Q``, ``T <- A T``, ``mu <- A mu + C m`` at ``mp.dps = 50``: independent
of the compiled rational evaluators, the Horner forms, the renormalisation and float64.
"""

import functools
import math

import mpmath
import numpy as np
import pytest
import sympy as sp

import symspec
from symspec import DDIM, DDPM, Schedule, derive, sampler, spectral_response
from symspec.ops import sqrt
from symspec.symbolic.engine import variant
from symspec.symbolic.symbols import lam

RTOL = 1e-10
PSD = np.geomspace(1e-12, 1e12, 9)
MEAN = np.linspace(-3.0, 2.0, 9) + 0.3


@sampler(state=2, history=0)
def two_m(c, x, d):
    """A 2M-style multistep test sampler: extrapolates the clean estimate, adds noise."""
    x0 = c.x0(x)
    est = x0 if c.first else (3 * x0 - d) / 2
    ab_p = c.p.alpha_bar
    x_next = sqrt(ab_p) * est + sqrt(1 - ab_p) * (4 * c.eps(x) + 3 * c.noise()) / 5
    return x_next, x0


@sampler()
def half(c, x):
    return x / 2


@sampler()
def twice_denoised(c, x):
    """Entries of degree 2 in lam with a negative lower coefficient: the gain
    W**2 - 1/2, W = sqrt(ab) lam / D, has the numerator (ab**2 / 2) lam**2 - ... < 0."""
    return c.x0(c.x0(x)) - x / 2


@sampler(state=2, history=0)
def carried_noise(c, x, w_prev):
    """DDIM(1) whose noise mixes the fresh draw with the previous step's, which the state
    carries: the noise covariance Q has off-diagonal entries, and the noise in x is
    correlated from step to step."""
    ab_t, ab_p = c.t.alpha_bar, c.p.alpha_bar
    sig = sqrt((1 - ab_p) / (1 - ab_t) * (1 - ab_t / ab_p))
    w = c.noise()
    x_next = (sqrt(ab_p) * c.x0(x) + sqrt(1 - ab_p - sig**2) * c.eps(x)
              + sig * (3 * w + 4 * w_prev) / 5)
    return x_next, w


@functools.cache
def _mp_map(smp, key, prediction_type):
    m = derive(smp, key, prediction_type)
    k = smp.state
    entries = list(m.A) + list(m.Q) + list(m.C)
    f = sp.lambdify((lam, *m.levels), entries, modules="mpmath")
    return lambda L, *lv: (lambda e: (
        [e[i * k:(i + 1) * k] for i in range(k)],
        [e[k * k + i * k:k * k + (i + 1) * k] for i in range(k)],
        e[2 * k * k:]))(f(L, *lv))


def mp_response(smp, sched, psd, mean, prediction_type="epsilon"):
    """Per mode: transfer, noise PSD, output PSD, output mean and the trajectory, at 50 digits."""
    mpmath.mp.dps = 50
    assert smp.history == 0, "the reference passes (start, end) levels only"
    k, n = smp.state, sched.steps
    out = []
    for L, m in zip(psd, mean, strict=True):
        L, m = mpmath.mpf(float(L)), mpmath.mpf(float(m))
        T = [mpmath.mpf(1)] + [mpmath.mpf(0)] * (k - 1)
        S = [[mpmath.mpf(0)] * k for _ in range(k)]
        mu = [mpmath.mpf(0)] * k
        traj = [(sched.init_var, 1)]
        for i in range(n):
            A, Q, C = _mp_map(smp, variant(smp, i, n), prediction_type)(
                L, mpmath.mpf(float(sched.start[i])), mpmath.mpf(float(sched.end[i])))
            T = [sum(A[r][j] * T[j] for j in range(k)) for r in range(k)]
            AS = [[sum(A[r][a] * S[a][j] for a in range(k)) for j in range(k)] for r in range(k)]
            S = [[sum(AS[r][b] * A[j][b] for b in range(k)) + Q[r][j] for j in range(k)]
                 for r in range(k)]
            mu = [sum(A[r][j] * mu[j] for j in range(k)) + C[r] * m for r in range(k)]
            traj.append((T[0] ** 2 * sched.init_var + S[0][0], T[0]))
        out.append({"transfer": T[0], "noise_psd": S[0][0],
                    "output_psd": T[0] ** 2 * sched.init_var + S[0][0], "output_mean": mu[0],
                    "trajectory": traj})
    return out


def rel_err(got, want) -> float:
    """Relative error of a float64 value against a 50-digit one (exact zeros must match)."""
    if want == 0:
        return 0.0 if got == 0 else math.inf
    return float(abs((mpmath.mpf(float(got)) - want) / want))


def assert_matches_mpmath(smp, sched, psd, mean, prediction_type="epsilon"):
    r = spectral_response(smp, sched, psd, mean=mean, prediction_type=prediction_type)
    ref = mp_response(smp, sched, psd, mean, prediction_type)
    worst = 0.0
    for name in ("transfer", "noise_psd", "output_psd", "output_mean"):
        for got, want in zip(getattr(r, name), ref, strict=True):
            err = rel_err(got, want[name])
            assert err <= RTOL, (name, float(want[name]), float(got), err)
            worst = max(worst, err)
    return worst


def geometric(n, lo=1e-12):
    return Schedule.from_alpha_bar(np.geomspace(lo, 1.0, n + 1))


SAMPLERS = [DDPM, DDPM(variance="fixed_large", last_noise=True), DDIM, DDIM(eta=0.5),
            DDIM(eta=1.0)]
IDS = ["ddpm", "ddpm-large-lastnoise", "ddim", "ddim-0.5", "ddim-1"]


@pytest.mark.parametrize("smp", SAMPLERS, ids=IDS)
@pytest.mark.parametrize("grid", ["geometric", "linear", "unchained"])
def test_short_runs_match_mpmath(smp, grid, worst):
    if grid == "geometric":
        sched = geometric(12)
    elif grid == "linear":
        sched = Schedule.from_alpha_bar(np.linspace(1e-12, 1.0, 13))
    else:  # diffusers' DDIM on a linspace grid: steps need not start where the last ended
        start = np.array([1e-12, 1e-6, 0.02, 0.3, 0.31, 0.9])
        end = np.array([1e-5, 0.05, 0.2, 0.5, 0.95, 0.97])
        sched = Schedule(start, end, "vp", 1.7)
    worst(f"vs mpmath (50 digits): {grid} grids", assert_matches_mpmath(smp, sched, PSD, MEAN))


@pytest.mark.parametrize("prediction_type", ["sample", "v_prediction"])
def test_prediction_types_match_mpmath(prediction_type, worst):
    err = assert_matches_mpmath(DDIM(eta=0.5), geometric(8), PSD, MEAN, prediction_type)
    worst("vs mpmath (50 digits): other prediction types", err)


@pytest.mark.parametrize("smp", [DDPM, DDIM(eta=0.5)], ids=["ddpm", "ddim-0.5"])
def test_ten_thousand_steps_match_mpmath(smp, worst):
    idx = [0, 4, 8]  # 1e-12, 1, 1e12: few modes keep the 50-digit reference fast
    err = assert_matches_mpmath(smp, geometric(10_000), PSD[idx], MEAN[idx])
    worst("vs mpmath (50 digits): 10^4 steps", err)


def test_general_state_path_matches_mpmath(worst):
    sched = Schedule.from_alpha_bar(np.geomspace(1e-6, 1.0, 21))
    worst("vs mpmath (50 digits): 2-state sampler", assert_matches_mpmath(two_m, sched, PSD, MEAN))


def test_trajectory_matches_mpmath_row_by_row():
    sched = geometric(7)
    r = spectral_response(DDIM(eta=0.5), sched, PSD, trajectory=True)
    ref = mp_response(DDIM(eta=0.5), sched, PSD, np.zeros_like(PSD))
    for k, mode in enumerate(ref):
        for row, (var, tr) in enumerate(mode["trajectory"]):
            assert rel_err(r.trajectory["variance"][row, k], var) <= RTOL
            assert rel_err(r.trajectory["transfer"][row, k], tr) <= RTOL


def test_trajectory_shapes_and_end_rows():
    psd = np.geomspace(1e-3, 1e3, 12).reshape(3, 4)
    sched = geometric(9).to_space("vp")
    r = spectral_response(DDPM, sched, psd, trajectory=True)
    assert set(r.trajectory) == {"variance", "transfer"}
    for arr in r.trajectory.values():
        assert arr.shape == (10, 3, 4)
    assert np.all(r.trajectory["variance"][0] == sched.init_var)
    assert np.all(r.trajectory["transfer"][0] == 1.0)
    assert np.array_equal(r.trajectory["variance"][-1], r.output_psd)
    assert np.array_equal(r.trajectory["transfer"][-1], r.transfer)
    assert spectral_response(DDPM, sched, psd).trajectory is None


@pytest.mark.parametrize("smp", [DDPM, DDIM, DDIM(eta=0.5)], ids=["ddpm", "ddim", "ddim-0.5"])
def test_hundred_thousand_steps_stay_finite(smp):
    psd = np.array([0.0, 1e-12, 1.0, 1e12])
    r = spectral_response(smp, geometric(100_000), psd, mean=1.0)
    for name in ("transfer", "log_transfer", "noise_psd", "output_psd", "output_mean"):
        assert np.all(np.isfinite(getattr(r, name)[1:])), name
    assert r.transfer[0] == 0 and r.log_transfer[0] == -np.inf  # lam = 0: nothing passes
    assert np.all(r.output_psd[1:] > 0)


def test_ddpm_telescoped_transfer_numerically():
    """Book, ddpm chapter: DDPM transfer is the first step's Wiener gain, sqrt(ab_N) lam / D_N."""
    ab = np.geomspace(1e-12, 1.0, 501)
    r = spectral_response(DDPM, Schedule.from_alpha_bar(ab), PSD)
    want = np.sqrt(ab[0]) * PSD / (ab[0] * PSD + 1 - ab[0])
    np.testing.assert_allclose(r.transfer, want, rtol=1e-12)


def test_log_transfer_is_finite_where_the_transfer_underflows():
    n = 2000  # 0.5**2000 ~ 1e-602 underflows float64
    r = spectral_response(half, Schedule.from_alpha_bar(np.linspace(0.01, 1, n + 1)),
                          [1.0, 3.0])
    assert np.all(r.transfer == 0)
    np.testing.assert_allclose(r.log_transfer, n * math.log(0.5), rtol=1e-14)


def test_log_transfer_agrees_with_transfer():
    r = spectral_response(DDIM(eta=0.5), geometric(50), PSD)
    np.testing.assert_allclose(r.log_transfer, np.log(np.abs(r.transfer)), rtol=1e-13)


def test_growing_sampler_raises_value_error():
    @sampler()
    def grow(c, x):
        return 2 * x + c.noise()

    sched = Schedule.from_alpha_bar(np.linspace(0.01, 1, 2001))
    with pytest.raises(ValueError, match="'grow'.*not finite"):
        spectral_response(grow, sched, [1.0])
    with pytest.raises(ValueError, match="not finite"):
        spectral_response(grow, sched, [1.0], trajectory=True)


def test_overflowing_transfer_raises_value_error():
    @sampler()
    def double(c, x):
        return 2 * x  # 2**2000 overflows only when the renormalised transfer is assembled

    sched = Schedule.from_alpha_bar(np.linspace(0.01, 1, 2001))
    for trajectory in (False, True):
        with pytest.raises(ValueError, match="output spectrum is not finite"):
            spectral_response(double, sched, [1.0], trajectory=trajectory)


@pytest.mark.parametrize("bad", [
    [-1.0, 1.0], [np.nan], [1.0, np.inf], [], 2.0, np.ones((2, 2, 2, 2)), ["a"], [1j],
    {"a": 1}, [[1.0, 2.0], [3.0]], None, "abc",
], ids=["negative", "nan", "inf", "empty", "scalar", "4d", "string-list", "complex", "dict",
        "ragged", "none", "string"])
def test_bad_psd_is_a_value_error_naming_psd(bad):
    with pytest.raises(ValueError, match="psd"):
        spectral_response(DDPM, geometric(3), bad)


def test_bad_arguments():
    with pytest.raises(TypeError, match="sampler must be a symspec Sampler"):
        spectral_response("ddpm", geometric(3), [1.0])
    with pytest.raises(TypeError, match="schedule must be a symspec Schedule"):
        spectral_response(DDPM, [0.1, 1.0], [1.0])
    with pytest.raises(ValueError, match="mean must broadcast"):
        spectral_response(DDPM, geometric(3), np.ones((2, 3)), mean=np.ones(2))
    with pytest.raises(ValueError, match="mean must be finite"):
        spectral_response(DDPM, geometric(3), [1.0, 2.0], mean=[0.0, np.nan])
    with pytest.raises(ValueError, match="prediction_type"):
        spectral_response(DDPM, geometric(3), [1.0], prediction_type="score")


def test_mean_broadcasting():
    psd = np.geomspace(0.01, 100, 6).reshape(2, 3)
    sched = geometric(10, lo=1e-4)
    full = spectral_response(DDIM(eta=0.5), sched, psd, mean=np.full((2, 3), 0.7)).output_mean
    assert full.shape == (2, 3)
    for m in (0.7, [0.7], np.full((1, 3), 0.7), np.full((2, 1), 0.7)):
        r = spectral_response(DDIM(eta=0.5), sched, psd, mean=m)
        np.testing.assert_array_equal(r.output_mean, full)
    same = np.tile(psd[0], (2, 1))  # equal rows: the output mean is linear in the mean
    rows = spectral_response(DDIM(eta=0.5), sched, same, mean=[[1.0], [-2.0]]).output_mean
    np.testing.assert_allclose(rows[1], -2 * rows[0], rtol=1e-15)
    assert spectral_response(DDIM, sched, psd).output_mean is None


def test_output_mean_is_consistent():
    """With a chained grid to ab = 1: E[out] = m (1 - sqrt(ab_N) H) for any linear VP sampler
    whose steps keep the correct marginal mean (see test_engine); for DDPM, with the
    telescoped H, E[out] = m (1 - ab_N) / D_N."""
    sched = geometric(20, lo=1e-3)
    a = sched.start[0]
    ddpm = spectral_response(DDPM, sched, PSD, mean=MEAN).output_mean
    np.testing.assert_allclose(ddpm, MEAN * (1 - a) / (a * PSD + 1 - a), rtol=1e-12)
    for smp in (DDIM, DDIM(eta=0.5)):
        r = spectral_response(smp, sched, PSD, mean=MEAN)
        want = MEAN * (1 - math.sqrt(a) * r.transfer)  # cancels when sqrt(a) H ~ 1
        assert np.all(np.abs(r.output_mean - want) <= 1e-13 * np.abs(MEAN))


# -- user samplers that reach code paths the built-ins do not ------------------------------

@pytest.mark.parametrize("smp", [twice_denoised, carried_noise], ids=lambda s: s.name)
def test_user_samplers_match_mpmath(smp, worst):
    """twice_denoised: polynomials in lam of degree 2 with negative coefficients (Horner);
    carried_noise: off-diagonal noise covariance in a multistep state."""
    m = derive(smp)
    if smp is carried_noise:
        assert m.Q[0, 1] != 0
    else:
        num = sp.Poly(sp.numer(sp.together(m.gain)), lam)
        assert num.degree() >= 2 and any(sp.sign(cf.subs(m.levels[0], sp.Rational(1, 3))
                                                 .subs(m.levels[1], sp.Rational(1, 2))) < 0
                                         for cf in num.all_coeffs()[1:])
    sched = Schedule.from_alpha_bar(np.geomspace(1e-4, 1.0, 9))
    worst("vs mpmath (50 digits): user samplers", assert_matches_mpmath(smp, sched, PSD, MEAN))


def _mp_objective_levels(smp, start, end, psd, bar_noise, bar_transfer):
    """sum(bar_noise * S_00 + bar_transfer * T_0) at 50 digits (derived maps, no numeric
    layer), for a schedule given by its start and end levels."""
    sched = Schedule(np.array(start, dtype=float), np.array(end, dtype=float), "vp", 1.0)
    ref = mp_response(smp, sched, psd, np.zeros_like(psd))
    return sum(mpmath.mpf(float(bn)) * r["noise_psd"] + mpmath.mpf(float(bt)) * r["transfer"]
               for bn, bt, r in zip(bar_noise, bar_transfer, ref, strict=True))


@pytest.mark.parametrize("smp", [twice_denoised, carried_noise, two_m], ids=lambda s: s.name)
def test_vjp_matches_50_digit_central_differences(smp, worst):
    """core.vjp against central differences of the 50-digit composition of the derived maps,
    for every free start and end level of a non-chained schedule."""
    from symspec.numeric.core import vjp

    start = np.array([1e-3, 0.02, 0.15, 0.5])
    end = np.array([0.03, 0.2, 0.6, 0.97])
    psd = np.array([0.05, 1.0, 7.0])
    rng = np.random.default_rng(4)
    bn, bt = rng.normal(size=psd.size), rng.normal(size=psd.size)
    free = (np.ones(4, dtype=bool), np.ones(4, dtype=bool))
    gs, ge = vjp(smp, Schedule(start, end, "vp", 1.0), psd, bn, bt, free)
    dev = 0.0
    for which, g in ((0, gs), (1, ge)):
        for j in range(4):
            h = 1e-6 * (start, end)[which][j]
            lv = [start.copy(), end.copy()]
            lv[which][j] += h
            up = _mp_objective_levels(smp, *lv, psd, bn, bt)
            lv[which][j] -= 2 * h
            dn = _mp_objective_levels(smp, *lv, psd, bn, bt)
            h_exact = (mpmath.mpf(float((start, end)[which][j] + h))
                       - mpmath.mpf(float((start, end)[which][j] - h))) / 2
            fd = float((up - dn) / (2 * h_exact))  # truncation ~h**2: 1e-12 relative
            scale = max(np.abs(gs).max(), np.abs(ge).max())
            dev = max(dev, abs(g[j] - fd) / scale)
    worst("core.vjp vs 50-digit central differences (/ max|g|)", dev)
    assert dev < 1e-8


# -- scale: exact mode compression and chunking (issue 14) ------------------------------
@pytest.mark.parametrize("smp", [DDIM, DDPM, symspec.DPMPP(sde=True), symspec.UNIPC],
                         ids=["ddim", "ddpm", "sde-dpmpp", "unipc"])
def test_compression_and_chunking_are_exact(smp, monkeypatch):
    import symspec.numeric.response as R

    psd = symspec.spectra.power_law((24, 24))  # isotropic: about n^2/8 distinct values
    s = Schedule.from_alpha_bar(np.linspace(0.02, 1.0, 9))
    u, inv = R.compress(psd.ravel())
    assert inv is not None and u.size < psd.size / 4
    packed = spectral_response(smp, s, psd, trajectory=True)
    monkeypatch.setattr(R, "compress", lambda lam: (lam, None))  # every mode on its own
    monkeypatch.setattr(R, "CHUNK", 7)                            # in tiny blocks
    plain = spectral_response(smp, s, psd, trajectory=True)
    for a, b in [(packed.output_psd, plain.output_psd), (packed.transfer, plain.transfer),
                 (packed.noise_psd, plain.noise_psd), (packed.log_transfer, plain.log_transfer),
                 (packed.trajectory["variance"], plain.trajectory["variance"])]:
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)


def test_compressed_objective_and_gradient_equal_the_mode_by_mode_sums(monkeypatch):
    import symspec.design.optimise as O

    psd = symspec.spectra.power_law((16, 16))
    weights = np.random.default_rng(0).uniform(0, 2, psd.shape)
    s = Schedule.from_alpha_bar([0.01, 0.2, 0.7, 1.0])
    packed = [O.objective(DDPM, s, psd, d, weights=weights, gradient=True)
              for d in ("w2", "kl")]
    monkeypatch.setattr(O, "compress", lambda lam: (lam, None))
    plain = [O.objective(DDPM, s, psd, d, weights=weights, gradient=True)
             for d in ("w2", "kl")]
    for (j1, g1, v1), (j2, g2, v2) in zip(packed, plain, strict=True):
        assert j1 == pytest.approx(j2, rel=1e-12)
        np.testing.assert_allclose(g1, g2, rtol=1e-11)
        assert v1 == pytest.approx(v2, rel=1e-11)


def test_dask_psd_and_distributed_designs_equal_the_in_memory_results():
    # issue 14: beyond one machine on an existing engine (here a 2-worker LocalCluster)
    da = pytest.importorskip("dask.array", reason="dask is the optional 'dask' extra")
    distributed = pytest.importorskip("distributed", reason="the 'dask' extra")
    import dask

    from symspec.design import design_schedule, design_schedules

    psd = symspec.spectra.power_law((32, 32))
    s = Schedule.from_alpha_bar(np.linspace(0.01, 1.0, 9))
    smp = symspec.DPMPP(sde=True)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        lazy = spectral_response(smp, s, da.from_array(psd, chunks=(8, 32)))
        out, tr = dask.compute(lazy.output_psd, lazy.transfer)
        psds = [symspec.spectra.power_law((8, 8), a) for a in (1.0, 2.0, 3.0)]
        remote = design_schedules(DDIM, psds, 4, client=client)
    here = spectral_response(smp, s, psd)
    np.testing.assert_array_equal(out, here.output_psd)
    np.testing.assert_array_equal(tr, here.transfer)
    for p, r in zip(psds, remote, strict=True):  # batched per chunk: equal to rounding
        want = design_schedule(DDIM, p, 4).meta["objective"]
        assert r.meta["objective"] <= want * (1 + 1e-6)
    with pytest.raises(ValueError, match="mean and trajectory are not supported"):
        spectral_response(smp, s, da.from_array(psd), trajectory=True)
    with pytest.raises(TypeError, match="client must be a dask.distributed Client"):
        design_schedules(DDIM, psds, 4, client="localhost:8786")
