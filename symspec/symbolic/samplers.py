"""Built-in samplers, each a short step function run by the generic engine.

Every step reads levels ``c.t`` (current) and ``c.p`` (next, closer to the data) and
returns the next state.  See :mod:`symspec.symbolic.engine` for the contract.
"""

from __future__ import annotations

import math
import numbers
import operator

import sympy as sp

from .._checks import choice, flag, number
from ..ops import sqrt
from .engine import Sampler, sampler

__all__ = ["DDPM", "DDIM", "EULER", "HEUN", "EULER_ANCESTRAL", "DPMPP", "UNIPC",
           "VE_REVERSE_DIFFUSION", "VE_ANCESTRAL", "LMS", "SAMPLERS", "get_sampler"]


# -- option checks: called by Sampler.__call__ (engine), so a bad value fails where it is set

def _check_ddpm(*, variance, last_noise):
    choice(variance, "variance", ("fixed_small", "fixed_large"))
    flag(last_noise, "last_noise")


def _check_ddim(*, eta):
    """``eta`` finite and >= 0 (or a SymPy symbol, for symbolic derivations); whether it
    fits a given step is checked by the step."""
    if isinstance(eta, sp.Symbol):
        return
    try:
        number(eta, "eta", low=0)
    except TypeError as exc:  # a string or a bool: a bad value all the same
        raise ValueError(str(exc)) from None


def _check_last_noise(*, last_noise):
    flag(last_noise, "last_noise")


def _int_in(value, allowed) -> bool:
    """Whether ``value`` is an int (not a bool) among ``allowed``."""
    return not isinstance(value, bool) and isinstance(value, numbers.Integral) \
        and int(value) in allowed


def _check_lms(*, order):
    if not _int_in(order, (1, 2, 3, 4)):
        raise ValueError(f"order must be 1, 2, 3 or 4, got {order!r}")


def _check_dpmpp(*, solver_order, sde, solver_type, lower_order_final, euler_at_final):
    flag(sde, "sde")
    if not _int_in(solver_order, (1, 2) if sde else (1, 2, 3)):
        raise ValueError(f"solver_order must be 1, 2 or 3 (1 or 2 with sde=True), "
                         f"got {solver_order!r}")
    if solver_type not in ("midpoint", "heun"):
        raise ValueError(f"solver_type must be 'midpoint' or 'heun', got {solver_type!r}")
    flag(lower_order_final, "lower_order_final")
    flag(euler_at_final, "euler_at_final")


def _check_unipc(*, solver_order, solver_type, lower_order_final, disable_corrector):
    if not _int_in(solver_order, (1, 2, 3)) or solver_type not in ("bh1", "bh2"):
        raise ValueError(f"need solver_order in (1, 2, 3) and solver_type 'bh1' or 'bh2', got "
                         f"{solver_order!r}, {solver_type!r}")
    flag(lower_order_final, "lower_order_final")
    if not isinstance(disable_corrector, tuple) or not all(
            _int_in(i, range(0, 1 << 31)) for i in disable_corrector):
        raise ValueError(f"disable_corrector must be a tuple of step indices, got "
                         f"{disable_corrector!r}")


@sampler(space="vp", check=_check_ddpm)
def ddpm(c, x, *, variance="fixed_small", last_noise=False):
    """DDPM ancestral step (Ho et al. 2020, Alg. 2), as diffusers' DDPMScheduler on a sub-grid.

    ``variance`` is ``"fixed_small"`` (posterior variance) or ``"fixed_large"`` (beta);
    the last step adds no noise unless ``last_noise`` (diffusers adds it when the last
    timestep is not 0).
    """
    ab_t, ab_p = c.t.alpha_bar, c.p.alpha_bar
    beta = 1 - ab_t / ab_p
    mean = (sqrt(ab_p) * beta * c.x0(x) + sqrt(1 - beta) * (1 - ab_p) * x) / (1 - ab_t)
    if c.last and not last_noise:
        return mean
    var = beta if variance == "fixed_large" else (1 - ab_p) / (1 - ab_t) * beta
    return mean + sqrt(var) * c.noise()


@sampler(space="vp", prev="stride", check=_check_ddim)
def ddim(c, x, *, eta=0):
    """DDIM step (Song, Meng & Ermon 2021, eq. 12); ``eta=1`` is DDPM's posterior sampling.

    Any ``eta`` in [0, 1] fits every step; a larger one only steps with
    ``eta**2 <= ab_p (1 - ab_t) / (ab_p - ab_t)``, where the direction term stays real.
    """
    ab_t, ab_p = c.t.alpha_bar, c.p.alpha_bar
    sig = eta * sqrt((1 - ab_p) / (1 - ab_t) * (1 - ab_t / ab_p)) if eta else 0
    rest = 1 - ab_p - sig**2
    if isinstance(rest, numbers.Real) and rest < 0:  # numbers, not symbols
        if eta <= 1:
            rest = 0.0  # rounding: eta <= 1 always fits
        else:
            raise ValueError(f"eta={eta:g} is too large for the DDIM step from alpha-bar "
                             f"{ab_t:.6g} to {ab_p:.6g}: it needs eta <= "
                             f"{math.sqrt(ab_p * (1 - ab_t) / (ab_p - ab_t)):.6g} there "
                             "(any eta in [0, 1] fits every step)")
    x_next = sqrt(ab_p) * c.x0(x) + sqrt(rest) * c.eps(x)
    return x_next + sig * c.noise() if eta else x_next


# -- sigma-based (VE) samplers: the state is x = x0 + sigma * eps ------------------------

def _slope(c, x, at):
    """``dx/dsigma`` of the probability-flow ODE at level ``at``: ``(x - x0_hat)/sigma``."""
    return (x - c.x0(x, at=at)) / at.sigma


@sampler(space="ve")
def euler(c, x):
    """Euler on the probability-flow ODE in sigma (Karras et al. 2022, eq. 4; diffusers Euler)."""
    return x + (c.p.sigma - c.t.sigma) * _slope(c, x, c.t)


@sampler(space="ve")
def heun(c, x):
    """Heun's method, EDM Alg. 1 without churn (Karras et al. 2022); Euler on the last step."""
    dt = c.p.sigma - c.t.sigma
    d = _slope(c, x, c.t)
    x_euler = x + dt * d
    if c.last:  # diffusers' HeunDiscreteScheduler (and EDM where sigma_next = 0)
        return x_euler
    return x + dt * (d + _slope(c, x_euler, c.p)) / 2


@sampler(space="ve")
def euler_ancestral(c, x):
    """Euler ancestral (k-diffusion ``sample_euler_ancestral``; diffusers EulerAncestral)."""
    s, s_to = c.t.sigma, c.p.sigma
    up = sqrt(s_to**2 * (s**2 - s_to**2) / s**2)
    down = sqrt(s_to**2 - up**2)
    return x + (down - s) * _slope(c, x, c.t) + up * c.noise()


@sampler(space="ve", check=_check_last_noise)
def ve_reverse_diffusion(c, x, *, last_noise=False):
    """Reverse-diffusion predictor of the VE SDE (Song et al. 2021, eq. 46), no corrector.

    The last step returns the noise-free mean unless ``last_noise`` (``denoise=True`` in
    the paper's code).
    """
    var = c.t.sigma**2 - c.p.sigma**2
    x_mean = x - var * c.eps(x) / c.t.sigma  # x + var * score
    return x_mean if c.last and not last_noise else x_mean + sqrt(var) * c.noise()


@sampler(space="ve")
def ve_ancestral(c, x):
    """Ancestral sampling of the VE SDE (SMLD; Song et al. 2021, eq. 47)."""
    s, s_to = c.t.sigma, c.p.sigma
    x_mean = x - (s**2 - s_to**2) * c.eps(x) / s  # x + (s^2 - s_to^2) * score
    return x_mean + sqrt(s_to**2 * (s**2 - s_to**2) / s**2) * c.noise()


def _lagrange(nodes, j):
    """Monomial coefficients (constant first) of the ``j``-th Lagrange basis polynomial."""
    poly = [1]
    for k, r in enumerate(nodes):
        if k != j:  # poly *= (x - r) / (nodes[j] - r)
            d = nodes[j] - r
            poly = [((poly[i - 1] if i else 0) - r * (poly[i] if i < len(poly) else 0)) / d
                    for i in range(len(poly) + 1)]
    return poly


def _lms_order(i, n, *, order=4):
    return min(i + 1, order)


@sampler(space="ve", state=4, order=_lms_order, check=_check_lms)
def lms(c, x, d1, d2, d3, *, order=4):
    """Linear multistep in sigma, orders 1-4 (k-diffusion ``sample_lms``; diffusers LMS).

    The coefficients integrate the Lagrange polynomials through the last slopes over the
    step, exactly (in ``u = sigma - sigma_t``, for conditioning).
    """
    d = _slope(c, x, c.t)
    nodes = [lv.sigma - c.t.sigma for lv in (c.t, *c.hist)[:c.order]]
    du = c.p.sigma - c.t.sigma
    for j, dj in enumerate((d, d1, d2, d3)[:c.order]):
        x = x + sum(a * du ** (i + 1) / (i + 1) for i, a in enumerate(_lagrange(nodes, j))) * dj
    return x, d, d1, d2


# -- data-prediction multistep solvers in VP space ---------------------------------------

def _dpmpp_order(i, n, *, solver_order=2, lower_order_final=True, euler_at_final=True, **_):
    """diffusers' per-step order: warm up, then lower orders at the end of short runs."""
    short = lower_order_final and n < 15
    if solver_order == 1 or i == 0 or (i == n - 1 and (euler_at_final or short)):
        return 1
    if solver_order == 2 or i == 1 or (i == n - 2 and short):
        return 2
    return 3


@sampler(space="vp", state=3, order=_dpmpp_order, check=_check_dpmpp)
def dpmpp(c, x, m1, m2, *, solver_order=2, sde=False, solver_type="midpoint",
          lower_order_final=True, euler_at_final=True):
    """DPM-Solver++ multistep and SDE-DPM-Solver++ (Lu et al. 2022; diffusers DPMSolverMultistep).

    ``m1, m2`` are the previous data predictions.  ``euler_at_final`` takes the last step at
    first order, as diffusers does with its default ``final_sigmas_type="zero"``.
    """
    s, t = c.t, c.p
    m0 = c.x0(x)
    e = t.sigma_ve / s.sigma_ve  # exp(-h), finite at the clean level
    E = e * e if sde else e      # exp(-hh) with hh = 2h for the SDE
    x_next = t.sigma / s.sigma * (e if sde else 1) * x + t.alpha * (1 - E) * m0
    if sde:
        x_next = x_next + t.sigma * sqrt(1 - E) * c.noise()
    if c.order == 1:
        return x_next, m0, m1
    h = t.logsnr - s.logsnr
    hh = 2 * h if sde else h
    r0 = (s.logsnr - c.hist[0].logsnr) / h
    d1 = (m0 - m1) / r0
    if c.order == 2:
        k1 = (1 - E) / 2 if solver_type == "midpoint" else (E - 1) / hh + 1
        return x_next + t.alpha * k1 * d1, m0, m1
    r1 = (c.hist[0].logsnr - c.hist[1].logsnr) / h
    d2 = (d1 - (m1 - m2) / r1) / (r0 + r1)
    return (x_next + t.alpha * ((E - 1) / h + 1) * (d1 + r0 * d2)
            - t.alpha * (2 * (E - 1 + h) - h**2) / (2 * h**2) * d2, m0, m1)


def _unipc_order(i, n, *, solver_order=2, lower_order_final=True, disable_corrector=(), **_):
    """``(predictor order, order of the corrector run first, 0 if none)``, as in diffusers."""
    def pred(k):
        return min(solver_order, n - k if lower_order_final else solver_order, k + 1)
    return pred(i), pred(i - 1) if i > 0 and i - 1 not in disable_corrector else 0


def _unipc(t, s, hist, x, m0, ms, order, m_t=None, bh2=True):
    """One UniP update from level ``s`` to ``t`` (data prediction); given ``m_t``, the model
    output at the predicted point, the UniC corrector instead (Zhao et al. 2023, Alg. 1-2)."""
    e = t.sigma_ve / s.sigma_ve  # exp(-h)
    x_new = t.sigma / s.sigma * x - t.alpha * (e - 1) * m0
    corrector = m_t is not None
    if order == 1 and not corrector:
        return x_new
    hh = s.logsnr - t.logsnr  # -h
    b_h = e - 1 if bh2 else hh
    rks = [(lv.logsnr - s.logsnr) / -hh for lv in hist[:order - 1]] + [1]
    if order == 1 or (order == 2 and not corrector):
        rho2 = [1]  # rho = 1/2, kept as the integer 2 * rho
    else:  # rho solves sum_j rks[j]**i rho[j] = b[i]: rho[j] = b . (Lagrange polynomial j)
        b, phi, fact = [], (e - 1 - hh) / hh, 1
        for i in range(1, order + 1):
            b.append(2 * phi * fact / b_h)
            fact *= i + 1
            phi = (phi * fact - hh) / (hh * fact)
        nodes = rks if corrector else rks[:-1]
        rho2 = [sum(map(operator.mul, b, _lagrange(nodes, j))) for j in range(len(nodes))]
    res = sum(r * (mi - m0) / rk for r, mi, rk in zip(rho2[:order - 1], ms, rks, strict=False))
    if corrector:
        res = res + rho2[-1] * (m_t - m0)
    return x_new - t.alpha * b_h * res / 2


@sampler(space="vp", state=4, history=3, order=_unipc_order, check=_check_unipc)
def unipc(c, x, m1, m2, m3, *, solver_order=2, solver_type="bh2", lower_order_final=True,
          disable_corrector=()):
    """UniPC: UniP-p predictor and UniC corrector (Zhao et al. 2023; diffusers UniPCMultistep).

    The corrector of step ``k - 1`` needs the model output at the point it predicted, so it
    runs at the start of step ``k``; because predictor and corrector share the term in the
    previous state, it is added as ``corrector - predictor`` with that state set to 0, and
    the state holds only ``x`` and the earlier data predictions.
    """
    order, corr = c.order
    m0 = c.x0(x)  # at the predicted point: diffusers keeps this one, not the corrected one
    bh2 = solver_type == "bh2"
    if corr:
        prev = (c.t, c.hist[0], c.hist[1:], 0, m1, (m2, m3), corr)
        x = x + _unipc(*prev, m_t=m0, bh2=bh2) - _unipc(*prev, bh2=bh2)
    return _unipc(c.p, c.t, c.hist, x, m0, (m1, m2), order, bh2=bh2), m0, m1, m2


DDPM: Sampler = ddpm
DDIM: Sampler = ddim
EULER: Sampler = euler
HEUN: Sampler = heun
EULER_ANCESTRAL: Sampler = euler_ancestral
VE_REVERSE_DIFFUSION: Sampler = ve_reverse_diffusion
VE_ANCESTRAL: Sampler = ve_ancestral
LMS: Sampler = lms
DPMPP: Sampler = dpmpp
UNIPC: Sampler = unipc

#: Built-in samplers by name.
SAMPLERS: dict[str, Sampler] = {s.name: s for s in (
    DDPM, DDIM, EULER, HEUN, EULER_ANCESTRAL, VE_REVERSE_DIFFUSION, VE_ANCESTRAL, LMS, DPMPP,
    UNIPC)}


def get_sampler(name: str, **options) -> Sampler:
    """A built-in sampler by name, configured with ``options``.

    >>> get_sampler("ddim", eta=1.0).opts
    {'eta': 1.0}
    """
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; known samplers: {', '.join(sorted(SAMPLERS))}")
    return SAMPLERS[name](**options)
