"""Train the small v-prediction demo network on 8x8 grey photo patches (CPU, ~5 minutes).

    python bench/train_demo_net.py [--iterations 20000] [--out bench/demo_net.pt]

The network is an MLP ``(x_t, t) -> v`` on the 64 pixels of an 8x8 patch from
:func:`symspec.spectra.photo_patches` (``[-1, 1]``), trained with diffusers' default
1000-step linear beta schedule, timesteps uniform in ``0..999``, ``x_t = a x0 + s eps``
(``a = sqrt(alphabar_t)``, ``s = sqrt(1 - alphabar_t)``) and the loss ``|v_hat - v|^2`` with
``v = a eps - s x0``.  Seeds are fixed, so the run is reproducible on one machine.  The
float32 ``state_dict`` (with the architecture in ``"config"``) is saved to ``--out``.

Why v-prediction: a sampler recovers ``x0 = (x_t - s eps_hat) / a`` from an
epsilon-prediction, so an error ``delta`` in ``eps_hat`` becomes ``s / a * delta`` in
``x0``: at ``t = 999`` of the linear schedule ``a = sqrt(4.0e-5) = 0.0064``, a 156-fold
amplification, and the first (noisiest) steps of a few-step sampler are ruined by any
imperfection of a small network.  From a v-prediction ``x0 = a x_t - s v_hat``: the
error is multiplied by ``s <= 1`` at every level.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
CONFIG = {"dim": 64, "hidden": 384, "depth": 3, "features": 32}


class DemoNet(nn.Module):
    """``(x_t, t) -> v``: an MLP on the pixels and a sinusoidal embedding of ``t / 1000``."""

    def __init__(self, dim: int = 64, hidden: int = 384, depth: int = 3, features: int = 32):
        super().__init__()
        self.features = features
        layers: list[nn.Module] = [nn.Linear(dim + 2 * features, hidden), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.SiLU()]
        layers.append(nn.Linear(hidden, dim))
        self.net = nn.Sequential(*layers)
        freq = torch.exp(torch.linspace(0.0, math.log(1000.0), features))
        self.register_buffer("freq", freq, persistent=False)

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x.dtype).reshape(-1, 1) / 1000.0
        arg = t * self.freq.to(x.dtype)
        emb = torch.cat([torch.sin(arg), torch.cos(arg)], dim=1).expand(len(x), -1)
        return self.net(torch.cat([x, emb], dim=1))


def load(path: str | Path = HERE / "demo_net.pt") -> DemoNet:
    """The trained network from ``path`` (float32, eval mode)."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    net = DemoNet(**blob["config"])
    net.load_state_dict(blob["state_dict"])
    return net.eval()


def train(iterations: int, batch: int = 256, lr: float = 2e-3, seed: int = 0) -> DemoNet:
    from symspec.schedules import training_alphas_cumprod
    from symspec.spectra import photo_patches

    torch.manual_seed(seed)
    torch.set_num_threads(1)  # two threads contend on a 2-core machine
    data = torch.tensor(photo_patches(8).reshape(-1, 64), dtype=torch.float32)
    ab = torch.tensor(training_alphas_cumprod(1000, "linear"), dtype=torch.float32)
    net = DemoNet(**CONFIG)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=iterations,
                                                pct_start=0.05)
    g = torch.Generator().manual_seed(seed)
    t0, avg = time.perf_counter(), None
    for it in range(iterations):
        x0 = data[torch.randint(len(data), (batch,), generator=g)]
        t = torch.randint(1000, (batch,), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        a, s = ab[t].sqrt()[:, None], (1 - ab[t]).sqrt()[:, None]
        loss = ((net(a * x0 + s * eps, t) - (a * eps - s * x0)) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        value = loss.item()
        avg = value if avg is None else 0.99 * avg + 0.01 * value
        if (it + 1) % 500 == 0 or it + 1 == iterations:
            print(f"iteration {it + 1}/{iterations}: loss {avg:.4f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return net.eval()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=20000)
    p.add_argument("--out", default=str(HERE / "demo_net.pt"))
    args = p.parse_args()
    net = train(args.iterations)
    state = {k: v.detach().to(torch.float32).clone() for k, v in net.state_dict().items()}
    torch.save({"config": CONFIG, "state_dict": state, "iterations": args.iterations}, args.out)
    n = sum(v.numel() for v in state.values())
    print(f"saved {n} float32 parameters ({Path(args.out).stat().st_size / 1e6:.2f} MB) to "
          f"{args.out}")


if __name__ == "__main__":
    main()
