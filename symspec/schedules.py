"""Noise schedules: training alpha-bars, inference grids, and the :class:`Schedule` object.

A :class:`Schedule` holds, for each of its ``N`` steps, the level the step starts from
and the level it goes to, in one convention: alpha-bar (``space="vp"``, increasing
towards the data, inside (0, 1]) or sigma (``space="ve"``, decreasing, >= 0).
Most schedules are *chained* (each step starts where the previous ended); diffusers'
DDIM with ``linspace`` spacing is not, and is represented exactly.

>>> s = Schedule.from_alpha_bar([0.1, 0.5, 1.0])
>>> s.steps, s.space, s.alpha_bar.tolist()
(2, 'vp', [0.1, 0.5, 1.0])
>>> s.to_space("ve").sigmas.tolist()
[3.0, 1.0, 0.0]
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field

import numpy as np

from ._checks import SPACES, check_space, number, real_array

__all__ = ["Schedule", "training_alphas_cumprod", "inference_timesteps", "diffusers_schedule",
           "BETA_SCHEDULES", "SPACINGS"]

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
SPACINGS = ("leading", "trailing", "linspace")

#: Largest sigma (and, as ``1 / (1 + SIGMA_MAX**2)``, smallest alpha-bar) a schedule takes:
#: beyond it ``sigma**2`` and the conversions between VP and VE leave float64's range.
SIGMA_MAX = 1e150
_AB_MIN = 1 / (1 + SIGMA_MAX**2)


def _vector(name: str, values, ndim: int = 1) -> np.ndarray:
    """``values`` as a new (never shared) finite float64 array of ``ndim`` dimensions."""
    try:
        a = real_array(values, name)
    except ValueError as exc:  # complex, bool, strings, ragged lists...
        msg = str(exc).replace("must be real numbers", "must be an array of real numbers")
        if not msg.startswith(name):
            msg = f"{name} must be an array of real numbers, got {values!r}"
        raise ValueError(msg) from None
    except TypeError:
        raise ValueError(f"{name} must be an array of real numbers, got {values!r}") from None
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got {a[~np.isfinite(a)][:3]}")
    return a


@dataclass(frozen=True, eq=False)
class Schedule:
    """The noise levels of an ``N``-step sampler run.

    Parameters
    ----------
    start, end : array of shape (N,)
        Level each step starts from and goes to, in ``space`` units.
    space : {"vp", "ve"}
        ``"vp"``: alpha-bar, in (0, 1], increasing along sampling.
        ``"ve"``: sigma, >= 0, decreasing along sampling.
    init_var : float, optional
        Variance of the initial latent in this space.  Default: 1 (VP), or
        ``sigma_max**2 + 1`` (VE; the VP unit-variance latent scaled to VE).
    meta : dict, optional
        Free-form JSON-able facts (copied).

    Notes
    -----
    The arrays are copied and read-only; the caller's arrays are never changed or shared.
    Sigmas above :data:`SIGMA_MAX` (alpha-bars below ``1 / (1 + SIGMA_MAX**2)``) are refused.
    """

    start: np.ndarray
    end: np.ndarray
    space: str = "vp"
    init_var: float = None  # type: ignore[assignment]  # None: the space's default (below)
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        check_space(self.space)
        if not isinstance(self.meta, dict):
            raise ValueError(f"meta must be a dict, got {type(self.meta).__name__}")
        s, e = _vector("start", self.start), _vector("end", self.end)
        if s.size < 1:
            raise ValueError("a schedule needs at least 1 step, got 0")
        if s.shape != e.shape:
            raise ValueError(f"start and end must have the same shape, got {s.shape} and {e.shape}")
        if self.space == "vp":
            for nm, a in (("start", s[1:]), ("end", e)):
                if np.any(a <= 0) or np.any(a > 1):
                    raise ValueError(f"alpha-bar values ({nm}) must lie in (0, 1], got "
                                     f"{a[(a <= 0) | (a > 1)][:3]}")
                if np.any(a < _AB_MIN):
                    raise ValueError(f"alpha-bar values ({nm}) must be >= {_AB_MIN:.3g} (sigma "
                                     f"<= {SIGMA_MAX:g}), got {a[a < _AB_MIN][:3]}")
            if not (s[0] == 0 or _AB_MIN <= s[0] <= 1):  # 0 only at the start: zero terminal SNR
                raise ValueError("alpha-bar values (start) must lie in (0, 1] (the first may be "
                                 f"0: zero terminal SNR), got {s[0]}")
            if np.any(e < s):
                raise ValueError("alpha-bar must not decrease along a step (end >= start); "
                                 f"step {int(np.argmax(e < s))} does")
        else:
            if np.any(s <= 0) or np.any(e < 0):
                raise ValueError("sigma values must be > 0 (start) and >= 0 (end)")
            if s.max() > SIGMA_MAX:
                raise ValueError(f"sigma values must be <= {SIGMA_MAX:g} (their squares must stay "
                                 f"finite in float64), got {s.max():g}")
            if np.any(e > s):
                raise ValueError("sigma must not increase along a step (end <= start); "
                                 f"step {int(np.argmax(e > s))} does")
        iv = self.init_var
        if iv is None:
            iv = 1.0 if self.space == "vp" else float(s[0]) ** 2 + 1.0
        iv = number(iv, "init_var", low=0)
        s.setflags(write=False)
        e.setflags(write=False)
        object.__setattr__(self, "start", s)
        object.__setattr__(self, "end", e)
        object.__setattr__(self, "init_var", iv)
        object.__setattr__(self, "meta", copy.deepcopy(self.meta))

    # -- constructors -----------------------------------------------------------------
    @classmethod
    def from_alpha_bar(cls, alpha_bar, init_var: float | None = None) -> Schedule:
        """A chained VP schedule from ``N + 1`` alpha-bars, noisiest first."""
        a = _vector("alpha_bar", alpha_bar)
        if a.size < 2:
            raise ValueError(f"alpha_bar needs N + 1 >= 2 values, got {a.size}")
        if np.any(np.diff(a) <= 0):
            raise ValueError("alpha_bar must increase strictly (noisiest first); position "
                             f"{int(np.argmax(np.diff(a) <= 0)) + 1} does not")
        return cls(a[:-1], a[1:], "vp", init_var)  # type: ignore[arg-type]

    @classmethod
    def from_sigmas(cls, sigmas, init_var: float | None = None) -> Schedule:
        """A chained VE schedule from ``N + 1`` sigmas, noisiest first (last often 0)."""
        a = _vector("sigmas", sigmas)
        if a.size < 2:
            raise ValueError(f"sigmas needs N + 1 >= 2 values, got {a.size}")
        if np.any(np.diff(a) >= 0):
            raise ValueError("sigmas must decrease strictly (noisiest first); position "
                             f"{int(np.argmax(np.diff(a) >= 0)) + 1} does not")
        return cls(a[:-1], a[1:], "ve", init_var)  # type: ignore[arg-type]

    # -- views ------------------------------------------------------------------------
    @property
    def steps(self) -> int:
        """Number of steps ``N``."""
        return int(self.start.size)

    @property
    def chained(self) -> bool:
        """Whether every step starts where the previous one ended."""
        return bool(np.array_equal(self.start[1:], self.end[:-1]))

    def _grid(self) -> np.ndarray:
        if not self.chained:
            raise ValueError("this schedule is not chained (a step starts elsewhere than the "
                             "previous one ended); use .start and .end")
        return np.append(self.start, self.end[-1])

    @property
    def alpha_bar(self) -> np.ndarray:
        """The ``N + 1`` alpha-bars of a chained schedule (converted from sigma if VE)."""
        return self.to_space("vp")._grid()

    @property
    def sigmas(self) -> np.ndarray:
        """The ``N + 1`` sigmas of a chained schedule (converted from alpha-bar if VP)."""
        return self.to_space("ve")._grid()

    def to_space(self, space: str) -> Schedule:
        """The same noise levels in the other convention (``sigma^2 = (1 - ab)/ab``)."""
        check_space(space)
        if space == self.space:
            return self
        if space == "ve":
            if self.start[0] == 0:
                raise ValueError("a schedule starting at alpha-bar 0 (zero terminal SNR) has no "
                                 "VE form: its first sigma is infinite")
            f = lambda a: np.sqrt((1 - a) / a)  # noqa: E731
            d = float(self.start[0])
        else:
            f = lambda s: 1 / (1 + s * s)  # noqa: E731
            d = 1 + float(self.start[0]) ** 2
        with np.errstate(over="ignore"):  # an init_var out of range is refused by Schedule
            iv = float(np.float64(self.init_var) / d)
        return Schedule(f(self.start), f(self.end), space, iv, self.meta)  # meta is copied

    # -- I/O --------------------------------------------------------------------------
    def to_json(self) -> str:
        """JSON text; :meth:`from_json` reads it back exactly."""
        return json.dumps({"space": self.space, "start": self.start.tolist(),
                           "end": self.end.tolist(), "init_var": self.init_var, "meta": self.meta})

    @classmethod
    def from_json(cls, text: str) -> Schedule:
        """Read a schedule written by :meth:`to_json`."""
        try:
            d = json.loads(text)
        except RecursionError:
            raise ValueError("not a symspec schedule: JSON nested too deeply") from None
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a symspec schedule: {exc}") from None
        if not isinstance(d, dict):
            raise ValueError(f"not a symspec schedule: expected a JSON object, got "
                             f"{type(d).__name__}")
        missing = [k for k in ("start", "end", "space", "init_var") if k not in d]
        if missing:
            raise ValueError(f"not a symspec schedule: no {', '.join(map(repr, missing))}")
        if d["space"] not in SPACES:
            raise ValueError(f"not a symspec schedule: space must be 'vp' or 've', got "
                             f"{d['space']!r}")
        try:
            return cls(d["start"], d["end"], d["space"], d["init_var"], d.get("meta", {}))
        except (TypeError, RecursionError) as exc:
            raise ValueError(f"not a symspec schedule: {exc}") from None

    def __repr__(self) -> str:
        return (f"Schedule(steps={self.steps}, space={self.space!r}, start={self.start[0]:.4g}, "
                f"end={self.end[-1]:.4g}, init_var={self.init_var:.4g})")


def training_alphas_cumprod(num_train_timesteps: int = 1000, beta_schedule: str = "linear",
                            beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    """The training alpha-bars of diffusers' beta schedules, in float64.

    >>> ab = training_alphas_cumprod()
    >>> ab.shape, bool(np.all(np.diff(ab) < 0))
    ((1000,), True)
    """
    T = num_train_timesteps
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"num_train_timesteps must be a positive int, got {T!r}")
    if beta_schedule == "linear":
        betas = np.linspace(beta_start, beta_end, T)
    elif beta_schedule == "scaled_linear":
        betas = np.linspace(beta_start**0.5, beta_end**0.5, T) ** 2
    elif beta_schedule == "squaredcos_cap_v2":
        f = lambda t: np.cos((t + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
        i = np.arange(T)
        betas = np.minimum(1 - f((i + 1) / T) / f(i / T), 0.999)
    else:
        raise ValueError(f"beta_schedule must be one of {BETA_SCHEDULES}, got {beta_schedule!r}")
    if np.any(betas <= 0) or np.any(betas >= 1):
        raise ValueError(f"betas must lie in (0, 1); check beta_start={beta_start}, "
                         f"beta_end={beta_end}")
    return np.exp(np.cumsum(np.log1p(-betas)))


def inference_timesteps(num_inference_steps: int, num_train_timesteps: int = 1000,
                        timestep_spacing: str = "leading", steps_offset: int = 0) -> np.ndarray:
    """Integer timesteps, noisiest first, exactly as diffusers' ``set_timesteps`` picks them.

    >>> inference_timesteps(4, 1000, "trailing").tolist()
    [999, 749, 499, 249]
    """
    N, T = num_inference_steps, num_train_timesteps
    if not isinstance(N, int) or not 1 <= N <= T:
        raise ValueError(f"num_inference_steps must be an int from 1 to {T}, got {N!r}")
    ts: np.ndarray
    if timestep_spacing == "linspace":
        ts = np.linspace(0, T - 1, N).round()[::-1]
    elif timestep_spacing == "leading":
        ts = (np.arange(N) * (T // N)).round()[::-1] + steps_offset
    elif timestep_spacing == "trailing":
        ts = np.round(np.arange(T, 0, -T / N)) - 1
    else:
        raise ValueError(f"timestep_spacing must be one of {SPACINGS}, got {timestep_spacing!r}")
    return ts.astype(np.int64)


def diffusers_schedule(alphas_cumprod, timesteps, prev: str = "chained",
                       final_alpha_cumprod: float = 1.0, num_train_timesteps: int | None = None,
                       ) -> Schedule:
    """The VP schedule a DDPM/DDIM-type diffusers scheduler runs on ``timesteps``.

    Parameters
    ----------
    alphas_cumprod : array
        Training alpha-bars.
    timesteps : array of int
        Inference timesteps, noisiest first.
    prev : {"chained", "stride"}
        How the previous timestep is found: the next entry of ``timesteps`` (DDPMScheduler),
        or ``t - T // N`` (DDIMScheduler).  Past the data end, ``final_alpha_cumprod``.
    """
    ab = _vector("alphas_cumprod", alphas_cumprod)
    ts = np.asarray(timesteps, dtype=np.int64)
    if ts.ndim != 1 or ts.size < 1:
        raise ValueError(f"timesteps must be a non-empty 1-D array, got shape {ts.shape}")
    if np.any(ts < 0) or np.any(ts >= ab.size):
        raise ValueError(f"timesteps must lie in [0, {ab.size}), got {ts.min()}..{ts.max()}")
    if prev == "chained":
        pt = np.append(ts[1:], -1)
    elif prev == "stride":
        pt = ts - (num_train_timesteps or ab.size) // ts.size
    else:
        raise ValueError(f"prev must be 'chained' or 'stride', got {prev!r}")
    end = np.where(pt >= 0, ab[np.clip(pt, 0, None)], final_alpha_cumprod)
    return Schedule(ab[ts], end, "vp", 1.0,
                    {"timesteps": ts.tolist(), "prev_timesteps": pt.tolist()})
