"""``symspec demo``: DDPM and DDIM on built-in spectra, out of the box.

Two spectra: a natural-image power law ``1/(|f| + f0)^2`` and the spectrum of the real
photos bundled with scikit-learn (32 x 32 grey patches), each under diffusers' default
schedules (1000 training steps, leading spacing) at a few step counts.
"""

from __future__ import annotations

import json

import numpy as np

from .design.divergences import divergence
from .numeric.response import spectral_response
from .schedules import diffusers_schedule, inference_timesteps, training_alphas_cumprod
from .spectra import photo_psd, power_law
from .symbolic.samplers import DDIM, DDPM

STEPS = (5, 10, 20, 50)
BETAS = ("linear", "squaredcos_cap_v2")
SAMPLERS = (("DDPM", DDPM, "chained"), ("DDIM", DDIM, "stride"))


def spectra() -> dict[str, np.ndarray]:
    """The demo's spectra: the power law, and the bundled photos' (32 x 32 patches)."""
    return {"power law": power_law((32, 32), alpha=2.0), "photos": photo_psd(32)}


def demo_table(psd: np.ndarray, steps=STEPS, betas=BETAS, spacing: str = "leading"):
    """Rows of (sampler, beta schedule, steps, relative W2, KL per mode) and the responses."""
    rows, responses = [], {}
    for name, smp, prev in SAMPLERS:
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
    """Print the tables (or JSON) and write the figure atomically to ``out_png``.

    ``out_png`` is checked before anything is computed (a ``ValueError`` naming it).
    """
    import io

    from ._io import check_output, write_outputs

    check_output(out_png, "--out")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import plot_spectra, plot_transfer

    specs = spectra()
    tables = {label: demo_table(psd) for label, psd in specs.items()}
    if as_json:
        print(json.dumps({label: rows for label, (rows, _) in tables.items()}))
    for label, (rows, _) in ([] if as_json else tables.items()):
        print(f"\n{label} spectrum, 32x32; diffusers defaults (1000 training steps, leading "
              "spacing)")
        print(f"{'sampler':8} {'betas':18} {'steps':>5} {'W2^2/sum(psd)':>14} {'KL/mode':>10}")
        for r in rows:
            print(f"{r['sampler']:8} {r['beta_schedule']:18} {r['steps']:5d} "
                  f"{r['rel_w2']:14.5f} {r['kl_per_mode']:10.5f}")
    fig, axes = plt.subplots(len(specs), 3, figsize=(15, 4 * len(specs)), squeeze=False)
    for row, (label, psd) in zip(axes, specs.items(), strict=True):
        res = tables[label][1]
        for ax, name in zip(row[:2], ("DDPM", "DDIM"), strict=True):
            plot_spectra(psd, {f"{b.split('_')[0]}, N={n}": res[name, b, n]
                               for b in BETAS for n in (5, 50)}, ax=ax)
            ax.set_title(f"{label}: {name} output spectra")
        plot_transfer(psd, {f"{s}, N={n}": res[s, "linear", n] for s in ("DDPM", "DDIM")
                            for n in (5, 50)}, ax=row[2])
        row[2].set_title(f"{label}: transfer of the initial noise (linear)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    write_outputs([(out_png, buf.getvalue(), "--out")])
    if not as_json:
        print(f"\nfigure written to {out_png}")
    return 0
