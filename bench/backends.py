"""Speed of the generated evaluators (``symspec.lambdify``) against the NumPy core.

For 1000 steps on 65,536 modes, times ``spectral_response`` (the NumPy core), the PyTorch
evaluator (CPU, float64, no autograd) and the jitted JAX evaluator (float64; compilation
timed separately, outside the ratio), all in the same run, best of ``REPEATS``.  Prints
the ratios to the NumPy time (goal: each <= 2) and the largest relative difference of the
output spectra.  PyTorch runs on one thread by default, like the NumPy core
(``--torch-threads`` changes it); JAX is skipped if it is not installed.

Run: ``python bench/backends.py [--torch-threads N]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import symspec
from symspec.schedules import training_alphas_cumprod

STEPS, MODES, REPEATS = 1000, 65_536, 3


def best_time(fn) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def rel_diff(got, ref) -> float:
    return float(np.max(np.abs(np.asarray(got) / ref - 1)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--torch-threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.torch_threads)
    try:
        import jax

        jax.config.update("jax_enable_x64", True)
        jnp = jax.numpy
    except ImportError:
        jax = None
    ab = np.append(training_alphas_cumprod(STEPS)[::-1], 1.0)  # every training step, then data
    lam = np.geomspace(1e-4, 1e2, MODES)
    cases = [("DDPM", symspec.DDPM), ("DDIM(eta=0.5)", symspec.DDIM(eta=0.5)),
             ("Euler (VE)", symspec.EULER), ("DPM-Solver++(2M)", symspec.DPMPP)]
    print(f"generated evaluators vs spectral_response (NumPy): {STEPS} steps, {MODES} modes, "
          f"best of {REPEATS}; torch on {torch.get_num_threads()} thread(s)")
    print(f"{'sampler':18} {'numpy [s]':>10} {'torch [s]':>10} {'ratio':>6} {'jax [s]':>9} "
          f"{'ratio':>6} {'jit [s]':>8} {'max rel diff':>13}")
    for name, smp in cases:
        sched = symspec.Schedule.from_alpha_bar(ab).to_space(smp.space)
        grid = sched.alpha_bar if smp.space == "vp" else sched.sigmas
        symspec.spectral_response(smp, sched, lam)  # derive and compile once, outside the timing
        t_np, ref = best_time(lambda smp=smp, sched=sched: symspec.spectral_response(smp, sched,
                                                                                      lam))
        fn = symspec.lambdify(smp, backend="torch")
        g, x = torch.tensor(grid), torch.tensor(lam)
        with torch.no_grad():
            t_t, r_t = best_time(lambda fn=fn, g=g, x=x: fn(g, x))
        diff = rel_diff(r_t.output_psd.numpy(), ref.output_psd)
        jax_cols = f"{'-':>9} {'-':>6} {'-':>8}"
        if jax is not None:
            fj = jax.jit(symspec.lambdify(smp, backend="jax"))
            gj, xj = jnp.asarray(grid), jnp.asarray(lam)
            t0 = time.perf_counter()
            fj(gj, xj).output_psd.block_until_ready()
            t_c = time.perf_counter() - t0

            def run_jax(fj=fj, gj=gj, xj=xj):
                r = fj(gj, xj)
                r.output_psd.block_until_ready()
                return r

            t_j, r_j = best_time(run_jax)
            diff = max(diff, rel_diff(r_j.output_psd, ref.output_psd))
            jax_cols = f"{t_j:9.3f} {t_j / t_np:6.2f} {t_c:8.2f}"
        print(f"{name:18} {t_np:10.3f} {t_t:10.3f} {t_t / t_np:6.2f} {jax_cols} {diff:13.2e}")


if __name__ == "__main__":
    main()
