"""Time to derive the step maps of every built-in sampler: cold start and cached reuse.

A fresh Python process imports symspec and derives every step variant (``(first, last,
order)``) that the built-in samplers need for 10 and for 1000 steps: each registered sampler
with its default options, plus DPM-Solver++ 3M, SDE-DPM-Solver++ 2M and UniPC order 3.
Then it derives them all again (the cached reuse).  Goals: cold <= 3 s, cached <= 50 ms.
Wall and CPU times are both printed: the machine may be shared.

Run: ``python bench/derive.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

STEPS = (10, 1000)
GOAL_COLD, GOAL_CACHED = 3.0, 0.05


def child() -> None:
    clock = time.perf_counter(), time.process_time()
    import symspec
    from symspec.numeric.lambdify import compiled
    from symspec.symbolic.engine import derive, variant

    imported = time.perf_counter(), time.process_time()
    samplers = [*symspec.SAMPLERS.values(), symspec.DPMPP(solver_order=3),
                symspec.DPMPP(sde=True), symspec.UNIPC(solver_order=3)]
    jobs = [(s, k) for s in samplers for k in {variant(s, i, n) for n in STEPS for i in range(n)}]
    rows = []
    for smp in samplers:
        t0 = time.perf_counter()
        keys = [k for s, k in jobs if s == smp]
        for k in keys:
            derive(smp, k)
        rows.append((smp.name, dict(smp.opts), len(keys), time.perf_counter() - t0))
    cold = time.perf_counter(), time.process_time()
    for smp, k in jobs:
        derive(smp, k)
    cached = time.perf_counter(), time.process_time()
    for smp, k in jobs:  # not part of the goal: lambdify, for the numeric layer
        compiled(smp, k, "epsilon")
    done = time.perf_counter(), time.process_time()
    print(json.dumps({"import": [imported[j] - clock[j] for j in (0, 1)],
                      "cold": [cold[j] - imported[j] for j in (0, 1)],
                      "cached": [cached[j] - cold[j] for j in (0, 1)],
                      "compile": [done[j] - cached[j] for j in (0, 1)], "rows": rows}))


def main() -> None:
    out = subprocess.run([sys.executable, __file__, "--child"], check=True, capture_output=True,
                         text=True).stdout
    res = json.loads(out)
    print(f"derive every step variant for {' and '.join(map(str, STEPS))} steps, fresh process")
    print(f"{'sampler':22} {'options':50} {'variants':>8} {'time [s]':>9}")
    for name, opts, n, t in res["rows"]:
        shown = ", ".join(f"{k}={v}" for k, v in opts.items() if k in (
            "solver_order", "sde", "order", "eta", "variance"))
        print(f"{name:22} {shown:50} {n:8d} {t:9.3f}")
    goals = {"cold derivation": GOAL_COLD, "cached derivation": GOAL_CACHED}
    for key, label in (("import", "import symspec"), ("cold", "cold derivation"),
                       ("cached", "cached derivation"), ("compile", "compile (numeric)")):
        wall, cpu = res[key]
        goal = f"   goal <= {goals[label]:g} s: ratio {wall / goals[label]:.4f}" if (
            label in goals) else ""
        print(f"{label:22} wall {wall:9.5f} s   cpu {cpu:9.5f} s{goal}")


if __name__ == "__main__":
    child() if sys.argv[1:] == ["--child"] else main()
