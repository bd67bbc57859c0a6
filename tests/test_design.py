"""Schedule design: exact gradients, constraints, and the acceptance test against diffusers."""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest
import sympy as sp

import symspec
from symspec import DDIM, DDPM, SAMPLERS, Schedule, sampler
from symspec.design.optimise import (
    LOGSNR_RANGE,
    DesignWarning,
    _constraints,
    _Param,
    baseline_schedules,
    design_schedule,
    objective,
)
from symspec.spectra import photo_psd, power_law
from symspec.symbolic.engine import derive, variant
from symspec.symbolic.symbols import lam as LAM


@sampler(space="vp", state=2)
def ab2(c, x, e_prev):
    """A user-defined two-step sampler: DDIM with an Adams-Bashforth noise estimate."""
    e = c.eps(x)
    e_use = e if c.first else (3 * e - e_prev) / 2
    x0 = (x - c.t.sigma * e_use) / c.t.alpha
    return c.p.alpha * x0 + c.p.sigma * e_use, e


from test_numeric import carried_noise, twice_denoised  # noqa: E402

CASES = [pytest.param(s, id=n) for n, s in SAMPLERS.items()] + [
    pytest.param(symspec.DDIM(eta=0.5), id="ddim-eta0.5"), pytest.param(ab2, id="user-ab2"),
    pytest.param(carried_noise, id="user-carried-noise"),
    pytest.param(twice_denoised, id="user-twice-denoised")]
PSD = np.array([0.003, 0.1, 1.0, 4.0, 30.0])


def _grid(smp):  # 3 steps, like the design test below: the derivations are shared
    if smp.space == "vp":
        return np.array([0.02, 0.3, 0.85, 1.0])
    return np.array([30.0, 3.0, 0.4, 0.0])


def _make(smp, grid, init_var=2.5):
    f = Schedule.from_alpha_bar if smp.space == "vp" else Schedule.from_sigmas
    return f(grid, init_var)


# -- gradients ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["w2", "kl", "kl_reverse"])
@pytest.mark.parametrize("smp", CASES)
def test_gradient_matches_central_differences(smp, kind, worst):
    grid = _grid(smp)
    J, g, gv = objective(smp, _make(smp, grid), PSD, kind, gradient=True)
    assert J == pytest.approx(objective(smp, _make(smp, grid), PSD, kind), rel=1e-13)
    fd = []
    for i in range(grid.size - 1):
        h = 6e-6 * grid[i]  # ~ eps**(1/3): balances truncation and rounding
        up, dn = grid.copy(), grid.copy()
        up[i] += h
        dn[i] -= h
        fd.append((objective(smp, _make(smp, up), PSD, kind)
                   - objective(smp, _make(smp, dn), PSD, kind)) / (2 * h))
    # central differences: truncation O(h^2) and rounding O(eps J / h), each ~1e-10 relative
    worst("design: gradient vs central differences (/ max|g|)",
          np.abs(g - fd).max() / np.abs(fd).max())
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-7 * np.abs(fd).max())
    h = 1e-4  # J is smooth in init_var (P is linear in it); a larger step keeps rounding small
    fdv = (objective(smp, _make(smp, grid, 2.5 + h), PSD, kind)
           - objective(smp, _make(smp, grid, 2.5 - h), PSD, kind)) / (2 * h)
    assert gv == pytest.approx(fdv, rel=1e-6, abs=1e-9)


def _mp_objective(smp, grid, V):
    """W2 in 40-digit arithmetic from the derived SymPy step maps (no numeric layer)."""
    n, k = len(grid) - 1, smp.state
    total = mp.mpf(0)
    for lam in PSD:
        S, T = mp.zeros(k, k), mp.zeros(k, 1)
        T[0] = 1
        for i in range(n):
            m = derive(smp, variant(smp, i, n))
            idx = [i, i + 1] + [i - j if i - j >= 0 else i for j in range(1, smp.history + 1)]
            sub = {**{s: sp.Float(str(grid[g]), 45) for s, g in zip(m.levels, idx, strict=True)},
                   LAM: sp.Float(repr(float(lam)), 45)}
            A = mp.matrix([[mp.mpf(str(sp.N(m.A[a, b].subs(sub), 45))) for b in range(k)]
                           for a in range(k)])
            Q = mp.matrix([[mp.mpf(str(sp.N(m.Q[a, b].subs(sub), 45))) for b in range(k)]
                           for a in range(k)])
            S, T = A * S * A.T + Q, A * T
        P = T[0] ** 2 * V + S[0, 0]
        total += (mp.sqrt(mp.mpf(repr(float(lam)))) - mp.sqrt(P)) ** 2
    return total


MP_CASES = {**{n: SAMPLERS[n] for n in ("ddpm", "ddim", "heun", "dpmpp", "euler_ancestral")},
            "ddim-eta0.5": symspec.DDIM(eta=0.5), "user-ab2": ab2,
            "user-carried-noise": carried_noise, "user-twice-denoised": twice_denoised}


@pytest.mark.parametrize("name", MP_CASES)
def test_gradient_matches_mpmath(name, worst):
    """objective(gradient=True) against 40-digit central differences of the objective
    composed from the derived SymPy maps: independent of the numeric layer's forward pass."""
    smp = MP_CASES[name]
    grid = _grid(smp)
    J, g, _ = objective(smp, _make(smp, grid), PSD, gradient=True)
    mp.mp.dps = 40
    try:
        assert float(_mp_objective(smp, grid, 2.5)) == pytest.approx(J, rel=1e-12)
        h = mp.mpf("1e-15")  # 40-digit central differences: error ~h**2 + 1e-40/h ~ 1e-25
        for i in range(grid.size - 1):
            gr = [mp.mpf(repr(float(x))) for x in grid]
            up, dn = list(gr), list(gr)
            up[i] += h
            dn[i] -= h
            ref = (_mp_objective(smp, up, 2.5) - _mp_objective(smp, dn, 2.5)) / (2 * h)
            worst("design: gradient vs 40-digit mpmath (relative)", abs(g[i] / float(ref) - 1))
            assert g[i] == pytest.approx(float(ref), rel=1e-10, abs=1e-13 * np.abs(g).max())
    finally:
        mp.mp.dps = 15


def test_parameterisation_is_monotone_inside_bounds_and_differentiable():
    par = _Param("vp", 6, -8.0, 5.0, None, 1.0, None)
    rng = np.random.default_rng(0)
    for theta in [rng.normal(0, 50, 6), np.full(6, 700.0), np.full(6, -700.0), np.zeros(6)]:
        grid = par.grid(theta)[0]
        u = np.log(grid[:-1]) - np.log1p(-grid[:-1])
        assert np.all(np.diff(grid) > 0) and grid[-1] == 1.0
        assert np.all((u > -8.0 - 1e-9) & (u < 5.0 + 1e-9))
    theta, c = rng.normal(0, 1, 6), rng.normal(0, 1, 6)

    def f(t):  # a linear functional of the free levels
        return float(c @ par.grid(t)[0][:-1])

    grid, s, dv = par.grid(theta)
    g = par.chain(np.append(c, 0.0), 0.0, s, dv)
    fd = [(f(theta + h) - f(theta - h)) / 2e-6 for h in np.eye(6) * 1e-6]
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-10)


# -- design ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_design_converges_and_beats_heuristics_for_every_sampler(name):
    smp = SAMPLERS[name]
    psd = power_law((6, 6))
    s = design_schedule(smp, psd, 3)
    assert s.meta["converged"] and s.steps == 3 and s.space == smp.space and s.chained
    # the same numbers through two compiled functions (different common subexpressions):
    # multistep extrapolation cancels, so rounding reaches ~1e-10 relative
    assert s.meta["objective"] == pytest.approx(objective(smp, s, psd), rel=1e-9)
    lo, hi = LOGSNR_RANGE
    for label, b in baseline_schedules(smp, 3).items():
        u = np.log(b.to_space("vp").start) - np.log1p(-b.to_space("vp").start)
        if b.chained and u.min() >= lo and u.max() <= hi:  # inside the design's search space
            assert s.meta["objective"] <= objective(smp, b, psd) * (1 + 1e-9), label


def test_equivalent_samplers_give_the_same_design():
    # Euler in sigma is DDIM (VE is VP rescaled), and the VE init variance sigma_0^2 + 1 is
    # VP's unit variance: the same problem, optimised in another space.
    psd = power_law((8, 8))
    a = design_schedule(symspec.DDIM, psd, 4)
    b = design_schedule(SAMPLERS["euler"], psd, 4)
    assert b.meta["objective"] == pytest.approx(a.meta["objective"], rel=1e-9)
    np.testing.assert_allclose(b.alpha_bar, a.alpha_bar, rtol=1e-4)


def test_design_is_deterministic():
    psd = power_law((8, 8))
    a, b = (design_schedule(symspec.DDPM, psd, 6, "kl") for _ in range(2))
    assert np.array_equal(a.start, b.start) and np.array_equal(a.end, b.end)
    assert a.meta == b.meta


def test_constraints_are_honoured():
    psd = power_law((8, 8))
    s = design_schedule(symspec.DDIM, psd, 4, start=0.01, end=0.999)
    assert s.alpha_bar[0] == 0.01 and s.alpha_bar[-1] == 0.999
    s = design_schedule(symspec.DDPM, psd, 4, level_range=(0.05, 0.9), start="free")
    assert s.alpha_bar[0] >= 0.05 and s.alpha_bar[-2] <= 0.9 and s.alpha_bar[-1] == 1
    s = design_schedule(SAMPLERS["euler"], psd, 3, start=20.0, space="ve")
    assert s.sigmas[0] == 20.0 and s.init_var == pytest.approx(401.0)
    s = design_schedule(SAMPLERS["euler"], psd, 3, start=1 / 401, space="vp")  # same level
    assert s.sigmas[0] == pytest.approx(20.0, rel=1e-12)
    s = design_schedule(symspec.DDPM, psd, 1, start=0.2)  # nothing left to choose
    assert s.meta["iterations"] == 0 and s.alpha_bar.tolist() == [0.2, 1.0]
    # the default honest start cannot be met when every allowed level is too clean
    with pytest.raises(ValueError, match="no honest start: .* use start='free'"):
        design_schedule(symspec.DDPM, psd, 4, level_range=(0.05, 0.9))


@pytest.mark.parametrize("smp", [symspec.DDPM, symspec.DDIM], ids=["ddpm", "ddim"])
def test_zero_terminal_snr(smp):
    psd = power_law((8, 8))
    s = design_schedule(smp, psd, 4, zero_terminal_snr=True)
    assert s.alpha_bar[0] == 0 and s.meta["converged"]
    assert s.meta["objective"] == pytest.approx(objective(smp, s, psd), rel=1e-12)
    r = symspec.spectral_response(smp, s, psd)  # the numeric layer's own evaluation
    assert s.meta["objective"] == pytest.approx(symspec.divergence(psd, r.output_psd), rel=1e-12)
    # the maps at alpha-bar 0 are the limit of those just above it
    near = Schedule.from_alpha_bar(np.append(1e-13, s.alpha_bar[1:]))
    assert objective(smp, near, psd) == pytest.approx(s.meta["objective"], rel=1e-6)
    if smp is symspec.DDPM:  # its first step forgets the latent (gain sqrt(ab_0) ... = 0)
        other = Schedule.from_alpha_bar(s.alpha_bar, init_var=7.0)
        assert objective(smp, other, psd) == objective(smp, s, psd)
    free = design_schedule(smp, psd, 4)
    assert free.meta["objective"] <= s.meta["objective"] * (1 + 1e-9)  # a constraint costs


def test_steps_up_to_1000_and_an_honest_iteration_limit():
    with pytest.warns(DesignWarning, match="did not converge"):
        s = design_schedule(symspec.DDIM, power_law((4, 4)), 1000, maxiter=5)
    assert s.steps == 1000 and np.all(np.diff(s.alpha_bar) > 0)
    assert not s.meta["converged"] and s.meta["iterations"] <= 5


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": 0}, "steps"), ({"steps": -3}, "steps"), ({"steps": 2.5}, "steps"),
    ({"start": 0.5, "end": 0.2}, "infeasible"), ({"start": 0.99, "level_range": (0.1, 0.9)},
                                                 "infeasible"),
    ({"level_range": (0.9, 0.1)}, "level_range"), ({"start": 1.5}, "start"),
    ({"start": 0.1, "zero_terminal_snr": True}, "not both"), ({"divergence": "l1"}, "divergence"),
    ({"starts": ("karras",)}, "starts"), ({"init_var": -1.0}, "init_var"),
])
def test_bad_input(kwargs, match):
    kw = {"steps": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        design_schedule(symspec.DDIM, power_law((4, 4)), **kw)


def test_bad_psd_and_sampler():
    with pytest.raises(ValueError, match="no positive entry"):
        design_schedule(symspec.DDIM, np.zeros((4, 4)), 3)
    with pytest.raises(ValueError, match="psd > 0"):
        design_schedule(symspec.DDIM, np.array([0.0, 1.0]), 3, "kl")
    with pytest.raises(ValueError, match="VP sampler"):
        design_schedule(SAMPLERS["euler"], power_law((4, 4)), 3, zero_terminal_snr=True)
    with pytest.raises(TypeError, match="Sampler"):
        design_schedule("ddim", power_law((4, 4)), 3)
    with pytest.raises(ValueError, match="finite"):
        design_schedule(symspec.DDIM, np.array([1.0, np.nan]), 3)


def test_constraint_parsing_converts_units():
    par = _constraints(SAMPLERS["euler"], 3, "vp", 0.2, None, None, False, None)
    assert par.first == pytest.approx(2.0) and par.final == 0.0  # alpha-bar 0.2 = sigma 2


# -- acceptance: designed schedules beat every diffusers default, in diffusers -------------
SPECTRA = {"powerlaw": lambda: power_law((32, 32)), "photo": lambda: np.array(photo_psd(32))}


@pytest.fixture(scope="module")
def diffusers_defaults():
    harness = pytest.importorskip("harness")
    from diffusers import DDIMScheduler, DDPMScheduler

    out = {}
    for spec, make in SPECTRA.items():
        psd = make().ravel()
        for name, cls, kw in (("ddim", DDIMScheduler, {"eta": 0.0}),
                              ("ddpm", DDPMScheduler, None)):
            for n in (5, 10, 20):
                best = np.inf
                for beta in ("linear", "squaredcos_cap_v2"):
                    for spacing in ("leading", "trailing", "linspace"):
                        sch = cls(beta_schedule=beta, timestep_spacing=spacing, clip_sample=False)
                        sch.set_timesteps(n)
                        tr, noise, _ = harness.response(sch, psd, kw)  # init sigma 1
                        best = min(best, symspec.divergence(psd, tr**2 + noise))
                out[spec, name, n] = best
    return out


@pytest.mark.parametrize("n", [5, 10, 20])
@pytest.mark.parametrize("name", ["ddim", "ddpm"])
@pytest.mark.parametrize("spec", list(SPECTRA))
def test_designed_schedule_beats_diffusers_defaults(spec, name, n, diffusers_defaults, worst):
    harness = pytest.importorskip("harness")
    from diffusers import DDPMScheduler

    from symspec.diffusers.export import level_range, to_diffusers

    smp, psd, base = SAMPLERS[name], SPECTRA[spec](), DDPMScheduler()
    # the free start: this claim holds for the exact denoiser (see the honest-start test)
    s = design_schedule(smp, psd, n, level_range=level_range(base), start="free")
    sch = to_diffusers(smp, s, base, psd=psd)
    tr, noise, _ = harness.response(sch, psd.ravel())
    w2 = symspec.divergence(psd.ravel(), tr**2 * float(sch.init_noise_sigma) ** 2 + noise)
    # the real run is what symspec predicts for the exported (quantised) grid; DPM-Solver
    # keeps its sigmas in float32, hence the looser tolerance there
    assert w2 == pytest.approx(sch.symspec_export["objective_exported"],
                               rel=3e-6 if name == "ddim" else 1e-10)
    best = diffusers_defaults[spec, name, n]
    worst("design: W2 designed / best diffusers default (< 1)", w2 / best)
    assert w2 < best


# -- command line ------------------------------------------------------------------------
def test_cli_design_and_compare(tmp_path, capsys):
    import json

    from symspec.cli import main

    out, png = tmp_path / "s.json", tmp_path / "s.png"
    args = ["--psd", "powerlaw:2:8", "--sampler", "ddpm", "--steps", "4"]
    assert main(["design", *args, "--out", str(out), "--plot", str(png)]) == 0
    s = Schedule.from_json(out.read_text())
    ref = design_schedule(symspec.DDPM, power_law((8, 8)), 4)
    np.testing.assert_array_equal(s.alpha_bar, ref.alpha_bar)
    assert png.read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert main(["compare", *args, "--schedule", str(out), "--json"]) == 0
    score = json.loads(capsys.readouterr().out)["objective"]
    assert score["designed"] == pytest.approx(ref.meta["objective"], rel=1e-9)
    assert set(score) == {"designed", *baseline_schedules(symspec.DDPM, 4)}
    assert main(["design", *args, "--base", "linear", "--out", str(out)]) == 0
    lo, hi = symspec.schedules.training_alphas_cumprod(1000)[[-1, 0]]
    ab = Schedule.from_json(out.read_text()).alpha_bar
    assert ab[0] >= lo and ab[-2] <= hi


@pytest.mark.parametrize("extra, match", [
    (["--steps", "0"], "steps"), (["--start", "0.5", "--end", "0.2"], "infeasible"),
    (["--psd", "nosuchfile.npy"], "no such file")])
def test_cli_design_errors(tmp_path, capsys, extra, match):
    from symspec.cli import main

    rc = main(["design", "--out", str(tmp_path / "s.json"), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and match in err and err.count("\n") == 1
    assert not (tmp_path / "s.json").exists()


def test_fixed_start_outside_the_range_of_the_free_levels():
    s = design_schedule(symspec.DDIM, power_law((8, 8)), 4, start=0.01, level_range=(0.1, 0.9))
    assert s.alpha_bar[0] == 0.01 and np.all(s.alpha_bar[1:-1] >= 0.1)
    assert np.all(s.alpha_bar[1:-1] <= 0.9)


# -- non-chained grids (issue 16) and the honest start (issue 17) -------------------------
@pytest.mark.parametrize("smp", [DDIM, DDPM, symspec.EULER, symspec.DPMPP],
                         ids=["ddim", "ddpm", "euler", "dpmpp"])
def test_unchained_gradient_matches_central_differences(smp):
    from symspec.design.optimise import _constraints, _unchained

    lam = symspec.spectra.power_law((6, 6)).ravel()
    n = 4
    par = _constraints(smp, n, None, None, None, None, False, None)
    rng = np.random.default_rng(5)
    theta = rng.normal(0, 0.5, par.m)
    fun, schedule = _unchained(smp, par, theta, lam, None, "w2", "epsilon")
    x = np.append(theta, rng.normal(0, 0.7, n - 1))
    assert not schedule(x).chained  # a real shift, not the chained grid
    J, g = fun(x)
    assert J == pytest.approx(objective(smp, schedule(x), lam), rel=1e-12)
    h = 1e-6
    fd = np.array([(fun(x + h * e)[0] - fun(x - h * e)[0]) / (2 * h) for e in np.eye(x.size)])
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-7 * np.abs(fd).max())


def test_unchained_design_beats_the_stride_heuristic_and_the_chained_design():
    psd = symspec.spectra.power_law((16, 16))
    heur = baseline_schedules(DDIM, 5)
    best = min(objective(DDIM, s, psd) for s in heur.values())
    chained = design_schedule(DDIM, psd, 5)
    free = design_schedule(DDIM, psd, 5, chained=False)
    assert not free.chained and free.meta["chained"] is False
    assert free.meta["objective"] == pytest.approx(objective(DDIM, free, psd), rel=1e-12)
    assert free.meta["objective"] <= chained.meta["objective"]
    assert free.meta["objective"] < best
    assert np.all(free.end >= free.start) and np.all(np.diff(free.start) > 0)


def test_honest_start_keeps_the_initial_latent_within_tolerance():
    from symspec.design.optimise import initial_kl

    psd = symspec.spectra.power_law((16, 16), 1.0)
    free = design_schedule(DDIM, psd, 10, start="free")
    honest = design_schedule(DDIM, psd, 10)
    loose = design_schedule(DDIM, psd, 10, kl_tolerance=1.0)
    # the free design starts far from pure noise: its latent is far from the true marginal
    assert free.meta["initial_kl"] > 1.0 and free.meta["start_rule"] == "free"
    assert honest.meta["start_rule"] == "honest"
    assert honest.meta["initial_kl"] <= 0.01 * (1 + 1e-9)
    assert loose.meta["initial_kl"] <= 1.0 * (1 + 1e-9)
    # KL by hand for the honest start: 1/2 sum(1/D - 1 + log D), D = ab lam + 1 - ab
    ab = honest.alpha_bar[0]
    D = ab * psd.ravel() + 1 - ab
    assert initial_kl("vp", ab, psd) == pytest.approx(0.5 * np.sum(1 / D - 1 + np.log(D)))
    # the constraint costs objective; a looser tolerance costs less
    assert free.meta["objective"] < loose.meta["objective"] < honest.meta["objective"]
    with pytest.raises(ValueError, match="start must be a level, 'honest' or 'free'"):
        design_schedule(DDIM, psd, 3, start="clean")
    with pytest.raises(ValueError, match="kl_tolerance must be a finite number > 0"):
        design_schedule(DDIM, psd, 3, kl_tolerance=0)


def _mp_objective_steps(smp, start, end, V):
    """W2 in 40-digit arithmetic from the derived maps, for any (start, end) pairs of a
    one-step sampler (no history)."""
    assert smp.history == 0
    n, total = len(start), mp.mpf(0)
    for lam in PSD:
        S, T = mp.mpf(0), mp.mpf(1)
        for i in range(n):
            m = derive(smp, variant(smp, i, n))
            sub = {m.levels[0]: sp.Float(repr(float(start[i])), 45),
                   m.levels[1]: sp.Float(repr(float(end[i])), 45),
                   LAM: sp.Float(repr(float(lam)), 45)}
            a = mp.mpf(str(sp.N(m.A[0, 0].subs(sub), 45)))
            S, T = a * a * S + mp.mpf(str(sp.N(m.Q[0, 0].subs(sub), 45))), a * T
        P = T**2 * mp.mpf(repr(float(V))) + S
        total += (mp.sqrt(mp.mpf(repr(float(lam)))) - mp.sqrt(P)) ** 2
    return total


@pytest.mark.parametrize("smp", [symspec.EULER, symspec.EULER_ANCESTRAL],
                         ids=["euler", "euler_ancestral"])
def test_ve_initial_variance_term_of_the_gradient(smp):
    """In VE the default latent has variance sigma_0**2 + 1, which moves with the first
    level: dJ/dsigma_0 = g[0] + 2 sigma_0 dJ/dV.  Both terms against 40-digit central
    differences in sigma_0 with V following it, and the design's parameterisation (which
    adds the term itself) against the same differences through its grid."""
    from symspec.design.optimise import _constraints, _unchained

    grid = np.array([30.0, 3.0, 0.4, 0.0])
    J, g, gv = objective(smp, Schedule.from_sigmas(grid), PSD, gradient=True)
    mp.mp.dps = 40
    try:
        h = mp.mpf("1e-15")
        s0 = mp.mpf(repr(float(grid[0])))
        gr = [mp.mpf(repr(float(x))) for x in grid]

        def J_at(s):  # V = sigma_0**2 + 1 follows the first level
            return _mp_objective(smp, [s, *gr[1:]], s**2 + 1)

        total = float((J_at(s0 + h) - J_at(s0 - h)) / (2 * h))
        V = s0**2 + 1
        dV = float((_mp_objective(smp, gr, V + h) - _mp_objective(smp, gr, V - h)) / (2 * h))
        assert gv == pytest.approx(dV, rel=1e-10)
        assert g[0] + 2 * grid[0] * gv == pytest.approx(total, rel=1e-10)
        assert abs(2 * grid[0] * gv) > 0.1 * abs(total)  # the term matters here
        # the design's map theta -> grid (first level free, V its default) and its gradient
        par = _constraints(smp, 3, None, None, None, None, False, None)
        assert par.first is None and par.init_var is None
        theta = np.array([0.3, -0.2, 0.1])[:par.m]
        fun, schedule = _unchained(smp, par, theta, PSD, None, "w2", "epsilon")
        x = np.append(theta, np.zeros(par.steps - 1))  # phi = 0: the chained grid
        sch = schedule(x)
        assert sch.chained and sch.init_var == pytest.approx(sch.start[0] ** 2 + 1, rel=1e-15)
        _, gx = fun(x)
        for k in range(par.m):
            e = np.zeros(x.size)
            e[k] = 1e-6
            vals = []
            for sign in (1, -1):
                sk = schedule(x + sign * e)  # not chained: phi = 0 is chained at x only
                vals.append(_mp_objective_steps(smp, sk.start, sk.end, sk.init_var))
            fd = float((vals[0] - vals[1]) / mp.mpf("2e-6"))
            assert gx[k] == pytest.approx(fd, rel=1e-6, abs=1e-9 * np.abs(gx).max())
    finally:
        mp.mp.dps = 15


@pytest.mark.parametrize("smp", [symspec.EULER, symspec.HEUN], ids=["euler", "heun"])
def test_chained_parameter_gradient_includes_the_ve_initial_variance(smp):
    # init_var = sigma_0**2 + 1 moves with a free first level: its term must be in the
    # gradient the optimiser sees (central differences of the same parameterisation)
    from symspec.design.optimise import _chained

    lam = power_law((6, 6)).ravel()
    par = _constraints(smp, 4, None, None, None, None, False, None)
    evaluate = _chained(smp, par, lam, None, "w2", "epsilon")
    theta = np.random.default_rng(2).normal(0, 0.5, par.m)
    _, g = evaluate(theta)
    h = 1e-6
    fd = np.array([(evaluate(theta + h * e)[0] - evaluate(theta - h * e)[0]) / (2 * h)
                   for e in np.eye(theta.size)])
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8 * np.abs(fd).max())
    fixed = _constraints(smp, 4, None, None, None, None, False, 5.0)  # init_var held at 5
    _, g_fixed = _chained(smp, fixed, lam, None, "w2", "epsilon")(theta)
    assert not np.allclose(g, g_fixed)  # the term is there, and it matters


def test_unchained_design_keeps_the_honest_start():
    # the non-chained step once moved a free first level past the honest bound (0.31 nats
    # on the photos); it now keeps the chained design's honest first level
    psd = photo_psd(16)
    s = design_schedule(DDIM, psd, 6, chained=False)
    assert not s.chained and s.meta["initial_kl"] <= 0.01 * (1 + 1e-9)


def test_psd_values_whose_output_underflows_are_named():
    # issue 15: a bin <= 1e-170 failed with "w2 is not differentiable where psd_model = 0"
    psd = power_law((8, 8))
    psd[0, 1] = 1e-200
    with pytest.raises(ValueError, match=r"underflows to 0 .* smallest psd value is 1e-200"):
        design_schedule(DDIM, psd, 4)


# -- many designs at once (issue 14, item 4) ------------------------------------------------
def _stack(shape=(8, 8), alphas=(1.0, 2.0, 3.0)):
    return np.stack([power_law(shape, a) for a in alphas])


@pytest.mark.parametrize("smp, kind, options", [
    pytest.param(DDIM, "w2", {}, id="ddim-honest"),
    pytest.param(DDPM, "kl", {"start": 0.01}, id="ddpm-kl-fixed-start"),
    pytest.param(DDPM, "w2", {"zero_terminal_snr": True}, id="ddpm-zero-terminal-snr"),
    pytest.param(SAMPLERS["euler"], "kl_reverse", {"start": "free"}, id="euler-free"),
    pytest.param(DDIM, "w2", {"chained": False}, id="ddim-unchained"),
    pytest.param(SAMPLERS["dpmpp"], "w2", {}, id="dpmpp-multistep"),
    pytest.param(ab2, "w2", {"level_range": (0.001, 0.95)}, id="user-ab2"),
])
def test_batched_designs_equal_the_single_designs(smp, kind, options):
    psds = _stack()
    weights = np.random.default_rng(1).uniform(0.5, 2.0, psds.shape)
    many = symspec.design.design_schedules(smp, psds, 4, kind, weights=weights, **options)
    for psd, w, got in zip(psds, weights, many, strict=True):
        want = design_schedule(smp, psd, 4, kind, weights=w, **options)
        J, J0 = got.meta["objective"], want.meta["objective"]
        # the same iterates up to rounding, which can only move the stopping point
        assert J0 * (1 - 1e-3) <= J <= J0 * (1 + 1e-6), (J, J0)
        assert got.meta.keys() == want.meta.keys()
        for key in ("start_rule", "chained", "divergence", "start", "converged"):
            assert got.meta[key] == want.meta[key]
        assert got.chained == want.chained and got.space == want.space
        assert got.meta["initial_kl"] <= 0.01 + 1e-12 or options


def test_batched_evaluation_equals_the_core_for_every_sampler():
    # one forward run and one adjoint for all spectra, with per-spectrum levels
    from symspec.design import batch
    from symspec.design.optimise import _value_and_grad

    rng = np.random.default_rng(2)
    lam = rng.uniform(0.01, 10.0, (3, 6))
    w = rng.uniform(0.5, 2.0, (3, 6))
    for smp in [*SAMPLERS.values(), symspec.DDIM(eta=0.5), ab2, carried_noise]:
        grids = [_grid(smp) * (1 + 0.1 * b) if smp.space == "ve" else
                 np.append(np.sort(rng.uniform(0.01, 0.95, 3)), 1.0) for b in range(3)]
        start = np.array([g[:-1] for g in grids])
        end = np.array([g[1:] for g in grids])
        V = np.array([1.0, 1.5, 2.5])
        free = (np.array([True, True, True]), np.array([True, True, False]))
        for kind in ("w2", "kl"):
            J, gs, ge, gV, ok = batch._value_and_grad_batch(smp, start, end, V, lam, w, kind,
                                                            "epsilon", free)
            assert ok.all()
            for b in range(3):
                s = Schedule(start[b], end[b], smp.space, V[b])
                J1, gs1, ge1, gV1 = _value_and_grad(smp, s, lam[b], w[b], kind, "epsilon",
                                                    free)
                assert J[b] == pytest.approx(J1, rel=1e-12), smp.name
                np.testing.assert_allclose(gs[b], gs1, rtol=1e-9, atol=1e-12 * abs(J1))
                np.testing.assert_allclose(ge[b], ge1, rtol=1e-9, atol=1e-12 * abs(J1))
                assert gV[b] == pytest.approx(gV1, rel=1e-9, abs=1e-12 * abs(J1))


def test_batched_lbfgsb_takes_scipys_iterates():
    # the reverse-communication driver must be scipy.optimize.minimize, step for step
    from scipy.optimize import minimize

    from symspec.design import batch
    from symspec.design.optimise import _THETA_MAX

    def rosen(x):
        f = np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
        g = np.zeros_like(x)
        g[:-1] = -400 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2 * (1 - x[:-1])
        g[1:] += 200 * (x[1:] - x[:-1] ** 2)
        return f, g

    def asked(x):  # the generator form: the evaluation is "requested" and answered
        return (yield x)

    x0 = np.array([-1.2, 1.0, 13.0, 0.5])  # 13 starts outside the box: clipped
    for maxiter in (7, 2000):
        want = minimize(rosen, x0, jac=True, method="L-BFGS-B",
                        bounds=[(-_THETA_MAX, _THETA_MAX)] * 4,
                        options={"maxiter": maxiter, "ftol": 1e-10, "gtol": 1e-9})
        gen = batch._minimize(asked, x0, maxiter)
        x = next(gen)
        try:
            while True:
                x = gen.send(rosen(x))
        except StopIteration as stop:
            f, xs, nit, nfev, ok, msg = stop.value
        np.testing.assert_array_equal(xs, want.x)
        assert (f, nit, nfev, ok, msg) == (want.fun, want.nit, want.nfev, want.success,
                                           want.message)


def test_batched_designs_are_faster_than_the_loop():
    import time

    psds = np.stack([power_law((16, 16), a) for a in np.linspace(1.0, 3.0, 12)])
    symspec.design.design_schedules(DDIM, psds[:2], 6)  # compile outside the timings
    t = time.perf_counter()
    many = symspec.design.design_schedules(DDIM, psds, 6)
    batched = time.perf_counter() - t
    t = time.perf_counter()
    one = [design_schedule(DDIM, p, 6) for p in psds]
    loop = time.perf_counter() - t
    assert max(abs(m.meta["objective"] / o.meta["objective"] - 1)
               for m, o in zip(many, one, strict=True)) < 1e-6
    assert batched < loop, (batched, loop)  # bench/batch.py measures the full ratio


@pytest.mark.parametrize("psds, match", [
    ([], r"psds is empty"),
    (np.empty((0, 4, 4)), r"psds is empty"),
    (np.ones(4), r"psds must be a stack of spectra .* shape \(4,\)"),
    ([np.ones((4, 4)), np.ones((4, 5))], r"psds must all have one shape: .* psds\[1\] has "
                                         r"\(4, 5\)"),
    ([np.ones((4, 4)), np.full((4, 4), np.nan)], r"psds\[1\] must be finite"),
    ([np.ones((4, 4)), -np.ones((4, 4))], r"psds\[1\] must be >= 0"),
    ([np.ones((4, 4)), np.zeros((4, 4))], r"psds\[1\]: psd has no positive entry"),
])
def test_batched_designs_refuse_bad_stacks(psds, match):
    with pytest.raises(ValueError, match=match):
        symspec.design.design_schedules(DDIM, psds, 3)


def test_batched_designs_refuse_bad_options_and_name_the_failing_spectrum():
    psds = _stack()
    with pytest.raises(TypeError, match="psds must be a stack of spectra"):
        symspec.design.design_schedules(DDIM, "psd.npy", 3)
    with pytest.raises(ValueError, match=r"weights must broadcast to the stack's shape "
                                         r"\(3, 8, 8\), got shape \(5,\)"):
        symspec.design.design_schedules(DDIM, psds, 3, weights=np.ones(5))
    with pytest.raises(ValueError, match="steps must be an int >= 1, got 0"):
        symspec.design.design_schedules(DDIM, psds, 0)
    with pytest.raises(ValueError, match="divergence must be one of"):
        symspec.design.design_schedules(DDIM, psds, 3, "l2")
    with pytest.raises(TypeError, match="sampler"):
        symspec.design.design_schedules("ddim", psds, 3)
    bad = psds.copy()
    bad[2, 0, 1] = 1e-200  # its output underflows: the batch redoes it alone, which names it
    with pytest.raises(ValueError, match=r"psds\[2\]: the output spectrum underflows"):
        symspec.design.design_schedules(DDIM, bad, 3)
    with pytest.raises(ValueError, match=r"psds\[0\]: no honest start"):
        symspec.design.design_schedules(DDIM, psds, 3, init_var=1.3)


def test_batched_designs_keep_the_tape_bounded(monkeypatch):
    # spectra in blocks whose tape fits in TAPE_BYTES; one too large alone: the single path
    from symspec.design import batch

    psds = _stack((16, 16), (1.0, 2.0, 3.0, 3.5))
    want = [s.meta["objective"] for s in symspec.design.design_schedules(DDIM, psds, 5)]
    seen = []
    real = batch._value_and_grad_batch
    monkeypatch.setattr(batch, "_value_and_grad_batch",
                        lambda *a: seen.append(a[4].shape[0]) or real(*a))
    K = batch._Batch(DDIM, [np.unique(p) for p in psds], [None] * 4, [None] * 4, "w2",
                     "epsilon", [0, 1, 2, 3]).lam.shape[1]
    for budget, rows in ((2 * 16 * 5 * 2 * K, [2]), (100, [])):  # 2 spectra; none
        seen.clear()
        monkeypatch.setattr(batch, "TAPE_BYTES", budget)
        got = symspec.design.design_schedules(DDIM, psds, 5)
        assert sorted(set(seen))[-1:] == rows
        for g, w in zip(got, want, strict=True):
            assert g.meta["objective"] == pytest.approx(w, rel=1e-9)
