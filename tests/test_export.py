"""Export of designed schedules to diffusers: the real schedulers run the designed grid."""

from __future__ import annotations

import numpy as np
import pytest

import symspec
from symspec import SAMPLERS, Schedule
from symspec._io import atomic_write
from symspec.design import design_schedule
from symspec.diffusers.export import EXPORTERS, level_range, to_diffusers
from symspec.schedules import training_alphas_cumprod
from symspec.spectra import power_law

_EXTRA = 'the test extra installs it: pip install -e ".[test]"'
torch = pytest.importorskip("torch", reason=f"exporting to diffusers needs torch; {_EXTRA}")
diffusers = pytest.importorskip("diffusers", reason=f"exporting needs diffusers; {_EXTRA}")
harness = pytest.importorskip("harness", reason="tests/harness.py (the exact-model loop) is "
                              "imported from tests/: run pytest from the repository root")
DDPMScheduler = diffusers.DDPMScheduler

PSD = power_law((8, 8))


def _design(smp, n=6, **kw):
    return design_schedule(smp, PSD, n, level_range=level_range(None, smp.space), **kw)


def test_level_range_is_the_training_range():
    ab = training_alphas_cumprod(1000, "linear")
    lo, hi = level_range()
    assert lo == pytest.approx(ab[-1], rel=1e-6) and hi == pytest.approx(ab[0], rel=1e-6)
    slo, shi = level_range(None, "ve")
    assert slo == pytest.approx(np.sqrt((1 - hi) / hi)) and shi == pytest.approx(
        np.sqrt((1 - lo) / lo))


@pytest.mark.parametrize("smp", [symspec.DDPM, symspec.DDPM(variance="fixed_large",
                                                           last_noise=True),
                                 symspec.DDIM(eta=1.0)], ids=["ddpm", "ddpm-large", "ddim-eta1"])
def test_ddpm_type_export_runs_the_exported_grid(smp):
    s = _design(smp)
    sch = to_diffusers(smp, s, psd=PSD)
    rep = sch.symspec_export
    assert type(sch).__name__ == "DDPMScheduler" and sch.timesteps.tolist() == rep["timesteps"]
    exported = Schedule.from_alpha_bar(np.append(rep["levels"], 1.0))
    tr, noise, _ = harness.response(sch, PSD.ravel())  # init_noise_sigma is 1
    r = symspec.spectral_response(smp, exported, PSD)
    np.testing.assert_allclose(tr, r.transfer.ravel(), rtol=1e-10)
    np.testing.assert_allclose(noise, r.noise_psd.ravel(), rtol=1e-9, atol=1e-15)
    assert rep["objective_exported"] == pytest.approx(
        symspec.divergence(PSD.ravel(), tr**2 + noise), rel=1e-10)
    # round trip: diffusers' own reading of the scheduler is the exported grid ...
    smp2, back = symspec.from_diffusers(sch)
    np.testing.assert_array_equal(back.start, exported.start)
    np.testing.assert_array_equal(back.end, exported.end)
    # ... which is the designed one up to quantisation: each level moved to the nearest
    # training level, at most half a training step away in log-SNR
    ab = sch.alphas_cumprod.double().numpy()
    table = np.log(ab) - np.log1p(-ab)
    u = np.log(s.alpha_bar[:-1]) - np.log1p(-s.alpha_bar[:-1])
    half = np.abs(np.diff(table)).max() / 2
    assert rep["max_logsnr_error"] == pytest.approx(np.abs(table[rep["timesteps"]] - u).max())
    assert rep["max_logsnr_error"] <= half


EXPORTED = [pytest.param(symspec.DDIM, "DPMSolverMultistepScheduler", id="ddim"),
            pytest.param(SAMPLERS["dpmpp"], "DPMSolverMultistepScheduler", id="dpmpp2"),
            pytest.param(SAMPLERS["dpmpp"](solver_order=3), "DPMSolverMultistepScheduler",
                         id="dpmpp3"),
            pytest.param(SAMPLERS["dpmpp"](sde=True), "DPMSolverMultistepScheduler",
                         id="sde-dpmpp2"),
            pytest.param(SAMPLERS["euler"], "EulerDiscreteScheduler", id="euler"),
            pytest.param(SAMPLERS["heun"], "HeunDiscreteScheduler", id="heun")]


@pytest.mark.parametrize("smp, cls", EXPORTED)
def test_export_round_trip_and_real_run(smp, cls, worst):
    s = _design(smp, 6)
    sch = to_diffusers(smp, s, psd=PSD)
    assert type(sch).__name__ == cls
    # diffusers' own reading of the configured scheduler ...
    smp2, back = symspec.from_diffusers(sch)
    back = back.to_space(smp.space)
    # ... is the designed grid up to the grid diffusers can hold: training timesteps
    # (nearest in log-SNR: within half a training step) or float32 sigmas (Heun: float32
    # timesteps interpolated back to sigmas)
    if sch.symspec_export["timesteps"] is not None:
        ab = sch.alphas_cumprod.double().numpy()
        half = np.abs(np.diff(np.log(ab) - np.log1p(-ab))).max() / 2
        u = np.log(back.to_space("vp").start) - np.log1p(-back.to_space("vp").start)
        u0 = np.log(s.alpha_bar[:-1]) - np.log1p(-s.alpha_bar[:-1])
        assert np.abs(u - u0).max() <= half
    else:
        np.testing.assert_allclose(back.start, s.start, rtol=1e-6 if cls[0] == "E" else 1e-4)
    assert back.chained and back.end[-1] == s.end[-1]
    assert back.init_var == pytest.approx(s.to_space(smp.space).init_var, rel=1e-6)
    np.testing.assert_allclose(back.start, sch.symspec_export["levels"], rtol=1e-12)
    # diffusers computes init_noise_sigma in float32; the float64 run uses its float64 value
    V = float(harness.as_float64(sch).init_noise_sigma) ** 2
    back = Schedule(back.start, back.end, back.space, V)
    # the scheduler runs the designed sampler's maps: DPM-Solver++ of order 1 *is* DDIM
    r = symspec.spectral_response(smp, back, PSD)
    r2 = symspec.spectral_response(smp2, back, PSD)
    np.testing.assert_allclose(r2.output_psd, r.output_psd, rtol=1e-12)
    # and the real run agrees: to float64 rounding once the scheduler's internal float32
    # casts are off, to a few float32 roundings per step as diffusers ships it
    for strict64, rtol in ((True, 1e-9), (False, 3e-6)):
        tr, noise, _ = harness.response(sch, PSD.ravel(), strict64=strict64)
        out = tr**2 * V + noise
        worst(f"export: diffusers run vs symspec ({'float64' if strict64 else 'as shipped'})",
              np.abs(out / r.output_psd.ravel() - 1).max())
        np.testing.assert_allclose(out, r.output_psd.ravel(), rtol=rtol)
    assert sch.symspec_export["objective_exported"] == pytest.approx(
        symspec.divergence(PSD, r.output_psd), rel=1e-10)


def test_round_trip_through_json(tmp_path):
    s = _design(symspec.DDPM, 4)
    path = tmp_path / "schedule.json"
    atomic_write(path, s.to_json())
    back = Schedule.from_json(path.read_text())
    np.testing.assert_array_equal(back.alpha_bar, s.alpha_bar)
    assert back.meta == s.meta and back.init_var == s.init_var
    assert to_diffusers(symspec.DDPM, back).timesteps.tolist() == \
        to_diffusers(symspec.DDPM, s).timesteps.tolist()


def test_base_configuration_is_kept():
    from diffusers import DDPMScheduler

    base = DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                         clip_sample=True)
    s = design_schedule(symspec.DDIM, PSD, 5, level_range=level_range(base))
    sch = to_diffusers(symspec.DDIM, s, base)
    assert sch.config.beta_schedule == "squaredcos_cap_v2"
    assert sch.config.prediction_type == "v_prediction" and not sch.config.thresholding
    np.testing.assert_array_equal(sch.alphas_cumprod.numpy(), base.alphas_cumprod.numpy())
    tr, noise, _ = harness.response(sch, PSD.ravel(), strict64=True)  # v-prediction
    ran = Schedule.from_alpha_bar(np.append(sch.symspec_export["levels"], 1.0))
    r = symspec.spectral_response(symspec.DDIM, ran, PSD)
    np.testing.assert_allclose(tr**2 + noise, r.output_psd.ravel(), rtol=1e-9)


def test_many_steps_get_distinct_timesteps():
    s = Schedule.from_alpha_bar(np.append(np.linspace(0.5, 0.50001, 300), 1.0))
    ts = to_diffusers(symspec.DDPM, s).timesteps.numpy()
    assert ts.size == 300 and np.all(np.diff(ts) < 0) and ts.min() >= 0


def test_exporters_cover_documented_samplers():
    assert set(EXPORTERS) <= {s.step for s in SAMPLERS.values()}


@pytest.mark.parametrize("smp, schedule, match", [
    (SAMPLERS["lms"], Schedule.from_sigmas([10.0, 1.0, 0.0]), "no diffusers scheduler"),
    (symspec.DDIM(eta=0.5), Schedule.from_alpha_bar([0.1, 0.5, 1.0]), "eta=0.5"),
    (symspec.DPMPP, Schedule([0.1, 0.6], [0.5, 1.0]), "chained"),  # DDIM, DDPM export it
    (symspec.DDIM, Schedule.from_alpha_bar([0.0, 0.5, 1.0]), "zero-terminal-SNR"),
    (symspec.DDPM, Schedule.from_alpha_bar([0.1, 0.5, 1.0], init_var=2.0), "unit variance"),
    (symspec.DDPM, Schedule.from_alpha_bar([0.1, 0.5, 0.9]), "clean level"),
    (symspec.DDPM(variance="fixed_large"), Schedule.from_alpha_bar([0.1, 0.5, 1.0]),
     "last_noise"),
    (SAMPLERS["euler"], Schedule.from_sigmas([10.0, 1.0, 0.0], init_var=4.0), "sigma_max"),
    (SAMPLERS["dpmpp"](euler_at_final=False), Schedule.from_alpha_bar([0.1, 0.5, 1.0]),
     "euler_at_final"),
])
def test_bad_input(smp, schedule, match):
    with pytest.raises(ValueError, match=match):
        to_diffusers(smp, schedule)


def test_bad_types():
    with pytest.raises(TypeError, match="Sampler"):
        to_diffusers("ddpm", Schedule.from_alpha_bar([0.1, 1.0]))
    with pytest.raises(TypeError, match="Schedule"):
        to_diffusers(symspec.DDPM, [0.1, 1.0])


def test_zero_snr_base_is_refused():
    from diffusers import DDPMScheduler

    with pytest.raises(ValueError, match="alpha-bar of 0"):
        to_diffusers(symspec.DDPM, Schedule.from_alpha_bar([0.1, 0.5, 1.0]),
                     DDPMScheduler(rescale_betas_zero_snr=True))


def test_a_user_sampler_named_like_a_builtin_is_not_exported_as_it():
    # export is keyed on the sampler object, never its name (issue 9)
    @symspec.sampler(space="vp", name="ddim")
    def ddim(c, x):
        return c.x0(x)

    with pytest.raises(ValueError, match="no diffusers scheduler runs sampler 'ddim'"):
        to_diffusers(ddim, Schedule.from_alpha_bar([0.1, 0.5, 1.0]))


def test_prev_rule_is_a_fact_of_the_sampler():
    from symspec.design import baseline_schedules

    @symspec.sampler(space="vp", name="ddim")
    def not_ddim(c, x):
        return c.x0(x)

    assert symspec.DDIM.prev == "stride" and symspec.DDPM.prev == "chained"
    # a user sampler named "ddim" keeps the chained rule: linspace grids stay chained
    assert baseline_schedules(not_ddim, 7)["linear/linspace"].chained
    assert not baseline_schedules(symspec.DDIM, 7)["linear/linspace"].chained


# -- non-chained schedules: paired schedulers (issue 16) ----------------------------------
@pytest.mark.parametrize("smp", [symspec.DDIM, symspec.DDPM], ids=["ddim", "ddpm"])
def test_unchained_export_runs_as_symspec_predicts_and_beats_heuristics(smp, tmp_path):
    from symspec.design import baseline_schedules, objective

    psd = symspec.spectra.power_law((16, 16))
    base = DDPMScheduler()
    lr = level_range(base)
    design = symspec.design_schedule(smp, psd, 5, chained=False, level_range=lr)
    assert not design.chained
    sch = to_diffusers(smp, design, base, psd=psd)
    rep = sch.symspec_export
    assert type(sch).__name__ in ("PairedDDIMScheduler", "PairedDDPMScheduler")
    assert rep["prev_timesteps"][-1] == -1 and len(rep["prev_timesteps"]) == 5
    # the real scheduler, run with the exact model, is what symspec predicts for its pairs
    tr, noise, _ = harness.response(sch, psd.ravel())
    real = symspec.divergence(psd.ravel(), tr**2 + noise)
    assert real == pytest.approx(rep["objective_exported"], rel=1e-10)
    exported = Schedule(*(np.asarray(v) for v in (
        sch.alphas_cumprod.double().numpy()[rep["timesteps"]],
        [sch.alphas_cumprod.double().numpy()[p] if p >= 0 else 1.0
         for p in rep["prev_timesteps"]])))
    r = symspec.spectral_response(smp, exported, psd)
    np.testing.assert_allclose(tr**2 + noise, r.output_psd.ravel(), rtol=1e-10)
    # at or below every heuristic and the exported chained design
    best = min(objective(smp, b, psd) for b in baseline_schedules(smp, 5).values())
    chained = to_diffusers(smp, symspec.design_schedule(smp, psd, 5, level_range=lr), base,
                           psd=psd).symspec_export["objective_exported"]
    assert real <= best and real <= chained
    # a diffusers scheduler still: config round trip and set_timesteps by count
    sch.save_config(tmp_path)
    again = type(sch).from_pretrained(tmp_path)
    again.set_timesteps(5)
    assert again.timesteps.tolist() == rep["timesteps"]
    assert again.config.timestep_pairs == [list(p) for p in zip(rep["timesteps"],
                                                                rep["prev_timesteps"],
                                                                strict=True)]
    with pytest.raises(ValueError, match="runs its 5 configured timestep pairs"):
        again.set_timesteps(7)


def test_paired_scheduler_refuses_bad_pairs():
    from symspec.diffusers.paired import paired_scheduler

    cls = paired_scheduler("DDIMScheduler")
    with pytest.raises(ValueError, match="previous timestep must be below"):
        cls(timestep_pairs=[[500, 600], [400, -1]])
    with pytest.raises(ValueError, match="timesteps must decrease"):
        cls(timestep_pairs=[[500, 300], [600, -1]])
    with pytest.raises(ValueError, match="cls_name must be"):
        paired_scheduler("EulerDiscreteScheduler")


def test_unchained_schedule_is_refused_by_sigma_exporters():
    s = Schedule([10.0, 2.0], [1.0, 0.0], "ve")
    with pytest.raises(ValueError, match="exports only chained schedules"):
        to_diffusers(symspec.EULER, s)


def test_levels_outside_the_training_range_warn():
    # issue 15: a level outside the base's range was quantised silently (log-SNR error 10)
    from symspec.diffusers.export import ExportWarning

    s = Schedule.from_alpha_bar([1e-7, 0.5, 0.99999, 1.0])
    with pytest.warns(ExportWarning, match=r"outside the base scheduler's training range"):
        to_diffusers(symspec.DDPM, s)
    inside = Schedule.from_alpha_bar([0.01, 0.3, 0.9, 1.0])
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExportWarning)
        to_diffusers(symspec.DDPM, inside)
