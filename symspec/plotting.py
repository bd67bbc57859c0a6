"""Figures from symspec results (matplotlib, imported lazily by callers)."""

from __future__ import annotations

import numpy as np

from .spectra import radial_profile

#: Legend font size (points).  Book figures are drawn 6.4 in wide at 150 dpi and shown about
#: 600 px wide, where 9 pt is about 11 px: legible at 1280 px.
LEGEND_FONTSIZE = 9

__all__ = ["plot_spectra", "plot_transfer", "plot_profiles", "plot_ratio",
           "plot_psd_fit", "plot_convergence", "plot_schedules", "plot_frontier"]


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(5, 3.5))
    return ax


def _finish(ax, **labels):
    from matplotlib.ticker import NullFormatter

    lo, hi = ax.get_xlim()
    ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5) if lo <= t <= hi]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])  # readable frequencies on a log axis
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(**labels)
    ax.legend(fontsize=LEGEND_FONTSIZE)
    return ax


def plot_spectra(psd, outputs: dict, ax=None):
    """Radially averaged data PSD and output PSDs (``{label: Response or array}``), log-log."""
    ax = _axes(ax)
    f, d = radial_profile(psd)
    ax.loglog(f[f > 0], d[f > 0], "k-", lw=2.5, label="data")
    for label, r in outputs.items():
        f, p = radial_profile(getattr(r, "output_psd", r))
        ax.loglog(f[f > 0], p[f > 0], label=label)
    return _finish(ax, xlabel="|f| (cycles/sample)", ylabel="variance per mode",
                   title="Output spectra")


def plot_transfer(psd, responses: dict, ax=None):
    """Radially averaged transfer ``H`` of the initial latent, per response."""
    ax = _axes(ax)
    for label, r in responses.items():
        f, h = radial_profile(np.abs(r.transfer))
        ax.semilogx(f[f > 0], h[f > 0], label=label)
    return _finish(ax, xlabel="|f| (cycles/sample)", ylabel="|H|",
                   title="Transfer of the initial noise")


def plot_profiles(curves: dict, ax=None, *, ylabel: str = "", title: str = "",
                  logy: bool = False):
    """Radially averaged per-mode quantities on an FFT grid, one curve per label.

    Parameters
    ----------
    curves : dict
        ``{label: array}``, each array one value per mode on an FFT grid (1-D or 2-D).
    ax : matplotlib Axes, optional
        Where to draw; a new figure by default.
    ylabel, title : str
        Axis label and title.
    logy : bool
        Logarithmic vertical axis (the frequency axis is always logarithmic).

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> ax = plot_profiles({"flat": np.ones((8, 8)), "half": np.full((8, 8), 0.5)})
    >>> [line.get_label() for line in ax.lines]
    ['flat', 'half']
    """
    ax = _axes(ax)
    for label, v in curves.items():
        f, p = radial_profile(np.asarray(v, dtype=float))
        ax.plot(f[f > 0], p[f > 0], label=label)
    ax.set(xscale="log", yscale="log" if logy else "linear")
    return _finish(ax, xlabel="|f| (cycles/sample)", ylabel=ylabel, title=title)


def plot_ratio(psd, outputs: dict, ax=None):
    """Output PSD over data PSD per frequency (``{label: Response or array}``); 1 is exact.

    Examples
    --------
    >>> ax = plot_ratio(np.full(16, 2.0), {"exact": np.full(16, 2.0)})
    >>> float(ax.lines[0].get_ydata().max())
    1.0
    """
    lam = np.asarray(psd, dtype=float)
    if not np.all(lam > 0):
        raise ValueError("psd must be > 0 in every mode to form a ratio; its minimum is "
                         f"{lam.min():.3g}")
    ax = plot_profiles({label: getattr(r, "output_psd", r) / lam
                        for label, r in outputs.items()}, ax,
                       ylabel="output PSD / data PSD", title="Spectral error", logy=True)
    ax.axhline(1.0, color="k", lw=1, ls=":")
    return ax


def plot_psd_fit(psd, fit=None, ax=None, label: str = "data"):
    """Radially averaged PSD estimate and, optionally, a :func:`~symspec.spectra.fit_psd` fit.

    The fit is averaged over the same rings as the data (it is evaluated on the full grid
    first), so the two curves compare like with like.
    """
    from .spectra import frequency_radius

    ax = _axes(ax)
    f, d = radial_profile(psd)
    line, = ax.loglog(f[f > 0], d[f > 0], ".", label=label)
    if fit is not None:
        f, m = radial_profile(fit(frequency_radius(np.shape(psd))))
        params = ", ".join(f"{k}={v:.3g}" for k, v in fit.params.items())
        ax.loglog(f[f > 0], m[f > 0], "-", color=line.get_color(),
                  label=f"{fit.model}: {params}")
    ax.set(xlabel="|f| (cycles/sample)", ylabel="variance per mode", title="Data spectrum")
    ax.xaxis.set_minor_formatter("")
    ax.legend(fontsize=LEGEND_FONTSIZE)
    return ax


def plot_convergence(steps, values: dict, ax=None, *, ylabel: str = "error", title: str = "",
                     slopes=()):
    """Quantities against the number of steps, log-log, with reference slopes ``N**-k``.

    Parameters
    ----------
    steps : array_like
        Step counts, shared by every curve.
    values : dict
        ``{label: array}``, one positive value per step count (an error or a divergence).
    ax : matplotlib Axes, optional
        Where to draw; a new figure by default.
    ylabel, title : str
        Axis label and title.
    slopes : sequence of float
        Orders ``k`` of dotted reference lines ``N**-k``, drawn through the first point of
        the first curve.

    Examples
    --------
    >>> ax = plot_convergence([10, 20, 40], {"Euler": [0.1, 0.05, 0.025]}, slopes=[1])
    >>> [line.get_label() for line in ax.lines]
    ['Euler', '$N^{-1}$']
    """
    n = np.asarray(steps, dtype=float)
    ax = _axes(ax)
    for label, v in values.items():
        v = np.asarray(v, dtype=float)
        if v.shape != n.shape:
            raise ValueError(f"values[{label!r}] has shape {v.shape}, steps has {n.shape}")
        ax.loglog(n, v, "o-", ms=3, label=label)
    if len(slopes) and values:
        y0 = float(np.asarray(next(iter(values.values())), dtype=float)[0])
        for k in slopes:
            ax.loglog(n, y0 * (n / n[0]) ** -k, "k:", lw=1, label=f"$N^{{-{k:g}}}$")
    ax.set(xlabel="steps N", ylabel=ylabel, title=title)
    ax.legend(fontsize=LEGEND_FONTSIZE)
    return ax


def plot_schedules(schedules: dict, ax=None):
    """Noise levels as log-SNR ``log(alphabar / (1 - alphabar))`` against step fraction.

    Each chained schedule (``{label: Schedule}``, VP or VE) is drawn through its ``N + 1``
    levels at fractions ``0, 1/N, ..., 1``; a clean final level (infinite log-SNR) is left
    out.  A non-chained schedule is drawn as its steps: a segment from the level each step
    starts from (at ``i/N``) to the level it goes to (at ``(i+1)/N``).

    Examples
    --------
    >>> from symspec.schedules import Schedule
    >>> ax = plot_schedules({"a": Schedule.from_alpha_bar([0.1, 0.5, 1.0])})
    >>> ax.lines[0].get_ydata().round(3).tolist()
    [-2.197, 0.0]
    """
    ax = _axes(ax)
    for label, sched in schedules.items():
        vp = sched.to_space("vp")
        if not vp.chained:
            n = vp.steps
            with np.errstate(divide="ignore"):
                u0, u1 = (np.log(a / (1 - a)) for a in (vp.start, vp.end))
            x = np.stack([np.arange(n), np.arange(1, n + 1), np.full(n, np.nan)], 1) / n
            y = np.stack([u0, np.where(np.isfinite(u1), u1, np.nan), np.full(n, np.nan)], 1)
            ax.plot(x.ravel(), y.ravel(), ".-", label=f"{label} (steps)")
            continue
        ab = vp.alpha_bar
        keep = ab < 1
        frac = np.linspace(0, 1, ab.size)[keep]
        ax.plot(frac, np.log(ab[keep] / (1 - ab[keep])), ".-", label=label)
    ax.set(xlabel="fraction of steps", ylabel="log-SNR", title="Noise schedules")
    ax.legend(fontsize=LEGEND_FONTSIZE)
    return ax


def plot_frontier(rows: list, x: str = "mode_kl", y: str = "fd", ax=None, highlight=()):
    """Schedules as points on two metrics (lower-left is better), with standard errors.

    ``rows`` are dicts with ``name`` and the metrics with their ``*_se``
    (:func:`symspec.reality.compare_schedules`).  Rows named in ``highlight`` are drawn as
    filled stars and joined by a line in their order (a frontier traced by a weight);
    the others (diffusers' defaults) as open circles, labelled.

    Examples
    --------
    >>> rows = [{"name": n, "fd": f, "fd_se": 0.1, "mode_kl": k, "mode_kl_se": 0.01}
    ...         for n, f, k in (("a", 1.0, 0.2), ("b", 2.0, 0.1))]
    >>> ax = plot_frontier(rows, highlight=("a",))
    >>> [t.get_text() for t in ax.texts]
    ['a', 'b']
    """
    ax = _axes(ax)
    marked = [r for r in rows if r["name"] in highlight]
    for r in rows:
        mine = r["name"] in highlight
        ax.errorbar(r[x], r[y], xerr=r[f"{x}_se"], yerr=r[f"{y}_se"],
                    fmt="*" if mine else "o", ms=12 if mine else 7,
                    mfc=None if mine else "none", color="C3" if mine else "C0", capsize=2)
        ax.annotate(r["name"], (r[x], r[y]), textcoords="offset points", xytext=(5, 4))
    if len(marked) > 1:
        ax.plot([r[x] for r in marked], [r[y] for r in marked], "-", color="C3", lw=1)
    names = {"fd": "Fréchet distance", "mmd": "MMD", "mode_kl": "mode-KL",
             "sliced_w2": "sliced W2"}
    ax.set(xlabel=f"{names.get(x, x)} (lower is better)",
           ylabel=f"{names.get(y, y)} (lower is better)")
    return ax
