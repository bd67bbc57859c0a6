"""Continuous-time references: certified closed forms, their numeric evaluation, and the
convergence of the discrete samplers to them, with the order measured from the log-log slope.
"""

import mpmath
import numpy as np
import pytest
import sympy as sp

from symspec import (
    DDIM,
    DDPM,
    DPMPP,
    EULER,
    EULER_ANCESTRAL,
    HEUN,
    LMS,
    UNIPC,
    VE_ANCESTRAL,
    VE_REVERSE_DIFFUSION,
    Schedule,
    derive,
    sampler,
    spectral_response,
)
from symspec.numeric.continuous import (
    KINDS,
    certify,
    closed_forms,
    continuous_limit,
    discretisation_error,
    moment_odes,
    reference,
)
from symspec.ops import sqrt
from symspec.symbolic import symbols as S
from symspec.symbolic.symbols import lam

SPACES = ("vp", "ve")
PSD = np.array([0.01, 0.1, 1.0, 10.0])


def _eta(kind):
    """The eta= a test passes with ``kind`` (kind "eta": an eta that is neither 0 nor 1)."""
    return 0.5 if kind == "eta" else None


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("kind", KINDS)
def test_closed_forms_solve_the_moment_equations(kind, space):
    assert certify(kind, space)


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("kind", ["ode", "sde"])
def test_dsolve_derives_the_closed_forms(kind, space):
    """SymPy solves the transfer and variance equations from scratch to the same forms."""
    eqs, (H, V, _), u = moment_odes(kind, space)
    cf = closed_forms(kind, space)
    u0, u1 = cf["levels"]
    for eq, fn, key, start in ((eqs[0], H, "transfer", 1), (eqs[1], V, "output_psd", cf["V"])):
        sol, want = sp.dsolve(eq, fn, ics={fn.subs(u, u0): start}).rhs, cf[key].subs(u1, u)
        # equal squares, and equal at one point: sqrt(a/b) sqrt(b) = sqrt(a) needs a, b > 0
        assert sp.simplify(sol**2 - want**2) == 0
        at = {lam: sp.Rational(1, 3), u0: sp.Rational(1, 5), u: sp.Rational(1, 2), cf["V"]: 2}
        assert sp.N(sol.subs(at) - want.subs(at), 30) == 0


def test_theory_formulas_at_the_data_level():
    """Book, continuous chapter: ODE gain sqrt(lam/D_N), output lam V/D_N;
    SDE mean gain sqrt(ab_N) lam/D_N,
    output lam + H^2 (V - D_N)."""
    ode, sde = closed_forms("ode", "vp"), closed_forms("sde", "vp")
    ab, ab1 = ode["levels"]
    V, D = ode["V"], ab * lam + 1 - ab
    H = sp.sqrt(ab) * lam / D
    for got, want in ((ode["transfer"], sp.sqrt(lam / D)), (ode["output_psd"], lam * V / D),
                      (sde["transfer"], H), (sde["output_psd"], lam + H**2 * (V - D))):
        assert sp.simplify(got.subs(ab1, 1) - want) == 0


def test_mean_relaxes_to_the_data_mean():
    for kind in KINDS:
        cf = closed_forms(kind, "vp")
        ab0, ab1 = cf["levels"]
        assert sp.simplify(cf["output_mean"].subs(ab1, 1) - sp.Symbol("m", real=True) * (
            1 - sp.sqrt(ab0) * cf["transfer"].subs(ab1, 1))) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_numeric_reference_matches_50_digits_over_extreme_ranges(kind, worst):
    """PSD 1e-12..1e12, alpha-bar 1e-12 (sigma 1e6) to 1 - 1e-12."""
    mpmath.mp.dps = 50
    psd = np.geomspace(1e-12, 1e12, 13)
    cf = closed_forms(kind, "vp")
    forms = [sp.expand_func(cf[k]).subs(S.eta, sp.Rational(1, 2))  # kind "eta": eta = 1/2
             for k in ("transfer", "output_psd")]
    f = sp.lambdify((lam, cf["V"], *cf["levels"]), forms, "mpmath")
    for ab0, ab1 in ((1e-12, 1.0), (1e-12, 1 - 1e-12), (0.3, 0.9)):
        r = reference(kind, Schedule([ab0], [ab1], "vp", 1.0), psd, eta=_eta(kind))
        want = np.array([[float(v) for v in f(mpmath.mpf(L), 1, mpmath.mpf(ab0),
                                                mpmath.mpf(ab1))] for L in psd])
        dev = max(np.max(np.abs(r.transfer / want[:, 0] - 1)),
                  np.max(np.abs(r.output_psd / want[:, 1] - 1)))
        worst(f"continuous {kind} reference vs 50 digits", dev)
        assert dev < 1e-12
        assert np.allclose(r.log_transfer, np.log(want[:, 0]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_reference_is_the_same_in_both_spaces(kind):
    s = Schedule.from_sigmas(np.geomspace(50.0, 0.3, 5), init_var=50.0**2 + 1)
    ve = reference(kind, s, PSD, mean=0.7, eta=_eta(kind))
    vp = reference(kind, s.to_space("vp"), PSD, mean=0.7, eta=_eta(kind))
    a1 = 1 / np.sqrt(1 + 0.3**2)  # x_vp = alpha x_ve at the end level
    assert np.allclose(vp.output_psd, a1**2 * ve.output_psd, rtol=1e-13)
    assert np.allclose(vp.output_mean, a1 * ve.output_mean, rtol=1e-13)


def test_errors():
    s = Schedule.from_sigmas([10.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="kind must be one of"):
        reference("pf-ode", s, PSD)
    with pytest.raises(TypeError, match="schedule must be a symspec Schedule"):
        reference("ode", [10.0, 0.0], PSD)
    with pytest.raises(ValueError, match="mean must broadcast"):
        reference("ode", s, PSD, mean=[1.0, 2.0])
    with pytest.raises(ValueError, match="kind must be one of"):
        discretisation_error(EULER, s, PSD, kind="exact")
    with pytest.raises(ValueError, match="kind='eta' needs eta= a finite number >= 0"):
        reference("eta", s, PSD)
    for bad in (-0.5, float("nan"), float("inf"), "0.5", True):
        with pytest.raises(ValueError, match="needs eta= a finite number"):
            reference("eta", s, PSD, eta=bad)
    with pytest.raises(ValueError, match="eta= goes with kind='eta'"):
        reference("sde", s, PSD, eta=0.5)


# -- convergence, on a log-SNR-uniform grid between fixed end points (sigma 80 -> 0.05) ----

def _grid(n, s_max=80.0):
    return Schedule.from_sigmas(np.geomspace(s_max, 0.05, n + 1))


#: The members of the family share the marginals: from the true marginal their outputs
#: agree, and they differ only by H**2 (V - D0).  From sigma 80 (the VP unit latent) that
#: mismatch is ~1e-3; from sigma 2 with the default latent (V = 5, D0 = lam + 4) the
#: members are far apart, so a sampler must converge to the right one there.
MISMATCH = 2.0


def _slope(smp, kind, ns, eta=None, s_max=80.0):
    err = []
    for n in ns:
        s = _grid(n, s_max)
        ref = reference(kind, s.to_space(smp.space), PSD, eta=eta).output_psd
        err.append(np.max(np.abs(discretisation_error(smp, s, PSD, kind=kind, eta=eta)) / ref))
    return float(np.log2(err[-2] / err[-1]))


PURE = dict(lower_order_final=False, euler_at_final=False)
#: measured orders (the brief's "whatever is true").  DPM-Solver++ 3M and LMS-3/4 fall to
#: order 2 for many steps: their first-order warm-up step leaves an O(h^2) error; UniPC's
#: corrector lifts its order by one.
ORDERS = {
    "ddim": (DDIM, "ode", 1, (128, 256)), "euler": (EULER, "ode", 1, (128, 256)),
    "dpmpp_1": (DPMPP(solver_order=1), "ode", 1, (128, 256)),
    "heun": (HEUN, "ode", 2, (128, 256)),
    "dpmpp_2m": (DPMPP(**PURE), "ode", 2, (128, 256)),
    "dpmpp_2m_heun": (DPMPP(solver_type="heun", **PURE), "ode", 2, (128, 256)),
    "dpmpp_3m": (DPMPP(solver_order=3, **PURE), "ode", 2, (512, 1024)),
    "unipc_1": (UNIPC(solver_order=1, lower_order_final=False), "ode", 2, (128, 256)),
    "unipc_2": (UNIPC(lower_order_final=False), "ode", 3, (128, 256)),
    "unipc_3": (UNIPC(solver_order=3, lower_order_final=False), "ode", 4, (256, 512)),
    "lms_2": (LMS(order=2), "ode", 2, (256, 512)),
    "lms_4": (LMS, "ode", 2, (8192, 16384)),
    "ddpm": (DDPM(last_noise=True), "sde", 1, (128, 256)),
    "ddim_eta1": (DDIM(eta=1.0), "sde", 1, (128, 256)),
    "euler_ancestral": (EULER_ANCESTRAL, "sde", 1, (128, 256)),
    "ve_ancestral": (VE_ANCESTRAL, "sde", 1, (128, 256)),
    "ve_reverse_diffusion": (VE_REVERSE_DIFFUSION(last_noise=True), "sde", 1, (128, 256)),
    "sde_dpmpp_1": (DPMPP(sde=True, solver_order=1), "sde", 1, (128, 256)),
    "sde_dpmpp_2m": (DPMPP(sde=True, **PURE), "sde", 2, (128, 256)),
    # DDIM(eta) converges to the member eta of the family (kind "eta")
    "ddim_eta0.25": (DDIM(eta=0.25), 0.25, 1, (128, 256)),
    "ddim_eta0.5": (DDIM(eta=0.5), 0.5, 1, (128, 256)),
    "ddim_eta0.8": (DDIM(eta=0.8), 0.8, 1, (128, 256)),
}


@pytest.mark.parametrize("name", ORDERS)
def test_convergence_order(name, worst):
    smp, kind, order, ns = ORDERS[name]
    kind, eta, s_max = ("eta", kind, MISMATCH) if isinstance(kind, float) else (kind, None, 80.0)
    slope = _slope(smp, kind, ns, eta, s_max)
    worst(f"convergence order - expected: {name}", abs(slope - order))
    assert abs(slope - order) < 0.15


def test_lms_4_is_fourth_order_in_between():
    """Before the warm-up error dominates, LMS-4 converges faster than third order."""
    assert _slope(LMS, "ode", (64, 128)) > 3.2


@pytest.mark.parametrize("smp, kind", [(DPMPP(**PURE), "ode"), (DDPM(last_noise=True), "sde")])
def test_output_mean_converges_too(smp, kind):
    err = []
    for n in (64, 128):
        s = _grid(n)
        got = spectral_response(smp, s, PSD, mean=1.5).output_mean
        err.append(np.max(np.abs(got - reference(kind, s.to_space(smp.space), PSD,
                                                 mean=1.5).output_mean)))
    assert err[1] < err[0] / 1.8


# -- the DDIM(eta) family -------------------------------------------------------------------

ETA = S.eta


def test_family_contains_the_ode_and_the_sde():
    """kind "eta" at eta = 0 and 1 is the ODE and the SDE (SymPy identities), in both spaces."""
    for space in SPACES:
        fam = closed_forms("eta", space)
        assert fam["eta"] == ETA and closed_forms("ode", space)["eta"] == 0
        for e, kind in ((0, "ode"), (1, "sde")):
            other = closed_forms(kind, space)
            for key in ("transfer", "noise_psd", "output_psd", "output_mean"):
                got = sp.expand_func(fam[key]).subs(ETA, e)
                assert sp.simplify(got - sp.expand_func(other[key])) == 0, (space, kind, key)
        eqs = moment_odes("eta", space)[0]
        for e, kind in ((0, "ode"), (1, "sde")):
            for a, b in zip(eqs, moment_odes(kind, space)[0], strict=True):
                assert sp.simplify(a.rhs.subs(ETA, e) - b.rhs) == 0


def test_family_transfer_from_the_issue():
    """VP, from alpha-bar ab_N to the data: H = sqrt(lam/D_N) (ab_N lam/D_N)**(eta**2/2),
    output lam + H**2 (V - D_N): every member has the data's marginal from D_N."""
    cf = closed_forms("eta", "vp")
    abN, ab1 = cf["levels"]
    D = abN * lam + 1 - abN
    H = sp.sqrt(lam / D) * (abN * lam / D) ** (ETA**2 / 2)
    at_data = {ab1: 1}
    assert sp.simplify(cf["transfer"].subs(at_data) - H) == 0
    got = sp.expand_func(cf["output_psd"]).subs(at_data)
    def zero(e):  # exp(a log b) = b**a: every base here is > 0 (lam > 0 off the DC mode)
        return sp.simplify(sp.powsimp(sp.powdenest(e, force=True), force=True)) == 0

    assert zero(got - (lam + H**2 * (cf["V"] - D)))
    assert zero(got.subs(cf["V"], D) - lam)


@pytest.mark.parametrize("space", SPACES)
def test_moment_equations_are_the_limit_of_the_ddim_update(space):
    """DDIM(eta)'s derived step from u to u + d: gain 1 + d rate + O(d**2) and noise
    -eta**2 g**2 d + O(d**2), with the rate and g**2 of the family's moment equations, typed
    here from the forward process (VP: f = 1/(2 ab), g**2 = -1/ab; VE: f = 0, g**2 = 2 sigma).
    In VE space DDIM is compared through x_vp = alpha x_ve."""
    m = derive(DDIM(eta=ETA))
    ab_t, ab_p = m.levels
    u, d = sp.Symbol("u", positive=True), sp.Symbol("d", real=True)
    c = (1 + ETA**2) / 2
    if space == "vp":
        gain, q = m.gain.subs({ab_t: u, ab_p: u + d}), m.noise_var.subs({ab_t: u, ab_p: u + d})
        f, g2, D = 1 / (2 * u), -1 / u, u * lam + 1 - u
    else:  # ab = 1 / (1 + sigma**2); x_ve = x_vp / sqrt(ab)
        ab = lambda s: 1 / (1 + s**2)  # noqa: E731
        to = {ab_t: ab(u), ab_p: ab(u + d)}
        gain = m.gain.subs(to) * sp.sqrt(ab(u) / ab(u + d))
        q = m.noise_var.subs(to) / ab(u + d)
        f, g2, D = 0, 2 * u, lam + u**2
    rate = f + c * g2 / D
    assert sp.simplify(gain.subs(d, 0) - 1) == 0 and sp.simplify(q.subs(d, 0)) == 0
    assert sp.simplify(sp.diff(gain, d).subs(d, 0) - rate) == 0
    assert sp.simplify(sp.diff(q, d).subs(d, 0) + ETA**2 * g2) == 0
    eqs, (H, V, _), uu = moment_odes("eta", space)
    assert sp.simplify(eqs[0].rhs.subs(uu, u) - rate * H.subs(uu, u)) == 0
    assert sp.simplify(eqs[1].rhs.subs(uu, u) - (2 * rate * V.subs(uu, u) - ETA**2 * g2)) == 0


def _mp_family(L, V, ab0, ab1, eta):
    """VP, 50 digits: the moment equations H' = rate H, V' = 2 rate V + eta**2 / u integrated
    by quadrature.  rate = 1/(2u) - c/(u D), D = u L + 1 - u, c = (1 + eta**2)/2, so
    log H(u) = [log(u)/2 - c (log u - log D)] from ab0 (by hand), and the injected variance
    is H(ab1)**2 * integral of eta**2 / (u H(u)**2) du."""
    c = (1 + eta**2) / 2

    def log_h(u):
        D, D0 = u * L + 1 - u, ab0 * L + 1 - ab0
        return (mpmath.log(u / ab0) / 2 - c * (mpmath.log(u / ab0) - mpmath.log(D / D0)))

    h1 = mpmath.exp(log_h(ab1))
    noise = h1**2 * mpmath.quad(lambda u: eta**2 / u * mpmath.exp(-2 * log_h(u)), [ab0, ab1])
    return h1, h1**2 * V + noise


@pytest.mark.parametrize("eta", [0.3, 0.5, 0.9, 2.0])
def test_family_reference_matches_50_digit_quadrature(eta, worst):
    """The float64 reference and the closed form (at 50 digits) against quadrature of the
    moment equations, over PSD 1e-6..1e6 and alpha-bar 1e-6 .. 1 - 1e-6."""
    mpmath.mp.dps = 50
    cf = closed_forms("eta", "vp")
    e = mpmath.mpf(eta)
    forms = [sp.expand_func(cf[k]) for k in ("transfer", "output_psd")]
    f = sp.lambdify((lam, cf["V"], *cf["levels"], ETA), forms, "mpmath")
    psd = np.geomspace(1e-6, 1e6, 7)
    dev_cf = dev = 0.0
    for ab0, ab1 in ((1e-6, 1 - 1e-6), (0.3, 0.9), (0.01, 0.5)):
        r = reference("eta", Schedule([ab0], [ab1], "vp", 1.7), psd, eta=eta)
        for k, L in enumerate(psd):
            a0, a1, LL = mpmath.mpf(ab0), mpmath.mpf(ab1), mpmath.mpf(L)
            want = _mp_family(LL, mpmath.mpf("1.7"), a0, a1, e)
            got = f(LL, mpmath.mpf("1.7"), a0, a1, e)
            dev_cf = max(dev_cf, *(float(abs(g / w - 1)) for g, w in zip(got, want, strict=True)))
            dev = max(dev, abs(r.transfer[k] / float(want[0]) - 1),
                      abs(r.output_psd[k] / float(want[1]) - 1))
    worst("continuous eta reference (float64) vs 50-digit quadrature", dev)
    worst("continuous eta closed form (50 digits) vs 50-digit quadrature", dev_cf)
    assert dev_cf < 1e-40
    assert dev < 1e-12


@pytest.mark.parametrize("eta", [0.25, 0.5, 0.8])
def test_ddim_eta_converges_to_its_member_not_to_the_sde(eta):
    """The slope against the member eta is 1; against the reverse SDE (eta = 1) the error
    stalls: DDIM(eta) does not tend to the reverse SDE."""
    smp = DDIM(eta=eta)
    assert abs(_slope(smp, "eta", (128, 256), eta, MISMATCH) - 1) < 0.15
    for kind in ("sde", "ode"):  # measured: 0.06 .. 0.32, falling by at most 0.1 octave
        err = []
        for n in (128, 256):
            s = _grid(n, MISMATCH)
            ref = reference(kind, s.to_space("vp"), PSD).output_psd
            err.append(np.max(np.abs(discretisation_error(smp, s, PSD, kind=kind)) / ref))
        assert err[1] > 0.05 and np.log2(err[0] / err[1]) < 0.15, (kind, err)


# -- which member a sampler converges to ----------------------------------------------------

@sampler(space="vp", state=2)
def noise_memory(c, x, w_prev):
    """DDIM(1) whose noise is half fresh and half the previous step's draw."""
    ab_t, ab_p = c.t.alpha_bar, c.p.alpha_bar
    sig = sqrt((1 - ab_p) / (1 - ab_t) * (1 - ab_t / ab_p))
    w = c.noise()
    x_next = (sqrt(ab_p) * c.x0(x) + sqrt(1 - ab_p - sig**2) * c.eps(x)
              + sig * (w + w_prev) / sqrt(2))
    return x_next, w


@sampler(space="ve")
def fixed_noise(c, x):
    """Euler plus noise that does not shrink with the step."""
    return x + (c.p.sigma - c.t.sigma) * (x - c.x0(x)) / c.t.sigma + c.noise() / 10


@sampler(space="ve")
def level_dependent(c, x):
    """Euler ancestral with eta = sigma: a noise rate that varies along the schedule."""
    s, s_to = c.t.sigma, c.p.sigma
    return x + (s_to - s) * (x - c.x0(x)) / s * (1 + s**2) / 2 + s * sqrt(2 * s * (s - s_to)) \
        * c.noise()


LIMITS = {"ddpm": (DDPM, 1), "ddpm_large": (DDPM(variance="fixed_large"), 1),
          "ddim": (DDIM, 0), "ddim_0.3": (DDIM(eta=0.3), 0.3), "ddim_1": (DDIM(eta=1.0), 1),
          "ddim_1.2": (DDIM(eta=1.2), 1.2), "euler": (EULER, 0), "heun": (HEUN, 0),
          "euler_ancestral": (EULER_ANCESTRAL, 1), "ve_ancestral": (VE_ANCESTRAL, 1),
          "ve_reverse_diffusion": (VE_REVERSE_DIFFUSION, 1), "lms": (LMS, 0),
          "dpmpp": (DPMPP, 0), "sde_dpmpp": (DPMPP(sde=True), 1), "unipc": (UNIPC, 0)}


@pytest.mark.parametrize("name", LIMITS)
def test_continuous_limit_of_each_sampler(name):
    smp, want = LIMITS[name]
    assert continuous_limit(smp) == pytest.approx(want, rel=1e-14, abs=0)


@pytest.mark.parametrize("name", [n for n, (s, _) in LIMITS.items() if s.state == 1])
def test_one_step_samplers_drift_like_their_member(name):
    """The premise of continuous_limit: a one-step sampler's mean update is a first-order
    step of the member its noise names (gain 1 + d rate + O(d**2), rate from moment_odes)."""
    smp, _ = LIMITS[name]
    eta = continuous_limit(smp)
    m = derive(smp)
    t, p = m.levels
    d = sp.Symbol("d", real=True)
    eqs, (H, _, _), u = moment_odes("eta", smp.space)
    rate = (eqs[0].rhs / H).subs({u: t, ETA: sp.nsimplify(eta)})
    assert sp.simplify(sp.diff(m.gain.subs(p, t + d), d).subs(d, 0) - rate) == 0


@pytest.mark.parametrize("smp, match", [
    (noise_memory, "keeps noise in its state"),
    (fixed_noise, "does not vanish with the step"),
    (level_dependent, "eta\\*\\*2 would be"),
])
def test_continuous_limit_refuses_what_is_not_a_member(smp, match):
    with pytest.raises(ValueError, match=match):
        continuous_limit(smp)
