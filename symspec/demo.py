"""``symspec demo``: DDPM and DDIM on a natural-image-like spectrum, out of the box."""

from __future__ import annotations

import json

from .divergence import divergence
from .numeric import spectral_response
from .samplers import DDIM, DDPM
from .schedules import diffusers_schedule, inference_timesteps, training_alphas_cumprod
from .spectra import power_law

STEPS = (5, 10, 20, 50)
BETAS = ("linear", "squaredcos_cap_v2")


def demo_table(psd, steps=STEPS, betas=BETAS, spacing="leading"):
    """Rows of (sampler, beta schedule, steps, relative W2, KL per mode) and the responses."""
    rows, responses = [], {}
    for name, smp, prev in (("DDPM", DDPM, "chained"), ("DDIM", DDIM, "stride")):
        for beta in betas:
            ab = training_alphas_cumprod(1000, beta)
            for n in steps:
                sched = diffusers_schedule(ab, inference_timesteps(n, 1000, spacing), prev)
                r = spectral_response(smp, sched, psd)
                rows.append({"sampler": name, "beta_schedule": beta, "steps": n,
                             "rel_w2": divergence(psd, r.output_psd) / psd.sum(),
                             "kl_per_mode": divergence(psd, r.output_psd, "kl") / psd.size})
                responses[name, beta, n] = r
    return rows, responses


def run_demo(out_png: str, as_json: bool = False) -> int:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .cli import atomic_write
    from .plotting import plot_spectra, plot_transfer

    psd = power_law((32, 32), alpha=2.0)
    rows, res = demo_table(psd)
    if as_json:
        print(json.dumps({"spectrum": "power law 1/(|f|+f0)^2 on 32x32", "rows": rows}))
    else:
        print("symspec demo: power-law spectrum 1/(|f|+f0)^2 on a 32x32 grid, diffusers "
              "defaults (1000 training steps, leading spacing)")
        print(f"{'sampler':8} {'betas':18} {'steps':>5} {'W2^2/sum(psd)':>14} {'KL/mode':>10}")
        for r in rows:
            print(f"{r['sampler']:8} {r['beta_schedule']:18} {r['steps']:5d} "
                  f"{r['rel_w2']:14.5f} {r['kl_per_mode']:10.5f}")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, name in zip(axes[:2], ("DDPM", "DDIM"), strict=True):
        plot_spectra(psd, {f"{b.split('_')[0]}, N={n}": res[name, b, n]
                           for b in BETAS for n in (5, 50)}, ax=ax)
        ax.set_title(f"{name}: output spectra")
    plot_transfer(psd, {f"{s}, N={n}": res[s, "linear", n] for s in ("DDPM", "DDIM")
                        for n in (5, 50)}, ax=axes[2])
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(out_png, buf.getvalue())
    if not as_json:
        print(f"figure written to {out_png}")
    return 0
