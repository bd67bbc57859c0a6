"""Many designs at once: ``design_schedules`` on a stack vs a loop of ``design_schedule``.

64 power-law spectra on a 32x32 grid, exponents 1 to 3.5 (each about 135 distinct
variances), N = 10 steps, W2, the default honest start and three start shapes: the loop
designs one spectrum after the other, the batch designs all of them in one run (one forward
run and one adjoint per round for every spectrum).  Both in this process, BLAS on one thread
(``symspec.numeric.core.one_blas_thread``: the machine's two cores are shared).  Printed:
the time of each, their ratio (goal: at least 5x, issue 14) and the largest relative
difference of the objectives (batch minus loop, over the loop's; negative is a lower
objective for the batch).  Run with ``python bench/batch.py [--spectra 64]``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import symspec
from symspec.design import DesignWarning, design_schedule, design_schedules
from symspec.numeric.core import one_blas_thread


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spectra", type=int, default=64, help="spectra in the batch")
    ap.add_argument("--size", type=int, default=32, help="side of each spectrum's grid")
    ap.add_argument("--steps", type=int, default=10, help="sampling steps")
    args = ap.parse_args()
    psds = np.stack([symspec.spectra.power_law((args.size, args.size), a)
                     for a in np.linspace(1.0, 3.5, args.spectra)])
    print(f"{args.spectra} power-law spectra {args.size}x{args.size}, N={args.steps}, W2, "
          "honest start: a loop of design_schedule vs one design_schedules")
    print(f"{'sampler':8} {'loop (s)':>9} {'batch (s)':>10} {'ratio':>7} "
          f"{'max rel. objective difference':>31}")
    with one_blas_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DesignWarning)  # counted below instead
        for smp in (symspec.DDIM, symspec.DDPM):
            design_schedules(smp, psds[:2], args.steps)  # compile outside the timings
            design_schedule(smp, psds[0], args.steps)
            t = time.perf_counter()
            loop = [design_schedule(smp, p, args.steps) for p in psds]
            t_loop = time.perf_counter() - t
            t = time.perf_counter()
            batch = design_schedules(smp, psds, args.steps)
            t_batch = time.perf_counter() - t
            rel = [b.meta["objective"] / s.meta["objective"] - 1
                   for b, s in zip(batch, loop, strict=True)]
            worst = max(rel, key=abs)
            conv = (sum(s.meta["converged"] for s in loop),
                    sum(b.meta["converged"] for b in batch))
            print(f"{smp.name:8} {t_loop:9.2f} {t_batch:10.2f} {t_loop / t_batch:6.1f}x "
                  f"{worst:31.2e}   (converged: loop {conv[0]}, batch {conv[1]} of "
                  f"{len(psds)})")


if __name__ == "__main__":
    main()
