"""Exact continuous-time references: the probability-flow ODE and the reverse SDE, per mode.

With infinitely many steps a sampler integrates one of two linear equations per mode, from
the first level ``u0`` of its schedule (latent ``N(0, V)``) to the last, ``u1``.  With the
marginal variance ``D(u) = alpha(u)**2 lam + sigma(u)**2`` of the forward process (VP:
``u`` is alpha-bar; VE: ``u`` is sigma):

* probability-flow ODE: transfer ``H = sqrt(D1 / D0)``, output variance ``H**2 V``;
* reverse SDE: transfer ``H = (alpha0 / alpha1) D1 / D0``, variance ``D1 + H**2 (V - D0)``;
* both: output mean ``(alpha1 - H alpha0) m`` for data mean ``m`` (the latent has mean 0).

:func:`moment_odes` builds the equations for the transfer, variance and mean from the
forward process ``x = alpha(u) x0 + sigma(u) eps``; :func:`certify` proves with SymPy that
:func:`closed_forms` solves them with the right initial values.  :func:`reference` evaluates
the closed forms on a schedule and :func:`discretisation_error` compares a sampler with them.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import sympy as sp

from .._checks import check_type, validate_mean, validate_psd
from ..schedules import Schedule
from ..symbolic import denoiser as dn
from ..symbolic import symbols as S
from ..symbolic.denoiser import PredictionType
from ..symbolic.engine import Sampler, make_level
from .lambdify import lambdify_modes
from .response import Response, spectral_response

if TYPE_CHECKING:  # arrays pass through; this module computes nothing with NumPy itself
    import numpy as np

__all__ = ["KINDS", "moment_odes", "closed_forms", "certify", "reference",
           "discretisation_error"]

#: The two continuous-time references.
KINDS = ("ode", "sde")

_U = sp.Symbol("u", positive=True)
_V = sp.Symbol("V", positive=True)


def _check(kind: str, space: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if space not in ("vp", "ve"):
        raise ValueError(f"space must be 'vp' or 've', got {space!r}")


def moment_odes(kind: str, space: str) -> tuple[list[sp.Eq], tuple[sp.Function, ...], sp.Symbol]:
    """The per-mode linear ODEs in the level ``u`` for the transfer, variance and mean.

    The forward process ``x = alpha x0 + sigma eps`` is the SDE ``dx = f x du + g dW`` with
    ``f = d log(alpha)/du`` and ``g**2 = d(sigma**2)/du - 2 f sigma**2``.  Its score is
    ``-(x - alpha m)/D``.  The probability-flow ODE ``dx = (f x - g**2 score / 2) du`` and the
    reverse SDE ``dx = (f x - g**2 score) du + g dW`` (run towards the data, so each step
    adds variance ``-g**2 du``) give, for ``c = 1/2`` (ODE) or ``1`` (SDE),
    ``H' = (f + c g**2/D) H``, ``V' = 2 (f + c g**2/D) V - [SDE] g**2`` and
    ``mu' = f mu + c g**2 (mu - alpha m)/D``.

    Returns the equations, the unknown functions ``(H, V, mu)`` of ``u``, and ``u``.

    >>> eqs, (H, V, mu), u = moment_odes("ode", "ve")
    >>> eqs[0]
    Eq(Derivative(H(u), u), u*H(u)/(lambda + u**2))
    """
    _check(kind, space)
    lv = make_level(_U, space)
    D = lv.marginal(S.lam)
    f = sp.diff(sp.log(lv.alpha), _U)
    g2 = sp.diff(lv.sigma**2, _U) - 2 * lv.sigma**2 * f
    c = 1 if kind == "sde" else sp.Rational(1, 2)
    rate = sp.simplify(f + c * g2 / D)
    H, V, mu = (sp.Function(n)(_U) for n in ("H", "V", "mu"))
    eqs = [sp.Eq(H.diff(_U), rate * H),
           sp.Eq(V.diff(_U), 2 * rate * V - (sp.simplify(g2) if kind == "sde" else 0)),
           sp.Eq(mu.diff(_U), f * mu + c * g2 * (mu - lv.alpha * S.mean) / D)]
    return eqs, (H, V, mu), _U


@functools.cache
def closed_forms(kind: str, space: str) -> dict[str, sp.Expr]:
    """The exact response from level ``u0`` to ``u1`` (SymPy), latent ``N(0, V)``.

    Keys ``transfer``, ``log_transfer``, ``noise_psd``, ``output_psd``, ``output_mean``
    (expressions in ``lam``, the data mean ``m``, ``V`` and the levels), and ``levels``
    (the symbols ``u0, u1``) and ``V``.

    >>> cf = closed_forms("sde", "vp")
    >>> ab0, ab1 = cf["levels"]
    >>> D = lambda ab: ab * S.lam + 1 - ab
    >>> sp.simplify(cf["transfer"].subs(ab1, 1) - sp.sqrt(ab0) * S.lam / D(ab0))  # book: ddpm
    0
    """
    _check(kind, space)
    u0, u1 = S.level("start", space), S.level("end", space)
    return {**_forms(kind, make_level(u0, space), make_level(u1, space)), "levels": (u0, u1),
            "V": _V}


def _forms(kind: str, L0: dn.Level, L1: dn.Level) -> dict[str, sp.Expr]:
    """The closed forms between two levels, written to evaluate without cancellation."""
    D0, D1 = L0.marginal(S.lam), L1.marginal(S.lam)
    a0, a1 = L0.alpha, L1.alpha
    if kind == "ode":
        H = sp.sqrt(D1 / D0)
        log_h = (sp.log(D1) - sp.log(D0)) / 2
        noise = sp.Integer(0)
    else:
        H = D1 / D0 * a0 / a1
        log_h = sp.log(a0) - sp.log(a1) + sp.log(D1) - sp.log(D0)
        noise = D1 * (a1**2 * L0.sigma**2 - a0**2 * L1.sigma**2) / (a1**2 * D0)  # D1 - H^2 D0
    return {"transfer": H, "log_transfer": log_h, "noise_psd": noise,
            "output_psd": H**2 * _V + noise, "output_mean": (a1 - H * a0) * S.mean}


def certify(kind: str, space: str) -> bool:
    """Prove that :func:`closed_forms` solves :func:`moment_odes` from ``H=1, V, mu=0``.

    >>> all(certify(k, s) for k in KINDS for s in ("vp", "ve"))
    True
    """
    eqs, funcs, u = moment_odes(kind, space)
    cf = closed_forms(kind, space)
    u0, u1 = cf["levels"]
    sol = [cf[k].subs(u1, u) for k in ("transfer", "output_psd", "output_mean")]
    start = [1, _V, 0]
    for eq, fn, s, s0 in zip(eqs, funcs, sol, start, strict=True):
        resid = (eq.lhs - eq.rhs).subs(fn, s).doit()
        if sp.simplify(resid) != 0 or sp.simplify(s.subs(u, u0) - s0) != 0:
            return False
    return True


@functools.cache
def _compiled(kind: str):
    """The closed forms as a function of ``lam, m, V`` and each level's ``alpha, sigma``.

    Passing ``sigma`` itself (not ``1 - alpha-bar`` recomputed inside) keeps the marginal
    ``alpha**2 lam + sigma**2`` a sum of positive terms at every level.
    """
    a0, s0, a1, s1 = sp.symbols("a0 s0 a1 s1", positive=True)
    f = _forms(kind, dn.Level(a0, s0), dn.Level(a1, s1))
    keys = ("transfer", "log_transfer", "noise_psd", "output_psd", "output_mean")
    return lambdify_modes((S.lam, S.mean, _V, a0, s0, a1, s1), [f[k] for k in keys])


def reference(kind: str, schedule: Schedule, psd, *, mean=None) -> Response:
    """The exact continuous-time response over the span of ``schedule``, in its space.

    The equation runs from ``schedule.start[0]`` to ``schedule.end[-1]`` from a latent of
    variance ``schedule.init_var``; the intermediate levels do not matter.

    >>> import numpy as np
    >>> s = Schedule.from_sigmas([80.0, 1.0, 0.0])
    >>> r = reference("ode", s, [4.0])
    >>> bool(np.isclose(r.output_psd[0], s.init_var * 4.0 / (4.0 + 80.0**2)))
    True
    """
    _check(kind, getattr(schedule, "space", "vp"))
    check_type(schedule, Schedule, "schedule")
    lam = validate_psd(psd)
    m = 0.0 if mean is None else validate_mean(mean, lam.shape).reshape(lam.shape)
    L0, L1 = (make_level(float(u), schedule.space) for u in (schedule.start[0], schedule.end[-1]))
    out = _compiled(kind)(lam, m, schedule.init_var, L0.alpha, L0.sigma, L1.alpha, L1.sigma)
    H, log_h, noise, psd_out, mu = (lam * 0.0 + v for v in out)  # constants as arrays
    return Response(H, log_h, noise, psd_out, None if mean is None else mu, schedule.init_var)


def discretisation_error(sampler: Sampler, schedule: Schedule, psd, *, kind: str,
                         prediction_type: PredictionType = "epsilon") -> np.ndarray:
    """Per-mode output PSD of ``sampler`` on ``schedule`` minus the exact ``kind`` reference.

    Both are in the sampler's space and start from the schedule's initial latent.

    >>> import numpy as np, symspec
    >>> s = Schedule.from_sigmas(np.geomspace(80.0, 0.05, 41))
    >>> err = discretisation_error(symspec.HEUN, s, [0.1, 1.0], kind="ode")
    >>> bool(np.all(np.abs(err) < 1e-3 * s.init_var))
    True
    """
    disc = spectral_response(sampler, schedule, psd, prediction_type=prediction_type)
    return disc.output_psd - reference(kind, schedule.to_space(sampler.space), psd).output_psd
