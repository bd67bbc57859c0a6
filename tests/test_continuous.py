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
    spectral_response,
)
from symspec.numeric.continuous import (
    KINDS,
    certify,
    closed_forms,
    discretisation_error,
    moment_odes,
    reference,
)
from symspec.symbolic.symbols import lam

SPACES = ("vp", "ve")
PSD = np.array([0.01, 0.1, 1.0, 10.0])


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("kind", KINDS)
def test_closed_forms_solve_the_moment_equations(kind, space):
    assert certify(kind, space)


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("kind", KINDS)
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
    f = sp.lambdify((lam, cf["V"], *cf["levels"]), [cf["transfer"], cf["output_psd"]], "mpmath")
    for ab0, ab1 in ((1e-12, 1.0), (1e-12, 1 - 1e-12), (0.3, 0.9)):
        r = reference(kind, Schedule([ab0], [ab1], "vp", 1.0), psd)
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
    ve, vp = reference(kind, s, PSD, mean=0.7), reference(kind, s.to_space("vp"), PSD, mean=0.7)
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


# -- convergence, on a log-SNR-uniform grid between fixed end points (sigma 80 -> 0.05) ----

def _grid(n):
    return Schedule.from_sigmas(np.geomspace(80.0, 0.05, n + 1))


def _slope(smp, kind, ns):
    err = []
    for n in ns:
        s = _grid(n)
        ref = reference(kind, s.to_space(smp.space), PSD).output_psd
        err.append(np.max(np.abs(discretisation_error(smp, s, PSD, kind=kind)) / ref))
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
}


@pytest.mark.parametrize("name", ORDERS)
def test_convergence_order(name, worst):
    smp, kind, order, ns = ORDERS[name]
    slope = _slope(smp, kind, ns)
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
