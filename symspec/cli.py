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
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["main", "parse_psd", "parse_option", "atomic_write"]


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


def parse_psd(spec: str) -> np.ndarray:
    """A PSD from a file (``.npy``, ``.npz`` with key ``psd``) or a built-in model.

    Models: ``powerlaw:ALPHA[:SIZE]`` (a SIZE x SIZE grid, default 32), ``white[:SIZE]``.

    >>> parse_psd("powerlaw:2:8").shape
    (8, 8)
    """
    from .numeric import validate_psd
    from .spectra import power_law

    m = re.fullmatch(r"powerlaw:([0-9.]+)(?::(\d+))?", spec)
    if m:
        return power_law((int(m.group(2) or 32),) * 2, float(m.group(1)))
    m = re.fullmatch(r"white(?::(\d+))?", spec)
    if m:
        n = int(m.group(1) or 32)
        return np.full((n, n), 0.25)
    path = Path(spec)
    if not path.exists():
        raise ValueError(f"--psd: no such file {spec!r} (or use powerlaw:ALPHA[:SIZE], white)")
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


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: never half-written."""
    path = Path(path)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, mode) as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sampler(args):
    from .samplers import get_sampler

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

    from .engine import closed_form, derive, variant

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
    p.add_argument("--psd", default="powerlaw:2", help="FILE.npy|FILE.npz|powerlaw:ALPHA[:SIZE]")
    p.add_argument("--beta-schedule", default="linear",
                   choices=["linear", "scaled_linear", "squaredcos_cap_v2"])
    p.add_argument("--spacing", default="leading", choices=["leading", "trailing", "linspace"])
    p.add_argument("--steps-offset", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", help="also save the output spectrum to this .npy file")


def cmd_response(args) -> int:
    from .numeric import spectral_response
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


COMMANDS = ("derive", "response", "demo")


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
    except (ValueError, TypeError, OSError, KeyError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"symspec: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
