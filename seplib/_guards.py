"""Guards at seplib's edges: what a user's field returns, and what reaches LAPACK.

A field is any callable; ``as_field`` makes every call of it look the same to the rest of
seplib. A NaN handed to ``torch.linalg`` can take the process down inside MKL (DGEBAL's
parameter check, then a segfault), so every ``torch.linalg`` call in seplib first passes its
input through ``finite_or_raise``.
"""
import math
import numbers

import numpy as np
import torch


class Field:
    """``field`` called on rows ``[N, d]``, its value returned as a tensor shaped, typed and placed
    like the input. A numpy array, another float dtype or another device is converted; another
    shape, or something that is not an array, is refused with a message that says what to return.
    A field written for ``[N, d]`` arrays (numpy code, say) thus works on any ``[..., d]`` input."""

    def __init__(self, field, dim=None):
        if not callable(field):
            raise TypeError(f"the field must be a callable f(x) on Tensor[..., d], got {type(field).__name__}")
        self.field, self.dim = field, dim

    def __call__(self, x):
        d = x.shape[-1]
        if self.dim is not None and d != self.dim:
            raise ValueError(f"the field is {self.dim}-dimensional, but was given points of dimension {d}")
        rows = x.reshape(-1, d)
        return _like(self.field(rows), rows).reshape(x.shape)


def as_field(field, dim=None):
    """``field`` wrapped as a ``Field`` (once: a Field is returned as it is)."""
    return field if isinstance(field, Field) else Field(field, dim)


def _like(out, x):
    if isinstance(out, np.ndarray):
        out = torch.from_numpy(out)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the field returned a {type(out).__name__} for input of shape {tuple(x.shape)}: f must "
                        "return a torch.Tensor (or a numpy array) of the input's shape")
    if out.shape != x.shape:
        raise ValueError(f"the field returned shape {tuple(out.shape)} for input of shape {tuple(x.shape)}: "
                         f"f must map Tensor[..., {x.shape[-1]}] to a tensor of the same shape")
    if out.is_complex() or out.dtype == torch.bool:
        raise TypeError(f"the field returned {out.dtype} values: f must return real numbers")
    if out.dtype != x.dtype or out.device != x.device:
        out = out.to(device=x.device, dtype=x.dtype)
    return out


def finite_or_raise(tensor, what, where, fix, points=None):
    """Raise FloatingPointError unless every entry of ``tensor`` is finite. The message names
    ``what`` is non-finite, ``where`` what was not done (a call refused), the first bad point (a row of
    ``points``, one per leading row of ``tensor``, when given) and the ``fix``."""
    if torch.isfinite(tensor.sum()):   # NaN and inf carry into the sum: one pass, no mask
        return
    bad = ~torch.isfinite(tensor)
    if not bad.any():
        return                          # the sum overflowed; every entry is finite
    kind = "NaN" if torch.isnan(tensor).any() else "inf"
    at = ""
    if points is not None:
        rows = bad.reshape(len(points), -1).any(dim=1)
        first = points[rows.nonzero()[0, 0]]
        at = f" at {int(rows.sum())} of {len(points)} points, first at x = {_short(first)}"
    raise FloatingPointError(f"{what} is {kind}{at}, so {where}: {fix}")


def psi_of(kef, x):
    """``kef(x)`` as a tensor of shape ``x.shape[:-1]``: one number per point, from a psi that
    returns ``[..., 1]`` or ``[...]``; another shape, or something that is not numbers, is
    refused with a message that says what psi must return."""
    out = kef(x)
    if isinstance(out, np.ndarray):
        out = torch.from_numpy(out).to(x.device)
    want = x.shape[:-1]
    if not isinstance(out, torch.Tensor) or out.shape not in (want, (*want, 1)):
        got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else f"a {type(out).__name__}"
        raise ValueError(f"psi returned {got} for points of shape {tuple(x.shape)}: psi must map [..., d] to "
                         f"one number per point, a tensor of shape {tuple(want)} or {(*want, 1)}")
    return out.reshape(want)


def check_seed(seed):
    """A ValueError unless ``seed`` is an integer (a bool is not one): torch's own error for a
    float or None seed names neither the argument nor the fix."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    return int(seed)


def seeded(seed):
    """A CPU ``torch.Generator`` seeded with ``seed`` (checked by ``check_seed``)."""
    return torch.Generator().manual_seed(check_seed(seed))


def as_states(x, name, dim=None):
    """``x`` as a real tensor of states ``[..., d]`` (``d == dim`` when given), or an error that
    names it. A float tensor comes back as it is; a numpy array or a list becomes a tensor, and
    integer entries become float32 (psi or a Jacobian at integer states would be truncated or
    refused deep inside torch)."""
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(x)
        except (TypeError, RuntimeError, ValueError) as err:
            raise ValueError(f"{name} must be states: a tensor [..., d] of numbers, one state per row, "
                             f"got {type(x).__name__}") from err
    if x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"{name} holds {x.dtype} values: give real numbers")
    if not x.is_floating_point():
        x = x.float()
    if x.dim() == 0 or x.shape[-1] == 0 or (dim is not None and x.shape[-1] != dim):
        want = "d" if dim is None else dim
        raise ValueError(f"{name} must be states, a tensor [..., {want}] with one state per row, "
                         f"got shape {tuple(x.shape)}")
    return x


def check_count(value, name, minimum=1):
    """A ValueError unless ``value`` is an integer (a bool is not one) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {what}, got {value!r}")


def finite_real(value):
    """``value`` as a float if it is a finite real number (a 0-d tensor or array included, a bool
    not), else None."""
    if isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        return None
    return float(value)


def check_positive(value, name, what="a finite number", zero=False):
    """``value`` as a float, or a ValueError unless it is a finite real number > 0 (>= 0 with
    ``zero``); ``what`` names the kind of number in the message ("a finite time", ...)."""
    number = finite_real(value)
    if number is None or not (number >= 0 if zero else number > 0):
        raise ValueError(f"{name} must be {what} {'>=' if zero else '>'} 0, got {value!r}")
    return number


def check_fraction(value, name, lo_open, hi_open, why):
    """``value`` as a float, or a ValueError unless it is a real number in the interval from 0 to 1
    (open or closed at each end as ``lo_open``, ``hi_open`` say); ``why`` ends the message."""
    number = finite_real(value)
    inside = number is not None and (0 < number if lo_open else 0 <= number) and (
        number < 1 if hi_open else number <= 1)
    if not inside:
        interval = ("(" if lo_open else "[") + "0, 1" + (")" if hi_open else "]")
        raise ValueError(f"{name} must lie in {interval}{why}, got {value!r}")
    return number


def real_numbers(x, name, what, dtype=None):
    """``torch.as_tensor(x, dtype=dtype)``, or a ValueError that names ``name`` (``what`` it must
    be) when x is not numbers, or is complex or bool: a cast to a real dtype would drop the
    imaginary part with no more than a warning."""
    try:
        raw = x if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    except (TypeError, RuntimeError, ValueError) as err:
        raise ValueError(f"{name} must be {what}, got {type(x).__name__}") from err
    if raw.is_complex() or raw.dtype == torch.bool:
        raise ValueError(f"{name} holds {raw.dtype} values, and must be {what}: give real numbers")
    return torch.as_tensor(x, dtype=dtype)


def as_point(x, name, dim=None, dtype=None):
    """``x`` as a finite 1-D tensor (of length ``dim`` when given), or a ValueError that names it."""
    point = real_numbers(x, name, "a point (a 1-D tensor of numbers)", dtype)
    if not (point.is_floating_point() or dtype is not None):
        point = point.float()   # integer coordinates
    if point.dim() != 1 or (dim is not None and len(point) != dim):
        want = "a 1-D tensor" if dim is None else f"a 1-D tensor of length {dim}"
        raise ValueError(f"{name} must be {want}, got shape {tuple(point.shape)}")
    if not torch.isfinite(point).all():
        raise ValueError(f"{name} has NaN or inf entries ({_short(point)}): give a finite point")
    return point


def as_ends(a, b, dtype=None, dim=None, names=("a", "b")):
    """Attractors ``a`` and ``b`` as two finite, distinct points of one dimension (``dim`` when
    given), ``b`` in ``a``'s dtype and on its device; errors call them ``names``."""
    a = as_point(a, names[0], dim, dtype=dtype)
    b = as_point(b, names[1], len(a), a.dtype).to(a.device)
    if torch.equal(a, b):
        raise ValueError(f"{names[0]} and {names[1]} are the same point: give two distinct attractors")
    return a, b


def _short(x, n=6):
    """The first ``n`` entries of x for a message, 4 digits each; entries below 1e-30 in size
    (float32 denormals, rounding noise of a zero) print as 0."""
    values = [f"{0.0 if abs(v) < 1e-30 else v:.4g}" for v in x.flatten()[:n].tolist()]
    return "[" + ", ".join(values) + (", ...]" if x.numel() > n else "]")
