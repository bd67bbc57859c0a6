"""Exact continuous-time references: the DDIM(eta) family of reverse SDEs, per mode.

With infinitely many steps a sampler integrates a linear equation per mode, from the first
level ``u0`` of its schedule (latent ``N(0, V)``) to the last, ``u1``.  The equations form
one family, the continuous limits of DDIM(eta) (``dW`` a Wiener process, ``score`` that of
the noisy marginal, ``f`` and ``g`` the drift and diffusion of the forward process)::

    dx = [f x - (1 + eta**2)/2 g**2 score] du + eta g dW

``eta = 0`` is the probability-flow ODE (kind ``"ode"``), ``eta = 1`` the reverse SDE
(kind ``"sde"``), any ``eta >= 0`` kind ``"eta"``; all share the marginals of the forward
process.  With the marginal variance ``D(u) = alpha(u)**2 lam + sigma(u)**2`` (VP: ``u`` is
alpha-bar; VE: ``u`` is sigma):

* transfer ``H = sqrt(D1 / D0) * (alpha0**2 D1 / (alpha1**2 D0))**(eta**2 / 2)``:
  ``sqrt(D1 / D0)`` for the ODE, ``(alpha0 / alpha1) D1 / D0`` for the SDE;
* output variance ``D1 + H**2 (V - D0)`` (``H**2 V`` for the ODE);
* output mean ``(alpha1 - H alpha0) m`` for data mean ``m`` (the latent has mean 0).

:func:`moment_odes` builds the equations for the transfer, variance and mean from the
forward process ``x = alpha(u) x0 + sigma(u) eps``; :func:`certify` proves with SymPy that
:func:`closed_forms` solves them with the right initial values.  :func:`reference` evaluates
the closed forms on a schedule, :func:`discretisation_error` compares a sampler with them,
and :func:`continuous_limit` finds the member a sampler converges to from its derived step.
"""

from __future__ import annotations

import functools

import numpy as np
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

from .._checks import check_type, validate_mean, validate_psd
from ..schedules import Schedule
from ..symbolic import denoiser as dn
from ..symbolic import symbols as S
from ..symbolic.denoiser import PredictionType
from ..symbolic.engine import Sampler, derive, level_symbols, make_level
from .lambdify import lambdify_modes
from .response import Response, spectral_response

__all__ = ["KINDS", "moment_odes", "closed_forms", "certify", "reference",
           "discretisation_error", "continuous_limit", "member_eta"]

#: The continuous-time references: the members ``eta = 0`` and ``eta = 1`` of the DDIM(eta)
#: family, and the whole family (``eta`` a symbol, or a number given as ``eta=``).
KINDS = ("ode", "sde", "eta")

_U = sp.Symbol("u", positive=True)
_V = sp.Symbol("V", positive=True)
_ETA = S.eta


def _check(kind: str, space: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if space not in ("vp", "ve"):
        raise ValueError(f"space must be 'vp' or 've', got {space!r}")


def member_eta(kind: str, eta=None) -> float:
    """The ``eta`` of a reference: 0 for ``"ode"``, 1 for ``"sde"``, ``eta`` for ``"eta"``.

    >>> member_eta("ode"), member_eta("eta", eta=0.5)
    (0.0, 0.5)
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind != "eta":
        if eta is not None:
            raise ValueError(f"eta= goes with kind='eta' (kind {kind!r} is eta = "
                             f"{0 if kind == 'ode' else 1})")
        return 0.0 if kind == "ode" else 1.0
    if isinstance(eta, bool) or not isinstance(eta, int | float) or not eta >= 0 \
            or eta == float("inf"):
        raise ValueError(f"kind='eta' needs eta= a finite number >= 0, got {eta!r}")
    return float(eta)


def _symbolic_eta(kind: str):
    return {"ode": sp.Integer(0), "sde": sp.Integer(1)}.get(kind, _ETA)


def moment_odes(kind: str, space: str) -> tuple[list[sp.Eq], tuple[sp.Function, ...], sp.Symbol]:
    """The per-mode linear ODEs in the level ``u`` for the transfer, variance and mean.

    The forward process ``x = alpha x0 + sigma eps`` is the SDE ``dx = f x du + g dW`` with
    ``f = d log(alpha)/du`` and ``g**2 = d(sigma**2)/du - 2 f sigma**2``.  Its score is
    ``-(x - alpha m)/D``.  The DDIM(eta) SDE ``dx = (f x - c g**2 score) du + eta g dW``,
    ``c = (1 + eta**2)/2`` (run towards the data, so each step adds variance
    ``-eta**2 g**2 du``), gives ``H' = (f + c g**2/D) H``,
    ``V' = 2 (f + c g**2/D) V - eta**2 g**2`` and ``mu' = f mu + c g**2 (mu - alpha m)/D``.
    The probability-flow ODE (``"ode"``) is ``eta = 0``, the reverse SDE (``"sde"``)
    ``eta = 1``; kind ``"eta"`` keeps ``eta`` a symbol (:data:`symspec.symbolic.symbols.eta`).

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
    eta = _symbolic_eta(kind)
    c = (1 + eta**2) / 2
    rate = sp.simplify(f + c * g2 / D)
    H, V, mu = (sp.Function(n)(_U) for n in ("H", "V", "mu"))
    eqs = [sp.Eq(H.diff(_U), rate * H),
           sp.Eq(V.diff(_U), 2 * rate * V - eta**2 * sp.simplify(g2)),
           sp.Eq(mu.diff(_U), f * mu + c * g2 * (mu - lv.alpha * S.mean) / D)]
    return eqs, (H, V, mu), _U


@functools.cache
def closed_forms(kind: str, space: str) -> dict[str, sp.Expr]:
    """The exact response from level ``u0`` to ``u1`` (SymPy), latent ``N(0, V)``.

    Keys ``transfer``, ``log_transfer``, ``noise_psd``, ``output_psd``, ``output_mean``
    (expressions in ``lam``, the data mean ``m``, ``V``, the levels and, for kind ``"eta"``,
    the symbol ``eta``), and ``levels`` (the symbols ``u0, u1``), ``V`` and ``eta``.

    >>> cf = closed_forms("sde", "vp")
    >>> ab0, ab1 = cf["levels"]
    >>> D = lambda ab: ab * S.lam + 1 - ab
    >>> sp.simplify(cf["transfer"].subs(ab1, 1) - sp.sqrt(ab0) * S.lam / D(ab0))  # book: ddpm
    0
    """
    _check(kind, space)
    u0, u1 = S.level("start", space), S.level("end", space)
    return {**_forms(kind, make_level(u0, space), make_level(u1, space)), "levels": (u0, u1),
            "V": _V, "eta": _symbolic_eta(kind)}


def _forms(kind: str, L0: dn.Level, L1: dn.Level, eta=_ETA, numeric: bool = False
           ) -> dict[str, sp.Expr]:
    """The closed forms between two levels, written to evaluate without cancellation.

    The noise ``D1 - H**2 D0`` is ``D1 r`` for the SDE and ``-D1 expm1(eta**2 log(1 - r))``
    in general, with ``r = 1 - alpha0**2 D1 / (alpha1**2 D0)`` computed without a difference
    of nearly equal terms (``expand_func`` turns it into the plain ``D1 - H**2 D0``).
    ``log(1 - r)`` is ``log1p(-r)``; ``numeric`` evaluates it as ``log`` of the ratio
    ``1 - r`` itself where ``r > 1/2`` (``1 - r`` small, which ``1 - r`` in floating point
    would lose).
    """
    D0, D1 = L0.marginal(S.lam), L1.marginal(S.lam)
    a0, a1 = L0.alpha, L1.alpha
    if kind == "ode":
        H = sp.sqrt(D1 / D0)
        log_h = (sp.log(D1) - sp.log(D0)) / 2
        noise = sp.Integer(0)
    else:
        r = (a1**2 * L0.sigma**2 - a0**2 * L1.sigma**2) / (a1**2 * D0)
        log_q = 2 * sp.log(a0) - 2 * sp.log(a1) + sp.log(D1) - sp.log(D0)  # log(1 - r)
        if kind == "sde":
            H = D1 / D0 * a0 / a1
            log_h = log_q / 2 + (sp.log(D1) - sp.log(D0)) / 2
            noise = D1 * r  # D1 - H^2 D0
        else:
            H = sp.sqrt(D1 / D0) * (a0**2 * D1 / (a1**2 * D0)) ** (eta**2 / 2)
            log_h = (sp.log(D1) - sp.log(D0)) / 2 + eta**2 * log_q / 2
            log_1mr = log1p(-r)
            if numeric:
                ratio = a0**2 * D1 / (a1**2 * D0)  # = 1 - r
                log_1mr = sp.Piecewise((log_1mr, r < sp.Rational(1, 2)), (sp.log(ratio), True))
            noise = -D1 * expm1(eta**2 * log_1mr)
    return {"transfer": H, "log_transfer": log_h, "noise_psd": noise,
            "output_psd": H**2 * _V + noise, "output_mean": (a1 - H * a0) * S.mean}


def certify(kind: str, space: str) -> bool:
    """Prove that :func:`closed_forms` solves :func:`moment_odes` from ``H=1, V, mu=0``.

    For kind ``"eta"`` the proof holds for every ``eta`` (a symbol).

    >>> all(certify(k, s) for k in KINDS for s in ("vp", "ve"))
    True
    """
    eqs, funcs, u = moment_odes(kind, space)
    cf = closed_forms(kind, space)
    u0, u1 = cf["levels"]
    sol = [sp.expand_func(cf[k]).subs(u1, u) for k in ("transfer", "output_psd", "output_mean")]
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
    f = _forms(kind, dn.Level(a0, s0), dn.Level(a1, s1), numeric=True)
    keys = ("transfer", "log_transfer", "noise_psd", "output_psd", "output_mean")
    return lambdify_modes((S.lam, S.mean, _V, a0, s0, a1, s1, _ETA), [f[k] for k in keys])


def reference(kind: str, schedule: Schedule, psd, *, mean=None, eta: float | None = None
              ) -> Response:
    """The exact continuous-time response over the span of ``schedule``, in its space.

    ``kind`` is ``"ode"`` (``eta = 0``), ``"sde"`` (``eta = 1``) or ``"eta"`` with
    ``eta=`` a number >= 0: the member of the DDIM(eta) family (DDIM(eta) converges to it;
    :func:`continuous_limit` finds a sampler's).  The equation runs from
    ``schedule.start[0]`` to ``schedule.end[-1]`` from a latent of variance
    ``schedule.init_var``; the intermediate levels do not matter.

    >>> import numpy as np
    >>> s = Schedule.from_sigmas([80.0, 1.0, 0.0])
    >>> r = reference("ode", s, [4.0])
    >>> bool(np.isclose(r.output_psd[0], s.init_var * 4.0 / (4.0 + 80.0**2)))
    True
    >>> r = reference("eta", s, [4.0], eta=0.5)   # transfer sqrt(lam/D0) (lam/D0)**(1/8)
    >>> bool(np.isclose(r.transfer[0], (4.0 / (4.0 + 80.0**2)) ** (1 / 2 + 1 / 8)))
    True
    """
    e = member_eta(kind, eta)
    _check(kind, getattr(schedule, "space", "vp"))
    check_type(schedule, Schedule, "schedule")
    lam = validate_psd(psd)
    m = 0.0 if mean is None else validate_mean(mean, lam.shape).reshape(lam.shape)
    L0, L1 = (make_level(float(u), schedule.space) for u in (schedule.start[0], schedule.end[-1]))
    form = "ode" if e == 0 else "sde" if e == 1 else "eta"  # the members' simpler forms
    with np.errstate(divide="ignore", invalid="ignore"):  # the branch not taken may be inf
        out = _compiled(form)(lam, m, schedule.init_var, L0.alpha, L0.sigma, L1.alpha,
                              L1.sigma, e)
    H, log_h, noise, psd_out, mu = (lam * 0.0 + v for v in out)  # constants as arrays
    return Response(H, log_h, noise, psd_out, None if mean is None else mu, schedule.init_var)


def discretisation_error(sampler: Sampler, schedule: Schedule, psd, *, kind: str,
                         prediction_type: PredictionType = "epsilon",
                         eta: float | None = None) -> np.ndarray:
    """Per-mode output PSD of ``sampler`` on ``schedule`` minus the exact ``kind`` reference
    (``eta=`` with kind ``"eta"``, as in :func:`reference`).

    Both are in the sampler's space and start from the schedule's initial latent.

    >>> import numpy as np, symspec
    >>> s = Schedule.from_sigmas(np.geomspace(80.0, 0.05, 41))
    >>> err = discretisation_error(symspec.HEUN, s, [0.1, 1.0], kind="ode")
    >>> bool(np.all(np.abs(err) < 1e-3 * s.init_var))
    True
    """
    member_eta(kind, eta)  # a bad kind fails before the run
    disc = spectral_response(sampler, schedule, psd, prediction_type=prediction_type)
    return disc.output_psd - reference(kind, schedule.to_space(sampler.space), psd,
                                       eta=eta).output_psd


@functools.cache
def continuous_limit(sampler: Sampler) -> float:
    """The ``eta`` of the DDIM(eta) SDE that ``sampler`` converges to as its steps shrink.

    Read exactly from the derived step map (:func:`symspec.derive`, a step in the middle of
    a long run): a member of the family injects the variance ``-eta**2 g**2 du`` over a
    small step ``du`` (:func:`moment_odes`), so with the step to ``p = t + d`` (earlier
    levels at ``t - d, t - 2 d, ...``) and the variance ``q(d)`` the step injects into
    ``x``, ``eta**2 = q'(0) / (-g(t)**2)``, proved constant by SymPy.  This assumes a
    consistent sampler (one whose mean update is a first-order step of that member).
    Deterministic samplers give 0, DDPM, Euler ancestral and the other ancestral samplers 1,
    DDIM(eta) its ``eta``.  Nothing depends on the sampler's name.

    Raises ``ValueError`` where the limit is not a member: noise that does not vanish with
    the step, a noise rate that varies with the level or the mode, or noise carried in the
    state from one step to the next (correlated over steps); pass the member to
    :func:`symspec.design.diagnose` (``eta=``) yourself there.

    >>> import symspec
    >>> continuous_limit(symspec.DDIM(eta=0.5)), continuous_limit(symspec.EULER_ANCESTRAL)
    (0.5, 1.0)
    """
    check_type(sampler, Sampler, "sampler")
    m = derive(sampler)
    if all(q == 0 for q in m.Q):
        return 0.0
    if any(m.Q[i, j] != 0 for i in range(sampler.state) for j in range(sampler.state)
           if (i, j) != (0, 0)):
        raise ValueError(
            f"sampler {sampler.name!r} keeps noise in its state from one step to the next: "
            "its continuous limit is not read from one step; pass eta= (its member of the "
            "DDIM(eta) family) yourself")
    d = sp.Symbol("d", real=True)
    t, p, *hist = level_symbols(sampler)
    at = {p: t + d, **{h: t - (k + 1) * d for k, h in enumerate(hist)}}
    q = m.Q[0, 0].subs(at)
    lv = make_level(t, sampler.space)
    g2 = sp.diff(lv.sigma**2, t) - 2 * lv.sigma**2 * sp.diff(sp.log(lv.alpha), t)
    fail = (f"the noise of sampler {sampler.name!r} does not tend to that of a member of the "
            "DDIM(eta) family (dx = [f x - (1 + eta**2)/2 g**2 score] du + eta g dW) as its "
            "steps shrink")
    if sp.simplify(q.subs(d, 0)) != 0:
        raise ValueError(fail + ": it does not vanish with the step; pass eta= yourself")
    rate = sp.simplify(sp.diff(q, d).subs(d, 0))
    if rate.has(sp.nan, sp.zoo, sp.oo):
        rate = sp.simplify(sp.limit(q / d, d, 0))
    eta2 = sp.simplify(rate / -g2)
    if eta2.free_symbols or not eta2.is_real or eta2 < 0:
        raise ValueError(fail + f": eta**2 would be {eta2}; pass eta= yourself")
    return float(sp.sqrt(eta2))
