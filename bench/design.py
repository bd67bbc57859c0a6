"""Schedule design with exact adjoint gradients vs L-BFGS-B on finite differences.

Both optimisers minimise the same objective (W2 between a 64x64 power-law spectrum, 4,096
modes, and the output of 10 steps) in the same parameterisation, from the same start
(uniform log-SNR), with the same L-BFGS-B tolerances; only the gradient differs: symspec's
exact reverse-mode gradient, or scipy's forward differences (``jac=None``).  Run with
``OPENBLAS_NUM_THREADS=1 python bench/design.py``: on a small shared machine, threaded BLAS
inside L-BFGS-B's tiny linear algebra costs more than it saves and adds noise to both timings.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from scipy.optimize import minimize

import symspec
from symspec.design.optimise import (
    _THETA_MAX,
    DesignWarning,
    _constraints,
    design_schedule,
    objective,
)

OPTIONS = {"maxiter": 2000, "ftol": 1e-10, "gtol": 1e-9}  # as design_schedule uses


def finite_difference_design(smp, psd, steps):
    par = _constraints(smp, steps, None, None, None, None, False, None)
    make = symspec.Schedule.from_alpha_bar if smp.space == "vp" else symspec.Schedule.from_sigmas
    theta0 = par.theta_for(par.lo + (par.hi - par.lo) * (np.arange(par.m) + 1.0) / (par.m + 1))

    def value(theta):
        grid = par.grid(theta)[0]
        return objective(smp, make(grid, par.init_variance(grid)), psd)

    scale = value(theta0)
    res = minimize(lambda t: value(t) / scale, theta0, method="L-BFGS-B",
                   bounds=[(-_THETA_MAX, _THETA_MAX)] * par.m, options=OPTIONS)
    return res.fun * scale, res


def _per_call(fn, *args, repeat: int = 50, **kwargs) -> float:
    fn(*args, **kwargs)
    t = time.perf_counter()
    for _ in range(repeat):
        fn(*args, **kwargs)
    return (time.perf_counter() - t) / repeat


def main() -> None:
    psd = symspec.spectra.power_law((64, 64))
    steps = 10
    print(f"design of {steps} steps on a 64x64 power law ({psd.size} modes), W2, "
          "one start (uniform log-SNR)")
    print(f"{'sampler':8} {'method':24} {'time (s)':>9} {'iter':>5} {'f-evals':>8} "
          f"{'objective':>14}")
    for smp in (symspec.DDIM, symspec.DDPM):
        with warnings.catch_warnings():  # compile outside the timings
            warnings.simplefilter("ignore", DesignWarning)
            design_schedule(smp, psd, steps, maxiter=1)
        t = time.perf_counter()
        s = design_schedule(smp, psd, steps, starts=("uniform_logsnr",))
        t_exact = time.perf_counter() - t
        t = time.perf_counter()
        j_fd, res = finite_difference_design(smp, psd, steps)
        t_fd = time.perf_counter() - t
        m = s.meta
        print(f"{smp.name:8} {'exact gradient':24} {t_exact:9.2f} {m['iterations']:5d} "
              f"{m['evaluations']:8d} {m['objective']:14.10g}")
        print(f"{smp.name:8} {'finite differences':24} {t_fd:9.2f} {res.nit:5d} {res.nfev:8d} "
              f"{j_fd:14.10g}  ({'converged' if res.success else res.message})")
        print(f"{smp.name:8} speed-up {t_fd / t_exact:.1f}x; objective ratio (FD / exact) "
              f"{j_fd / m['objective']:.9f}")
        sched = design_schedule(smp, psd, steps)
        t_grad = _per_call(objective, smp, sched, psd, gradient=True)
        t_val = _per_call(objective, smp, sched, psd)
        print(f"{smp.name:8} one gradient: exact {t_grad * 1e3:.2f} ms, forward differences "
              f"({steps} + 1 values) {(steps + 1) * t_val * 1e3:.2f} ms, ratio "
              f"{(steps + 1) * t_val / t_grad:.1f}x")
        t = time.perf_counter()
        s3 = design_schedule(smp, psd, steps)
        print(f"{smp.name:8} full design_schedule (3 starts): {time.perf_counter() - t:.2f} s, "
              f"objective {s3.meta['objective']:.10g}")
    everyday()


def everyday() -> None:
    """The everyday case: design_schedule with its defaults (honest start, every start
    shape screened) at N = 50 on a 128x128 power law, and one N = 1000 design; against the
    goals of 3 s (DDIM, DDPM) and 10 s (DPM-Solver++ 2M) at N = 50."""
    psd = symspec.spectra.power_law((128, 128))
    print(f"\ndesign_schedule, defaults, N = 50 on a 128x128 power law ({psd.size} modes)")
    for smp, goal in ((symspec.DDIM, 3.0), (symspec.DDPM, 3.0), (symspec.DPMPP, 10.0)):
        with warnings.catch_warnings():  # compile outside the timings
            warnings.simplefilter("ignore", DesignWarning)
            design_schedule(smp, psd, 50, maxiter=1)
        t = time.perf_counter()
        s = design_schedule(smp, psd, 50)
        dt = time.perf_counter() - t
        print(f"{smp.name:8} {dt:6.2f} s ({dt / goal:.2f} of the {goal:g} s goal), "
              f"{s.meta['iterations']} iterations, objective {s.meta['objective']:.8g}, "
              f"{'converged' if s.meta['converged'] else 'NOT converged'}", flush=True)
    t = time.perf_counter()
    s = design_schedule(symspec.DDIM, psd, 1000)
    print(f"ddim     N = 1000: {time.perf_counter() - t:.1f} s, {s.meta['iterations']} "
          f"iterations, {'converged' if s.meta['converged'] else 'NOT converged'}")


if __name__ == "__main__":
    main()
