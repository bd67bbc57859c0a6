"""The ``symspec`` command line.

Every subcommand is a function ``cmd_NAME(args) -> int`` plus an ``add_NAME(sub)`` that
declares its arguments.  Errors in the input print one line on stderr and exit with 2.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import numpy as np

from ._io import atomic_write

__all__ = ["main", "parse_psd", "parse_option"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        print(f"symspec: error: {message}", file=sys.stderr)
        raise SystemExit(2)


_VALUE = re.compile(r"^(true|false|[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|[A-Za-z_][\w-]*)$")


def parse_option(text: str) -> tuple[str, object]:
    """``"name=value"`` with a number, ``true``/``false`` or a bare word as value (no eval).

    >>> parse_option("eta=0.5"), parse_option("variance=fixed_large")
    (('eta', 0.5), ('variance', 'fixed_large'))
    """
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier() or not _VALUE.match(value):
        raise ValueError(f"option must look like name=number|true|false|word, got {text!r}")
    if value in ("true", "false"):
        return name, value == "true"
    try:
        return name, int(value)
    except ValueError:
        pass
    try:
        return name, float(value)
    except ValueError:
        return name, value


PSD_MODELS = "powerlaw:ALPHA[:SIZE], photos[:SIZE], white[:SIZE]"
PSD_HELP = "FILE.npy, FILE.npz (array 'psd') or a model: " + PSD_MODELS


def parse_psd(spec: str) -> np.ndarray:
    """A PSD from a file (``.npy``, ``.npz`` with key ``psd``) or a built-in model.

    Models: ``powerlaw:ALPHA[:SIZE]`` (a SIZE x SIZE grid, default 32), ``white[:SIZE]``,
    ``photos[:SIZE]`` (the photos bundled with scikit-learn, :func:`~symspec.spectra.photo_psd`).

    >>> parse_psd("powerlaw:2:8").shape
    (8, 8)
    """
    from ._checks import validate_psd
    from .spectra import power_law

    m = re.fullmatch(r"powerlaw:([0-9.]+)(?::(\d+))?", spec)
    if m:
        return power_law((int(m.group(2) or 32),) * 2, float(m.group(1)))
    m = re.fullmatch(r"photos(?::(\d+))?", spec)
    if m:
        from .spectra import photo_psd

        return np.array(photo_psd(int(m.group(1) or 32)))
    m = re.fullmatch(r"white(?::(\d+))?", spec)
    if m:
        n = int(m.group(1) or 32)
        return np.full((n, n), 0.25)
    path = Path(spec)
    if not path.exists():
        raise ValueError(f"--psd: no such file {spec!r} (or a model: {PSD_MODELS})")
    try:
        if path.suffix == ".npz":
            with np.load(path) as z:
                if "psd" not in z:
                    raise ValueError(f"--psd: {spec} has no array named 'psd'")
                arr = z["psd"]
        else:
            arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"--psd: cannot read {spec}: {exc}") from None
    return validate_psd(arr, f"--psd {spec}")


def _sampler(args):
    from .symbolic.samplers import get_sampler

    opts = dict(parse_option(o) for o in getattr(args, "option", None) or [])
    if getattr(args, "eta", None) is not None:
        opts["eta"] = args.eta
    return get_sampler(args.sampler, **opts)


# -- derive ------------------------------------------------------------------------------
def add_derive(sub):
    p = sub.add_parser("derive", help="derive and print a sampler's one-step map")
    p.add_argument("sampler", help="sampler name (e.g. ddpm, ddim)")
    p.add_argument("--eta", type=float, help="DDIM eta")
    p.add_argument("--option", action="append", metavar="NAME=VALUE", help="sampler option")
    p.add_argument("--steps", type=int, default=2, help="closed form over this many steps (1-4)")
    p.add_argument("--latex", action="store_true", help="print LaTeX")
    p.add_argument("--json", action="store_true", help="print JSON")


def cmd_derive(args) -> int:
    import sympy as sp

    from .symbolic.engine import closed_form, derive, variant

    smp = _sampler(args)
    m = derive(smp, variant(smp, 1, 3))
    show = sp.latex if args.latex else sp.sstr
    out = {"sampler": smp.name, "options": dict(smp.options),
           "A": show(m.A), "Q": show(m.Q), "C": show(m.C)}
    if smp.state == 1:
        cf = closed_form(smp, args.steps)
        out.update(gain=show(m.gain), noise_var=show(m.noise_var),
                   steps=args.steps, transfer=show(cf["transfer"]),
                   output_psd=show(cf["output_psd"]))
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")
    return 0


# -- response ----------------------------------------------------------------------------
def add_response(sub):
    p = sub.add_parser("response", help="output spectrum of a sampler on a diffusers schedule")
    p.add_argument("--sampler", default="ddim", help="sampler name")
    p.add_argument("--eta", type=float)
    p.add_argument("--option", action="append", metavar="NAME=VALUE")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--psd", default="powerlaw:2", help=PSD_HELP)
    p.add_argument("--beta-schedule", default="linear",
                   choices=["linear", "scaled_linear", "squaredcos_cap_v2"])
    p.add_argument("--spacing", default="leading", choices=["leading", "trailing", "linspace"])
    p.add_argument("--steps-offset", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", help="also save the output spectrum to this .npy file")


def cmd_response(args) -> int:
    from .numeric.response import spectral_response
    from .schedules import diffusers_schedule, inference_timesteps, training_alphas_cumprod

    smp = _sampler(args)
    psd = parse_psd(args.psd)
    ab = training_alphas_cumprod(1000, args.beta_schedule)
    ts = inference_timesteps(args.steps, 1000, args.spacing, args.steps_offset)
    sched = diffusers_schedule(ab, ts, "chained" if smp.name == "ddpm" else "stride", 1.0)
    r = spectral_response(smp, sched, psd)
    from .spectra import radial_profile

    f, data = radial_profile(psd)
    _, out = radial_profile(r.output_psd)
    _, tr = radial_profile(r.transfer)
    if args.out:
        import io

        buf = io.BytesIO()
        np.save(buf, r.output_psd)
        atomic_write(args.out, buf.getvalue())
    if args.json:
        print(json.dumps({"sampler": smp.name, "options": dict(smp.options), "steps": args.steps,
                          "frequency": f.tolist(), "data_psd": data.tolist(),
                          "output_psd": out.tolist(), "transfer": tr.tolist()}))
    else:
        print(f"{smp.name} {dict(smp.options)}, {args.steps} steps, {args.beta_schedule}/"
              f"{args.spacing}; radially averaged spectra")
        print(f"{'|f|':>8} {'data':>12} {'output':>12} {'ratio':>8} {'transfer':>10}")
        for row in zip(f, data, out, tr, strict=True):
            print(f"{row[0]:8.4f} {row[1]:12.5g} {row[2]:12.5g} {row[2] / row[1]:8.4f} "
                  f"{row[3]:10.4g}")
    return 0


# -- demo --------------------------------------------------------------------------------
def add_demo(sub):
    p = sub.add_parser("demo", help="the main job on a built-in spectrum: tables and a figure")
    p.add_argument("--out", default="symspec_demo.png", help="PNG figure path")
    p.add_argument("--json", action="store_true")


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(args.out, args.json)


# -- psd ---------------------------------------------------------------------------------
def add_psd(sub):
    p = sub.add_parser("psd", help="estimate a data spectrum from images, a stack or a WAV")
    p.add_argument("path", help="a folder of PNG/JPEG images, a .npy/.npz stack or a .wav file")
    p.add_argument("--size", type=int, help="crop/patch size (images) or segment length (WAV)")
    p.add_argument("--mode", choices=["crop", "patches"], help="images: center crop or patches")
    p.add_argument("--stride", type=int, help="patch stride (default: --size, no overlap)")
    p.add_argument("--overlap", type=float, default=0.5, help="WAV: Welch segment overlap")
    p.add_argument("--color", action="store_true",
                   help="RGB images / channels-last stacks / multi-channel WAV: eigen-spectra")
    p.add_argument("--window", help="scipy window name (default: hann for WAV, none otherwise)")
    p.add_argument("--keep-mean", action="store_true", help="second moment, not variance")
    p.add_argument("--fit", choices=["ar1", "lorentzian", "powerlaw"], help="fit a model")
    p.add_argument("--out", required=True, help="output .npz (arrays 'psd' and 'n')")
    p.add_argument("--plot", help="also save the radially averaged spectrum to this PNG")


def _psd_estimate(args, path: Path):
    """``(psd, n, what, extra arrays)`` for a folder, a stack or a WAV file."""
    from .spectra import welch_psd, welch_segments
    from .spectra.readers import folder_spectrum, read_wav, stack_spectrum

    progress = sys.stderr.isatty()
    if path.is_dir():
        if args.mode and args.size is None:
            raise ValueError(f"--size is required with --mode {args.mode}")
        acc = folder_spectrum(path, args.size, mode=args.mode, stride=args.stride,
                              color=args.color, window=args.window, progress=progress)
        return acc.psd(not args.keep_mean), acc.n, "images or patches", {}
    if path.suffix in (".npy", ".npz"):
        acc = stack_spectrum(path, color=args.color, window=args.window, progress=progress)
        return acc.psd(not args.keep_mean), acc.n, "samples", {}
    if path.suffix.lower() != ".wav":
        raise ValueError(f"{path}: expected a folder of images, a .npy/.npz stack or a .wav "
                         "file")
    if args.size is None:
        raise ValueError("--size (the segment length) is required for a WAV file")
    rate, x = read_wav(path)
    if x.ndim == 2 and not args.color:
        x = x.mean(axis=1)  # mono mix
    psd = welch_psd(x, args.size, args.overlap, args.window or "hann",
                    remove_mean=not args.keep_mean)
    return psd, len(welch_segments(x, args.size, args.overlap)), "segments", {"rate": rate}


def _psd_figure(curves: dict) -> bytes:
    """PNG bytes of the radially averaged spectra ``{label: (psd, fit or None)}``."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import plot_psd_fit

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (psd, fit) in curves.items():
        plot_psd_fit(psd, fit, ax, label=label)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def cmd_psd(args) -> int:
    import io

    from .spectra import fit_psd

    path, out = Path(args.path), Path(args.out)
    if out.suffix != ".npz":
        raise ValueError(f"--out must end in .npz, got {args.out!r}")
    for target in (out, Path(args.plot) if args.plot else out):
        if not target.parent.is_dir():
            raise ValueError(f"no such folder for {target}: {target.parent}")
    psd, n, what, extra = _psd_estimate(args, path)
    if args.color:
        curves = {f"eigen-channel {j}": psd[..., j] for j in range(psd.shape[-1])}
    else:
        curves = {path.name: psd}
    fits = {k: fit_psd(v, args.fit, n=n - (not args.keep_mean)) if args.fit else None
            for k, v in curves.items()}
    png = _psd_figure({k: (v, fits[k]) for k, v in curves.items()}) if args.plot else None
    buf = io.BytesIO()
    np.savez(buf, psd=psd, n=n, **extra)
    atomic_write(out, buf.getvalue())
    if png is not None:
        try:
            atomic_write(args.plot, png)
        except OSError:
            out.unlink()  # all or nothing
            raise
    print(f"psd: shape {psd.shape} from {n} {what} of {path}; mean {psd.mean():.5g} per mode; "
          f"wrote {out}" + (f" and {args.plot}" if png else ""))
    for label, fit in fits.items():
        if fit is not None:
            print(f"{label}: {fit.model}: " + ", ".join(
                f"{k} = {v:.5g} +- {fit.stderr[k]:.2g}" for k, v in fit.params.items()))
    if args.fit and (args.window or path.suffix.lower() == ".wav"):
        print("note: the standard errors assume independent samples and bins; a window or "
              "overlapping segments make them too small")
    return 0


# -- design, compare, diagnose (schedule design) -----------------------------------------
def _design_args(p):
    p.add_argument("--psd", default="powerlaw:2", help=PSD_HELP)
    p.add_argument("--sampler", default="ddim", help="sampler name")
    p.add_argument("--eta", type=float, help="DDIM eta")
    p.add_argument("--option", action="append", metavar="NAME=VALUE", help="sampler option")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--divergence", default="w2", choices=["w2", "kl", "kl_reverse"])
    p.add_argument("--plot", help="save a figure to this PNG")
    p.add_argument("--json", action="store_true")


def _design_kwargs(args, smp) -> dict:
    from .schedules import training_alphas_cumprod

    kw = {"start": args.start, "end": args.end, "space": args.space,
          "zero_terminal_snr": args.zero_terminal_snr}
    if args.level_range:
        kw["level_range"] = tuple(args.level_range)
    if args.base:
        ab = training_alphas_cumprod(1000, args.base)
        lo, hi = float(ab.min()), float(ab.max())
        space = args.space or smp.space
        kw["space"] = space
        kw["level_range"] = (lo, hi) if space == "vp" else tuple(
            sorted(float(np.sqrt((1 - a) / a)) for a in (lo, hi)))
    return kw


def _save_png(fig, path) -> None:
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write(path, buf.getvalue())


def _figure(ncols: int = 1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(6.5 * ncols, 4.5), squeeze=False, layout="constrained")


def add_design(sub):
    p = sub.add_parser("design", help="design the schedule whose output spectrum matches --psd")
    _design_args(p)
    p.add_argument("--out", required=True, help="schedule JSON path")
    p.add_argument("--space", choices=["vp", "ve"], help="units of --start/--end/--level-range")
    p.add_argument("--start", type=float, help="fix the first (noisiest) level")
    p.add_argument("--end", type=float, help="fix the final level (default: clean)")
    p.add_argument("--level-range", type=float, nargs=2, metavar=("MIN", "MAX"))
    p.add_argument("--base", choices=["linear", "scaled_linear", "squaredcos_cap_v2"],
                   help="keep the levels inside this 1000-step training schedule")
    p.add_argument("--zero-terminal-snr", action="store_true")


def cmd_design(args) -> int:
    from .design.optimise import design_schedule
    from .numeric.response import spectral_response

    smp = _sampler(args)
    psd = parse_psd(args.psd)
    sched = design_schedule(smp, psd, args.steps, args.divergence, **_design_kwargs(args, smp))
    atomic_write(args.out, sched.to_json())
    m = sched.meta
    levels = sched.alpha_bar if smp.space == "vp" else sched.sigmas
    if args.json:
        print(json.dumps({**m, "levels": levels.tolist(), "space": smp.space, "out": args.out}))
    else:
        print(f"{smp.name} {dict(smp.options)}, {args.steps} steps, {args.divergence}: objective "
              f"{m['objective']:.6g} ({m['objective'] / psd.sum():.4g} of sum(psd)), "
              f"{m['iterations']} iterations from the {m['start']} start, "
              f"{'converged' if m['converged'] else 'NOT converged: ' + m['message']}")
        name = "alpha-bar" if smp.space == "vp" else "sigma"
        print(f"{name}: " + " ".join(f"{v:.6g}" for v in levels))
        print(f"schedule written to {args.out}")
    if args.plot:
        from .plotting import plot_spectra

        fig, ax = _figure()
        plot_spectra(psd, {f"designed, N={args.steps}": spectral_response(smp, sched, psd)},
                     ax=ax[0, 0])
        _save_png(fig, args.plot)
    return 0


def add_compare(sub):
    p = sub.add_parser("compare", help="score a designed schedule against heuristic ones")
    _design_args(p)
    p.add_argument("--schedule", help="designed schedule JSON (default: design one now)")
    p.add_argument("--beta-schedule", default="linear",
                   choices=["linear", "scaled_linear", "squaredcos_cap_v2"],
                   help="sigma range of the karras and exponential schedules")


def cmd_compare(args) -> int:
    from .design.optimise import baseline_schedules, design_schedule, objective
    from .numeric.response import spectral_response
    from .schedules import Schedule

    smp = _sampler(args)
    psd = parse_psd(args.psd)
    if args.schedule:
        designed = Schedule.from_json(Path(args.schedule).read_text())
    else:
        designed = design_schedule(smp, psd, args.steps, args.divergence)
    if designed.steps != args.steps:
        raise ValueError(f"--schedule has {designed.steps} steps, not --steps {args.steps}")
    cands = {"designed": designed, **baseline_schedules(smp, args.steps, args.beta_schedule)}
    score = {k: objective(smp, s, psd, args.divergence) for k, s in cands.items()}
    order = sorted(score, key=score.get)
    if args.json:
        print(json.dumps({"sampler": smp.name, "options": dict(smp.options), "steps": args.steps,
                          "divergence": args.divergence, "objective": score}))
    else:
        print(f"{smp.name} {dict(smp.options)}, {args.steps} steps, {args.divergence} "
              f"(sum(psd) = {psd.sum():.6g}); ratio = objective / designed; chained = each "
              "step starts where the previous ended (DDIMScheduler's stride rule is not)")
        print(f"{'schedule':28} {'objective':>12} {'ratio':>8} {'chained':>8}")
        for k in order:
            print(f"{k:28} {score[k]:12.6g} {score[k] / score['designed']:8.3f} "
                  f"{'yes' if cands[k].chained else 'no':>8}")
    if args.plot:
        from .plotting import plot_spectra

        fig, ax = _figure(2)
        shown = ["designed"] + [k for k in order if k != "designed"][:4]
        plot_spectra(psd, {k: spectral_response(smp, cands[k], psd) for k in shown}, ax=ax[0, 0])
        ax[0, 1].barh(order[::-1], [score[k] for k in order[::-1]])
        ax[0, 1].set(xscale="log", xlabel=f"{args.divergence} objective", title="Scores")
        _save_png(fig, args.plot)
    return 0


def add_diagnose(sub):
    p = sub.add_parser("diagnose", help="split a schedule's spectral error into its sources")
    _design_args(p)
    p.add_argument("--schedule", help="schedule JSON (default: --baseline)")
    p.add_argument("--baseline", default="linear/leading",
                   help="a heuristic schedule by name, e.g. linear/trailing, karras")


def cmd_diagnose(args) -> int:
    from .design.diagnosis import PARTS, diagnose, plot_diagnosis
    from .design.optimise import baseline_schedules
    from .schedules import Schedule

    smp = _sampler(args)
    psd = parse_psd(args.psd)
    if args.schedule:
        sched, label = Schedule.from_json(Path(args.schedule).read_text()), args.schedule
    else:
        base = baseline_schedules(smp, args.steps)
        if args.baseline not in base:
            raise ValueError(f"--baseline must be one of {', '.join(base)}, got "
                             f"{args.baseline!r}")
        sched, label = base[args.baseline], args.baseline
    d = diagnose(smp, sched, psd)
    f, rel = d.radial()
    if args.json:
        print(json.dumps({"sampler": smp.name, "schedule": label, "sums": d.sums(),
                          "frequency": f.tolist(), **{k: v.tolist() for k, v in rel.items()}}))
    else:
        print(f"{smp.name} {dict(smp.options)} on {label}: (output - data) / data, ring averages"
              f"; the parts add up to the total")
        cols = (*PARTS, "total")
        print(f"{'|f|':>8} " + " ".join(f"{c:>14}" for c in cols))
        for i, fi in enumerate(f):
            print(f"{fi:8.4f} " + " ".join(f"{rel[c][i]:14.5g}" for c in cols))
        sums = d.sums()
        print(f"{'sum/sum(psd)':>8} " + " ".join(f"{sums[c]:14.5g}" for c in cols))
    if args.plot:
        fig, ax = _figure()
        plot_diagnosis(d, ax[0, 0], f"{smp.name} on {label}")
        _save_png(fig, args.plot)
    return 0


COMMANDS = ("derive", "response", "demo", "psd", "design", "compare", "diagnose")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="symspec", description="Spectral analysis of diffusion samplers.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        globals()[f"add_{name}"](sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``symspec`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return globals()[f"cmd_{args.command}"](args)
    except BrokenPipeError:  # the reader stopped early (e.g. `| head`): not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (silence the exit-time flush)
        return 0
    except (ValueError, TypeError, OSError, KeyError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"symspec: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
