"""The built-in samplers: certified identities, a 50-digit reference, Monte Carlo runs of the
same definitions, option checks, non-linear user definitions, and the user-sampler example.

The cross-checks against the real diffusers schedulers are in ``test_interop_sigma.py``,
the convergence to the continuous-time references in ``test_continuous.py``.
"""

import functools

import mpmath
import numpy as np
import pytest
import sympy as sp

import symspec
from symspec import (
    DDIM,
    DDPM,
    DPMPP,
    EULER,
    EULER_ANCESTRAL,
    HEUN,
    LMS,
    SAMPLERS,
    UNIPC,
    VE_ANCESTRAL,
    VE_REVERSE_DIFFUSION,
    NonLinearSamplerError,
    Schedule,
    derive,
    sample,
    sampler,
    spectral_response,
)
from symspec.ops import sqrt
from symspec.symbolic.denoiser import Level
from symspec.symbolic.engine import variant
from symspec.symbolic.symbols import lam, level

#: every built-in, and the configurations whose code paths differ
CONFIGS = {
    "euler": EULER, "heun": HEUN, "euler_ancestral": EULER_ANCESTRAL,
    "ve_reverse_diffusion": VE_REVERSE_DIFFUSION, "ve_reverse_diffusion_last_noise":
    VE_REVERSE_DIFFUSION(last_noise=True), "ve_ancestral": VE_ANCESTRAL, "lms4": LMS,
    "lms2": LMS(order=2), "dpmpp_2m": DPMPP, "dpmpp_2m_heun": DPMPP(solver_type="heun"),
    "dpmpp_3m": DPMPP(solver_order=3), "dpmpp_3m_no_lower_final": DPMPP(
        solver_order=3, lower_order_final=False, euler_at_final=False),
    "sde_dpmpp_2m": DPMPP(sde=True), "sde_dpmpp_2m_heun": DPMPP(sde=True, solver_type="heun"),
    "unipc2": UNIPC, "unipc3": UNIPC(solver_order=3), "unipc3_bh1": UNIPC(
        solver_order=3, solver_type="bh1"), "unipc2_no_corrector_1": UNIPC(disable_corrector=(1,)),
}
#: second- and third-order steps cannot end at sigma = 0 (log-SNR = inf): diffusers gives NaN
POSITIVE_END = {"dpmpp_3m_no_lower_final"}
PSD = np.array([1e-3, 0.2, 1.0, 30.0])
MEAN = np.array([0.5, -1.0, 2.0, 0.25])


def schedule(n=7, name=None):
    """A geometric VE grid from 60 down to 0.05, then to 0 (0.02 for POSITIVE_END)."""
    return Schedule.from_sigmas(np.append(np.geomspace(60.0, 0.05, n),
                                          0.02 if name in POSITIVE_END else 0.0))


def stochastic(smp):
    return any(derive(smp, variant(smp, i, 7)).B.shape[1] for i in range(7))


def test_registry_and_lookup():
    assert set(SAMPLERS) == {"ddpm", "ddim", "euler", "heun", "euler_ancestral",
                             "ve_reverse_diffusion", "ve_ancestral", "lms", "dpmpp", "unipc"}
    assert symspec.get_sampler("dpmpp", solver_order=3).opts["solver_order"] == 3
    with pytest.raises(ValueError, match="unknown sampler 'dpm'.*ddim.*unipc"):
        symspec.get_sampler("dpm")
    with pytest.raises(TypeError, match="has no option 'order'.*solver_order"):
        DPMPP(order=2)


# -- 50 digits: the derived maps composed in mpmath, against the float64 numeric layer ----

def _levels(sched, smp, i):
    """The levels step ``i`` reads, taken from the schedule itself: its start and end, then
    the earlier starts, most recent first (a step before its history exists reads its own
    start there and ignores it)."""
    hist = [sched.start[i - k] if i >= k else sched.start[i] for k in range(1, smp.history + 1)]
    return [float(v) for v in (sched.start[i], sched.end[i], *hist)]


@functools.cache
def _mp_entries(smp, key):
    m = derive(smp, key)
    f = sp.lambdify((lam, *m.levels), list(m.A) + list(m.Q) + list(m.C), modules="mpmath")
    return f, smp.state


def mp_response(smp, sched, psd, mean):
    """Transfer, noise PSD and output mean per mode, by 50-digit composition of the maps."""
    mpmath.mp.dps = 50
    sched = sched.to_space(smp.space)
    out = []
    for L, m in zip(psd, mean, strict=True):
        k = smp.state
        T = mpmath.matrix(k, 1)
        T[0] = 1
        S, mu = mpmath.matrix(k, k), mpmath.matrix(k, 1)
        for i in range(sched.steps):
            f, _ = _mp_entries(smp, variant(smp, i, sched.steps))
            e = f(mpmath.mpf(L), *map(mpmath.mpf, _levels(sched, smp, i)))
            A = mpmath.matrix([e[r * k:(r + 1) * k] for r in range(k)])
            Q = mpmath.matrix([e[k * k + r * k:k * k + (r + 1) * k] for r in range(k)])
            C = mpmath.matrix(e[2 * k * k:])
            T, S, mu = A * T, A * S * A.T + Q, A * mu + C * mpmath.mpf(m)
        out.append((T[0], S[0, 0], mu[0]))
    return [np.array([float(v[j]) for v in out]) for j in range(3)]


@pytest.mark.parametrize("name", CONFIGS)
def test_numeric_layer_matches_50_digits(name, worst):
    smp = CONFIGS[name]
    sched = schedule(name=name)
    r = spectral_response(smp, sched, PSD, mean=MEAN)
    H, N, mu = mp_response(smp, sched, PSD, MEAN)
    dev = max(np.max(np.abs(r.transfer - H) / np.abs(H)),
              np.max(np.abs(r.noise_psd - N) / r.output_psd),
              np.max(np.abs(r.output_mean - mu) / np.abs(MEAN)))
    worst(f"samplers vs 50-digit maps: {name}", dev)
    assert dev < 1e-12


# -- 50 digits: the maps typed from the literature, per mode, against the derived samplers --

def _posterior(L, m, lv):
    """E[x0 | x] at a level as ``(coefficient of x, constant)``: ``lv = (alpha, sigma)``,
    x = alpha x0 + sigma eps, x0 ~ N(m, L)."""
    a, s = lv
    w = a * L / (a * a * L + s * s)
    return w, m * (1 - a * w)


def _vp(ab):
    return mpmath.sqrt(ab), mpmath.sqrt(1 - ab)


def _ve(sig):
    return mpmath.mpf(1), sig


def ddpm_lit(L, m, t, p, last, variance="fixed_small", last_noise=False):
    """Ho et al. 2020: the posterior mean mu~(x_t, x0) = sqrt(ab_p) beta / (1 - ab_t) x0 +
    sqrt(alpha_t) (1 - ab_p) / (1 - ab_t) x_t, alpha_t = ab_t / ab_p, beta = 1 - alpha_t;
    variance beta~ = (1 - ab_p) / (1 - ab_t) beta (fixed_small) or beta (fixed_large)."""
    w, c = _posterior(L, m, _vp(t))
    beta = 1 - t / p
    k0, k1 = mpmath.sqrt(p) * beta / (1 - t), mpmath.sqrt(1 - beta) * (1 - p) / (1 - t)
    var = 0 if last and not last_noise else (
        beta if variance == "fixed_large" else (1 - p) / (1 - t) * beta)
    return k0 * w + k1, k0 * c, var


def ddim_lit(L, m, t, p, last, eta=0):
    """Song et al. 2021, eq. 12: x_p = sqrt(ab_p) x0^ + sqrt(1 - ab_p - s**2) eps^ + s w,
    s = eta sqrt((1 - ab_p)/(1 - ab_t)) sqrt(1 - ab_t/ab_p), eps^ = (x - sqrt(ab_t) x0^) /
    sqrt(1 - ab_t)."""
    w, c = _posterior(L, m, _vp(t))
    s2 = eta**2 * (1 - p) / (1 - t) * (1 - t / p)
    k = mpmath.sqrt(1 - p - s2) / mpmath.sqrt(1 - t)
    return mpmath.sqrt(p) * w + k * (1 - mpmath.sqrt(t) * w), \
        mpmath.sqrt(p) * c - k * mpmath.sqrt(t) * c, s2


def euler_lit(L, m, t, p, last):
    """Karras et al. 2022: x + (s_p - s_t) d, d = (x - D(x; s_t)) / s_t."""
    w, c = _posterior(L, m, _ve(t))
    return 1 + (p - t) * (1 - w) / t, -(p - t) * c / t, 0


def heun_lit(L, m, t, p, last):
    """Karras et al. 2022, Alg. 1 (no churn): Euler to x', then if s_p != 0 the average of
    the slopes at s_t and at (x', s_p)."""
    g1, c1, _ = euler_lit(L, m, t, p, last)
    if p == 0:
        return g1, c1, 0
    w, c = _posterior(L, m, _ve(t))
    wp, cp = _posterior(L, m, _ve(p))
    d_g, d_c = (1 - w) / t, -c / t                      # slope at x: d_g x + d_c
    d2_g, d2_c = (1 - wp) * g1 / p, ((1 - wp) * c1 - cp) / p  # slope at x' = g1 x + c1
    return 1 + (p - t) * (d_g + d2_g) / 2, (p - t) * (d_c + d2_c) / 2, 0


def euler_ancestral_lit(L, m, t, p, last):
    """k-diffusion sample_euler_ancestral: s_up = sqrt(s_p**2 (s_t**2 - s_p**2) / s_t**2),
    s_down = sqrt(s_p**2 - s_up**2), x + (s_down - s_t) d + s_up w."""
    up2 = p**2 * (t**2 - p**2) / t**2
    down = mpmath.sqrt(p**2 - up2)
    w, c = _posterior(L, m, _ve(t))
    return 1 + (down - t) * (1 - w) / t, -(down - t) * c / t, up2


LITERATURE = {
    "ddpm": (DDPM, ddpm_lit, {}), "ddpm_large_last_noise": (
        DDPM(variance="fixed_large", last_noise=True), ddpm_lit,
        {"variance": "fixed_large", "last_noise": True}),
    "ddim": (DDIM, ddim_lit, {}), "ddim_0.5": (DDIM(eta=0.5), ddim_lit, {"eta": 0.5}),
    "ddim_1": (DDIM(eta=1.0), ddim_lit, {"eta": 1}),
    "euler": (EULER, euler_lit, {}), "heun": (HEUN, heun_lit, {}),
    "euler_ancestral": (EULER_ANCESTRAL, euler_ancestral_lit, {}),
}


@pytest.mark.parametrize("name", LITERATURE)
def test_built_ins_match_the_literature_at_50_digits(name, worst):
    """Transfer, noise PSD and output mean of the derived samplers (float64) against the
    update rules typed from the papers, composed per mode in mpmath on levels read from
    the schedule; nothing here runs symspec's derivation."""
    smp, lit, opts = LITERATURE[name]
    mpmath.mp.dps = 50
    if smp.space == "vp":
        sched = Schedule.from_alpha_bar(np.append(np.geomspace(1e-4, 0.98, 7), 1.0))
    else:
        sched = schedule()
    r = spectral_response(smp, sched, PSD, mean=MEAN)
    n = sched.steps
    dev = 0.0
    for k, (L, m) in enumerate(zip(PSD, MEAN, strict=True)):
        L, m = mpmath.mpf(float(L)), mpmath.mpf(float(m))
        T, N, mu = mpmath.mpf(1), mpmath.mpf(0), mpmath.mpf(0)
        for i in range(n):
            t, p = mpmath.mpf(float(sched.start[i])), mpmath.mpf(float(sched.end[i]))
            g, c, q = lit(L, m, t, p, i == n - 1, **opts)
            T, N, mu = g * T, g * g * N + q, g * mu + c
        P = T**2 * mpmath.mpf(float(sched.init_var)) + N
        dev = max(dev, float(abs(r.transfer[k] / T - 1)), float(abs(r.noise_psd[k] - N) / P),
                  float(abs(r.output_mean[k] - mu) / abs(m)))
    worst(f"samplers vs the literature at 50 digits: {name}", dev)
    assert dev < 1e-12


@pytest.mark.parametrize("name", CONFIGS)
def test_extreme_inputs_stay_finite(name):
    """PSD 1e-12..1e12, sigma from 1e6 (alpha-bar 1e-12) to the data, 2000 steps."""
    end = 1e-4 if name in POSITIVE_END else 0.0
    s = Schedule.from_sigmas(np.append(np.geomspace(1e6, 1e-3, 2000), end))
    r = spectral_response(CONFIGS[name], s, np.geomspace(1e-12, 1e12, 9), mean=1.0)
    assert np.all(np.isfinite(r.output_psd)) and np.all(r.output_psd > 0)
    assert np.all(np.isfinite(r.output_mean)) and np.all(np.isfinite(r.log_transfer))


def test_a_hundred_thousand_steps():
    s = Schedule.from_sigmas(np.geomspace(1e6, 1e-3, 100_001))
    r = spectral_response(DPMPP(solver_order=3), s, np.geomspace(1e-12, 1e12, 5))
    exact = symspec.continuous.reference("ode", s.to_space("vp"), np.geomspace(1e-12, 1e12, 5))
    assert np.allclose(r.output_psd, exact.output_psd, rtol=1e-6, atol=0)


def test_variants_share_a_derivation_unless_the_step_reads_the_flag():
    assert derive(EULER, (True, False, 1)) is derive(EULER, (False, True, 1))
    assert derive(HEUN, (True, False, 1)) is derive(HEUN, (False, False, 1))
    assert derive(HEUN, (False, True, 1)) is not derive(HEUN, (False, False, 1))


# -- the same definitions run on arrays (Monte Carlo) --------------------------------------

@pytest.mark.parametrize("name", CONFIGS)
def test_monte_carlo_run_of_the_definition(name):
    """Sample variance and mean within 5 standard errors; deterministic maps exactly."""
    smp, n = CONFIGS[name], 20_000
    sched = schedule(name=name)
    r = spectral_response(smp, sched, PSD, mean=MEAN)
    x = sample(smp, sched, PSD, n, mean=MEAN, seed=1)
    var = x.var(axis=0, ddof=1)
    assert np.all(np.abs(var - r.output_psd) < 5 * r.output_psd * np.sqrt(2 / (n - 1)))
    assert np.all(np.abs(x.mean(axis=0) - r.output_mean) < 5 * np.sqrt(r.output_psd / n))
    if not stochastic(smp):  # one chain from a unit latent gives the transfer exactly
        one = sample(smp, sched, PSD, 1, x_init=np.ones((1, PSD.size)))[0]
        assert np.allclose(one, r.transfer, rtol=1e-12, atol=0)


# -- certified identities between samplers (SymPy) -----------------------------------------

def _in_vp(smp, key):
    """The x-row of a step map as VP gain and noise variance, in alpha-bar symbols."""
    m = derive(smp, key)
    g, q = m.A[0, 0], m.Q[0, 0]
    if smp.space == "ve":  # x_vp = sqrt(ab) x_ve, sigma^2 = (1 - ab)/ab
        ab_t, ab_p = level("t", "vp"), level("p", "vp")
        sub = {m.levels[0]: sp.sqrt((1 - ab_t) / ab_t), m.levels[1]: sp.sqrt((1 - ab_p) / ab_p)}
        g = sp.sqrt(ab_p / ab_t) * g.subs(sub)
        q = ab_p * q.subs(sub)
    return g, q


FIRST_ORDER_ODE = {"ddim": (DDIM, (False, False, 1)), "euler": (EULER, (False, False, 1)),
                   "dpmpp_1": (DPMPP(solver_order=1), (False, False, 1))}
POSTERIOR = {"ddpm": (DDPM, (False, False, 1)), "ddim_eta1": (DDIM(eta=1), (False, False, 1)),
             "euler_ancestral": (EULER_ANCESTRAL, (False, False, 1)),
             "ve_ancestral": (VE_ANCESTRAL, (False, False, 1)),
             "sde_dpmpp_1": (DPMPP(sde=True, solver_order=1), (False, False, 1))}


@pytest.mark.parametrize("family", [FIRST_ORDER_ODE, POSTERIOR], ids=["ode", "posterior"])
def test_samplers_that_are_one_update(family):
    """Euler = DDIM(0) = DPM-Solver++(1); Euler ancestral = VE ancestral = DDIM(1) = DDPM
    (fixed_small) = SDE-DPM-Solver++(1): the same gain and noise, after x_vp = sqrt(ab) x_ve."""
    (g0, q0), *others = [_in_vp(*v) for v in family.values()]
    for g, q in others:
        assert sp.simplify(g - g0) == 0
        assert sp.simplify(q - q0) == 0


def test_reverse_diffusion_predictor_is_the_ancestral_mean_plus_the_full_increment():
    a, r = derive(VE_ANCESTRAL), derive(VE_REVERSE_DIFFUSION)
    s_t, s_p = r.levels
    assert sp.simplify(a.gain - r.gain) == 0
    assert sp.simplify(r.noise_var - (s_t**2 - s_p**2)) == 0
    assert derive(VE_REVERSE_DIFFUSION, (False, True, 1)).noise_var == 0


def test_lms_coefficients_are_adams_bashforth_on_a_uniform_grid():
    """On equal sigma steps the Lagrange integrals are the Adams-Bashforth weights."""
    m = derive(LMS, (False, False, 4))
    s_t, s_p, h1, h2, h3 = m.levels
    d = sp.Symbol("d", positive=True)
    uniform = {s_p: s_t - d, h1: s_t + d, h2: s_t + 2 * d, h3: s_t + 3 * d}
    weights = [sp.simplify(m.A[0, j].subs(uniform) / -d) for j in (1, 2, 3)]  # d1, d2, d3
    assert weights == [sp.Rational(-59, 24), sp.Rational(37, 24), sp.Rational(-9, 24)]


# -- options and non-linear definitions ---------------------------------------------------

def test_a_high_order_step_to_the_data_level_is_refused():
    with pytest.raises(ValueError, match="step 6 of 'dpmpp' cannot be evaluated at levels"):
        spectral_response(CONFIGS["dpmpp_3m_no_lower_final"], schedule(), PSD)


@pytest.mark.parametrize("make, pattern", [
    (lambda: DPMPP(solver_order=4), "solver_order must be 1, 2 or 3.*got 4"),
    (lambda: DPMPP(sde=True, solver_order=3), "1 or 2 with sde=True"),
    (lambda: DPMPP(solver_type="bh2"), "solver_type must be 'midpoint' or 'heun', got 'bh2'"),
    (lambda: UNIPC(solver_type="bh3"), "solver_type 'bh1' or 'bh2'.*'bh3'"),
    (lambda: LMS(order=5), "order must be 1, 2, 3 or 4, got 5"),
    (lambda: LMS(order=True), "order must be 1, 2, 3 or 4, got True"),
])
def test_bad_options_are_named(make, pattern):
    """Refused where the sampler is configured (Sampler.check), not at its first run."""
    with pytest.raises(ValueError, match=pattern):
        make()


@sampler(space="ve")
def clipped(c, x):
    """Euler with diffusers' clip_sample on the clean estimate."""
    x0 = sp.Min(sp.Max(c.x0(x), -1), 1)
    return x0 + c.p.sigma * (x - x0) / c.t.sigma


@sampler(space="ve")
def branching(c, x):
    """A data-dependent step size."""
    dt = c.p.sigma - c.t.sigma if c.x0(x) > 0 else (c.p.sigma - c.t.sigma) / 2
    return x + dt * (x - c.x0(x)) / c.t.sigma


@sampler(space="ve")
def rooted(c, x):
    return sqrt(x) + c.p.sigma


@sampler(space="vp", state=2)
def squared(c, x, d):
    return x + d * c.x0(x), d


@pytest.mark.parametrize("smp, pattern", [
    (clipped, r"not linear in its state.*Min\(\.\.\.\) of the state.*test_samplers.py"),
    (branching, r"branches on the value of the state.*test_samplers.py:\d+"),
    (rooted, r"not linear in its state.*a power sqrt\(x\).*test_samplers.py"),
    (squared, r"not linear in its state.*product of state or noise terms.*test_samplers.py"),
])
def test_non_linear_definitions_say_why_and_where(smp, pattern):
    with pytest.raises(NonLinearSamplerError, match=pattern):
        derive(smp)
    with pytest.raises(NonLinearSamplerError):
        spectral_response(smp, schedule(), PSD)


# -- the user-defined sampler of the README ------------------------------------------------

@sampler(space="ve")
def midpoint(c, x):
    """Explicit midpoint (RK2) on the probability-flow ODE dx/dsigma = (x - x0_hat)/sigma."""
    def slope(x, at):
        return (x - c.x0(x, at=at)) / at.sigma
    mid = Level.ve((c.t.sigma + c.p.sigma) / 2)
    x_mid = x + (mid.sigma - c.t.sigma) * slope(x, c.t)
    return x + (c.p.sigma - c.t.sigma) * slope(x_mid, mid)


def test_user_sampler_example():
    m = derive(midpoint)
    s, s_p = m.levels
    assert m.B.shape == (1, 0)  # deterministic
    # by hand, to the data (s_p = 0): x_mid = x (lam + s^2/2)/(lam + s^2), then a step of -s
    # with the slope x_mid (s/2)/(lam + s^2/4) at sigma = s/2
    by_hand = 1 - (lam + s**2 / 2) / (lam + s**2) * (s**2 / 2) / (lam + s**2 / 4)
    assert sp.simplify(m.gain.subs(s_p, 0) - by_hand) == 0
    sched = schedule(12)
    r = spectral_response(midpoint, sched, PSD)
    one = sample(midpoint, sched, PSD, 1, x_init=np.ones((1, PSD.size)))[0]
    assert np.allclose(one, r.transfer, rtol=1e-12, atol=0)
    # a second-order method, and on this geometric grid its error against the
    # probability-flow ODE even falls 8x per doubling (measured; Heun's falls 4x)
    err = [np.max(np.abs(symspec.continuous.discretisation_error(
        midpoint, Schedule.from_sigmas(np.geomspace(80.0, 0.05, n + 1)), PSD, kind="ode")))
        for n in (64, 128)]
    assert abs(np.log2(err[0] / err[1]) - 3) < 0.1
