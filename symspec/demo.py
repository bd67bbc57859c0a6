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
    """Rows of (sampler, beta schedule, steps, relative W2, its DC part, KL per mode) and the
    responses.

    ``rel_w2`` is ``W2^2(data, output) / sum(psd)``; ``rel_w2_dc`` the part of it from the
    ``f = 0`` mode alone (the mean brightness, most of the photos' variance);
    ``kl_per_mode`` is ``KL(data || output)`` per mode, in nats.  Lower is better for all.
    """
    dc = (0,) * np.ndim(psd)
    rows, responses = [], {}
    for name, smp, prev in SAMPLERS:
        for beta in betas:
            ab = training_alphas_cumprod(1000, beta)
            for n in steps:
                sched = diffusers_schedule(ab, inference_timesteps(n, 1000, spacing), prev)
                r = spectral_response(smp, sched, psd)
                rows.append({"sampler": name, "beta_schedule": beta, "steps": n,
                             "rel_w2": divergence(psd, r.output_psd) / psd.sum(),
                             "rel_w2_dc": divergence([psd[dc]], [r.output_psd[dc]]) / psd.sum(),
                             "kl_per_mode": divergence(psd, r.output_psd, "kl") / psd.size})
                responses[name, beta, n] = r
    return rows, responses


#: Figure width in pixels (``WIDTH / DPI`` inches at ``DPI``) and the smallest font in points:
#: 9 pt at 100 dpi is 12.5 px, legible where the figure is shown 1280 px wide.
WIDTH, DPI, MIN_FONT = 1280, 100, 9.0


def _mark_dc(ax, f1: float, points: list[tuple[float, str, str]]) -> None:
    """Show the ``f = 0`` (DC) mode, which a log-frequency axis cannot: ``(value, colour,
    marker)`` points at the left edge, left of a dotted line, with a tick ``DC``."""
    x = f1 / 2.5
    for value, colour, marker in points:
        ax.plot([x], [value], marker, color=colour, ms=7, mfc="none" if marker == "o" else colour,
                clip_on=False)
    ax.axvline(np.sqrt(x * f1), color="0.6", ls=":", lw=1)
    ticks = [t for t in ax.get_xticks() if t >= f1]
    ax.set_xticks([x, *ticks], ["DC", *(f"{t:g}" for t in ticks)])
    ax.set_xlim(x / 1.5, None)


def demo_figure(specs: dict[str, np.ndarray], tables: dict):
    """The demo's figure: per spectrum, DDPM's and DDIM's output spectra and the transfer of
    the initial noise, with the DC mode at the left edge of every panel."""
    import matplotlib.pyplot as plt

    from .plotting import plot_spectra, plot_transfer

    with plt.rc_context({"font.size": 10, "legend.fontsize": MIN_FONT,
                         "xtick.labelsize": MIN_FONT, "ytick.labelsize": MIN_FONT}):
        fig, axes = plt.subplots(len(specs), 3, figsize=(WIDTH / DPI, 4.2 * len(specs)),
                                 squeeze=False, layout="constrained", dpi=DPI)
        for row, (label, psd) in zip(axes, specs.items(), strict=True):
            res = tables[label][1]
            dc = (0,) * psd.ndim
            f1 = 1.0 / max(psd.shape)
            for ax, name in zip(row[:2], ("DDPM", "DDIM"), strict=True):
                shown = {f"{b.split('_')[0]}, N={n}": res[name, b, n]
                         for b in BETAS for n in (5, 50)}
                plot_spectra(psd, shown, ax=ax)
                colours = [line.get_color() for line in ax.get_lines()]
                _mark_dc(ax, f1, [(float(psd[dc]), "k", "s")] + [
                    (float(r.output_psd[dc]), c, "o")
                    for r, c in zip(shown.values(), colours[1:], strict=True)])
                ax.set_title(f"{label}: {name} output spectra")
                ax.legend(fontsize=MIN_FONT)
            shown = {f"{s}, N={n}": res[s, "linear", n] for s in ("DDPM", "DDIM")
                     for n in (5, 50)}
            plot_transfer(psd, shown, ax=row[2])
            colours = [line.get_color() for line in row[2].get_lines()]
            _mark_dc(row[2], f1, [(float(abs(r.transfer[dc])), c, "o")
                                  for r, c in zip(shown.values(), colours, strict=True)])
            row[2].set_yscale("log")  # the DC mode's transfer is far above the rest
            row[2].set_title(f"{label}: |H| of the initial noise, linear")
            row[2].legend(fontsize=MIN_FONT)
    return fig


_KEY = ("lower is better in every column.  W2^2/sum(psd): squared Wasserstein-2 distance "
        "between the data and output spectra over the data's total variance; of which DC: "
        "its part from the f = 0 mode alone (the mean brightness; the figure shows it at the "
        "left edge of each panel, where a log-frequency axis cannot); KL/mode: KL(data || "
        "output), the data's Gaussian against the sampler's, per mode, in nats.")


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

    specs = spectra()
    tables = {label: demo_table(psd) for label, psd in specs.items()}
    if as_json:
        print(json.dumps({label: rows for label, (rows, _) in tables.items()}))
    else:
        print(_KEY)
    for label, (rows, _) in ([] if as_json else tables.items()):
        psd = specs[label]
        share = float(psd[(0,) * psd.ndim] / psd.sum())
        print(f"\n{label} spectrum, 32x32 (the DC mode holds {share:.0%} of its variance); "
              "diffusers defaults (1000 training steps, leading spacing)")
        print(f"{'sampler':8} {'betas':18} {'steps':>5} {'W2^2/sum(psd)':>14} "
              f"{'of which DC':>12} {'KL/mode':>10}")
        for r in rows:
            print(f"{r['sampler']:8} {r['beta_schedule']:18} {r['steps']:5d} "
                  f"{r['rel_w2']:14.5f} {r['rel_w2_dc']:12.5f} {r['kl_per_mode']:10.5f}")
    fig = demo_figure(specs, tables)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    write_outputs([(out_png, buf.getvalue(), "--out")])
    if not as_json:
        print(f"\nfigure written to {out_png} (DC: the f = 0 mode, at the left edge)")
    return 0
