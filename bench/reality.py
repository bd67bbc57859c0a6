"""Designed vs default schedules on real diffusers samplers, beyond the Gaussian.

    python bench/reality.py [--k 1 4 16 64] [--steps 5 10 20] [--n 20000] [--no-network]
                            [--no-speed]

1. Mixtures of ``K`` full-covariance Gaussians are fitted to 8x8 grey photo patches
   (:func:`symspec.spectra.photo_patches`, scikit-learn EM, seed 0).  For DDIM (eta 0) and
   DDPM with ``N`` steps, the schedule designed for the mixture's PCA spectrum and diffusers'
   six defaults (linear/cosine x leading/trailing/linspace) each draw ``n`` samples from the
   real scheduler driven by the mixture's exact posterior mean
   (:func:`symspec.reality.compare_schedules`); the table prints FD, MMD and mode-KL,
   designed / best default, with standard errors, and the Gaussian prediction of the FD.
2. The trained v-prediction network ``bench/demo_net.pt`` (``bench/train_demo_net.py``) in
   place of the exact model, scored against the photo patches (modes: the K = 16 mixture).
3. Speed: one real-sampler run (n samples, K = 16, d = 64, 10 DDIM steps) against a
   hand-written NumPy einsum loop of the same posterior and update, same latents, measured
   in the same run; the two outputs must agree.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from symspec import reality
from symspec.models import GaussianMixture
from symspec.spectra import photo_patches

HERE = Path(__file__).resolve().parent


def _progress(msg: str) -> None:
    print(f"\r{msg:70s}", end="", file=sys.stderr, flush=True)


def _pm(v: float, se: float) -> str:
    return f"{v:.3g}±{se:.1g}"


def best_default(rows, key):
    return min((r for r in rows if r["name"] != "designed"), key=lambda r: r[key])


def header(title: str) -> None:
    print(f"\n{title}: designed / best of the six defaults (value ± SE); predicted FD "
          "(Gaussian theory) designed / best default")
    print(f"{'sampler':8} {'N':>3} {'FD':>26} {'MMD':>28} {'mode-KL':>26} {'pred. FD':>16}")


def row(smp: str, N: int, rows: list) -> None:
    """One line, printed as soon as it is measured."""
    d = rows[0]
    cells = []
    for k in ("fd", "mmd", "mode_kl"):
        b = best_default(rows, k)
        cells.append(f"{_pm(d[k], d[k + '_se'])} / {_pm(b[k], b[k + '_se'])}")
    bp = best_default(rows, "predicted_fd")
    print(f"{smp:8} {N:3d} {cells[0]:>26} {cells[1]:>28} {cells[2]:>26} "
          f"{d['predicted_fd']:7.3g} / {bp['predicted_fd']:<7.3g}", flush=True)


def footer(rows: list) -> None:
    f = rows[0]
    print(f"noise floor (exact samples): FD {f['fd_floor']:.2g}, MMD {f['mmd_floor']:.1g}, "
          f"mode-KL {f['mode_kl_floor']:.1g}", flush=True)


def table(title: str, results: dict) -> None:
    header(title)
    for (smp, N), rows in results.items():
        row(smp, N, rows)
    footer(rows)


def numpy_ddim(gm: GaussianMixture, z: np.ndarray, ab: np.ndarray, ts: list[int]):
    """A hand-written DDIM (eta 0) with the mixture posterior written in NumPy einsum."""
    K, d = gm.means.shape
    x = z.copy()
    for i, t in enumerate(ts):
        a_t, a_p = ab[t], (ab[ts[i + 1]] if i + 1 < len(ts) else 1.0)
        a, s2 = math.sqrt(a_t), 1 - a_t
        C = a_t * gm.covariances + s2 * np.eye(d)
        Ci = np.linalg.inv(C)
        logdet = np.linalg.slogdet(C)[1]
        diff = x[:, None, :] - a * gm.means[None]                       # (n, K, d)
        sol = np.einsum("kde,nke->nkd", Ci, diff, optimize=True)
        logit = np.log(gm.weights) - 0.5 * logdet - 0.5 * np.einsum("nkd,nkd->nk", diff, sol)
        logit -= logit.max(axis=1, keepdims=True)
        r = np.exp(logit)
        r /= r.sum(axis=1, keepdims=True)
        x0k = gm.means[None] + a * np.einsum("kde,nke->nkd", gm.covariances, sol,
                                             optimize=True)
        x0 = np.einsum("nk,nkd->nd", r, x0k)
        eps = (x - a * x0) / math.sqrt(s2)
        x = math.sqrt(a_p) * x0 + math.sqrt(1 - a_p) * eps
    return x


def speed(gm: GaussianMixture, n: int) -> None:
    from diffusers import DDIMScheduler

    sch = DDIMScheduler(clip_sample=False)
    sch.set_timesteps(10)
    z = np.random.default_rng(0).standard_normal((n, gm.dim))
    ab = sch.alphas_cumprod.double().numpy()
    ts = [int(t) for t in sch.timesteps]
    times = {"real": [], "numpy": []}
    for _ in range(2):
        t0 = time.perf_counter()
        real = reality.sample(sch, gm, n, latents=z, eta=0.0)
        times["real"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ref = numpy_ddim(gm, z, ab, ts)
        times["numpy"].append(time.perf_counter() - t0)
    tr, tn = min(times["real"]), min(times["numpy"])
    err = float(np.abs(real - ref).max())
    print(f"\nspeed: real DDIM via diffusers, {n} samples, K = {gm.n_components}, d = "
          f"{gm.dim}, 10 steps: {tr:.2f} s; NumPy einsum loop: {tn:.2f} s; ratio "
          f"{tr / tn:.2f} (goal <= 2); outputs agree to {err:.1e}")
    assert err < 1e-8, err


def network_table(gm16, patches, steps, n) -> None:
    import torch

    sys.path.insert(0, str(HERE))
    from train_demo_net import load

    net = load(HERE / "demo_net.pt").double()
    torch.set_num_threads(1)

    def v(x, t):
        with torch.no_grad():
            return net(x, t)

    ref = patches
    from diffusers import DDIMScheduler

    sch = DDIMScheduler(clip_sample=False, prediction_type="v_prediction")
    sch.set_timesteps(200)
    x = reality.sample(sch, v, n, seed=0, dim=64, eta=0.0)
    m = reality.metrics(x, gm16, reference=ref)
    print(f"\ntrained network, DDIM 200 steps (linear/leading): FD {_pm(m['fd'], m['fd_se'])}, "
          f"MMD {_pm(m['mmd'], m['mmd_se'])}, mode-KL {_pm(m['mode_kl'], m['mode_kl_se'])}; "
          f"floor (mixture samples vs data) FD {m['fd_floor']:.2g}")
    results = {}
    for N in steps:
        results[("ddim", N)] = reality.compare_schedules(gm16, "ddim", N, n=n, network=v,
                                                         reference=ref, progress=_progress)
    print(file=sys.stderr)
    table("trained v-prediction network vs the photo patches", results)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--k", type=int, nargs="+", default=[1, 4, 16, 64])
    p.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20])
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--no-network", action="store_true")
    p.add_argument("--no-speed", action="store_true")
    args = p.parse_args()
    patches = photo_patches(8).reshape(-1, 64)
    models = {}
    need16 = not (args.no_network and args.no_speed)
    for K in sorted(set(args.k) | ({16} if need16 else set())):
        t0 = time.perf_counter()
        models[K] = GaussianMixture.fit(patches, K, seed=0)
        print(f"K = {K}: fitted to {len(patches)} patches in {time.perf_counter() - t0:.0f} s",
              file=sys.stderr)
    if not args.no_speed:
        speed(models[16], args.n)
    for K in args.k:
        header(f"K = {K} mixture, {args.n} samples per schedule")
        for smp in ("ddim", "ddpm"):
            for N in args.steps:
                rows = reality.compare_schedules(models[K], smp, N, n=args.n,
                                                 progress=_progress)
                print(file=sys.stderr)
                row(smp, N, rows)
        footer(rows)
    if not args.no_network:
        network_table(models[16], patches, [N for N in args.steps if N <= 10] or args.steps,
                      args.n)


if __name__ == "__main__":
    main()
