"""Speed of ``spectral_response`` against a minimal hand-written NumPy loop.

Both run the same recurrence, ``V <- g**2 V + s**2`` and ``H <- g H``, for 1000 steps on
65,536 modes, with the per-step gain ``g`` and noise variance ``s**2`` of DDPM and DDIM
written out from the closed forms derived in the book (book/theory).
Prints, per sampler, the best-of-``REPEATS``
times and their ratio (goal: <= 1.2), and checks that both give the same spectrum.

Run: ``python bench/response.py``.
"""

from __future__ import annotations

import time

import numpy as np

import symspec
from symspec.schedules import training_alphas_cumprod

STEPS, MODES, REPEATS = 1000, 65_536, 5


def baseline_ddpm(ab, lam):
    """DDPM (fixed_small, no noise on the last step): ``g = sqrt(ab_t/ab_p) D_p/D_t``."""
    V, H = np.ones_like(lam), np.ones_like(lam)
    for i in range(ab.size - 1):
        a_t, a_p = ab[i], ab[i + 1]
        g = np.sqrt(a_t / a_p) * (a_p * lam + 1 - a_p) / (a_t * lam + 1 - a_t)
        s2 = 0.0 if i == ab.size - 2 else (1 - a_p) / (1 - a_t) * (1 - a_t / a_p)
        V = g * g * V + s2
        H = H * g
    return H, V


def baseline_ddim(ab, lam, eta):
    """DDIM(eta): ``g = (sqrt(ab_p ab_t) lam + sqrt((1-ab_p-sig^2)(1-ab_t))) / D_t``."""
    V, H = np.ones_like(lam), np.ones_like(lam)
    for i in range(ab.size - 1):
        a_t, a_p = ab[i], ab[i + 1]
        s2 = eta**2 * (1 - a_p) / (1 - a_t) * (1 - a_t / a_p)
        g = (np.sqrt(a_p * a_t) * lam + np.sqrt((1 - a_p - s2) * (1 - a_t))) / (
            a_t * lam + 1 - a_t)
        V = g * g * V + s2
        H = H * g
    return H, V


def best_time(fn) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ab = np.append(training_alphas_cumprod(STEPS)[::-1], 1.0)  # every training step, then data
    sched = symspec.Schedule.from_alpha_bar(ab)
    lam = np.geomspace(1e-4, 1e2, MODES)
    cases = [("DDPM", symspec.DDPM, lambda: baseline_ddpm(ab, lam)),
             ("DDIM", symspec.DDIM, lambda: baseline_ddim(ab, lam, 0.0)),
             ("DDIM(eta=0.5)", symspec.DDIM(eta=0.5), lambda: baseline_ddim(ab, lam, 0.5))]
    print(f"spectral_response vs a hand-written NumPy loop: {STEPS} steps, {MODES} modes, "
          f"best of {REPEATS}")
    print(f"{'sampler':14} {'symspec [s]':>12} {'numpy [s]':>10} {'ratio':>7} {'max rel diff':>13}")
    for name, smp, base in cases:
        symspec.spectral_response(smp, sched, lam)  # derive and compile once, outside the timing
        t_s, r = best_time(lambda smp=smp: symspec.spectral_response(smp, sched, lam))
        t_b, (H, V) = best_time(base)
        diff = max(np.max(np.abs(r.transfer / H - 1)), np.max(np.abs(r.output_psd / V - 1)))
        print(f"{name:14} {t_s:12.4f} {t_b:10.4f} {t_s / t_b:7.3f} {diff:13.2e}")


if __name__ == "__main__":
    main()
