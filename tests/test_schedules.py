"""Schedules: training alpha-bars and inference grids against diffusers; the Schedule object."""

import functools
import json

import harness
import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from hypothesis import given, settings
from hypothesis import strategies as st

from symspec import Schedule
from symspec.schedules import (
    BETA_SCHEDULES,
    SPACINGS,
    diffusers_schedule,
    inference_timesteps,
    training_alphas_cumprod,
)

EPS32 = 2.0**-24  # unit roundoff of float32


# -- training alpha-bars -----------------------------------------------------------------
@pytest.mark.parametrize("beta_schedule", BETA_SCHEDULES)
@pytest.mark.parametrize("T, beta_start, beta_end", [(1000, 1e-4, 0.02), (50, 1e-4, 0.02),
                                                     (4000, 1e-4, 0.02), (1000, 8.5e-4, 0.012)])
def test_training_alphas_cumprod_matches_diffusers(beta_schedule, T, beta_start, beta_end):
    """diffusers rounds each beta to float32 (linspace/squaring: a few ulps) and multiplies in
    float32.  A relative error e in beta moves the factor 1 - beta by e*beta/(1 - beta), and
    each float32 product rounds once, which bounds the deviation at every t."""
    sch = DDPMScheduler(num_train_timesteps=T, beta_schedule=beta_schedule,
                        beta_start=beta_start, beta_end=beta_end)
    ab = training_alphas_cumprod(T, beta_schedule, beta_start, beta_end)
    assert ab.shape == (T,) and ab.dtype == np.float64
    beta = sch.betas.double().numpy()
    from_betas = np.cumsum(8 * EPS32 * beta / (1 - beta))  # 8 ulps per beta
    exact_product = torch.cumprod(1 - sch.betas.double(), 0).numpy()  # diffusers' betas, float64
    assert np.all(np.abs(ab / exact_product - 1) <= from_betas)
    float32 = sch.alphas_cumprod.double().numpy()
    assert np.all(np.abs(ab / float32 - 1) <= from_betas + EPS32 * np.arange(1, T + 1))


def test_training_alphas_cumprod_errors():
    with pytest.raises(ValueError, match="num_train_timesteps must be a positive int"):
        training_alphas_cumprod(0)
    with pytest.raises(ValueError, match="beta_schedule must be one of"):
        training_alphas_cumprod(1000, "sigmoid")
    with pytest.raises(ValueError, match="betas must lie in"):
        training_alphas_cumprod(1000, "linear", 1e-4, 1.5)


# -- inference timesteps -----------------------------------------------------------------
@functools.cache
def _scheduler(cls, T, spacing, offset):
    return cls(num_train_timesteps=T, timestep_spacing=spacing, steps_offset=offset)


@settings(max_examples=200, deadline=None)
@given(cls=st.sampled_from([DDPMScheduler, DDIMScheduler]),
       T=st.sampled_from([1000, 50, 1234, 7]), spacing=st.sampled_from(SPACINGS),
       offset=st.sampled_from([0, 1]), data=st.data())
def test_inference_timesteps_match_set_timesteps(cls, T, spacing, offset, data):
    n = data.draw(st.integers(1, T), label="num_inference_steps")
    sch = _scheduler(cls, T, spacing, offset)
    sch.set_timesteps(n)
    np.testing.assert_array_equal(inference_timesteps(n, T, spacing, offset), sch.timesteps)


def test_inference_timesteps_errors():
    for n in (0, 1001, 2.0):
        with pytest.raises(ValueError, match="num_inference_steps must be an int"):
            inference_timesteps(n, 1000)
    with pytest.raises(ValueError, match="timestep_spacing must be one of"):
        inference_timesteps(10, 1000, "karras")


# -- the levels a real scheduler steps between -------------------------------------------
def probe_end_alpha_bar(sch):
    """The alpha-bar each step of a real DDPM/DDIM scheduler goes to.

    With ``prediction_type="sample"``, the model output ``x0 = 1`` and the sample
    ``sqrt(ab_t)`` (so the implied noise is 0), both schedulers return ``sqrt(ab_prev)``.
    """
    assert sch.config.prediction_type == "sample"
    sch = harness.as_float64(sch)
    zeros = [torch.zeros(1)] * len(sch.timesteps)
    out = []
    with harness.pulse_noise(type(sch).__module__, zeros):
        for t in sch.timesteps:
            x = sch.alphas_cumprod[int(t)].sqrt().reshape(1, 1)
            prev = sch.step(torch.ones(1, 1, dtype=torch.float64), t, x).prev_sample
            out.append(float(prev[0, 0]) ** 2)
    return np.array(out)


@pytest.mark.parametrize("cls, prev", [(DDPMScheduler, "chained"), (DDIMScheduler, "stride")])
@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("n", [1, 7, 50])
@pytest.mark.parametrize("offset, alpha_to_one", [(0, True), (1, False)])
def test_diffusers_schedule_matches_the_scheduler(cls, prev, spacing, n, offset, alpha_to_one):
    kw = {"set_alpha_to_one": alpha_to_one} if cls is DDIMScheduler else {}
    sch = cls(prediction_type="sample", timestep_spacing=spacing, steps_offset=offset,
              clip_sample=False, beta_schedule="squaredcos_cap_v2", **kw)
    sch.set_timesteps(n)
    ab = sch.alphas_cumprod.double().numpy()
    final = 1.0 if alpha_to_one or cls is DDPMScheduler else float(ab[0])
    s = diffusers_schedule(ab, sch.timesteps.numpy(), prev, final, 1000)
    assert s.space == "vp" and s.steps == len(sch.timesteps) and s.init_var == 1.0
    np.testing.assert_array_equal(s.start, ab[sch.timesteps.numpy()])
    np.testing.assert_allclose(s.end, probe_end_alpha_bar(sch), rtol=1e-13)
    assert s.meta["timesteps"] == sch.timesteps.tolist()
    if cls is DDPMScheduler:
        assert s.chained


def test_diffusers_schedule_stride_is_not_chained_on_linspace():
    ab = training_alphas_cumprod(1000)
    ts = inference_timesteps(3, 1000, "linspace")  # 999, 500, 0; DDIM steps back by 333
    s = diffusers_schedule(ab, ts, "stride")
    assert ts.tolist() == [999, 500, 0] and not s.chained
    np.testing.assert_array_equal(s.end, [ab[666], ab[167], 1.0])
    with pytest.raises(ValueError, match="not chained"):
        s.alpha_bar  # noqa: B018


def test_diffusers_schedule_errors():
    ab = training_alphas_cumprod(1000)
    with pytest.raises(ValueError, match=r"timesteps must lie in \[0, 1000\)"):
        diffusers_schedule(ab, [1000, 10])
    with pytest.raises(ValueError, match="timesteps must be a non-empty 1-D array"):
        diffusers_schedule(ab, [])
    with pytest.raises(ValueError, match="prev must be 'chained' or 'stride'"):
        diffusers_schedule(ab, [10, 0], "next")


# -- the Schedule object -----------------------------------------------------------------
@pytest.mark.parametrize("args, pattern", [
    (([0.5, 0.3, 1.0],), "alpha_bar must increase strictly"),
    (([0.3, 0.3, 1.0],), "alpha_bar must increase strictly"),
    (([-0.1, 0.5, 1.0],), r"must lie in \(0, 1\]"),
    (([0.1, 0.5, 1.5],), r"must lie in \(0, 1\]"),
    (([0.5],), "N \\+ 1 >= 2 values"),
    (([0.1, np.nan, 1.0],), "alpha_bar must be finite"),
    (([[0.1, 1.0]],), "alpha_bar must be 1-dimensional"),
    ((["a", "b"],), "alpha_bar must be an array of real numbers"),
    (([0.1, 1.0], -1.0), "init_var must be a finite number >= 0"),
    (([0.1, 1.0], float("inf")), "init_var must be a finite number >= 0"),
])
def test_from_alpha_bar_validation(args, pattern):
    with pytest.raises(ValueError, match=pattern):
        Schedule.from_alpha_bar(*args)


@pytest.mark.parametrize("args, pattern", [
    (([0.1, 0.5], [0.5], "vp"), "same shape"),
    (([], [], "vp"), "at least 1 step"),
    (([0.5], [0.4], "vp"), "must not decrease along a step"),
    (([0.5], [1.0], "ve"), "must not increase along a step"),
    (([0.3, 0.0], [0.5, 1.0], "vp"), r"must lie in \(0, 1\]"),
    (([0.0], [0.0], "ve"), "sigma values must be > 0"),
    (([1.0], [-0.5], "ve"), "sigma values must be > 0 \\(start\\) and >= 0 \\(end\\)"),
    (([0.5], [1.0], "edm"), "space must be 'vp' or 've'"),
])
def test_schedule_validation(args, pattern):
    with pytest.raises(ValueError, match=pattern):
        Schedule(*args)


def test_zero_alpha_bar_only_where_sampling_starts():
    """Zero terminal SNR: the first level may be alpha-bar = 0, no other."""
    assert Schedule.from_alpha_bar([0.0, 0.5, 1.0]).start[0] == 0.0
    with pytest.raises(ValueError, match=r"alpha-bar values \(end\) must lie in \(0, 1\]"):
        Schedule([0.0], [0.0])


def test_from_sigmas_validation():
    with pytest.raises(ValueError, match="sigmas must decrease strictly"):
        Schedule.from_sigmas([1.0, 2.0, 0.0])
    with pytest.raises(ValueError, match="N \\+ 1 >= 2 values"):
        Schedule.from_sigmas([1.0])


def test_schedule_is_read_only():
    s = Schedule.from_alpha_bar([0.1, 0.5, 1.0])
    with pytest.raises(ValueError):
        s.start[0] = 0.2


def test_vp_ve_round_trip():
    ab = np.array([1e-12, 1e-6, 0.01, 0.4, 0.93, 1.0])
    vp = Schedule.from_alpha_bar(ab, init_var=1.3)
    ve = vp.to_space("ve")
    sig = np.sqrt((1 - ab) / ab)  # x/sqrt(ab) is VE with sigma^2 = (1 - ab)/ab
    np.testing.assert_allclose(ve.sigmas, sig, rtol=1e-15)
    assert ve.sigmas[-1] == 0.0 and ve.space == "ve"
    assert ve.init_var == pytest.approx(1.3 / ab[0], rel=1e-15)  # variance scales by 1/ab
    back = ve.to_space("vp")
    np.testing.assert_allclose(back.start, vp.start, rtol=1e-14)
    np.testing.assert_allclose(back.end, vp.end, rtol=1e-14)
    assert back.init_var == pytest.approx(1.3, rel=1e-14)
    assert vp.to_space("vp") is vp
    with pytest.raises(ValueError, match="space must be"):
        vp.to_space("flow")


def test_ve_default_initial_variance_is_the_scaled_unit_latent():
    ve = Schedule.from_sigmas([80.0, 1.0, 0.0])
    assert ve.init_var == 80.0**2 + 1
    assert ve.to_space("vp").init_var == pytest.approx(1.0, rel=1e-15)


def test_json_round_trip_is_exact():
    s = diffusers_schedule(training_alphas_cumprod(1000, "squaredcos_cap_v2"),
                           inference_timesteps(7, 1000, "linspace"), "stride")
    t = Schedule.from_json(s.to_json())
    assert t.space == s.space and t.init_var == s.init_var and t.meta == s.meta
    np.testing.assert_array_equal(t.start, s.start)
    np.testing.assert_array_equal(t.end, s.end)
    assert json.loads(t.to_json()) == json.loads(s.to_json())
    ve = Schedule.from_sigmas([14.6, 3.0, 0.1, 0.0], init_var=2.5)
    assert Schedule.from_json(ve.to_json()).init_var == 2.5


@pytest.mark.parametrize("text", ["", "[]", "{}", '{"start": [0.1], "end": [1.0]}', "nonsense",
                                  '{"start": [0.1], "end": [1.0], "space": "vp", "init_var": -1}'])
def test_from_json_errors(text):
    with pytest.raises(ValueError):
        Schedule.from_json(text)


# -- inputs are copied and checked -------------------------------------------------------
def test_schedule_copies_its_inputs():
    b = np.array([0.1, 0.5, 1.0])
    s = Schedule.from_alpha_bar(b)
    b[1] = 0.9
    assert s.alpha_bar.tolist() == [0.1, 0.5, 1.0]
    start, end = np.array([0.1, 0.5]), np.array([0.5, 1.0])
    s = Schedule(start, end)
    assert start.flags.writeable and end.flags.writeable  # the caller's arrays stay writable
    start[0] = 0.2
    assert s.start[0] == 0.1
    meta = {"note": [1, 2]}
    s = Schedule([0.1], [1.0], meta=meta)
    meta["note"].append(3)
    assert s.meta == {"note": [1, 2]}


def test_to_space_does_not_share_meta():
    s = Schedule.from_alpha_bar([0.1, 0.5, 1.0])
    s.meta["origin"] = "test"
    v = s.to_space("ve")
    v.meta["origin"] = "changed"
    assert s.meta == {"origin": "test"} and v.meta is not s.meta


@pytest.mark.parametrize("make, pattern", [
    (lambda: Schedule.from_sigmas([1e200, 1.0, 0.0]), r"sigma values must be <= 1e\+150"),
    (lambda: Schedule.from_alpha_bar([1e-320, 0.5, 1.0]), r"alpha-bar values \(start\)"),
    (lambda: Schedule([0.5], [1e-320]), r"alpha-bar values \(end\) must be >="),
    (lambda: Schedule.from_alpha_bar([0.1 + 0j, 1.0]), "must be an array of real numbers, got "
                                                       "a complex array"),
    (lambda: Schedule([0.1], [1.0 + 1j]), "end must be an array of real numbers"),
    (lambda: Schedule.from_alpha_bar([True, True]), "boolean"),
    (lambda: Schedule.from_json('{"space": "ve", "start": [1e200], "end": [0], '
                                '"init_var": null}'), "sigma values must be <="),
    (lambda: Schedule.from_json("[" * 100_000 + "]" * 100_000), "nested too deeply"),
    (lambda: Schedule.from_json('{"space": "vp", "start": [0.1], "end": [1], "init_var": true}'),
     "init_var must be a real number"),
])
def test_schedule_refuses_out_of_range_and_non_real(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_init_var_takes_numbers_not_bools():
    with pytest.raises(TypeError, match="init_var must be a real number, got True"):
        Schedule.from_alpha_bar([0.1, 1.0], init_var=True)
    for v in (np.float32(2.0), np.int64(2), 2):
        s = Schedule.from_alpha_bar([0.1, 1.0], init_var=v)
        assert s.init_var == 2.0 and type(s.init_var) is float
