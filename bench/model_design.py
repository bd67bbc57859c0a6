"""Design beyond the Gaussian: the schedule designed for a mixture against every default.

    python bench/model_design.py [--k 16] [--steps 5 10] [--samplers ddim ddpm]
                                 [--n 20000] [--terms w2=1,mode_kl=1] [--frontier]

A mixture of ``K`` full-covariance Gaussians is fitted to 8x8 grey photo patches
(scikit-learn EM, seed 0).  For each sampler (DDIM with eta 0, DDPM) and step count:

1. ``symspec.design_schedule(sampler, model, N)`` designs by simulation
   (:mod:`symspec.design.simulation`; training seeds 0-2); its time is printed, with its
   objective against the spectral design's (the warm start) on the same training seeds.
2. The real diffusers scheduler of the model design, of the spectral design and of the six
   diffusers defaults (linear/cosine x leading/trailing/linspace) each draw ``n`` samples on
   held-out seeds (1000), driven by the mixture's exact posterior mean
   (:func:`symspec.reality.compare_schedules`).  The table prints FD, MMD and mode-KL with
   standard errors, for the model design, the spectral design and the best default, and a
   verdict per metric for the model design against the best default: ``win``/``loss`` when
   they differ by more than two standard errors of the difference, ``tie`` otherwise.

``--frontier`` also designs with the mode term's weight 0, 1/4, 1, 4 and 16 (the others at
1; DDIM and DDPM at the last step count) and prints each design's held-out (FD, MMD,
mode-KL).
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

import symspec
from symspec import reality
from symspec.diffusers import level_range
from symspec.models import GaussianMixture
from symspec.spectra import photo_patches

HELD_OUT = 1000
KEYS = ("fd", "mmd", "mode_kl")


def _progress(msg: str) -> None:
    print(f"\r{msg[:78]:78s}", end="", file=sys.stderr, flush=True)


def _terms(text: str) -> dict[str, float]:
    return {k: float(v) for k, v in (p.split("=") for p in text.split(","))}


def verdict(d: dict, b: dict, key: str) -> str:
    gap = 2 * math.hypot(d[key + "_se"], b[key + "_se"])
    return "win" if d[key] < b[key] - gap else "loss" if d[key] > b[key] + gap else "tie"


def cell(r: dict, k: str) -> str:
    return f"{r[k]:.4g}±{r[k + '_se']:.2g}"


def evaluate(gm, name: str, N: int, mine, n: int) -> list[dict]:
    rows = reality.compare_schedules(gm, name, N, n=n, seed=HELD_OUT,
                                     extra={"model design": mine}, progress=_progress)
    print("\r" + " " * 78 + "\r", end="", file=sys.stderr)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--steps", type=int, nargs="+", default=[5, 10])
    ap.add_argument("--samplers", nargs="+", default=["ddim", "ddpm"])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--terms", type=_terms, default=None)
    ap.add_argument("--frontier", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    patches = photo_patches(8, stride=8).reshape(-1, 64)
    t = time.perf_counter()
    gm = GaussianMixture.fit(patches, args.k, seed=0)
    print(f"K = {args.k} mixture on {len(patches)} patches of d = 64: fitted in "
          f"{time.perf_counter() - t:.0f} s; terms {args.terms or 'default'}; {args.n} "
          f"held-out samples (seed {HELD_OUT}) per schedule", flush=True)
    smps = {"ddim": symspec.DDIM, "ddpm": symspec.DDPM}
    print(f"\n{'sampler':7} {'N':>3} {'design s':>8} {'objective (model / spectral)':>30}   "
          f"{'metric':8} {'model design':>16} {'spectral design':>16} "
          f"{'best default':>16} {'(which)':18} verdict", flush=True)
    for name in args.samplers:
        for N in args.steps:
            t = time.perf_counter()
            mine = symspec.design_schedule(smps[name], gm, N, terms=args.terms,
                                           level_range=level_range(), progress=_progress)
            secs = time.perf_counter() - t
            m = mine.meta
            rows = evaluate(gm, name, N, mine, args.n)
            spec, model = rows[0], rows[1]
            for i, k in enumerate(KEYS):
                b = min(rows[2:], key=lambda r, k=k: r[k])
                head = (f"{name:7} {N:3d} {secs:8.1f} "
                        f"{m['objective']:14.4g} / {m['objective_warm']:<13.4g}" if i == 0
                        else " " * 63)
                print(f"{head}   {k:8} {cell(model, k):>16} {cell(spec, k):>16} "
                      f"{cell(b, k):>16} {b['name']:18} {verdict(model, b, k)}", flush=True)
    if args.frontier:
        N = args.steps[-1]
        print(f"\nfrontier at N = {N}: the mode term's weight (w2, fd, mmd at 1); held-out "
              "metrics of the real scheduler")
        for name in args.samplers:
            for w in (0.0, 0.25, 1.0, 4.0, 16.0):
                terms = {"w2": 1.0, "fd": 1.0, "mmd": 1.0, "mode_kl": w}
                mine = symspec.design_schedule(smps[name], gm, N, terms=terms,
                                               level_range=level_range(), progress=_progress)
                sch, _ = reality.designed_scheduler(name, N, gm, schedule=mine)
                x = reality.sample(sch, gm, args.n, seed=HELD_OUT)
                r = reality.metrics(x, gm, seed=HELD_OUT, floor=False)
                print(f"\r{name:7} {N:3d} mode weight {w:5.2f}: " + "  ".join(
                    f"{k} {cell(r, k)}" for k in KEYS), flush=True)
    print(f"\nwin/loss: beyond 2 standard errors of the difference; levels kept in "
          f"diffusers' training range {tuple(round(v, 6) for v in level_range())}; "
          f"alpha-bar of the last design: {np.round(mine.alpha_bar, 5).tolist()}")


if __name__ == "__main__":
    main()
