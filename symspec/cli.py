"""The ``symspec`` command line.

Every subcommand is a function ``cmd_NAME(args) -> int`` plus an ``add_NAME(sub)`` that
declares its arguments, listed in :data:`COMMANDS`.  Errors in the input print one line on
stderr and exit with 2; Ctrl-C prints ``symspec: interrupted`` and exits with 130.  Every
output path is checked before the computation, and all of a command's outputs are written
together or not at all (:func:`symspec._io.write_outputs`).
"""

from __future__ import annotations

import argparse
import errno
import functools
import io
import json
import os
import re
import sys
import warnings
from pathlib import Path

import numpy as np

from . import SAMPLERS, __version__
from ._checks import SPACES
from ._io import check_output, write_outputs
from .design import DIVERGENCES
from .schedules import BETA_SCHEDULES, SPACINGS, Schedule
from .symbolic.samplers import DDIM

__all__ = ["main", "build_parser", "parse_psd", "parse_option", "prev_rule", "COMMANDS"]

#: Largest side of a model spectrum (``powerlaw:2:SIZE``) and largest PSD read from a file.
MAX_PSD_SIDE = 4096
MAX_PSD_VALUES = MAX_PSD_SIDE**2
MAX_ALPHA = 10.0  # steepest power law: 4096**10 ~ 1e36 of dynamic range
MAX_SCHEDULE_BYTES = 16 << 20

EPILOG = ("exit status: 0 on success; 2 for bad input, an unreadable input or an unwritable "
          "output (one line on stderr, and no output is changed); 130 when interrupted "
          "(Ctrl-C).")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        print(f"symspec: error: {message.splitlines()[0]}", file=sys.stderr)
        raise SystemExit(2)


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults shown; a default of ``None`` (no value) is not."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


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
PSD_HELP = ("FILE.npy, FILE.npz (array 'psd') or a model: " + PSD_MODELS
            + f" (0 <= ALPHA <= {MAX_ALPHA:g}, SIZE from 2 to {MAX_PSD_SIDE}, default 32)")
_MODEL = re.compile(r"(powerlaw|photos|white)(?::(.*))?", re.DOTALL)


def _model_psd(kind: str, params: str | None, spec: str) -> np.ndarray:
    """The built-in model ``kind`` with ``params`` (the text after its first colon)."""
    form = {"powerlaw": "powerlaw:ALPHA[:SIZE]"}.get(kind, f"{kind}[:SIZE]")
    parts = [] if params is None else params.split(":")

    def bad(why: str):
        return ValueError(f"--psd: bad model parameters in {spec!r}: {why} (expected {form}; "
                          f"0 <= ALPHA <= {MAX_ALPHA:g}, SIZE an integer from 2 to "
                          f"{MAX_PSD_SIDE})")

    alpha = None
    if kind == "powerlaw":
        if not parts or not parts[0]:
            raise bad("ALPHA is missing")
        try:
            alpha = float(parts.pop(0))
        except ValueError:
            raise bad("ALPHA is not a number") from None
        if not 0 <= alpha <= MAX_ALPHA:
            raise bad(f"ALPHA {alpha:g} is out of range")
    if len(parts) > 1:
        raise bad("too many parameters")
    size = 32
    if parts:
        if not re.fullmatch(r"\d{1,9}", parts[0]):
            raise bad(f"SIZE {parts[0]!r} is not a positive integer")
        size = int(parts[0])
        if not 2 <= size <= MAX_PSD_SIDE:
            raise bad(f"SIZE {size} is out of range")
    if kind == "powerlaw":
        from .spectra import power_law

        return power_law((size, size), float(alpha))  # type: ignore[arg-type]
    if kind == "photos":
        from .spectra import photo_psd

        return np.array(photo_psd(size))
    return np.full((size, size), 0.25)


def parse_psd(spec: str) -> np.ndarray:
    """A PSD from a file (``.npy``, ``.npz`` with key ``psd``) or a built-in model.

    Models: ``powerlaw:ALPHA[:SIZE]`` (a SIZE x SIZE grid, default 32), ``white[:SIZE]``,
    ``photos[:SIZE]`` (the photos bundled with scikit-learn, :func:`~symspec.spectra.photo_psd`).
    A file's header is checked before its data is read: at most :data:`MAX_PSD_VALUES`
    real values, held by the file.

    >>> parse_psd("powerlaw:2:8").shape
    (8, 8)
    """
    from ._checks import validate_psd
    from .spectra.readers import load_array

    m = _MODEL.fullmatch(spec)
    if m and not os.path.lexists(spec):
        return _model_psd(m.group(1), m.group(2), spec)
    path = Path(spec)
    if not path.exists():
        raise ValueError(f"--psd: no such file {spec!r} (or a model: {PSD_MODELS})")
    if path.suffix not in (".npy", ".npz"):
        raise ValueError(f"--psd: {spec}: expected a .npy or .npz file (or a model: "
                         f"{PSD_MODELS})")
    try:
        arr = load_array(path, "psd" if path.suffix == ".npz" else None,
                         max_values=MAX_PSD_VALUES, what="the psd")
    except ValueError as exc:
        raise ValueError(f"--psd: {exc}") from None
    return validate_psd(arr, f"--psd {spec}")


def _has_channels(spec: str) -> bool:
    """Whether ``--psd`` names an ``.npz`` from ``symspec psd --color`` (its last axis holds
    eigen-channels: every (bin, channel) is a mode, but only the other axes are
    frequencies)."""
    if not spec.endswith(".npz") or not os.path.isfile(spec):
        return False
    with np.load(spec, allow_pickle=False) as f:
        return "channels" in f.files and bool(f["channels"])


def _radial(values: np.ndarray, channels: bool):
    """Ring averages over the frequency axes (a colour spectrum summed over its channels)."""
    from .spectra import radial_profile

    return radial_profile(values.sum(axis=-1) if channels else values)


def _sampler(args):
    """The sampler named by the arguments, configured and its options checked."""
    from .symbolic.samplers import get_sampler

    opts = dict(parse_option(o) for o in getattr(args, "option", None) or [])
    if getattr(args, "eta", None) is not None:
        opts["eta"] = args.eta
    try:
        return get_sampler(args.sampler, **opts)
    except TypeError as exc:  # an unknown or unhashable option: bad input here
        raise ValueError(str(exc)) from None


def prev_rule(sampler) -> str:
    """diffusers' rule for the level a step goes to on integer timesteps: ``"stride"``
    (``t - T // N``) for DDIM, as DDIMScheduler does, ``"chained"`` for every other sampler.

    >>> import symspec
    >>> prev_rule(symspec.DDIM(eta=1.0)), prev_rule(symspec.EULER)
    ('stride', 'chained')
    """
    return "stride" if sampler.step is DDIM.step else "chained"


def _check_eta(smp, schedules: dict) -> None:
    """For DDIM with ``eta > 1``, refuse a schedule with a step that ``eta`` does not fit."""
    eta = smp.opts.get("eta", 0) if smp.step is DDIM.step else 0
    if eta <= 1:
        return
    for label, sched in schedules.items():
        t, p = sched.to_space("vp").start, sched.to_space("vp").end
        with np.errstate(divide="ignore"):
            limit = np.where(p > t, np.sqrt(p * (1 - t) / np.maximum(p - t, 1e-300)), np.inf)
        i = int(np.argmin(limit))
        if eta > limit[i]:
            raise ValueError(f"--eta {eta:g} is too large for step {i} of {label} (alpha-bar "
                             f"{t[i]:.6g} to {p[i]:.6g}): DDIM needs eta <= {limit[i]:.6g} "
                             "there; any eta in [0, 1] fits every step")


def _check_outputs(*outputs: tuple[str | None, str]) -> list[tuple[str, str]]:
    """Check every ``(path, option)`` given, before any computation; return those given."""
    given = [(p, nm) for p, nm in outputs if p is not None]
    seen: dict[str, str] = {}
    for p, nm in given:
        key = os.path.realpath(check_output(p, nm))
        if key in seen:
            raise ValueError(f"{nm} and {seen[key]} name the same file {p}")
        seen[key] = nm
    return given


def _read_schedule(path: str):
    """The schedule in the JSON file ``path`` (``--schedule``), or a ``ValueError``."""
    from .schedules import Schedule

    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SCHEDULE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"--schedule: cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_SCHEDULE_BYTES:
        raise ValueError(f"--schedule: {path} is larger than {MAX_SCHEDULE_BYTES} bytes, not a "
                         "schedule")
    try:
        return Schedule.from_json(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"--schedule: {path} is not text (not a schedule JSON file)") from None
    except ValueError as exc:
        raise ValueError(f"--schedule {path}: {exc}") from None


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _png_bytes(fig, dpi: int = 110) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _sampler_args(p, positional: bool = False) -> None:
    """The sampler (``--sampler``, or a positional ``sampler``) and its options."""
    if positional:
        p.add_argument("sampler", choices=sorted(SAMPLERS), help="sampler")
    else:
        p.add_argument("--sampler", default="ddim", choices=sorted(SAMPLERS), help="sampler")
    p.add_argument("--eta", type=float, help="DDIM eta (>= 0; any eta in [0, 1] fits every "
                   "step); the same as --option eta=ETA")
    p.add_argument("--option", action="append", metavar="NAME=VALUE",
                   help="a sampler option, e.g. variance=fixed_large (repeatable)")


def add_derive(sub):
    p = sub.add_parser("derive", help="derive and print a sampler's one-step map",
                       description="Derive a sampler's one-step linear map state' = A state + "
                       "B w + C m on symbols, and (one-state samplers) its closed form over "
                       "--steps steps.")
    _sampler_args(p, positional=True)
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
    p = sub.add_parser("response", help="output spectrum of a sampler on a diffusers schedule",
                       description="The output spectrum of a sampler run on diffusers' "
                       "schedule (1000 training steps), radially averaged.  The step goes to "
                       "the next timestep of the grid, except for DDIM (DDIMScheduler's "
                       "t - 1000 // N).")
    _sampler_args(p)
    p.add_argument("--steps", type=int, default=10, help="inference steps (1-1000)")
    p.add_argument("--psd", default="powerlaw:2", help=PSD_HELP)
    p.add_argument("--beta-schedule", default="linear", choices=BETA_SCHEDULES,
                   help="diffusers' training beta schedule")
    p.add_argument("--spacing", default="leading", choices=SPACINGS,
                   help="diffusers' timestep spacing")
    p.add_argument("--steps-offset", type=int, default=0, help="diffusers' steps_offset")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--out", help="also save the output spectrum to this .npy file")


def cmd_response(args) -> int:
    from .numeric.response import spectral_response
    from .schedules import diffusers_schedule, inference_timesteps, training_alphas_cumprod
    from .spectra import radial_profile

    outputs = _check_outputs((args.out, "--out"))
    smp = _sampler(args)
    psd = parse_psd(args.psd)
    ab = training_alphas_cumprod(1000, args.beta_schedule)
    ts = inference_timesteps(args.steps, 1000, args.spacing, args.steps_offset)
    sched = diffusers_schedule(ab, ts, prev_rule(smp), 1.0)
    _check_eta(smp, {"the schedule": sched})
    r = spectral_response(smp, sched, psd)
    channels = _has_channels(args.psd)
    f, data = _radial(psd, channels)
    _, out = _radial(r.output_psd, channels)
    _, tr = radial_profile(r.transfer[..., 0] if channels else r.transfer)
    write_outputs([(p, _npy_bytes(r.output_psd), nm) for p, nm in outputs])
    if args.json:
        print(json.dumps({"sampler": smp.name, "options": dict(smp.options), "steps": args.steps,
                          "frequency": f.tolist(), "data_psd": data.tolist(),
                          "output_psd": out.tolist(), "transfer": tr.tolist()}))
    else:
        print(f"{smp.name} {dict(smp.options)}, {args.steps} steps, {args.beta_schedule}/"
              f"{args.spacing}; radially averaged spectra"
              + (f", summed over the {psd.shape[-1]} eigen-channels" if channels else ""))
        print(f"{'|f|':>8} {'data':>12} {'output':>12} {'ratio':>8} {'transfer':>10}")
        with np.errstate(divide="ignore", invalid="ignore"):  # a ring of zero power: inf/nan
            ratio = out / data
        for row in zip(f, data, out, ratio, tr, strict=True):
            print(f"{row[0]:8.4f} {row[1]:12.5g} {row[2]:12.5g} {row[3]:8.4f} {row[4]:10.4g}")
    return 0


# -- demo --------------------------------------------------------------------------------
def add_demo(sub):
    p = sub.add_parser("demo", help="the main job on a built-in spectrum: tables and a figure",
                       description="DDPM and DDIM under diffusers' default schedules on a "
                       "power-law spectrum and on the bundled photos: tables and a figure.")
    p.add_argument("--out", default="symspec_demo.png", help="PNG figure path")
    p.add_argument("--json", action="store_true", help="print the tables as JSON")


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(args.out, args.json)  # checks --out before computing


# -- psd ---------------------------------------------------------------------------------
def add_psd(sub):
    p = sub.add_parser("psd", help="estimate a data spectrum from images, a stack or a WAV",
                       description="Estimate the per-mode variances of data: a folder of "
                       "PNG/JPEG images, a .npy/.npz stack of samples (samples first) or a WAV "
                       "file (Welch).  Saves arrays 'psd' and 'n' (and 'rate' for WAV).")
    p.add_argument("path", help="a folder of PNG/JPEG images, a .npy/.npz stack or a .wav file")
    p.add_argument("--size", type=int, help="images: side of the square crop or patches "
                   "(default: whole images, all of one size); WAV: segment length")
    p.add_argument("--mode", choices=["crop", "patches"],
                   help="images: the central --size square of each image (crop), or every "
                   "--size square patch, --stride pixels apart (patches).  Default with --size: "
                   "patches (an image of exactly --size is one patch); without --size: whole "
                   "images")
    p.add_argument("--stride", type=int, help="patch stride (default: --size, no overlap)")
    p.add_argument("--overlap", type=float, default=0.5, help="WAV: Welch segment overlap")
    p.add_argument("--color", action="store_true",
                   help="RGB images / channels-last stacks / multi-channel WAV: eigen-spectra")
    p.add_argument("--window", help="scipy window name (default: hann for WAV, none otherwise)")
    p.add_argument("--keep-mean", action="store_true", help="second moment, not variance")
    p.add_argument("--fit", choices=["ar1", "lorentzian", "powerlaw"], help="fit a model")
    p.add_argument("--per-image", action="store_true",
                   help="folder of images: one spectrum per image, from its own --size "
                   "patches; 'psd' is then a stack (first axis over the images, 'files' their "
                   "names, 'n' the patches of each), which 'symspec design --psd' designs "
                   "one schedule per image for")
    p.add_argument("--out", required=True, help="output .npz (arrays 'psd' and 'n')")
    p.add_argument("--plot", help="also save the radially averaged spectrum to this PNG")


def _folder_estimate(args, path: Path, progress: bool):
    """``_psd_estimate`` for a folder of images: ``--mode`` defaults to patches with --size."""
    from .spectra.readers import ImageTooSmallError, folder_spectrum, image_files

    if args.mode and args.size is None:
        raise ValueError(f"--size is required with --mode {args.mode}")
    if args.stride is not None and (args.mode or "patches") != "patches":
        raise ValueError("--stride applies to --mode patches only")
    mode = args.mode or ("patches" if args.size is not None else None)
    try:
        acc = folder_spectrum(path, args.size, mode=mode, stride=args.stride, color=args.color,
                              window=args.window, progress=progress)
    except ImageTooSmallError as exc:
        h, w = exc.shape
        raise ValueError(f"{exc.name}: image is {h}x{w}, smaller than --size {exc.size}: "
                         f"--mode {exc.mode} cuts --size squares and never enlarges; use "
                         f"--size {min(h, w)} or less") from None
    files = len(image_files(path))
    if mode is None:
        what = "whole images (all of one size; give --size to cut patches)"
    elif mode == "crop":
        what = f"central {args.size}x{args.size} crops (--mode crop) of {files} images"
    else:
        stride = args.stride or args.size
        what = (f"{args.size}x{args.size} patches, stride {stride}"
                f"{' (no overlap)' if stride >= args.size else ''}, of {files} images (--mode "
                f"patches{'' if args.mode else ', the default with --size'})")
    return acc.psd(not args.keep_mean), acc.n, what, {}


def _per_image_estimate(args, path: Path):
    """``(stack, n per image, what, {"files": names})``: one spectrum per image of a folder,
    each from its own ``--size`` patches."""
    from .spectra.estimate import SpectrumAccumulator
    from .spectra.readers import ImageTooSmallError, cut_image, image_files, read_image

    if not path.is_dir():
        raise ValueError(f"--per-image needs a folder of images, got {path}")
    if args.size is None:
        raise ValueError("--per-image needs --size: each image's spectrum is estimated from "
                         "its own --size x --size patches (at least 2 per image)")
    if args.mode == "crop":
        raise ValueError("--per-image needs --mode patches: a crop is one sample, and a "
                         "spectrum needs at least 2")
    files = image_files(path)
    psds, ns = [], []
    for f in files:
        try:
            patches = cut_image(read_image(f, color=args.color), args.size, "patches",
                                args.stride, f.name)
        except ImageTooSmallError as exc:
            h, w = exc.shape
            raise ValueError(f"{f.name}: image is {h}x{w}, smaller than --size {args.size}")\
                from None
        if len(patches) < 2:
            raise ValueError(f"{f.name}: one {args.size}x{args.size} patch; a spectrum needs "
                             "at least 2 (use a smaller --size or --stride)")
        acc = SpectrumAccumulator(2, channels=args.color, window=args.window)
        acc.update(patches, f.name)
        psds.append(acc.psd(not args.keep_mean))
        ns.append(acc.n)
    stride = args.stride or args.size
    what = f"images ({args.size}x{args.size} patches, stride {stride}, per image)"
    return np.stack(psds), np.array(ns), what, {"files": np.array([f.name for f in files])}


def _psd_estimate(args, path: Path):
    """``(psd, n, what, extra arrays)`` for a folder, a stack or a WAV file."""
    from .spectra import welch_psd, welch_segments
    from .spectra.readers import read_wav, stack_spectrum

    progress = sys.stderr.isatty()
    if path.is_dir():
        return _folder_estimate(args, path, progress)
    if not path.exists():
        raise ValueError(f"{path}: no such file or folder")
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
    from .plotting import plot_psd_fit

    fig, ax = _figure()
    for label, (psd, fit) in curves.items():
        plot_psd_fit(psd, fit, ax[0, 0], label=label)
    return _png_bytes(fig, 120)


def cmd_psd(args) -> int:
    from .spectra import fit_psd

    path = Path(args.path)
    if Path(args.out).suffix != ".npz":
        raise ValueError(f"--out must end in .npz, got {args.out!r}")
    _check_outputs((args.out, "--out"), (args.plot, "--plot"))
    if args.per_image and args.fit:
        raise ValueError("--fit applies to one spectrum, not to --per-image")
    psd, n, what, extra = (_per_image_estimate if args.per_image else _psd_estimate)(args, path)
    if args.per_image:  # the first few images' spectra (their first eigen-channel)
        curves = {str(name): v[..., 0] if args.color else v
                  for name, v in zip(extra["files"][:8], psd[:8], strict=False)}
        n_text = f"{len(psd)} images, {int(n.min())}-{int(n.max())} patches each"
    elif args.color:
        curves = {f"eigen-channel {j}": psd[..., j] for j in range(psd.shape[-1])}
    else:
        curves = {path.name: psd}
    fits = {k: fit_psd(v, args.fit, n=n - (not args.keep_mean)) if args.fit else None
            for k, v in curves.items()}
    buf = io.BytesIO()
    if args.color:  # the last axis holds eigen-channels, not a frequency
        extra = {**extra, "channels": True}
    np.savez(buf, psd=psd, n=n, **extra)
    outputs: list[tuple[str | Path, bytes | str, str]] = [(args.out, buf.getvalue(), "--out")]
    if args.plot:
        outputs.append((args.plot, _psd_figure({k: (v, fits[k]) for k, v in curves.items()}),
                        "--plot"))
    write_outputs(outputs)
    print(f"psd: shape {psd.shape} from {n_text if args.per_image else n} {what} in {path}; "
          f"mean {psd.mean():.5g} per mode; wrote {args.out}"
          + (f" and {args.plot}" if args.plot else ""))
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
    _sampler_args(p)
    p.add_argument("--steps", type=int, default=10, help="sampling steps")
    p.add_argument("--divergence", default="w2", choices=tuple(DIVERGENCES),
                   help="how output and data spectra are compared")
    p.add_argument("--plot", help="save a figure to this PNG")
    p.add_argument("--json", action="store_true", help="print JSON")


def _start(text: str) -> float | str:
    """``--start``: ``honest``, ``free`` or a number."""
    if text in ("honest", "free"):
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'honest', 'free' or a number, got {text!r}")\
            from None


def _design_kwargs(args, smp) -> dict:
    from .schedules import training_alphas_cumprod

    kw = {"start": args.start, "end": args.end, "space": args.space,
          "zero_terminal_snr": args.zero_terminal_snr, "kl_tolerance": args.kl_tolerance,
          "chained": not args.unchained}
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


class _StderrProgress:
    """Progress messages on stderr: one line rewritten in place on a terminal, one line per
    message otherwise (logs); :meth:`done` clears the terminal line."""

    def __init__(self, prefix: str = ""):
        self.prefix, self.tty, self.shown = prefix, sys.stderr.isatty(), False

    def __call__(self, message: str) -> None:
        text = f"{self.prefix}{message}"
        print(f"\r{text[:79]:79s}" if self.tty else text, end="" if self.tty else "\n",
              file=sys.stderr, flush=True)
        self.shown = True

    def done(self) -> None:
        if self.tty and self.shown:
            print(f"\r{'':79s}\r", end="", file=sys.stderr, flush=True)


def _figure(ncols: int = 1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(6.5 * ncols, 4.5), squeeze=False, layout="constrained")


def add_design(sub):
    p = sub.add_parser("design", help="design the schedule whose output spectrum matches --psd",
                       description="Optimise the noise levels of a --steps schedule so that "
                       "the sampler's output spectrum is closest to --psd, and save it as "
                       "JSON.")
    _design_args(p)
    p.add_argument("--out", required=True, help="schedule JSON path")
    p.add_argument("--space", choices=SPACES,
                   help="units of --start/--end/--level-range (default: the sampler's)")
    p.add_argument("--start", type=_start, default="honest",
                   help="the first (noisiest) level: 'honest' (free, but the initial latent "
                   "within --kl-tolerance nats of the data's noisy marginal), 'free' (no "
                   "constraint: relies on an exact denoiser off the data), or a number")
    p.add_argument("--kl-tolerance", type=float, default=0.01,
                   help="tolerance of the honest start, in nats")
    p.add_argument("--unchained", action="store_true",
                   help="design both levels of every step (the level the denoiser is told "
                   "and the level stepped to), as DDIMScheduler's stride rule does")
    p.add_argument("--end", type=float, help="fix the final level (default: clean)")
    p.add_argument("--level-range", type=float, nargs=2, metavar=("MIN", "MAX"),
                   help="keep every level inside [MIN, MAX]")
    p.add_argument("--base", choices=BETA_SCHEDULES,
                   help="keep the levels inside this 1000-step training schedule")
    p.add_argument("--zero-terminal-snr", action="store_true",
                   help="start from pure noise (alpha-bar 0)")
    _model_design_args(p)
    p.add_argument("--stack", action="store_true",
                   help="--psd is a stack of spectra (a .npy/.npz whose first axis runs over "
                   "them): design one schedule per spectrum, all at once, into one --out "
                   "JSON {'files', 'schedules'}; implied by an .npz from 'symspec psd "
                   "--per-image'")


def _psd_stack(spec: str, force: bool) -> tuple[np.ndarray, list[str]] | None:
    """The stack of spectra ``--psd`` names and a name for each, or None for one spectrum:
    an ``.npz`` of ``symspec psd --per-image`` (it has ``files``), or with ``--stack`` any
    ``.npy``/``.npz`` whose first axis runs over the spectra."""
    from .spectra.readers import load_array

    path = Path(spec)
    per_image = path.suffix == ".npz" and path.is_file() and "files" in np.load(
        path, allow_pickle=False).files
    if not (force or per_image):
        return None
    if not path.is_file() or path.suffix not in (".npy", ".npz"):
        raise ValueError(f"--stack: --psd must be a .npy or .npz file, got {spec!r}")
    try:
        arr = load_array(path, "psd" if path.suffix == ".npz" else None,
                         max_values=MAX_PSD_VALUES, what="the psd stack")
    except ValueError as exc:
        raise ValueError(f"--psd: {exc}") from None
    if arr.ndim < 2:
        raise ValueError(f"--psd {spec}: a stack needs a first axis over the spectra, got "
                         f"shape {arr.shape}")
    names = [f"psd[{i}]" for i in range(len(arr))]
    if per_image:
        with np.load(path, allow_pickle=False) as f:
            files = [str(x) for x in f["files"]]
        if len(files) == len(arr):
            names = files
    return arr, names


def _design_stack(args, smp, stack: np.ndarray, names: list[str]) -> int:
    """``symspec design`` of a stack: one schedule per spectrum (design_schedules)."""
    from .design import design_schedules

    progress = _StderrProgress()
    try:
        scheds = design_schedules(smp, stack, args.steps, args.divergence, progress=progress,
                                  **_design_kwargs(args, smp))
    except ValueError as exc:  # "psds[i]: ..." -> the spectrum's name
        msg = re.sub(r"^psds\[(\d+)\]", lambda m: names[int(m.group(1))], str(exc))
        raise ValueError(f"--psd {args.psd}: {msg}") from None
    progress.done()
    doc = {"files": names, "schedules": [json.loads(s.to_json()) for s in scheds]}
    outputs: list[tuple[str | Path, bytes | str, str]] = [(args.out, json.dumps(doc), "--out")]
    if args.plot:
        from .plotting import plot_schedules

        fig, ax = _figure()
        plot_schedules(dict(zip(names[:8], scheds[:8], strict=False)), ax=ax[0, 0])
        fig.suptitle(f"{smp.name}, N={args.steps}, {args.divergence} designs "
                     f"({min(8, len(names))} of {len(names)})")
        outputs.append((args.plot, _png_bytes(fig), "--plot"))
    write_outputs(outputs)
    if args.json:
        print(json.dumps({"out": args.out, "designs": [
            {"file": nm, **s.meta, "levels": (s.alpha_bar if smp.space == "vp" else s.sigmas)
             .tolist() if s.chained else None} for nm, s in zip(names, scheds, strict=True)]}))
        return 0
    print(f"{smp.name} {dict(smp.options)}, {args.steps} steps, {args.divergence}: "
          f"{len(scheds)} designs")
    for nm, s, psd in zip(names, scheds, stack, strict=True):
        m = s.meta
        print(f"{nm}: objective {m['objective']:.6g} ({m['objective'] / psd.sum():.4g} of "
              f"sum(psd)), {m['iterations']} iterations, "
              f"{'converged' if m['converged'] else 'NOT converged: ' + m['message']}")
    if args.plot:
        print(f"figure written to {args.plot}")
    print(f"schedules written to {args.out}")
    return 0


def _design_model(args, smp) -> int:
    """``symspec design --model``: the design for a data model, by simulation."""
    from .design.optimise import baseline_schedules, design_schedule

    kw = _design_kwargs(args, smp)
    if args.unchained or args.zero_terminal_snr or args.start != "honest" or args.end \
            is not None or args.divergence != "w2" or args.stack:
        raise ValueError("--model designs keep the honest start and the w2 term: drop "
                         "--unchained, --zero-terminal-snr, --start, --end, --divergence and "
                         "--stack (weigh the terms with --terms)")
    progress = _StderrProgress()
    model = _data_model(args, progress)
    sched = design_schedule(smp, model, args.steps, terms=args.terms, samples=args.samples,
                            seed=args.seed, level_range=kw.get("level_range"),
                            progress=progress)
    progress.done()
    m = sched.meta
    outputs: list[tuple[str | Path, bytes | str, str]] = [(args.out, sched.to_json(), "--out")]
    if args.plot:
        from .plotting import plot_schedules
        from .schedules import Schedule

        ref = {r["default"] for r in m["reference"].values()}
        base = {k: v for k, v in baseline_schedules(smp, args.steps).items() if k in ref}
        fig, ax = _figure()
        plot_schedules({"model design": sched, "spectral design (warm start)":
                        Schedule.from_alpha_bar(m["warm_levels"]) if smp.space == "vp" else
                        Schedule.from_sigmas(m["warm_levels"]), **base}, ax=ax[0, 0])
        fig.suptitle(f"{smp.name}, N={args.steps}, design for {args.model} on {args.data}")
        outputs.append((args.plot, _png_bytes(fig), "--plot"))
    write_outputs(outputs)
    levels = sched.alpha_bar if smp.space == "vp" else sched.sigmas
    if args.json:
        print(json.dumps({**m, "levels": levels.tolist(), "space": smp.space, "out": args.out}))
        return 0
    print(f"{smp.name} {dict(smp.options)}, {args.steps} steps, designed for {m['model']} "
          f"({args.data}) on {m['n']} simulated samples (seed {m['seed']}), "
          f"{m['iterations']} iterations, {m['seconds']:.0f} s")
    print("term       weight   designed  warm start  best default (which); lower is better, "
          "training seeds")
    for k in m["terms"]:
        r = m["reference"][k]
        print(f"{k:10} {m['weights'].get(k, 0.0):6.3g} {m['terms'][k]:10.4g} "
              f"{m['warm_terms'][k]:11.4g}  {r['value']:.4g} ({r['default']})")
    name = "alpha-bar" if smp.space == "vp" else "sigma"
    print(f"{name}: " + " ".join(f"{v:.6g}" for v in levels))
    print("judge it on fresh seeds: symspec compare --model ... (real diffusers samplers)")
    if args.plot:
        print(f"figure written to {args.plot}")
    print(f"schedule written to {args.out}")
    return 0


def cmd_design(args) -> int:
    from .design.optimise import design_schedule
    from .numeric.response import spectral_response

    _check_outputs((args.out, "--out"), (args.plot, "--plot"))
    smp = _sampler(args)
    if args.model:
        return _design_model(args, smp)
    stack = _psd_stack(args.psd, args.stack)
    if stack is not None:
        return _design_stack(args, smp, *stack)
    psd = parse_psd(args.psd)
    progress = _StderrProgress()
    sched = design_schedule(smp, psd, args.steps, args.divergence, progress=progress,
                            **_design_kwargs(args, smp))
    progress.done()
    outputs: list[tuple[str | Path, bytes | str, str]] = [(args.out, sched.to_json(), "--out")]
    if args.plot:
        from .design.optimise import baseline_schedules
        from .plotting import plot_schedules, plot_spectra

        base = baseline_schedules(smp, args.steps)["linear/leading"]
        fig, ax = _figure(2)
        plot_spectra(psd, {"designed": spectral_response(smp, sched, psd),
                           "linear/leading": spectral_response(smp, base, psd)}, ax=ax[0, 0])
        plot_schedules({"designed": sched, "linear/leading": base}, ax=ax[0, 1])
        fig.suptitle(f"{smp.name}, N={args.steps}, {args.divergence} design")
        outputs.append((args.plot, _png_bytes(fig), "--plot"))
    write_outputs(outputs)
    m = sched.meta
    if sched.chained:
        levels = sched.alpha_bar if smp.space == "vp" else sched.sigmas
    else:
        levels = np.stack([sched.start, sched.end], axis=1).ravel()
    if args.json:
        print(json.dumps({**m, "levels": levels.tolist(), "space": smp.space, "out": args.out}))
    else:
        print(f"{smp.name} {dict(smp.options)}, {args.steps} steps, {args.divergence}: objective "
              f"{m['objective']:.6g} ({m['objective'] / psd.sum():.4g} of sum(psd)), "
              f"{m['iterations']} iterations from the {m['start']} start, "
              f"{'converged' if m['converged'] else 'NOT converged: ' + m['message']}")
        name = "alpha-bar" if smp.space == "vp" else "sigma"
        if not sched.chained:
            name += " (start, end) of each step"
        print(f"{name}: " + " ".join(f"{v:.6g}" for v in levels))
        print(f"start: {m['start_rule']}, initial-latent KL {m['initial_kl']:.3g} nats")
        if args.plot:
            print(f"figure written to {args.plot}")
        print(f"schedule written to {args.out}")
    return 0


def add_compare(sub):
    p = sub.add_parser("compare", help="score a designed schedule against heuristic ones",
                       description="Score a designed schedule (--schedule, or one designed "
                       "now) against diffusers' and other heuristic schedules.")
    _design_args(p)
    p.add_argument("--schedule", help="designed schedule JSON (default: design one now)")
    p.add_argument("--beta-schedule", default="linear", choices=BETA_SCHEDULES,
                   help="sigma range of the karras and exponential schedules")
    _model_design_args(p)
    p.add_argument("--n", type=int, default=5000,
                   help="with --model: samples per schedule from the real diffusers sampler, "
                   "on fresh seeds (--seed + 1000)")


def _compare_model(args, smp) -> int:
    """``symspec compare --model``: defaults, spectral and model designs on real samplers."""
    from . import reality
    from .design.optimise import design_schedule
    from .diffusers.export import level_range

    if smp.name not in ("ddim", "ddpm") or dict(smp.options).get("eta", 0) != 0:
        raise ValueError(f"--model compares on diffusers' DDIM (eta 0) and DDPM schedulers, "
                         f"got --sampler {smp.name} {dict(smp.options)}")
    if args.n < 20:
        raise ValueError(f"--n must be at least 20, got {args.n}")
    progress = _StderrProgress()
    model = _data_model(args, progress)
    mine = design_schedule(smp, model, args.steps, terms=args.terms, samples=args.samples,
                           seed=args.seed, level_range=level_range(), progress=progress)
    held_out = args.seed + 1000
    rows = reality.compare_schedules(model, smp.name, args.steps, n=args.n, seed=held_out,
                                     extra={"model design": mine}, progress=progress)
    progress.done()
    rows[0]["name"] = "spectral design"
    keys = ("fd", "mmd", "mode_kl")
    if args.plot:
        from .plotting import plot_frontier

        fig, ax = _figure(2)
        for a, y in zip(ax[0], ("fd", "mmd"), strict=True):
            plot_frontier(rows, "mode_kl", y, ax=a, highlight=("spectral design",
                                                                "model design"))
        fig.suptitle(f"{smp.name}, N={args.steps}, {args.model} on {args.data}: {args.n} "
                     "held-out samples per schedule")
        write_outputs([(args.plot, _png_bytes(fig), "--plot")])
    if args.json:
        print(json.dumps({"model": args.model, "data": args.data, "sampler": smp.name,
                          "steps": args.steps, "n": args.n, "seed": held_out,
                          "levels": mine.alpha_bar.tolist(),
                          "rows": [{k: v for k, v in r.items() if k != "scheduler"}
                                   for r in rows]}))
        return 0
    print(f"{smp.name}, {args.steps} steps, {args.model} fitted to {args.data}: {args.n} "
          f"samples per schedule from the real diffusers scheduler on held-out seeds "
          f"({held_out}); value ± standard error, lower is better")
    print(f"{'schedule':18} {'FD':>18} {'MMD':>20} {'mode-KL':>18}")
    for r in rows:
        cells = [f"{r[k]:.4g} ± {r[k + '_se']:.2g}" for k in keys]
        print(f"{r['name']:18} {cells[0]:>18} {cells[1]:>20} {cells[2]:>18}")
    if args.plot:
        print(f"figure written to {args.plot}")
    return 0


def cmd_compare(args) -> int:
    from .design.optimise import baseline_schedules, design_schedule, initial_kl, objective
    from .numeric.response import spectral_response

    _check_outputs((args.plot, "--plot"))
    smp = _sampler(args)
    if args.model:
        return _compare_model(args, smp)
    psd = parse_psd(args.psd)
    designed = _read_schedule(args.schedule) if args.schedule else None
    if designed is not None and designed.steps != args.steps:
        raise ValueError(f"--schedule has {designed.steps} steps, not --steps {args.steps}")
    mine: dict[str, Schedule] = {} if designed is None else {"designed": designed}
    if designed is None:
        design = functools.partial(design_schedule, smp, psd, args.steps, args.divergence)
        todo: dict[str, dict] = {"designed": {}, "designed, non-chained": {"chained": False},
                                 "designed, free start": {"start": "free"}}
        if args.steps == 1:  # one step has no second level to shift
            del todo["designed, non-chained"]
        for i, (label, kw) in enumerate(todo.items(), 1):
            progress = _StderrProgress(f"{label} ({i}/{len(todo)}): ")
            mine[label] = design(progress=progress, **kw)
            progress.done()
    cands = {**mine, **baseline_schedules(smp, args.steps, args.beta_schedule)}
    _check_eta(smp, cands)
    score = {k: objective(smp, s, psd, args.divergence) for k, s in cands.items()}
    kl = {k: initial_kl(s.space, float(s.start[0]), psd, s.init_var) for k, s in cands.items()}
    order = sorted(score, key=lambda k: score[k])
    if args.plot:
        from .plotting import plot_spectra

        fig, ax = _figure(2)
        shown = ["designed"] + [k for k in order if k != "designed"][:4]
        plot_spectra(psd, {k: spectral_response(smp, cands[k], psd) for k in shown}, ax=ax[0, 0])
        ax[0, 1].barh(order[::-1], [score[k] for k in order[::-1]])
        ax[0, 1].set(xscale="log", xlabel=f"{args.divergence} objective", title="Scores")
        write_outputs([(args.plot, _png_bytes(fig), "--plot")])
    if args.json:
        print(json.dumps({"sampler": smp.name, "options": dict(smp.options), "steps": args.steps,
                          "divergence": args.divergence, "objective": score,
                          "initial_kl": kl,
                          "chained": {k: cands[k].chained for k in cands}}))
    else:
        print(f"{smp.name} {dict(smp.options)}, {args.steps} steps, {args.divergence} "
              f"(sum(psd) = {psd.sum():.6g}); lower is better; ratio = objective / designed; "
              "chained = each step starts where the previous ended (DDIMScheduler's stride "
              "rule is not); initial KL = KL(latent || data's noisy marginal) at the start, "
              "in nats: above 0.01 the schedule relies on an exact denoiser off the data")
        print(f"{'schedule':28} {'objective':>12} {'ratio':>8} {'chained':>8} "
              f"{'initial KL':>11}")
        for k in order:
            print(f"{k:28} {score[k]:12.6g} {score[k] / score['designed']:8.3f} "
                  f"{'yes' if cands[k].chained else 'no':>8} {kl[k]:11.3g}")
    return 0


def add_diagnose(sub):
    p = sub.add_parser("diagnose", help="split a schedule's spectral error into its sources",
                       description="Split the output-spectrum error of a sampler on a "
                       "schedule into its sources, ring by ring, relative to the data.")
    _design_args(p)
    p.add_argument("--schedule", help="schedule JSON (default: --baseline)")
    p.add_argument("--baseline", default="linear/leading",
                   help="a heuristic schedule by name, e.g. linear/trailing, karras")


def cmd_diagnose(args) -> int:
    from .design.diagnosis import PARTS, diagnose, plot_diagnosis
    from .design.optimise import baseline_schedules

    _check_outputs((args.plot, "--plot"))
    smp = _sampler(args)
    psd = parse_psd(args.psd)
    if args.schedule:
        sched, label = _read_schedule(args.schedule), args.schedule
    else:
        base = baseline_schedules(smp, args.steps)
        if args.baseline not in base:
            raise ValueError(f"--baseline must be one of {', '.join(base)}, got "
                             f"{args.baseline!r}")
        sched, label = base[args.baseline], args.baseline
    _check_eta(smp, {label: sched})
    with np.errstate(divide="ignore"):  # log(0) of a zero bin is -inf there, by design
        d = diagnose(smp, sched, psd)
    channels = _has_channels(args.psd)
    f, rel = d.radial(channels)
    if args.plot:
        fig, ax = _figure()
        plot_diagnosis(d, ax[0, 0], f"{smp.name} on {label}")
        write_outputs([(args.plot, _png_bytes(fig), "--plot")])
    if args.json:
        print(json.dumps({"sampler": smp.name, "schedule": label, "sums": d.sums(),
                          "frequency": f.tolist(), **{k: v.tolist() for k, v in rel.items()}}))
    else:
        print(f"{smp.name} {dict(smp.options)} on {label}: (output - data) / data, ring averages"
              + (f" summed over the {psd.shape[-1]} eigen-channels" if channels else "")
              + "; the parts add up to the total")
        cols = (*PARTS, "total")
        print(f"{'|f|':>8} " + " ".join(f"{c:>14}" for c in cols))
        for i, fi in enumerate(f):
            print(f"{fi:8.4f} " + " ".join(f"{rel[c][i]:14.5g}" for c in cols))
        sums = d.sums()
        print(f"{'sum/sum(psd)':>8} " + " ".join(f"{sums[c]:14.5g}" for c in cols))
    return 0


#: Every subcommand: name -> (declare its arguments, run it).
COMMANDS = {
    "derive": (add_derive, cmd_derive),
    "response": (add_response, cmd_response),
    "demo": (add_demo, cmd_demo),
    "psd": (add_psd, cmd_psd),
    "design": (add_design, cmd_design),
    "compare": (add_compare, cmd_compare),
    "diagnose": (add_diagnose, cmd_diagnose),
}


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="symspec", description="Spectral analysis of diffusion samplers.",
                epilog=EPILOG, formatter_class=_Formatter)
    p.add_argument("--version", action="version", version=f"symspec {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser,
                           metavar="COMMAND", help="one of: " + ", ".join(COMMANDS))
    real_add = sub.add_parser

    def add_parser(name, **kw):  # every subcommand: defaults shown, the exit-status epilog
        return real_add(name, formatter_class=_Formatter, epilog=EPILOG, **kw)

    sub.add_parser = add_parser  # type: ignore[method-assign]
    for add, _ in COMMANDS.values():
        add(sub)
    return p


#: OSError numbers that mean the environment refused (not a bug): reported in one line.
_ENV_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR,
               errno.ENOSPC, errno.EROFS, errno.EIO, errno.EFBIG, errno.ENAMETOOLONG,
               errno.ELOOP, errno.EMFILE, errno.ENFILE, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _error(message: str) -> int:
    print(f"symspec: error: {message.splitlines()[0] if message else 'failed'}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``symspec`` console script."""
    try:
        args = build_parser().parse_args(argv)
        _, run = COMMANDS[args.command]
        with warnings.catch_warnings(record=True) as caught:
            code = run(args)
        for text in dict.fromkeys(str(w.message).splitlines()[0] for w in caught):
            print(f"symspec: warning: {text}", file=sys.stderr)  # after a success only
        return code
    except BrokenPipeError:  # the reader stopped early (e.g. `| head`): not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (silence the exit-time flush)
        return 0
    except KeyboardInterrupt:
        print("symspec: interrupted", file=sys.stderr)
        return 130
    except ValueError as exc:
        return _error(str(exc))
    except MemoryError:
        return _error("out of memory")
    except OSError as exc:
        if exc.errno not in _ENV_ERRNOS:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        return _error(f"{where}{exc.strerror or exc}")


# -- codegen -----------------------------------------------------------------------------
def add_codegen(sub):
    from .numeric.lambdify import BACKENDS
    from .symbolic.denoiser import PREDICTION_TYPES

    p = sub.add_parser("codegen", help="write a standalone module of a sampler's response",
                       description="Write a standalone Python module that evaluates the "
                       "spectral response of a sampler (output spectrum, transfer, noise "
                       "spectrum) from a grid of levels and a PSD, in NumPy, PyTorch or JAX, "
                       "with no import of symspec (symspec.codegen).")
    _sampler_args(p, positional=True)
    p.add_argument("--backend", default="numpy", choices=BACKENDS,
                   help="the array library of the module")
    p.add_argument("--prediction-type", default="epsilon", choices=PREDICTION_TYPES,
                   help="what the exact model outputs (the map is the same for all)")
    p.add_argument("-o", "--out", required=True, help="the Python file to write")


def cmd_codegen(args) -> int:
    from ._io import atomic_write
    from .numeric.backends import codegen

    _check_outputs((args.out, "-o"))
    smp = _sampler(args)
    text = codegen(smp, args.backend, prediction_type=args.prediction_type)
    atomic_write(args.out, text, "-o")
    print(f"{smp.name} {dict(smp.options)}: wrote {args.out} ({args.backend}, "
          f"{text.count(chr(10))} lines); response(grid, psd) -> (output_psd, transfer, "
          "noise_psd)")
    return 0


COMMANDS["codegen"] = (add_codegen, cmd_codegen)


# -- reality (symspec.reality) -----------------------------------------------------------
def add_reality(sub):
    p = sub.add_parser("reality", help="designed vs default schedules on real samplers, "
                       "non-Gaussian data",
                       description="Fit an exact non-Gaussian model (a Gaussian mixture, or "
                       "the data themselves) to samples, draw --n samples from real diffusers "
                       "schedulers driven by its exact posterior mean, and score the schedule "
                       "designed for the model's PCA spectrum against the six diffusers "
                       "defaults: Frechet distance, MMD, sliced W2 and mode-KL, each with a "
                       "standard error, and the exact-sample noise floor (symspec.reality).")
    _model_args(p, required=True)
    p.add_argument("--sampler", default="ddim", choices=["ddim", "ddpm"], help="sampler")
    p.add_argument("--steps", type=int, default=10, help="number of steps")
    p.add_argument("--schedule", help="designed schedule JSON (default: design one now)")
    p.add_argument("--n", type=int, default=20000, help="samples per schedule")
    p.add_argument("--seed", type=int, default=0, help="seed of the fit, latents and noise")
    p.add_argument("--json", action="store_true", help="print JSON")


def _model_args(p, required: bool = False) -> None:
    """--model and --data: an exact non-Gaussian data model fitted to samples."""
    p.add_argument("--model", required=required, default="gmm:16" if required else None,
                   help="gmm:K (a K-component full-covariance Gaussian mixture) or empirical "
                   "(the samples themselves), fitted to --data" + ("" if required else
                                                                  ": design for the model"))
    p.add_argument("--data", default="photos:8",
                   help="photos[:SIZE] (grey patches of the scikit-learn photos) or a .npy "
                   "array of samples (n, ...)")


def _data_model(args, progress):
    """The model ``--model`` names, fitted to ``--data`` (seed ``--seed``)."""
    from .models import Empirical, GaussianMixture

    m = re.fullmatch(r"gmm:(\d+)|empirical", args.model)
    if not m:
        raise ValueError(f"--model must be gmm:K or empirical, got {args.model!r}")
    data = _reality_data(args.data)
    progress(f"fitting {args.model} to {len(data)} samples of dimension {data.shape[1]}")
    if m.group(1):
        return GaussianMixture.fit(data, int(m.group(1)), seed=args.seed)
    return Empirical(data)


def _model_design_args(p) -> None:
    _model_args(p)
    p.add_argument("--terms", type=_terms,
                   help="with --model: weights of the objective's terms, e.g. "
                   "w2=1,mode_kl=4 (default all four, w2=1,mode_kl=1,fd=1,mmd=1; see "
                   "symspec.design.simulation)")
    p.add_argument("--samples", type=int, default=1000,
                   help="with --model: simulated samples per evaluation of the design")
    p.add_argument("--seed", type=int, default=0,
                   help="with --model: seed of the fit and of the design's simulated samples")


def _terms(text: str) -> dict[str, float]:
    """``--terms``: ``name=weight,...`` with names from ``TERMS``."""
    from .design.simulation import TERMS

    out = {}
    for part in text.split(","):
        name, eq, value = (x.strip() for x in part.partition("="))
        if name not in TERMS:
            raise argparse.ArgumentTypeError(f"unknown term {name!r}; the terms are "
                                             f"{', '.join(TERMS)}")
        try:
            out[name] = float(value) if eq else 1.0
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected name=weight, got {part!r}") from None
    return out


def _reality_data(spec: str) -> np.ndarray:
    m = re.fullmatch(r"photos(?::(\d+))?", spec)
    if m:
        from .spectra import photo_patches

        x = photo_patches(int(m.group(1) or 8))
    else:
        path = Path(spec)
        if path.suffix != ".npy" or not path.is_file():
            raise ValueError(f"--data must be photos[:SIZE] or an existing .npy file, got "
                             f"{spec!r}")
        x = np.load(path, allow_pickle=False)
    if x.ndim < 2:
        raise ValueError(f"--data must hold samples (n, ...), got shape {x.shape}")
    return x.reshape(len(x), -1)


def cmd_reality(args) -> int:
    from . import reality
    from .schedules import Schedule

    if args.n < 20:
        raise ValueError(f"--n must be at least 20, got {args.n}")
    progress = _StderrProgress()
    model = _data_model(args, progress)
    schedule = Schedule.from_json(Path(args.schedule).read_text()) if args.schedule else None
    rows = reality.compare_schedules(model, args.sampler, args.steps, n=args.n,
                                     seed=args.seed, schedule=schedule, progress=progress)
    progress.done()
    keys = ("fd", "mmd", "sliced_w2", "mode_kl")
    if args.json:
        print(json.dumps({"model": args.model, "data": args.data, "sampler": args.sampler,
                          "steps": args.steps, "n": args.n, "mmd_kernel": reality.MMD_KERNEL,
                          "rows": [{k: v for k, v in r.items() if k != "scheduler"}
                                   for r in rows]}))
        return 0
    print(f"{args.sampler}, {args.steps} steps, {args.model} fitted to {args.data} (d = "
          f"{model.dim}), {args.n} samples per schedule from the real diffusers scheduler; "
          "value ± standard error; pred. FD: the Gaussian theory")
    print(f"{'schedule':18} {'FD':>18} {'MMD':>20} {'sliced W2':>20} {'mode-KL':>18} "
          f"{'pred. FD':>9}")
    for r in rows:
        cells = [f"{r[k]:.4g} ± {r[k + '_se']:.2g}" for k in keys]
        print(f"{r['name']:18} {cells[0]:>18} {cells[1]:>20} {cells[2]:>20} {cells[3]:>18} "
              f"{r['predicted_fd']:9.4g}")
    f = rows[0]
    print(f"{'noise floor':18} " + " ".join(f"{f[k + '_floor']:>{w}.2g}" for k, w in
                                             zip(keys, (18, 20, 20, 18), strict=True))
          + "   (exact samples)")
    return 0


COMMANDS["reality"] = (add_reality, cmd_reality)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
