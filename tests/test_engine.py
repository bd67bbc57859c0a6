"""Symbolic identities of the derivation engine, checked with SymPy.

Every expected value is written out here from the formulas of the literature (DDPM: Ho et al.
2020, eq. 7; DDIM: Song et al. 2021, eq. 12, with the Wiener filter as denoiser), never read
back from the code under test.
"""

import math

import numpy as np
import pytest
import sympy as sp

import symspec
from symspec import (
    DDIM,
    DDPM,
    SAMPLERS,
    UNIPC,
    DerivationError,
    NonLinearSamplerError,
    closed_form,
    derive,
    sampler,
)
from symspec.ops import sqrt
from symspec.symbolic.engine import certify_zero, variant
from symspec.symbolic.symbols import eta, lam, level, mean

AB_T, AB_P = level("t", "vp"), level("p", "vp")
MIDDLE, FIRST, LAST = (False, False, 1), (True, False, 1), (False, True, 1)


def D(ab):
    """Marginal variance of a VP mode: ``ab*lam + 1 - ab``."""
    return ab * lam + 1 - ab


def wiener(ab):
    """The MMSE gain ``x0_hat / x`` of a zero-mean mode at alpha-bar ``ab``."""
    return sp.sqrt(ab) * lam / D(ab)


def ddpm_step(ab_t, ab_p, last=False):
    """Gain and noise variance of a DDPM step written out from the posterior mean (Ho eq. 7)."""
    beta = 1 - ab_t / ab_p
    gain = (sp.sqrt(ab_p) * beta * wiener(ab_t) + sp.sqrt(1 - beta) * (1 - ab_p)) / (1 - ab_t)
    return gain, sp.Integer(0) if last else (1 - ab_p) / (1 - ab_t) * beta


def ddim_step(ab_t, ab_p, e=0):
    """Gain and noise variance of a DDIM(eta) step, eq. 12 with the exact denoiser."""
    sig2 = e**2 * (1 - ab_p) / (1 - ab_t) * (1 - ab_t / ab_p)
    eps_gain = sp.sqrt(1 - ab_t) / D(ab_t)
    return sp.sqrt(ab_p) * wiener(ab_t) + sp.sqrt(1 - ab_p - sig2) * eps_gain, sig2


def rational_zero(e) -> bool:
    """SymPy proves ``e == 0`` for a rational function (square roots of levels allowed)."""
    return sp.cancel(sp.together(e)) == 0


#: A point inside the domain 0 < ab_t < ab_p < 1, 0 <= eta <= 1.
INSIDE = {AB_T: sp.Rational(3, 10), AB_P: sp.Rational(7, 10), eta: sp.Rational(1, 3)}


def assert_same_gain(g1, g2):
    """``g1 == g2`` for one-step gains ``(c1*lam + c0) / D_t``.

    SymPy does not merge ``sqrt(X)*sqrt(Y)`` into ``sqrt(X*Y)``, so the coefficients are
    compared by their squares (a rational identity) and their signs at one point: each is a
    combination of square roots that is positive inside the domain, so equal squares and
    one equal sign give equality everywhere on the (connected) domain.
    """
    c1, c2 = (sp.Poly(sp.cancel(g * D(AB_T)), lam).all_coeffs() for g in (g1, g2))
    assert len(c1) == len(c2) == 2
    for a, b in zip(c1, c2, strict=True):
        assert sp.cancel(sp.expand(a**2 - b**2)) == 0, (a, b)
        assert a.subs(INSIDE) > 0 and b.subs(INSIDE) > 0, (a, b)


# -- one step ----------------------------------------------------------------------------
def test_ddpm_gain_is_the_ratio_of_marginals():
    m = derive(DDPM, MIDDLE)
    assert m.levels == (AB_T, AB_P)
    assert certify_zero(m.gain - sp.sqrt(AB_T / AB_P) * D(AB_P) / D(AB_T))
    gain, var = ddpm_step(AB_T, AB_P)
    assert certify_zero(m.gain - gain)
    assert certify_zero(m.noise_var - var)


@pytest.mark.parametrize("e", [0, sp.Rational(1, 2), 1, eta])
def test_ddim_step_matches_eq12(e):
    m = derive(DDIM(eta=e), MIDDLE)
    gain, var = ddim_step(AB_T, AB_P, e)
    assert_same_gain(m.gain, gain)
    assert certify_zero(m.noise_var - var)


@pytest.mark.parametrize("key", [FIRST, MIDDLE])
def test_ddim_eta1_is_ddpm_fixed_small(key):
    ddpm, ddim1 = derive(DDPM, key), derive(DDIM(eta=1), key)
    assert certify_zero(ddim1.gain - ddpm.gain)
    assert certify_zero(ddim1.noise_var - ddpm.noise_var)
    assert certify_zero(ddim1.C[0] - ddpm.C[0])
    general = derive(DDIM(eta=eta), key)
    assert certify_zero(general.gain.subs(eta, 1) - ddpm.gain)
    assert certify_zero(general.noise_var.subs(eta, 1) - ddpm.noise_var)


def test_ddim_eta1_and_ddpm_agree_on_the_last_step_to_the_data():
    """DDPM adds no noise on the last step; DDIM's noise vanishes there when ab_p = 1."""
    ddpm, ddim1 = derive(DDPM, LAST), derive(DDIM(eta=1), LAST)
    assert ddpm.Q == sp.zeros(1, 1)
    assert ddim1.noise_var.subs(AB_P, 1) == 0
    assert certify_zero((ddim1.gain - ddpm.gain).subs(AB_P, 1))


def test_ddim_eta0_injects_no_noise():
    for key in (FIRST, MIDDLE, LAST):
        m = derive(DDIM(eta=0), key)
        assert m.B.shape == (1, 0)
        assert m.Q == sp.zeros(1, 1)


def test_ddpm_variance_options():
    large = derive(DDPM(variance="fixed_large"), MIDDLE)
    assert certify_zero(large.noise_var - (1 - AB_T / AB_P))
    assert derive(DDPM(variance="fixed_large"), LAST).Q == sp.zeros(1, 1)
    noisy_last = derive(DDPM(variance="fixed_large", last_noise=True), LAST)
    assert certify_zero(noisy_last.noise_var - (1 - AB_T / AB_P))


def _configured(name):
    smp = SAMPLERS[name]
    extra = {"ddpm": [DDPM(variance="fixed_large", last_noise=True)],
             "ddim": [DDIM(eta=sp.Rational(1, 2)), DDIM(eta=eta)]}.get(name, [])
    return [smp, *extra]


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_prediction_type_does_not_change_the_map(name):
    """The exact model answers in any parameterisation; the sampler's map must not change."""
    for smp in _configured(name):
        for key in {variant(smp, i, 3) for i in range(3)}:
            ref = derive(smp, key, "epsilon")
            for pt in ("sample", "v_prediction"):
                m = derive(smp, key, pt)
                for a, b in ((ref.A, m.A), (ref.Q, m.Q), (ref.C, m.C)):
                    assert a.shape == b.shape
                    assert all(certify_zero(x - y) for x, y in zip(a, b, strict=True)), (
                        smp, key, pt)


@pytest.mark.parametrize("smp", [DDPM, DDPM(variance="fixed_large"), DDIM, DDIM(eta=eta)],
                         ids=["ddpm", "ddpm-large", "ddim", "ddim-eta"])
@pytest.mark.parametrize("key", [FIRST, MIDDLE, LAST])
def test_mean_column_keeps_the_marginal_mean(smp, key):
    """If x has the correct mean sqrt(ab_t) m, the step output has sqrt(ab_p) m."""
    m = derive(smp, key)
    assert certify_zero(m.A[0, 0] * sp.sqrt(AB_T) + m.C[0] - sp.sqrt(AB_P))


def test_ddpm_output_mean_closed_form():
    """Three chained DDPM steps from a zero-mean latent: E[out] = m (1 - ab_N)/D_N.

    Independent expectation: the posterior-mean step maps the error e = E[x] - sqrt(ab) m
    to g e (its C column restores the mean), so e_out = H e_init = -H sqrt(ab_N) m with the
    telescoped H = sqrt(ab_N) lam / D_N.
    """
    a3, a2, a1 = (level(str(k), "vp") for k in (3, 2, 1))
    grid = [a3, a2, a1, sp.Integer(1)]
    mu = sp.Integer(0)
    for i in range(3):
        m = derive(DDPM, variant(DDPM, i, 3))
        sub = {AB_T: grid[i], AB_P: grid[i + 1]}
        mu = m.A[0, 0].subs(sub) * mu + m.C[0].subs(sub) * mean
    assert rational_zero(mu - mean * (1 - a3) / D(a3))


# -- chains ------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_ddpm_closed_form_telescopes(n):
    cf = closed_form(DDPM, n)
    grid = list(cf["levels"])
    assert grid[-1] == 1 and len(grid) == n + 1
    H, N = sp.Integer(1), sp.Integer(0)
    for i in range(n):
        g, q = ddpm_step(grid[i], grid[i + 1], last=i == n - 1)
        H, N = H * g, g**2 * N + q
    assert rational_zero(cf["transfer"] - H)
    assert rational_zero(cf["transfer"] - sp.sqrt(grid[0]) * lam / D(grid[0]))
    assert rational_zero(cf["noise_psd"] - N)
    assert rational_zero(cf["output_psd"] - (H**2 * cf["V"] + N))


def test_ddim_closed_form_two_steps():
    cf = closed_form(DDIM, 2)
    a2, a1, one = cf["levels"]
    g2, _ = ddim_step(a2, a1)
    g1, _ = ddim_step(a1, one)
    assert cf["noise_psd"] == 0
    assert certify_zero(cf["transfer"] - g2 * g1)
    # at ab = 1 the last DDIM step returns the clean estimate: the Wiener gain
    assert certify_zero(g1 - wiener(a1))


def test_closed_form_numbers_match_the_numeric_layer():
    """The symbolic chain, evaluated, equals spectral_response at the same levels."""
    cf = closed_form(DDIM(eta=sp.Rational(1, 2)), 2)
    ab = [0.2, 0.7, 1.0]
    psd = np.array([0.01, 1.0, 30.0])
    r = symspec.spectral_response(DDIM(eta=0.5), symspec.Schedule.from_alpha_bar(ab), psd)
    sub = dict(zip(cf["levels"][:2], ab[:2], strict=True))
    for k, L in enumerate(psd):
        pt = {**sub, lam: L, cf["V"]: 1}
        assert math.isclose(float(cf["transfer"].subs(pt)), r.transfer[k], rel_tol=1e-13)
        assert math.isclose(float(cf["output_psd"].subs(pt)), r.output_psd[k], rel_tol=1e-13)


def test_closed_form_errors():
    @sampler(state=2)
    def two(c, x, d):
        return x, d

    with pytest.raises(ValueError, match="one-step sampler"):
        closed_form(two, 2)
    for steps in (0, 5, 2.0):
        with pytest.raises(ValueError, match="steps must be an int"):
            closed_form(DDPM, steps)


# -- options and definitions -------------------------------------------------------------
def test_sampler_options_are_validated():
    with pytest.raises(TypeError, match="no option 'etta'.*'eta'"):
        DDIM(etta=1)
    with pytest.raises(TypeError, match="option 'eta' .* must be hashable"):
        DDIM(eta=[1])
    assert DDIM(eta=0.5).opts == {"eta": 0.5}
    with pytest.raises(ValueError, match="prediction_type"):
        derive(DDIM, MIDDLE, "score")
    with pytest.raises(ValueError, match="variance must be"):
        derive(DDPM(variance="learned"), MIDDLE)


@sampler()
def _abs(c, x):
    return abs(x)


@sampler()
def _square(c, x):
    return x * x


@sampler()
def _x0_squared(c, x):
    return c.x0(x) ** 2


@sampler()
def _branch(c, x):
    if x > 0:
        return x
    return -x


@sampler()
def _offset(c, x):
    return x + 1


@sampler()
def _numpy(c, x):
    return np.sin(x)


@sampler()
def _numpy_sqrt(c, x):
    return np.sqrt(x)


@sampler()
def _math(c, x):
    return math.sqrt(x)


@sampler()
def _noise_times_state(c, x):
    return x * c.noise()


@sampler()
def _ops_on_state(c, x):
    return sqrt(x)


@sampler(state=2)
def _short(c, x, d):
    return x


@sampler()
def _string(c, x):
    return "x + 1"


@pytest.mark.parametrize("smp, pattern", [
    (_abs, r"not linear in its state: output 0 contains Abs\(\.\.\.\) of the state"),
    (_square, r"not linear in its state: output 0 contains a power x\*\*2"),
    (_x0_squared, r"contains a power \(.*x.*\)\*\*2"),
    (_noise_times_state, r"contains a product of state or noise terms, w_0\*x"),
    (_ops_on_state, r"contains a power sqrt\(x\)"),
    (_offset, r"adds a term that is not proportional .*: 1"),
])
def test_nonlinear_after_the_run_names_the_culprit_and_the_definition(smp, pattern):
    with pytest.raises(NonLinearSamplerError, match=pattern) as exc:
        derive(smp)
    # the line of the offending operation (the return line), not the decorator's
    assert f"(at {__file__}:{smp.step.__code__.co_firstlineno + 2})" in str(exc.value)
    assert repr(smp.name) in str(exc.value)


@pytest.mark.parametrize("smp, pattern", [
    (_branch, "branches on the value of the state or noise"),
    (_numpy, "cannot run symbolically .*sin"),
    (_numpy_sqrt, "cannot run symbolically .*sqrt"),
    (_math, "cannot run symbolically .*float"),
])
def test_nonlinear_during_the_run_names_the_operation_and_the_line(smp, pattern):
    with pytest.raises(DerivationError, match=pattern) as exc:
        derive(smp)
    # only a branch on the state is called non-linear; the others cannot run on symbols
    assert isinstance(exc.value, NonLinearSamplerError) == (smp is _branch)
    line = smp.step.__code__.co_firstlineno + 2  # decorator, def, then the offending line
    assert f"(at {__file__}:{line})" in str(exc.value)


@sampler(space="ve")
def _level_branch(c, x):
    if c.t.sigma > 10:
        return x
    return c.x0(x)


@sampler()
def _raises(c, x):
    raise KeyError("my own error")


def test_branch_on_a_level_is_explained_not_called_nonlinear():
    with pytest.raises(DerivationError, match="branches on a noise level") as exc:
        derive(_level_branch)
    assert not isinstance(exc.value, NonLinearSamplerError)
    assert "c.first, c.last or c.order" in str(exc.value)


def test_an_error_raised_by_the_definition_comes_back_as_itself():
    with pytest.raises(KeyError, match="my own error"):
        derive(_raises)


def test_default_key_follows_the_order_rule():
    # UniPC's order tag is not the int 1: a fixed default key made this fail (issue 9)
    m = derive(UNIPC)
    assert m.key[:2] == (False, False) and m.A.shape == (4, 4)


def test_malformed_definitions():
    with pytest.raises(DerivationError, match="returned 1 values but declares state=2") as e1:
        derive(_short)
    with pytest.raises(DerivationError, match="returned a str") as e2:
        derive(_string)
    assert not isinstance(e1.value, NonLinearSamplerError)
    assert not isinstance(e2.value, NonLinearSamplerError)
    with pytest.raises(ValueError, match="space must be"):
        sampler(space="xx")
    with pytest.raises(ValueError, match="state must be a positive int"):
        sampler(state=0)
