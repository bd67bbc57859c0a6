"""Argument checks shared by every layer: one message style, naming the argument and value.

Inputs are refused rather than coerced: complex, boolean, date, object and string arrays are
not variances; numpy scalars are numbers.
"""

from __future__ import annotations

import math
import numbers
from typing import Literal, TypeAlias

import numpy as np
from numpy.typing import ArrayLike

#: The two conventions of noise levels: alpha-bar (VP) or sigma (VE).
Space: TypeAlias = Literal["vp", "ve"]
SPACES: tuple[Space, ...] = ("vp", "ve")


def check_type(value: object, cls: type, name: str) -> None:
    """Raise ``TypeError`` unless ``value`` is a ``cls`` (the argument ``name`` of a call)."""
    if not isinstance(value, cls):
        raise TypeError(f"{name} must be a symspec {cls.__name__}, got {type(value).__name__}")


def check_space(space: object, name: str = "space") -> Space:
    """``space`` if it is ``"vp"`` or ``"ve"``, else a ``ValueError`` naming ``name``."""
    if space not in SPACES:
        raise ValueError(f"{name} must be 'vp' or 've', got {space!r}")
    return space  # type: ignore[return-value]


def number(value: object, name: str, *, low: float | None = None,
           high: float | None = None, low_open: bool = False) -> float:
    """``value`` as a finite float within ``[low, high]`` (``(low, high]`` if ``low_open``).

    Python and numpy real scalars are accepted; ``bool``, complex and strings are refused.

    >>> number(np.float32(1.5), "eta", low=0)
    1.5
    >>> number(True, "init_var")
    Traceback (most recent call last):
    ...
    TypeError: init_var must be a real number, got True
    """
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    bad = not math.isfinite(v)
    if low is not None:
        bad |= v <= low if low_open else v < low
    if high is not None:
        bad |= v > high
    if bad:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f"<= {high:g}"
        rng = " and ".join(x for x in (lo, hi) if x)
        raise ValueError(f"{name} must be a finite number{' ' + rng if rng else ''}, got {v!r}")
    return v


def real_array(values: ArrayLike, name: str, *, copy: bool = True) -> np.ndarray:
    """``values`` as a new float64 array, refusing complex, bool, object, string and dates."""
    a = np.asarray(values)
    if a.dtype.kind not in "iuf":
        kind = {"c": "complex", "b": "boolean", "O": "object", "U": "string", "S": "bytes",
                "M": "datetime", "m": "timedelta", "V": "structured"}.get(a.dtype.kind, "non-real")
        raise ValueError(f"{name} must be real numbers, got a {kind} array ({a.dtype})")
    if not copy:  # a read-only view where no conversion is needed: the caller never writes
        v = np.asarray(a, dtype=np.float64).view()
        v.flags.writeable = False
        return v
    return np.array(a, dtype=np.float64)  # a copy: never share memory with the caller


def validate_psd(psd: ArrayLike, name: str = "psd", *, copy: bool = True) -> np.ndarray:
    """``psd`` as a float64 array of per-mode variances, or a ``ValueError`` naming ``name``.

    >>> validate_psd([1.0, 0.5]).dtype
    dtype('float64')
    >>> validate_psd([1 + 0j])
    Traceback (most recent call last):
    ...
    ValueError: psd must be real numbers, got a complex array (complex128)
    """
    if not isinstance(psd, np.ndarray | list | tuple | numbers.Real):
        raise ValueError(f"{name} must be an array of numbers, got {type(psd).__name__}")
    try:
        a = real_array(psd, name, copy=copy)
    except (TypeError, ValueError) as exc:
        if str(exc).startswith(name):
            raise
        raise ValueError(f"{name} must be an array of numbers, got {type(psd).__name__}") from None
    if a.ndim not in (1, 2, 3):
        raise ValueError(f"{name} must be 1-, 2- or 3-dimensional (one value per mode), "
                         f"got {a.ndim} dimensions with shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite; it has {int(np.sum(~np.isfinite(a)))} NaN or "
                         "infinite values")
    if np.any(a < 0):
        raise ValueError(f"{name} must be >= 0 (variances); its minimum is {a.min():.3g}")
    return a


def validate_mean(mean: ArrayLike, shape: tuple[int, ...]) -> np.ndarray:
    """``mean`` broadcast to the PSD ``shape`` and flattened, or a ``ValueError`` naming it.

    >>> validate_mean(0.5, (2,)).tolist()
    [0.5, 0.5]
    """
    a = real_array(mean, "mean")
    try:
        m = np.broadcast_to(a, shape).ravel()
    except ValueError:
        raise ValueError(f"mean must broadcast to the psd shape {shape}, got shape "
                         f"{a.shape}") from None
    if not np.all(np.isfinite(m)):
        raise ValueError("mean must be finite")
    return m


def integer(value: object, name: str, *, low: int | None = None,
            high: int | None = None) -> int:
    """``value`` as an int within ``[low, high]``; Python and numpy ints, never ``bool``.

    >>> integer(np.int64(3), "order", low=1, high=4)
    3
    """
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        rng = " and ".join(x for x in (None if low is None else f">= {low}",
                                         None if high is None else f"<= {high}") if x)
        raise ValueError(f"{name} must be an integer {rng}, got {v}")
    return v


def flag(value: object, name: str) -> bool:
    """``value`` if it is ``True`` or ``False`` (numpy booleans too), else a ``ValueError``."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def choice(value: object, name: str, choices: tuple) -> object:
    """``value`` if it is one of ``choices``, else a ``ValueError`` listing them."""
    if not isinstance(value, str | int | float) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value
