"""Generated evaluators (symspec.lambdify, symspec.codegen) against the NumPy core.

Every built-in sampler (with representative options) and the README's midpoint sampler, on
random schedules and spectra: the NumPy, PyTorch (float64) and JAX (x64) evaluators agree
with :func:`symspec.spectral_response`; PyTorch's and JAX's gradients agree with symspec's
exact adjoint (:func:`symspec.numeric.core.vjp`, :func:`symspec.design.objective`); the
standalone NumPy module runs without symspec and gives the same numbers.
"""

import ast
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import symspec
from symspec.design import objective
from symspec.numeric.core import reads, vjp
from symspec.numeric.lambdify import BACKENDS
from symspec.ops import sqrt
from symspec.schedules import diffusers_schedule, inference_timesteps, training_alphas_cumprod
from symspec.symbolic.denoiser import Level


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch", reason="the PyTorch backend needs torch (the test "
                               "extra)")


@symspec.sampler(space="ve")
def midpoint(c, x):
    """Explicit midpoint (RK2) on the probability-flow ODE, geometric midpoint in sigma."""
    s, s_next = c.t.sigma, c.p.sigma
    d = (x - c.x0(x)) / s
    if c.last:                                   # sigma_next = 0: plain Euler
        return x + (s_next - s) * d
    mid = Level.ve(sqrt(s * s_next))
    x_mid = x + (mid.sigma - s) * d
    return x + (s_next - s) * (x_mid - c.x0(x_mid, at=mid)) / mid.sigma


CASES = {
    "ddpm": symspec.DDPM,
    "ddpm-large-last-noise": symspec.DDPM(variance="fixed_large", last_noise=True),
    "ddim-eta0": symspec.DDIM(eta=0.0),
    "ddim-eta0.5": symspec.DDIM(eta=0.5),
    "euler": symspec.EULER,
    "heun": symspec.HEUN,
    "euler_ancestral": symspec.EULER_ANCESTRAL,
    "ve_reverse_diffusion": symspec.VE_REVERSE_DIFFUSION,
    "ve_ancestral": symspec.VE_ANCESTRAL,
    "lms-4": symspec.LMS,
    "lms-2": symspec.LMS(order=2),
    "dpmpp-2": symspec.DPMPP(solver_order=2),
    "dpmpp-3": symspec.DPMPP(solver_order=3),
    "dpmpp-sde": symspec.DPMPP(solver_order=2, sde=True),
    "dpmpp-2-heun": symspec.DPMPP(solver_order=2, solver_type="heun"),
    "unipc-2": symspec.UNIPC,
    "unipc-3-bh1": symspec.UNIPC(solver_order=3, solver_type="bh1"),
    "midpoint": midpoint,
}
NAMES = sorted(CASES)


def test_every_builtin_sampler_is_covered():
    assert {s.name for s in CASES.values()} >= set(symspec.SAMPLERS)


def random_grid(rng, sampler, steps=None):
    """A chained grid of random steps in log-SNR (noisiest first), ending at the data."""
    n = int(rng.integers(4, 24)) if steps is None else steps
    u = np.cumsum(rng.uniform(0.3, 1.0, n))
    u = (u - u[0]) / (u[-1] - u[0])
    lo, hi = rng.uniform(-9, -5), rng.uniform(4, 8)  # log-SNR of the first and last noisy level
    logsnr = lo + (hi - lo) * u
    if sampler.space == "vp":
        return np.append(1 / (1 + np.exp(-logsnr)), 1.0)
    return np.append(np.exp(-0.5 * logsnr), 0.0)


def schedule_of(sampler, grid):
    if sampler.space == "vp":
        return symspec.Schedule.from_alpha_bar(grid)
    return symspec.Schedule.from_sigmas(grid)


def random_psd(rng, shape=(5, 7)):
    return rng.lognormal(0.0, 2.0, shape)


def rel_error(got, ref):
    """Largest error relative to each value (floored at 1e-3 of the largest: transfers of
    some samplers cross zero)."""
    got, ref = np.asarray(got, dtype=float), np.asarray(ref, dtype=float)
    scale = np.maximum(np.abs(ref), 1e-3 * np.max(np.abs(ref)))
    return float(np.max(np.abs(got - ref) / scale))


def agreement(resp, ref):
    return max(rel_error(resp.output_psd, ref.output_psd), rel_error(resp.transfer, ref.transfer),
               rel_error(resp.noise_psd, ref.noise_psd) if np.any(ref.noise_psd) else
               float(np.max(np.abs(np.asarray(resp.noise_psd)))))


def grid_gradient_from_adjoint(sampler, grid, lam, bar_noise, bar_transfer):
    """d/d grid[:-1] of ``sum(bar_noise * noise + bar_transfer * transfer)``, by vjp."""
    sched = schedule_of(sampler, grid)
    n = sched.steps
    free = (np.ones(n, dtype=bool), np.arange(n) < n - 1)  # all but the final (clean) level
    gs, ge = vjp(sampler, sched, lam, bar_noise, bar_transfer, free)
    return gs + np.append(0.0, ge[:-1])


def grad_error(got, ref):
    return float(np.max(np.abs(np.asarray(got) - ref)) / np.max(np.abs(ref)))


# -- NumPy ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_numpy_agrees_with_spectral_response(name, worst):
    smp = CASES[name]
    rng = np.random.default_rng(NAMES.index(name))
    fn = symspec.lambdify(smp, backend="numpy")
    for _ in range(3):
        grid, psd = random_grid(rng, smp), random_psd(rng)
        ref = symspec.spectral_response(smp, schedule_of(smp, grid), psd)
        r = fn(grid, psd)
        assert isinstance(r, tuple) and r._fields == ("output_psd", "transfer", "noise_psd")
        assert r.output_psd.shape == psd.shape and r.output_psd.dtype == np.float64
        err = agreement(r, ref)
        worst("backends: numpy lambdify vs spectral_response (rel)", err)
        assert err < 1e-12, (name, err)


def test_the_comparison_can_fail():
    """A wrong sampler or a perturbed level is seen by the agreement measure."""
    rng = np.random.default_rng(7)
    grid, psd = random_grid(rng, symspec.DDIM), random_psd(rng)
    ref = symspec.spectral_response(symspec.DDIM, schedule_of(symspec.DDIM, grid), psd)
    assert agreement(symspec.lambdify(symspec.DDIM(eta=0.1))(grid, psd), ref) > 1e-6
    moved = grid.copy()
    moved[3] *= 1 + 1e-9
    assert agreement(symspec.lambdify(symspec.DDIM)(moved, psd), ref) > 1e-12


@pytest.mark.parametrize("name", ["ddim-eta0.5", "dpmpp-2", "unipc-2", "lms-4"])
def test_from_schedule_runs_any_schedule(name, torch, worst):
    """Not chained (diffusers' DDIM stride rule) and in the other space, with its init_var."""
    smp = CASES[name]
    ab = training_alphas_cumprod(1000, "linear")
    sched = diffusers_schedule(ab, inference_timesteps(12, 1000, "linspace"), "stride", 1.0)
    assert not sched.chained
    sched = symspec.Schedule(sched.start, sched.end, "vp", 0.7)
    psd = random_psd(np.random.default_rng(3))
    ref = symspec.spectral_response(smp, sched, psd)
    for backend, conv in (("numpy", np.asarray), ("torch", torch.tensor)):
        r = symspec.lambdify(smp, backend=backend).from_schedule(sched, conv(psd))
        err = agreement(r, ref)
        worst("backends: from_schedule vs spectral_response (rel)", err)
        assert err < 1e-12, (name, backend, err)


def test_history_reads_match_the_core():
    from symspec.numeric.backends import _reads

    for smp in (symspec.DDPM, symspec.LMS, symspec.UNIPC):
        for i in range(7):
            assert [j for _, j in reads(smp, i)] == _reads(i, smp.history)


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="backend must be one of"):
        symspec.lambdify(symspec.DDPM, backend="tensorflow")
    with pytest.raises(ValueError, match="prediction_type"):
        symspec.lambdify(symspec.DDPM, prediction_type="noise")
    with pytest.raises(TypeError):
        symspec.lambdify("ddpm")
    with pytest.raises(ValueError, match="dtype"):
        symspec.lambdify(symspec.DDPM, dtype="int32")
    with pytest.raises(ValueError, match="grid must be 1-dimensional"):
        symspec.lambdify(symspec.DDPM)(np.array([0.5]), np.ones(3))


def test_nonlinear_sampler_is_refused():
    @symspec.sampler(space="ve")
    def clipped(c, x):
        return c.x0(x) if c.x0(x) > 0 else 0 * x

    with pytest.raises(symspec.NonLinearSamplerError):
        symspec.lambdify(clipped)


# -- PyTorch -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_torch_values_and_gradients(name, torch, worst):
    smp = CASES[name]
    rng = np.random.default_rng(100 + NAMES.index(name))
    fn = symspec.lambdify(smp, backend="torch")
    grid, psd = random_grid(rng, smp), random_psd(rng, (23,))
    a, b = rng.uniform(0.5, 1.5, psd.size), rng.uniform(-1, 1, psd.size)
    g = torch.tensor(grid, requires_grad=True)
    lam = torch.tensor(psd, requires_grad=True)
    r = fn(g, lam)
    assert r.output_psd.dtype == torch.float64
    err = agreement(type(r)(*(v.detach().numpy() for v in r)),
                    symspec.spectral_response(smp, schedule_of(smp, grid), psd))
    worst("backends: torch float64 vs spectral_response (rel)", err)
    assert err < 1e-12, (name, err)
    loss = (torch.tensor(a) * r.noise_psd + torch.tensor(b) * r.transfer).sum()
    loss.backward()
    ref = grid_gradient_from_adjoint(smp, grid, psd, a, b)
    got = g.grad.numpy()[:-1]
    err = grad_error(got, ref)
    worst("backends: torch autograd vs exact adjoint, levels (rel)", err)
    assert err < 1e-9, (name, err, got, ref)
    # the PSD gradient against central differences (modes are independent)
    h = 1e-6 * psd

    def f(x):
        rr = symspec.spectral_response(smp, schedule_of(smp, grid), x)
        return a * rr.noise_psd + b * rr.transfer

    fd = (f(psd + h) - f(psd - h)) / (2 * h)
    err = grad_error(lam.grad.numpy(), fd)
    worst("backends: torch autograd vs finite differences, psd (rel)", err)
    assert err < 1e-5, (name, err)


@pytest.mark.parametrize("name", ["ddim-eta0.5", "euler", "dpmpp-3", "unipc-2", "midpoint",
                                  "ve_ancestral"])
def test_torch_w2_gradient_matches_design_objective(name, torch, worst):
    """The output spectrum's gradient, through the initial variance of VE samplers too."""
    smp = CASES[name]
    rng = np.random.default_rng(200 + NAMES.index(name))
    grid, psd = random_grid(rng, smp), random_psd(rng, (6, 6))
    J, gref, gv = objective(smp, schedule_of(smp, grid), psd, "w2", gradient=True)
    if smp.space == "ve":  # init_var = sigma_0**2 + 1 moves with sigma_0
        gref = gref.copy()
        gref[0] += gv * 2 * grid[0]
    g = torch.tensor(grid, requires_grad=True)
    lam = torch.tensor(psd)
    out = symspec.lambdify(smp, backend="torch")(g, lam).output_psd
    loss = ((lam.sqrt() - out.sqrt()) ** 2).sum()
    loss.backward()
    assert abs(loss.item() - J) <= 1e-12 * J
    err = grad_error(g.grad.numpy()[:-1], gref)
    worst("backends: torch autograd vs design.objective gradient (rel)", err)
    assert err < 1e-9, (name, err)


def test_torch_float32_and_error_bound(torch, worst):
    rng = np.random.default_rng(5)
    for name in ("ddim-eta0.5", "dpmpp-2", "euler"):
        smp = CASES[name]
        grid, psd = random_grid(rng, smp, steps=30), random_psd(rng)
        r = symspec.lambdify(smp, backend="torch", dtype="float32")(torch.tensor(grid),
                                                                   torch.tensor(psd))
        assert r.output_psd.dtype == torch.float32
        ref = symspec.spectral_response(smp, schedule_of(smp, grid), psd)
        err = rel_error(r.output_psd.numpy(), ref.output_psd)
        worst("backends: torch float32 vs spectral_response, 30 steps (rel)", err)
        assert 1e-9 < err < 1e-4, (name, err)  # float32, and within the documented bound


def test_torch_keeps_the_device_and_the_shape(torch):
    fn = symspec.lambdify(symspec.DDPM, backend="torch")
    psd = torch.ones(2, 3, 4, dtype=torch.float32)
    r = fn(torch.tensor([0.1, 0.5, 1.0], device="cpu"), psd)
    assert r.transfer.shape == (2, 3, 4) and r.transfer.device.type == "cpu"
    assert r.transfer.dtype == torch.float64  # the evaluator's dtype, not the input's


# -- JAX -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def jax():
    jax = pytest.importorskip("jax", reason="the JAX backend needs jax (pip install "
                              "'symspec[jax]'; the test extra includes it)")
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield jax
    jax.config.update("jax_enable_x64", old)


@pytest.mark.parametrize("name", NAMES)
def test_jax_values_and_gradients(name, jax, torch, worst):
    jnp = jax.numpy
    smp = CASES[name]
    rng = np.random.default_rng(300 + NAMES.index(name))
    fn = symspec.lambdify(smp, backend="jax")
    grid, psd = random_grid(rng, smp), random_psd(rng, (4, 6))
    a, b = rng.uniform(0.5, 1.5, psd.shape), rng.uniform(-1, 1, psd.shape)
    ref = symspec.spectral_response(smp, schedule_of(smp, grid), psd)
    r = jax.jit(fn)(jnp.asarray(grid), jnp.asarray(psd))
    assert r.output_psd.dtype == jnp.float64
    err = agreement(type(r)(*map(np.asarray, r)), ref)
    worst("backends: jax x64 (jit) vs spectral_response (rel)", err)
    assert err < 1e-12, (name, err)

    def loss(g, lam):
        rr = fn(g, lam)
        return jnp.sum(a * rr.noise_psd + b * rr.transfer)

    gg, gl = jax.jit(jax.grad(loss, argnums=(0, 1)))(jnp.asarray(grid), jnp.asarray(psd))
    ref = grid_gradient_from_adjoint(smp, grid, psd.ravel(), a.ravel(), b.ravel())
    err = grad_error(np.asarray(gg)[:-1], ref)
    worst("backends: jax.grad vs exact adjoint, levels (rel)", err)
    assert err < 1e-9, (name, err)
    g = torch.tensor(grid)
    lam = torch.tensor(psd, requires_grad=True)
    rt = symspec.lambdify(smp, backend="torch")(g, lam)
    (torch.tensor(a) * rt.noise_psd + torch.tensor(b) * rt.transfer).sum().backward()
    err = grad_error(np.asarray(gl), lam.grad.numpy())
    worst("backends: jax.grad vs torch autograd, psd (rel)", err)
    assert err < 1e-12, (name, err)


def test_jax_w2_gradient_matches_design_objective(jax, worst):
    jnp = jax.numpy
    for name in ("ddim-eta0.5", "unipc-2", "midpoint"):
        smp = CASES[name]
        rng = np.random.default_rng(400 + NAMES.index(name))
        grid, psd = random_grid(rng, smp), random_psd(rng, (6, 6))
        J, gref, gv = objective(smp, schedule_of(smp, grid), psd, "w2", gradient=True)
        if smp.space == "ve":
            gref = gref.copy()
            gref[0] += gv * 2 * grid[0]
        fn = symspec.lambdify(smp, backend="jax")

        def w2(g, fn=fn, psd=psd):
            return jnp.sum((jnp.sqrt(psd) - jnp.sqrt(fn(g, psd).output_psd)) ** 2)

        val, grad = jax.value_and_grad(w2)(jnp.asarray(grid))
        assert abs(float(val) - J) <= 1e-12 * J
        err = grad_error(np.asarray(grad)[:-1], gref)
        worst("backends: jax.grad vs design.objective gradient (rel)", err)
        assert err < 1e-9, (name, err)


def test_jax_float64_needs_x64():
    jax = pytest.importorskip("jax", reason="the JAX backend needs jax")
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(ValueError, match="jax_enable_x64"):
            symspec.lambdify(symspec.DDPM, backend="jax")
        r = symspec.lambdify(symspec.DDPM, backend="jax", dtype="float32")(
            jax.numpy.asarray([0.1, 0.5, 1.0]), jax.numpy.ones(3))
        assert r.output_psd.dtype == jax.numpy.float32
    finally:
        jax.config.update("jax_enable_x64", old)


# -- codegen -------------------------------------------------------------------------------
_DRIVER = textwrap.dedent('''
    import importlib.abc, importlib.util, json, sys

    class NoSymspec(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "symspec":
                raise ImportError("symspec is not available to generated modules")

    numpy_site, cases = sys.argv[1], json.loads(sys.argv[2])
    sys.meta_path.insert(0, NoSymspec())
    sys.path.append(numpy_site)  # numpy only: no site-packages processing (python -I -S)
    try:
        import symspec
        raise SystemExit("symspec is importable")
    except ImportError:
        pass
    import numpy as np

    out = {}
    for name, path in cases.items():
        spec = importlib.util.spec_from_file_location("gen_" + name.replace("-", "_"), path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        data = np.load(path[:-3] + ".npz")
        r = mod.response(data["grid"], data["psd"])
        s = mod.response_from_levels(data["grid"][:-1], data["grid"][1:], 0.5, data["psd"])
        out[name] = [np.asarray(v).tolist() for v in (*r, s.output_psd)]
    print(json.dumps({"result": out, "modules": sorted(sys.modules)}))
''')


def imported_modules(src):
    names = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module.split(".")[0])
    return names


def test_standalone_numpy_module(tmp_path, worst):
    """Every case written as a module and run by ``python -I -S``, where only numpy is."""
    rng = np.random.default_rng(500)
    files, refs = {}, {}
    for name in NAMES:
        smp = CASES[name]
        src = symspec.codegen(smp, "numpy")
        assert imported_modules(src) <= {"numpy", "typing"}, imported_modules(src)
        assert max(map(len, src.splitlines())) <= 100
        assert f"symspec {symspec.__version__}" in src and "def " + smp.step.__name__ in src
        assert "\\frac" in src or "A_{00} =" in src  # the map in LaTeX
        grid, psd = random_grid(rng, smp), random_psd(rng, (3, 5))
        path = tmp_path / f"{name}.py"
        path.write_text(src)
        np.savez(tmp_path / f"{name}.npz", grid=grid, psd=psd)
        files[name] = str(path)
        sched = schedule_of(smp, grid)
        refs[name] = (symspec.spectral_response(smp, sched, psd),
                      symspec.spectral_response(smp, symspec.Schedule(
                          sched.start, sched.end, smp.space, 0.5), psd))
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    numpy_site = os.path.dirname(os.path.dirname(np.__file__))
    proc = subprocess.run([sys.executable, "-I", "-S", str(driver), numpy_site,
                           json.dumps(files)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env={"PATH": os.environ.get("PATH", "")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert not [m for m in report["modules"] if m.split(".")[0] in ("symspec", "sympy")]
    for name, (out, tr, noise, out_levels) in report["result"].items():
        ref, ref_levels = refs[name]
        shape = ref.output_psd.shape
        err = max(rel_error(np.reshape(out, shape), ref.output_psd),
                  rel_error(np.reshape(tr, shape), ref.transfer),
                  rel_error(np.reshape(out_levels, shape), ref_levels.output_psd))
        if np.any(ref.noise_psd):
            err = max(err, rel_error(np.reshape(noise, shape), ref.noise_psd))
        worst("backends: standalone numpy module vs spectral_response (rel)", err)
        assert err < 1e-12, (name, err)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
def test_generated_torch_and_jax_modules(backend, tmp_path, request, torch):
    if backend == "jax":
        request.getfixturevalue("jax")
    smp = CASES["dpmpp-3"]
    path = tmp_path / "gen.py"
    src = symspec.codegen(smp, backend, path)
    assert path.read_text() == src
    assert imported_modules(src) <= {backend, "typing"}
    space: dict = {}
    exec(compile(src, str(path), "exec"), space)
    rng = np.random.default_rng(600)
    grid, psd = random_grid(rng, smp, steps=20), random_psd(rng)
    ref = symspec.spectral_response(smp, schedule_of(smp, grid), psd)
    conv = torch.tensor if backend == "torch" else np.asarray
    r = space["response"](conv(grid), conv(psd))
    assert agreement(type(r)(*(np.asarray(v) for v in r)), ref) < 1e-12
    space["_MAP_OF_KEY"].clear()  # a variant the module does not hold is named, not guessed
    with pytest.raises(ValueError, match="does not hold"):
        space["_variant"](3, 20)


def test_codegen_refuses_an_order_rule_that_is_not_standalone():
    limit = 2

    def order(i, n):
        return min(i + 1, limit)  # reads a name outside itself

    @symspec.sampler(space="ve", order=order)
    def orders(c, x):
        return x + (c.p.sigma - c.t.sigma) * (x - c.x0(x)) / c.t.sigma * c.order

    with pytest.raises(ValueError, match="order rule"):
        symspec.codegen(orders, "numpy")
    assert symspec.lambdify(orders)(np.array([3.0, 1.0, 0.0]), np.ones(2)).transfer.shape == (2,)


# -- the command line ----------------------------------------------------------------------
def run_cli(capsys, *argv):
    from symspec.cli import main

    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_codegen_writes_a_module_that_runs(tmp_path, capsys):
    path = tmp_path / "ddim_eta.py"
    code, out, err = run_cli(capsys, "codegen", "ddim", "--eta", "0.5", "--backend", "numpy",
                             "-o", str(path))
    assert code == 0 and err == "" and str(path) in out
    src = path.read_text()
    assert "'eta': 0.5" in src and imported_modules(src) <= {"numpy", "typing"}
    space: dict = {}
    exec(compile(src, str(path), "exec"), space)
    rng = np.random.default_rng(700)
    grid, psd = random_grid(rng, symspec.DDIM), random_psd(rng)
    ref = symspec.spectral_response(symspec.DDIM(eta=0.5), schedule_of(symspec.DDIM, grid), psd)
    assert agreement(space["response"](grid, psd), ref) < 1e-12


@pytest.mark.parametrize("argv, pattern", [
    (["codegen", "nosuch", "-o", "{tmp}/x.py"], "invalid choice"),
    (["codegen", "ddim", "--option", "order=2", "-o", "{tmp}/x.py"], "has no option 'order'"),
    (["codegen", "ddim", "--eta", "-1", "-o", "{tmp}/x.py"], "eta"),
    (["codegen", "ddim", "--backend", "tf", "-o", "{tmp}/x.py"], "invalid choice"),
    (["codegen", "ddim", "-o", "{tmp}/no/such/folder/x.py"], "does not exist"),
    (["codegen", "ddim", "-o", "{tmp}"], "is a folder"),
    (["codegen", "ddim"], "required"),
])
def test_cli_codegen_errors_are_one_line(argv, pattern, tmp_path, capsys):
    code, out, err = run_cli(capsys, *(a.format(tmp=tmp_path) for a in argv))
    assert code == 2 and err.count("\n") == 1 and err.startswith("symspec: error: "), err
    assert pattern in err, err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_torch_read_only_psd_without_warning(torch):
    """photo_psd is cached read-only: the torch evaluator takes it without torch's
    "non-writable NumPy array" UserWarning (it warns once per process: a fresh one)."""
    import subprocess
    import sys

    code = ("import symspec; fn = symspec.lambdify(symspec.DDPM, backend='torch'); "
            "psd = symspec.spectra.photo_psd(8); assert not psd.flags.writeable; "
            "fn(symspec.Schedule.from_alpha_bar([0.01, 0.5, 1.0]).alpha_bar, psd)")
    done = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
