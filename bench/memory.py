"""Peak memory of a response and of an objective-plus-gradient evaluation, per PSD size.

Each case runs in a fresh subprocess, which records its resident set before the call
(imports done, PSD made, maps compiled on a tiny spectrum) and its peak after; the figure
printed is ``(peak - before) / psd.nbytes``.  The PSD has distinct values everywhere (a
random field), so exact mode compression does not help: this is the worst case.

Goals: a response at most 5x the PSD (its four result arrays plus bounded work), an
objective with its gradient at most 10x, for every sampler and step count.

Run: ``python bench/memory.py [--python OTHER_PYTHONPATH]`` (the option runs the same
cases against another source tree, for before/after figures).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

SIDE, STEPS = 1024, 50
CASES = ["DDIM", "DPMPP", "DPMPP(sde=True)"]

CHILD = r"""
import json, resource, sys
import numpy as np
import symspec
from symspec.design import objective
what, name, side, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
smp = eval("symspec." + name)
psd = np.random.default_rng(0).uniform(0.01, 10.0, (side, side))
sched = symspec.Schedule.from_alpha_bar(np.linspace(0.001, 1.0, steps + 1))
small = psd[:4, :4]
symspec.spectral_response(smp, sched, small)
objective(smp, sched, small, gradient=True)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if what == "response":
    r = symspec.spectral_response(smp, sched, psd)
else:
    r = objective(smp, sched, psd, gradient=True)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"ratio": (peak - before) * 1024 / psd.nbytes}))
"""


def measure(what: str, name: str, path: str | None) -> float:
    env = dict(os.environ)
    if path:
        env["PYTHONPATH"] = path
    with tempfile.TemporaryDirectory() as cwd:  # not this folder: its symspec would win
        out = subprocess.run([sys.executable, "-c", CHILD, what, name, str(SIDE), str(STEPS)],
                             capture_output=True, text=True, env=env, check=True, cwd=cwd)
    return json.loads(out.stdout.strip().splitlines()[-1])["ratio"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", help="PYTHONPATH of another source tree to compare")
    args = ap.parse_args()
    trees = {"this tree": None, **({"other tree": args.python} if args.python else {})}
    print(f"peak memory beyond the inputs / PSD bytes, {SIDE}x{SIDE} modes, {STEPS} steps")
    print(f"{'case':34}" + "".join(f"{t:>12}" for t in trees))
    for what in ("response", "objective+gradient"):
        for name in CASES:
            vals = [measure(what, name, p) for p in trees.values()]
            print(f"{what + ' ' + name:34}" + "".join(f"{v:12.1f}" for v in vals), flush=True)


if __name__ == "__main__":
    main()
