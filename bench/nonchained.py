"""Non-chained designs exported to diffusers and run there, against the chained design and
every heuristic (issue: a design that beats every heuristic).

For the 32x32 power law and photo spectra, DDIM (eta=0) and DDPM at 5, 10 and 20 steps:
W2^2 between the data spectrum and the output of the REAL diffusers scheduler (a float64
copy driven by the exact Gaussian model; injected noise measured exactly by unit pulses),
for the non-chained design (``design_schedule(..., chained=False)``, exported through
``symspec.diffusers.paired``), the chained design, and the best of
``symspec.design.baseline_schedules`` (diffusers' beta schedules x spacings, including the
non-chained DDIM stride grids, Karras, exponential, AYS).  Run from the repository root:
``python bench/nonchained.py`` (a few minutes).
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import harness  # noqa: E402
from diffusers import DDPMScheduler  # noqa: E402

import symspec  # noqa: E402
from symspec.design import baseline_schedules, objective  # noqa: E402
from symspec.diffusers import level_range, to_diffusers  # noqa: E402

BASE = DDPMScheduler()
SPECTRA = {"powerlaw 32x32": symspec.spectra.power_law((32, 32)),
           "photos 32x32": symspec.spectra.photo_psd(32)}


def real(smp, s, psd):
    """W2^2 of the real diffusers run of ``s`` exported for ``smp``."""
    sch = to_diffusers(smp, s, BASE, psd=psd)
    tr, noise, _ = harness.response(sch, psd.ravel())
    return symspec.divergence(psd.ravel(), tr**2 + noise)


def main() -> None:
    print("| spectrum | sampler | N | non-chained | chained | best heuristic | wins | time |")
    print("|---|---|---|---|---|---|---|---|")
    lr = level_range(BASE)
    for spec, psd in SPECTRA.items():
        for smp in (symspec.DDIM, symspec.DDPM):
            for n in (5, 10, 20):
                t = time.perf_counter()
                ch = symspec.design_schedule(smp, psd, n, level_range=lr)
                un = symspec.design_schedule(smp, psd, n, chained=False, level_range=lr)
                best = min(objective(smp, b, psd) for b in baseline_schedules(smp, n).values())
                r_ch, r_un = real(smp, ch, psd), real(smp, un, psd)
                print(f"| {spec} | {smp.name} | {n} | {r_un:.4g} | {r_ch:.4g} | {best:.4g} | "
                      f"{r_un <= min(best, r_ch)} | {time.perf_counter() - t:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
