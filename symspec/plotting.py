"""Figures from symspec results (matplotlib, imported lazily by callers)."""

from __future__ import annotations

import numpy as np

from .spectra import radial_profile

__all__ = ["plot_spectra", "plot_transfer"]


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(5, 3.5))
    return ax


def plot_spectra(psd, outputs: dict, ax=None):
    """Radially averaged data PSD and output PSDs (``{label: Response or array}``), log-log."""
    ax = _axes(ax)
    f, d = radial_profile(psd)
    ax.loglog(f[f > 0], d[f > 0], "k-", lw=2.5, label="data")
    for label, r in outputs.items():
        f, p = radial_profile(getattr(r, "output_psd", r))
        ax.loglog(f[f > 0], p[f > 0], label=label)
    ax.set(xlabel="|f| (cycles/sample)", ylabel="variance per mode", title="Output spectra")
    ax.legend(fontsize=7)
    return ax


def plot_transfer(psd, responses: dict, ax=None):
    """Radially averaged transfer ``H`` of the initial latent, per response."""
    ax = _axes(ax)
    for label, r in responses.items():
        f, h = radial_profile(np.abs(r.transfer))
        ax.semilogx(f[f > 0], h[f > 0], label=label)
    ax.set(xlabel="|f| (cycles/sample)", ylabel="|H|", title="Transfer of the initial noise")
    ax.legend(fontsize=7)
    return ax
