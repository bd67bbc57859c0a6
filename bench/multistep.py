"""Speed of multistep (matrix-state) samplers against the one-step recurrence of DDIM.

``spectral_response`` for 1000 steps on 65,536 modes: DDIM (a 1x1 state) is the baseline;
the multistep samplers propagate a 2-4 dimensional state per mode.  Best of ``REPEATS``,
interleaved, after one warm-up call that derives and compiles the maps.  Goals: DPM-Solver++
2M <= 2x DDIM, SDE-DPM-Solver++ 2M <= 3x.  Then the same at 4.2M modes (2048 x 2048, 100
steps, best of ``BIG_REPEATS``): the time per mode-step there against its value at 65,536
modes (goal <= 1.2: the modes go in cache-sized blocks).  The spectra have distinct values
everywhere, so exact mode compression does not help: this is the worst case.

Run: ``python bench/multistep.py``.
"""

from __future__ import annotations

import time

import numpy as np

import symspec

STEPS, MODES, REPEATS, GOAL = 1000, 65_536, 5, 2.0
SDE_GOAL = 3.0
BIG_REPEATS = 3  # a shared machine: one run of a few seconds is often disturbed


def main() -> None:
    sched = symspec.Schedule.from_sigmas(np.append(np.geomspace(80.0, 0.03, STEPS), 0.0))
    lam = np.geomspace(1e-4, 1e4, MODES)
    cases = {"DDIM (baseline)": symspec.DDIM, "DPM-Solver++ 2M": symspec.DPMPP,
             "DPM-Solver++ 3M": symspec.DPMPP(solver_order=3), "UniPC-2": symspec.UNIPC,
             "UniPC-3": symspec.UNIPC(solver_order=3), "LMS-4": symspec.LMS,
             "SDE-DPM-Solver++ 2M": symspec.DPMPP(sde=True), "Heun (one-step)": symspec.HEUN}
    for smp in cases.values():
        symspec.spectral_response(smp, sched, lam[:8])
    best = dict.fromkeys(cases, np.inf)
    for _ in range(REPEATS):
        for name, smp in cases.items():
            t0 = time.perf_counter()
            symspec.spectral_response(smp, sched, lam)
            best[name] = min(best[name], time.perf_counter() - t0)
    base = best["DDIM (baseline)"]
    print(f"spectral_response, {STEPS} steps x {MODES} modes, best of {REPEATS}; goal for "
          f"multistep samplers <= {GOAL:g}x DDIM, for SDE-DPM-Solver++ 2M <= {SDE_GOAL:g}x")
    print(f"{'sampler':22} {'state':>5} {'time [s]':>9} {'x DDIM':>7}")
    for name, smp in cases.items():
        print(f"{name:22} {smp.state:5d} {best[name]:9.3f} {best[name] / base:7.2f}")
    big_steps, big = 100, np.geomspace(1e-4, 1e4, 2048 * 2048)
    sched_big = symspec.Schedule.from_sigmas(np.append(np.geomspace(80.0, 0.03, big_steps), 0))
    print(f"\n{big.size} modes, {big_steps} steps (best of {BIG_REPEATS}); goal for a one-state "
          "sampler <= 1.2x its time per mode-step at 65,536 modes")
    print(f"{'sampler':22} {'ns/mode-step':>12} {'x at 65,536':>11} {'x DDIM':>7}")
    big_t: dict[str, float] = {}
    for name in ("DDIM (baseline)", "DPM-Solver++ 2M", "SDE-DPM-Solver++ 2M"):
        for _ in range(BIG_REPEATS):
            t0 = time.perf_counter()
            symspec.spectral_response(cases[name], sched_big, big)
            t = (time.perf_counter() - t0) / (big.size * big_steps)
            big_t[name] = min(big_t.get(name, np.inf), t)
        small = best[name] / (MODES * STEPS)
        print(f"{name:22} {big_t[name] * 1e9:12.2f} {big_t[name] / small:11.2f} "
              f"{big_t[name] / big_t['DDIM (baseline)']:7.2f}", flush=True)


if __name__ == "__main__":
    main()
